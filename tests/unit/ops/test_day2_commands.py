"""logs, exec, start/stop/restart: selection errors, the exact commands sent (RecordingRunner),
log reading and following, the bounded wait, and the click commands over recorded hosts."""

from __future__ import annotations

import json
import os
import re
import shlex
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from hostctl import layout as L
from hostctl.cli import day2 as cli_day2
from hostctl.cli.root import main
from hostctl.errors import HostctlError
from hostctl.hosts.audit import audit_script
from hostctl.hosts.lock import unlock_argv
from hostctl.ops import day2
from hostctl.runner.base import ConnectionLost, HostUnreachable, Result, Runner, RunnerError
from hostctl.runner.recording import Call, RecordingRunner
from hostctl.spec.model import Site
from hostctl.validate import load_site
from tests.rigs.refusals import refusal
from tests.rigs.site_factory import make_site

SPECS = {
    "api.yml": """\
        kind: service
        name: api
        project: shop
        image: example.org/shop/api:1.0
        instances: 2
        placement: {hosts: [app-1]}
        """,
    "web.yml": """\
        kind: service
        name: web
        project: shop
        image: example.org/shop/web:1.0
        """,
    "jobs.yml": """\
        kind: job
        name: nightly
        project: shop
        image: example.org/shop/api:1.0
        schedule: "*-*-* 02:00:00"
        placement: {labels: {role: app}}
        """,
}
API = ["hostctl-api-1.service", "hostctl-api-2.service"]
SHOW = ["env", "LC_ALL=C", "TZ=UTC", "systemctl", "show",
        "--property=Id,LoadState,ActiveState,SubState,Result,NRestarts,ActiveEnterTimestamp,"
        "StateChangeTimestamp", "--"]
JOURNAL = ["journalctl", "--no-pager", "--output=json", "--all",
           "--output-fields=MESSAGE,_SYSTEMD_UNIT,UNIT,OBJECT_SYSTEMD_UNIT,PRIORITY"]
T0 = 1715684400  # 2024-05-14T11:00:00Z


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_site(tmp_path_factory.mktemp("day2-site"), SPECS)


@pytest.fixture(scope="module")
def site(inventory: Path) -> Site:
    return load_site(str(inventory))


# -- selection -----------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (("apj",), "no service 'apj' in the specs; did you mean 'api'?"),
    (("nightly",), "'nightly' is a job, not a service: its runs are started by its timer or "
                   "by hand on the host; `hostctl logs` shows their output"),
    (("api", "gpu-1"), "api does not run on gpu-1; it runs on app-1"),
    (("api", None, 3), "api has no instance 3; it has 2 instances (1-2)"),
])
def test_selection_errors(site: Site, args: tuple[Any, ...], message: str) -> None:
    assert refusal(day2.select_instances, site, *args) == message


def test_unknown_host_gets_a_did_you_mean(site: Site) -> None:
    with pytest.raises(HostctlError, match=r"^--host: no host 'app-2' in .*site\.yml; "
                                           r"did you mean 'app-1'\?$"):
        day2.select_instances(site, "api", "app-2")


def test_selection(site: Site) -> None:
    assert [day2.label(i) for i in day2.select_instances(site, "api")] == ["app-1/1", "app-1/2"]
    assert [day2.label(i) for i in day2.select_instances(site, "web")] == ["app-1/1", "gpu-1/1"]
    assert [i.name for i in day2.select_instances(site, "web", "gpu-1")] == ["hostctl-web-1"]
    assert [i.unit for i in day2.select_instances(site, "api", instance=2)] == [API[1]]


@pytest.mark.parametrize(("service", "message"), [
    ("api", "api has 2 instances (app-1/1, app-1/2); choose one with --instance N"),
    ("web", "web has 2 instances (app-1/1, gpu-1/1); choose one with --host H"),
])
def test_choose_one_says_what_tells_instances_apart(site: Site, service: str,
                                                    message: str) -> None:
    assert refusal(day2.choose_one, day2.select_instances(site, service), service) == message


def test_log_targets(site: Site) -> None:
    assert day2.log_targets(site, "api") == [day2.LogTarget(
        "app-1", tuple(API), {API[0]: "app-1/1", API[1]: "app-1/2"})]
    assert [t.host for t in day2.log_targets(site, "web")] == ["app-1", "gpu-1"]
    assert day2.log_targets(site, "nightly") == [
        day2.LogTarget("app-1", ("hostctl-job-nightly@*.service",))]
    with pytest.raises(HostctlError, match="nightly is a job: it has runs, not instances"):
        day2.log_targets(site, "nightly", instance=1)
    with pytest.raises(HostctlError, match=r"^no service 'nightli' in the specs; did you mean "
                                           r"'nightly'\?$"):
        day2.log_targets(site, "nightli")


# -- command builders ----------------------------------------------------------------------


