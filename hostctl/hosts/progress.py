"""How work on a host reports progress: a callback (host, phase, detail)."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, str, str], None]  # (host, phase, detail)


def quiet(host: str, phase: str, detail: str) -> None:
    """The progress of a run nobody watches."""
    return None
