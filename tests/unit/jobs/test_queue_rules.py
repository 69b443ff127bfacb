"""Issue 13, the host side: queue order with priorities and ageing, project allotments
(held runs, strict promotion, quota-settle/grant/drop), why each waiting run waits, and the
GPU time of runs and services in the month. The queue helper runs locally (conftest's
`helper`: a tmp HOSTCTL_STATE, two CPUs, stub systemctl)."""

from __future__ import annotations

import datetime
import time
from typing import Any

import pytest

from hostctl.jobs import hostside as H
from hostctl.jobs import quota as Q
from hostctl.jobs import records as rec

MIN = 60_000
TB = 10**15  # more memory than any host has: capped to the host's, it takes all of it


def now_ms() -> int:
    return int(time.time() * 1000)


def queue(h: Any, runs: list[tuple[str, dict[str, object]]],
          quotas: dict[str, str] | None = None, devices: str = "0") -> Any:
    """Allotments, then the runs (ID, fields; `age` in minutes sets submitted) submitted
    in the order given, in one call."""
    (h.root / "gpu" / "devices").write_text(devices + "\n")
    for project, line in (quotas or {}).items():
        (h.root / "quota").mkdir(exist_ok=True)
        (h.root / "quota" / project).write_text(line + "\n")
    t = now_ms()
    for run_id, fields in runs:
        fields = dict(fields)
        age = fields.pop("age", None)
        if age is not None:
            fields["submitted"] = t - int(float(str(age)) * MIN)
        h.prepare(run_id, int(str(fields.pop("need", 0))), **{"cpus": 100, **fields})
    return ok(h("submit", *(r for r, _ in runs)))


def ok(res: Any) -> Any:
    assert res.returncode == 0, res.stderr
    return res


def states(h: Any, ids: list[str]) -> dict[str, tuple[str, str, str]]:
    """id -> (state, hold, waiting)."""
    return {i: (h.field(i, "state"), h.field(i, "hold"), h.field(i, "waiting")) for i in ids}


BIG = {"cpus": 2000}  # all of the helper's 2 CPUs: one such run at a time


# Submit order -> which run the queue starts; every run takes both CPUs, so one starts.
@pytest.mark.parametrize(("runs", "starts"), [
    ([("n1", {}), ("l1", {"priority": "low"}), ("h1", {"priority": "high"})], "h1"),
    ([("n1", {}), ("l1", {"priority": "low"}), ("n2", {})], "n1"),  # FIFO within a level
    ([("l1", {"priority": "low"}), ("n1", {})], "n1"),
    ([("h1", {"priority": "high"}), ("h2", {"priority": "high"})], "h1"),
    # Ageing: one level per 30 minutes waited, at most high's.
    ([("l1", {"priority": "low", "age": 61}), ("h1", {"priority": "high", "age": 0})], "l1"),
    ([("l1", {"priority": "low", "age": 59}), ("h1", {"priority": "high", "age": 0})], "h1"),
    ([("l1", {"priority": "low", "age": 31}), ("n1", {"age": 0})], "l1"),
    ([("l1", {"priority": "low", "age": 29}), ("n1", {"age": 0})], "n1"),
    ([("n1", {"age": 0}), ("h1", {"priority": "high", "age": 31})], "h1"),
    ([("n1", {"age": 200}), ("h1", {"priority": "high", "age": 0})], "n1"),  # capped at high
    ([("x1", {"priority": "urgent"}), ("l1", {"priority": "low"})], "x1"),  # unknown: normal
])
def test_priority_order_with_ageing(helper: Any, runs: list[Any], starts: str) -> None:
    queue(helper, [(r, {**BIG, **f}) for r, f in runs])
    assert [r for r, _ in runs if helper.field(r, "state") == "starting"] == [starts]


