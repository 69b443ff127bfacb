"""`hostctl status`: the script (pure), its parser on captured output, drift, rendering."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from hostctl import layout as L
from hostctl.hosts.facts import split_sections
from hostctl.hosts.health_verdict import parse_timestamp
from hostctl.observability import shipping
from hostctl.observability.shipping import LogstashStats
from hostctl.ops import status as st
from hostctl.runner.base import HostUnreachable, Result
from hostctl.runner.recording import RecordingRunner
from hostctl.spec.hashing import spec_hash
from hostctl.spec.model import Site
from hostctl.validate import load_site
from tests.rigs.site_factory import made_site
from tests.rigs.status_output import NOW, app1_output, container, hashes, unit_block


@pytest.fixture(scope="module")
def site(status_site: Site) -> Site:
    """The small site of tests.rigs.status_output.SPECS (built in tests/unit/conftest.py)."""
    return status_site



# -- the script ----------------------------------------------------------------------------


def test_script_is_valid_sh_and_reads_no_env_file() -> None:
    script = st.status_script("/usr/bin/docker")
    subprocess.run(["sh", "-n"], input=script.encode(), check=True)
    assert L.ENV_DIR not in script and ".env" not in script
    assert "systemctl show --property=Id,LoadState,ActiveState,SubState,Result,NRestarts," \
           "ActiveEnterTimestamp,StateChangeTimestamp -- $units" in script
    assert "/usr/bin/docker ps -a --no-trunc --filter label=io.hostctl.managed=true" in script
    assert script.startswith("export LC_ALL=C TZ=UTC\n")
    assert script.rstrip().endswith("echo '@@end'")


def test_script_quotes_an_odd_docker_path() -> None:
    script = st.status_script("/opt/my docker/bin/docker")
    assert "'/opt/my docker/bin/docker' ps -a" in script
    assert "if out=$('/opt/my docker/bin/docker' version" in script


def _stub_host(tmp_path: Path, docker: str) -> Path:
    """A folder of stand-ins put first on PATH: a systemctl that knows no unit and the
    docker client `docker` (a shell script); returns the docker client's path."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "docker").write_text(docker)
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return bin_dir / "docker"


def _run(script: str, docker: Path, host: str = "edge-1") -> st.HostStatus:
    """`script` run by sh with the stand-ins next to `docker` first on PATH, parsed."""
    res = subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True,
                         env={"PATH": f"{docker.parent}:/usr/bin:/bin"}, timeout=30)
    return st.parse_status(host, res.stdout)


def test_script_runs_under_sh_on_a_host_without_hostctl(tmp_path: Path) -> None:
    """Run for real with fake systemctl/docker first on PATH: every section still prints."""
    docker = _stub_host(tmp_path, "#!/bin/sh\necho 'Cannot connect to the Docker daemon' "
                                  ">&2\nexit 1\n")
    parsed = _run(st.status_script(str(docker)), docker, "app-1")
    assert not parsed.docker_ok
    assert parsed.docker_detail == "Cannot connect to the Docker daemon"
    assert parsed.now > 1_600_000_000


_DOCKER_OF_A_LOGGING_HOST = """#!/bin/sh
# A stand-in for the docker client on the logging host: only what the status script asks.
case "$1 $2" in
  "version --format") echo 24.0.7 ;;
  "ps -q") printf 'c1\\nc2\\n' ;;
  "inspect -f") [ "$4 $5" = "c1 c2" ] || exit 2
    printf '/hostctl-api-1 gelf\\n/hostctl-old-1 journald\\n' ;;
  "exec hostctl-logging-logstash-1")
    [ "$3 $4 $5 $6 $7" = "curl -s -m 5 http://127.0.0.1:9600/_node/stats/pipelines" ] || exit 2
    [ -f "$(dirname "$0")/stuck" ] && exec sleep 60
    cat "$(dirname "$0")/stats.json" ;;
  *) exit 1 ;;
esac
"""


def _logging_host(tmp_path: Path, stats: str | None) -> Path:
    docker = _stub_host(tmp_path, _DOCKER_OF_A_LOGGING_HOST)
    if stats is not None:
        (docker.parent / "stats.json").write_text(stats)
    return docker


