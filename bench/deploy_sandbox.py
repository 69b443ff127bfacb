"""Issue 3's budget, measured on 3 sandbox hosts with 20 services each:
first deploy, no-op deploy (< 1.5 s wall, <= 2 SSH round trips per host), one changed
service (one restart and its health wait), and the controller's peak memory.

Run: python bench/deploy_sandbox.py   (needs root and a Docker engine; boots sandbox hosts,
taking turns with test sessions through the rig's session lock, and removes them after)

With `--against DIR` (another checkout of hostctl, e.g. `git worktree add /tmp/base main`) it
then compares the two on the same hosts, alternating A and B ROUNDS times so that the load
of a shared machine falls on both alike: a first deploy with the images already on the
hosts (each preceded by removing everything hostctl put there) and one changed service;
medians per checkout.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.sandbox_session import booted, service_specs, write_bench_site
from hostctl.sandbox import app_image
from hostctl.sandbox.models import SandboxHost

HOSTS = ("edge-1", "app-1", "gpu-1")
PER_HOST = 20
ROUNDS = 3
HERE = Path(__file__).resolve().parents[1]
# Everything a deploy leaves on a host, images and the sandbox's own files aside: after it,
# the next deploy is a first deploy again.
TEARDOWN = (
    "units=$(cd /etc/systemd/system && ls -1 hostctl-*.service hostctl-*.timer 2>/dev/null); "
    "[ -z \"$units\" ] || systemctl stop $units; "
    "rm -f /etc/systemd/system/hostctl-*; rm -rf /etc/hostctl /var/lib/hostctl "
    "/usr/local/lib/hostctl; systemctl daemon-reload; systemctl reset-failed; "
    "docker rm -f $(docker ps -aq --filter label=io.hostctl.managed=true) >/dev/null 2>&1; "
    "docker network rm $(docker network ls -q --filter label=io.hostctl.managed=true) "
    ">/dev/null 2>&1; true"
)


def write_site(root: Path) -> Path:
    return write_bench_site(root, HOSTS, service_specs(HOSTS, PER_HOST))


def deploy(inventory: Path, tree: Path = HERE) -> tuple[float, dict[str, object], int]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "hostctl", "deploy", "-i", str(inventory),
                          "--yes", "--json"], capture_output=True, text=True, timeout=600,
                         env=env, cwd=tree)  # `-m` puts the working directory first on the path
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"deploy failed:\n{res.stdout}\n{res.stderr}")
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, json.loads(res.stdout), peak_kib


def teardown(booted: list[SandboxHost]) -> None:
    for h in booted:
        subprocess.run(["docker", "exec", h.container_name, "sh", "-c", TEARDOWN],
                       check=True, capture_output=True, timeout=300)


def compare(inv: Path, spec: Path, booted: list[SandboxHost], against: Path) -> None:
    """First deploys (images on the hosts) and one changed service, A and B alternately."""
    trees = {"this": HERE, "against": against}
    firsts: dict[str, list[float]] = {k: [] for k in trees}
    changed: dict[str, list[float]] = {k: [] for k in trees}
    for r in range(ROUNDS):
        for name, tree in trees.items():
            teardown(booted)
            wall, out, _ = deploy(inv, tree)
            firsts[name].append(wall)
            hosts = out["hosts"]
            assert isinstance(hosts, dict)
            assert all(v["status"] == "deployed" for v in hosts.values()), hosts
            text = spec.read_text()  # main() changed svc-7 to N: 7-changed
            spec.write_text(text.replace("N: 7-changed}", f"N: 7-{name}-{r}}}", 1))
            wall, _, _ = deploy(inv, tree)
            changed[name].append(wall)
            spec.write_text(text)
    for name, tree in trees.items():
        print(f"{name} ({tree}): first deploy, images on the hosts: median "
              f"{statistics.median(firsts[name]):.2f}s {_runs(firsts[name])}; one service "
              f"changed: median {statistics.median(changed[name]):.2f}s "
              f"{_runs(changed[name])}")


def _runs(walls: list[float]) -> str:
    return "(" + ", ".join(f"{w:.2f}" for w in walls) + ")"


def main() -> None:
    against = Path(sys.argv[sys.argv.index("--against") + 1]).resolve() \
        if "--against" in sys.argv else None
    app_image.build("1.0")
    with booted(HOSTS, write_site) as site:
        inv = Path(site.inventory)
        hosts_booted = list(site.hosts.values())
        first, out, peak = deploy(inv)
        print(f"first deploy ({len(HOSTS)} hosts x {PER_HOST} services, image push "
              f"included): {first:.2f}s")
        noops = []
        trips = {}
        for _ in range(5):
            wall, out, peak = deploy(inv)
            noops.append(wall)
            hosts = out["hosts"]
            assert isinstance(hosts, dict)
            assert all(v["status"] == "unchanged" for v in hosts.values()), hosts
            trips = {h: v["round_trips"] for h, v in hosts.items()}
        print(f"no-op deploy: median {statistics.median(noops):.2f}s, best "
              f"{min(noops):.2f}s (target < 1.5 s); SSH round trips per host: {trips} "
              "(target <= 2)")
        spec = site.root / "specs" / "bench.yml"
        spec.write_text(spec.read_text().replace("N: 7}", "N: 7-changed}", 1))
        wall, out, peak = deploy(inv)
        hosts = out["hosts"]
        assert isinstance(hosts, dict)
        counts = {h: v["counts"] for h, v in hosts.items() if v["status"] != "unchanged"}
        print(f"one service changed: {wall:.2f}s; changed hosts and counts: {counts}")
        print(f"controller peak RSS: {peak / 1024:.0f} MiB (largest hostctl process)")
        if against is not None:
            compare(inv, spec, hosts_booted, against)


if __name__ == "__main__":
    os.environ.setdefault("NO_COLOR", "1")
    main()
