"""The audit log's one record builder (hosts.audit.audit_record), as a day-two action and a
deploy use it: each record's line, byte for byte (the log's readers, the exporter among
them, read these keys)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hostctl.deploy.health_gate import HealthResult
from hostctl.deploy.outcome import HostOutcome
from hostctl.deploy.outcome import audit_record as deploy_record
from hostctl.deploy.plan import HostPlan, UnitAction
from hostctl.hosts.audit import audit_line, audit_record
from hostctl.hosts.facts import UnitState
from hostctl.hosts.session import Session
from hostctl.ops import day2
from tests.rigs.site_factory import SERVICE, made_site

BASE = {"who": "alice@laptop", "command": "hostctl restart api", "run": "ab12cd34", "site": "t"}


@pytest.fixture(autouse=True)
def _clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.75)


def test_the_builder_adds_time_host_result_message_and_failed_to_the_base() -> None:
    record = audit_record(BASE, "app-1", "stop failed", "app-1: refused", iter(["a.service"]),
                          units={"a.service": "active/running"})
    assert audit_line(record) == (
        '{"command": "hostctl restart api", "failed": ["a.service"], "host": "app-1", '
        '"message": "app-1: refused", "result": "stop failed", "run": "ab12cd34", '
        '"site": "t", "time": 1700000000, "units": {"a.service": "active/running"}, '
        '"who": "alice@laptop"}')


def test_a_day_two_action_record() -> None:
    ok = day2.UnitOutcome("hostctl-api-1.service", "app-1/1",
                          UnitState("hostctl-api-1.service", active="active", sub="running"),
                          True, "active/running")
    bad = day2.UnitOutcome("hostctl-api-2.service", "app-1/2",
                           UnitState("hostctl-api-2.service", active="failed"), False, "failed")
    out = day2.ActionOutcome("app-1", "restart", [ok, bad])
    assert audit_line(day2.audit_record(BASE, out)) == (
        '{"command": "hostctl restart api", "failed": ["hostctl-api-2.service"], '
        '"host": "app-1", "message": "", "result": "restart failed", "run": "ab12cd34", '
        '"site": "t", "time": 1700000000, "units": {"hostctl-api-1.service": '
        '"active/running", "hostctl-api-2.service": "failed"}, "who": "alice@laptop"}')


def test_a_deploy_record(tmp_path: Path) -> None:
    site = made_site(tmp_path, {"api.yml": SERVICE}, environ={})
    session = Session(site, ["app-1"], "hostctl deploy -i site.yml")
    session.who, session.run_id = "alice@laptop", "ab12cd34"
    session.__dict__["revision"] = "0123456789ab"
    plan = HostPlan("app-1", units=(UnitAction("hostctl-api-1.service", "restart", "api"),))
    outcome = HostOutcome("app-1", "rolled-back", "unhealthy after the change", plan,
                          [HealthResult("hostctl-api-1.service", False, "failed")],
                          "20231101T000000Z-000000", seconds=12.5)
    counts = ", ".join(f'"{k}": {v}' for k, v in sorted(plan.counts().items()))
    assert audit_line(deploy_record(session, outcome)) == (
        '{"command": "hostctl deploy -i site.yml", "failed": ["hostctl-api-1.service"], '
        '"host": "app-1", "message": "unhealthy after the change", "plan": {' + counts + '}, '
        '"release": "20231101T000000Z-000000", "result": "rolled-back", '
        '"revision": "0123456789ab", "run": "ab12cd34", "seconds": 12.5, "site": "t", '
        '"time": 1700000000, "who": "alice@laptop"}')