def test_the_log_drivers_and_logstash_counters_come_in_the_same_round_trip(
        tmp_path: Path) -> None:
    """On the logging host the one status script also reads each container's log driver
    and Logstash's counters (as Logstash 8 answers `_node/stats/pipelines`, pretty-printed
    here: the section carries it whole, whatever its lines)."""
    output = {"id": "hostctl-elasticsearch", "documents": {"successes": 117,
                                                           "non_retryable_failures": 1},
              "bulk_requests": {"failures": 2}}
    stats = {"pipelines": {"main": {"events": {"in": 120, "out": 118},
                                    "plugins": {"outputs": [output]}}}}
    docker = _logging_host(tmp_path, json.dumps(stats, indent=2))
    both = _run(st.status_script(str(docker), drivers=True, logstash=True), docker)
    assert both.docker_ok and both.docker_detail == "24.0.7"
    assert both.log_drivers == {"hostctl-api-1": "gelf", "hostctl-old-1": "journald"}
    assert both.logstash == LogstashStats(120, 118, 117, 1, 2)
    drivers_only = _run(st.status_script(str(docker), drivers=True), docker)
    assert drivers_only.log_drivers == both.log_drivers and drivers_only.logstash is None
    plain = st.status_script(str(docker))  # a site without logging asks neither
    assert "@@drivers" not in plain and "@@logstash" not in plain and "inspect" not in plain


def test_logstash_not_answering_reads_as_no_counters(tmp_path: Path) -> None:
    docker = _logging_host(tmp_path, None)  # its `docker exec ... curl` fails
    status = _run(st.status_script(str(docker), drivers=True, logstash=True), docker)
    assert status.logstash is None and status.docker_ok


def test_a_stuck_docker_exec_does_not_hold_up_the_status(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docker = _logging_host(tmp_path, "{}")
    (docker.parent / "stuck").touch()  # its `docker exec` never returns
    monkeypatch.setattr(shipping, "STATS_TIMEOUT", 1)
    status = _run(st.status_script(str(docker), drivers=True, logstash=True), docker)
    assert status.logstash is None and status.docker_ok  # _run's own bound is 30 s


# -- the parser ----------------------------------------------------------------------------


def test_parse_captured_output(site: Site) -> None:
    h = hashes(site)
    s = st.parse_status("app-1", app1_output(h))
    assert s.now == NOW and s.release == "20240514T100000Z-ab12cd"
    assert s.docker_ok and s.docker_detail == "24.0.7"
    assert s.unit_files["hostctl-job-nightly.timer"] == ""
    assert s.unit_files["hostctl-api-1.service"] == h["api"]
    api2 = s.units["hostctl-api-2.service"]
    assert (api2.active, api2.sub, api2.result, api2.restarts) == (
        "activating", "auto-restart", "exit-code", 3)
    assert api2.since == NOW - 5
    assert s.units["hostctl-job-nightly.timer"].restarts == 0
    api1 = s.containers["hostctl-api-1"]
    assert (api1.image, api1.state, api1.health, api1.spec_hash) == (
        "example.org/shop/api:1.0", "running", "healthy", h["api"])
    assert api1.labels == {"spec-hash": h["api"], "workload": "api", "project": "shop",
                           "instance": "1", "kind": "service"}
    assert s.containers["hostctl-job-nightly-scheduled"].labels["run"] == "scheduled"


def test_incomplete_output_is_an_error_naming_the_host() -> None:
    with pytest.raises(st.StatusError, match=r"^app-1: incomplete answer from the host"):
        st.parse_status("app-1", "@@hostctl-status 1\n@@now 1\n@@units\nId=x")


def test_lines_that_are_not_ours_are_ignored() -> None:
    text = ("@@now 5\n@@containers\nWARNING: something\nonly\ttwo\n"
            + container("hostctl-a-1", "i", "running", "Up", "h", "a", "1") + "\n@@end\n")
    assert list(st.parse_status("h", text).containers) == ["hostctl-a-1"]


@pytest.mark.parametrize(("status", "health"), [
    ("Up 5 minutes (healthy)", "healthy"),
    ("Up 10 seconds (health: starting)", "starting"),
    ("Up 3 minutes (unhealthy)", "unhealthy"),
    ("Up 2 hours", "-"),
    ("Exited (137) 2 minutes ago", "-"),
    ("Restarting (1) 3 seconds ago", "-"),
])
def test_docker_health(status: str, health: str) -> None:
    assert st.docker_health(status) == health


@pytest.mark.parametrize(("text", "epoch"), [
    ("Tue 2024-05-14 11:00:00 UTC", NOW),
    ("", None),
    ("n/a", None),
])
def test_parse_timestamp(text: str, epoch: int | None) -> None:
    assert parse_timestamp(text) == epoch


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (59, "59s"), (60, "1m"), (3599, "59m"), (3600, "1h"), (3720, "1h02m"),
    (86400, "1d"), (90000, "1d1h"), (-5, "0s"),
])
def test_age(seconds: int, text: str) -> None:
    assert st.age(seconds) == text


# -- drift ---------------------------------------------------------------------------------