def test_builders() -> None:
    assert day2.journal_argv(API, lines=50) == [
        *JOURNAL, "--unit", API[0], "--unit", API[1], "--lines", "50"]
    assert day2.journal_argv(API[:1], after_cursor="s=ab;i=2") == [
        *JOURNAL, "--unit", API[0], "--after-cursor", "s=ab;i=2"]
    assert day2.journal_argv(API[:1]) == [*JOURNAL, "--unit", API[0]]
    assert day2.action_argv("restart", API) == ["systemctl", "restart", "--", *API]
    assert day2.show_argv(API) == [*SHOW, *API]
    assert day2.unit_log_argv(API[0]) == [
        "journalctl", "--no-pager", "--output=cat", "--unit", API[0], "--lines", "10"]
    with pytest.raises(ValueError, match="unknown action"):
        day2.action_argv("reload", API)


def test_exec_quotes_only_at_the_runner(site: Site) -> None:
    inst = day2.select_instances(site, "api", instance=1)[0]
    hostile = ["sh", "-c", "echo $HOME; rm -rf / # it's `quoted`"]
    runner = RecordingRunner("app-1", default=Result(0, "/root\n", ""))
    res, hint = day2.exec_in(runner, inst, hostile, 30.0)
    assert runner.commands == [["/usr/bin/docker", "exec", "hostctl-api-1", *hostile]]
    assert runner.lines == [shlex.join(["/usr/bin/docker", "exec", "hostctl-api-1", *hostile])]
    assert shlex.split(runner.lines[0])[-1] == hostile[-1]
    assert runner.calls[0].timeout == 30.0 and runner.calls[0].stdin is None
    assert (res.rc, res.stdout, hint) == (0, "/root\n", None)


def test_exec_explains_a_missing_container(site: Site) -> None:
    inst = day2.select_instances(site, "api", instance=2)[0]
    runner = RecordingRunner("app-1", default=Result(
        1, "", "Error response from daemon: No such container: hostctl-api-2\n"))
    res, hint = day2.exec_in(runner, inst, ["true"], None)
    assert res.rc == 1
    assert hint == ("hostctl-api-2 is not running on app-1; `hostctl status` shows its unit, "
                    "`hostctl logs api` why")


# -- logs ----------------------------------------------------------------------------------


def entry(cursor: str, at: float, message: Any, unit: str | None = None,
          about: str | None = None) -> str:
    """One line of `journalctl --output=json`: the container's output has _SYSTEMD_UNIT,
    systemd's own messages about a unit have UNIT (and _SYSTEMD_UNIT=init.scope)."""
    data: dict[str, Any] = {"__CURSOR": cursor, "__REALTIME_TIMESTAMP": str(int(at * 1e6)),
                            "__MONOTONIC_TIMESTAMP": "1", "_BOOT_ID": "b", "MESSAGE": message,
                            "PRIORITY": "6"}
    if unit:
        data["_SYSTEMD_UNIT"] = unit
    if about:
        data["_SYSTEMD_UNIT"] = "init.scope"
        data["UNIT"] = about
    return json.dumps(data)


def journal(*lines: str) -> Result:
    return Result(0, "".join(line + "\n" for line in lines), "")


def test_first_read_labels_each_instance(site: Site) -> None:
    runner = RecordingRunner("app-1", default=journal(
        entry("c1", T0, "Started hostctl service api #2.", about=API[1]),
        entry("c2", T0 + 1, "GET /health 200", unit=API[0]),
        entry("c3", T0 + 2, [104, 105, 255], unit=API[1]),  # not UTF-8: a byte array
        "-- cut sho",
    ))
    reader = day2.LogReader({"app-1": runner}, day2.log_targets(site, "api"))
    entries, errors = reader.first(2, follow=False)
    assert runner.commands == [[*JOURNAL, "--unit", API[0], "--unit", API[1], "--lines", "2"]]
    assert errors == [] and reader.prefixed
    assert [day2.format_entry(e, reader.prefixed) for e in entries] == [
        "app-1/1 | 2024-05-14T11:00:01Z GET /health 200",
        "app-1/2 | 2024-05-14T11:00:02Z hi\ufffd",
    ]
    assert reader.cursors == {"app-1": "c3"}


def test_one_instance_is_not_prefixed_and_hosts_merge_by_time(site: Site) -> None:
    app1 = RecordingRunner("app-1", default=journal(
        entry("a1", T0, "one", unit="hostctl-web-1.service"),
        entry("a2", T0 + 2, "three", unit="hostctl-web-1.service")))
    gpu1 = RecordingRunner("gpu-1", default=journal(
        entry("g1", T0 + 1, "two", unit="hostctl-web-1.service")))
    both = day2.LogReader({"app-1": app1, "gpu-1": gpu1}, day2.log_targets(site, "web"))
    entries, _ = both.first(10, follow=False)
    assert [day2.format_entry(e, both.prefixed) for e in entries] == [
        "app-1/1 | 2024-05-14T11:00:00Z one", "gpu-1/1 | 2024-05-14T11:00:01Z two",
        "app-1/1 | 2024-05-14T11:00:02Z three"]
    one = day2.LogReader({"gpu-1": gpu1}, day2.log_targets(site, "web", "gpu-1"))
    entries, _ = one.first(10, follow=False)
    assert not one.prefixed
    assert [day2.format_entry(e, one.prefixed) for e in entries] == ["2024-05-14T11:00:01Z two"]


