"""Run records as the hosts keep them, read back: a pure parser and the values it builds.

A host keeps each run as a directory of one-line files (see hostctl-jobs.sh); the read
script prints them with `grep -r -H ''`, one `ID/FIELD:VALUE` line each.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

QUEUED = "queued"
STARTING = "starting"  # handed to systemd by the queue, not yet admitted by its unit
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
TIMED_OUT = "timed-out"
ACTIVE_STATES = (QUEUED, STARTING, RUNNING)
FINAL_STATES = (SUCCEEDED, FAILED, CANCELLED, TIMED_OUT)

# `run --wait` exit statuses for runs that did not end by themselves (timeout(1)'s 124;
# 128 + SIGINT's 2 for a cancelled run, as a shell reports an interrupted command).
EXIT_TIMED_OUT = 124
EXIT_CANCELLED = 130


@dataclass(frozen=True)
class RunRecord:
    """One run as its host recorded it. Times are epoch milliseconds of the host's clock."""

    id: str
    host: str  # the inventory name of the host it was read from
    job: str = ""
    project: str = ""
    state: str = ""
    group: str = ""
    shard: int = 0
    shards: int = 1
    need: int = 0  # GPUs it needs
    gpu_models: str = ""  # the GPU models it accepts, comma-separated ("": any)
    cpus: int = 0  # milli-CPUs it claims (0: one CPU)
    memory: int = 0  # bytes it claims
    gpus: str = ""  # device ids it holds (or held), comma-separated
    attempt: int = 1
    attempts: int = 1
    seq: int = 0  # its place in the host's queue
    submitted: int = 0
    started: int = 0
    ended: int = 0
    exit: str = ""  # the exit status (a number), or a signal name
    note: str = ""
    by: str = ""
    not_before: int = 0
    # What makes a run findable, comparable and reproducible (issue 12). Written by hostctl
    # at submit (experiment ... docker_run), by the queue when it starts the run (image_id)
    # and when the run ends (metrics*: parsed from the run's HOSTCTL_METRICS file).
    experiment: str = ""
    description: str = ""  # `hostctl run --note`: the user's one line (note is the outcome's)
    params_json: str = ""  # {"NAME": "value"}: --set values and the spec's env, never secrets
    image: str = ""  # the reference the spec names
    image_id: str = ""  # sha256:... of the image the run actually ran
    spec_hash: str = ""
    git_rev: str = ""  # the commit of the repository holding the inventory ("" outside git)
    git_branch: str = ""
    rerun_of: str = ""  # the run this one re-runs (`hostctl run --rerun`)
    docker_run_json: str = ""  # ["docker", "run", ...] as the unit runs it, secrets by name
    metrics_json: str = ""  # {"name": {"last", "min", "max", "n", "step"}}
    metrics_points: int = 0  # points kept (in the run's metrics.tsv)
    metrics_invalid: int = 0  # lines that were not a valid metric point: skipped
    metrics_dropped: int = 0  # valid points beyond the cap: not kept
    # Issue 13: written by hostctl at submit (priority, hold, over_budget) and by the queue
    # (hold goes when the project's quota admits it; waiting while it is queued).
    priority: str = "normal"  # high|normal|low
    hold: str = ""  # "quota" while it waits for its project's quota
    over_budget: str = ""  # the reason given to run past the project's spent budget
    waiting: str = ""  # "POS REASON": its place in the host's queue and why it waits

    @property
    def wait_position(self) -> int | None:
        """Its 1-based place in its host's queue as the host last decided (None: not
        waiting, or no such answer)."""
        pos = self.waiting.partition(" ")[0]
        return int(pos) if pos.isdigit() and int(pos) > 0 else None

    @property
    def wait_reason(self) -> str:
        """Why it waits: quota, retry back-off, GPUs, CPUs, memory or "behind N run(s)"."""
        return self.waiting.partition(" ")[2] if self.wait_position else ""

    # Parsed once per record (a search reads them for every comparison and the sort); the
    # record is frozen, so what is cached never goes stale.
    @functools.cached_property
    def params(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in _json_object(self.params_json).items()}

    @functools.cached_property
    def metrics(self) -> dict[str, MetricSummary]:
        out = {}
        for name, s in _json_object(self.metrics_json).items():
            try:
                out[str(name)] = MetricSummary(float(s["last"]), float(s["min"]),
                                               float(s["max"]), int(s["n"]),
                                               None if s.get("step") is None else int(s["step"]))
            except (KeyError, TypeError, ValueError):
                continue  # a garbled summary reads as no summary, never as an error
        return out

    @property
    def docker_run(self) -> list[str]:
        try:
            argv = json.loads(self.docker_run_json) if self.docker_run_json else []
        except ValueError:
            return []
        return [str(a) for a in argv] if isinstance(argv, list) else []

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def duration_ms(self) -> int | None:
        """Run time so far (running) or in all (ended); None before it started."""
        if not self.started:
            return None
        return (self.ended or 0) - self.started if self.ended else None

    def exit_status(self) -> int:
        """What `hostctl run --wait` exits with for this (ended) run."""
        if self.state == SUCCEEDED:
            return 0
        if self.state == TIMED_OUT:
            return EXIT_TIMED_OUT
        if self.state == CANCELLED:
            return EXIT_CANCELLED
        code = int(self.exit) if self.exit.isdigit() else 1
        return code if 0 < code < 256 else 1


