"""Issue 13's budget: what admission by quota adds to `hostctl run`, on 3 sandbox hosts with
50 runs already waiting for the quota (< 0.3 s per run).

Two jobs alike in every way but their project: `held` in project `capped` (its quota full:
one long run admitted, the rest held), `free` in project `open` (not listed: no admission).
Each measurement is the real `hostctl run JOB` in a subprocess (Python's start, the
inventory, SSH, the submit), median of 5 after a warm-up; the overhead is the difference of
the medians. With the quota, a run takes the fleet lock on the ledger host, settles the
project on the three hosts (their 50+ waiting runs read and ordered), grants, and releases.

Run: python -m bench.admission_sandbox   (needs root and a Docker engine; boots sandbox
hosts, taking turns with test sessions through the rig's session lock, removes them after)
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.sandbox_session import booted
from hostctl.sandbox import app_image

HOSTS = ("edge-1", "app-1", "gpu-1")
QUEUED = 50
REPEAT = 5
JOB = ("kind: job\nname: {name}\nproject: {project}\nimage: hostctl-demo-app:1.0\n"
       "command: [sh, -c, 'sleep 600']\nresources: {{cpus: 0.1}}\nstop_timeout: 1s\n")


def write_site(root: Path) -> Path:
    (root / "specs").mkdir(parents=True)
    (root / "specs" / "jobs.yml").write_text("---\n".join(
        JOB.format(name=n, project=p) for n, p in (("held", "capped"), ("free", "open"))))
    inv = root / "site.yml"
    inv.write_text("site: bench\nhosts:\n" + "".join(
        f"  {h}: {{address: 10.9.9.{i + 1}}}\n" for i, h in enumerate(HOSTS))
        + "specs: [specs/*.yml]\nimage_source: push\n"
        + "projects:\n  ledger_host: app-1\n  capped: {cpus: 0.1}\n")
    return inv


def hostctl(*args: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "hostctl", *args], capture_output=True,
                         text=True, timeout=300)
    took = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"hostctl {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}")
    return took, res.stdout


def median_run(inv: str, job: str) -> tuple[float, float]:
    hostctl("run", "-i", inv, job)  # warm-up, not counted
    times = [hostctl("run", "-i", inv, job)[0] for _ in range(REPEAT)]
    return statistics.median(times), min(times)


def main() -> None:
    app_image.build("1.0")
    with booted(HOSTS, write_site) as site:
        inv = site.inventory
        hostctl("deploy", "-i", inv, "--yes")
        # One run takes the whole quota; QUEUED more wait for it.
        for _ in range(QUEUED + 1):
            hostctl("run", "-i", inv, "held")
        _, listing = hostctl("jobs", "-i", inv)
        waiting = listing.count("waits for its project's quota")
        with_quota, best_q = median_run(inv, "held")
        without, best_f = median_run(inv, "free")
        print(f"hostctl run with a quota ({waiting} runs waiting over {len(HOSTS)} hosts): "
              f"median {with_quota:.2f}s, best {best_q:.2f}s")
        print(f"hostctl run without (project not listed): median {without:.2f}s, best "
              f"{best_f:.2f}s")
        print(f"admission overhead per run: {with_quota - without:.2f}s (target < 0.3 s)")


if __name__ == "__main__":
    os.environ.setdefault("NO_COLOR", "1")
    main()
