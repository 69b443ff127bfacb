"""How runs are shown: the run list, a group's summary, and shards' live progress."""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

from hostctl.errors import printable
from hostctl.jobs.hostside import ForeignProcess, TimerInfo
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


# Why a queued run waits, as the host's queue last said (RunRecord.wait_reason).
WHY = {"quota": "waits for its project's quota", "GPUs": "waits for GPUs",
       "CPUs": "waits for CPUs", "memory": "waits for memory", "retry back-off": "retry back-off"}


def state_text(r: RunRecord, positions: Mapping[str, int]) -> str:
    text = r.state
    if r.state == "queued" and r.id in positions:
        why = r.wait_reason or ("waits for its project's quota" if r.hold else "")
        text += f" (#{positions[r.id]}" + (f": {WHY.get(why, why)}" if why else "") + ")"
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


def foreign_lines(host: str, procs: Iterable[ForeignProcess]) -> list[str]:
    """GPUs busy with a process hostctl did not start (none leased to it meanwhile)."""
    return [f"{host} GPU {p.device}: busy with a process hostctl did not start (pid {p.pid} "
            f"{printable(p.name)}, {printable(p.memory)})" for p in procs]


def foreign_json(host: str, p: ForeignProcess) -> dict[str, Any]:
    return {"host": host, "gpu": p.device, "pid": p.pid, "process": p.name,
            "memory": p.memory}


def record_json(r: RunRecord) -> dict[str, Any]:
    return {"run": r.id, "job": r.job, "project": r.project, "host": r.host, "state": r.state,
            "group": r.group, "shard": r.shard, "shards": r.shards, "gpus": r.gpus or None,
            "attempt": r.attempt, "attempts": r.attempts, "submitted_ms": r.submitted or None,
            "started_ms": r.started or None, "ended_ms": r.ended or None,
            "duration_ms": r.duration_ms, "exit": r.exit or None, "note": r.note or None,
            "by": r.by or None, "priority": r.priority,
            **({"waiting": {"position": r.wait_position,
                            "reason": r.wait_reason or ("quota" if r.hold else None)}}
               if r.state == "queued" else {})}


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
        # imported here: keeps start-up fast (rich only for a live view on a terminal)
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
        # imported here: keeps start-up fast (rich only for a live view on a terminal)
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


_SHOW_FIELDS = (
    ("run", "run"), ("job", "job"), ("project", "project"), ("experiment", "experiment"),
    ("note", "description"), ("state", "state"), ("outcome", "note"), ("exit", "exit"),
    ("host", "host"), ("GPUs", "gpus"), ("group", "group"), ("rerun of", "rerun_of"),
    ("by", "by"), ("image", "image"), ("image id", "image_id"), ("spec hash", "spec_hash"),
    ("git", "git_rev"), ("branch", "git_branch"),
)


def show_lines(run: Mapping[str, Any], docker_run: Sequence[str],
               secrets: Sequence[str]) -> list[str]:
    """`hostctl runs show`: one run's record (history.run_json's dict) as NAME: VALUE lines,
    then its parameters, metric summaries and the `docker run` its unit ran."""
    out = []
    for label, key in _SHOW_FIELDS:
        if run.get(key) not in (None, ""):
            out.append(f"{label + ':':<12}{printable(str(run[key]))}")
    for label, key in (("submitted", "submitted_ms"), ("started", "started_ms"),
                       ("ended", "ended_ms")):
        if run.get(key):
            out.append(f"{label + ':':<12}{stamp(int(run[key]))} UTC")
    if run.get("duration_ms") is not None:
        out.append(f"{'duration:':<12}{duration(int(run['duration_ms']))}")
    tries = f"{run.get('attempt', 1)} of {run.get('attempts', 1)}"
    out.append(f"{'tries:':<12}{tries}")
    cost = run.get("cost")
    usage = f"{run.get('cpu_seconds', 0):.0f} CPU s, {run.get('gpu_seconds', 0):.0f} GPU s"
    if cost is not None:
        usage += f" = {cost:.4f} {run.get('currency') or ''}".rstrip()
    out.append(f"{'usage:':<12}{usage}")
    params = run.get("params") or {}
    out.append("parameters:" + ("" if params else " none"))
    out += [f"  {printable(k)}={printable(str(v))}" for k, v in sorted(params.items())]
    metrics = run.get("metrics") or {}
    counts = (f"{run.get('metrics_points', 0)} points kept, {run.get('metrics_invalid', 0)} "
              f"invalid lines skipped, {run.get('metrics_dropped', 0)} points over the cap")
    out.append(f"metrics: {counts}" if metrics or run.get("metrics_invalid") else
               "metrics: none")
    rows = [(printable(name), _num(s["last"]), _num(s["min"]), _num(s["max"]), str(s["n"]),
             "-" if s.get("step") is None else str(s["step"]))
            for name, s in sorted(metrics.items())]
    if rows:
        out += ["  " + line for line in table(rows, ("METRIC", "LAST", "MIN", "MAX", "POINTS",
                                                       "LAST STEP"))]
    if docker_run:
        out.append("docker run:")
        out.append("  " + " ".join(shlex.quote(a) for a in docker_run))
    if secrets:
        out.append("secrets:    " + ", ".join(secrets) + " (by name, from the unit's root-only "
                   "env file; values never shown)")
    return out


def _num(v: float) -> str:
    return f"{v:.6g}"
