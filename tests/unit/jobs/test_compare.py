"""`hostctl compare` without hosts: the best rule, the table, the JSON, a group's summary."""

from __future__ import annotations

import pytest

from hostctl.errors import HostctlError
from hostctl.jobs.compare import (
    Spread,
    best_run,
    best_runs,
    choose_metrics,
    compare_json,
    compare_lines,
    group_summary,
    group_summary_json,
    group_summary_lines,
    lower_is_better,
    split_params,
)
from hostctl.jobs.records import RunRecord
from tests.unit.jobs.runs_data import record, summary

NOW = 1_700_000_000_000


@pytest.mark.parametrize(("metric", "lower"), [
    ("loss", True), ("error", True), ("val_loss", True), ("train_error", True),
    ("val/loss", True), ("train.loss", True), ("eval:error", True), ("val-loss", True),
    ("Val_Loss", True), ("val_auc", False), ("accuracy", False), ("lossy", False),
    ("loss_scale", False), ("error_rate", False), ("glosses", False), ("myloss", False),
])
def test_lower_is_better(metric: str, lower: bool) -> None:
    assert lower_is_better(metric) is lower


def test_lower_override() -> None:
    assert lower_is_better("error_rate", ["error_rate"]) is True
    assert lower_is_better("latency_ms", ("latency_ms", "x")) is True
    assert lower_is_better("val_auc", ["latency_ms"]) is False


A = record("aaaa0001", job="train", experiment="main", started=NOW - 60_000, ended=NOW,
           exit="0", git_branch="main", git_rev="0123456789abcdef",
           image_id="sha256:" + "ab" * 32, description="baseline",
           params={"LR": "0.1", "EPOCHS": "10", "OPT": "adam"},
           metrics={"val_auc": summary(0.8, 0.5, 0.85), "loss": summary(0.5, 0.4, 2.0)})
B = record("bbbb0002", job="train", experiment="main", started=NOW - 90_000, ended=NOW,
           exit="0", git_branch="main", git_rev="0123456789abcdef",
           image_id="sha256:" + "ab" * 32,
           params={"LR": "0.01", "EPOCHS": "10"},
           metrics={"val_auc": summary(0.92, 0.6, 0.93), "loss": summary(0.3, 0.3, 1.9)})
C = record("cccc0003", job="train", experiment="main", state="failed", exit="1",
           params={"LR": "0.5", "EPOCHS": "10", "OPT": "adam"},
           metrics={"val_auc": summary(0.92), "lr": summary(0.5)})


@pytest.mark.parametrize(("metric", "lower", "best"), [
    ("val_auc", (), ["bbbb0002", "cccc0003"]),  # a tie: both best, the first given first
    ("loss", (), ["bbbb0002"]),
    ("loss", ("loss",), ["bbbb0002"]),
    ("lr", (), ["cccc0003"]),
    ("lr", ("lr",), ["cccc0003"]),  # one run reports it
    ("nope", (), []),
])
def test_best(metric: str, lower: tuple[str, ...], best: list[str]) -> None:
    assert [r.id for r in best_runs([A, B, C], metric, lower)] == best
    assert (best_run([A, B, C], metric, lower) or A).id == (best[0] if best else A.id)


def test_best_by_direction() -> None:
    high = record("aaaa0001", metrics={"error_rate": summary(0.1)})
    low = record("bbbb0002", metrics={"error_rate": summary(0.05)})
    assert best_run([high, low], "error_rate") is high
    assert best_run([high, low], "error_rate", ["error_rate"]) is low
    assert best_run([], "loss") is None


def test_split_params() -> None:
    assert split_params([A, B, C]) == (["LR", "OPT"], {"EPOCHS": "10"})
    assert split_params([A]) == ([], {"EPOCHS": "10", "LR": "0.1", "OPT": "adam"})
    assert split_params([]) == ([], {})


def test_choose_metrics() -> None:
    assert choose_metrics([A, B, C]) == ["loss", "lr", "val_auc"]
    assert choose_metrics([A, B], ["val_auc", "loss", "val_auc"]) == ["val_auc", "loss"]
    with pytest.raises(HostctlError) as err:
        choose_metrics([A, B], ["val_acc"])
    assert str(err.value) == "--metric val_acc: none of these runs reports it (they report: " \
                             "loss, val_auc)"
    with pytest.raises(HostctlError) as err:
        choose_metrics([record("dddd0004")], ["val_acc"])
    assert str(err.value) == "--metric val_acc: none of these runs reports it (they report: " \
                             "none)"


