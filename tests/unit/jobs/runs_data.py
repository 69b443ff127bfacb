"""Run records as a host's read script prints them, for the runs/compare tests."""

from __future__ import annotations

import json
from typing import Any

from hostctl.jobs.records import RunRecord, parse_records


def record(run_id: str, host: str = "gpu1", **fields: Any) -> RunRecord:
    """One record built the way the hosts' output is parsed: `ID/FIELD:VALUE` lines."""
    lines = []
    for name, value in {"state": "succeeded", **fields}.items():
        text = json.dumps(value, separators=(",", ":")) if isinstance(value, dict | list) \
            else str(value)
        lines.append(f"{run_id}/{name}:{text}")
    (rec,) = parse_records(host, lines)
    return rec


def summary(last: float, low: float | None = None, high: float | None = None,
            n: int = 3, step: int | None = 2) -> dict[str, Any]:
    return {"last": last, "min": last if low is None else low,
            "max": last if high is None else high, "n": n, "step": step}
