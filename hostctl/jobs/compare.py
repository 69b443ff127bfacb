"""`hostctl compare`: runs side by side, the best run per metric, a shard group's summary.

Pure: run records in, lines of text or JSON-ready dicts out. Which run is "best" at a
metric goes by its last value and the metric's name: `loss` and `error` (also as the last
part of a name: `val_loss`, `val/loss`, `train.error`) are better lower, any other metric
higher; `lower` (`--lower M`) names more metrics that are better lower.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hostctl.errors import HostctlError, printable
from hostctl.jobs.records import MetricSummary, RunRecord, latest_per_shard
from hostctl.jobs.view import duration, stamp, table
from hostctl.jobs.where import metrics_of, params_of

_LOWER = re.compile(r"(?:^|[_./:-])(?:loss|error)$", re.IGNORECASE)
NONE = "-"


def lower_is_better(metric: str, lower: Iterable[str] = ()) -> bool:
    return metric in set(lower) or _LOWER.search(metric) is not None


def _summaries(r: RunRecord) -> Mapping[str, MetricSummary]:
    return metrics_of(r)


def best_runs(records: Iterable[RunRecord], metric: str,
              lower: Iterable[str] = ()) -> list[RunRecord]:
    """The runs whose last value of `metric` is the best (more than one on a tie)."""
    having = [(s[metric].last, r) for r in records if metric in (s := _summaries(r))]
    if not having:
        return []
    pick = min if lower_is_better(metric, lower) else max
    best = pick(v for v, _ in having)
    return [r for v, r in having if v == best]


def best_run(records: Iterable[RunRecord], metric: str,
             lower: Iterable[str] = ()) -> RunRecord | None:
    """The run with the best last value of `metric` (the first given, on a tie), None when
    no run reports it."""
    best = best_runs(records, metric, lower)
    return best[0] if best else None


def metric_names(records: Iterable[RunRecord]) -> list[str]:
    """Every metric any of the runs reports, by name."""
    return sorted({name for r in records for name in _summaries(r)})


def choose_metrics(records: Sequence[RunRecord], metrics: Sequence[str] = ()) -> list[str]:
    """`--metric M...` (every metric when none), each checked to be reported by a run."""
    have = metric_names(records)
    if not metrics:
        return have
    for m in metrics:
        if m not in have:
            reported = ", ".join(printable(n) for n in have) if have else "none"
            raise HostctlError(f"--metric {printable(m)}: none of these runs reports it (they "
                               f"report: {reported})")
    return list(dict.fromkeys(metrics))


def split_params(records: Sequence[RunRecord]) -> tuple[list[str], dict[str, str]]:
    """(names of the parameters that differ between the runs (or some lack), the parameters
    all runs share with their value)."""
    params = [params_of(r) for r in records]
    names = sorted({n for p in params for n in p})
    common = {n: params[0][n] for n in names
              if params and all(n in p and p[n] == params[0][n] for p in params)}
    return [n for n in names if n not in common], common


def _short(text: str, keep: int) -> str:
    return text[:keep] if text else ""


_IDENT: tuple[tuple[str, Any], ...] = (
    ("job", lambda r: r.job),
    ("project", lambda r: r.project),
    ("experiment", lambda r: r.experiment),
    ("note", lambda r: r.description),
    ("host", lambda r: r.host),
    ("state", lambda r: r.state),
    ("exit", lambda r: r.exit),
    ("started", lambda r: stamp(r.started) if r.started else ""),
    ("duration", lambda r: duration(r.duration_ms) if r.duration_ms is not None else ""),
    ("image", lambda r: r.image),
    ("image id", lambda r: _short(r.image_id.removeprefix("sha256:"), 12)),
    ("git", lambda r: " ".join(x for x in (r.git_branch, _short(r.git_rev, 10)) if x)),
    ("rerun of", lambda r: r.rerun_of),
)


def number(v: float) -> str:
    return f"{v:.6g}"


def compare_lines(records: Sequence[RunRecord], metrics: Sequence[str] = (),
                  lower: Iterable[str] = ()) -> list[str]:
    """The comparison table: one column per run, rows of fields, parameters and metrics."""
    lower = tuple(lower)
    chosen = choose_metrics(records, metrics)
    rows: list[tuple[str, ...]] = []
    for label, get in _IDENT:
        cells = tuple(printable(get(r)) or NONE for r in records)
        if any(c != NONE for c in cells):
            rows.append((label, *cells))
    differ, common = split_params(records)
    if differ:
        rows.append(("parameters that differ",))
        for n in differ:
            rows.append((f"  {printable(n)}", *(printable(params_of(r).get(n, NONE))
                                               for r in records)))
    if common:
        rows.append(("parameters in common",))
        rows.extend((f"  {printable(n)}", printable(v)) for n, v in common.items())
    for m in chosen:
        best = {r.id for r in best_runs(records, m, lower)}
        way = "lower" if lower_is_better(m, lower) else "higher"
        rows.append((f"{printable(m)} ({way} is better, * best)",))
        for which in ("last", "min", "max"):
            values = []
            for r in records:
                s = _summaries(r).get(m)
                mark = " *" if which == "last" and r.id in best else ""
                values.append(number(getattr(s, which)) + mark if s else NONE)
            rows.append((f"  {which}", *values))
    # A one-cell row is a section's title: a line of its own, out of the columns' widths.
    header = ("RUN", *(r.id for r in records))
    body = iter(table([row + ("",) * (len(header) - len(row)) for row in rows if len(row) > 1],
                      header))
    out = [next(body)]
    out.extend(row[0] if len(row) == 1 else next(body) for row in rows)
    return out


def compare_json(records: Sequence[RunRecord], metrics: Sequence[str] = (),
                 lower: Iterable[str] = ()) -> dict[str, Any]:
    lower = tuple(lower)
    differ, common = split_params(records)
    return {
        "runs": [r.id for r in records],
        "fields": {r.id: _fields_json(r) for r in records},
        "params": {"differ": {n: {r.id: params_of(r).get(n) for r in records} for n in differ},
                   "common": common},
        "metrics": {m: {"lower_is_better": lower_is_better(m, lower),
                        "best": [r.id for r in best_runs(records, m, lower)],
                        "runs": {r.id: _summary_json(_summaries(r).get(m)) for r in records}}
                    for m in choose_metrics(records, metrics)},
    }


def _fields_json(r: RunRecord) -> dict[str, Any]:
    return {"job": r.job, "project": r.project or None, "experiment": r.experiment or None,
            "description": r.description or None, "host": r.host, "state": r.state,
            "exit": r.exit or None, "started_ms": r.started or None,
            "ended_ms": r.ended or None, "duration_ms": r.duration_ms,
            "image": r.image or None, "image_id": r.image_id or None,
            "git_branch": r.git_branch or None, "git_rev": r.git_rev or None,
            "rerun_of": r.rerun_of or None}


def _summary_json(s: MetricSummary | None) -> dict[str, Any] | None:
    if s is None:
        return None
    return {"last": s.last, "min": s.min, "max": s.max, "n": s.count, "step": s.last_step}


# -- a shard group's summary -----------------------------------------------------------------

@dataclass(frozen=True)
class Spread:
    """One metric over a group's shards (the last value of each shard's latest run)."""

    metric: str
    shards: int  # shards that report it
    mean: float
    min: float
    min_shard: int
    min_run: str
    max: float
    max_shard: int
    max_run: str


def group_summary(records: Iterable[RunRecord], metrics: Sequence[str] = ()) -> list[Spread]:
    """Per metric (every one any shard reports, or those given): mean, min and max over the
    latest run of each shard, and the shard holding each extreme (the lowest on a tie)."""
    latest = list(latest_per_shard(records).values())
    out = []
    for m in metrics or metric_names(latest):
        values = [(_summaries(r)[m].last, r) for r in latest if m in _summaries(r)]
        if not values:
            continue
        low = min(values, key=lambda vr: vr[0])
        high = max(values, key=lambda vr: vr[0])
        out.append(Spread(m, len(values), sum(v for v, _ in values) / len(values), low[0],
                          low[1].shard, low[1].id, high[0], high[1].shard, high[1].id))
    return out


def group_summary_lines(spreads: Sequence[Spread], shards: int) -> list[str]:
    rows = [(printable(s.metric), f"{s.shards}/{shards}", number(s.mean),
             f"{number(s.min)} (shard {s.min_shard})", f"{number(s.max)} (shard {s.max_shard})")
            for s in spreads]
    return table(rows, ("METRIC", "SHARDS", "MEAN", "MIN", "MAX")) if rows else []


def group_summary_json(spreads: Sequence[Spread]) -> dict[str, Mapping[str, Any]]:
    return {s.metric: {"shards": s.shards, "mean": s.mean,
                       "min": {"value": s.min, "shard": s.min_shard, "run": s.min_run},
                       "max": {"value": s.max, "shard": s.max_shard, "run": s.max_run}}
            for s in spreads}
