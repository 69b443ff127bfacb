"""The rules of admission (hostctl.jobs.quota): who gets the room left under a project's
quota, in which order, what a settle answer means, and the words of refusals."""

from __future__ import annotations

from typing import Any

import pytest

from hostctl.errors import HostctlError
from hostctl.jobs import quota as Q
from hostctl.spec.sections.projects import ProjectQuota

A = Q.Amount
GPU = A(1000, 0, 1)  # one CPU and one GPU
NOW = 10 * Q.AGE_STEP_MS


def w(host: str, rid: str, prio: str = "normal", at: int = NOW, ask: Q.Amount = GPU
      ) -> Q.Waiting:
    return Q.Waiting(host, rid, prio, at, ask)


@pytest.mark.parametrize(("limit", "services", "admitted", "waiting", "new", "granted",
                          "admitted_new", "ahead"), [
    # room for the new run: granted to its host
    (Q.Limit(gpus=2), A(), {"a": GPU}, [], [w("b", "n")], {"a": A(), "b": GPU}, True, 0),
    # full: the new run waits, nothing granted
    (Q.Limit(gpus=1), A(), {"a": GPU}, [], [w("b", "n")], {"a": A()}, False, 0),
    # services count: 1 GPU in a service leaves none for a run under a quota of 1
    (Q.Limit(gpus=1), A(0, 0, 1), {"a": A()}, [], [w("a", "n")], {"a": A()}, False, 0),
    # a waiting run goes first (older, same priority); the new one waits behind it
    (Q.Limit(gpus=2), A(), {"a": GPU, "b": A()}, [w("b", "old", at=NOW - 5)],
     [w("a", "n")], {"a": A(), "b": GPU}, False, 1),
    # a high-priority new run goes before a normal waiting one
    (Q.Limit(gpus=2), A(), {"a": GPU, "b": A()}, [w("b", "old", at=NOW - 5)],
     [w("a", "n", "high")], {"a": GPU, "b": A()}, True, 0),
    # strict: a waiting run too big for the room stops the line (no smaller run passes it)
    (Q.Limit(gpus=3), A(), {"a": GPU}, [w("a", "big", at=NOW - 5, ask=A(1000, 0, 3))],
     [w("a", "n")], {"a": A()}, False, 1),
    # ageing: a low run waiting for two steps (60 min) is high, and older: it goes first
    (Q.Limit(gpus=2), A(), {"a": GPU}, [w("a", "aged", "low", at=NOW - 2 * Q.AGE_STEP_MS)],
     [w("a", "n", "high")], {"a": GPU}, False, 1),
    # one step (30 min) is not enough: low -> normal stays behind a high one
    (Q.Limit(gpus=2), A(), {"a": GPU}, [w("a", "aged", "low", at=NOW - Q.AGE_STEP_MS)],
     [w("a", "n", "high")], {"a": GPU}, True, 0),
    # unlimited resources are not counted: only memory limits here
    (Q.Limit(memory=4), A(), {"a": A(5000, 3, 7)}, [], [w("a", "n", ask=A(9000, 1, 9))],
     {"a": A(9000, 1, 9)}, True, 0),
    # CPUs limit: 2 CPUs used of 3, a 2-CPU run waits
    (Q.Limit(cpu=3000), A(), {"a": A(2000, 0, 0)}, [], [w("a", "n", ask=A(2000, 0, 0))],
     {"a": A()}, False, 0),
    # two new runs (shards), room for one: the first is granted, and they wait
    (Q.Limit(gpus=1), A(), {"a": A()}, [], [w("a", "s0"), w("b", "s1")],
     {"a": GPU}, False, 0),
    # over the quota already (a services change): nothing granted, never negative grants
    (Q.Limit(gpus=1), A(0, 0, 2), {"a": A()}, [w("a", "x")], [], {"a": A()}, True, 0),
])
def test_grant_hands_the_room_out_strictly_in_queue_order(
        limit: Q.Limit, services: Q.Amount, admitted: dict[str, Q.Amount],
        waiting: list[Q.Waiting], new: list[Q.Waiting], granted: dict[str, Q.Amount],
        admitted_new: bool, ahead: int) -> None:
    out = Q.grant(limit, services, admitted, waiting, NOW, new)
    assert {h: a for h, a in out.grants.items() if a != A() or h in granted} == granted
    assert (out.admitted, out.ahead) == (admitted_new, ahead)


