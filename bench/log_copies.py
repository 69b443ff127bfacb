"""What a chatty container costs its host, by Docker log driver, in hostctl's unit shape.

A deployed unit runs `docker run` attached in the foreground, so systemd journals what the
container prints as the unit's own. With Docker's journald driver as well (what hostctl
wrote before it chose `--log-driver none` for sites without a logging section), dockerd
writes every line to the journal a second time. This runs, on one sandbox host, a unit whose
attached container prints LINES lines (`seq`), with each driver in turn, ROUNDS times, and
prints per driver the medians of: the wall time of the unit, the CPU that dockerd, journald
and containerd spent on it, and how many of the lines the journal kept as the unit's and as
Docker's (journald's rate limit is lifted on that host for the run, so it drops nothing for
rate; what it drops is what its size limit rotates out).

Run: python bench/log_copies.py [--lines N] [--rounds R]
(needs root and a Docker engine; boots one sandbox host, taking turns with test sessions
through the rig's session lock, and removes it after)
"""

from __future__ import annotations

import statistics
import subprocess

from bench.sandbox_session import arg, booted, on_host, write_bench_site
from hostctl.sandbox import app_image
from hostctl.sandbox import hosts as sandbox_hosts

IMAGE = "hostctl-demo-app:1.0"
DRIVERS = ("journald", "none")

PREPARE = """
mkdir -p /etc/systemd/journald.conf.d
printf '[Journal]\\nRateLimitIntervalSec=0\\n' > /etc/systemd/journald.conf.d/bench.conf
systemctl restart systemd-journald
"""

# One round with one driver: clock ticks of dockerd+journald+containerd, the wall time in
# ms, and the journal entries of the unit and of Docker's copy, one line.
ROUND = """
cpu() {{ for p in $(pidof dockerd) $(pidof systemd-journald) $(pidof containerd); do
  cut -d' ' -f14-17 /proc/$p/stat; done | awk '{{s += $1 + $2 + $3 + $4}} END {{print s}}'; }}
journalctl --rotate >/dev/null 2>&1; journalctl --vacuum-files=1 >/dev/null 2>&1
before=$(cpu); t0=$(date +%s%N)
systemd-run --quiet --wait --collect --unit={unit} -p Type=exec /usr/bin/docker run --rm \\
  --name {unit} --log-driver {driver} --entrypoint seq {image} {lines}
t1=$(date +%s%N); sleep 1; after=$(cpu)
echo $((after - before)) $(( (t1 - t0) / 1000000 )) \\
  $(journalctl -u {unit} -o cat --no-pager | grep -c '^[0-9]*$') \\
  $(journalctl CONTAINER_NAME={unit} -o cat --no-pager | grep -c '^[0-9]*$')
"""


def main() -> None:
    lines = int(arg("--lines", "50000"))
    rounds = int(arg("--rounds", "3"))
    app_image.build("1.0")
    with booted(["node-1"], lambda root: write_bench_site(root, ["node-1"], [])) as rig:
        host = rig.hosts["node-1"]
        sandbox_hosts.load_image(host, IMAGE)
        on_host(host, PREPARE)
        got: dict[str, list[list[int]]] = {d: [] for d in DRIVERS}
        for r in range(rounds):
            for driver in DRIVERS:
                out = on_host(host, ROUND.format(unit=f"chatty-{driver}-{r}", driver=driver,
                                                 image=IMAGE, lines=lines), timeout=600)
                got[driver].append([int(word) for word in out.split()])
    hz = int(subprocess.run(["getconf", "CLK_TCK"], capture_output=True, text=True,
                            check=True).stdout)
    print(f"a unit whose attached container prints {lines} lines, medians of {rounds}:")
    for driver, runs in got.items():
        ticks, wall, unit, docker = (statistics.median(col) for col in zip(*runs, strict=True))
        print(f"  --log-driver {driver}: wall {wall / 1000:.2f}s; dockerd+journald+"
              f"containerd CPU {ticks / hz:.2f}s; lines the journal kept: {unit:.0f} as the "
              f"unit's, {docker:.0f} as Docker's")


if __name__ == "__main__":
    main()
