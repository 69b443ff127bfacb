"""The per-host deploy lock, all of it: the shell that takes, releases and breaks it, what
a run writes into it, how its `@@lock` answer is read, what a blocked run is told, and
breaking a lock left by a run that died.

The lock is a directory (mkdir is atomic) holding the holder's record. Deploy takes it in
its facts script and releases it in its finish script (hostctl.hosts), the day-two actions
in the script that acts and one call after it: in the same round trips as the work, so no
extra connection is spent on it.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from hostctl import layout as L
from hostctl.layout import MARK

if TYPE_CHECKING:
    from hostctl.hosts.facts import HostFacts
    from hostctl.hosts.progress import Progress
    from hostctl.runner.base import Runner

q = shlex.quote


@dataclass(frozen=True)
class LockState:
    acquired: bool = False
    held: bool = False
    holder: dict[str, Any] = field(default_factory=dict)
    raw: str = ""  # the holder record as found, to break exactly that lock and no newer one
    since: int = 0  # lock directory's mtime (epoch seconds), when the record is unreadable

    @property
    def started(self) -> int:
        """When the holder took the lock (epoch seconds; 0 when nobody can tell)."""
        return int(self.holder.get("started") or self.since or 0)

    @property
    def started_text(self) -> str:
        started = self.started
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)) if started else "?"


def lock_record(who: str, run_id: str, started: float, command: str) -> str:
    """The JSON a run leaves in each host's lock: enough for whoever finds the host locked
    to know who holds it, since when, and doing what."""
    return json.dumps({
        "who": who, "run": run_id, "pid": os.getpid(),
        "started": int(started), "command": command,
    }, sort_keys=True)


# -- the shell --------------------------------------------------------------------------

def take_lock_lines(lock_record: str, held_exit: int | None = None) -> list[str]:
    """Shell lines that take the host's deploy lock with `lock_record` in it, and print
    `@@lock acquired`, or `@@lock held MTIME` and the holder's record (parse_lock reads
    both). With `held_exit`, a held lock ends the script with that status, after printing
    the host's clock (`@@now`, which deploy's facts script prints anyway) for the lock's age.
    Deploy's facts script and the day-two actions take it the same way."""
    held = ([f"  echo \"{MARK}now $(date +%s)\"", f"  exit {held_exit}"]
            if held_exit is not None else [])
    return [
        f"mkdir -p {L.STATE_DIR} && chmod 0700 {L.STATE_DIR}",
        f"if mkdir {L.LOCK_DIR} 2>/dev/null; then",
        f"  printf '%s\\n' {q(lock_record)} > {L.LOCK_DIR}/holder.json",
        f"  echo '{MARK}lock acquired'",
        "else",
        f"  echo \"{MARK}lock held $(stat -c %Y {L.LOCK_DIR} 2>/dev/null || echo 0)\"",
        f"  head -c 4096 {L.LOCK_DIR}/holder.json 2>/dev/null | tr -d '\\n'; echo",
        *held,
        "fi",
    ]


def release_lock_lines(lock_record: str) -> list[str]:
    """Shell lines that release the lock if it is still ours (one broken and taken by
    someone else stays theirs)."""
    return [
        f"if [ \"$(cat {L.LOCK_DIR}/holder.json 2>/dev/null)\" = {q(lock_record)} ]; then",
        # A script of this run cut off from us (connection lost) may still be changing
        # the host: the lock stays until it ends (30 s at most, then it is kept).
        f"  p=$(cat {L.LOCK_DIR}/apply.pid 2>/dev/null); i=0",
        '  while [ -n "$p" ] && kill -0 "$p" 2>/dev/null && [ $i -lt 300 ]; do',
        "    sleep 0.1; i=$((i + 1))",
        "  done",
        '  if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then echo \'@@lock kept\'; '
        f"else rm -rf {L.LOCK_DIR}; fi",
        "fi",
    ]


def unlock_argv(lock_record: str) -> list[str]:
    """The command that only releases the lock (the day-two actions' last call)."""
    return ["sh", "-c", "\n".join(release_lock_lines(lock_record)) + "\n"]


def break_lock_script(expected_raw: str, lock_record: str) -> str:
    """Break a stale lock, but only the one we saw: a lock taken since then is left alone."""
    return (
        f"if [ \"$(head -c 4096 {L.LOCK_DIR}/holder.json 2>/dev/null | tr -d '\\n')\" = "
        f"{q(expected_raw)} ]; then rm -rf {L.LOCK_DIR}; fi\n"
        f"if mkdir {L.LOCK_DIR} 2>/dev/null; then\n"
        f"  printf '%s\\n' {q(lock_record)} > {L.LOCK_DIR}/holder.json; echo '@@lock acquired'\n"
        "else echo '@@lock held'; fi\n"
    )


# -- reading and telling ---------------------------------------------------------------

def parse_lock(sections: dict[str, list[str]]) -> LockState:
    """The `@@lock` section: acquired, or held by whom (the holder record as found)."""
    lines = sections.get("lock")
    if not lines:
        return LockState()
    if lines[0] == "acquired":
        return LockState(acquired=True)
    head = lines[0].split()
    since = int(head[1]) if len(head) > 1 and head[1].isdigit() else 0
    raw = lines[1] if len(lines) > 1 else ""
    try:
        holder = json.loads(raw) if raw else {}
    except ValueError:
        holder = {}
    return LockState(held=True, holder=holder if isinstance(holder, dict) else {}, raw=raw,
                     since=since)


def lock_age(lock: LockState, now: int) -> int:
    """Seconds since the holder took the lock, by the host's clock (0 when unknown)."""
    return max(0, now - lock.started) if lock.started else 0


def held_by(lock: LockState, now: int) -> str:
    """Who holds the lock, since when, doing what: the one description of a held lock."""
    holder = lock.holder
    return (f"locked by {holder.get('who', 'unknown')} since {lock.started_text} "
            f"({lock_age(lock, now)}s ago) "
            f"running `{holder.get('command', '?')}`")


def lock_message(host: str, lock: LockState, now: int, ttl: float) -> str:
    """Why `host` cannot be deployed now, and what to do: wait, or break a lock older
    than `ttl` seconds (its run most likely died)."""
    hint = ("rerun with --force-unlock to break it" if lock_age(lock, now) > ttl else
            f"wait for it; if that run died, --force-unlock can break the lock once it is "
            f"older than {int(ttl)}s")
    return f"{host}: {held_by(lock, now)}; {hint}"


def break_stale_lock(runner: Runner, facts: HostFacts, ttl: float, record: str,
                     progress: Progress) -> HostFacts:
    """With --force-unlock: take over a lock older than `ttl` seconds. A younger one is left
    alone (its run may still be working); the facts then still say the lock is held."""
    started = facts.lock.started
    # Measured against the host's clock (facts.now), the one it keeps the lock's mtime by.
    if facts.now - started <= ttl:
        return facts
    progress(runner.host, "unlock", "breaking a stale lock")
    # The script replaces the lock only if it still holds the record read with the facts,
    # so a run that took the lock in between keeps it.
    res = runner.run(["sh", "-s"], stdin=break_lock_script(
        facts.lock.raw, record).encode(), timeout=60)
    if "@@lock acquired" in res.stdout:
        return replace(facts, lock=replace(facts.lock, acquired=True, held=False))
    return facts