def test_job_runs_are_labelled_by_run(site: Site) -> None:
    runner = RecordingRunner("app-1", default=journal(
        entry("c1", T0, "validating", unit="hostctl-job-nightly@scheduled.service")))
    reader = day2.LogReader({"app-1": runner}, day2.log_targets(site, "nightly"))
    entries, _ = reader.first(5, follow=False)
    assert runner.commands == [[*JOURNAL, "--unit", "hostctl-job-nightly@*.service",
                                "--lines", "5"]]
    assert [day2.format_entry(e, reader.prefixed) for e in entries] == [
        "app-1/run scheduled | 2024-05-14T11:00:00Z validating"]


class Journal:
    """A host's journal that grows between polls; answers journalctl like the real one."""

    def __init__(self, *batches: list[str]) -> None:
        self.batches = list(batches)

    def __call__(self, call: Call) -> Result:
        return journal(*(self.batches.pop(0) if self.batches else []))


def test_follow_resumes_after_the_last_cursor(site: Site) -> None:
    unit = "hostctl-web-1.service"
    runner = RecordingRunner("gpu-1", default=Journal(
        [entry("c1", T0, "old", unit=unit)],  # -n 0 still reads one entry, for its cursor
        [entry("c2", T0 + 1, "new", unit=unit), entry("c3", T0 + 2, "newer", unit=unit)],
        [],  # nothing new: the cursor stays
        [entry("c4", T0 + 3, "newest", unit=unit)],
    ))
    reader = day2.LogReader({"gpu-1": runner}, day2.log_targets(site, "web", "gpu-1"))
    entries, _ = reader.first(0, follow=True)
    assert entries == []
    out: list[str] = []
    slept: list[float] = []
    assert day2.follow(reader, out.append, out.append, polls=3, sleep=slept.append)
    assert out == ["2024-05-14T11:00:01Z new", "2024-05-14T11:00:02Z newer",
                   "2024-05-14T11:00:03Z newest"]
    assert slept == [1.0, 1.0, 1.0]
    web = ["--unit", unit]
    assert runner.commands == [
        [*JOURNAL, *web, "--lines", "1"],
        [*JOURNAL, *web, "--after-cursor", "c1"],
        [*JOURNAL, *web, "--after-cursor", "c3"],
        [*JOURNAL, *web, "--after-cursor", "c3"],
    ]


def test_follow_an_empty_journal_reads_everything_new(site: Site) -> None:
    unit = "hostctl-web-1.service"
    runner = RecordingRunner("gpu-1", default=Journal([], [entry("c1", T0, "first", unit=unit)]))
    reader = day2.LogReader({"gpu-1": runner}, day2.log_targets(site, "web", "gpu-1"))
    reader.first(10, follow=True)
    out: list[str] = []
    day2.follow(reader, out.append, out.append, polls=2, sleep=lambda s: None)
    assert out == ["2024-05-14T11:00:00Z first"]
    assert runner.commands[1:] == [[*JOURNAL, "--unit", unit],
                                   [*JOURNAL, "--unit", unit, "--after-cursor", "c1"]]


def test_a_host_that_keeps_failing_is_given_up_and_following_ends(site: Site) -> None:
    lost = ConnectionLost("gpu-1", "the connection was closed", target="10.0.0.2:22")
    calls = {"n": 0}

    def answer(call: Call) -> Result:
        calls["n"] += 1
        if calls["n"] == 1:
            return journal(entry("c1", T0, "hello", unit="hostctl-web-1.service"))
        raise lost

    runner = RecordingRunner("gpu-1", default=answer)
    reader = day2.LogReader({"gpu-1": runner}, day2.log_targets(site, "web", "gpu-1"))
    reader.first(1, follow=True)
    out: list[str] = []
    warnings: list[str] = []
    assert not day2.follow(reader, out.append, warnings.append, polls=10, sleep=lambda s: None)
    # Three failed polls in a row, then no more: bounded even with polls=10.
    assert len(runner.calls) == 1 + day2.FOLLOW_MAX_ERRORS
    assert warnings == ["gpu-1 (10.0.0.2:22): the connection was closed (no longer followed)"]


def test_one_failed_poll_is_retried(site: Site) -> None:
    unit = "hostctl-web-1.service"
    answers: list[Result | RunnerError] = [
        journal(entry("c1", T0, "a", unit=unit)),
        ConnectionLost("gpu-1", "blip"),
        journal(entry("c2", T0 + 1, "b", unit=unit))]

    def answer(call: Call) -> Result:
        res = answers.pop(0)
        if isinstance(res, RunnerError):
            raise res
        return res

    reader = day2.LogReader({"gpu-1": RecordingRunner("gpu-1", default=answer)},
                            day2.log_targets(site, "web", "gpu-1"))
    reader.first(1, follow=True)
    out: list[str] = []
    warnings: list[str] = []
    assert day2.follow(reader, out.append, warnings.append, polls=2, sleep=lambda s: None)
    assert warnings == [] and out == ["2024-05-14T11:00:01Z b"]


def test_first_read_errors_name_the_host(site: Site) -> None:
    app1 = RecordingRunner("app-1", default=Result(1, "", "Failed to add match: Invalid\n"))
    gpu1 = HostUnreachable("gpu-1", "connection refused", target="10.0.0.2:22")
    reader = day2.LogReader({"app-1": app1, "gpu-1": gpu1}, day2.log_targets(site, "web"))
    entries, errors = reader.first(5, follow=True)
    assert entries == []
    assert errors == ["app-1: journalctl failed: Failed to add match: Invalid",
                      "gpu-1 (10.0.0.2:22): connection refused"]
    assert reader.live == []


