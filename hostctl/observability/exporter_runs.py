"""The runs that ended on this host, read by the exporter from the queue's history file.

When a run ends, the queue appends its record to /var/lib/hostctl/runs/.history as the read
script prints it (`RUN_ID/FIELD:VALUE` lines, hostctl.jobs.records.parse_fields reads them),
and retention (`tick`) rewrites the file without the runs it prunes. A `Cursor` reads the
file incrementally and hands out each finished run once:

- only whole lines, and not the last run of the file while the file still grows (the queue
  may be halfway through appending it): it is taken when another run follows it or when the
  file has not changed since the last look;
- a file that is not the one read so far (another inode, shorter than the offset, or other
  bytes just before it: retention rewrote it) is read again from its start, and the runs
  already taken are not taken again. For that the cursor keeps the ids it took from the
  file (bounded by retention: keep_runs per job), rather than recounting totals from the whole
  file: totals are counters, and a recount after a prune would make them go down.

Runs in the exporter bundle on the host's own python3 (3.9+): standard library and
hostctl.jobs.records only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hostctl.jobs.records import FINAL_STATES, RunRecord, parse_fields, record_from

HISTORY = "runs/.history"  # under the state dir
CHUNK = 4 * 2**20  # bytes read per look: a long history drains over a few samples
TAIL = 64  # bytes before the offset kept to recognise the same file
IDS_MAX = 50000  # runs remembered (retention keeps the file far smaller: 500 per job)
EXPERIMENTS_KEPT = 20  # per job: the experiments whose newest run ended last


def history_path(state_dir: str) -> str:
    return os.path.join(state_dir, HISTORY)


def _run_id(line: str) -> str | None:
    return next(iter(parse_fields([line])), None)


@dataclass
class Cursor:
    """Where a reader of the history file is, and which runs it has taken."""

    offset: int = 0
    inode: int = 0
    tail: str = ""  # hex of the bytes just before offset
    size: int = 0  # the file's size at the last look
    ids: list[str] = field(default_factory=list)  # runs taken from this file
    before: list[str] = field(default_factory=list)  # taken from an earlier version of it

    @classmethod
    def from_json(cls, data: Any) -> Cursor:
        if not isinstance(data, Mapping):
            return cls()
        try:
            tail = bytes.fromhex(str(data.get("tail", ""))).hex()
            return cls(int(data.get("offset", 0)), int(data.get("inode", 0)), tail,
                       int(data.get("size", 0)), [str(i) for i in data.get("ids", [])],
                       [str(i) for i in data.get("before", [])])
        except (TypeError, ValueError):
            return cls()  # a garbled state: start over


    def to_json(self) -> dict[str, Any]:
        return {"offset": self.offset, "inode": self.inode, "tail": self.tail,
                "size": self.size, "ids": self.ids, "before": self.before}

    def restarted(self) -> Cursor:
        """Read the file again from its start, taking none of the runs taken before."""
        return Cursor(before=sorted(set(self.before) | set(self.ids))[-IDS_MAX:])


def _same_file(fh: Any, st: os.stat_result, cur: Cursor) -> bool:
    if cur.offset == 0:
        return True
    if st.st_ino != cur.inode or st.st_size < cur.offset:
        return False
    tail = bytes.fromhex(cur.tail)
    fh.seek(cur.offset - len(tail))
    return bool(fh.read(len(tail)) == tail)


@dataclass
class _Group:
    """Consecutive lines of one run and where they end in the file."""

    run_id: str
    lines: list[str]
    end: int  # offset just past the group's last line


def _groups(data: bytes, base: int) -> list[_Group]:
    """The whole lines of `data` (read at offset `base`) by run; a line that names no run
    belongs to the run before it (or, at the start, to none: it is passed over)."""
    groups: list[_Group] = []
    pos = data.find(b"\n")
    start = 0
    while pos >= 0:
        line = data[start:pos].decode("utf-8", errors="replace")
        start = pos + 1
        rid = _run_id(line)
        if not groups or (rid is not None and rid != groups[-1].run_id):
            groups.append(_Group(rid or "", [], 0))
        groups[-1].lines.append(line)
        groups[-1].end = base + start
        pos = data.find(b"\n", start)
    return groups


@dataclass
class Batch:
    """What one look at the history found: the finished runs past the cursor, and the
    cursor past them (the caller keeps it once it has used the runs)."""

    records: list[RunRecord]
    cursor: Cursor
    again: set[str] = field(default_factory=set)  # taken before the file was rewritten

    @property
    def new(self) -> list[RunRecord]:
        return [r for r in self.records if r.id not in self.again]


def read_new(path: str, cursor: Cursor, host: str = "", max_runs: int | None = None
             ) -> Batch:
    """The finished runs appended since `cursor` (at most `max_runs` new ones), each once."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            cur = cursor if _same_file(fh, st, cursor) else cursor.restarted()
            fh.seek(cur.offset)
            data = fh.read(CHUNK)
    except OSError:
        return Batch([], cursor)  # no history yet: nothing ended here
    groups = _groups(data, cur.offset)
    if cur.offset + len(data) < st.st_size:
        if len(groups) > 1:  # (one run larger than a whole chunk: take what there is)
            groups.pop()  # the chunk may have cut it: the next look reads it whole
    elif groups and ((st.st_size, st.st_ino) != (cur.size, cur.inode)
                     or "state" not in parse_fields(groups[-1].lines).get(groups[-1].run_id, {})):
        # The queue may still be appending it: taken when the file stood still since the
        # last look, and not before its state line.
        groups.pop()
    taken, before = set(cur.ids), set(cur.before)
    ids, end = list(cur.ids), cur.offset
    records: list[RunRecord] = []
    again: set[str] = set()
    for g in groups:
        if max_runs is not None and len(records) - len(again) >= max_runs:
            break
        end = g.end
        for rid, fields in parse_fields(g.lines).items():
            if rid in taken or fields.get("state") not in FINAL_STATES:
                continue
            taken.add(rid)
            ids.append(rid)
            records.append(record_from(host, rid, fields))
            if rid in before:
                before.discard(rid)
                again.add(rid)
    consumed = end - cur.offset
    tail = data[max(0, consumed - TAIL):consumed].hex() if consumed else cur.tail
    done = end >= st.st_size  # the whole file read: runs not met again were pruned
    return Batch(records, Cursor(end, st.st_ino, tail, st.st_size, ids[-IDS_MAX:],
                                 [] if done else sorted(before)), again)


