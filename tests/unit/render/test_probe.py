"""The continuous health probe, run for real under sh with fake systemctl, docker and curl.

The fakes keep their world in files under a temp folder: a unit's ActiveState and
ActiveEnterTimestamp, a container's address and whether it answers. `date +%s` is faked
too (FAKE_NOW), so intervals and back-off are checked without sleeping.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

from hostctl import layout as L
from hostctl.render import probe as P
from hostctl.render.probe import HealthProbe
from hostctl.validate import load_site

REPO = Path(__file__).resolve().parents[3]
REAL_DATE = shutil.which("date") or "/bin/date"

FAKES = {
    # `systemctl show -p ... -- UNIT...`: a block of the asked properties per unit, blocks
    # apart by a blank line (as systemd prints them; Id included when asked)
    "systemctl": r"""#!/bin/sh
W=$FAKE_WORLD
case $1 in
  show)
    echo "$*" >> "$W/calls"
    while [ "$1" != -- ]; do shift; done; shift
    first=1
    for u; do
      [ $first = 1 ] || echo; first=0
      echo "Id=$u"
      echo "ActiveState=$(cat "$W/units/$u.active" 2>/dev/null || echo inactive)"
      echo "ActiveEnterTimestamp=$(cat "$W/units/$u.entered" 2>/dev/null)"
    done ;;
  restart)
    for u; do :; done
    echo "$FAKE_NOW $u" >> "$W/restarts"
    echo "@$FAKE_NOW" > "$W/units/$u.entered" ;;
  *) exit 1 ;;
esac
""",
    # `docker inspect -f FORMAT NAME...`: FORMAT rendered per container that exists (the
    # probe's one format: name, running, health or none, addresses), an error for the others
    "docker": r"""#!/bin/sh
W=$FAKE_WORLD
[ "$1" = inspect ] && [ "$2" = -f ] || exit 1
echo "$*" >> "$W/calls"
shift 2; shift
rc=0
for c; do
  if [ ! -f "$W/containers/$c.ip" ]; then echo "Error: No such object: $c" >&2; rc=1; continue; fi
  running=$(cat "$W/containers/$c.running" 2>/dev/null || echo true)
  health=$(cat "$W/containers/$c.health" 2>/dev/null || echo none)
  printf '/%s@T@%s@T@%s@T@%s \n' "$c" "$running" "$health" "$(cat "$W/containers/$c.ip")"
done
exit $rc
""",
    "curl": r"""#!/bin/sh
