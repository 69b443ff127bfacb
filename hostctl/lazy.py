"""Package exports loaded on first use (PEP 562).

A package whose small, cheap part (an inventory section's schema) is needed by every
command must not make them all import its heavy part (HTTP clients, exporters) at start-up.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def exports(package: str, home: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` that imports `name` from `home[name]` when first asked."""

    def __getattr__(name: str) -> Any:
        if name not in home:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(home[name]), name)

    return __getattr__
