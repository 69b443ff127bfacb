"""The runner interface every backend implements, its result type and its errors.

A runner executes commands on one host. Commands are built elsewhere as argv lists (pure
functions, no I/O); this module is the single place where an argv becomes a shell line
(`shell_line`), so quoting happens exactly once, at the boundary.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Self, runtime_checkable

from hostctl.errors import HostctlError

Command = Sequence[str] | str
"""An argv list (quoted at the boundary) or a POSIX sh script (run as-is by `sh -c`)."""


@dataclass(frozen=True)
class Result:
    """What a finished command left behind. Text is UTF-8, undecodable bytes replaced."""

    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """True when the command exited 0."""
        return self.rc == 0


@runtime_checkable
class Runner(Protocol):
    """Runs commands on one host; one instance per host, reused for a whole run.

    `run` and `stream_in` never raise for a non-zero exit code: that is in the `Result`.
    They raise `RunnerError` subclasses only when the host could not be asked at all.
    """

    host: str
    """Inventory name of the host; every error message starts with it."""
    round_trips: int
    """Commands sent to the host so far: one per `run`/`stream_in`, plus the SSH backend's
    clean-up command after a timeout. Connecting and port forwards are not counted."""

    def connect(self) -> None:
        """Open the connection now instead of on first use. Idempotent."""
        ...

    def run(
        self, command: Command, *, stdin: bytes | None = None, timeout: float | None = None
    ) -> Result:
        """Run `command`, feeding it `stdin`, and wait for it (at most `timeout` seconds)."""
        ...

    def stream_in(
        self, command: Sequence[str], chunks: Iterable[bytes], *, timeout: float | None = None
    ) -> Result:
        """Run `command` with `chunks` streamed into its stdin, never all held in memory."""
        ...

    def forward_port(
        self, remote_port: int, remote_host: str = "127.0.0.1"
    ) -> AbstractContextManager[int]:
        """Yield a local TCP port that reaches `remote_host:remote_port` as seen by the host."""
        ...

    def close(self) -> None:
        """Release the connection. Safe to call more than once."""
        ...


class ClosesOnExit:
    """`with runner:` closes the runner at the block's end: every backend's context."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release what the runner holds (each backend says what)."""


class RunnerError(HostctlError):
    """The host could not be asked: one line naming the host, the cause and a fix.

    `host` is the inventory name; `target` (e.g. `10.0.0.5:22`) is where we tried to go.
    """

    def __init__(self, host: str, reason: str, *, target: str | None = None) -> None:
        self.host = host
        self.target = target
        self.reason = reason
        where = f"{host} ({target})" if target else host
        super().__init__(f"{where}: {reason}")


class HostUnreachable(RunnerError):
    """No SSH session could be set up: refused, timed out, unresolvable, not SSH."""


class AuthenticationFailed(RunnerError):
    """The host answered but refused our key (or the key could not be used)."""


class HostKeyRejected(RunnerError):
    """The host's key is not the one we know (or is unknown under strict checking)."""


class ConnectionLost(RunnerError):
    """The connection died while we were using it; the command's outcome is unknown."""


class CommandTimeout(RunnerError):
    """A command was still running when its time ran out."""


def timed_out(host: str, command: Command, *, target: str | None = None) -> CommandTimeout:
    """The one wording of a command timeout, shared by every backend."""
    return CommandTimeout(
        host,
        f"{describe(command)} was still running when its time ran out — raise the timeout "
        "or look at what it waits for on the host",
        target=target,
    )


def shell_line(command: Command) -> str:
    """The one place an argv becomes a shell line: `shlex.quote` each word.

    A script (str) is wrapped as `sh -c SCRIPT` so it runs under POSIX sh whatever the
    remote user's login shell is.
    """
    if isinstance(command, str):
        return shlex.join(["sh", "-c", command])
    argv = list(command)
    if not argv:
        raise ValueError("empty command")
    for word in argv:
        if not isinstance(word, str):
            raise TypeError(f"command words must be str, got {type(word).__name__}: {word!r}")
        if "\0" in word:
            raise ValueError(f"command word contains a NUL byte: {word!r}")
    return shlex.join(argv)


def describe(command: Command) -> str:
    """A short, secret-free name for a command in error messages: `docker load`.

    Only the program and its first word are shown: later words may carry secrets.
    """
    if isinstance(command, str):
        return "a shell script"
    return "`" + " ".join(list(command)[:2]) + "`"


def decode(data: bytes) -> str:
    """Decode captured output the same way for every backend."""
    return data.decode("utf-8", errors="replace")


DRAIN_GRACE = 5.0
"""Seconds to keep collecting output after a command exited. A background child that holds
stdout open must not hang the deploy; real output still in flight drains in milliseconds."""


class Deadline:
    """The time left of an optional timeout, in the form `threading` waits accept."""

    def __init__(self, timeout: float | None) -> None:
        self.end = None if timeout is None else time.monotonic() + timeout

    def remaining(self, cap: float | None = None) -> float | None:
        """Seconds left (never negative), or `cap` when there is no deadline."""
        if self.end is None:
            return cap
        left = max(0.0, self.end - time.monotonic())
        return left if cap is None else min(left, cap)

    def expired(self) -> bool:
        """True once the deadline has passed."""
        return self.end is not None and time.monotonic() >= self.end


def default_known_hosts() -> Path:
    """hostctl's own known_hosts: `$HOSTCTL_KNOWN_HOSTS`, else under `$XDG_CONFIG_HOME`."""
    if env := os.environ.get("HOSTCTL_KNOWN_HOSTS"):
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base) / "hostctl" / "known_hosts"