def test_rows_and_drift(site: Site) -> None:
    rep = st.host_report(site, st.parse_status("app-1", app1_output(hashes(site))))
    got = [(r.service, r.instance, r.state, r.health, r.image, r.ok) for r in rep.rows]
    assert got == [
        ("api", "1", "active/running", "healthy", "example.org/shop/api:1.0", True),
        ("api", "2", "activating/auto-restart", "-", "-", False),
        ("nightly", "timer", "active/waiting", "-", "-", True),
        ("worker", "1", "missing", "-", "-", False),
        ("nightly", "run scheduled", "active/running", "-", "example.org/shop/api:1.0", True),
        ("old", "1", "active/running", "-", "example.org/shop/old:3", False),
        ("stray", "1", "no unit", "-", "example.org/shop/stray:1", False),
    ]
    drift = {f"{r.service}/{r.instance}": r.drift for r in rep.rows if r.drift}
    assert drift == {
        "worker/1": ("not deployed: the unit is missing on the host (`hostctl deploy`)",),
        "old/1": ("not in the specs: the next `hostctl deploy` removes it",),
        "stray/1": ("container without a unit: systemd does not manage it (remove it with "
                    "`docker rm -f hostctl-stray-1` on the host, or deploy)",),
    }
    assert rep.drift
    timer = rep.rows[2]
    assert timer.spec_hash == spec_hash(site.workloads[1])  # from the job's template file


def test_a_container_on_an_older_spec_is_drift(site: Site) -> None:
    h = hashes(site)
    rep = st.host_report(site, st.parse_status("app-1", app1_output(h, api1_hash="0ld0ld0ld0ld")))
    api1 = rep.rows[0]
    assert api1.spec_hash == "0ld0ld0ld0ld" and api1.want_hash == h["api"]
    assert api1.drift == (f"runs spec 0ld0ld0l, the specs say {h['api'][:8]} (its unit file is "
                          "up to date: `hostctl restart api`)",)


def test_a_unit_file_on_an_older_spec_is_drift(site: Site) -> None:
    h = hashes(site)
    text = app1_output(h).replace(f"hostctl-api-2.service {h['api']}",
                                  "hostctl-api-2.service 0ld0ld0ld0ld")
    api2 = st.host_report(site, st.parse_status("app-1", text)).rows[1]
    assert api2.spec_hash == "0ld0ld0ld0ld"
    assert api2.drift == (f"unit file has spec 0ld0ld0l, the specs say {h['api'][:8]} "
                          "(`hostctl deploy` updates it)",)


def test_an_idle_job_run_unit_is_not_a_row(site: Site) -> None:
    """A timer keeps its run unit loaded (inactive) between runs; a failed run is shown."""
    idle = unit_block("hostctl-job-nightly@scheduled.service", "inactive", "dead")
    failed = unit_block("hostctl-job-nightly@manual.service", "failed", "failed",
                        result="exit-code")
    text = f"@@now {NOW}\n@@units\n{idle}\n\n{failed}\n@@end\n"
    rep = st.host_report(site, st.parse_status("app-1", text))
    runs = [(r.service, r.instance, r.state, r.ok) for r in rep.rows
            if r.instance.startswith("run")]
    assert runs == [("nightly", "run manual", "failed/failed", False)]


def test_a_host_without_hostctl_shows_every_unit_missing(site: Site) -> None:
    empty = st.parse_status("gpu-1", "@@now 5\n@@docker\nok 24.0.7\n@@end\n")
    assert st.host_report(site, empty).rows == ()  # gpu-1 has no service and no timer
    rep = st.host_report(site, st.parse_status("app-1", "@@now 5\n@@end\n"))
    assert [(r.service, r.instance, r.state) for r in rep.rows] == [
        ("api", "1", "missing"), ("api", "2", "missing"), ("nightly", "timer", "missing"),
        ("worker", "1", "missing")]


# -- reading hosts and rendering -----------------------------------------------------------


def test_one_round_trip_per_host_and_unreachable_hosts_kept(site: Site) -> None:
    app1 = RecordingRunner("app-1", default=Result(0, app1_output(hashes(site)), ""))
    down = HostUnreachable("gpu-1", "connection refused — is sshd running?",
                           target="10.0.0.2:22")
    results = st.read_statuses(site, {"app-1": app1, "gpu-1": down})
    assert app1.commands == [["sh", "-s"]]
    assert app1.calls[0].stdin == st.status_script("/usr/bin/docker").encode()
    assert app1.calls[0].timeout == st.SCRIPT_TIMEOUT
    reports = st.build_reports(site, results)
    assert reports["gpu-1"].error == "gpu-1 (10.0.0.2:22): connection refused — is sshd running?"
    assert st.exit_code(reports) == 1


