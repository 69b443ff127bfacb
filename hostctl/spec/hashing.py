"""A workload's spec hash: what labels its containers and tells a deploy whether it changed."""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, fields, is_dataclass
from typing import Any

from hostctl.spec import model as m

# `report` only tells the exporter what to publish: it shapes no container.
_NOT_HASHED = frozenset({"file", "source", "line", "lines", "route", "report"})


def spec_hash(w: m.Workload) -> str:
    """A short hash of everything in the spec that shapes the container."""
    blob = json.dumps(w, sort_keys=True, default=_jsonable, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _jsonable(value: Any) -> Any:
    # Settings left at their default are not hashed, so a new optional setting in a later
    # hostctl changes no existing hash and restarts nothing.
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: v for f in fields(value)
                if f.name not in _NOT_HASHED and not _is_default(f, v := getattr(value, f.name))}
    raise TypeError(f"cannot hash {type(value).__name__}")


def _is_default(f: Any, value: Any) -> bool:
    if f.default is not MISSING:
        return bool(value == f.default)
    if f.default_factory is not MISSING:
        return bool(value == f.default_factory())
    return False
