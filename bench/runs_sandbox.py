"""Issue 12's figures end to end, on 3 sandbox hosts: `hostctl runs` over 10,000 run records
spread over the hosts (< 1 s wall), and `hostctl compare` of 20 runs with 1,000 steps each
(< 1 s, plot excluded). Each is the real command in a subprocess (Python's start, the
inventory, one SSH round trip per host, parsing, the table), median of 5.

The records are what the hosts' queue helper appends to runs/.history when a run ends
(bench/runs_compare.py makes them), the points what it writes to each run's metrics.tsv.

Run: python bench/runs_sandbox.py   (needs root and a Docker engine; boots sandbox hosts,
taking turns with test sessions through the rig's session lock, and removes them after)
"""

from __future__ import annotations

import os
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.runs_compare import HOSTS, host_outputs
from bench.sandbox_session import booted
from hostctl.sandbox.models import SandboxHost

RECORDS = 10_000
COMPARED = 20
STEPS = 1_000
REPEAT = 5
RUNS = "/var/lib/hostctl/runs"


def write_site(root: Path) -> Path:
    (root / "specs").mkdir(parents=True)
    (root / "specs" / "train.yml").write_text("\n---\n".join(
        f"kind: job\nname: train-{i}\nproject: ml\nimage: hostctl-demo-app:1.0\n"
        "command: [sh, -c, 'true']\n" for i in range(5)))
    (root / "site.yml").write_text("site: bench\nhosts:\n" + "".join(
        f"  {h}: {{address: 10.0.0.{i + 1}}}\n" for i, h in enumerate(HOSTS))
        + "specs: [specs/*.yml]\n")
    return root / "site.yml"


def put(host: SandboxHost, path: str, data: str) -> None:
    subprocess.run(host.ssh_argv(f"mkdir -p {os.path.dirname(path)} && cat > {path}"),
                   input=data.encode(), check=True, timeout=120)


def points(seed: int) -> str:
    rng = random.Random(seed)
    lines = []
    for step in range(STEPS):
        for name, value in (("loss", 2 / (1 + step * rng.uniform(0.01, 0.02))),
                            ("val_auc", 0.99 - 0.4 / (1 + step / 50)), ("lr", 0.01)):
            lines.append(f"{name}\t{step}\t{value:.6g}")
    return "\n".join(lines) + "\n"


def timed(argv: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    res = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    took = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed: {res.stderr}")
    return took, res.stdout


def median_of(argv: list[str]) -> tuple[float, float, str]:
    timed(argv)  # a first run, not counted: the hosts just booted, the bytecode cache
    times, out = [], ""
    for _ in range(REPEAT):
        took, out = timed(argv)
        times.append(took)
    return statistics.median(times), min(times), out


def main() -> None:
    with booted(HOSTS, write_site) as site:
        inv = site.inventory
        by_name = site.hosts
        outputs = host_outputs(RECORDS)
        for name, text in outputs.items():
            put(by_name[name], f"{RUNS}/.history", text)
        # the runs compare reads: the first COMPARED run ids, on their hosts, each with
        # its directory of fields (as every run in a history has) and its points
        compared = [f"{i:08x}" for i in range(COMPARED)]
        for i, run_id in enumerate(compared):
            host = by_name[HOSTS[i % len(HOSTS)]]
            fields = [line.split("/", 1)[1].partition(":") for line in
                      outputs[host.name].splitlines() if line.startswith(run_id + "/")]
            subprocess.run(host.ssh_argv("sh -s"), check=True, timeout=120, input="".join(
                f"mkdir -p {RUNS}/{run_id}; printf '%s\\n' {shlex.quote(value)} > "
                f"{RUNS}/{run_id}/{name}\n" for name, _, value in fields).encode())
            put(host, f"{RUNS}/{run_id}/metrics.tsv", points(i))
        size = sum(len(t) for t in outputs.values()) / 1e6
        hostctl = [sys.executable, "-m", "hostctl"]
        if os.environ.get("BENCH_PROFILE"):  # where the time goes: a cProfile of one
            timed([sys.executable, "-m", "cProfile", "-o", os.environ["BENCH_PROFILE"],
                   "-m", "hostctl", "runs", "-i", inv, "--limit", "50"])
        for label, args in (
                ("(the table's default: the 50 newest)", []),
                ("--all (10,000 lines)", ["--all"]),
                ("--where 'val_auc>0.9 and LR<=0.01' --sort -val_auc --limit 20",
                 ["--where", "val_auc>0.9 and LR<=0.01", "--sort", "-val_auc",
                  "--limit", "20"]),
                ("--json (every run)", ["--json"])):
            med, best, out = median_of([*hostctl, "runs", "-i", inv, *args])
            print(f"hostctl runs {label}: median {med:.2f}s, best {best:.2f}s "
                  f"({len(out.splitlines())} lines out; {RECORDS} records, "
                  f"{size:.1f} MB on {len(HOSTS)} hosts; target < 1 s)")
        med, best, out = median_of([*hostctl, "compare", "-i", inv, *compared])
        print(f"hostctl compare of {COMPARED} runs: median {med:.2f}s, best {best:.2f}s "
              "(target < 1 s)")
        with tempfile.TemporaryDirectory() as pics:
            med, best, _ = median_of([*hostctl, "compare", "-i", inv, *compared,
                                      "--plot", f"{pics}/c.png"])
        print(f"hostctl compare of {COMPARED} runs x {STEPS} steps with --plot PNG: "
              f"median {med:.2f}s, best {best:.2f}s (the points read and drawn; no "
              "target)")


if __name__ == "__main__":
    main()