def test_text_report(site: Site) -> None:
    results: dict[str, st.HostStatus | Exception] = {
        "app-1": st.parse_status("app-1", app1_output(hashes(site))),
        "gpu-1": HostUnreachable("gpu-1", "connection timed out", target="10.0.0.2:22"),
    }
    lines = st.report_lines(st.build_reports(site, results))
    h = {k: v[:8] for k, v in hashes(site).items()}
    assert lines == [
        "app-1  release 20240514T100000Z-ab12cd",
        "  SERVICE  INST           STATE                                           HEALTH   "
        "IMAGE                     SPEC       SINCE (UTC)",
        f"  api      1              active/running                                  healthy  "
        f"example.org/shop/api:1.0  {h['api']}   2024-05-14 10:00 (1h ago)",
        f"  api      2              activating/auto-restart, exit-code, 3 restarts  -        "
        f"-                         {h['api']}   2024-05-14 10:59 (5s ago)",
        f"  nightly  timer          active/waiting                                  -        "
        f"-                         {h['nightly']}   2024-05-14 10:00 (1h ago)",
        "  worker   1              missing                                         -        "
        "-                         -*         -",
        f"  nightly  run scheduled  active/running                                  -        "
        f"example.org/shop/api:1.0  {h['nightly']}   2024-05-14 10:58 (2m ago)",
        "  old      1              active/running                                  -        "
        "example.org/shop/old:3    01234567*  2024-05-11 09:00 (3d2h ago)",
        "  stray    1              no unit                                         -        "
        "example.org/shop/stray:1  abcdefab*  -",
        "  * worker/1: not deployed: the unit is missing on the host (`hostctl deploy`)",
        "  * old/1: not in the specs: the next `hostctl deploy` removes it",
        "  * stray/1: container without a unit: systemd does not manage it (remove it with "
        "`docker rm -f hostctl-stray-1` on the host, or deploy)",
        "",
        "gpu-1 (10.0.0.2:22): connection timed out",
    ]


def test_docker_down_is_said_in_the_host_line(site: Site) -> None:
    text = "@@now 5\n@@release \n@@docker\ndown Cannot connect to the Docker daemon\n@@end\n"
    lines = st.report_lines({"gpu-1": st.host_report(site, st.parse_status("gpu-1", text))})
    assert lines == ["gpu-1  release (none)  DOCKER DOWN: Cannot connect to the Docker daemon",
                     "  nothing from hostctl on this host"]


def test_json_report(site: Site) -> None:
    h = hashes(site)
    results: dict[str, st.HostStatus | Exception] = {
        "app-1": st.parse_status("app-1", app1_output(h)),
        "gpu-1": HostUnreachable("gpu-1", "connection timed out", target="10.0.0.2:22"),
    }
    out = st.report_json(st.build_reports(site, results))
    json.dumps(out)  # serialisable as is
    assert (out["ok"], out["reachable"], out["drift"]) == (False, False, True)
    assert out["hosts"]["gpu-1"] == {"reachable": False,
                                     "error": "gpu-1 (10.0.0.2:22): connection timed out"}
    app1 = out["hosts"]["app-1"]
    assert app1["release"] == "20240514T100000Z-ab12cd" and app1["drift"] is True
    assert app1["rows"][0] == {
        "service": "api", "instance": "1", "unit": "hostctl-api-1.service",
        "state": "active/running", "result": "success", "restarts": 0, "health": "healthy",
        "container": "hostctl-api-1", "container_state": "running",
        "image": "example.org/shop/api:1.0", "spec_hash": h["api"], "want_spec_hash": h["api"],
        "since": NOW - 3600, "ok": True, "drift": [], "probe": None}
    assert app1["rows"][3]["image"] is None and app1["rows"][3]["state"] == "missing"


# -- captured from sandbox hosts -------------------------------------------------------------

