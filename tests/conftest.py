"""Shared pytest set-up: a quiet, fixed-width environment for CLI output."""

from __future__ import annotations

import os

os.environ.setdefault("NO_COLOR", "1")
os.environ.setdefault("COLUMNS", "100")
