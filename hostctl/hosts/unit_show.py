"""`systemctl show` output, read once for everyone: deploy's facts, status, the day-two
actions, the job queue's timers and the metrics exporter on each host.

Standard library only (and the timestamp rule it shares with health_verdict), because the
exporter's zipapp ships this module as it is (observability/exporter_bundle.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hostctl.hosts.health_verdict import parse_timestamp


@dataclass(frozen=True)
class UnitState:
    """One unit as `systemctl show` describes it (parse_units): deploy's facts, status and
    the day-two actions each ask for the properties they need; the others stay empty."""

    name: str
    load: str = ""
    active: str = ""
    sub: str = ""
    file_state: str = ""  # UnitFileState
    active_enter: str = ""  # ActiveEnterTimestamp, as systemd prints it
    restarts: int = 0
    result: str = ""
    since: int | None = None  # StateChangeTimestamp: epoch seconds of the last state change

    @property
    def started(self) -> int | None:
        """ActiveEnterTimestamp in epoch seconds: when the unit's current run began."""
        return parse_timestamp(self.active_enter)

    @property
    def state(self) -> str:
        """`active/running`, `activating/auto-restart`, ... as one word for tables."""
        return f"{self.active}/{self.sub}" if self.sub else self.active or "unknown"



def show_blocks(lines: list[str]) -> list[dict[str, str]]:
    """`systemctl show` output for several units: one KEY=VALUE dict per unit."""
    blocks: list[dict[str, str]] = []
    block: dict[str, str] = {}
    for line in [*lines, ""]:
        if line.strip():
            key, _, value = line.partition("=")
            block[key] = value
        elif block:
            blocks.append(block)
            block = {}
    return [b for b in blocks if "Id" in b]


def parse_units(lines: Sequence[str]) -> dict[str, UnitState]:
    """`systemctl show --property=...` output (blank-line separated blocks) by unit Id; the
    one reader of it, for deploy's facts, status and the day-two actions."""
    return {
        b["Id"]: UnitState(
            name=b["Id"], load=b.get("LoadState", ""), active=b.get("ActiveState", ""),
            sub=b.get("SubState", ""), file_state=b.get("UnitFileState", ""),
            active_enter=b.get("ActiveEnterTimestamp", ""),
            restarts=int(n) if (n := b.get("NRestarts", "")).isdigit() else 0,
            result=b.get("Result", ""),
            since=parse_timestamp(b.get("StateChangeTimestamp", "")),
        )
        for b in show_blocks(list(lines))
    }
