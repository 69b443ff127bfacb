"""The connection keeper (`ssh.persist`) for tests: each test that takes `persist_dir` gets a
keeper folder of its own (HOSTCTL_PERSIST_DIR) and, at its end, any keeper started there is
asked to stop and waited for (bounded), so no test leaves one behind for the next.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from hostctl.runner import persist_wire as wire
from hostctl.runner.persist_client import keeper_call

STOP_WAIT = 10.0


def keeper_pid(directory: Path) -> int | None:
    """The pid of the keeper listening in `directory`, or None."""
    reply = keeper_call(directory, {"op": "stats"})
    return None if reply is None else int(reply["pid"])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (not yet reaped by init in a container) has ended all the same
    with suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    return False


def wait_gone(pid: int, timeout: float = STOP_WAIT) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return not alive(pid)


def stop_keeper(directory: Path) -> None:
    """Ask the keeper in `directory` to stop; wait for it to be gone (fail if it stays)."""
    try:
        pid = keeper_pid(directory)
    except (OSError, wire.WireError):
        return
    if pid is None:
        return
    with suppress(OSError, wire.WireError):
        keeper_call(directory, {"op": "stop"})
    assert wait_gone(pid), f"the keeper {pid} did not stop within {STOP_WAIT}s"


@pytest.fixture
def persist_dir(tmp_path_factory: pytest.TempPathFactory,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # Short: a socket's path must fit in 108 bytes, and pytest's temp paths are long.
    directory = Path(tmp_path_factory.mktemp("keep"))
    directory.chmod(0o700)
    monkeypatch.setenv("HOSTCTL_PERSIST_DIR", str(directory))
    try:
        yield directory
    finally:
        stop_keeper(directory)