def test_the_waiting_runs_are_told_their_place_in_queue_order(helper: Any) -> None:
    queue(helper, [("l1", {**BIG, "priority": "low"}), ("n1", BIG),
                   ("h1", {**BIG, "priority": "high"}), ("n2", BIG)])
    assert {r: helper.field(r, "waiting") for r in ("h1", "n1", "n2", "l1")} == {
        "h1": "", "n1": "1 CPUs", "n2": "2 behind 1 run(s)", "l1": "3 behind 2 run(s)"}
    # what `hostctl jobs` reads back: the host's order, not the seq
    read = ok(helper("dispatch"))
    assert read.stdout == ""
    lines = [f"{r}/{f}:{helper.field(r, f)}" for r in ("l1", "n1", "h1", "n2")
             for f in ("state", "seq", "waiting", "priority")]
    records = rec.parse_records("h", lines)
    assert rec.queue_positions(records) == {"n1": 1, "n2": 2, "l1": 3}
    assert [(r.id, r.priority, r.wait_position, r.wait_reason) for r in records] == [
        ("l1", "low", 3, "behind 2 run(s)"), ("n1", "normal", 1, "CPUs"),
        ("h1", "high", None, ""), ("n2", "normal", 2, "behind 1 run(s)")]


# The runs (submitted in this order), allotments, GPU devices -> each run's waiting field.
@pytest.mark.parametrize(("runs", "quotas", "devices", "waiting"), [
    ([("a", BIG), ("b", {"cpus": 500}), ("c", {"cpus": 500})], {}, "0",
     {"a": "", "b": "1 CPUs", "c": "2 behind 1 run(s)"}),
    ([("a", {"memory": TB}), ("b", {"memory": 1}), ("c", {})], {}, "0",
     {"a": "", "b": "1 memory", "c": "2 behind 1 run(s)"}),
    ([("a", {"need": 1}), ("b", {"need": 2}), ("c", {"need": 1}), ("d", {})], {}, "0 1",
     {"a": "", "b": "1 GPUs", "c": "2 behind 1 run(s)", "d": ""}),
    ([("a", {"need": 1}), ("b", {"need": 1})], {}, "0", {"a": "", "b": "1 GPUs"}),
    ([("a", {"project": "p", "hold": "quota"}), ("b", {"not_before": 4 * 10**12}),
      ("c", BIG), ("d", {})], {"p": "0 0 0"}, "0",
     {"a": "1 quota", "b": "2 retry back-off", "c": "", "d": "3 CPUs"}),
    # held runs are not counted in "behind N"
    ([("a", BIG), ("b", {"project": "p", "hold": "quota"}), ("c", {})], {"p": "0 - -"}, "0",
     {"a": "", "b": "1 quota", "c": "2 CPUs"}),
    ([("a", BIG), ("b", {}), ("c", {"project": "p", "hold": "quota"}), ("d", {})],
     {"p": "0 - -"}, "0",
     {"a": "", "b": "1 CPUs", "c": "2 quota", "d": "3 behind 1 run(s)"}),
])
def test_why_each_waiting_run_waits(helper: Any, runs: list[Any], quotas: dict[str, str],
                                    devices: str, waiting: dict[str, str]) -> None:
    queue(helper, runs, quotas, devices)
    assert {r: helper.field(r, "waiting") for r, _ in runs} == waiting
    for r, w in waiting.items():
        assert helper.field(r, "state") == ("queued" if w else "starting")


def test_waiting_goes_when_the_run_starts_or_ends(helper: Any) -> None:
    queue(helper, [("a", BIG), ("b", {}), ("c", {})])
    assert states(helper, ["b", "c"]) == {"b": ("queued", "", "1 CPUs"),
                                          "c": ("queued", "", "2 behind 1 run(s)")}
    assert ok(helper("cancel", "c")).stdout == "@@cancel c cancelled\n"
    assert states(helper, ["b", "c"]) == {"b": ("queued", "", "1 CPUs"),
                                          "c": ("cancelled", "", "")}
    ok(helper("cancel", "a"))
    assert states(helper, ["b"]) == {"b": ("starting", "", "")}
    history = (helper.root / "runs" / ".history").read_text()
    assert "c/state:cancelled\n" in history and "/waiting:" not in history


