"""How runs are shown: the run list, a group's summary, and shards' live progress."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

from hostctl.jobs.hostside import TimerInfo
from hostctl.jobs.records import RunRecord, queue_positions

RUN_COLUMNS = ("RUN", "JOB", "HOST", "GPUS", "STATE", "STARTED", "DURATION", "EXIT")


def duration(ms: int | None) -> str:
    if ms is None:
        return "-"
    s = ms / 1000
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


def stamp(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) if ms else "-"


def state_text(r: RunRecord, positions: Mapping[str, int]) -> str:
    text = r.state
    if r.state == "queued" and r.id in positions:
        text += f" (#{positions[r.id]})"
    if r.attempts > 1 and (r.attempt > 1 or r.final):
        text += f" [try {r.attempt}/{r.attempts}]"
    return text


def run_row(r: RunRecord, positions: Mapping[str, int], now_ms: int) -> tuple[str, ...]:
    running = r.started and not r.ended
    took = (now_ms - r.started) if running else r.duration_ms
    return (r.id, r.job, r.host, r.gpus or "-", state_text(r, positions), stamp(r.started),
            duration(took) + ("…" if running else ""), r.exit or "-")


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> list[str]:
    """Plain columns, two spaces apart (no box drawing: pipes and logs stay readable)."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    return ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip()
            for row in [header, *rows]]


def run_lines(records: Sequence[RunRecord], now_ms: int) -> list[str]:
    positions = queue_positions(records)
    return table([run_row(r, positions, now_ms) for r in records], RUN_COLUMNS)


def timer_lines(timers: Iterable[tuple[str, str, TimerInfo]]) -> list[str]:
    """(job, host, timer) -> JOB HOST NEXT RUN LAST RUN."""
    rows = [(job, host, stamp(t.next_ms or 0) + (" UTC" if t.next_ms else ""),
             stamp(t.last_ms or 0)) for job, host, t in timers]
    return table(rows, ("SCHEDULED JOB", "HOST", "NEXT RUN", "LAST RUN")) if rows else []


def record_json(r: RunRecord) -> dict[str, Any]:
    return {"run": r.id, "job": r.job, "project": r.project, "host": r.host, "state": r.state,
            "group": r.group, "shard": r.shard, "shards": r.shards, "gpus": r.gpus or None,
            "attempt": r.attempt, "attempts": r.attempts, "submitted_ms": r.submitted or None,
            "started_ms": r.started or None, "ended_ms": r.ended or None,
            "duration_ms": r.duration_ms, "exit": r.exit or None, "note": r.note or None,
            "by": r.by or None}


# -- shard groups -------------------------------------------------------------------------

SUMMARY_COLUMNS = ("SHARD", "RUN", "HOST", "STATE", "DURATION", "EXIT")


def summary_lines(latest: Mapping[int, RunRecord], shards: int,
                  lost: Iterable[str] = ()) -> list[str]:
    lost = set(lost)
    rows = []
    for i in range(shards):
        r = latest.get(i)
        if r is None:
            rows.append((str(i), "-", "-", "not run", "-", "-"))
            continue
        state = "lost (host stopped answering)" if r.id in lost and not r.final else r.state
        rows.append((str(i), r.id, r.host, state, duration(r.duration_ms), r.exit or "-"))
    ok = sum(1 for r in latest.values() if r.state == "succeeded")
    lines = table(rows, SUMMARY_COLUMNS)
    lines.append(f"{ok}/{shards} shard(s) succeeded")
    return lines


def counts(latest: Mapping[int, RunRecord], placed: int, shards: int) -> dict[str, int]:
    c = {"waiting": shards - placed, "queued": 0, "running": 0, "succeeded": 0, "failed": 0}
    for r in latest.values():
        key = ("running" if r.state in ("running", "starting") else
               r.state if r.state in c else "failed" if r.final else "queued")
        c[key] += 1
    c["queued"] += placed - len(latest)
    return c


class PlainShards:
    """One line per shard as it ends (logs and CI)."""

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.shown: set[str] = set()

    def __call__(self, state: Any) -> None:
        for r in state.latest().values():
            if r.final and r.id not in self.shown and r.id in state.placed:
                self.shown.add(r.id)
                print(f"shard {r.shard} ({r.id}) on {r.host}: {r.state} in "
                      f"{duration(r.duration_ms)} (exit {r.exit or '-'})", file=self.stream,
                      flush=True)


class LiveShards:
    """A progress bar and a per-host line, redrawn in place on a terminal."""

    def __init__(self, stream: IO[str], shards: int):
        from rich.console import Console
        from rich.live import Live

        self.shards = shards
        self.live = Live(console=Console(file=stream), auto_refresh=False, transient=False)
        self.started = time.monotonic()

    def __enter__(self) -> LiveShards:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def __call__(self, state: Any) -> None:
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        latest = state.latest()
        c = counts(latest, len({r.shard for r in latest.values()} | set()), self.shards)
        done = c["succeeded"] + c["failed"]
        grid = Table.grid(padding=(0, 2))
        grid.add_row(ProgressBar(total=self.shards, completed=done, width=40),
                     f"{done}/{self.shards} ended · {c['running']} running · "
                     f"{c['queued'] + c['waiting']} waiting · {c['failed']} failed · "
                     f"{time.monotonic() - self.started:.0f}s")
        per_host: dict[str, list[int]] = {}
        for r in latest.values():
            row = per_host.setdefault(r.host, [0, 0, 0])
            row[0 if r.state in ("running", "starting") else 1 if r.final else 2] += 1
        for host, (running, ended, queued) in sorted(per_host.items()):
            grid.add_row(f"  {host}", f"{running} running, {queued} queued, {ended} ended")
        self.live.update(grid, refresh=True)
