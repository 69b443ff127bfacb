"""Issue 14's latency figures on sandbox hosts: no-op deploy (wall, controller CPU, peak
memory, SSH round trips per host), `hostctl status`, and `hostctl run JOB --wait` of a job
that exits at once (wall, and how long after the command its container started).

Run: python bench/speed_sandbox.py [--hosts N] [--per-host M] [--rounds R] [--against DIR]
     [--settle SECONDS] [--profile FILE] [--persist SECONDS]
(needs root and a Docker engine; boots N sandbox hosts (default 3) with M services each
(default 20), taking turns with test sessions through the rig's session lock, and removes
them after). The figures are taken once the first deploy has settled (--settle, default
20 s: the new containers' own start-up is the rig's load, not hostctl's). With `--against
DIR` (another checkout of hostctl) each round runs this tree and DIR alternately on the
same hosts, so a shared machine's load falls on both alike; medians per checkout.
`--profile FILE` also writes a cProfile of one no-op deploy (this tree) and times the facts
script on the first host (`time sh`). `--persist SECONDS` also measures this tree with the
inventory's `ssh.persist` set (kept connections, "this+persist"): its figures are taken with
the connections kept from the round before, and the connection keeper's own CPU is reported
beside the controller's; "cold" is one no-op deploy that had to start the keeper.

The job's start: the job writes the host kernel's /proc/uptime (the sandbox hosts share this
machine's kernel) to its project's artifacts volume; the bench reads /proc/uptime just
before starting the command.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import yaml

from bench.sandbox_session import arg, booted, host_names, service_specs, write_bench_site
from hostctl.runner.persist_client import keeper_call, stop_keeper
from hostctl.sandbox import app_image
from hostctl.sandbox.locking import file_lock
from hostctl.sandbox.models import SandboxHost

HERE = Path(__file__).resolve().parents[1]
ARTIFACTS = "/var/lib/docker/volumes/hostctl-bench-artifacts/_data"


def write_site(root: Path, hosts: list[str], per_host: int) -> Path:
    docs = service_specs(hosts, per_host)
    docs.append("kind: job\nname: quick\nproject: bench\nimage: hostctl-demo-app:1.0\n"
                "command: [sh, -c, 'cat /proc/uptime >> /artifacts/started']\n"
                f"placement: {{hosts: [{hosts[0]}]}}\n")
    return write_bench_site(root, hosts, docs)


def tree_env(tree: Path) -> dict[str, str]:
    """hostctl from `tree`, as installed: with bytecode caches (an installed hostctl has
    its .pyc files; compiling ~120 modules from source on every run would be most of what
    is measured)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def compile_trees(trees: Iterable[Path]) -> None:
    """Compile each tree's hostctl once, before any figure is taken (see tree_env)."""
    for tree in set(trees):
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "hostctl")],
                       env=tree_env(tree), check=True, capture_output=True)


def measured(tree: Path, *args: str) -> tuple[float, float, int, str]:
    """Run hostctl from `tree` (its own folder as the working directory too: `-m` puts the
    working directory first on the path): wall seconds, CPU seconds (user + system), peak
    RSS KiB and stdout (the child reaped here, so its own rusage is known). Raises on a
    non-zero exit."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "hostctl", *args], cwd=tree,
                                env=tree_env(tree), stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text = out.read().decode()
        if proc.returncode != 0:
            raise SystemExit(f"hostctl {' '.join(args)} failed:\n{text}\n{err.read().decode()}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, text


def uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def machine_cpu() -> float:
    """CPU seconds every process of this machine has spent (user, nice, system: the
    first line of /proc/stat, in clock ticks)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:4]]
    return sum(ticks) / os.sysconf("SC_CLK_TCK")


def job_start(host: SandboxHost) -> float:
    res = subprocess.run(["docker", "exec", host.container_name, "sh", "-c",
                          f"tail -n 1 {ARTIFACTS}/started"], capture_output=True, text=True,
                         check=True, timeout=60)
    return float(res.stdout.split()[0])