for a; do url=$a; done
host=${url#http://}; host=${host%%:*}
echo "$url" >> "$FAKE_WORLD/curls"
[ -f "$FAKE_WORLD/up/$host" ]
""",
    "date": f"""#!/bin/sh
if [ "$#" = 1 ] && [ "$1" = +%s ] && [ -n "${{FAKE_NOW:-}}" ]; then echo "$FAKE_NOW"
else exec {REAL_DATE} "$@"; fi
""",
    "logger": "#!/bin/sh\necho \"$*\" >> \"$FAKE_WORLD/journal\"\n",
}


class Host:
    """A temp root with the probe installed and a fake world around it."""

    def __init__(self, tmp: Path, probes: list[HealthProbe]):
        self.root = tmp / "root"
        self.world = tmp / "world"
        self.bin = tmp / "bin"
        for d in (self.bin, self.world / "units", self.world / "containers", self.world / "up"):
            d.mkdir(parents=True)
        for name, text in FAKES.items():
            (self.bin / name).write_text(text)
            (self.bin / name).chmod(0o755)
        self.script = tmp / "probe.sh"
        self.script.write_text(P.script_text("docker"))
        conf = self.root / P.CONFIG_PATH.lstrip("/")
        conf.parent.mkdir(parents=True)
        conf.write_text(P.config_text(probes))
        for i, p in enumerate(probes):
            self.set_unit(p.unit, "active", entered=0)
            (self.world / "containers" / f"{p.container}.ip").write_text(f"10.0.0.{i + 2}")
            self.set_up(p.container, True)

    def set_unit(self, unit: str, active: str, entered: int | None = None) -> None:
        (self.world / "units" / f"{unit}.active").write_text(active)
        if entered is not None:
            (self.world / "units" / f"{unit}.entered").write_text(f"@{entered}")

    def set_up(self, container: str, up: bool) -> None:
        ip = (self.world / "containers" / f"{container}.ip").read_text()
        flag = self.world / "up" / ip
        if up:
            flag.touch()
        else:
            flag.unlink(missing_ok=True)

    def tick(self, now: int) -> None:
        env = {**os.environ, "PATH": f"{self.bin}:{os.environ['PATH']}",
               "HOSTCTL_PROBE_ROOT": str(self.root), "FAKE_WORLD": str(self.world),
               "FAKE_NOW": str(now)}
        res = subprocess.run(["sh", str(self.script)], env=env, capture_output=True,
                             text=True, timeout=30)
        assert res.returncode == 0, res.stderr
        assert res.stderr == "", res.stderr

    def restarts(self) -> list[tuple[int, str]]:
        path = self.world / "restarts"
        if not path.exists():
            return []
        return [(int(t), u) for t, u in (line.split() for line in path.read_text().splitlines())]

    def state(self, unit: str) -> dict[str, str]:
        path = self.root / L.HEALTH_DIR.lstrip("/") / f"{unit}.state"
        return dict(line.split("=", 1) for line in path.read_text().splitlines())

    def log(self) -> list[dict[str, object]]:
        path = self.root / L.HEALTH_LOG.lstrip("/")
        return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


API1 = HealthProbe("hostctl-api-1.service", "hostctl-api-1", "http", 8080, "/health",
                   interval=2, timeout=1, retries=3)
API2 = HealthProbe("hostctl-api-2.service", "hostctl-api-2", "http", 8080, "/health",
                   interval=2, timeout=1, retries=3)


def test_script_is_valid_posix_sh() -> None:
    text = P.script_text("/usr/bin/docker")
    for shell in ("sh", "dash", "bash"):
        if shutil.which(shell):
            res = subprocess.run([shell, "-n"], input=text, capture_output=True, text=True)
            assert res.returncode == 0, (shell, res.stderr)
    assert text.startswith("#!/bin/sh\n")


def test_healthy_service_is_never_restarted(tmp_path: Path) -> None:
    h = Host(tmp_path, [API1, API2])
    for t in range(1000, 1060, 5):
        h.tick(t)
    assert h.restarts() == []
    assert h.log() == []
    st = h.state(API1.unit)
    assert st["health"] == "healthy" and st["failures"] == "0" and st["restarts"] == "0"
    assert (h.world / "curls").read_text().count("http://10.0.0.2:8080/health") == 12


def test_unhealthy_past_retries_is_restarted_once_and_recorded(tmp_path: Path) -> None:
    h = Host(tmp_path, [API1, API2])
    h.set_up(API1.container, False)
    h.tick(1000)
    h.tick(1001)  # within the interval: not checked again
    h.tick(1002)
    assert h.restarts() == []
    assert h.state(API1.unit)["failures"] == "2"
    h.tick(1004)  # third failure: retries reached
    assert h.restarts() == [(1004, API1.unit)]
    h.set_up(API1.container, True)  # the restart cured it
    for t in range(1006, 1040, 2):
        h.tick(t)
    assert h.restarts() == [(1004, API1.unit)]
    st = h.state(API1.unit)
    assert st["restarts"] == "1" and st["health"] == "healthy" and st["failures"] == "0"
    assert st["last_failure"] == "1004"
    assert st["last_reason"] == "http check of port 8080 path /health failed"
    [entry] = h.log()
    assert entry["unit"] == API1.unit and entry["container"] == API1.container
    assert entry["failures"] == 3 and entry["restarts"] == 1 and entry["result"] == "restarted"
    assert entry["time"] == "1970-01-01T00:16:44Z"
    assert API1.unit in (h.world / "journal").read_text()
    assert h.state(API2.unit)["restarts"] == "0"


def test_back_off_doubles_from_the_interval(tmp_path: Path) -> None:
    h = Host(tmp_path, [API1])
    h.set_up(API1.container, False)  # it never recovers
    for t in range(1000, 1100, 2):
        h.tick(t)
    times = [t for t, _ in h.restarts()]
    # 3 failures (2 s apart) before the first restart; then each restart waits for its
    # back-off, twice the last one's, from the interval: 2, 4, 8, 16, 32 s.
    assert times == [1004, 1010, 1016, 1024, 1040, 1072]
    st = h.state(API1.unit)
    assert st["backoff"] == "64" and st["not_before"] == str(1072 + 64)
    assert st["restarts"] == "6" and "held back until" in st["last_reason"]
    assert [e["backoff"] for e in h.log()] == [2, 4, 8, 16, 32, 64]


def test_back_off_is_capped(tmp_path: Path) -> None:
    h = Host(tmp_path, [API1])
    h.set_up(API1.container, False)
    for t in range(1000, 3000, 10):  # a check every tick: 3 failed ticks, then a restart
        h.tick(t)
    assert int(h.state(API1.unit)["backoff"]) == P.BACKOFF_CAP
    times = [t for t, _ in h.restarts()]
    assert max(b - a for a, b in itertools.pairwise(times)) <= P.BACKOFF_CAP + 30


def test_a_healthy_check_resets_the_back_off(tmp_path: Path) -> None:
    h = Host(tmp_path, [API1])
    h.set_up(API1.container, False)
    for t in range(1000, 1018, 2):
        h.tick(t)
    assert len(h.restarts()) == 3
    h.set_up(API1.container, True)
    h.tick(1030)
    assert h.state(API1.unit)["backoff"] == "0"
    h.set_up(API1.container, False)
    for t in (1032, 1034, 1036):
        h.tick(t)
    assert h.restarts()[-1] == (1036, API1.unit)  # at once: no back-off left


def test_stopped_units_are_never_touched(tmp_path: Path) -> None:
    h = Host(tmp_path, [API1])
    h.set_up(API1.container, False)
    for active in ("inactive", "failed", "activating", "deactivating"):
        h.set_unit(API1.unit, active)
        for t in range(1000, 1020, 2):
            h.tick(t)
    assert h.restarts() == []
    assert h.state(API1.unit)["health"] == "inactive"
    assert not (h.world / "curls").exists()


def test_start_period_is_respected(tmp_path: Path) -> None:
    slow = HealthProbe("hostctl-slow-1.service", "hostctl-slow-1", "http", 80, "/",
                       interval=2, timeout=1, retries=1, start_period=30)
    h = Host(tmp_path, [slow])
    h.set_unit(slow.unit, "active", entered=1000)
    h.set_up(slow.container, False)
    for t in range(1000, 1030, 2):
        h.tick(t)
    assert h.restarts() == []
    assert h.state(slow.unit)["health"] == "starting"
    h.tick(1030)
    assert h.restarts() == [(1030, slow.unit)]


def test_inside_the_start_period_a_success_is_healthy_and_failures_do_not_count(
        tmp_path: Path) -> None:
    """Docker's semantics: checked during the start period too; a success there is healthy,
    a failure there is `starting` (with the check's time) and not counted toward retries."""
    slow = HealthProbe("hostctl-slow-1.service", "hostctl-slow-1", "http", 80, "/",
                       interval=2, timeout=1, retries=2, start_period=30)
    h = Host(tmp_path, [slow])
    h.set_unit(slow.unit, "active", entered=1000)
    h.set_up(slow.container, False)
    h.tick(1001)
    st = h.state(slow.unit)
    assert (st["health"], st["failures"], st["last_check"], st["last_failure"]) == \
        ("starting", "0", "1001", "0")
    h.set_up(slow.container, True)
    h.tick(1002)  # within the interval: not checked again
    assert h.state(slow.unit)["health"] == "starting"
    h.tick(1003)  # it answers 3 s after it started: healthy, 27 s before its start period ends
    st = h.state(slow.unit)
    assert (st["health"], st["last_check"]) == ("healthy", "1003")
    h.set_up(slow.container, False)
    for t in (1005, 1007, 1009):
        h.tick(t)
    st = h.state(slow.unit)  # still inside the start period: failures do not count
    assert (st["health"], st["failures"], st["last_check"]) == ("starting", "0", "1009")
    assert h.restarts() == []
    h.tick(1030)
    h.tick(1032)  # past it: two failures (retries 2) restart it
    assert h.restarts() == [(1032, slow.unit)]
    assert (h.world / "curls").read_text().count("http://10.0.0.2:80/") == 7


def test_a_run_that_started_since_the_last_check_is_checked_at_once(tmp_path: Path) -> None:
    every = HealthProbe("hostctl-api-1.service", "hostctl-api-1", "http", 8080, "/health",
                        interval=60, timeout=1, retries=3, start_period=30)
    h = Host(tmp_path, [every])
    h.tick(1000)
    assert h.state(every.unit)["last_check"] == "1000"
    h.set_unit(every.unit, "active", entered=1010)  # restarted (by a deploy, by systemd)
    h.tick(1010)  # not 60 s after the last check: at once, as the run is new
    assert (h.state(every.unit)["health"], h.state(every.unit)["last_check"]) == \
        ("healthy", "1010")
    h.tick(1015)
    assert h.state(every.unit)["last_check"] == "1010"


def test_restarts_are_held_back_while_a_deploy_holds_the_lock(tmp_path: Path) -> None:
    h = Host(tmp_path, [API1])
    lock = h.root / L.LOCK_DIR.lstrip("/")
    lock.mkdir(parents=True)
    h.set_up(API1.container, False)
    for t in range(1000, 1010, 2):
        h.tick(t)
    assert h.restarts() == []
    assert "deploy holds the host's lock" in h.state(API1.unit)["last_reason"]
    lock.rmdir()
    h.tick(1010)
    assert h.restarts() == [(1010, API1.unit)]


def test_command_checks_follow_dockers_verdict(tmp_path: Path) -> None:
    cmd = HealthProbe("hostctl-db-1.service", "hostctl-db-1", "command", interval=5,
                      timeout=2, retries=3)
    h = Host(tmp_path, [cmd])
    (h.world / "containers" / "hostctl-db-1.health").write_text("starting")
    h.tick(1000)  # Docker has no verdict yet: neither healthy nor a failure
    assert (h.state(cmd.unit)["health"], h.state(cmd.unit)["failures"]) == ("starting", "0")
    (h.world / "containers" / "hostctl-db-1.health").write_text("healthy")
    h.tick(1005)
    assert h.state(cmd.unit)["health"] == "healthy"
    h.tick(1010)
    (h.world / "containers" / "hostctl-db-1.health").write_text("unhealthy")
    h.tick(1015)  # Docker already counted its retries: one "unhealthy" is enough
    assert h.restarts() == [(1015, cmd.unit)]
    assert h.state(cmd.unit)["last_reason"] == "docker health check says unhealthy"


def test_a_stopped_container_counts_as_a_failure(tmp_path: Path) -> None:
    h = Host(tmp_path, [API1])
    (h.world / "containers" / "hostctl-api-1.running").write_text("false")
    for t in (1000, 1002, 1004):
        h.tick(t)
    assert h.restarts() == [(1004, API1.unit)]
    assert "not running" in h.state(API1.unit)["last_reason"]


def test_one_show_and_one_inspect_per_run_whatever_the_number_of_services(
        tmp_path: Path) -> None:
    many = [replace(API1, unit=f"hostctl-api-{i}.service", container=f"hostctl-api-{i}")
            for i in range(1, 13)]
    h = Host(tmp_path, many)
    for t in (1000, 1005):
        h.tick(t)
    calls = (h.world / "calls").read_text().splitlines()
    assert [c.split()[0] for c in calls] == ["show", "inspect", "show", "inspect"]
    assert all(p.unit in calls[0] and p.container in calls[1] for p in many)
    assert all(h.state(p.unit)["health"] == "healthy" for p in many)


def test_a_container_docker_does_not_know_counts_as_a_failure(tmp_path: Path) -> None:
    h = Host(tmp_path, [API1, API2])
    (h.world / "containers" / "hostctl-api-1.ip").unlink()  # docker inspect: no such object
    for t in (1000, 1002, 1004):
        h.tick(t)
    assert h.restarts() == [(1004, API1.unit)]
    assert h.state(API1.unit)["last_reason"] == "container hostctl-api-1 is not running"
    assert h.state(API2.unit)["health"] == "healthy"  # the others are read all the same


def test_files_for_the_worked_example() -> None:
    site = load_site(str(REPO / "inventories" / "site.yml"))
    app = site.inventory.hosts["app-1"]
    files = {f.path: f for f in P.probe_files(site, app)}
    assert sorted(files) == sorted(L.PROBE_FILES)
    assert files[P.SCRIPT_PATH].mode == 0o755
    conf = files[P.CONFIG_PATH].content.decode().splitlines()[1:]
    assert conf[0].split() == ["hostctl-triage-api-1.service", "hostctl-triage-api-1", "http",
                               "8080", "2", "1", "3", "1", "/health"]
    assert all(L.is_managed(p) for p in (P.SCRIPT_PATH, P.CONFIG_PATH))
    timer = files[P.TIMER_PATH].content.decode()
    assert f"Unit={P.TICK_UNIT}" in timer and "AccuracySec=1s" in timer
    assert "Type=oneshot" in files[P.SERVICE_PATH].content.decode()
    assert {f.workload for f in files.values()} == {L.PROBE_WORKLOAD}


def test_no_probe_where_no_service_has_a_health_check() -> None:
    site = load_site(str(REPO / "inventories" / "site.yml"))
    bare = replace(site, workloads=tuple(replace(w, health=None) for w in site.workloads))
    for host in site.inventory.hosts.values():
        assert P.probe_files(bare, host) == []
