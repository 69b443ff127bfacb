"""Bench: 50 short shards across the 3 sandbox hosts; hostctl's own overhead per shard.

    python -m bench.jobs_shards [--shards 50] [--sleep 2] [--inventory FILE]

Without --inventory it boots the standard sandbox hosts (waiting its turn for them), deploys
a one-job site and removes the hosts at the end. Figures, from the hosts' own run records:

- start latency per shard: for each shard, the time from when a slot was free for it (its
  submission, or the end of the run whose place it took on that host) to its start by the
  host's queue, plus hostctl's fixed cost (connect, read, first submit) spread over the
  shards. The container's own run time (docker run included) is excluded.
- overhead per shard on the wall clock: (wall time - total container time / slots) / shards,
  i.e. what hostctl adds to the whole run, per shard, with every slot in use.
- capacity used: per host, the most runs going at once, against what the host has room for.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SPEC = """kind: job
name: bench-shard
project: bench
image: hostctl-demo-app:1.0
command: [sh, -c, 'echo "shard $HOSTCTL_SHARD_INDEX of $HOSTCTL_SHARD_COUNT"; sleep {sleep}']
resources: {{cpus: 0.5, memory: 64Mi}}
"""


def hostctl(inventory: Path, *args: str, module: str = "hostctl",
            timeout: float = 900) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", module, args[0], "-i", str(inventory), *args[1:]]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "NO_COLOR": "1"}, cwd=REPO)


def overheads(runs: list[dict[str, Any]], slots: dict[str, int]) -> list[float]:
    """Per shard: seconds between a free slot on its host and its start (see module doc)."""
    out: list[float] = []
    by_host: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        by_host.setdefault(r["host"], []).append(r)
    for host, rs in by_host.items():
        free = [0] * max(1, slots.get(host, 1))  # when each slot became free (ms)
        heapq.heapify(free)
        for r in sorted(rs, key=lambda r: r["started_ms"]):
            slot_free = heapq.heappop(free)
            ready = max(r["submitted_ms"], slot_free)
            out.append(max(0.0, (r["started_ms"] - ready) / 1000))
            heapq.heappush(free, r["ended_ms"])
    return out


def peak(runs: list[dict[str, Any]], host: str) -> int:
    events = sorted([(r["started_ms"], 1) for r in runs if r["host"] == host]
                    + [(r["ended_ms"], -1) for r in runs if r["host"] == host])
    now = best = 0
    for _, delta in events:
        now += delta
        best = max(best, now)
    return best


def measure(inventory: Path, shards: int) -> dict[str, Any]:
    from hostctl.jobs import hostside as H
    from hostctl.jobs import ops
    from hostctl.jobs import plan as P
    from hostctl.validate import load_site

    t0 = time.monotonic()
    res = hostctl(inventory, "run", "bench-shard", "--shards", str(shards), "--json",
                  module="hostctl.jobs")
    wall = time.monotonic() - t0
    if res.returncode != 0:
        raise SystemExit(f"run failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    report = json.loads(res.stdout)
    runs = report["runs"]
    site = load_site(str(inventory))
    w = P.find_job(site, "bench-shard")
    from hostctl.hosts.session import session

    hosts = [h.name for h in P.job_hosts(site, w)]
    with session(site, hosts) as run:
        seen = ops.read_hosts(site, run.runners, install=False, select=(H.ACTIVE,))
    totals = {h: P.room(hj, w).total for h, hj in seen.items() if isinstance(hj, H.HostJobs)}
    first_submit = min(r["submitted_ms"] for r in runs)
    last_end = max(r["ended_ms"] for r in runs)
    run_time = sum(r["ended_ms"] - r["started_ms"] for r in runs) / 1000
    waits = overheads(runs, totals)
    host_span = (last_end - first_submit) / 1000
    fixed = max(0.0, wall - host_span)  # connect, read, ... and the final summary
    # With every slot busy the run would take sum(container time) / slots: what the wall
    # clock shows beyond that, per shard, is what hostctl (and systemd) cost on top.
    slots = sum(totals.values()) or 1
    amortized = (wall - run_time / slots) / len(runs)
    return {
        "overhead_per_shard_wall_s": round(amortized, 3),
        "shards": shards, "wall_s": round(wall, 2), "hosts_span_s": round(host_span, 2),
        "fixed_s": round(fixed, 2), "container_s_total": round(run_time, 2),
        "container_s_mean": round(run_time / len(runs), 2),
        "queue_wait_s_mean": round(sum(waits) / len(waits), 3),
        "queue_wait_s_max": round(max(waits), 3),
        "start_latency_per_shard_s": round(sum(waits) / len(waits) + fixed / len(runs), 3),
        "capacity": totals,
        "peak_running": {h: peak(runs, h) for h in totals},
        "ok": report["ok"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shards", type=int, default=50)
    ap.add_argument("--sleep", type=float, default=2.0)
    ap.add_argument("--inventory", type=Path, help="An inventory of booted sandbox hosts.")
    args = ap.parse_args()
    if args.inventory:
        figures = prepare_and_measure(args.inventory, args)
    else:
        from hostctl.sandbox import hosts
        from hostctl.sandbox.locking import file_lock
        from tests.rigs.sandbox_hosts import STANDARD_HOSTS

        state = Path(tempfile.mkdtemp(prefix="hostctl-bench-"))
        with file_lock("session", timeout=1800, on_wait="waiting for the sandbox hosts"):
            try:
                booted = hosts.up(STANDARD_HOSTS, state)
                from hostctl.cli.sandbox import write_inventory

                inventory = write_inventory(None, booted, state)
                figures = prepare_and_measure(inventory, args)
            finally:
                hosts.down(state)
    print(json.dumps(figures, indent=2))


def prepare_and_measure(inventory: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Write the bench job into the inventory's specs, deploy it, measure a run."""
    import yaml

    from hostctl.sandbox import app_image

    app_image.build("1.0")
    data = yaml.safe_load(inventory.read_text())
    specs = Path(tempfile.mkdtemp(prefix="hostctl-bench-specs-"))
    (specs / "specs").mkdir()
    (specs / "specs" / "bench.yml").write_text(SPEC.format(sleep=args.sleep))
    data["specs"] = [str(specs / "specs" / "*.yml")]
    data.pop("gateway", None)
    data["image_source"] = "push"
    bench_inv = specs / "bench-inventory.yml"
    bench_inv.write_text(yaml.safe_dump(data, sort_keys=False))
    res = subprocess.run([sys.executable, "-m", "hostctl", "deploy", "-i", str(bench_inv),
                          "--yes"], capture_output=True, text=True, timeout=600, cwd=REPO)
    if res.returncode != 0:
        raise SystemExit(f"deploy failed:\n{res.stdout}\n{res.stderr}")
    try:
        return measure(bench_inv, args.shards)
    finally:
        shutil.rmtree(specs, ignore_errors=True)


if __name__ == "__main__":
    main()
