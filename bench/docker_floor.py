"""The floor under a first deploy on sandbox hosts: Docker alone starting the same containers.

A first deploy of 3 hosts x 20 services (bench/deploy_sandbox.py) starts 60 containers inside
the sandbox hosts' own Docker engines, all on this machine's cores. This starts the same
containers without hostctl or systemd: per host, M `docker run -d` at once, with what each
unit's `docker run` has that costs Docker work (a project network, hostctl's log driver
option, a published port), then waits until every container answers /health from inside its host, as
the deploy's health gate does. The wall time, median of ROUNDS (fresh containers each round,
the images already on the hosts), is what no deployment tool could beat on this machine.

With --units, the same containers run as hostctl runs them, without hostctl: each in a
systemd unit of a deployed unit's shape (`docker rm -f` before, the `docker run` client
attached in the foreground, `docker rm -f` after), written by hand, one daemon-reload and
one `systemctl start` of them all. Its time less Docker's alone is what wrapping each
container in systemd costs; a first deploy's time less this one is hostctl's own.

Run: python bench/docker_floor.py [--hosts N] [--per-host M] [--rounds R] [--units]
(needs root and a Docker engine; boots the sandbox hosts, taking turns with test sessions
through the rig's session lock, and removes them after)
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from bench.sandbox_session import arg, booted, host_names, on_host, write_bench_site
from bench.speed_sandbox import machine_cpu
from hostctl.sandbox import app_image
from hostctl.sandbox import hosts as sandbox_hosts

IMAGE = "hostctl-demo-app:1.0"


RUN = ("--rm --name floor-$i --network floor --log-driver none --env PORT=8080 "
       f"--publish $((30000 + i)):8080/tcp {IMAGE}")

# A deployed service unit's shape (units/service.unit.j2), without hostctl's labels.
UNIT = """[Unit]
After=docker.service
Requires=docker.service
[Service]
Type=exec
ExecStartPre=-/usr/bin/docker rm -f floor-$i
ExecStart=/usr/bin/docker run RUN
ExecStop=/usr/bin/docker stop -t 10 floor-$i
ExecStopPost=-/usr/bin/docker rm -f floor-$i
KillMode=mixed
SuccessExitStatus=143
"""


def start_script(per_host: int, units: bool = False) -> str:
    """Start `per_host` containers at once (`docker run -d` each, or, with `units`, one
    `systemctl start` of a unit per container), then poll each one's /health (0.1 s apart,
    at most 60 s in all) until it answers; exit 1 if one never did."""
    if units:
        start = [
            f"for i in $(seq 0 {per_host - 1}); do",
            "  cat > /etc/systemd/system/floor-$i.service <<EOF",
            UNIT.replace("RUN", RUN).rstrip("\n"),
            "EOF",
            "done",
            "systemctl daemon-reload",
            f"systemctl start $(for i in $(seq 0 {per_host - 1}); do echo floor-$i; done)",
        ]
    else:
        start = [
            f"for i in $(seq 0 {per_host - 1}); do",
            f"  docker run -d {RUN} >/dev/null &",
            "done",
            "wait",
        ]
    return "\n".join([
        "docker network create floor >/dev/null 2>&1",
        *start,
        "end=$(($(date +%s) + 60))",
        f"for i in $(seq 0 {per_host - 1}); do",
        "  until curl -fsS -o /dev/null --max-time 1 http://127.0.0.1:$((30000 + i))/health"
        " 2>/dev/null; do",
        "    [ $(date +%s) -ge $end ] && exit 1",
        "    sleep 0.1",
        "  done",
        "done",
    ]) + "\n"


REMOVE = ("systemctl stop 'floor-*.service' 2>/dev/null; "
          "rm -f /etc/systemd/system/floor-*.service; systemctl daemon-reload; "
          "docker rm -f $(docker ps -aq --filter name=floor-) >/dev/null 2>&1; "
          "docker network rm floor >/dev/null 2>&1; true")


def main() -> None:
    n_hosts = int(arg("--hosts", "3"))
    per_host = int(arg("--per-host", "20"))
    rounds = int(arg("--rounds", "3"))
    units = "--units" in sys.argv
    names = host_names(n_hosts)
    app_image.build("1.0")
    with booted(names, lambda root: write_bench_site(root, names, [])) as rig:
        hosts = list(rig.hosts.values())
        with ThreadPoolExecutor(len(hosts)) as pool:
            list(pool.map(lambda h: sandbox_hosts.load_image(h, IMAGE), hosts))
        walls, cpus = [], []
        for _ in range(rounds):
            time.sleep(5)  # the last round's removal has settled
            busy = machine_cpu()
            t0 = time.perf_counter()
            with ThreadPoolExecutor(len(hosts)) as pool:
                list(pool.map(lambda h: on_host(h, start_script(per_host, units)), hosts))
            walls.append(time.perf_counter() - t0)
            cpus.append(machine_cpu() - busy)
            with ThreadPoolExecutor(len(hosts)) as pool:
                list(pool.map(lambda h: on_host(h, REMOVE), hosts))
    how = "as systemd units of hostctl's shape" if units else "by Docker alone"
    print(f"{n_hosts} hosts x {per_host} containers started at once {how}, "
          f"answering /health: median {statistics.median(walls):.2f}s ("
          + ", ".join(f"{w:.2f}" for w in walls) + f"); CPU of the whole machine: median "
          f"{statistics.median(cpus):.1f}s over {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
