"""Admission over runners (hostctl.jobs.admission), with recording runners standing in for
the hosts: what is sent where, in which order, and what a refusal leaves behind. The host
side of each command is tested in test_queue_rules.py; the whole path on sandbox hosts in
tests/e2e/test_quota_e2e.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hostctl.errors import HostctlError
from hostctl.jobs import hostside as H
from hostctl.jobs import plan as P
from hostctl.jobs.admission import Admission
from hostctl.runner.base import HostUnreachable, Result
from hostctl.runner.recording import Call, RecordingRunner
from tests.rigs.site_factory import BASE_INVENTORY, made_site

SPECS = {"jobs.yml": """\
kind: job
name: train
project: ml
image: reg/train:1
resources: {cpus: 1}
"""}
PROJECTS = "projects:\n  ledger_host: app-1\n  ml: {cpus: 2, gpu_hours_per_month: 10}\n"
HOUR_MS = 3_600_000


class Host:
    """A host's canned answers: its settle lines; the lock's state on the ledger."""

    def __init__(self, name: str, settle: str = "@@quota ml 0 0 0\n", busy: bool = False):
        self.settle, self.busy = settle, busy
        self.runner = RecordingRunner(name, default=self.answer)

    def answer(self, call: Call) -> Result:
        script = (call.stdin or b"").decode()
        if "admission.lock.guard" in script and "mkdir" in script:
            return Result(0, "@@admission busy\nt0 {\"who\": \"bob\"}\n" if self.busy
                          else "@@admission locked\n", "")
        if "quota-settle" in script:
            return Result(0, self.settle + "@@end\n", "")
        if " submit " in script:
            return Result(0, "@@submitted\n", "")
        return Result(0, "", "")

    def sent(self) -> list[str]:
        """What each script sent did: lock, settle, grant ARGS, submit, unlock."""
        out = []
        for c in self.runner.calls:
            script = (c.stdin or b"").decode()
            if "admission.lock.guard" in script:
                out.append("lock" if "mkdir" in script else "unlock")
            for line in script.splitlines():
                if "hostctl-jobs quota-settle" in line:
                    out.append("settle")
                elif "hostctl-jobs quota-grant" in line:
                    out.append("grant " + line.split("quota-grant ")[1])
                elif "hostctl-jobs submit" in line:
                    out.append("submit")
                elif '"result": "over-budget"' in line:
                    out.append("audit")
        return out


@pytest.fixture()
def site(tmp_path: Path) -> Any:
    return made_site(tmp_path, SPECS, BASE_INVENTORY + PROJECTS)


def _admit(site: Any, hosts: dict[str, Host | Exception], **kw: Any) -> tuple[Any, Any]:
    runners = {h: v.runner if isinstance(v, Host) else v for h, v in hosts.items()}
    w = P.find_job(site, "train")
    adm = Admission(site, w, runners, "{}", {"who": "me"}, clock=lambda: 1_796_428_800.0, **kw)
    req = adm.prepare(P.request(w, site.inventory.hosts["gpu-1"], "r1"))
    return adm.submit({"gpu-1": [req]}, H.submit_lines)


def test_a_run_with_room_is_granted_with_its_submit_in_one_round_trip(site: Any) -> None:
    app, gpu = Host("app-1", "@@quota ml 1000 0 0\n@@gpu_ms ml 0\n"), Host("gpu-1")
    answers, outcome = _admit(site, {"app-1": app, "gpu-1": gpu})
    assert answers == {"gpu-1": "@@submitted\n"} and outcome.admitted
    assert app.sent() == ["lock", "settle", "grant ml 0 - -", "unlock"]
    assert gpu.sent() == ["settle", "grant ml 1000 - -", "submit"]
    submitted = gpu.runner.calls[-1].stdin.decode()
    assert "printf '%s\\n' quota > /var/lib/hostctl/runs/.new-r1/hold" in submitted


def test_a_full_quota_with_no_wait_is_refused_and_the_shares_still_go_out(site: Any) -> None:
    app = Host("app-1", "@@quota ml 2000 0 0\n@@gpu_ms ml 0\n")
    gpu = Host("gpu-1", "@@quota ml 0 0 0\n@@held ml w1 normal 5 1000 0 0\n@@gpu_ms ml 0\n")
    with pytest.raises(HostctlError) as err:
        _admit(site, {"app-1": app, "gpu-1": gpu}, no_wait=True)
    assert str(err.value) == ("project ml's quota is in use: 2/2 CPUs (runs and services), 1 "
                              "run(s) waiting before it; without --no-wait the run waits for it")
    assert app.sent() == ["lock", "settle", "grant ml 0 - -", "unlock"]
    assert gpu.sent() == ["settle", "grant ml 0 - -"]


def test_a_spent_budget_is_refused_unless_passed_with_a_reason_kept_in_the_audit(
        site: Any) -> None:
    spent = f"@@quota ml 0 0 0\n@@gpu_ms ml {10 * HOUR_MS}\n"
    app, gpu = Host("app-1", spent), Host("gpu-1")
    with pytest.raises(HostctlError) as err:
        _admit(site, {"app-1": app, "gpu-1": gpu})
    assert str(err.value) == ("project ml has used 10.0 of its 10 GPU-hours this month; the "
                              "budget resets 2027-01-01 00:00 UTC; an owner may pass with "
                              "--over-budget REASON")
    assert "submit" not in gpu.sent() and gpu.sent()[-1] == "grant ml 0 - -"
    app, gpu = Host("app-1", spent), Host("gpu-1")
    _, outcome = _admit(site, {"app-1": app, "gpu-1": gpu}, over_budget="paper due")
    assert gpu.sent() == ["settle", "grant ml 1000 - -", "audit", "submit"]
    assert outcome.admitted and outcome.gpu_ms == 10 * HOUR_MS


def test_a_host_that_cannot_be_counted_stops_the_admission(site: Any) -> None:
    app = Host("app-1", "@@quota ml 0 0 0\n")
    with pytest.raises(HostctlError) as err:
        _admit(site, {"app-1": app, "gpu-1": HostUnreachable("gpu-1", "connection refused")})
    assert "project ml has a quota, and its runs on every host its jobs run on must be " \
           "counted; not reached: gpu-1: " in str(err.value)
    assert app.sent() == ["lock", "settle", "unlock"]


def test_an_answer_without_the_projects_use_counts_as_no_answer(site: Any) -> None:
    app, gpu = Host("app-1"), Host("gpu-1", settle="@@gpu_ms ml 0\n")
    with pytest.raises(HostctlError) as err:
        _admit(site, {"app-1": app, "gpu-1": gpu})
    assert str(err.value) == "project ml: no settle answer from gpu-1; nothing was queued; " \
                             "try again"
    assert (app.sent(), gpu.sent()) == (["lock", "settle", "unlock"], ["settle"])


def test_a_busy_lock_is_waited_for_then_named(site: Any) -> None:
    app, gpu = Host("app-1", busy=True), Host("gpu-1")
    with pytest.raises(HostctlError) as err:
        _admit(site, {"app-1": app, "gpu-1": gpu})
    assert str(err.value) == ('app-1: another admission held the lock for 30 s (t0 {"who": '
                              '"bob"}); try again')
    assert gpu.sent() == []


def test_a_run_that_waits_moves_to_where_its_projects_runs_are(site: Any) -> None:
    app = Host("app-1", "@@quota ml 2000 0 0\n@@gpu_ms ml 0\n")
    gpu = Host("gpu-1", "@@quota ml 0 0 0\n@@gpu_ms ml 0\n")
    runners = {"app-1": app.runner, "gpu-1": gpu.runner}
    w = P.find_job(site, "train")
    adm = Admission(site, w, runners, "{}", {}, clock=lambda: 1_796_428_800.0)

    def build(host: str) -> list[H.RunRequest]:
        return [adm.prepare(P.request(w, site.inventory.hosts[host], "r1"))]

    answers, outcome = adm.submit({"gpu-1": build("gpu-1")}, H.submit_lines,
                                  lambda admitted: {"app-1": build("app-1")})
    assert list(answers) == ["app-1"] and not outcome.admitted
    assert app.sent() == ["lock", "settle", "grant ml 0 - -", "submit", "unlock"]
    assert gpu.sent() == ["settle", "grant ml 0 - -"]


def test_over_budget_is_recorded_only_when_it_passed_a_spent_budget(site: Any) -> None:
    app, gpu = Host("app-1", f"@@quota ml 0 0 0\n@@gpu_ms ml {HOUR_MS}\n"), Host("gpu-1")
    _admit(site, {"app-1": app, "gpu-1": gpu}, over_budget="paper due")
    assert gpu.sent() == ["settle", "grant ml 1000 - -", "submit"]
    assert "over_budget" not in gpu.runner.calls[-1].stdin.decode()


def test_a_project_listed_for_its_priority_alone_is_not_admitted_by_the_lock(
        tmp_path: Path) -> None:
    site = made_site(tmp_path, SPECS, BASE_INVENTORY + "projects:\n  ml: {priority: high}\n")
    gpu = Host("gpu-1")
    answers, outcome = _admit(site, {"gpu-1": gpu})
    assert outcome is None and gpu.sent() == ["submit"] and list(answers) == ["gpu-1"]
    submitted = gpu.runner.calls[-1].stdin.decode()
    assert "printf '%s\\n' high > /var/lib/hostctl/runs/.new-r1/priority" in submitted
    assert "/hold" not in submitted