@dataclass(frozen=True)
class MetricSummary:
    """One metric of a run: its last value (highest step, else last written), extremes,
    how many points, and the last point's step (None when the points had none)."""

    last: float
    min: float
    max: float
    count: int
    last_step: int | None = None


def _json_object(text: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# Field name on the host (the file in the run's directory) -> RunRecord attribute.
_RENAMED = {"params": "params_json", "docker_run": "docker_run_json", "metrics": "metrics_json"}
_INT_FIELDS = ("shard", "shards", "need", "cpus", "memory", "attempt", "attempts", "seq",
               "submitted", "started", "ended", "not_before", "metrics_points",
               "metrics_invalid", "metrics_dropped")
_STR_FIELDS = ("job", "project", "state", "group", "gpus", "gpu_models", "exit", "note", "by",
               "experiment", "description", "params", "image", "image_id", "spec_hash",
               "git_rev", "git_branch", "rerun_of", "docker_run", "metrics", "priority",
               "hold", "over_budget", "waiting")


# One field line: an optional `./`, the run id (not a dot-directory of the queue's own), one
# `/`, the field name, `:`, the value to the end of the line. One regex over the whole text:
# a search of 10,000 runs reads a quarter of a million of these lines.
_FIELD_LINE = re.compile(r"^(?:\./)?([^/:\n.][^/:\n]*)/([^/:\n]+):(.*)$", re.M)


def parse_fields(lines: Iterable[str] | str) -> dict[str, dict[str, str]]:
    """`ID/FIELD:VALUE` lines (optionally `./ID/...`) -> {id: {field: value}}; other lines
    are passed over."""
    text = lines if isinstance(lines, str) else "\n".join(lines)
    out: dict[str, dict[str, str]] = {}
    for run_id, name, value in _FIELD_LINE.findall(text):
        fields = out.get(run_id)
        if fields is None:
            fields = out[run_id] = {}
        fields[name] = value
    return out


def record_from(host: str, run_id: str, fields: Mapping[str, str]) -> RunRecord:
    """A record from its fields; missing or garbled numbers read as 0."""
    values: dict[str, object] = {_RENAMED.get(f, f): fields.get(f, "") for f in _STR_FIELDS}
    for f in _INT_FIELDS:
        raw = fields.get(f, "").strip()
        values[f] = int(raw) if raw.lstrip("-").isdigit() else 0
    if not values["shards"]:
        values["shards"] = 1
    if not values["attempts"]:
        values["attempts"] = 1
    if not values["attempt"]:
        values["attempt"] = 1
    if values["priority"] not in ("high", "low"):
        values["priority"] = "normal"
    return RunRecord(id=run_id, host=host, **values)  # type: ignore[arg-type]


def parse_records(host: str, lines: Iterable[str] | str) -> list[RunRecord]:
    """Every run in the read script's output, oldest submission first."""
    recs = [record_from(host, rid, f) for rid, f in parse_fields(lines).items() if f.get("state")]
    return sorted(recs, key=lambda r: (r.submitted, r.seq, r.id))


def queue_positions(records: Iterable[RunRecord]) -> dict[str, int]:
    """1-based place of each queued run in its host's line (what `hostctl jobs` shows): the
    host's own queue order (its `waiting` places: priorities and ageing), then runs it has
    not placed yet by their seq."""
    by_host: dict[str, list[RunRecord]] = {}
    for r in records:
        if r.state == QUEUED:
            by_host.setdefault(r.host, []).append(r)
    out: dict[str, int] = {}
    for runs in by_host.values():
        for i, r in enumerate(sorted(runs, key=lambda r: (r.wait_position is None,
                                                           r.wait_position or 0, r.seq)), 1):
            out[r.id] = i
    return out


def latest_per_shard(records: Iterable[RunRecord]) -> dict[int, RunRecord]:
    """The newest attempt of each shard of a group (a --retry-failed run replaces the
    failed one in the group's summary)."""
    out: dict[int, RunRecord] = {}
    for r in records:
        have = out.get(r.shard)
        if have is None or (r.submitted, r.seq) > (have.submitted, have.seq):
            out[r.shard] = r
    return dict(sorted(out.items()))


def parse_points(text: str) -> dict[str, list[tuple[int | None, float]]]:
    """A run's metrics.tsv (NAME TAB STEP TAB VALUE a line, STEP empty when the point had
    none; written by the queue helper from the run's HOSTCTL_METRICS file) -> the points of
    each metric in the order written. A garbled line is passed over."""
    out: dict[str, list[tuple[int | None, float]]] = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or not parts[0]:
            continue
        try:
            step = int(parts[1]) if parts[1] else None
            value = float(parts[2])
        except ValueError:
            continue
        out.setdefault(parts[0], []).append((step, value))
    return out