def test_grant_reports_use_of_services_and_admitted_runs() -> None:
    out = Q.grant(Q.Limit(gpus=4, cpu=8000, memory=2**35), A(500, 2**30, 1),
                  {"a": A(2000, 2**32, 1), "b": A(1000, 0, 1)}, [], NOW)
    assert out.used == A(3500, 2**30 + 2**32, 3)
    assert Q.use_text(Q.Limit(gpus=4, cpu=8000, memory=2**35), out.used) == \
        "3/4 GPUs, 3.5/8 CPUs, 5Gi/32Gi memory"


@pytest.mark.parametrize(("priority", "waited", "level"), [
    ("low", 0, 0), ("low", Q.AGE_STEP_MS - 1, 0), ("low", Q.AGE_STEP_MS, 1),
    ("low", 2 * Q.AGE_STEP_MS, 2), ("low", 9 * Q.AGE_STEP_MS, 2), ("normal", 0, 1),
    ("high", 0, 2), ("normal", Q.AGE_STEP_MS, 2), ("bogus", 0, 1),
])
def test_a_waiting_run_gains_a_level_per_age_step_up_to_high(priority: str, waited: int,
                                                             level: int) -> None:
    assert Q.level(priority, NOW - waited, NOW) == level


def test_settle_answer_parsed_and_junk_ignored() -> None:
    text = "\n".join([
        "@@quota triage 2000 4294967296 1", "@@quota bad x 1 1",
        "@@held triage r1 high 1700 1000 0 1", "@@held triage r2 normal 17 1 2",
        "@@gpu_ms triage 7200000", "@@svc_gpu_ms hostctl-api-1.service 3600000",
        "@@gpu_ms triage -5", "noise",
        "@@gpu_model_ms run triage a100-80g 5000", "@@gpu_model_ms run triage - 7",
        "@@gpu_model_ms svc hostctl-api-1.service l4 3", "@@gpu_model_ms bad x y 1", "@@end"])
    s = Q.parse_settle("app-1", text)
    assert s.admitted == {"triage": A(2000, 2**32, 1)}
    assert s.held == {"triage": [Q.Waiting("app-1", "r1", "high", 1700, A(1000, 0, 1))]}
    assert s.gpu_ms == {"triage": 7200000}
    assert s.svc_gpu_ms == {"hostctl-api-1.service": 3600000}
    assert s.run_model_ms == {("triage", "a100-80g"): 5000, ("triage", ""): 7}
    assert s.svc_model_ms == {("hostctl-api-1.service", "l4"): 3}
    # cut short (no end marker): nothing of it is believed
    with pytest.raises(Q.SettleReadError):
        Q.parse_settle("app-1", "@@quota triage 0 0 0\n")


@pytest.mark.parametrize("call", [lambda: Q.settle_lines(["p", "a b"]),
                                  lambda: Q.settle_lines(["-p"]),
                                  lambda: Q.grant_lines("p;x", A(1, 1, 1), Q.Limit(1, 1, 1)),
                                  lambda: Q.grant_lines("p", A(-1, 1, 1), Q.Limit(1, 1, 1)),
                                  lambda: Q.drop_lines("")])
def test_the_builders_take_project_names_and_grants_only(call: Any) -> None:
    with pytest.raises(ValueError):
        call()


def test_grant_lines_keep_unlimited_resources_unlimited() -> None:
    assert Q.grant_lines("triage", A(2000, 5, 1), Q.Limit(gpus=2)) == [
        "/var/lib/hostctl/bin/hostctl-jobs quota-grant triage - - 1"]
    assert Q.grant_lines("t", A(2000, 5, 1), Q.Limit(2, 3, 4))[0].endswith(
        "quota-grant t 2000 5 1")