def test_table() -> None:
    assert compare_lines([A, B, C]) == [
        "RUN         aaaa0001             bbbb0002             cccc0003",
        "job         train                train                train",
        "experiment  main                 main                 main",
        "note        baseline             -                    -",
        "host        gpu1                 gpu1                 gpu1",
        "state       succeeded            succeeded            failed",
        "exit        0                    0                    1",
        "started     2023-11-14 22:12:20  2023-11-14 22:11:50  -",
        "duration    1m00s                1m30s                -",
        "image id    abababababab         abababababab         -",
        "git         main 0123456789      main 0123456789      -",
        "parameters that differ",
        "  LR        0.1                  0.01                 0.5",
        "  OPT       adam                 -                    adam",
        "parameters in common",
        "  EPOCHS    10",
        "loss (lower is better, * best)",
        "  last      0.5                  0.3 *                -",
        "  min       0.4                  0.3                  -",
        "  max       2                    1.9                  -",
        "lr (higher is better, * best)",
        "  last      -                    -                    0.5 *",
        "  min       -                    -                    0.5",
        "  max       -                    -                    0.5",
        "val_auc (higher is better, * best)",
        "  last      0.8                  0.92 *               0.92 *",
        "  min       0.5                  0.6                  0.92",
        "  max       0.85                 0.93                 0.92",
    ]


def test_table_chosen_metrics_and_lower() -> None:
    lines = compare_lines([A, B], ["val_auc"], lower=["val_auc"])
    assert lines[-4:] == [
        "val_auc (lower is better, * best)",
        "  last      0.8 *                0.92",
        "  min       0.5                  0.6",
        "  max       0.85                 0.93",
    ]
    assert not any(line.startswith("loss") for line in lines)


def test_table_escapes_what_a_terminal_would_act_on() -> None:
    odd = record("dddd0004", description="a\x1b[2Jb", params={"K": "v\u202ex"})
    text = "\n".join(compare_lines([odd]))
    assert "\x1b" not in text and "\u202e" not in text
    assert "a\\x1b[2Jb" in text and "v\\u202ex" in text


def test_json() -> None:
    got = compare_json([A, B], ["val_auc"])
    assert got["runs"] == ["aaaa0001", "bbbb0002"]
    assert got["params"] == {"differ": {"LR": {"aaaa0001": "0.1", "bbbb0002": "0.01"},
                                        "OPT": {"aaaa0001": "adam", "bbbb0002": None}},
                             "common": {"EPOCHS": "10"}}
    assert got["metrics"] == {"val_auc": {
        "lower_is_better": False, "best": ["bbbb0002"],
        "runs": {"aaaa0001": {"last": 0.8, "min": 0.5, "max": 0.85, "n": 3, "step": 2},
                 "bbbb0002": {"last": 0.92, "min": 0.6, "max": 0.93, "n": 3, "step": 2}}}}
    assert got["fields"]["aaaa0001"] == {
        "job": "train", "project": None, "experiment": "main", "description": "baseline",
        "host": "gpu1", "state": "succeeded", "exit": "0", "started_ms": NOW - 60_000,
        "ended_ms": NOW, "duration_ms": 60_000, "image": None,
        "image_id": "sha256:" + "ab" * 32, "git_branch": "main", "git_rev": "0123456789abcdef",
        "rerun_of": None}


def shard(index: int, run_id: str, submitted: int, **metrics: float) -> RunRecord:
    return record(run_id, group="g1", shard=index, shards=4, submitted=submitted,
                  metrics={m: summary(v) for m, v in metrics.items()})


def test_group_summary() -> None:
    runs = [shard(0, "g1-0", 1, val_auc=0.9, loss=0.2),
            shard(1, "g1-1", 1, val_auc=0.7, loss=0.9),  # replaced by its retry below
            shard(2, "g1-2", 1, val_auc=0.95, loss=0.1),
            shard(3, "g1-3", 1, loss=0.1),
            shard(1, "g1-1-r1", 5, val_auc=0.8, loss=0.3)]
    spreads = group_summary(runs)
    assert spreads == [
        Spread("loss", 4, pytest.approx(0.175), 0.1, 2, "g1-2", 0.3, 1, "g1-1-r1"),
        Spread("val_auc", 3, pytest.approx(0.8833333), 0.8, 1, "g1-1-r1", 0.95, 2, "g1-2"),
    ]
    assert group_summary_lines(spreads, 4) == [
        "METRIC   SHARDS  MEAN      MIN            MAX",
        "loss     4/4     0.175     0.1 (shard 2)  0.3 (shard 1)",
        "val_auc  3/4     0.883333  0.8 (shard 1)  0.95 (shard 2)",
    ]
    assert group_summary_json(spreads)["val_auc"] == {
        "shards": 3, "mean": pytest.approx(0.8833333),
        "min": {"value": 0.8, "shard": 1, "run": "g1-1-r1"},
        "max": {"value": 0.95, "shard": 2, "run": "g1-2"}}
    assert [s.metric for s in group_summary(runs, ["val_auc", "nope"])] == ["val_auc"]
    assert group_summary([]) == [] and group_summary_lines([], 4) == []