# -- start / stop / restart ----------------------------------------------------------------


class Clock:
    """A fake monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def show(*blocks: dict[str, str]) -> Result:
    text = "\n\n".join("\n".join(f"{k}={v}" for k, v in b.items()) for b in blocks)
    return Result(0, text + "\n", "")


def unit(name: str, active: str = "active", sub: str = "running", result: str = "success",
         restarts: int = 0, since: str = "Tue 2024-05-14 11:00:00 UTC",
         load: str = "loaded") -> dict[str, str]:
    return {"Id": name, "LoadState": load, "ActiveState": active, "SubState": sub,
            "Result": result, "NRestarts": str(restarts), "ActiveEnterTimestamp": since,
            "StateChangeTimestamp": since}


def is_show(cmd: Any) -> bool:
    return isinstance(cmd, tuple) and cmd[:len(SHOW)] == tuple(SHOW)


def is_journal_tail(cmd: Any) -> bool:
    return isinstance(cmd, tuple) and "--output=cat" in cmd


AUDIT = {"who": "ops@laptop", "command": "hostctl restart api", "run": "r1", "site": "t"}


def audit_of(call: Call) -> dict[str, Any]:
    """The record an audit script (hosts.audit) sent on stdin appends."""
    [line] = [ln for ln in (call.stdin or b"").decode().splitlines() if L.AUDIT_LOG in ln]
    words = shlex.split(line)
    assert words[:2] == ["printf", "%s\\n"] and words[3:] == [">>", L.AUDIT_LOG], words
    record: dict[str, Any] = json.loads(words[2])
    return record


def test_the_audit_script_appends_one_sorted_line_on_a_real_shell(tmp_path: Path) -> None:
    import subprocess

    log = tmp_path / "state" / "audit.log"
    log.parent.mkdir()
    log.write_text("earlier\n")
    record = {"who": "o'brien@laptop", "message": "a $x `y` \\n", "run": "r1"}
    script = audit_script(record)
    script = script.replace(L.AUDIT_LOG, str(log)).replace(L.STATE_DIR, str(log.parent))
    res = subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True,
                         check=False)
    assert res.returncode == 0, res.stderr
    assert log.read_text() == "earlier\n" + json.dumps(record, sort_keys=True) + "\n"


def test_restart_waits_until_units_stay_active(site: Site) -> None:
    clock = Clock()
    runner = RecordingRunner("app-1", [(is_show, show(unit(API[0]), unit(API[1])))])
    out = day2.unit_action({"app-1": runner}, "restart", day2.select_instances(site, "api"),
                           wait=60, audit=AUDIT, clock=clock, sleep=clock.sleep)
    assert runner.commands == [
        ["systemctl", "restart", "--", *API],
        [*SHOW, *API], [*SHOW, *API], [*SHOW, *API],  # t=0, 1, 2: stable for 2s
        ["sh", "-s"],  # the audit record
    ]
    assert clock.slept == [1.0, 1.0]
    assert out["app-1"].ok and out["app-1"].audit_error is None
    assert [(u.label, u.unit, u.ok, u.detail) for u in out["app-1"].units] == [
        ("app-1/1", API[0], True, "active/running"), ("app-1/2", API[1], True, "active/running")]
    record = audit_of(runner.calls[-1])
    assert {k: record[k] for k in ("who", "command", "run", "site", "host", "result",
                                   "message", "units", "failed")} == {
        **AUDIT, "host": "app-1", "result": "restart", "message": "",
        "units": {API[0]: "active/running", API[1]: "active/running"}, "failed": []}
    assert day2.action_lines(out) == [f"app-1/1  {API[0]}  ok  active/running",
                                      f"app-1/2  {API[1]}  ok  active/running"]


def test_a_crash_looping_unit_fails_within_the_wait_with_its_log(site: Site) -> None:
    clock = Clock()
    polls = {"n": 0}

    def states(call: Call) -> Result:
        # api-2's container dies at once: active for a moment, then auto-restart, again.
        polls["n"] += 1
        crashing = (unit(API[1], since=f"Tue 2024-05-14 11:00:{polls['n']:02d} UTC",
                         restarts=polls["n"]) if polls["n"] % 2 else
                    unit(API[1], "activating", "auto-restart", "exit-code", polls["n"]))
        return show(unit(API[0]), crashing)

    runner = RecordingRunner("app-1", [
        (is_show, states),
        (is_journal_tail, Result(0, "".join(f"line {i}\n" for i in range(15)), "")),
    ])
    out = day2.unit_action({"app-1": runner}, "restart", day2.select_instances(site, "api"),
                           wait=5, clock=clock, sleep=clock.sleep)
    shows = [c for c in runner.commands if is_show(tuple(c))]
    assert len(shows) == 6  # t=0..5: bounded by --wait
    api1, api2 = out["app-1"].units
    assert api1.ok and not api2.ok and not out["app-1"].ok
    assert api2.detail == "activating/auto-restart, result exit-code, 6 restarts"
    assert runner.commands[-1] == day2.unit_log_argv(API[1])
    assert api2.log == tuple(f"line {i}" for i in range(5, 15))
    assert day2.action_lines(out)[1].startswith(f"app-1/2  {API[1]}  FAILED  ")
    assert day2.action_lines(out)[2:4] == ["    | line 5", "    | line 6"]


def test_wait_is_bounded_even_if_the_clock_stands_still(site: Site) -> None:
    runner = RecordingRunner("app-1", [(is_show, show(
        unit(API[0], "activating", "auto-restart"), unit(API[1], "activating", "auto-restart")))])
    _, stable = day2.wait_up(runner, API, 10, clock=lambda: 0.0, sleep=lambda s: None)
    assert stable == set()
    assert len(runner.calls) == int((10 + day2.STABLE_SECONDS) / 1.0) + 2


def test_stop_counts_a_failed_result_as_stopped(site: Site) -> None:
    runner = RecordingRunner("app-1", [(is_show, show(
        unit(API[0], "failed", "failed", "exit-code"), unit(API[1], "inactive", "dead")))])
    out = day2.unit_action({"app-1": runner}, "stop", day2.select_instances(site, "api"))
    assert runner.commands == [["systemctl", "stop", "--", *API], [*SHOW, *API]]
    assert out["app-1"].ok
    assert [u.detail for u in out["app-1"].units] == ["failed/failed, result exit-code",
                                                      "inactive/dead"]


def test_a_unit_that_is_not_deployed(site: Site) -> None:
    clock = Clock()
    runner = RecordingRunner("gpu-1", [
        (["systemctl", "start", "--", "hostctl-web-1.service"], Result(
            5, "", "Failed to start hostctl-web-1.service: Unit hostctl-web-1.service not "
                   "found.\n")),
        (is_show, show(unit("hostctl-web-1.service", "inactive", "dead", load="not-found"))),
    ])
    out = day2.unit_action({"gpu-1": runner}, "start",
                           day2.select_instances(site, "web", "gpu-1"), clock=clock,
                           sleep=clock.sleep)
    assert len(runner.calls) == 2  # no waiting, no journal: there is nothing to wait for
    assert not out["gpu-1"].ok
    assert day2.action_lines(out) == [
        "gpu-1: systemctl start failed: Failed to start hostctl-web-1.service: Unit "
        "hostctl-web-1.service not found.",
        "gpu-1/1  hostctl-web-1.service  FAILED  not on the host (not deployed?)"]


def test_an_unreachable_host_does_not_stop_the_others(site: Site) -> None:
    clock = Clock()
    app1 = RecordingRunner("app-1", [(is_show, show(unit("hostctl-web-1.service")))])
    gpu1 = HostUnreachable("gpu-1", "connection refused", target="10.0.0.2:22")
    out = day2.unit_action({"app-1": app1, "gpu-1": gpu1}, "restart",
                           day2.select_instances(site, "web"), clock=clock, sleep=clock.sleep)
    assert out["app-1"].ok and not out["gpu-1"].ok
    assert out["gpu-1"].error == "gpu-1 (10.0.0.2:22): connection refused"
    assert day2.action_json(out)["hosts"]["gpu-1"] == {
        "ok": False, "action": "restart", "error": "gpu-1 (10.0.0.2:22): connection refused",
        "audit_error": None, "units": []}


def test_an_audit_log_that_cannot_be_written_is_a_warning(site: Site) -> None:
    clock = Clock()
    runner = RecordingRunner("app-1", [
        (is_show, show(unit(API[0]))),
        (("sh", "-s"), Result(1, "", "sh: 1: cannot create audit.log: Read-only file "
                                          "system\n")),
    ])
    out = day2.unit_action({"app-1": runner}, "restart",
                           day2.select_instances(site, "api", instance=1), audit=AUDIT,
                           clock=clock, sleep=clock.sleep)
    assert out["app-1"].ok
    assert day2.action_lines(out)[-1] == (
        "app-1: warning: could not write the audit log: sh: 1: cannot create audit.log: "
        "Read-only file system")


# journalctl --output=json on app-1 of the worked example right after a deploy (captured
# from a sandbox host): the unit's output (_SYSTEMD_UNIT), systemd's message about a unit
# (UNIT=, from init.scope), and the ExecStartPre's ignored error.
CAPTURED_JOURNAL = [
    {'__REALTIME_TIMESTAMP': '1795329295697991',
     '_SYSTEMD_UNIT': 'hostctl-triage-api-2.service',
     '_BOOT_ID': '3f966f76ccd44835b55b5c6b1fc8d7dd',
     '__CURSOR': ('s=9afc95ee9ac34cc5bb3dc13e3778501c;i=a2;'
                  'b=3f966f76ccd44835b55b5c6b1fc8d7dd;m=8042595d;t=660d7acecc847;x=8a3f8e6ad8b905bf'),
     '__MONOTONIC_TIMESTAMP': '2151831901',
     'PRIORITY': '6',
     'MESSAGE': 'Error: No such container: hostctl-triage-api-2'},
    {'PRIORITY': '6',
     'MESSAGE': 'Started hostctl-triage-api-2.service - hostctl service triage-api #2 (project '
                'triage).',
     '_SYSTEMD_UNIT': 'init.scope',
     '__REALTIME_TIMESTAMP': '1795329295944365',
     '__MONOTONIC_TIMESTAMP': '2152078275',
     'UNIT': 'hostctl-triage-api-2.service',
     '__CURSOR': ('s=9afc95ee9ac34cc5bb3dc13e3778501c;i=aa;'
                  'b=3f966f76ccd44835b55b5c6b1fc8d7dd;m=80461bc3;t=660d7acf08aad;x=fc4a0f44e751ceb9'),
     '_BOOT_ID': '3f966f76ccd44835b55b5c6b1fc8d7dd'},
    {'PRIORITY': '6',
     '_SYSTEMD_UNIT': 'hostctl-triage-api-1.service',
     'MESSAGE': 'demo-app 1.0 argc=0 argv:',
     '__REALTIME_TIMESTAMP': '1795329296677543',
     '__MONOTONIC_TIMESTAMP': '2152811452',
     '__CURSOR': ('s=9afc95ee9ac34cc5bb3dc13e3778501c;i=c1;'
                  'b=3f966f76ccd44835b55b5c6b1fc8d7dd;m=80514bbc;t=660d7acfbbaa7;x=5dedd893bedeef6b'),
     '_BOOT_ID': '3f966f76ccd44835b55b5c6b1fc8d7dd'},
    {'MESSAGE': 'demo-app listening on :8080 healthy=1',
     '_SYSTEMD_UNIT': 'hostctl-triage-api-1.service',
     '__CURSOR': ('s=9afc95ee9ac34cc5bb3dc13e3778501c;i=c2;'
                  'b=3f966f76ccd44835b55b5c6b1fc8d7dd;m=80514bbc;t=660d7acfbbaa7;x=d5ac10c89b635b12'),
     '__MONOTONIC_TIMESTAMP': '2152811452',
     'PRIORITY': '6',
     '_BOOT_ID': '3f966f76ccd44835b55b5c6b1fc8d7dd',
     '__REALTIME_TIMESTAMP': '1795329296677543'},
    {'__MONOTONIC_TIMESTAMP': '2153099030',
     '__CURSOR': ('s=9afc95ee9ac34cc5bb3dc13e3778501c;i=cc;'
                  'b=3f966f76ccd44835b55b5c6b1fc8d7dd;m=8055af16;t=660d7ad001e00;x=b7ae5ad34ea387c4'),
     '_BOOT_ID': '3f966f76ccd44835b55b5c6b1fc8d7dd',
     '_SYSTEMD_UNIT': 'hostctl-triage-api-2.service',
     'MESSAGE': 'demo-app 1.0 argc=0 argv:',
     'PRIORITY': '6',
     '__REALTIME_TIMESTAMP': '1795329296965120'},
    {'__REALTIME_TIMESTAMP': '1795329296966462',
     '__CURSOR': ('s=9afc95ee9ac34cc5bb3dc13e3778501c;i=cd;'
                  'b=3f966f76ccd44835b55b5c6b1fc8d7dd;m=8055b454;t=660d7ad00233e;x=3fef92886b1e33bd'),
     '_BOOT_ID': '3f966f76ccd44835b55b5c6b1fc8d7dd',
     'PRIORITY': '6',
     'MESSAGE': 'demo-app listening on :8080 healthy=1',
     '_SYSTEMD_UNIT': 'hostctl-triage-api-2.service',
     '__MONOTONIC_TIMESTAMP': '2153100372'},
]


def test_captured_journal() -> None:
    api = ("hostctl-triage-api-1.service", "hostctl-triage-api-2.service")
    target = day2.LogTarget("app-1", api, {api[0]: "app-1/1", api[1]: "app-1/2"})
    text = "".join(json.dumps(e) + "\n" for e in CAPTURED_JOURNAL)
    entries = day2.parse_journal(target, text)
    assert [day2.format_entry(e, True) for e in entries] == [
        "app-1/2 | 2026-11-22T06:34:55Z Error: No such container: hostctl-triage-api-2",
        "app-1/2 | 2026-11-22T06:34:55Z Started hostctl-triage-api-2.service - hostctl service "
        "triage-api #2 (project triage).",
        "app-1/1 | 2026-11-22T06:34:56Z demo-app 1.0 argc=0 argv:",
        "app-1/1 | 2026-11-22T06:34:56Z demo-app listening on :8080 healthy=1",
        "app-1/2 | 2026-11-22T06:34:56Z demo-app 1.0 argc=0 argv:",
        "app-1/2 | 2026-11-22T06:34:56Z demo-app listening on :8080 healthy=1",
    ]
    assert entries[-1].cursor == CAPTURED_JOURNAL[-1]["__CURSOR"]


# -- the click commands, over recorded hosts -----------------------------------------------


class Hosts(dict[str, Runner | RunnerError]):
    """The runners the commands get instead of SSH ones, and which hosts each asked for."""

    asked: list[list[str]]


@pytest.fixture
def hosts(monkeypatch: pytest.MonkeyPatch) -> Hosts:
    runners = Hosts()
    runners.asked = []

    @contextmanager
    def connected(site: Site, names: Any) -> Iterator[Any]:
        runners.asked.append(list(names))
        yield SimpleNamespace(runners={n: runners[n] for n in names}, run_id="r1",
                              options=SimpleNamespace(command="hostctl test"),
                              lock_record='{"run": "r1"}',
                              audit_base=lambda: {"who": "ops@laptop", "run": "r1",
                                                  "command": "hostctl test", "site": "t"})

    monkeypatch.setattr(cli_day2, "_connected", connected)
    return runners


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def test_cli_status_shows_reachable_hosts_and_exits_1_for_the_other(
        inventory: Path, hosts: Hosts) -> None:
    empty = "@@now 1715684400\n@@release \n@@docker\nok 24.0.7\n@@end\n"
    hosts["app-1"] = RecordingRunner("app-1", default=Result(0, empty, ""))
    hosts["gpu-1"] = HostUnreachable("gpu-1", "connection refused", target="10.0.0.2:22")
    res = invoke("status", "-i", str(inventory))
    assert res.exit_code == 1, res.output
    assert res.output.splitlines()[0] == "app-1  release (none)"
    assert "  web      1      missing" in res.output
    assert res.output.splitlines()[-1] == "gpu-1 (10.0.0.2:22): connection refused"
    res = invoke("status", "-i", str(inventory), "--hosts", "app-1", "--json")
    assert res.exit_code == 0, res.output
    assert list(json.loads(res.output)["hosts"]) == ["app-1"]
    assert hosts.asked[-1] == ["app-1"]


def test_cli_status_unknown_host(inventory: Path, hosts: Hosts) -> None:
    res = invoke("status", "-i", str(inventory), "--hosts", "app1")
    assert res.exit_code == 1
    assert "--hosts: no host 'app1'" in res.output and "did you mean 'app-1'?" in res.output


def test_cli_logs(inventory: Path, hosts: Hosts) -> None:
    hosts["app-1"] = RecordingRunner("app-1", default=journal(
        entry("c1", T0, "ready", unit=API[1])))
    res = invoke("logs", "-i", str(inventory), "api", "-n", "5")
    assert res.exit_code == 0, res.output
    assert res.output == "app-1/2 | 2024-05-14T11:00:00Z ready\n"
    assert hosts.asked == [["app-1"]]
    res = invoke("logs", "-i", str(inventory), "apo")
    assert res.exit_code == 1
    assert "no service 'apo' in the specs; did you mean 'api'?" in res.output


def test_cli_logs_follow_stops_on_ctrl_c(inventory: Path, hosts: Hosts,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    hosts["app-1"] = RecordingRunner("app-1", default=journal(
        entry("c1", T0, "ready", unit=API[0])))

    def interrupted(*args: Any, **kw: Any) -> bool:
        raise KeyboardInterrupt

    monkeypatch.setattr(day2, "follow", interrupted)
    res = invoke("logs", "-i", str(inventory), "api", "--instance", "1", "-f")
    assert res.exit_code == 0, res.output
    assert res.output == "2024-05-14T11:00:00Z ready\n"


def test_cli_exec_passes_output_and_exit_status(inventory: Path, hosts: Hosts) -> None:
    runner = RecordingRunner("app-1", default=Result(3, "out\n", "err\n"))
    hosts["app-1"] = runner
    res = invoke("exec", "-i", str(inventory), "api", "--instance", "2", "--",
                 "ls", "-la", "--host", "x")
    assert res.exit_code == 3
    assert runner.commands == [["/usr/bin/docker", "exec", "hostctl-api-2", "ls", "-la",
                                "--host", "x"]]
    assert runner.calls[0].timeout == 600
    assert "out\n" in res.output and "err\n" in res.output


def test_cli_exec_needs_one_instance(inventory: Path, hosts: Hosts) -> None:
    res = invoke("exec", "-i", str(inventory), "api", "--", "true")
    assert res.exit_code == 1
    assert "api has 2 instances (app-1/1, app-1/2); choose one with --instance N" in res.output
    assert hosts.asked == []  # nothing was connected to


def test_cli_exec_unreachable_host(inventory: Path, hosts: Hosts) -> None:
    hosts["gpu-1"] = HostUnreachable("gpu-1", "connection refused", target="10.0.0.2:22")
    res = invoke("exec", "-i", str(inventory), "web", "--host", "gpu-1", "--", "true")
    assert res.exit_code == 1
    assert "error: gpu-1 (10.0.0.2:22): connection refused" in res.output


def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give unit_action a fake clock, so the CLI's waits take no real time."""
    real: Callable[..., Any] = day2.unit_action
    clock = Clock()
    monkeypatch.setattr(day2, "unit_action",
                        lambda *a, **kw: real(*a, **kw, clock=clock, sleep=clock.sleep))


