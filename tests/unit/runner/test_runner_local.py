"""LocalRunner specifics; the shared behaviour is in test_runner_contract.py."""

from __future__ import annotations

import time

import pytest

from hostctl.runner import CommandTimeout, LocalRunner


def test_forward_port_yields_the_port_itself() -> None:
    runner = LocalRunner()
    with runner.forward_port(8001) as port:
        assert port == 8001
    with runner.forward_port(8001, "localhost") as port:
        assert port == 8001


def test_forward_port_to_another_address_is_refused() -> None:
    forward = LocalRunner("here").forward_port(8001, "10.0.0.5")
    with pytest.raises(ValueError, match="only to loopback"), forward:
        pass


def test_command_timeout_from_the_constructor_applies_to_every_call() -> None:
    runner = LocalRunner("here", command_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(CommandTimeout) as caught:
        runner.run(["sleep", "20"])
    assert time.monotonic() - started < 4
    assert str(caught.value) == (
        "here: `sleep 20` was still running when its time ran out — raise the timeout or look "
        "at what it waits for on the host"
    )
    # An explicit timeout wins over the default.
    assert runner.run(["sleep", "0.7"], timeout=5).ok


def test_a_command_ignoring_sigterm_is_killed() -> None:
    runner = LocalRunner()
    started = time.monotonic()
    with pytest.raises(CommandTimeout):
        runner.run("trap '' TERM; sleep 20", timeout=0.5)
    assert time.monotonic() - started < 6
