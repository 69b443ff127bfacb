"""`hostctl runs`: choose, order and show run records read from the hosts (pure).

`find_runs` filters (experiment, job, project, `--since`, `--where`), sorts (`--sort`) and
cuts (`--limit`); `runs_lines` is the table and `run_json` one record as `--json` gives it,
with its CPU and GPU seconds (by GPU model too) and their cost at the inventory's prices
(jobs.pricing: per GPU model).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hostctl.errors import HostctlError, printable
from hostctl.jobs import pricing
from hostctl.jobs.records import RunRecord
from hostctl.jobs.view import duration, record_json, stamp, state_text, table
from hostctl.jobs.where import (
    FIELDS,
    NAME_PATTERN,
    Comparison,
    as_number,
    lookup,
    matches,
    metrics_of,
    params_of,
    parse_where,
)

_SINCE = re.compile(r"(\d{1,12})([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
KEY_METRICS = 3  # metric columns the table shows at most


def parse_since(text: str) -> int:
    """`--since 7d` -> seconds (a whole number and one of s m h d w)."""
    m = _SINCE.fullmatch(text.strip())
    if m is None:
        raise HostctlError(f"--since {printable(repr(text))}: write a whole number and a unit, "
                           "s m h d or w (seconds, minutes, hours, days, weeks), e.g. --since 7d")
    seconds = int(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    if not seconds:
        raise HostctlError(f"--since {printable(repr(text))}: give a time longer than 0, "
                           "e.g. --since 7d")
    return seconds


@dataclass(frozen=True)
class SortKey:
    """`--sort NAME` (ascending) or `--sort -NAME` (descending): a field, metric or parameter."""

    name: str
    descending: bool = False

    @classmethod
    def parse(cls, text: str) -> SortKey:
        name = text.strip().removeprefix("-")
        if not NAME_PATTERN.fullmatch(name):
            raise HostctlError(f"--sort {printable(repr(text))}: name a field, metric or "
                               "parameter, with - in front for the highest first, e.g. "
                               "--sort -val_auc")
        return cls(name, text.strip().startswith("-"))


def sort_runs(records: Iterable[RunRecord], key: SortKey | None = None) -> list[RunRecord]:
    """Newest submission first; with a key, by its value (numbers before words), runs
    lacking it last whichever the direction, newest first among equals."""
    newest = sorted(records, key=lambda r: (r.submitted, r.seq, r.id), reverse=True)
    if key is None:
        return newest
    having: list[tuple[tuple[int, float, str], RunRecord]] = []
    lacking: list[RunRecord] = []
    for r in newest:
        v = lookup(r, key.name)
        if v is None:
            lacking.append(r)
            continue
        n = as_number(v)
        having.append(((0, n, "") if n is not None else (1, 0.0, str(v)), r))
    having.sort(key=lambda kr: kr[0], reverse=key.descending)  # stable: newest first on ties
    return [r for _, r in having] + lacking


# What the `hostctl runs` table and its filters read of each run; `fields_needed` adds what
# --where and --sort name. The rest (image ids, git, the docker run...) stays on the hosts.
LISTING_FIELDS = ("job", "project", "state", "experiment", "description", "note",
                  "submitted", "started", "ended", "seq", "attempt", "attempts", "metrics")
# where.FIELDS names that are not the host's field of the same name
_HOST_FIELDS = {"id": (), "run": (), "host": (), "note": ("description",),
                "outcome_note": ("note",), "duration": ("started", "ended")}


def fields_needed(where: str | None = None, sort: str | None = None) -> tuple[str, ...]:
    """The record fields a `hostctl runs` table needs from the hosts, with what the (valid)
    --where and --sort expressions name; a metric or parameter name brings both."""
    names = [c.name for c in parse_where(where)] if where is not None else []
    if sort is not None:
        names.append(SortKey.parse(sort).name)
    need = set(LISTING_FIELDS)
    for name in names:
        if name in FIELDS:
            need.update(_HOST_FIELDS.get(name, (name,)))
        else:
            need.update(("metrics", "params"))
    return tuple(sorted(need))


def find_runs(records: Iterable[RunRecord], *, now_ms: int, experiment: str | None = None,
              job: str | None = None, project: str | None = None, since: str | None = None,
              where: str | None = None, sort: str | None = None,
              limit: int | None = None) -> list[RunRecord]:
    """What `hostctl runs` lists, options as the command line gives them (a bad --since,
    --where, --sort or --limit raises a HostctlError before any record is looked at)."""
    conditions: tuple[Comparison, ...] = parse_where(where) if where is not None else ()
    cutoff = now_ms - parse_since(since) * 1000 if since is not None else None
    key = SortKey.parse(sort) if sort is not None else None
    if limit is not None and limit < 1:
        raise HostctlError(f"--limit {limit}: give a number of runs, 1 or more")
    chosen = [r for r in records
              if (experiment is None or r.experiment == experiment)
              and (job is None or r.job == job)
              and (project is None or r.project == project)
              and (cutoff is None or r.submitted >= cutoff)
              and (not conditions or matches(r, conditions))]
    ordered = sort_runs(chosen, key)
    return ordered[:limit] if limit is not None else ordered


# -- the table -------------------------------------------------------------------------------

RUNS_COLUMNS = ("RUN", "JOB", "EXPERIMENT", "STATE", "HOST", "STARTED", "DURATION")


def key_metrics(records: Iterable[RunRecord], first: Iterable[str] = (),
                most: int = KEY_METRICS) -> list[str]:
    """The metric columns: the names in `first` that are metrics (the sort key, those in
    --where), then those most runs report (ties by name), `most` in all."""
    counts: dict[str, int] = {}
    for r in records:
        for name in metrics_of(r):
            counts[name] = counts.get(name, 0) + 1
    out = [n for n in dict.fromkeys(first) if n in counts]
    rest = sorted((n for n in counts if n not in out), key=lambda n: (-counts[n], n))
    return (out + rest)[:most]


def mentioned(where: str | None = None, sort: str | None = None) -> list[str]:
    """The metric names a --where and --sort name (`val_auc.max`, `metrics.loss`: the
    metric), for key_metrics' `first`; call after find_runs has checked them."""
    names = [c.name for c in parse_where(where)] if where else []
    if sort:
        names.insert(0, SortKey.parse(sort).name)
    out = []
    for n in names:
        n = n.removeprefix("metrics.")
        base, dot, which = n.rpartition(".")
        out.append(base if dot and which in ("last", "min", "max") else n)
    return list(dict.fromkeys(out))