# Allotment, held runs (cpus, memory, need; submitted in this order) -> which are promoted.
@pytest.mark.parametrize(("allot", "held", "promoted"), [
    ("1000 - -", [("a", 500, 0, 0), ("b", 500, 0, 0), ("c", 100, 0, 0)], ["a", "b"]),
    # strict: the first that does not fit ends the project's promotions
    ("500 - -", [("a", 1000, 0, 0), ("b", 100, 0, 0)], []),
    ("- - 1", [("a", 100, 0, 1), ("b", 100, 0, 1), ("c", 100, 0, 0)], ["a"]),
    ("- 100 -", [("a", 100, 60, 0), ("b", 100, 40, 0), ("c", 100, 1, 0)], ["a", "b"]),
    ("- - -", [("a", 100, 1, 1), ("b", 100, 10**6, 2)], ["a", "b"]),
    ("999 - -", [("a", 0, 0, 0)], []),  # cpus 0 asks one CPU
    ("1000 - -", [("a", 0, 0, 0)], ["a"]),
    ("junk - -", [("a", 1, 0, 0)], []),  # a garbled number allows nothing
])
def test_held_runs_are_promoted_strictly_in_queue_order(
        helper: Any, allot: str, held: list[tuple[str, int, int, int]],
        promoted: list[str]) -> None:
    queue(helper, [(r, {"project": "p", "hold": "quota", "cpus": c, "memory": m, "need": g})
                   for r, c, m, g in held], {"p": allot}, devices="0 1 2")
    assert [r for r, *_ in held if helper.field(r, "hold") == ""] == promoted
    for r, *_ in held:  # a held run never starts
        assert helper.field(r, "state") == ("queued" if r not in promoted else "starting")


def test_admitted_runs_count_against_the_allotment_and_others_do_not(helper: Any) -> None:
    queue(helper, [("mine", {"project": "p", "cpus": 600}),
                   ("other", {"project": "q", "cpus": 600}),
                   ("held", {"project": "p", "hold": "quota", "cpus": 500}),
                   ("small", {"project": "p", "hold": "quota", "cpus": 600})], {"p": "1000 - -"})
    # strict: `held` does not fit beside `mine`, and `small` stays behind it
    assert states(helper, ["held", "small"]) == {"held": ("queued", "quota", "1 quota"),
                                                 "small": ("queued", "quota", "2 quota")}
    ok(helper("cancel", "other"))  # another project's run frees nothing of p's
    assert helper.field("held", "hold") == "quota"
    # a cancelled queued-admitted run frees its share at once: the next held run goes
    assert ok(helper("cancel", "mine")).stdout == "@@cancel mine cancelled\n"
    assert states(helper, ["held", "small"]) == {"held": ("starting", "", ""),
                                                 "small": ("queued", "quota", "1 quota")}


def test_cancel_of_a_held_run(helper: Any) -> None:
    queue(helper, [("a", {"project": "p", "hold": "quota"}),
                   ("b", {"project": "p", "hold": "quota"})], {"p": "0 0 0"})
    assert ok(helper("cancel", "a")).stdout == "@@cancel a cancelled\n"
    assert states(helper, ["a", "b"]) == {"a": ("cancelled", "quota", ""),
                                          "b": ("queued", "quota", "1 quota")}
    assert "a" not in {p.name for p in (helper.root / "runs" / ".active").iterdir()}


GRANTS = [  # allotment before (None: no file), grant -> the file after
    ("1000 2048 1", ("500", "0", "1"), "1500 2048 2"),
    ("1000 2048 1", ("-", "0", "0"), "- 2048 1"),
    ("- 2048 -", ("100", "100", "1"), "- 2148 -"),
    (None, ("0", "5", "-"), "0 5 -"),
    ("junk", ("1", "2", "3"), "1 2 3"),
]


