"""Inter-process file locks, so two test sessions never build or boot the same thing at once."""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def lock_path(name: str) -> Path:
    """Where the lock called `name` lives; shared by every process on this machine."""
    return Path(tempfile.gettempdir()) / f"hostctl-sandbox-{name}.lock"


@contextmanager
def file_lock(name: str) -> Iterator[None]:
    """Hold an exclusive advisory lock for the duration of the block.

    flock is released by the kernel when the process dies, so a crashed build never
    leaves a stale lock behind.
    """
    fd = os.open(lock_path(name), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