# Runs a script N times on a sandbox host and says what that cost, per run: the script's own
# processes (bash's `time`), and what it made the host's systemd (PID 1) and dockerd do.
_HOST_CPU = r"""
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
tk=$(getconf CLK_TCK); d=$(pidof dockerd)
p1=$(cpu 1); d1=$(cpu $d)
TIMEFORMAT="%U %S"
t=$( { time (for i in $(seq $N); do sh /tmp/bench-script.sh >/dev/null 2>&1; done); } 2>&1 )
p2=$(cpu 1); d2=$(cpu $d)
echo $t | awk -v n=$N -v p=$((p2-p1)) -v d=$((d2-d1)) -v tk=$tk '{
  printf "script %.1f ms, ", ($1+$2)*1000/n
  printf "systemd %.1f ms, dockerd %.1f ms\n", p*1000/tk/n, d*1000/tk/n }'
"""


def host_cpu_per_run(host: SandboxHost, script: str, n: int) -> str:
    subprocess.run(["docker", "exec", "-i", host.container_name, "sh", "-c",
                    "cat > /tmp/bench-script.sh"], input=script, text=True, check=True,
                   timeout=60)
    return subprocess.run(["docker", "exec", "-e", f"N={n}", host.container_name, "bash",
                           "-c", _HOST_CPU], capture_output=True, text=True, check=True,
                          timeout=600).stdout.strip()


def med(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} (" + ", ".join(
        f"{v:.2f}" for v in values) + ")"


def main() -> None:
    rounds = int(arg("--rounds", "5"))
    against = Path(arg("--against", "")).resolve() if "--against" in sys.argv else None
    profile = arg("--profile", "")
    persist = arg("--persist", "")
    trees = {"this": HERE, **({"this+persist": HERE} if persist else {}),
             **({"against": against} if against is not None else {})}
    # --hosts 3,10 --per-host 20,2: one sandbox after the other, in one turn of the lock
    shapes = list(zip([int(n) for n in arg("--hosts", "3").split(",")],
                      [int(n) for n in arg("--per-host", "20").split(",")], strict=True))
    app_image.build("1.0")
    compile_trees(trees.values())
    with tempfile.TemporaryDirectory(prefix="keep", dir="/tmp") as keep:
        # the keeper's folder: the bench's own (its children inherit it)
        os.chmod(keep, 0o700)
        os.environ["HOSTCTL_PERSIST_DIR"] = keep
        try:
            with file_lock("session", timeout=3600, on_wait="waiting for the sandbox"):
                for n_hosts, per_host in shapes:
                    measure(n_hosts, per_host, rounds, trees, profile, persist)
                    profile = ""
        finally:
            stop_keeper()


def persist_inventory(inventory: str, persist: str) -> str:
    """A copy of `inventory` with `ssh.persist` set."""
    data = yaml.safe_load(Path(inventory).read_text())
    data["ssh"]["persist"] = persist
    out = Path(inventory).with_name("persist.yml")
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(out)


