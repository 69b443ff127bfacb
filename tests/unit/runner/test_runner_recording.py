"""RecordingRunner: the backend for --dry-run and for unit tests of everything above runners."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hostctl.runner import (
    Call,
    ConnectionLost,
    LocalRunner,
    RecordingRunner,
    Result,
    Runner,
    SSHRunner,
)


def test_records_the_exact_commands_in_order() -> None:
    runner = RecordingRunner("app-1")
    runner.run(["docker", "pull", "registry/app:1.2"])
    runner.run("systemctl daemon-reload && systemctl restart web")
    runner.stream_in(["docker", "load"], [b"abc", b"de"])
    assert runner.commands == [
        ["docker", "pull", "registry/app:1.2"],
        "systemctl daemon-reload && systemctl restart web",
        ["docker", "load"],
    ]
    assert runner.lines == [
        "docker pull registry/app:1.2",
        "sh -c 'systemctl daemon-reload && systemctl restart web'",
        "docker load",
    ]
    assert runner.round_trips == 3


def test_records_stdin_and_stream_sizes() -> None:
    runner = RecordingRunner()
    runner.run(["install", "-m", "0600", "/dev/stdin", "/etc/app.env"], stdin=b"A=1\n")
    runner.run(["true"], timeout=5)
    runner.stream_in(["docker", "load"], iter([b"x" * 10, b"y" * 5]), timeout=60)
    assert runner.calls == [
        Call(("install", "-m", "0600", "/dev/stdin", "/etc/app.env"), b"A=1\n", 4, None, False),
        Call(("true",), None, None, 5, False),
        Call(("docker", "load"), None, 15, 60, True),
    ]


def test_dry_run_does_not_pull_the_stream() -> None:
    def must_not_run() -> Iterator[bytes]:
        raise AssertionError("docker save ran during a dry run")
        yield b""  # pragma: no cover

    runner = RecordingRunner(consume_streams=False)
    assert runner.stream_in(["docker", "load"], must_not_run()).ok
    assert runner.calls[0].stdin_len is None


def test_answers_from_the_table_first_match_wins_else_default() -> None:
    runner = RecordingRunner(
        "app-1",
        responses=[
            (["systemctl", "is-active", "web"], Result(3, "inactive\n", "")),
            ("cat /etc/os-release", Result(0, "ID=debian\n", "")),
            (lambda cmd: cmd[0] == "docker", Result(1, "", "no daemon\n")),
            (lambda cmd: True, Result(0, "never reached for docker\n", "")),
        ],
        default=Result(0, "default\n", ""),
    )
    assert runner.run(["systemctl", "is-active", "web"]) == Result(3, "inactive\n", "")
    assert runner.run(("systemctl", "is-active", "web")).rc == 3  # tuple == list
    assert runner.run("cat /etc/os-release").stdout == "ID=debian\n"
    assert runner.run(["docker", "ps"]) == Result(1, "", "no daemon\n")
    assert runner.run(["uname"]).stdout == "never reached for docker\n"
    assert RecordingRunner(default=Result(0, "default\n", "")).run(["x"]).stdout == "default\n"


def test_mapping_responses_and_respond_chaining() -> None:
    runner = RecordingRunner(responses={("hostname",): Result(0, "app-1\n", "")})
    runner.respond(["id", "-u"], Result(0, "0\n", "")).respond("exit 3", Result(3, "", ""))
    assert runner.run(["hostname"]).stdout == "app-1\n"
    assert runner.run(["id", "-u"]).stdout == "0\n"
    assert runner.run("exit 3").rc == 3


def test_a_response_can_be_an_error_or_a_function_of_the_call() -> None:
    lost = ConnectionLost("app-1", "connection lost while running `docker load`")
    runner = RecordingRunner(
        "app-1",
        responses=[
            (["docker", "load"], lost),
            (["wc", "-c"], lambda call: Result(0, f"{call.stdin_len}\n", "")),
        ],
    )
    with pytest.raises(ConnectionLost) as caught:
        runner.stream_in(["docker", "load"], [b"data"])
    assert caught.value is lost
    assert runner.run(["wc", "-c"], stdin=b"12345").stdout == "5\n"
    assert len(runner.calls) == 2  # the failed call is recorded too


def test_forward_port_is_recorded_and_yields_the_mapped_port() -> None:
    runner = RecordingRunner(ports={8001: 54321})
    with runner.forward_port(8001) as port:
        assert port == 54321
    with runner.forward_port(9090, "10.0.0.7") as port:
        assert port == 9090
    assert runner.forwards == [("127.0.0.1", 8001), ("10.0.0.7", 9090)]


def test_rejects_what_a_real_backend_would_reject() -> None:
    runner = RecordingRunner()
    with pytest.raises(ValueError, match="empty command"):
        runner.run([])
    with pytest.raises(ValueError, match="NUL"):
        runner.run(["echo", "a\0b"])
    assert runner.calls == []


def test_close_is_recorded() -> None:
    with RecordingRunner() as runner:
        assert not runner.closed
    assert runner.closed


@pytest.mark.parametrize(
    "backend",
    [
        RecordingRunner(),
        LocalRunner(),
        SSHRunner("a", "127.0.0.1", key_path="/k", known_hosts=None),
    ],
    ids=["recording", "local", "ssh"],
)
def test_every_backend_satisfies_the_runner_protocol(backend: Runner) -> None:
    assert isinstance(backend, Runner)
