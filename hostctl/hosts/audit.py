"""The host's audit log: one JSON line per deploy, rollback and day-two action, appended by
the one writer here (deploy's finish script embeds its lines; a day-two action sends them alone)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping

from hostctl import layout as L


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