def keeper_cpu() -> float:
    """CPU seconds the connection keeper has spent so far (0 without one)."""
    reply = keeper_call(Path(os.environ["HOSTCTL_PERSIST_DIR"]), {"op": "stats"})
    if reply is None:
        return 0.0
    fields = Path(f"/proc/{reply['pid']}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(n_hosts: int, per_host: int, rounds: int, trees: dict[str, Path],
            profile: str, persist: str) -> None:
    hosts = host_names(n_hosts)
    with booted(hosts, lambda root: write_site(root, hosts, per_host), locked=False) as rig:
        first = rig.hosts[hosts[0]]
        inv = rig.inventory
        inventories = {name: persist_inventory(inv, persist) if name == "this+persist"
                       else inv for name in trees}
        busy = machine_cpu()
        wall, cpu, _, _ = measured(HERE, "deploy", "-i", inv, "--yes", "--json")
        busy = machine_cpu() - busy
        # What the whole machine (every sandbox host's systemd, Docker and containers)
        # spent, against hostctl's own part: where a first deploy's time goes.
        print(f"{n_hosts} hosts x {per_host} services; first deploy (image push): "
              f"{wall:.2f}s; CPU of the whole machine {busy:.1f}s over "
              f"{os.cpu_count()} cores, of it hostctl's controller {cpu:.2f}s", flush=True)
        # The new containers' own start-up (their first health checks, the probe timer)
        # is the rig's load, not hostctl's: let it pass before the figures.
        time.sleep(float(arg("--settle", "20")))
        figures: dict[str, dict[str, list[float]]] = {
            k: {"noop": [], "cpu": [], "rss": [], "status": [], "run": [], "start": [],
                "keeper": []} for k in trees}
        trips: dict[str, object] = {}
        if persist:
            stop_keeper()
            cold = measured(HERE, "deploy", "-i", inventories["this+persist"], "--yes",
                            "--json")[0]
        for _ in range(rounds):
            for name, tree in trees.items():
                f = figures[name]
                variant = inventories[name]
                kept = keeper_cpu()
                wall, cpu, rss, out = measured(tree, "deploy", "-i", variant, "--yes",
                                               "--json")
                f["keeper"].append(keeper_cpu() - kept)
                res = json.loads(out)["hosts"]
                assert all(v["status"] == "unchanged" for v in res.values()), res
                trips[name] = sorted({v["round_trips"] for v in res.values()})
                f["noop"].append(wall)
                f["cpu"].append(cpu)
                f["rss"].append(rss / 1024)
                wall, cpu, rss, _ = measured(tree, "status", "-i", variant)
                f["status"].append(wall)
                f["rss"].append(rss / 1024)
                t0 = uptime()
                wall, cpu, rss, _ = measured(tree, "run", "-i", variant, "quick", "--wait")
                f["run"].append(wall)
                f["start"].append(job_start(first) - t0)
                f["rss"].append(rss / 1024)
        for name, tree in trees.items():
            f = figures[name]
            print(f"{name} ({tree}):\n"
                  f"  no-op deploy wall {med(f['noop'])}\n"
                  f"  no-op deploy controller CPU {med(f['cpu'])}\n"
                  f"  SSH round trips per host (no-op): {trips[name]}\n"
                  f"  status wall {med(f['status'])}\n"
                  f"  run quick --wait wall {med(f['run'])}\n"
                  f"  run: container started after {med(f['start'])}\n"
                  f"  controller peak RSS {max(f['rss']):.0f} MiB", flush=True)
            if name == "this+persist":
                print(f"  connection keeper's CPU per no-op deploy {med(f['keeper'])}\n"
                      f"  cold (the keeper started by the deploy) no-op wall {cold:.2f}",
                      flush=True)
        if profile:
            env = tree_env(HERE)
            subprocess.run([sys.executable, "-m", "cProfile", "-o", profile, "-m",
                            "hostctl", "deploy", "-i", inv, "--yes", "--json"], env=env,
                           cwd=HERE,
                           check=True, capture_output=True, timeout=600)
            for name, tree in trees.items():
                script = subprocess.run(
                    # As a no-op deploy sends it: no file differs (a checkout from
                    # before `expected` sends every public file instead)
                    [sys.executable, "-c", "import inspect\n"
                     "from hostctl.hosts.facts import facts_script as f\n"
                     "kw = {'expected': {}} if 'expected' in "
                     "inspect.signature(f).parameters else {}\n"
                     "print(f('docker', None, runtimes=False, **kw), end='')"],
                    env=tree_env(tree), cwd=tree, capture_output=True,
                    text=True, check=True).stdout
                for _ in range(3):
                    res = subprocess.run(
                        ["docker", "exec", "-i", first.container_name, "bash", "-c",
                         "time sh >/dev/null"], input=script, capture_output=True,
                        text=True, timeout=120)
                    print(f"{name}: facts script on {hosts[0]}:",
                          " ".join(res.stderr.split()))
                print(f"{name}: facts script on {hosts[0]}, CPU per run (20 runs):",
                      host_cpu_per_run(first, script, 20))


if __name__ == "__main__":
    os.environ.setdefault("NO_COLOR", "1")
    main()