@pytest.mark.parametrize(("used_h", "now", "message"), [
    (199.9, "2026-12-05", None),
    (200, "2026-12-05", "project triage has used 200.0 of its 200 GPU-hours this month; the "
     "budget resets 2027-01-01 00:00 UTC; an owner may pass with --over-budget REASON"),
    (250.04, "2026-02-28", "project triage has used 250.0 of its 200 GPU-hours this month; "
     "the budget resets 2026-03-01 00:00 UTC; an owner may pass with --over-budget REASON"),
])
def test_budget_refusal_names_usage_budget_and_reset(used_h: float, now: str,
                                                     message: str | None) -> None:
    import calendar
    import time

    now_ms = calendar.timegm(time.strptime(now, "%Y-%m-%d")) * 1000
    quota = ProjectQuota(gpu_hours_per_month=200)
    assert Q.budget_error("triage", quota, round(used_h * 3_600_000), now_ms) == message
    assert Q.budget_error("triage", ProjectQuota(), 10**12, now_ms) is None


def test_month_start_is_the_first_of_the_month_utc() -> None:
    assert Q.month_start_ms(1796428800000 + 86399999) == 1796428800000 - 4 * 86400000


@pytest.mark.parametrize(("env", "owners", "refused"), [
    ("alice", ("alice", "bob"), None), ("carol", ("alice", "bob"), "carol may not submit runs "
     "of project triage (its owners: alice, bob); HOSTCTL_USER names who you are"),
    ("carol", (), None),
])
def test_owners_are_matched_against_hostctl_user(monkeypatch: pytest.MonkeyPatch, env: str,
                                                 owners: tuple[str, ...],
                                                 refused: str | None) -> None:
    monkeypatch.setenv("HOSTCTL_USER", env)
    user = Q.identity()
    assert user == env
    if refused is None:
        Q.check_owner("triage", ProjectQuota(owners=owners), user)
    else:
        with pytest.raises(HostctlError) as err:
            Q.check_owner("triage", ProjectQuota(owners=owners), user)
        assert str(err.value) == refused


def _sh(lines: list[str]) -> str:
    import subprocess

    return subprocess.run(["sh", "-s"], input="\n".join(lines) + "\n", capture_output=True,
                           text=True, timeout=30, check=True).stdout


def test_the_admission_lock_is_taken_once_waited_for_taken_over_when_stale(tmp_path) -> None:
    import os

    lock = str(tmp_path / "state" / "admission.lock")
    assert _sh(Q.lock_lines('{"who": "a"}', "t1", lock, wait_s=1)) == "@@admission locked\n"
    # held: the second taker waits, then gives up naming the holder
    assert _sh(Q.lock_lines('{"who": "b"}', "t2", lock, wait_s=1)) == \
        '@@admission busy\nt1 {"who": "a"}\n'
    # only its holder's token releases it
    _sh(Q.unlock_lines("t2", lock))
    assert os.path.isdir(lock)
    _sh(Q.unlock_lines("t1", lock))
    assert not os.path.exists(lock)
    # a lock older than LOCK_STALE_S (its taker died) is taken over
    assert _sh(Q.lock_lines("{}", "t3", lock, wait_s=1)) == "@@admission locked\n"
    old = os.path.getmtime(lock) - Q.LOCK_STALE_S - 5
    os.utime(lock, (old, old))
    assert _sh(Q.lock_lines("{}", "t4", lock, wait_s=1)) == "@@admission locked\n"
    with open(os.path.join(lock, "holder")) as f:
        assert f.read() == "t4 {}\n"


JOBS = {"jobs.yml": """\
kind: job
name: train
project: ml
image: reg/train:1
resources: {cpus: 1}
---
kind: job
name: etl
project: data
image: reg/etl:1
resources: {cpus: 1}
---
kind: service
name: api
project: ml
image: reg/api:1
resources: {cpus: 1.5, memory: 1Gi}
instances: 2
placement: {labels: {role: app}}
"""}


