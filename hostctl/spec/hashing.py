"""A workload's spec hash: what labels its containers and tells a deploy whether it changed."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import MISSING, fields, is_dataclass
from typing import Any

from hostctl.spec import model as m

# `report` only tells the exporter what to publish: it shapes no container.
_NOT_HASHED = frozenset({"file", "source", "line", "lines", "route", "report"})
_NO_DEFAULT = object()
# Where a workload keeps its hash once computed: validate and render ask for it several times
# per workload (unit labels, the unit's comment, the Kubernetes labels). A Workload is frozen
# and nothing changes its values; `dataclasses.replace` makes a new one, without the hash.
_MEMO = "_hostctl_spec_hash"


def spec_hash(w: m.Workload) -> str:
    """A short hash of everything in the spec that shapes the container."""
    memo: str | None = w.__dict__.get(_MEMO)
    if memo is None:
        blob = json.dumps(w, sort_keys=True, default=_jsonable, separators=(",", ":"))
        memo = w.__dict__[_MEMO] = hashlib.sha256(blob.encode()).hexdigest()[:12]
    return memo


def _jsonable(value: Any) -> Any:
    # Settings left at their default are not hashed, so a new optional setting in a later
    # hostctl changes no existing hash and restarts nothing.
    if is_dataclass(value) and not isinstance(value, type):
        out = {}
        for name, default in _hashed_fields(type(value)):
            v = getattr(value, name)
            if default is _NO_DEFAULT or v != default:
                out[name] = v
        return out
    raise TypeError(f"cannot hash {type(value).__name__}")


@functools.cache
def _hashed_fields(cls: type) -> tuple[tuple[str, Any], ...]:
    """(name, default value or _NO_DEFAULT) of each hashed field of dataclass `cls`."""
    out = []
    for f in fields(cls):
        if f.name in _NOT_HASHED:
            continue
        if f.default is not MISSING:
            out.append((f.name, f.default))
        elif f.default_factory is not MISSING:
            out.append((f.name, f.default_factory()))
        else:
            out.append((f.name, _NO_DEFAULT))
    return tuple(out)
