"""Progress lines and long-running commands that report while they work."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from hostctl.sandbox.errors import SandboxError

Progress = Callable[[str], None]


def print_progress(message: str) -> None:
    """Default progress sink: one line on stderr, flushed so it shows during long builds."""
    print(f"[hostctl sandbox] {message}", file=sys.stderr, flush=True)


def run_logged(
    argv: Sequence[str],
    log_path: Path,
    *,
    progress: Progress,
    timeout: float,
    heartbeat: float = 15.0,
) -> None:
    """Run argv with its output in log_path, reporting the latest line every `heartbeat` seconds.

    Raises SandboxError with the log's tail when the command fails or outlives `timeout`.
    """
    started = time.monotonic()
    with log_path.open("ab") as log:
        child = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    for _ in range(int(timeout / heartbeat) + 1):
        try:
            child.wait(timeout=heartbeat)
            break
        except subprocess.TimeoutExpired:
            elapsed = time.monotonic() - started
            progress(f"  {argv[0]}: {elapsed:.0f}s, {last_line(log_path)}")
            if elapsed >= timeout:
                break
    if child.poll() is None:
        child.kill()
        child.wait()
        raise SandboxError(f"{argv[0]} took longer than {timeout:.0f}s:\n{tail(log_path)}")
    if child.returncode != 0:
        raise SandboxError(f"{argv[0]} failed with status {child.returncode}:\n{tail(log_path)}")


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a text file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} unreadable)"


def last_line(path: Path) -> str:
    """The last non-empty line of a text file, or an empty string."""
    lines = tail(path, 1).strip()
    return lines or "(no output yet)"
