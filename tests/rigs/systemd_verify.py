"""systemd-analyze verify on rendered unit files, and the skip (or, in CI, the failure) when
this machine lacks it or the program the units run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def analyze_verify(unit: Path) -> subprocess.CompletedProcess[str]:
    target = unit
    if unit.name.endswith("@.service"):  # a template is verified through an instance of it
        target = unit.with_name(unit.name.replace("@.service", "@run1.service"))
    return subprocess.run(
        ["systemd-analyze", "verify", "--recursive-errors=no", str(target)],
        capture_output=True, text=True, timeout=60, cwd=unit.parent,
    )


def need_analyze() -> str:
    """The path of systemd-analyze, or skip (in CI: fail) when this machine lacks it."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is required in CI (Debian package 'systemd')")
        pytest.skip("systemd-analyze not installed")
    return analyze


def need_verify() -> None:
    """systemd-analyze verify, and the program our units run (it checks that it exists)."""
    if shutil.which("systemd-analyze") is None or not Path("/usr/bin/docker").exists():
        if os.environ.get("CI"):
            pytest.fail("CI must install systemd (systemd-analyze) and docker.io")
        pytest.skip("systemd-analyze or /usr/bin/docker missing: run scripts/test.sh set-up")
