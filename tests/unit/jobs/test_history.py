"""`hostctl runs` without hosts: --since, filters, --sort, --limit, the table and the JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hostctl.jobs import history
from hostctl.jobs.history import (
    SortKey,
    cost,
    find_runs,
    key_metrics,
    mentioned,
    parse_since,
    run_json,
    runs_lines,
    sort_runs,
    usage,
)
from tests.rigs.refusals import refusal
from tests.rigs.site_factory import BASE_INVENTORY, made_site
from tests.unit.jobs.runs_data import record, summary

DAY_MS = 86_400_000
NOW = 1_700_000_000_000


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30), ("5m", 300), ("2h", 7200), ("7d", 604800), ("1w", 604800), (" 3d ", 259200),
    ("007d", 604800),
])
def test_since(text: str, seconds: int) -> None:
    assert parse_since(text) == seconds


HOW = "write a whole number and a unit, s m h d or w (seconds, minutes, hours, days, weeks), " \
      "e.g. --since 7d"


@pytest.mark.parametrize(("text", "message"), [
    ("7", f"--since '7': {HOW}"),
    ("d", f"--since 'd': {HOW}"),
    ("1.5d", f"--since '1.5d': {HOW}"),
    ("-1d", f"--since '-1d': {HOW}"),
    ("7D", f"--since '7D': {HOW}"),
    ("7 d", f"--since '7 d': {HOW}"),
    ("7days", f"--since '7days': {HOW}"),
    ("", f"--since '': {HOW}"),
    ("9999999999999d", f"--since '9999999999999d': {HOW}"),
    ("\x1b[2J1d", f"--since '\\x1b[2J1d': {HOW}"),
    ("0h", "--since '0h': give a time longer than 0, e.g. --since 7d"),
])
def test_since_errors(text: str, message: str) -> None:
    assert refusal(parse_since, text) == message


A = record("aaaa0001", job="train", project="ml", experiment="main", submitted=NOW - 9 * DAY_MS,
           seq=1, params={"LR": "0.1"},
           metrics={"val_auc": summary(0.80), "loss": summary(0.5)})
B = record("bbbb0002", job="train", project="ml", experiment="main", submitted=NOW - 2 * DAY_MS,
           seq=2, params={"LR": "0.01"},
           metrics={"val_auc": summary(0.92), "loss": summary(0.3)})
C = record("cccc0003", host="gpu2", job="train", project="ml", experiment="other",
           submitted=NOW - DAY_MS, seq=1, params={"LR": "0.5"},
           metrics={"val_auc": summary(0.85)})
D = record("dddd0004", host="gpu2", job="eval", project="ops", experiment="main",
           submitted=NOW - 1000, seq=2, state="running", params={"LR": "big"})
ALL = [A, B, C, D]


def ids(records: list) -> list[str]:
    return [r.id for r in records]


@pytest.mark.parametrize(("options", "expected"), [
    ({}, ["dddd0004", "cccc0003", "bbbb0002", "aaaa0001"]),  # newest first
    ({"experiment": "main"}, ["dddd0004", "bbbb0002", "aaaa0001"]),
    ({"job": "train"}, ["cccc0003", "bbbb0002", "aaaa0001"]),
    ({"project": "ops"}, ["dddd0004"]),
    ({"since": "7d"}, ["dddd0004", "cccc0003", "bbbb0002"]),
    ({"since": "1h"}, ["dddd0004"]),
    ({"where": "val_auc>0.82"}, ["cccc0003", "bbbb0002"]),
    ({"where": "LR<0.2 and experiment=main"}, ["bbbb0002", "aaaa0001"]),
    ({"sort": "-val_auc"}, ["bbbb0002", "cccc0003", "aaaa0001", "dddd0004"]),
    ({"sort": "val_auc"}, ["aaaa0001", "cccc0003", "bbbb0002", "dddd0004"]),
    ({"sort": "loss"}, ["bbbb0002", "aaaa0001", "dddd0004", "cccc0003"]),  # lacking: last
    ({"sort": "-loss"}, ["aaaa0001", "bbbb0002", "dddd0004", "cccc0003"]),
    ({"sort": "LR"}, ["bbbb0002", "aaaa0001", "cccc0003", "dddd0004"]),  # numbers, then words
    ({"sort": "-LR"}, ["dddd0004", "cccc0003", "aaaa0001", "bbbb0002"]),
    ({"sort": "host"}, ["bbbb0002", "aaaa0001", "dddd0004", "cccc0003"]),  # ties: newest first
    ({"sort": "submitted"}, ["aaaa0001", "bbbb0002", "cccc0003", "dddd0004"]),
    ({"sort": "-val_auc", "limit": 2}, ["bbbb0002", "cccc0003"]),
    ({"job": "train", "where": "val_auc<0.9", "sort": "-val_auc", "limit": 1}, ["cccc0003"]),
    ({"experiment": "none"}, []),
])
def test_find_runs(options: dict, expected: list[str]) -> None:
    assert ids(find_runs(ALL, now_ms=NOW, **options)) == expected


@pytest.mark.parametrize(("options", "message"), [
    ({"sort": "-"}, "--sort '-': name a field, metric or parameter, with - in front for the "
     "highest first, e.g. --sort -val_auc"),
    ({"sort": "val auc"}, "--sort 'val auc': name a field, metric or parameter, with - in "
     "front for the highest first, e.g. --sort -val_auc"),
    ({"limit": 0}, "--limit 0: give a number of runs, 1 or more"),
    ({"where": "a>>1"}, "--where 'a>>1': '>>1' is not a comparison; write NAME OP VALUE with "
     "OP one of = != < <= > >="),
    ({"since": "7x"}, f"--since '7x': {HOW}"),
])
def test_find_runs_errors(options: dict, message: str) -> None:
    assert refusal(find_runs, [], now_ms=NOW, **options) == message


def test_sort_key() -> None:
    assert SortKey.parse("-val_auc") == SortKey("val_auc", True)
    assert SortKey.parse("params.LR") == SortKey("params.LR", False)
    assert ids(sort_runs(ALL, SortKey("nothing", True))) == ids(sort_runs(ALL))


def test_key_metrics() -> None:
    assert key_metrics(ALL) == ["val_auc", "loss"]  # most runs report val_auc
    assert key_metrics(ALL, first=["loss", "LR"]) == ["loss", "val_auc"]
    assert key_metrics(ALL, most=1) == ["val_auc"]
    assert key_metrics([]) == []


def test_mentioned() -> None:
    assert mentioned("val_auc.max>0.9 and LR=0.1 and metrics.loss<1", "-val_auc") == [
        "val_auc", "LR", "loss"]
    assert mentioned(None, "params.LR") == ["params.LR"]
    assert mentioned() == []
    assert key_metrics(ALL, mentioned("loss<1", "-LR")) == ["loss", "val_auc"]


def test_table() -> None:
    run = record("eeee0005", job="train", experiment="main", state="succeeded", gpus="0,1",
                 started=NOW - 125_000, ended=NOW - 5_000, description="first\x1b[2J try",
                 metrics={"val_auc": summary(0.912345), "loss": summary(1234567.0)})
    running = record("ffff0006", host="gpu2", job="eval", state="running",
                     started=NOW - 3_000, note="queue note")
    queued = record("9999aaaa", job="eval", state="queued", attempts=3)
    assert runs_lines([run, running, queued], NOW) == [  # metrics as many report, then by name
        "RUN       JOB    EXPERIMENT  STATE      HOST  STARTED              DURATION  "
        "loss       val_auc  NOTE",
        "eeee0005  train  main        succeeded  gpu1  2023-11-14 22:11:15  2m00s     "
        "1.235e+06  0.9123   first\\x1b[2J try",
        "ffff0006  eval   -           running    gpu2  2023-11-14 22:13:17  3.0s…     "
        "-          -        queue note",
        "9999aaaa  eval   -           queued     gpu1  -                    -         "
        "-          -        -",
    ]
    assert runs_lines([run], NOW, metrics=[])[0].split() == [
        "RUN", "JOB", "EXPERIMENT", "STATE", "HOST", "STARTED", "DURATION", "NOTE"]


def test_usage_and_cost() -> None:
    ended = record("eeee0005", cpus=2500, gpus="0,1", started=NOW - 3_600_000, ended=NOW)
    assert usage(ended, NOW + 999) == (9000.0, 7200.0)
    no_claim = record("eeee0006", started=NOW - 10_000)  # running: so far; 0 CPUs: one
    assert usage(no_claim, NOW) == (10.0, 0.0)
    assert usage(record("eeee0007", state="queued"), NOW) == (0.0, 0.0)
    assert cost(9000.0, 7200.0, None) is None
    assert cost(9000.0, 7200.0, {"currency": "EUR", "cpu_hour": 0.04, "gpu_hour": 1.5}) \
        == pytest.approx(3.1)
    assert cost(9000.0, 7200.0, {"currency": "EUR", "gpu_hour": 2}) == 4.0


MODEL_PRICES = {"currency": "EUR", "cpu_hour": 0.1, "gpu_hour": 1.0,
                "gpu_hour_by_model": {"a100-80g": 3.0, "l4": 0.5}}
MODELS = {"gpu1": {"0": "a100-80g", "1": "a100-80g", "2": "l4"}, "gpu2": {"0": "l4"}}


@pytest.mark.parametrize(("host", "gpus", "prices", "by_model", "expected"), [
    # an hour of one CPU (0.1) and of each device at its model's price
    ("gpu1", "0,1", MODEL_PRICES, {"a100-80g": 7200.0}, 6.1),
    ("gpu1", "0,2", MODEL_PRICES, {"a100-80g": 3600.0, "l4": 3600.0}, 3.6),
    ("gpu2", "0", MODEL_PRICES, {"l4": 3600.0}, 0.6),
    # a device of no model (host without models, or an id the inventory does not name)
    # costs gpu_hour
    ("gpu3", "0", MODEL_PRICES, {}, 1.1),
    ("gpu1", "2,3", MODEL_PRICES, {"l4": 3600.0}, 1.6),
    # without gpu_hour such a device costs nothing; without model prices all cost gpu_hour
    ("gpu3", "0", {"currency": "EUR", "gpu_hour_by_model": {"l4": 0.5}}, {}, 0.0),
    ("gpu1", "0,2", {"currency": "EUR", "gpu_hour": 2}, {"a100-80g": 3600.0, "l4": 3600.0},
     4.0),
    ("gpu1", "", MODEL_PRICES, {}, 0.1),
])
def test_gpu_time_costs_its_models_price(host: str, gpus: str, prices: dict[str, Any],
                                         by_model: dict[str, float], expected: float) -> None:
    run = record("eeee0009", host=host, cpus=1000, gpus=gpus, started=NOW - 3_600_000,
                 ended=NOW)
    got = run_json(run, NOW, prices, MODELS)
    assert (got["gpu_seconds_by_model"], got["cost"]) == (by_model, pytest.approx(expected))
    assert got["gpu_seconds"] == 3600.0 * len([g for g in gpus.split(",") if g])


def test_run_json() -> None:
    run = record("eeee0005", job="train", project="ml", experiment="main", cpus=2000, gpus="1",
                 started=NOW - 1_800_000, ended=NOW, exit="0", description="lr sweep",
                 params={"LR": "0.1"}, image="reg/train:1", image_id="sha256:" + "a" * 64,
                 git_rev="0123abc", git_branch="main", rerun_of="dddd0004",
                 docker_run=["docker", "run", "--rm", "reg/train:1"],
                 metrics={"val_auc": summary(0.9, 0.5, 0.95, n=10, step=9)},
                 metrics_points=10, metrics_invalid=1, metrics_dropped=0)
    got = run_json(run, NOW, {"currency": "EUR", "cpu_hour": 0.1, "gpu_hour": 2.0})
    assert got == {
        "run": "eeee0005", "job": "train", "project": "ml", "host": "gpu1",
        "state": "succeeded", "group": "", "shard": 0, "shards": 1, "gpus": "1",
        "attempt": 1, "attempts": 1, "submitted_ms": None, "started_ms": NOW - 1_800_000,
        "ended_ms": NOW, "duration_ms": 1_800_000, "exit": "0", "note": None, "by": None,
        "priority": "normal", "over_budget": None,
        "experiment": "main", "description": "lr sweep", "params": {"LR": "0.1"},
        "image": "reg/train:1", "image_id": "sha256:" + "a" * 64, "spec_hash": None,
        "git_rev": "0123abc", "git_branch": "main", "rerun_of": "dddd0004",
        "docker_run": ["docker", "run", "--rm", "reg/train:1"],
        "metrics": {"val_auc": {"last": 0.9, "min": 0.5, "max": 0.95, "n": 10, "step": 9}},
        "metrics_points": 10, "metrics_invalid": 1, "metrics_dropped": 0,
        "cpus": 2.0, "gpus_held": 1, "cpu_seconds": 3600.0, "gpu_seconds": 1800.0,
        "gpu_seconds_by_model": {}, "cost": 1.1, "currency": "EUR",
    }
    bare = run_json(record("eeee0008", state="queued"), NOW)
    assert (bare["params"], bare["metrics"], bare["cost"], bare["currency"]) == ({}, {}, None,
                                                                                 None)


@pytest.mark.parametrize(("where", "sort", "more"), [
    (None, None, set()),
    ("val_auc>0.9", None, {"params"}),  # a metric's name could be a parameter's
    ("params.LR=0.01", "-image_id", {"params", "image_id"}),
    ("duration>60 and note=x and outcome_note=y", None, set()),
    ("gpus=0 and host=h1 and run=abc", "cpus", {"gpus", "cpus"}),
])
def test_a_search_reads_only_the_fields_it_shows_and_filters_on(
        where: str | None, sort: str | None, more: set[str]) -> None:
    assert set(history.fields_needed(where, sort)) == set(history.LISTING_FIELDS) | more


def test_runs_prices_come_from_the_inventory_as_the_exporters_do(tmp_path: Path) -> None:
    """`hostctl runs` builds its prices with Prices.table() (as each exporter's config does)
    and prices a run's GPUs by its host's models from the inventory."""
    from hostctl.cli.runs import _prices

    inventory = BASE_INVENTORY.replace(
        "{role: gpu}, gpus: 1}", "{role: gpu}, gpus: [{model: l4, devices: [0, 2]}]}") + (
        "metrics: {prices: {currency: EUR, gpu_hour: 1, gpu_hour_by_model: {l4: 0.5}}}\n")
    site = made_site(tmp_path, {"a.yml": "kind: job\nname: t\nproject: p\nimage: x:1\n"},
                     inventory, environ={})
    prices = _prices(site)
    assert prices == ({"currency": "EUR", "gpu_hour": 1, "gpu_hour_by_model": {"l4": 0.5}},
                      {"gpu-1": {"0": "l4", "2": "l4"}})
    run = record("eeee0010", host="gpu-1", gpus="0,2", started=NOW - 3_600_000, ended=NOW)
    # two l4 for an hour at 0.5, and one CPU (none claimed) priced at nothing
    assert run_json(run, NOW, *prices)["cost"] == pytest.approx(1.0)
    other = record("eeee0011", host="app-1", gpus="0", started=NOW - 3_600_000, ended=NOW)
    assert run_json(other, NOW, *prices)["cost"] == pytest.approx(1.0)