REPO = Path(__file__).resolve().parents[3]
# status_script output on sandbox hosts running the worked example (inventories/), after
# `hostctl deploy`, then `systemctl stop hostctl-reports-web-1` on edge-1 and a container
# started by hand on app-1. Note systemd's property order (Result= before Id=), a timer
# without NRestarts=, and a never-run job unit with empty timestamps.
CAPTURED_APP1 = """\
@@hostctl-status 1
@@now 1795329301
@@release 20261122T063454Z-518862
@@unitfiles
hostctl-job-nightly-validation@.service 119cbb8638c5
hostctl-triage-api-1.service 196463cff6c0
hostctl-triage-api-2.service 196463cff6c0
hostctl-triage-worker-1.service 4f7e9abf9b88
hostctl-job-nightly-validation.timer\x20
@@units
Result=success
Id=hostctl-job-nightly-validation.timer
LoadState=loaded
ActiveState=active
SubState=waiting
StateChangeTimestamp=Sun 2026-11-22 06:34:55 UTC
ActiveEnterTimestamp=Sun 2026-11-22 06:34:55 UTC

Result=success
NRestarts=0
Id=hostctl-job-nightly-validation@scheduled.service
LoadState=loaded
ActiveState=inactive
SubState=dead
StateChangeTimestamp=
ActiveEnterTimestamp=

Result=success
NRestarts=0
Id=hostctl-triage-api-1.service
LoadState=loaded
ActiveState=active
SubState=running
StateChangeTimestamp=Sun 2026-11-22 06:34:55 UTC
ActiveEnterTimestamp=Sun 2026-11-22 06:34:55 UTC

Result=success
NRestarts=0
Id=hostctl-triage-api-2.service
LoadState=loaded
ActiveState=active
SubState=running
StateChangeTimestamp=Sun 2026-11-22 06:34:55 UTC
ActiveEnterTimestamp=Sun 2026-11-22 06:34:55 UTC

Result=success
NRestarts=0
Id=hostctl-triage-worker-1.service
LoadState=loaded
ActiveState=active
SubState=running
StateChangeTimestamp=Sun 2026-11-22 06:34:55 UTC
ActiveEnterTimestamp=Sun 2026-11-22 06:34:55 UTC
@@docker
ok 20.10.24+dfsg1
@@containers
hostctl-stray-1\thostctl-demo-app:1.0\trunning\tUp 3 seconds (healthy)\t\tstray\t\t\t\t
hostctl-triage-api-2\thostctl-demo-app:1.0\trunning\tUp 4 seconds (healthy)\t\
196463cff6c0\ttriage-api\ttriage\t2\tservice\t
hostctl-triage-worker-1\thostctl-demo-app:1.0\trunning\tUp 4 seconds (healthy)\t\
4f7e9abf9b88\ttriage-worker\ttriage\t1\tservice\t
hostctl-triage-api-1\thostctl-demo-app:1.0\trunning\tUp 5 seconds (healthy)\t\
196463cff6c0\ttriage-api\ttriage\t1\tservice\t
@@end
"""
CAPTURED_EDGE1 = """\
@@hostctl-status 1
@@now 1795329301
@@release 20261122T063454Z-518862
@@unitfiles
hostctl-reports-web-1.service a1e04df32bdc
@@units
Result=exit-code
NRestarts=0
Id=hostctl-reports-web-1.service
LoadState=loaded
ActiveState=failed
SubState=failed
StateChangeTimestamp=Sun 2026-11-22 06:34:57 UTC
ActiveEnterTimestamp=Sun 2026-11-22 06:34:55 UTC
@@docker
ok 20.10.24+dfsg1
@@containers
@@end
"""
# The spec hashes in the captures, by workload: replaced by today's hashes of the specs,
# so the captures stay "no drift" when the worked example changes.
CAPTURED_HASHES = {"196463cff6c0": "triage-api", "4f7e9abf9b88": "triage-worker",
                   "119cbb8638c5": "nightly-validation", "a1e04df32bdc": "reports-web"}
CAPTURED_AT = 1795329295  # 2026-11-22 06:34:55 UTC


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """The worked example as it was captured: without its logging and metrics sections (the
    hosts then ran no exporter, and containers logged to journald)."""
    import yaml

    inventories = REPO / "inventories"
    data = yaml.safe_load((inventories / "site.yml").read_text())
    for section in ("logging", "metrics"):
        data.pop(section)
    data["specs"] = [str(inventories / p) for p in data["specs"]]
    data["secrets"]["env_file"] = str(inventories / data["secrets"]["env_file"])
    path = tmp_path_factory.mktemp("example") / "site.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_site(str(path))


def captured(text: str, site: Site) -> str:
    now = hashes(site)
    for old, workload in CAPTURED_HASHES.items():
        text = text.replace(old, now[workload])
    return text


def test_captured_app1(example: Site) -> None:
    parsed = st.parse_status("app-1", captured(CAPTURED_APP1, example))
    assert parsed.docker_detail == "20.10.24+dfsg1" and parsed.release == "20261122T063454Z-518862"
    rep = st.host_report(example, parsed)
    assert [(r.service, r.instance, r.state, r.health, r.image, r.since, bool(r.drift))
            for r in rep.rows] == [
        ("nightly-validation", "timer", "active/waiting", "-", "-", CAPTURED_AT, False),
        ("triage-api", "1", "active/running", "healthy", "hostctl-demo-app:1.0", CAPTURED_AT,
         False),
        ("triage-api", "2", "active/running", "healthy", "hostctl-demo-app:1.0", CAPTURED_AT,
         False),
        ("triage-worker", "1", "active/running", "healthy", "hostctl-demo-app:1.0",
         CAPTURED_AT, False),
        ("stray", "?", "no unit", "healthy", "hostctl-demo-app:1.0", None, True),
    ]
    assert all(r.spec_hash == r.want_hash for r in rep.rows[:4])


