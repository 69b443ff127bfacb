"""The host's audit log: one JSON line per deploy, rollback and day-two action, built by the
one builder here (audit_record) and appended by the one writer here (deploy's finish script
embeds its lines; a day-two action sends them alone)."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterable, Mapping
from typing import Any

from hostctl import layout as L


def audit_record(base: Mapping[str, Any], host: str, result: str, message: str,
                 failed: Iterable[str], **fields: Any) -> dict[str, Any]:
    """One record of the log: the run's `base` (Session.audit_base: who ran what, as which
    run, where), when, the host, the result and its message, the units that failed, and
    what the kind of run adds (`fields`: a deploy's release and plan, an action's units)."""
    return {**base, "time": int(time.time()), "host": host, "result": result,
            "message": message, "failed": list(failed), **fields}


def audit_line(record: Mapping[str, object]) -> str:
    """The record as it lands in the log (without the newline)."""
    return json.dumps(record, sort_keys=True)


def append_audit_lines(record: Mapping[str, object]) -> list[str]:
    """Shell lines that append `record` to the host's audit log."""
    return [
        f"mkdir -p {L.STATE_DIR}",
        f"printf '%s\\n' {shlex.quote(audit_line(record))} >> {L.AUDIT_LOG}",
    ]


def audit_script(record: Mapping[str, object]) -> str:
    """The script (for `sh -s`) that only appends `record` (a day-two action's record)."""
    return "\n".join(append_audit_lines(record)) + "\n"