@pytest.mark.parametrize(("before", "grant", "after"), GRANTS)
def test_quota_grant_adds_to_the_allotment(helper: Any, before: str | None,
                                           grant: tuple[str, str, str], after: str) -> None:
    if before is not None:
        (helper.root / "quota").mkdir()
        (helper.root / "quota" / "p").write_text(before + "\n")
    assert ok(helper("quota-grant", "p", *grant)).stdout == f"@@allot p {after}\n"
    assert (helper.root / "quota" / "p").read_text() == after + "\n"


def test_grant_promotes_in_order_and_drop_releases_every_hold(helper: Any) -> None:
    queue(helper, [("a", {"project": "p", "hold": "quota", "cpus": 300}),
                   ("b", {"project": "p", "hold": "quota", "cpus": 300}),
                   ("c", {"project": "p", "hold": "quota", "cpus": 300}),
                   ("q1", {"project": "q", "hold": "quota"})], {"p": "0 0 0"})
    ok(helper("quota-grant", "p", "300", "0", "0"))
    assert [helper.field(r, "hold") for r in "abc"] == ["", "quota", "quota"]
    ok(helper("quota-grant", "p", "500", "0", "0"))  # 800: b fits, c not
    assert [helper.field(r, "hold") for r in "abc"] == ["", "", "quota"]
    # q has no allotment here: not governed, its held run is released
    assert states(helper, ["q1"]) == {"q1": ("starting", "", "")}
    assert ok(helper("quota-drop", "p")).stdout == "@@dropped p\n"
    assert not (helper.root / "quota" / "p").exists()
    assert states(helper, ["c"]) == {"c": ("starting", "", "")}


@pytest.mark.parametrize("args", [("quota-grant", "p", "1", "x", "1"),
                                  ("quota-grant", "p", "1", "1"),
                                  ("quota-grant", "../p", "1", "1", "1"),
                                  ("quota-grant", "p", "", "1", "1"),
                                  ("quota-drop",), ("quota-drop", ".p"),
                                  ("quota-settle", "a/b"), ("quota-settle", "p", "")])
def test_quota_commands_refuse_bad_arguments(helper: Any, args: tuple[str, ...]) -> None:
    res = helper(*args)
    assert (res.returncode, res.stdout) == (2, "")
    assert not (helper.root / "quota").exists() or not any((helper.root / "quota").iterdir())


M0 = 1_790_000_000_000  # the month's start, for the tests (HOSTCTL_MONTH_START_MS)


def test_quota_settle_shrinks_the_allotment_to_what_is_admitted(helper: Any) -> None:
    queue(helper, [("r1", {"project": "p", "cpus": 0, "memory": 1024}),
                   ("r2", {"project": "p", "cpus": 700, "need": 1, "memory": 10}),
                   ("h1", {"project": "p", "hold": "quota", "cpus": 200, "memory": 5,
                           "need": 2, "priority": "low", "submitted": 111}),
                   ("h2", {"project": "p", "hold": "quota", "cpus": 300, "priority": "high",
                           "submitted": 222}),
                   ("other", {"project": "q", "cpus": 900})],
          {"p": "1700 1034 1", "q": "- - -"}, devices="0 1 2 3")
    ok(helper("cancel", "r1"))  # h1 still does not fit (GPUs), and h2 stays behind it
    res = ok(helper("quota-settle", "p", "z", HOSTCTL_MONTH_START_MS=str(M0)))
    # h2 (high) before h1 (low, old enough to be high as well: submitted at 111 ms)? h1 has
    # the lower seq and both are at level 2 after their ages: h1 first.
    assert res.stdout == (
        "@@quota p 700 10 1\n"
        "@@held p h1 low 111 200 5 2\n"
        "@@held p h2 high 222 300 0 0\n"
        "@@gpu_ms p 0\n"
        "@@quota z 0 0 0\n"
        "@@gpu_ms z 0\n")
    assert (helper.root / "quota" / "p").read_text() == "700 10 1\n"
    assert (helper.root / "quota" / "z").read_text() == "0 0 0\n"
    assert (helper.root / "quota" / "q").read_text() == "- - -\n"  # not settled: untouched
    assert states(helper, ["h1", "h2"]) == {"h1": ("queued", "quota", "1 quota"),
                                            "h2": ("queued", "quota", "2 quota")}


