"""The quoting boundary and the error text: both are part of the runner interface."""

from __future__ import annotations

import shlex

import pytest

from hostctl.errors import HostctlError
from hostctl.runner import (
    AuthenticationFailed,
    CommandTimeout,
    ConnectionLost,
    HostKeyRejected,
    HostUnreachable,
    Result,
    RunnerError,
    shell_line,
)
from hostctl.runner.base import describe


@pytest.mark.parametrize(
    ("command", "line"),
    [
        (["docker", "ps"], "docker ps"),
        (["echo", "it's"], "echo 'it'\"'\"'s'"),
        (["echo", "$HOME", "a b"], "echo '$HOME' 'a b'"),
        (["printf", ""], "printf ''"),
        ("echo $HOME; exit 3", "sh -c 'echo $HOME; exit 3'"),
    ],
)
def test_shell_line_quotes_argv_once_and_wraps_scripts(command: list[str] | str, line: str) -> None:
    assert shell_line(command) == line


def test_shell_line_round_trips_through_a_posix_parser() -> None:
    argv = ["a b", "'", '"', "$x", "\n", "\\", ""]
    assert shlex.split(shell_line(argv)) == argv


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ([], ValueError),
        (["echo", "a\0b"], ValueError),
        (["echo", b"bytes"], TypeError),
    ],
)
def test_shell_line_rejects_what_cannot_be_sent(command: list[object], error: type) -> None:
    with pytest.raises(error):
        shell_line(command)  # type: ignore[arg-type]


def test_describe_never_shows_more_than_two_words() -> None:
    assert describe(["docker", "run", "-e", "PASSWORD=hunter2", "app"]) == "`docker run`"
    assert describe("curl -H 'Authorization: secret'") == "a shell script"


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (
            HostUnreachable("app-1", "connection refused — is sshd running?", target="10.0.0.5:22"),
            "app-1 (10.0.0.5:22): connection refused — is sshd running?",
        ),
        (AuthenticationFailed("app-1", "key refused"), "app-1: key refused"),
        (CommandTimeout("local", "`sleep 9` timed out"), "local: `sleep 9` timed out"),
    ],
)
def test_error_text_names_host_and_target(error: RunnerError, text: str) -> None:
    assert str(error) == text


def test_runner_errors_are_hostctl_errors_with_host_and_reason() -> None:
    for cls in (
        HostUnreachable,
        AuthenticationFailed,
        HostKeyRejected,
        ConnectionLost,
        CommandTimeout,
    ):
        err = cls("db-1", "why", target="h:22")
        assert isinstance(err, RunnerError) and isinstance(err, HostctlError)
        assert (err.host, err.target, err.reason) == ("db-1", "h:22", "why")


def test_result_ok() -> None:
    assert Result(0, "", "").ok
    assert not Result(1, "", "").ok