def test_captured_edge1_a_stopped_unit(example: Site) -> None:
    rep = st.host_report(example, st.parse_status("edge-1", captured(CAPTURED_EDGE1, example)))
    (web,) = rep.rows
    assert (web.service, web.state, web.health, web.image, web.container) == (
        "reports-web", "failed/failed", "-", "-", None)
    assert web.spec_hash == web.want_hash and not web.drift and not web.ok
    assert web.since == CAPTURED_AT + 2


def test_json_ok_means_reachable_without_drift_and_healthy(example: Site) -> None:
    text = captured(CAPTURED_APP1, example)
    clean = "\n".join(ln for ln in text.splitlines() if not ln.startswith("hostctl-stray-1"))
    good = st.build_reports(example, {"app-1": st.parse_status("app-1", clean)})
    assert st.report_json(good)["ok"] is True
    sick = clean.replace("Up 4 seconds (healthy)\t", "Up 4 seconds (unhealthy)\t")
    out = st.report_json(st.build_reports(example, {"app-1": st.parse_status("app-1", sick)}))
    assert (out["ok"], out["drift"], out["reachable"]) == (False, False, True)
    assert [r["health"] for r in out["hosts"]["app-1"]["rows"]] == [
        "-", "healthy", "unhealthy", "unhealthy"]


PROBE_SPECS = {
    "web.yml": """\
        kind: service
        name: web
        project: shop
        image: example.org/shop/web:1.0
        instances: 2
        ports:
          http: {container: 8080}
        health:
          http: {path: /health, port: http}
        placement: {hosts: [app-1]}
        """,
}


def probe_output(h: dict[str, str], timer: str = "active") -> str:
    """app-1 with two http-checked instances: #1 restarted twice by the health probe."""
    units = "\n\n".join([
        unit_block("hostctl-web-1.service", "active", "running",
                   since="Tue 2024-05-14 10:58:00 UTC"),
        unit_block("hostctl-web-2.service", "active", "running"),
        unit_block("hostctl-probe.timer", timer, "waiting" if timer == "active" else "dead",
                   restarts=None),
        unit_block("hostctl-probe@tick.service", "inactive", "dead"),
    ])
    containers = "\n".join(
        container(f"hostctl-web-{i}", "example.org/shop/web:1.0", "running", "Up 1 hour",
                  h["web"], "web", str(i)) for i in (1, 2))
    return f"""\
@@hostctl-status 1
@@now {NOW}
@@release 20240514T100000Z-ab12cd
@@unitfiles
hostctl-probe.timer
hostctl-web-1.service {h["web"]}
hostctl-web-2.service {h["web"]}
@@units
{units}
@@docker
ok 24.0.7
@@containers
{containers}
@@probe
hostctl-web-1.service health=healthy
hostctl-web-1.service failures=0
hostctl-web-1.service last_failure={NOW - 120}
hostctl-web-1.service last_reason=http check of port 8080 path /health failed
hostctl-web-1.service restarts=2
hostctl-web-1.service last_restart={NOW - 120}
hostctl-web-2.service health=unhealthy
hostctl-web-2.service failures=1
hostctl-web-2.service last_failure={NOW - 3}
hostctl-web-2.service last_reason=container hostctl-web-2 has no address
hostctl-web-2.service restarts=0
@@end
"""


@pytest.fixture(scope="module")
def probe_site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return made_site(tmp_path_factory.mktemp("probe-site"), PROBE_SPECS)


def test_status_script_reads_the_probe_state() -> None:
    script = st.status_script("docker")
    assert f"{L.HEALTH_DIR}/*.state" in script
    assert subprocess.run(["sh", "-n"], input=script, text=True).returncode == 0


def test_probe_state_gives_health_restarts_and_last_failure(probe_site: Site) -> None:
    status = st.parse_status("app-1", probe_output(hashes(probe_site)))
    assert status.probe["hostctl-web-1.service"]["restarts"] == "2"
    reports = st.build_reports(probe_site, {"app-1": status})
    rows = reports["app-1"].rows
    assert [(r.service, r.instance, r.health) for r in rows] == [
        ("web", "1", "healthy"), ("web", "2", "unhealthy")]  # no row for a running probe
    p = rows[0].probe
    assert p is not None and (p.restarts, p.last_failure, p.last_restart) == (
        2, NOW - 120, NOW - 120)
    text = "\n".join(st.report_lines(reports))
    assert "active/running, 2 by health probe" in text
    assert ("! web/1: last health failure 2024-05-14 10:58 (2m ago): http check of port 8080 "
            "path /health failed; restarted 2x by the health probe, last 2024-05-14 10:58 "
            "(2m ago)") in text
    assert ("! web/2: last health failure 2024-05-14 10:59 (3s ago): container hostctl-web-2 "
            "has no address") in text
    out = st.report_json(reports)
    j1, j2 = out["hosts"]["app-1"]["rows"]
    assert j1["probe"] == {"health": "healthy", "restarts": 2, "last_failure": NOW - 120,
                           "last_reason": "http check of port 8080 path /health failed",
                           "last_restart": NOW - 120}
    assert (j1["ok"], j2["ok"], out["ok"], out["drift"]) == (True, False, False, False)


