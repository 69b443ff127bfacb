"""Shared pytest set-up: a quiet, fixed-width environment; the sandbox and sshd rigs."""

from __future__ import annotations

import os

os.environ.setdefault("NO_COLOR", "1")
os.environ.setdefault("COLUMNS", "100")

pytest_plugins = ["tests.rigs.sandbox_rig", "tests.rigs.local_sshd"]