def test_settle_tells_the_held_runs_in_queue_order(helper: Any) -> None:
    queue(helper, [("l", {"project": "p", "hold": "quota", "priority": "low", "age": 0}),
                   ("n", {"project": "p", "hold": "quota", "age": 0}),
                   ("h", {"project": "p", "hold": "quota", "priority": "high", "age": 0})],
          {"p": "0 0 0"})
    res = ok(helper("quota-settle", "p", HOSTCTL_MONTH_START_MS=str(M0)))
    assert [line.split()[2:4] for line in res.stdout.splitlines() if line.startswith("@@held")] \
        == [["h", "high"], ["n", "normal"], ["l", "low"]]


def test_gpu_time_of_the_month(helper: Any) -> None:
    gpu = helper.root / "gpu"
    (gpu / "run-usage").write_text(
        f"p\t2\t{M0 - 1000}\t{M0 + 500}\n"   # spans the month's start: 2 x 500
        f"p\t1\t{M0 + 100}\t{M0 + 300}\n"    # 200
        f"p\t4\t{M0 - 5000}\t{M0 - 1000}\n"  # last month
        f"q\t1\t{M0}\t{M0 + 7}\n")
    (gpu / "svc-usage").write_text(f"u1.service\t1\t{M0 - 10}\t{M0 + 90}\n"
                                   f"u1.service\t2\t{M0 + 1000}\t{M0 + 1001}\n"
                                   f"old.service\t2\t{M0 - 100}\t{M0 - 1}\n")
    res = ok(helper("quota-settle", "p", "q", HOSTCTL_MONTH_START_MS=str(M0)))
    assert [line for line in res.stdout.splitlines() if "gpu_ms" in line] == [
        "@@gpu_ms p 1200", "@@gpu_ms q 7", "@@svc_gpu_ms u1.service 92"]


def test_the_month_starts_on_the_first_at_midnight_utc(helper: Any) -> None:
    today = datetime.datetime.now(datetime.UTC)
    m0 = int(today.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()) * 1000
    (helper.root / "gpu" / "run-usage").write_text(f"p\t3\t{m0 - 1000}\t{m0 + 5}\n")
    assert "@@gpu_ms p 15\n" in ok(helper("quota-settle", "p")).stdout


def test_gpu_time_of_running_runs_and_leased_services_counts_to_now(helper: Any) -> None:
    t0 = now_ms()
    month = t0 - 3_600_000
    queue(helper, [("r", {"project": "p", "need": 2})], {}, devices="0 1 2")
    ok(helper("admit", "train", "r"))
    started = int(helper.field("r", "started"))
    ok(helper("lease-service", "s.service", "1"))
    since = (helper.root / "gpu" / "since" / "s.service").read_text().split()
    assert since[0] == "1" and t0 <= int(since[1]) <= now_ms()
    (helper.root / "gpu" / "since" / "old.service").write_text(f"3 {month - 10**6}\n")
    before = now_ms()
    res = ok(helper("quota-settle", "p", HOSTCTL_MONTH_START_MS=str(month)))
    after = now_ms()
    got = dict(line.split()[1:] for line in res.stdout.splitlines() if "gpu_ms" in line)
    assert 2 * (before - started) <= int(got["p"]) <= 2 * (after - started)
    assert 3 * (before - month) <= int(got["old.service"]) <= 3 * (after - month)
    assert 0 <= int(got["s.service"]) <= after - int(since[1])
    # a run that ends appends its GPU time; a service that lets go, its lease's
    ok(helper("finished", "train", "r", SERVICE_RESULT="success", EXIT_STATUS="0"))
    ended = helper.field("r", "ended")
    assert (helper.root / "gpu" / "run-usage").read_text() == \
        f"p\t2\t{started}\t{ended}\t0,1\n"
    ok(helper("release-service", "s.service"))
    unit, n, start, end, devs = (helper.root / "gpu" / "svc-usage").read_text().split("\t")
    assert (unit, n, start, devs) == ("s.service", "1", since[1], "2\n") \
        and int(end) >= int(start)
    assert not (helper.root / "gpu" / "since" / "s.service").exists()


