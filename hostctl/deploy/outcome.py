"""What a deploy tells about each host: progress lines as it goes, its outcome at the end,
and the finish that records it (the audit record, the lock released).

Shared by every part of a run (apply, rolling, rollback, the platform steps), so it imports
none of them: a failure reads the same whichever part met it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hostctl.deploy.health_gate import HealthResult
from hostctl.deploy.plan import HostPlan
from hostctl.errors import HostctlError
from hostctl.hosts.audit import audit_record as build_audit_record
from hostctl.hosts.session import Session
from hostctl.runner.base import Runner


@dataclass
class HostOutcome:
    host: str
    status: str  # unchanged | deployed | rolled-back | failed | unreachable | locked | skipped
    message: str = ""
    plan: HostPlan | None = None
    health: list[HealthResult] = field(default_factory=list)
    release: str | None = None
    seconds: float = 0.0
    round_trips: int = 0

    @property
    def ok(self) -> bool:
        return self.status in ("unchanged", "deployed", "planned")


def failure_text(stdout: str, stderr: str) -> str:
    """The failed step and its last line of output, then each failing unit's last line
    (the `@@unit-log UNIT` sections remote.scripts.unit_step prints after `@@failed`)."""
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("@@failed "):
            continue
        own: list[str] = []
        logs: dict[str, list[str]] = {}
        current: list[str] | None = own
        for ln in lines[i + 1:]:
            if ln.startswith("@@unit-log "):
                current = logs.setdefault(ln.split(" ", 1)[1], [])
            elif ln.startswith("@@"):
                current = None
            elif current is not None and ln.strip():
                current.append(ln)
        text = f"step {line.split()[1]}: " + (own[-1] if own else "no output")
        return text + "".join(f"; {unit}: {log[-1]}" for unit, log in logs.items() if log)
    err = stderr.strip().splitlines()
    return err[-1] if err else "the script stopped early"


def describe_exc(host: str, exc: BaseException) -> str:
    # Our own errors already name the host and say what to do; anything else is a bug to report.
    if isinstance(exc, HostctlError):
        return str(exc)
    return f"{host}: unexpected error: {exc!r}"


def exit_status(outcomes: Mapping[str, HostOutcome]) -> int:
    return 0 if all(o.ok for o in outcomes.values()) else 1


def audit_record(session: Session, outcome: HostOutcome) -> dict[str, Any]:
    """The host's audit record of a deploy or rollback (hosts.audit builds every record)."""
    return build_audit_record(
        session.audit_base(), outcome.host, outcome.status, outcome.message,
        [h.unit for h in outcome.health if not h.ok], revision=session.revision,
        release=outcome.release, plan=outcome.plan.counts() if outcome.plan else {},
        seconds=outcome.seconds)


def finish_host(session: Session, runner: Runner, outcome: HostOutcome) -> None:
    """Audit the host's outcome and release its lock, in one round trip; a host that ends
    deployed has its release verified (hosts.scripts.mark_unverified)."""
    protect = [outcome.release] if outcome.release else []
    verified = outcome.release if outcome.status == "deployed" else None
    outcome.message += session.finish(runner, audit_record(session, outcome), protect,
                                      verified)
