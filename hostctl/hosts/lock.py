"""The per-host deploy lock: what a run writes into it, what a blocked run is told, and
breaking a lock left by a run that died.

The lock itself is taken by the facts script and released by the finish script (both in
hostctl.hosts), in the same round trips as the work, so no extra connection is spent on it.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace

from hostctl.hosts import scripts as S
from hostctl.hosts.facts import HostFacts
from hostctl.hosts.progress import Progress
from hostctl.runner.base import Runner


def lock_record(who: str, run_id: str, started: float, command: str) -> str:
    """The JSON a run leaves in each host's lock: enough for whoever finds the host locked
    to know who holds it, since when, and doing what."""
    return json.dumps({
        "who": who, "run": run_id, "pid": os.getpid(),
        "started": int(started), "command": command,
    }, sort_keys=True)


def lock_message(host: str, facts: HostFacts, ttl: float) -> str:
    """Why `host` cannot be deployed now, and what to do: wait, or break a lock older
    than `ttl` seconds (its run most likely died)."""
    holder, started = facts.lock.holder, facts.lock.started
    age = max(0, facts.now - started) if started else 0
    hint = ("rerun with --force-unlock to break it" if age > ttl else
            f"wait for it; if that run died, --force-unlock can break the lock once it is "
            f"older than {int(ttl)}s")
    return (f"{host}: locked by {holder.get('who', 'unknown')} since {facts.lock.started_text} "
            f"({age}s ago) "
            f"running `{holder.get('command', '?')}`; {hint}")


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
    res = runner.run(["sh", "-s"], stdin=S.break_lock_script(
        facts.lock.raw, record).encode(), timeout=60)
    if "@@lock acquired" in res.stdout:
        return replace(facts, lock=replace(facts.lock, acquired=True, held=False))
    return facts
