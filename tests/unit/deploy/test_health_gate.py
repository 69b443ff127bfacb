"""The deploy's health gate script on a real shell, with systemctl, docker, curl and
journalctl stubs that answer as a host does and log what they were asked: the verdicts, how
often the gate asks systemd and Docker, and that it runs a command check itself."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hostctl import layout as L
from hostctl.deploy.health_gate import (
    GATE_MARGIN,
    HealthResult,
    gate_deadline,
    health_script,
    parse_health,
)
from hostctl.render.probe import HealthProbe

WEB = HealthProbe("hostctl-web-1.service", "hostctl-web-1", "http", 8080, "/health",
                  interval=1, timeout=1, retries=3)
DB = HealthProbe("hostctl-db-1.service", "hostctl-db-1", "command", interval=30, timeout=2,
                 retries=3, command="pg_isready -U 'app user'")
GONE = HealthProbe("hostctl-gone-1.service", "hostctl-gone-1", "tcp", 9000, interval=1,
                   timeout=1, retries=1)
LATE = HealthProbe("hostctl-late-1.service", "hostctl-late-1", "http", 8080, "/", interval=1,
                   timeout=1, retries=5)

STUBS = {
    # Every unit is active but the one that never got a container.
    "systemctl": """#!/bin/sh
echo "systemctl $*" >> "$CALLS"
[ "$1" = is-active ] || exit 0
shift; [ "$1" = -- ] && shift
for u in "$@"; do [ "$u" = hostctl-gone-1.service ] && echo failed || echo active; done
""",
    # web and db run from the start; late runs from the third pass on; gone never exists
    # (Docker prints what it found and an error for the rest).
    "docker": """#!/bin/sh
echo "docker $*" >> "$CALLS"
case "$1" in
  inspect) shift 3; n=$(grep -c '^docker inspect' "$CALLS"); rc=0
    for c in "$@"; do case "$c" in
      hostctl-web-1) echo "/hostctl-web-1 true none 10.0.0.2 ";;
      hostctl-db-1) echo "/hostctl-db-1 true starting 10.0.0.3 ";;
      hostctl-late-1) if [ "$n" -ge 3 ]; then echo "/hostctl-late-1 true none 10.0.0.4 "
        else echo "/hostctl-late-1 false none  "; fi;;
      *) echo "Error: No such object: $c" >&2; rc=1;;
    esac; done; exit $rc;;
  exec) [ "$2" = hostctl-db-1 ] && [ "$3" = /bin/sh ] && [ "$4" = -c ] \\
      && [ "$5" = "pg_isready -U 'app user'" ];;
esac
""",
    "curl": """#!/bin/sh
echo "curl $*" >> "$CALLS"
case "$*" in *http://10.0.0.2:8080/health*|*http://10.0.0.4:8080/*) exit 0;; esac
exit 7
""",
    "journalctl": "#!/bin/sh\necho 'gone: could not start'\n",
}


def _run_gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
              probes: list[HealthProbe]) -> tuple[list[HealthResult], list[str]]:
    monkeypatch.setattr(L, "HEALTH_DIR", str(tmp_path / "health"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in STUBS.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    calls = tmp_path / "calls"
    calls.write_text("")
    res = subprocess.run(["sh", "-s"], input=health_script(probes, "docker"), text=True,
                         capture_output=True, timeout=60,
                         env={"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(calls)})
    assert res.returncode == 0, res.stderr
    assert res.stdout.endswith("@@done\n"), res.stdout
    return parse_health(res.stdout, [p.unit for p in probes]), calls.read_text().splitlines()


def test_the_gate_sees_each_unit_at_its_own_pace_and_asks_docker_once_per_pass(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    got, calls = _run_gate(tmp_path, monkeypatch, [WEB, DB, GONE, LATE])
    assert [(h.unit, h.ok, h.detail.split(" ")[0], h.log) for h in got] == [
        ("hostctl-web-1.service", True, "0", ()),
        # Docker still says "starting" (its first check comes after its 30 s interval): the
        # gate ran the same command itself.
        ("hostctl-db-1.service", True, "0", ()),
        ("hostctl-gone-1.service", False, "failed", ("gone: could not start",)),
        ("hostctl-late-1.service", True, got[3].detail, ())]
    passes = [c for c in calls if c.startswith("systemctl is-active -- ")]
    assert len(passes) == 3  # late answers on the third pass
    assert passes[0] == ("systemctl is-active -- hostctl-web-1.service hostctl-db-1.service "
                         "hostctl-gone-1.service hostctl-late-1.service")
    docker = [c for c in calls if c.startswith("docker ")]
    # Each pass: one `docker inspect` of the containers it still waits for, not one per unit.
    inspects = [c.rsplit("{{end}} ", 1)[1].split() for c in docker
                if c.startswith("docker inspect -f ")]
    assert [c.split(" ", 2)[1] for c in docker] == ["inspect", "exec", "inspect", "inspect"]
    assert inspects == [
        ["hostctl-web-1", "hostctl-db-1", "hostctl-gone-1", "hostctl-late-1"],
        ["hostctl-late-1"], ["hostctl-late-1"]]
    assert docker[1] == "docker exec hostctl-db-1 /bin/sh -c pg_isready -U 'app user'"
    verified = sorted(p.name for p in (tmp_path / "health").iterdir())
    assert verified == ["hostctl-db-1.service.verified", "hostctl-late-1.service.verified",
                        "hostctl-web-1.service.verified"]


def test_a_command_check_without_its_command_waits_for_dockers_verdict(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bare = HealthProbe("hostctl-db-1.service", "hostctl-db-1", "command", interval=1,
                       timeout=1, retries=1)
    (got,), calls = _run_gate(tmp_path, monkeypatch, [bare])
    assert (got.ok, got.detail) == (False, "active")
    assert not [c for c in calls if c.startswith("docker exec")]


def test_the_gates_deadline_is_its_longest_budget_and_a_margin() -> None:
    slow = HealthProbe("hostctl-s-1.service", "hostctl-s-1", "http", 80, "/", interval=10,
                       timeout=5, retries=3, start_period=60)
    assert slow.budget == 60 + (10 + 5) * 4 + 5
    assert gate_deadline([WEB, slow]) == slow.budget + GATE_MARGIN
    assert gate_deadline([]) == GATE_MARGIN
