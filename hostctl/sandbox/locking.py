"""Inter-process file locks, so two processes never build, boot or use the same thing at once."""

from __future__ import annotations

import fcntl
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hostctl.sandbox.errors import SandboxError

_POLL_SECONDS = 0.5


def lock_path(name: str) -> Path:
    """Where the lock called `name` lives; shared by every process on this machine."""
    return Path(tempfile.gettempdir()) / f"hostctl-sandbox-{name}.lock"


@contextmanager
def file_lock(
    name: str, *, timeout: float | None = None, on_wait: str | None = None
) -> Iterator[None]:
    """Hold an exclusive advisory lock for the duration of the block.

    Without a timeout this blocks until the lock is free; with one it gives up after `timeout`
    seconds, naming the holder. `on_wait` is printed once if the lock is busy. flock is
    released by the kernel when the holder dies, so a crash never leaves a stale lock.
    """
    path = lock_path(name)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            _acquire_bounded(fd, path, timeout, on_wait)
        _record_holder(fd)
        yield
    finally:
        os.close(fd)


def _acquire_bounded(fd: int, path: Path, timeout: float, on_wait: str | None) -> None:
    deadline = time.monotonic() + timeout
    for attempt in range(int(timeout / _POLL_SECONDS) + 1):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if attempt == 0 and on_wait:
                print(f"{on_wait} ({_holder(path)})", file=sys.stderr, flush=True)
            if time.monotonic() >= deadline:
                break
            time.sleep(_POLL_SECONDS)
    raise SandboxError(f"gave up after {timeout:.0f}s waiting for {path}, held by {_holder(path)}")


def _record_holder(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}: {' '.join(sys.argv)[:200]}\n".encode(), 0)


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "an unknown process"
    except OSError:
        return "an unknown process"