# -- what the exporter publishes of them -----------------------------------------------------

def _newer(a: list[Any], b: list[Any]) -> bool:
    """[ended, run id, value] entries: a ended after b (the run id breaks ties)."""
    return (a[0], a[1]) > (b[0], b[1])


@dataclass
class RunTotals:
    """Finished runs by project, job and final state (counters), and per job, experiment and
    reported metric the last value of the newest run that has it. Kept in the exporter's
    state file; `report` is {job: [metric, ...]} from the exporter's configuration."""

    cursor: Cursor = field(default_factory=Cursor)
    counts: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    latest: dict[str, dict[str, dict[str, list[Any]]]] = field(default_factory=dict)
    report: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> RunTotals:
        if not isinstance(data, Mapping):
            return cls()
        try:
            counts = {str(p): {str(j): {str(s): int(n) for s, n in by_state.items()}
                               for j, by_state in jobs.items()}
                      for p, jobs in data.get("counts", {}).items()}
            latest = {str(j): {str(e): {str(m): [int(v[0]), str(v[1]), float(v[2])]
                                        for m, v in metrics.items()}
                               for e, metrics in experiments.items()}
                      for j, experiments in data.get("latest", {}).items()}
            report = {str(j): [str(m) for m in names]
                      for j, names in data.get("report", {}).items()}
        except (AttributeError, TypeError, ValueError, IndexError):
            return cls()
        return cls(Cursor.from_json(data.get("cursor")), counts, latest, report)

    def to_json(self) -> dict[str, Any]:
        return {"cursor": self.cursor.to_json(), "counts": self.counts,
                "latest": self.latest, "report": self.report}

    def update(self, path: str, report: Mapping[str, list[str]]) -> int:
        """Read the runs that ended since the last look; how many were new."""
        report = {job: list(names) for job, names in sorted(report.items()) if names}
        if report != self.report:
            # Other metrics reported: read the history again for their values (the runs
            # counted already are not counted again).
            self.cursor, self.report = self.cursor.restarted(), report
            self.latest = {job: {e: {m: v for m, v in values.items() if m in report[job]}
                                 for e, values in experiments.items()}
                           for job, experiments in self.latest.items() if job in report}
        batch = read_new(path, self.cursor)
        for r in batch.records:
            self.add(r, count=r.id not in batch.again)
        self.cursor = batch.cursor
        self._bound()
        return len(batch.new)

    def add(self, r: RunRecord, count: bool = True) -> None:
        if count:
            by_state = self.counts.setdefault(r.project, {}).setdefault(r.job, {})
            by_state[r.state] = by_state.get(r.state, 0) + 1
        wanted = self.report.get(r.job)
        if not wanted:
            return
        metrics = r.metrics
        experiment = self.latest.setdefault(r.job, {}).setdefault(r.experiment, {})
        for name in wanted:
            if name in metrics:
                entry = [r.ended, r.id, metrics[name].last]
                have = experiment.get(name)
                if have is None or _newer(entry, have):
                    experiment[name] = entry

    def _bound(self) -> None:
        for job, experiments in self.latest.items():
            newest = sorted(experiments, key=lambda e: max(
                ((v[0], v[1]) for v in experiments[e].values()), default=(0, "")),
                reverse=True)
            for gone in newest[EXPERIMENTS_KEPT:]:
                del experiments[gone]
            for empty in [e for e, v in experiments.items() if not v]:
                del experiments[empty]
            self.latest[job] = experiments

    def copy(self) -> RunTotals:
        return RunTotals.from_json(json.loads(json.dumps(self.to_json())))