def test_a_stopped_probe_is_shown(probe_site: Site) -> None:
    status = st.parse_status("app-1", probe_output(hashes(probe_site), timer="inactive"))
    rows = st.build_reports(probe_site, {"app-1": status})["app-1"].rows
    [row] = [r for r in rows if r.service == L.PROBE_WORKLOAD]
    assert row.unit == "hostctl-probe.timer" and row.state == "inactive/dead"
    assert "health probe is not running" in row.drift[0]


def verdict_output(h: dict[str, str], docker_status: str, probe: dict[str, str],
                   verified: int | None) -> str:
    """app-1 right after a deploy: web #1 started at NOW - 5, its image has a HEALTHCHECK."""
    started = "Tue 2024-05-14 10:59:55 UTC"  # NOW - 5
    units = "\n\n".join([
        unit_block("hostctl-web-1.service", "active", "running", since=started),
        unit_block("hostctl-web-2.service", "active", "running"),
        unit_block("hostctl-probe.timer", "active", "waiting", restarts=None)])
    containers = "\n".join([
        container("hostctl-web-1", "example.org/shop/web:1.0", "running", docker_status,
                  h["web"], "web", "1"),
        container("hostctl-web-2", "example.org/shop/web:1.0", "running", "Up 1 hour",
                  h["web"], "web", "2")])
    probe_lines = "\n".join(f"hostctl-web-1.service {k}={v}" for k, v in probe.items())
    verified_line = "" if verified is None else f"hostctl-web-1.service {verified}\n"
    return (f"@@hostctl-status 1\n@@now {NOW}\n@@release r1\n@@unitfiles\n"
            f"hostctl-web-1.service {h['web']}\nhostctl-web-2.service {h['web']}\n"
            f"@@units\n{units}\n@@docker\nok 24.0.7\n@@containers\n{containers}\n"
            f"@@probe\n{probe_lines}\n@@verified\n{verified_line}@@end\n")


STARTING = "Up 3 seconds (health: starting)"
VERDICTS = [
    # Docker's status, the probe's record, the gate's record -> health shown
    (STARTING, {}, NOW - 2, "healthy"),  # deploy just passed, Docker has not checked yet
    (STARTING, {}, None, "starting"),  # nobody checked this run yet
    (STARTING, {}, NOW - 60, "starting"),  # a verdict on the run before this one
    (STARTING, {"health": "healthy", "last_check": str(NOW - 1)}, None, "healthy"),
    (STARTING, {"health": "unhealthy", "last_check": str(NOW - 1)}, NOW - 3, "unhealthy"),
    (STARTING, {"health": "unhealthy", "last_check": str(NOW - 4)}, NOW - 3, "healthy"),
    (STARTING, {"health": "unhealthy", "last_check": str(NOW - 3)}, NOW - 3, "healthy"),
    (STARTING, {"health": "healthy", "last_check": str(NOW - 90)}, None, "starting"),
    (STARTING, {"health": "starting", "last_check": "0"}, NOW - 2, "healthy"),
    # the probe checked inside the start period and it failed: not healthy yet
    (STARTING, {"health": "starting", "last_check": str(NOW - 1)}, None, "starting"),
    (STARTING, {"health": "starting", "last_check": str(NOW - 1)}, NOW - 2, "starting"),
    ("Up 3 seconds", {"health": "starting", "last_check": str(NOW - 1)}, None, "starting"),
    ("Up 3 seconds", {"health": "starting", "last_check": str(NOW - 1)}, NOW, "healthy"),
    ("Up 3 seconds (unhealthy)", {}, NOW - 2, "unhealthy"),  # Docker's verdict stands
    ("Up 3 seconds (healthy)", {"health": "unhealthy", "last_check": str(NOW - 1)}, None,
     "healthy"),
    ("Up 3 seconds", {}, NOW - 2, "healthy"),  # no Docker check at all
    ("Up 3 seconds", {"health": "unhealthy", "last_check": str(NOW - 90)}, None, "-"),
    ("Up 3 seconds", {"health": "unhealthy"}, None, "unhealthy"),  # a record without a time
]


