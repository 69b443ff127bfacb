"""open_runners / run_parallel: many hosts at once, one bad host never stops the others."""

from __future__ import annotations

import threading
import time
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hostctl.runner import (
    CommandTimeout,
    HostUnreachable,
    RecordingRunner,
    Result,
    Runner,
    RunnerError,
    SSHRunner,
    open_runners,
    run_parallel,
)

if TYPE_CHECKING:
    from tests.rigs.local_sshd import LocalSshd


class _Recorder:
    """A factory that remembers what it built and fails for chosen hosts."""

    def __init__(self, down: Collection[str] = (), bug: Collection[str] = ()) -> None:
        self.built: dict[str, RecordingRunner] = {}
        self.down = down
        self.bug = bug
        self.lock = threading.Lock()

    def __call__(self, name: str) -> Runner:
        if name in self.down:
            raise HostUnreachable(name, "connection refused", target=f"{name}:22")
        if name in self.bug:
            raise RuntimeError(f"bug while building {name}")
        runner = RecordingRunner(name, default=Result(0, f"{name}\n", ""))
        with self.lock:
            self.built[name] = runner
        return runner


def test_every_host_gets_a_runner_or_its_error_in_the_given_order() -> None:
    factory = _Recorder(down={"db-1"})
    with open_runners(["web-2", "db-1", "web-1", "web-2"], factory) as runners:
        assert list(runners) == ["web-2", "db-1", "web-1"]
        assert isinstance(runners["db-1"], HostUnreachable)
        assert str(runners["db-1"]) == "db-1 (db-1:22): connection refused"
        assert runners["web-1"] is factory.built["web-1"]
        assert not any(r.closed for r in factory.built.values())
    assert all(r.closed for r in factory.built.values())


def test_a_bug_propagates_and_still_closes_what_was_opened() -> None:
    factory = _Recorder(bug={"b"})
    opening = open_runners(["a", "b", "c"], factory)
    with pytest.raises(RuntimeError, match="bug while building b"), opening:
        pytest.fail("must not be entered")
    assert set(factory.built) == {"a", "c"}
    assert all(r.closed for r in factory.built.values())


def test_run_parallel_returns_each_hosts_result_or_exception() -> None:
    def uptime(runner: Runner) -> str:
        if runner.host == "web-3":
            raise CommandTimeout(runner.host, "`uptime` timed out")
        return runner.run(["uptime"]).stdout

    with open_runners(["web-1", "down", "web-3"], _Recorder(down={"down"})) as runners:
        results = run_parallel(runners, uptime)
    assert list(results) == ["web-1", "down", "web-3"]
    assert results["web-1"] == "web-1\n"
    assert isinstance(results["down"], HostUnreachable)
    assert isinstance(results["web-3"], CommandTimeout)


def test_run_parallel_really_runs_in_parallel() -> None:
    names = [f"h{i}" for i in range(6)]

    def slow(runner: Runner) -> str:
        time.sleep(0.4)
        return runner.host

    with open_runners(names, _Recorder()) as runners:
        started = time.monotonic()
        results = run_parallel(runners, slow, max_workers=6)
        elapsed = time.monotonic() - started
    assert results == {n: n for n in names}
    assert elapsed < 1.5, elapsed


def test_no_hosts_is_fine() -> None:
    with open_runners([], _Recorder()) as runners:
        assert runners == {}
        assert run_parallel(runners, lambda r: r.host) == {}


def test_real_ssh_hosts_one_up_one_down(sshd: LocalSshd, tmp_path: Path) -> None:
    ports = {"app-1": sshd.port, "app-2": sshd.free_port()}

    def factory(name: str) -> SSHRunner:
        return SSHRunner(
            name,
            sshd.address,
            ports[name],
            sshd.user,
            sshd.key_path,
            connect_timeout=3,
            known_hosts=tmp_path / "known_hosts",
        )

    with open_runners(ports, factory) as runners:
        up, down = runners["app-1"], runners["app-2"]
        assert isinstance(up, SSHRunner) and up.connected and up.round_trips == 0
        assert isinstance(down, RunnerError)
        assert "connection refused" in str(down)
        results = run_parallel(runners, lambda r: r.run(["echo", r.host]).stdout)
        assert results["app-1"] == "app-1\n"
        assert results["app-2"] is down
    assert not up.connected