def test_a_timer_run_gets_its_projects_priority_and_services_count(tmp_path) -> None:
    from hostctl.render.site import job_unit, project_priority
    from tests.rigs.site_factory import BASE_INVENTORY, made_site

    site = made_site(tmp_path, JOBS, BASE_INVENTORY + "projects:\n  ml: {priority: high, "
                     "cpus: 8}\n")
    inv = site.inventory
    train, etl = (next(w for w in site.jobs if w.name == n) for n in ("train", "etl"))
    host = inv.hosts["app-1"]
    assert project_priority(inv, "ml") == "high"
    assert b"HOSTCTL_JOB_PRIORITY=high" in job_unit(train, host, inv.site,
                                                    priority="high").content
    assert b"HOSTCTL_JOB_PRIORITY" not in job_unit(etl, host, inv.site).content
    # two instances of 1.5 CPUs and 1 GiB on the one app host
    assert Q.services_use(site, "ml") == A(3000, 2 * 2**30, 0)
    assert Q.unit_projects(site) == {"hostctl-api-1.service": "ml",
                                     "hostctl-api-2.service": "ml"}
    assert Q.run_ask(train, inv) == A(1000, 0, 0)


def test_validate_refuses_services_that_leave_no_room_for_a_run(tmp_path) -> None:
    from tests.rigs.site_factory import BASE_INVENTORY, refusals

    got = refusals(tmp_path, JOBS, BASE_INVENTORY + "projects:\n  ml: {cpus: 2}\n")
    assert [p.removeprefix(f"{tmp_path}/") for p in got if "services of ml" in p] == [
        "site.yml:11: projects/ml/cpus: is 2 but the services of ml (api) take 3 CPU(s) "
        "together, every instance on every host they are placed on: no run of the project "
        "could start; raise the quota, or lower their resources or instances"], got


def test_projects_table_prices_gpu_hours_by_model(tmp_path) -> None:
    from hostctl.jobs import projects_view as PV
    from tests.rigs.site_factory import BASE_INVENTORY, made_site
    from tests.unit.jobs.runs_data import record

    inventory = (BASE_INVENTORY.replace("role: gpu}, gpus: 1}",
                                        "role: gpu}, gpus: [{model: a100-80g, count: 1}]}")
                 + "metrics:\n  prices: {currency: EUR, gpu_hour: 1.0, gpu_hour_by_model: "
                 "{a100-80g: 3.0}}\nprojects:\n  ml: {cpus: 8, gpu_hours_per_month: 100, "
                 "owners: [alice]}\n")
    site = made_site(tmp_path, JOBS, inventory)
    runs = [record("r1", "app-1", state="running", project="ml", job="train", cpus=1000),
            record("r2", "app-1", state="queued", project="ml", job="train", hold="quota"),
            record("r3", "app-1", state="queued", project="data", job="etl", cpus=500),
            record("r4", "app-1", state="succeeded", project="ml", job="train")]
    rows = PV.project_uses(site, runs, {"ml": 2 * 3_600_000},
                           {"ml": {"a100-80g": 3_600_000, "": 3_600_000}})
    assert PV.lines(rows) == [
        "PROJECT  GPUS  CPUS   MEMORY  RUNNING  QUEUED  WAITING  GPU-HOURS  BUDGET  COST      "
        "PRIORITY  OWNERS",
        "data     0/-   0.5/-  0/-     0        1       0        0.0        -       0.00 EUR  "
        "normal    anyone",
        # its services (2 x 1.5 CPUs, 1Gi) and its running run (1 CPU); an hour of the a100
        # at 3.0 and an hour of a GPU of no model at 1.0
        "ml       0/-   4/8    2Gi/-   1        0       1        2.0        100     4.00 EUR  "
        "normal    alice"]
    ml = PV.as_json(rows[1])
    assert (ml["used"], ml["runs"], ml["cost_this_month"], ml["gpu_hours_per_month"]) == (
        {"gpus": 0, "cpus": 4.0, "memory": 2 * 2**30},
        {"running": 1, "queued": 0, "waiting_for_quota": 1}, 4.0, 100)
