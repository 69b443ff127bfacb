"""Fair sharing end to end on sandbox hosts (real sshd, systemd, Docker): a project's quota
admits runs under the fleet lock on app-1 and holds the rest until room frees; concurrent
submitters never exceed it together; a spent monthly GPU budget refuses runs unless an owner
passes with a reason (kept in the audit log); a host's queue starts the highest priority
first. gpu-1 hands device ids out in HOSTCTL_GPU_DEVICES (no NVIDIA here). Every wait is
bounded."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator

import pytest
import yaml

from tests.rigs.deploy_rig import Site, concurrently, example_site, job_spec, wait_for

pytestmark = pytest.mark.sandbox
__all__ = ["example_site"]

APP = {"placement": {"labels": {"role": "app"}}}
GPU = {"placement": {"labels": {"role": "gpu"}}}
QUICK = {"stop_timeout": "2s", "timeout": "2m"}
SPECS = yaml.safe_dump_all([
    # quota: 1 CPU at once; each run asks 0.6, so one at a time, fleet-wide
    job_spec("q-app", "sleep ${SLEEP:-4}", project="quota", resources={"cpus": 0.6}, **APP,
             **QUICK),
    job_spec("q-any", "sleep ${SLEEP:-3}", project="quota", resources={"cpus": 0.6}, **QUICK),
    # budget: a sliver of a GPU-hour a month (one second of GPU spends it); alice owns it
    job_spec("b-gpu", "sleep 1", project="budget", resources={"gpus": 1, "cpus": 0.1}, **GPU,
             **QUICK),
    # no limits: only the host's queue order (gpu-1's one GPU makes them queue)
    job_spec("p-job", 'echo "$NAME at $(date +%s%N)"; sleep ${SLEEP:-1}', project="prio",
             resources={"gpus": 1, "cpus": 0.1}, **GPU, **QUICK),
])
NAMES = ("q-app", "q-any", "b-gpu", "p-job")
PROJECTS = {"ledger_host": "app-1",
            "quota": {"cpus": 1, "priority": "normal"},
            "budget": {"gpu_hours_per_month": 0.0002, "owners": ["alice"]}}


@pytest.fixture(scope="module")
def site(example_site: Site) -> Iterator[Site]:
    data = yaml.safe_load(example_site.inventory.read_text())
    projects = {**data.get("projects", {}), **PROJECTS}
    example_site.deploy_jobs("quota-test.yml", SPECS, NAMES, projects=projects)
    yield example_site


def _runs(site: Site, host: str, job: str) -> list[dict[str, str]]:
    ids = site.ssh(host, f"grep -l -x {job} /var/lib/hostctl/runs/*/job 2>/dev/null | "
                         "xargs -r -n1 dirname | xargs -r -n1 basename").split()
    return [site.run_record(host, i) for i in ids]


def _ended(site: Site, host: str, run_id: str) -> bool:
    return site.run_record(host, run_id).get("state") in ("succeeded", "failed", "cancelled")


def test_a_full_quota_holds_the_next_run_until_one_ends(site: Site) -> None:
    first = site.run_json("q-app", "--set", "SLEEP=12")
    assert first["state"] in ("starting", "running"), first
    second = site.run_json("q-app", "--set", "SLEEP=1")
    assert (second["host"], second["state"]) == ("app-1", "queued"), second
    assert site.run_record("app-1", second["run"])["hold"] == "quota"
    # `hostctl projects` shows the use now.
    shown = json.loads(site.on("projects", "--json").stdout)
    quota = next(p for p in shown["projects"] if p["project"] == "quota")
    assert (quota["used"]["cpus"], quota["quota"]["cpus"], quota["runs"]) == (
        0.6, 1, {"running": 1, "queued": 0, "waiting_for_quota": 1})
    listing = site.on("jobs")
    line = next(x for x in listing.stdout.splitlines() if x.startswith(second["run"]))
    assert "queued (#1: waits for its project's quota)" in line, listing.stdout
    # --no-wait refuses instead, naming use / quota; nothing is queued for it.
    refused = site.on("run", "q-app", "--no-wait")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "error: project quota's quota is in use: 0.6/1 CPUs (runs and services), 1 run(s) "
        "waiting before it; without --no-wait the run waits for it")
    assert len(_runs(site, "app-1", "q-app")) == 2
    # The first ends: its host lifts the hold at once, with no hostctl around.
    assert wait_for(lambda: _ended(site, "app-1", second["run"]), timeout=60, every=1)
    a, b = (site.run_record("app-1", r["run"]) for r in (first, second))
    assert (a["state"], b["state"]) == ("succeeded", "succeeded")
    assert int(b["started"]) >= int(a["ended"]), (a, b)
    assert "hold" not in b


def test_concurrent_submitters_never_exceed_the_quota_together(site: Site) -> None:
    answers = concurrently(4, lambda: site.on("run", "q-any", "--json"))
    assert [a.returncode for a in answers] == [0, 0, 0, 0], [a.stderr for a in answers]
    placed = [json.loads(a.stdout) for a in answers]
    assert sum(p["state"] != "queued" for p in placed) == 1, placed
    # The three that wait went where the admitted one runs: each starts as the one before
    # it ends, one at a time.
    assert len({p["host"] for p in placed}) == 1, placed
    host = placed[0]["host"]
    assert wait_for(lambda: all(_ended(site, host, p["run"]) for p in placed),
                    timeout=120, every=2)
    spans = sorted((int(r["started"]), int(r["ended"]), r["state"]) for r in
                   (site.run_record(host, p["run"]) for p in placed))
    assert [s for _, _, s in spans] == ["succeeded"] * 4
    for (_, end, _), (start, _, _) in itertools.pairwise(spans):
        assert start >= end, spans


def test_a_spent_budget_refuses_runs_unless_an_owner_gives_a_reason(site: Site) -> None:
    alice = {"HOSTCTL_USER": "alice"}
    first = site.hostctl("run", "-i", str(site.inventory), "b-gpu", "--wait", env=alice)
    assert first.returncode == 0, first.stdout + first.stderr
    refused = site.hostctl("run", "-i", str(site.inventory), "b-gpu", env=alice)
    assert refused.returncode == 1
    assert re.fullmatch(
        r"error: project budget has used 0\.000[3-9]\d? of its 0\.0002 GPU-hours this month; "
        r"the budget resets 20\d\d-\d\d-01 00:00 UTC; an owner may pass with --over-budget "
        r"REASON", refused.stderr.strip()), refused.stderr
    carol = site.hostctl("run", "-i", str(site.inventory), "b-gpu", "--over-budget", "x",
                         env={"HOSTCTL_USER": "carol"})
    assert carol.stderr.strip() == ("error: carol may not submit runs of project budget (its "
                                    "owners: alice); HOSTCTL_USER names who you are")
    passed = site.hostctl("run", "-i", str(site.inventory), "b-gpu", "--wait",
                          "--over-budget", "paper deadline friday", env=alice)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    kept = [r for r in site.audit("gpu-1") if r.get("result") == "over-budget"]
    assert [(r["message"], r["project"], r["job"]) for r in kept] == [
        ("paper deadline friday", "budget", "b-gpu")]
    assert [r.get("over_budget", "") for r in _runs(site, "gpu-1", "b-gpu")].count(
        "paper deadline friday") == 1
    shown = json.loads(site.on("projects", "--json").stdout)
    budget = next(p for p in shown["projects"] if p["project"] == "budget")
    assert budget["gpu_hours_this_month"] > 0.0002 * 2 and budget["owners"] == ["alice"]


def test_a_hosts_queue_starts_the_highest_priority_first(site: Site) -> None:
    hog = site.run_json("p-job", "--set", "SLEEP=5", "--set", "NAME=hog")
    assert hog["state"] in ("starting", "running"), hog
    runs = {prio: site.run_json("p-job", "--priority", prio, "--set", f"NAME={prio}")["run"]
            for prio in ("low", "normal", "high")}
    listing = site.on("jobs").stdout.splitlines()
    places = {prio: next(x for x in listing if x.startswith(r)) for prio, r in runs.items()}
    # The host's one GPU is busy: all three wait for it, in the order they will start.
    for place, prio in enumerate(("high", "normal", "low"), 1):
        assert f"queued (#{place}: waits for GPUs)" in places[prio], listing
    assert wait_for(lambda: all(_ended(site, "gpu-1", r) for r in runs.values()),
                    timeout=90, every=2)
    started = sorted((int(site.run_record("gpu-1", r)["started"]), prio)
                     for prio, r in runs.items())
    assert [prio for _, prio in started] == ["high", "normal", "low"]


def test_cancel_takes_a_waiting_run_out_and_frees_a_running_ones_share_at_once(
        site: Site) -> None:
    hog = site.run_json("q-app", "--set", "SLEEP=60")
    held = site.run_json("q-app", "--set", "SLEEP=1")
    assert site.run_record("app-1", held["run"]).get("hold") == "quota"
    out = site.on("cancel", held["run"])
    assert (out.returncode, out.stdout.strip()) == (0, f"run {held['run']} on app-1: "
                                                       "cancelled"), out.stderr
    nxt = site.run_json("q-app", "--set", "SLEEP=1")
    assert site.run_record("app-1", nxt["run"]).get("hold") == "quota"
    stopped = site.on("cancel", hog["run"])
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    # The share the cancelled run held goes to the next waiting run at once (no natural end).
    assert wait_for(lambda: _ended(site, "app-1", nxt["run"]), timeout=30, every=1)
    assert site.run_record("app-1", nxt["run"])["state"] == "succeeded"
    assert site.run_record("app-1", hog["run"])["state"] == "cancelled"
