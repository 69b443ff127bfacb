"""Local backend: the runner interface on the machine hostctl runs on (deploy to self)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import IO

from hostctl.runner.base import (
    DRAIN_GRACE,
    ClosesOnExit,
    Command,
    Deadline,
    Result,
    decode,
    shell_line,
    timed_out,
)

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# How long a timed-out command gets between SIGTERM and SIGKILL.
_KILL_GRACE = 2.0


class LocalRunner(ClosesOnExit):
    """Runs commands here with `subprocess`, with the same semantics as `SSHRunner`.

    Commands go through `sh -c` with the same quoted line sshd would get, so an argv or a
    script behaves identically on both backends.
    """

    def __init__(self, host: str = "local", command_timeout: float | None = None) -> None:
        self.host = host
        self.command_timeout = command_timeout
        self.round_trips = 0

    def __repr__(self) -> str:
        return f"LocalRunner({self.host!r})"

    def connect(self) -> None:
        """Nothing to open."""

    def close(self) -> None:
        """Nothing to release."""

    def run(
        self, command: Command, *, stdin: bytes | None = None, timeout: float | None = None
    ) -> Result:
        """Run `command` (argv or sh script) and capture its exit code and output."""
        return self._exec(command, None if stdin is None else [stdin], timeout)

    def stream_in(
        self, command: Sequence[str], chunks: Iterable[bytes], *, timeout: float | None = None
    ) -> Result:
        """Run `command` with `chunks` copied into its stdin one at a time."""
        return self._exec(command, chunks, timeout)

    @contextmanager
    def forward_port(self, remote_port: int, remote_host: str = "127.0.0.1") -> Iterator[int]:
        """The host is this machine: its loopback port is reachable as it is."""
        if remote_host not in _LOOPBACK:
            raise ValueError(f"{self.host}: cannot forward to {remote_host}, only to loopback")
        yield remote_port

    def _exec(
        self, command: Command, chunks: Iterable[bytes] | None, timeout: float | None
    ) -> Result:
        line = shell_line(command)
        deadline = Deadline(self.command_timeout if timeout is None else timeout)
        self.round_trips += 1
        proc = subprocess.Popen(
            ["sh", "-c", line],
            stdin=subprocess.DEVNULL if chunks is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # Own process group, so a timeout can stop the command and its children.
            start_new_session=True,
        )
        assert proc.stdout is not None and proc.stderr is not None
        out, err = _Collect(proc.stdout), _Collect(proc.stderr)
        feeder = None
        if chunks is not None:
            feeder = _Feed(proc, chunks)
        try:
            rc = proc.wait(deadline.remaining())
        except subprocess.TimeoutExpired:
            _stop(proc)
            raise timed_out(self.host, command) from None
        except BaseException:
            _stop(proc)
            raise
        if feeder is not None:
            feeder.join(deadline.remaining(cap=DRAIN_GRACE))
            if feeder.error is not None:
                raise feeder.error
        grace = deadline.remaining(cap=DRAIN_GRACE)
        out.join(grace)
        err.join(grace)
        return Result(rc, decode(bytes(out.data)), decode(bytes(err.data)))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """TERM the command's process group, then KILL it if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(_KILL_GRACE)
            return
        except subprocess.TimeoutExpired:
            continue


class _Collect(threading.Thread):
    """Reads one output pipe to EOF in the background."""

    def __init__(self, pipe: IO[bytes]) -> None:
        super().__init__(daemon=True)
        self.pipe = pipe
        self.data = bytearray()
        self.start()

    def run(self) -> None:
        with self.pipe:
            while block := self.pipe.read1(64 * 1024):  # type: ignore[attr-defined]
                self.data += block


class _Feed(threading.Thread):
    """Writes chunks into the command's stdin, then closes it.

    A thread because a write into a full pipe blocks and the caller must still be able to
    enforce its deadline. An exception from the chunk source is kept for the caller, and the
    command is stopped so it does not act on truncated input.
    """

    def __init__(self, proc: subprocess.Popen[bytes], chunks: Iterable[bytes]) -> None:
        super().__init__(daemon=True)
        assert proc.stdin is not None
        self.proc = proc
        self.pipe = proc.stdin
        self.chunks = chunks
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            for chunk in self.chunks:
                self.pipe.write(chunk)
        except BrokenPipeError:
            pass  # the command stopped reading; its exit code says why
        except BaseException as exc:
            self.error = exc
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
        finally:
            with suppress(BrokenPipeError):
                self.pipe.close()