@pytest.mark.parametrize(("docker_status", "probe", "verified", "health"), VERDICTS)
def test_health_is_dockers_verdict_else_hostctls_own_on_this_run(
        probe_site: Site, docker_status: str, probe: dict[str, str], verified: int | None,
        health: str) -> None:
    status = st.parse_status("app-1", verdict_output(hashes(probe_site), docker_status, probe,
                                                     verified))
    reports = st.build_reports(probe_site, {"app-1": status})
    row = reports["app-1"].rows[0]
    assert (row.unit, row.health, row.ok) == ("hostctl-web-1.service", health,
                                              health in ("healthy", "-"))
    assert st.report_json(reports)["ok"] is (health in ("healthy", "-"))


def test_status_script_reads_the_deploys_health_verdicts(tmp_path: Path) -> None:
    """The script's loop over HEALTH_DIR, run by sh on files like the health gate writes."""
    (tmp_path / "hostctl-web-1.service.verified").write_text(f"{NOW - 2}\n")
    (tmp_path / "hostctl-web-2.service.verified").write_text("garbage\n")
    (tmp_path / "hostctl-web-1.service.state").write_text(f"health=healthy\nlast_check={NOW}\n")
    script = st.status_script("/nonexistent/docker").replace(L.HEALTH_DIR, str(tmp_path))
    out = subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"}, timeout=30)
    status = st.parse_status("app-1", out.stdout)
    assert status.verified == {"hostctl-web-1.service": NOW - 2}
    assert status.probe == {"hostctl-web-1.service": {"health": "healthy",
                                                      "last_check": str(NOW)}}


# The per-file loops the status script had (a process or three a file), kept here as the
# reference for what its one-process-per-section reads must print.
_PER_FILE = """export LC_ALL=C
echo '@@unitfiles'
for f in {units}/hostctl-*.service {units}/hostctl-*.timer; do
  [ -f "$f" ] || continue
  printf '%s %s\\n' "${{f##*/}}" "$(sed -n 's/.*io\\.hostctl\\.spec-hash=\\([0-9a-f]*\\).*/\\1/p' "$f" | head -n 1)"
done
echo '@@probe'
for f in {health}/*.state; do
  [ -f "$f" ] || continue; u=${{f##*/}}; u=${{u%.state}}
  sed "s|^|$u |" "$f"
done
echo '@@verified'
for f in {health}/*.verified; do
  [ -f "$f" ] || continue; u=${{f##*/}}; u=${{u%.verified}}
  printf '%s %s\\n' "$u" "$(head -c 20 "$f" | tr -dc 0-9)"
done
"""  # noqa: E501


@pytest.mark.parametrize("awk", ["mawk", "busybox awk"])
def test_status_sections_read_each_file_as_a_process_per_file_did(
        tmp_path: Path, awk: str) -> None:
    """Unit files (the label's value: the last on the first line having it; none; an empty
    file; a directory), probe states and verified times (digits of the first 20 bytes),
    with Debian's awk (mawk) and busybox's."""
    if shutil.which(awk.split()[0]) is None:
        pytest.skip(f"{awk} is not installed")
    units, health, bin_dir = tmp_path / "units", tmp_path / "health", tmp_path / "bin"
    for d in (units, health, bin_dir):
        d.mkdir()
    label = "io.hostctl.spec-hash"
    (units / "hostctl-a-1.service").write_text(
        f"[Service]\nExecStart=docker run --label {label}=abc123 x --label {label}=def456\n"
        f"ExecStartPost=--label {label}=ffff\n")
    (units / "hostctl-b-1.service").write_text("[Service]\nExecStart=/bin/true\n")
    (units / "hostctl-c.timer").write_text("")
    (units / "hostctl-d-1.service").mkdir()
    (health / "hostctl-a-1.service.state").write_text("health=healthy\nrestarts=2\n")
    (health / "hostctl-b-1.service.state").write_text("")
    (health / "hostctl-a-1.service.verified").write_text("1700000000\n")
    (health / "hostctl-b-1.service.verified").write_text("12\n34 56 789 0123456789\n")
    (health / "hostctl-c.service.verified").write_text("junk")
    script = st.status_script("/nonexistent/docker").replace(
        L.UNIT_DIR, str(units)).replace(L.HEALTH_DIR, str(health))
    (bin_dir / "awk").write_text(f'#!/bin/sh\nexec {awk} "$@"\n')
    (bin_dir / "awk").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    got = subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True,
                         env=env, timeout=30).stdout
    want = subprocess.run(["sh", "-s"], input=_PER_FILE.format(units=units, health=health),
                          capture_output=True, text=True, env=env, timeout=30).stdout
    for name in ("unitfiles", "probe", "verified"):
        assert split_sections(got)[name] == split_sections(want)[name], name
    assert split_sections(got)["unitfiles"] == [
        "hostctl-a-1.service def456", "hostctl-b-1.service ", "hostctl-c.timer "]
    assert split_sections(got)["verified"] == [
        "hostctl-a-1.service 1700000000", "hostctl-b-1.service 1234567890123456",
        "hostctl-c.service "]