def test_a_dead_services_lease_and_a_retried_attempt_keep_their_gpu_time(helper: Any) -> None:
    queue(helper, [("r", {"project": "p", "need": 1})], {}, devices="0 1")
    ok(helper("admit", "train", "r"))
    started = helper.field("r", "started")
    ok(helper("finished", "train", "r", SERVICE_RESULT="exit-code", EXIT_STATUS="1"))
    assert helper.field("r", "state") == "queued"  # retried after its back-off
    proj, need, start, end, devs = (helper.root / "gpu" / "run-usage").read_text().split("\t")
    assert (proj, need, start, devs) == ("p", "1", started, "0\n") and int(end) >= int(start)
    ok(helper("cancel", "r"))  # queued: no GPU time of its own
    assert len((helper.root / "gpu" / "run-usage").read_text().splitlines()) == 1
    ok(helper("lease-service", "s.service", "1"))
    (helper.stub / "active" / "s.service").write_text("failed\n")
    ok(helper("dispatch"))
    assert (helper.root / "gpu" / "svc-usage").read_text().startswith("s.service\t1\t")
    assert not (helper.root / "gpu" / "since" / "s.service").exists()


def test_a_service_leasing_again_closes_its_last_lease_first(helper: Any) -> None:
    (helper.root / "gpu" / "devices").write_text("0 1\n")
    ok(helper("lease-service", "s.service", "1"))
    ok(helper("lease-service", "s.service", "2"))  # restarted, now asking two
    assert sorted(p.name for p in (helper.root / "gpu" / "lease").iterdir()) == ["0", "1"]
    assert (helper.root / "gpu" / "since" / "s.service").read_text().split()[0] == "2"
    assert (helper.root / "gpu" / "svc-usage").read_text().split("\t")[:2] == ["s.service", "1"]
    ok(helper("lease-service", "cpu.service", "0"))
    assert not (helper.root / "gpu" / "since" / "cpu.service").exists()


def test_tick_prunes_usage_older_than_400_days(helper: Any) -> None:
    old = now_ms() - 401 * 86_400_000
    recent = now_ms() - 399 * 86_400_000
    for name, key in (("run-usage", "p"), ("svc-usage", "u.service")):
        (helper.root / "gpu" / name).write_text(f"{key}\t1\t{old - 5}\t{old}\n"
                                                f"{key}\t1\t{old}\t{recent}\n")
    ok(helper("tick"))
    for name, key in (("run-usage", "p"), ("svc-usage", "u.service")):
        assert (helper.root / "gpu" / name).read_text() == f"{key}\t1\t{old}\t{recent}\n"


def scheduled(h: Any, **env: str) -> str:
    res = h("admit", "train", "scheduled", HOSTCTL_JOB_PROJECT="p", HOSTCTL_JOB_CPUS="100",
            **env)
    assert res.returncode == 1, res.stderr  # the timer's activation itself runs nothing
    (run_id,) = [p.name for p in (h.root / "runs" / ".active").iterdir()]
    return run_id


