"""hosts.early: connections opened in the background while a command starts up are the
ones the session takes, each host connected once, and none is left open."""

from __future__ import annotations

import dataclasses
import sys
import threading
from pathlib import Path

import click
import pytest

from hostctl.cli.connecting import connect_early
from hostctl.hosts import early
from hostctl.hosts.session import Session, runner_for
from hostctl.runner.base import HostUnreachable
from hostctl.spec import model as m
from hostctl.spec.model import Site
from hostctl.validate import load_site

EXAMPLE = Path(__file__).resolve().parents[3] / "inventories" / "site.yml"


@pytest.fixture(scope="module")
def site() -> Site:
    return load_site(str(EXAMPLE))


class Conn:
    """A runner that counts the connections it opens and its closes; connect() is
    idempotent, as a Runner's is; `gate` holds the first connect() until set."""

    def __init__(self, host: str, gate: threading.Event | None = None,
                 error: Exception | None = None):
        self.host = host
        self.gate = gate
        self.error = error
        self.connects = 0
        self.closes = 0
        self.open = False

    def connect(self) -> None:
        if self.open:
            return
        if self.gate is not None:
            assert self.gate.wait(10)
        self.connects += 1
        if self.error is not None:
            raise self.error
        self.open = True

    def close(self) -> None:
        self.closes += 1
        self.open = False


def test_the_session_takes_the_early_connections(site: Site) -> None:
    made: dict[str, Conn] = {}

    def factory(host: m.Host) -> Conn:
        made[host.name] = Conn(host.name)
        return made[host.name]

    hosts = [site.inventory.hosts["app-1"], site.inventory.hosts["edge-1"]]
    with early.connecting(hosts, factory):  # type: ignore[arg-type]
        s = Session(site, ["app-1", "edge-1"], "hostctl deploy")
        with s.connected():
            assert s.runners == {"app-1": made["app-1"], "edge-1": made["edge-1"]}
            assert [c.connects for c in made.values()] == [1, 1]  # no second connection
        assert [c.closes for c in made.values()] == [1, 1]  # the session closed them
    assert [c.closes for c in made.values()] == [1, 1]  # and nothing closed them twice
    assert early.take(hosts[0]) is None  # the block is over: nothing left to take


def test_a_host_that_failed_early_fails_once_with_its_error(site: Site) -> None:
    lost = HostUnreachable("app-1", "connection refused", target="10.20.0.11:22")
    made: list[Conn] = []

    def factory(host: m.Host) -> Conn:
        made.append(Conn(host.name, error=lost))
        return made[-1]

    host = site.inventory.hosts["app-1"]
    with early.connecting([host], factory):  # type: ignore[arg-type]
        s = Session(site, ["app-1"], "hostctl deploy")
        with s.connected():
            assert s.runners == {"app-1": lost}
    assert len(made) == 1 and made[0].connects == 1 and made[0].closes == 1


def test_connections_not_taken_are_closed_even_when_they_open_late(site: Site) -> None:
    gate = threading.Event()
    made: dict[str, Conn] = {}

    def factory(host: m.Host) -> Conn:
        made[host.name] = Conn(host.name, gate if host.name == "gpu-1" else None)
        return made[host.name]

    hosts = list(site.inventory.hosts.values())
    with early.connecting(hosts, factory):  # type: ignore[arg-type]
        while len(made) < len(hosts) or made["edge-1"].connects == 0:
            threading.Event().wait(0.01)
    assert {n: c.closes for n, c in made.items() if n != "gpu-1"} == {
        "edge-1": 1, "app-1": 1}
    assert made["gpu-1"].closes == 0  # still connecting when the command ended
    gate.set()
    for _ in range(500):
        if made["gpu-1"].closes:
            break
        threading.Event().wait(0.01)
    assert made["gpu-1"].connects == 1 and made["gpu-1"].closes == 1


def test_an_early_connection_to_a_host_described_otherwise_is_not_used(site: Site) -> None:
    made: list[Conn] = []

    def factory(host: m.Host) -> Conn:
        made.append(Conn(host.name))
        return made[-1]

    host = site.inventory.hosts["app-1"]
    moved = dataclasses.replace(host, address="10.20.0.99")
    with early.connecting([host], factory):  # type: ignore[arg-type]
        assert early.take(moved) is None
    assert made[0].closes == 1


def test_without_early_connections_runner_for_builds_a_new_runner(site: Site) -> None:
    from hostctl.runner.ssh import SSHRunner

    runner = runner_for(site.inventory.hosts["app-1"])
    assert isinstance(runner, SSHRunner) and not runner.connected


def test_a_command_wakes_its_connections_sooner_only_while_it_runs(site: Site) -> None:
    """connect_early shortens Python's thread switch interval, so the handshakes' threads
    are not kept waiting by the busy main thread, and puts it back when the command ends."""
    before = sys.getswitchinterval()
    inside: list[float] = []

    @click.command()
    def command() -> None:
        connect_early(site, [])  # no host chosen: nothing is contacted
        inside.append(sys.getswitchinterval())

    command.main([], standalone_mode=False)
    assert inside == [0.0005]
    assert sys.getswitchinterval() == before