def test_cli_restart_json(inventory: Path, hosts: Hosts,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    fast(monkeypatch)
    runner = RecordingRunner("app-1", [(is_show, show(unit(API[0]), unit(API[1])))])
    hosts["app-1"] = runner
    res = invoke("restart", "-i", str(inventory), "api", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["ok"] and [u["state"] for u in out["hosts"]["app-1"]["units"]] == [
        "active/running", "active/running"]
    [audit] = [c for c in runner.calls if L.AUDIT_LOG in (c.stdin or b"").decode()]
    record = audit_of(audit)
    assert (record["command"], record["run"], record["result"]) == (
        "hostctl test", "r1", "restart")
    # the action ran under the deploy lock, released at the end (only if still ours)
    first, last = runner.calls[0], runner.calls[-1]
    assert first.command == ("sh", "-s") and first.stdin == day2.locked_action_script(
        "restart", API, '{"run": "r1"}', "api").encode()
    assert last.command == tuple(unlock_argv('{"run": "r1"}'))


def test_a_host_locked_by_a_deploy_is_left_alone_and_named(site: Site) -> None:
    holder = json.dumps({"who": "bob@ci", "command": "hostctl deploy -i site.yml",
                         "started": 1795000000})
    locked = Result(day2.LOCKED_EXIT, f"@@lock held 1795000000\n{holder}\n@@now 1795000100\n",
                    "")
    runner = RecordingRunner("app-1", [(lambda c: c == ("sh", "-s"), locked)])
    out = day2.unit_action({"app-1": runner}, "restart", day2.select_instances(site, "api"),
                           audit=AUDIT, lock_record='{"run": "r1"}')
    assert not out["app-1"].ok and out["app-1"].units == []
    assert out["app-1"].error == (
        "app-1: nothing restarted: locked by bob@ci since 2026-11-18 11:06:40 UTC (100s ago) "
        "running `hostctl deploy -i site.yml`; wait for it to end and retry "
        "(a lock left by a run that died is broken by `hostctl deploy --force-unlock`)")
    # no systemctl, no audit record; the unlock touches only a lock that is ours
    assert [c.command[1] for c in runner.calls] == ["-s", "-c"]
    assert runner.calls[-1].command == tuple(unlock_argv('{"run": "r1"}'))


@pytest.mark.parametrize("case", ["free", "held", "in-cluster"])
def test_the_lock_scripts_on_a_real_shell(tmp_path: Path, case: str) -> None:
    import subprocess

    state, lock = tmp_path / "state", tmp_path / "state" / "lock"
    record = tmp_path / "cluster" / "api"
    if case == "held":
        lock.mkdir(parents=True)
        (lock / "holder.json").write_text('{"who": "bob"}\n')
        hour_ago = time.time() - 3600  # the holder record says no start: the lock's mtime does
        os.utime(lock, (hour_ago, hour_ago))
    if case == "in-cluster":
        record.parent.mkdir()
        record.write_text('{"time": "2026-11-22T09:00:00Z", "who": "alice@laptop"}\n')
    script = day2.locked_action_script("restart", ["u.service"], '{"run": "r1"}', "api")
    for real, here in ((L.LOCK_DIR, lock), (f"{L.CLUSTER_DIR}/api", record),
                       (L.STATE_DIR, state), ("systemctl restart -- u.service", "echo acted")):
        assert real in script
        script = script.replace(real, str(here))
    res = subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True,
                         check=False)
    if case == "held":
        assert res.returncode == day2.LOCKED_EXIT and "acted" not in res.stdout
        # the age is the host's clock (the script prints it) minus the lock's mtime
        assert re.fullmatch(
            r"h: nothing stopped: locked by bob since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC "
            r"\(360[0-5]s ago\) running `\?`; wait for it to end and retry \(a lock left by a run "
            r"that died is broken by `hostctl deploy --force-unlock`\)",
            day2.lock_message("h", res.stdout, "stop") or ""), res.stdout
    elif case == "in-cluster":
        assert res.returncode == day2.IN_CLUSTER_EXIT and "acted" not in res.stdout
        assert day2.in_cluster_message("h", res.stdout, "start") == (
            "h: nothing started: api lives in the cluster since 2026-11-22T09:00:00Z (handed "
            "off by alice@laptop); `hostctl k8s handoff --back api` brings it back to the hosts")
    else:
        assert res.returncode == 0 and res.stdout == "@@lock acquired\nacted\n"
    if case != "held":
        assert (lock / "holder.json").read_text() == '{"run": "r1"}\n'
    unlock = unlock_argv('{"run": "r1"}')
    subprocess.run([*unlock[:2], unlock[2].replace(L.LOCK_DIR, str(lock))], check=True)
    assert lock.exists() == (case == "held")  # ours is removed; someone else's is left


def test_cli_stop_text(inventory: Path, hosts: Hosts) -> None:
    hosts["app-1"] = RecordingRunner("app-1", [(is_show, show(
        unit(API[0], "inactive", "dead")))])
    res = invoke("stop", "-i", str(inventory), "api", "--instance", "1")
    assert res.exit_code == 0, res.output
    assert f"app-1/1  {API[0]}  ok  inactive/dead" in res.output
    assert res.output.rstrip().endswith("api: stopped 1/1 unit(s)")


def test_cli_start_failure_exits_1(inventory: Path, hosts: Hosts,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    fast(monkeypatch)
    hosts["app-1"] = RecordingRunner("app-1", [(is_show, show(
        unit(API[0], "activating", "auto-restart", "exit-code", 2)))])
    res = invoke("start", "-i", str(inventory), "api", "--instance", "1", "--wait", "5s")
    assert res.exit_code == 1, res.output
    assert "FAILED  activating/auto-restart, result exit-code, 2 restarts" in res.output
    res = invoke("start", "-i", str(inventory), "api", "--wait", "soon")
    assert res.exit_code == 2 and "'soon' is not a duration" in res.output