@pytest.mark.parametrize(("allot", "env", "want"), [
    ("0 0 0", {}, ("queued", "quota", "1 quota", "normal")),
    ("- - -", {"HOSTCTL_JOB_PRIORITY": "high"}, ("starting", "", "", "high")),
    (None, {"HOSTCTL_JOB_PRIORITY": "low"}, ("starting", "", "", "low")),
    (None, {"HOSTCTL_JOB_PRIORITY": "x; rm"}, ("starting", "", "", "normal")),
])
def test_a_timer_run_of_a_governed_project_waits_for_its_quota(
        helper: Any, allot: str | None, env: dict[str, str],
        want: tuple[str, str, str, str]) -> None:
    if allot is not None:
        (helper.root / "quota").mkdir()
        (helper.root / "quota" / "p").write_text(allot + "\n")
    run_id = scheduled(helper, **env)
    assert (*states(helper, [run_id])[run_id], helper.field(run_id, "priority")) == want


def test_submit_writes_priority_hold_and_over_budget_and_reads_them_back() -> None:
    req = H.RunRequest("r1", "train", "lab", "h", "u", priority="high", hold="quota",
                       over_budget="deadline\nfriday")
    fields = req.fields()
    assert (fields["priority"], fields["hold"], fields["over_budget"]) == (
        "high", "quota", "deadline friday")
    bare = H.RunRequest("r2", "train", "lab", "h", "u").fields()
    assert (bare["priority"], "hold" in bare, "over_budget" in bare) == ("normal", False, False)
    lines = [f"r1/{k}:{v}" for k, v in {**fields, "state": "queued",
                                         "waiting": "3 behind 2 run(s)"}.items()]
    r = rec.parse_records("h", lines)[0]
    assert (r.priority, r.hold, r.over_budget, r.waiting, r.wait_position, r.wait_reason) == (
        "high", "quota", "deadline friday", "3 behind 2 run(s)", 3, "behind 2 run(s)")
    odd = rec.record_from("h", "r3", {"state": "queued", "priority": "x", "waiting": "x y"})
    assert (odd.priority, odd.wait_position, odd.wait_reason) == ("normal", None, "")


def via(h: Any, lines: list[str], **env: str) -> str:
    """The helper's command line of a builder's first line, run by the helper fixture."""
    prog, *args = lines[0].split()
    assert prog == H.HELPER
    return str(ok(h(*args, **env)).stdout) + "".join(f"{line[6:-1]}\n" for line in lines[1:])


def test_the_quota_builders_and_the_settle_parser(helper: Any) -> None:
    queue(helper, [("a", {"project": "p", "cpus": 250, "memory": 3 * 2**40, "need": 1}),
                   ("h", {"project": "p", "hold": "quota", "priority": "high", "submitted": 5,
                          "need": 1})], {"p": "- - 1"}, devices="0 1")
    (helper.root / "gpu" / "svc-usage").write_text(f"u.service\t1\t{M0}\t{M0 + 9}\n")
    (helper.root / "gpu" / "run-usage").write_text(f"p\t1\t{M0}\t{M0 + 4}\n")
    assert Q.settle_lines(["p", "q"]) == [f"{H.HELPER} quota-settle p q && echo '@@end'"]
    text = ok(helper("quota-settle", "p", "q", HOSTCTL_MONTH_START_MS=str(M0))).stdout
    got = Q.parse_settle("h", text + "@@end\n")
    assert (got.admitted, got.held, got.gpu_ms, got.svc_gpu_ms) == (
        {"p": Q.Amount(250, 3 * 2**40, 1), "q": Q.Amount()},  # above 2^31: %.0f, not %d
        {"p": [Q.Waiting("h", "h", "high", 5, Q.Amount(100, 0, 1))]},
        {"p": 4, "q": 0}, {"u.service": 9})
    assert (got.run_model_ms, got.svc_model_ms) == ({("p", ""): 4}, {("u.service", ""): 9})
    assert via(helper, Q.grant_lines("p", Q.Amount(100, 0, 1), Q.Limit(cpu=1, gpus=1))) == \
        "@@allot p 350 - 2\n"
    assert helper.field("h", "state") == "starting"
    assert via(helper, Q.drop_lines("p")) == "@@dropped p\n"
