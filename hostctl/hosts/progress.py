"""How work on a host reports progress: a callback (host, phase, detail)."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, str, str], None]  # (host, phase, detail)
