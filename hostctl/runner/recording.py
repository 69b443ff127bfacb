"""Recording backend: remembers every command and answers from a table (dry runs, tests).

For example, a test gives canned answers and then asserts the exact commands::

    runner = RecordingRunner("app-1", responses=[
        (["systemctl", "is-active", "web"], Result(3, "inactive\\n", "")),
        (lambda cmd: cmd[0] == "docker", Result(0, "", "")),
    ])
    deploy(runner)
    assert runner.commands == [["systemctl", "is-active", "web"], ...]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from hostctl.runner.base import ClosesOnExit, Command, Result, RunnerError, shell_line

Recorded = tuple[str, ...] | str
"""A command as recorded: an argv as a tuple, a script as a str."""
Matcher = Sequence[str] | str | Callable[[Recorded], bool]
"""An exact command (argv or script) or a predicate over the recorded command."""
_OK = Result(0, "", "")

Response = Result | RunnerError | Callable[["Call"], Result]
"""A canned result, an error to raise (simulating e.g. a lost host), or a function of the call."""


@dataclass(frozen=True)
class Call:
    """One recorded `run`/`stream_in` call."""

    command: Recorded
    stdin: bytes | None
    """What `run` was given on stdin (None for `stream_in`, whose data is not kept)."""
    stdin_len: int | None
    """Bytes given on stdin; None when no stdin (or a stream that was not consumed)."""
    timeout: float | None
    streamed: bool

    @property
    def line(self) -> str:
        """The shell line an SSH backend would send for this call."""
        return shell_line(self.command)


def _normalise(command: Command) -> Recorded:
    return command if isinstance(command, str) else tuple(command)


class RecordingRunner(ClosesOnExit):
    """Records commands instead of running them; answers from `responses`, first match wins.

    `responses` is a list of `(matcher, response)` pairs or a mapping from exact command
    (tuple or str) to response. Unmatched commands get `default`. With `consume_streams=False`
    (dry runs) the chunks given to `stream_in` are not pulled, so e.g. no `docker save` runs.
    `ports` maps remote ports to the local port `forward_port` should yield.
    """

    def __init__(
        self,
        host: str = "recording",
        # Mapping[Any, ...]: keys are exact commands, but Mapping's key type is invariant and
        # a literal like {("hostname",): ...} would not type-check as Mapping[Recorded, ...].
        responses: Iterable[tuple[Matcher, Response]] | Mapping[Any, Response] = (),
        *,
        default: Response = _OK,
        consume_streams: bool = True,
        ports: Mapping[int, int] | None = None,
    ) -> None:
        self.host = host
        self.round_trips = 0
        self.calls: list[Call] = []
        self.forwards: list[tuple[str, int]] = []
        self.default = default
        self.consume_streams = consume_streams
        self.ports = dict(ports or {})
        self.closed = False
        pairs = responses.items() if isinstance(responses, Mapping) else responses
        self._responses: list[tuple[Matcher, Response]] = list(pairs)

    def __repr__(self) -> str:
        return f"RecordingRunner({self.host!r}, {len(self.calls)} calls)"

    def respond(self, matcher: Matcher, response: Response) -> RecordingRunner:
        """Add a canned response (checked after those already given); returns self."""
        self._responses.append((matcher, response))
        return self

    @property
    def commands(self) -> list[list[str] | str]:
        """Every command so far, argv as lists, scripts as str: compare with `==`."""
        return [c if isinstance(c, str) else list(c) for c in (call.command for call in self.calls)]

    @property
    def lines(self) -> list[str]:
        """Every command as the quoted shell line an SSH backend would send."""
        return [call.line for call in self.calls]

    def connect(self) -> None:
        """Nothing to open."""

    def close(self) -> None:
        """Remember that we were closed (pool tests check it)."""
        self.closed = True

    def run(
        self, command: Command, *, stdin: bytes | None = None, timeout: float | None = None
    ) -> Result:
        """Record the call and answer it from the table."""
        size = None if stdin is None else len(stdin)
        return self._answer(_normalise(command), stdin, size, timeout, streamed=False)

    def stream_in(
        self, command: Sequence[str], chunks: Iterable[bytes], *, timeout: float | None = None
    ) -> Result:
        """Record the call and the size of the stream (pulled unless `consume_streams` is off)."""
        size = sum(len(c) for c in chunks) if self.consume_streams else None
        return self._answer(_normalise(command), None, size, timeout, streamed=True)

    @contextmanager
    def forward_port(self, remote_port: int, remote_host: str = "127.0.0.1") -> Iterator[int]:
        """Record the forward and yield `ports[remote_port]` (or `remote_port` itself)."""
        self.forwards.append((remote_host, remote_port))
        yield self.ports.get(remote_port, remote_port)

    def _answer(
        self,
        command: Recorded,
        stdin: bytes | None,
        size: int | None,
        timeout: float | None,
        *,
        streamed: bool,
    ) -> Result:
        shell_line(command)  # reject what a real backend would reject (empty argv, NUL)
        call = Call(command, stdin, size, timeout, streamed)
        self.calls.append(call)
        self.round_trips += 1
        response = self._lookup(command)
        if isinstance(response, RunnerError):
            raise response
        if isinstance(response, Result):
            return response
        return response(call)

    def _lookup(self, command: Recorded) -> Response:
        for matcher, response in self._responses:
            if callable(matcher):
                if matcher(command):
                    return response
            elif _normalise(matcher) == command:
                return response
        return self.default
