"""Pytest fixtures for tests that need real hosts (see hostctl.sandbox).

Wire into tests/conftest.py with `pytest_plugins = ["tests.rigs.sandbox_rig"]`. Fixtures:
- sandbox_engine: a Docker client, starting dockerd when needed.
- sandbox_state_dir: where the rig keeps its key and hosts.json for this session.
- sandbox_hosts: edge-1, app-1 and gpu-1, booted once per session and removed at its end.
Tests decorated with tests.rigs.sandbox_hosts.runs_last run after all others (they may tear
the hosts down). Helpers to reach hosts (ssh, http_get) are in tests.rigs.sandbox_hosts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from hostctl.sandbox import engine, hosts
from hostctl.sandbox.locking import file_lock
from hostctl.sandbox.models import SandboxHost
from tests.rigs.sandbox_hosts import RUNS_LAST, STANDARD_HOSTS

SESSION_WAIT_SECONDS = 1800.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move `runs_last` tests to the end, keeping every other test's order."""
    items.sort(key=lambda item: getattr(getattr(item, "function", None), RUNS_LAST, False))


@pytest.fixture(scope="session")
def sandbox_engine() -> docker.DockerClient:
    """A client for a running Docker engine; skips only where none can be started (never in CI)."""
    client = engine.connect()
    if client is not None:
        return client
    blocker = engine.start_blocker()
    if blocker is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide a Docker engine for the sandbox rig: {blocker}")
        pytest.skip(f"sandbox rig unavailable: {blocker}")
    return engine.ensure_engine()


@pytest.fixture(scope="session")
def sandbox_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's rig state: SSH key pair and hosts.json."""
    return tmp_path_factory.mktemp("sandbox")


@pytest.fixture(scope="session")
def sandbox_hosts(
    sandbox_engine: docker.DockerClient, sandbox_state_dir: Path
) -> Iterator[list[SandboxHost]]:
    """edge-1, app-1 and gpu-1 (in that order), booted and ready; removed after the session.

    Host names are machine-wide, so a second test session on the same machine would replace
    this one's hosts mid-test: sessions take turns, waiting (bounded) for the lease.
    """
    wait = float(os.environ.get("HOSTCTL_SANDBOX_WAIT", SESSION_WAIT_SECONDS))
    with file_lock("session", timeout=wait, on_wait="waiting for another session's sandbox hosts"):
        try:
            yield hosts.up(STANDARD_HOSTS, sandbox_state_dir)
        finally:
            hosts.down(sandbox_state_dir)