def number(v: float) -> str:
    """A metric value in a table: 4 significant digits, more only when it is that long."""
    return f"{v:.4g}"


def _run_seconds(r: RunRecord, now_ms: int) -> float:
    if not r.started:
        return 0.0
    return max(0, (r.ended or now_ms) - r.started) / 1000


def runs_lines(records: Sequence[RunRecord], now_ms: int,
               metrics: Sequence[str] | None = None) -> list[str]:
    """The `hostctl runs` table: one line a run, metrics `key_metrics` chooses unless given."""
    chosen = key_metrics(records) if metrics is None else list(metrics)
    rows = []
    for r in records:
        running = bool(r.started and not r.ended)
        took = duration(int(_run_seconds(r, now_ms) * 1000) if r.started else None)
        summaries = metrics_of(r)
        rows.append((r.id, r.job, printable(r.experiment) or "-", state_text(r, {}), r.host,
                     stamp(r.started), took + ("…" if running else ""),
                     *(number(summaries[m].last) if m in summaries else "-" for m in chosen),
                     printable(r.description or r.note) or "-"))
    header = (*RUNS_COLUMNS, *(printable(m) for m in chosen), "NOTE")
    return table(rows, header)


# -- JSON ------------------------------------------------------------------------------------

def usage(r: RunRecord, now_ms: int) -> tuple[float, float]:
    """(CPU seconds, GPU seconds): CPUs claimed (one when it claims none) and GPUs held,
    times its run time (so far, while it runs)."""
    seconds = _run_seconds(r, now_ms)
    cpus = r.cpus / 1000 if r.cpus > 0 else 1.0
    gpus = len([g for g in r.gpus.split(",") if g.strip()])
    return cpus * seconds, gpus * seconds


def gpu_seconds_by_model(r: RunRecord, now_ms: int,
                         devices: Mapping[str, str] | None = None) -> dict[str, float]:
    """The run's GPU seconds by model of the devices it held ("": a device of no model):
    `devices` is its host's device id -> model (the inventory's; absent: no models)."""
    seconds = _run_seconds(r, now_ms)
    out: dict[str, float] = {}
    for g in r.gpus.split(","):
        if g.strip():
            model = (devices or {}).get(g.strip(), "")
            out[model] = out.get(model, 0.0) + seconds
    return out


def cost(cpu_seconds: float, gpu_seconds: float | Mapping[str, float],
         prices: Mapping[str, Any] | None) -> float | None:
    """What the usage cost at `prices` (Prices.table(): each price optional, GPUs priced by
    model; jobs.pricing); None without prices."""
    return pricing.cost(cpu_seconds, gpu_seconds, prices)


def run_json(r: RunRecord, now_ms: int, prices: Mapping[str, Any] | None = None,
             gpu_models: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Any]:
    """Everything the record holds, as `runs --json` and `runs show --json` give it: the
    fields of `hostctl jobs --json` (note is the queue's) and the experiment's. GPUs cost
    their model's price: `gpu_models` is host -> device id -> model (metrics.device_models)."""
    cpu_s, gpu_s = usage(r, now_ms)
    by_model = gpu_seconds_by_model(r, now_ms, (gpu_models or {}).get(r.host))
    out = record_json(r)
    out.update({
        "experiment": r.experiment or None, "description": r.description or None,
        "params": dict(params_of(r)), "image": r.image or None, "image_id": r.image_id or None,
        "spec_hash": r.spec_hash or None, "git_rev": r.git_rev or None,
        "git_branch": r.git_branch or None, "rerun_of": r.rerun_of or None,
        "docker_run": r.docker_run or None, "over_budget": r.over_budget or None,
        "metrics": {name: {"last": s.last, "min": s.min, "max": s.max, "n": s.count,
                           "step": s.last_step}
                    for name, s in metrics_of(r).items()},
        "metrics_points": r.metrics_points, "metrics_invalid": r.metrics_invalid,
        "metrics_dropped": r.metrics_dropped,
        "cpus": r.cpus / 1000 if r.cpus > 0 else 1.0, "gpus_held": len(
            [g for g in r.gpus.split(",") if g.strip()]),
        "cpu_seconds": round(cpu_s, 3), "gpu_seconds": round(gpu_s, 3),
        "gpu_seconds_by_model": {model: round(s, 3) for model, s in sorted(by_model.items())
                                 if model},
        "cost": cost(cpu_s, by_model, prices),
        "currency": str(prices["currency"]) if prices and prices.get("currency") else None,
    })
    return out
