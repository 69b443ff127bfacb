"""Shared pytest set-up: a quiet, fixed-width environment; the sandbox and sshd rigs."""

from __future__ import annotations

import os

from hypothesis import settings

# In CI every property test draws the same examples each run (derandomized, no example
# database): a failure there is reproducible, never a lucky or unlucky draw. Locally they
# draw afresh.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")

os.environ.setdefault("NO_COLOR", "1")
os.environ.setdefault("COLUMNS", "100")

pytest_plugins = ["tests.rigs.sandbox_rig", "tests.rigs.local_sshd", "tests.rigs.keeper_rig"]
