"""Where a first deploy's CPU goes on the hosts: per process name, on every sandbox host.

A first deploy of 3 hosts x 20 services is bound by this machine's cores (the sandbox hosts
share them). This takes every host's processes' CPU time (their own, and that of the children
they reaped: e.g. dockerd's iptables runs, systemd's ExecStartPre processes, sshd's sessions,
where hostctl's scripts run) before and after one first deploy (image push included), and
prints the difference summed over the hosts, largest first, with the controller's own CPU.

Run: python bench/first_deploy_cpu.py [--hosts N] [--per-host M]
(needs root and a Docker engine; boots the sandbox hosts, taking turns with test sessions
through the rig's session lock, and removes them after)
"""

from __future__ import annotations

import collections
import os
import time
from concurrent.futures import ThreadPoolExecutor

from bench.sandbox_session import (
    arg,
    booted,
    host_names,
    on_host,
    service_specs,
    write_bench_site,
)
from bench.speed_sandbox import HERE, measured
from hostctl.sandbox import app_image
from hostctl.sandbox.models import SandboxHost

# Per process name: clock ticks of its own and of its reaped children, every process once.
SNAPSHOT = r"""
for p in /proc/[0-9]*; do
  s=$(cat $p/stat 2>/dev/null) || continue
  comm=${s#*(}; comm=${comm%%)*}
  set -- ${s##*) }
  echo "$comm ${12} ${13} ${14} ${15}"
done | awk '{own[$1] += $2 + $3; kids[$1] += $4 + $5}
  END {for (k in own) printf "%s\t%d\t%d\n", k, own[k], kids[k]}'
"""


def snapshot(host: SandboxHost) -> dict[str, tuple[int, int]]:
    out = on_host(host, SNAPSHOT, timeout=60)
    found = {}
    for line in out.splitlines():
        name, own, kids = line.rsplit("\t", 2)
        found[name] = (int(own), int(kids))
    return found


def main() -> None:
    n_hosts = int(arg("--hosts", "3"))
    per_host = int(arg("--per-host", "20"))
    names = host_names(n_hosts)
    app_image.build("1.0")
    tick = os.sysconf("SC_CLK_TCK")
    with booted(names, lambda root: write_bench_site(root, names, service_specs(names,
                                                                                per_host))) as rig:
        hosts = list(rig.hosts.values())
        time.sleep(5)  # the hosts' own boot has settled
        with ThreadPoolExecutor(len(hosts)) as pool:
            before = list(pool.map(snapshot, hosts))
        wall, controller, _, _ = measured(HERE, "deploy", "-i", rig.inventory, "--yes")
        with ThreadPoolExecutor(len(hosts)) as pool:
            after = list(pool.map(snapshot, hosts))
    spent: collections.Counter[str] = collections.Counter()
    for b, a in zip(before, after, strict=True):
        for name, (own, kids) in a.items():
            was_own, was_kids = b.get(name, (0, 0))
            # a process born during the deploy has all its time in it
            spent[f"{name} (own)"] += own - was_own if name in b else own
            spent[f"{name} (reaped children)"] += kids - was_kids
    total = sum(v for v in spent.values() if v > 0) / tick
    print(f"first deploy, {n_hosts} hosts x {per_host} services (image push): {wall:.2f}s; "
          f"CPU on the hosts {total:.1f}s; hostctl's controller "
          f"{controller:.2f}s")
    for name, ticks in spent.most_common():
        if ticks / tick >= 0.05:
            print(f"  {ticks / tick:6.2f}s  {name}")


if __name__ == "__main__":
    main()
