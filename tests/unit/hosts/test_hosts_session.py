"""hosts.session: the session every command opens (runners to the chosen hosts, who acts as
which run) and its finish (audit, prune, release the lock), with recorded runners."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hostctl.hosts import scripts as S
from hostctl.hosts.session import Session
from hostctl.runner.base import ConnectionLost, Result
from hostctl.runner.recording import RecordingRunner
from hostctl.spec import model as m
from hostctl.spec.model import Site
from hostctl.validate import load_site

EXAMPLE = Path(__file__).resolve().parents[3] / "inventories" / "site.yml"


@pytest.fixture(scope="module")
def site() -> Site:
    return load_site(str(EXAMPLE))


def test_the_session_connects_to_the_chosen_hosts_only(site: Site) -> None:
    seen: list[str] = []
    made: list[str] = []

    def factory(host: m.Host) -> RecordingRunner:
        made.append(host.name)
        return RecordingRunner(host.name)

    s = Session(site, ["app-1", "edge-1"], "hostctl restart api", factory=factory,
                progress=lambda host, phase, detail: seen.append(f"{host} {phase}"))
    with s.connected() as same:
        assert same is s and sorted(s.runners) == ["app-1", "edge-1"]
    assert sorted(made) == ["app-1", "edge-1"]
    assert sorted(seen) == ["app-1 connect", "edge-1 connect"]
    assert s.audit_base() == {"who": s.who, "command": "hostctl restart api",
                              "run": s.run_id, "site": site.inventory.site}
    record = json.loads(s.lock_record)
    assert (record["who"], record["run"], record["command"]) == (
        s.who, s.run_id, "hostctl restart api")


def test_all_hosts_when_none_are_named(site: Site) -> None:
    s = Session(site, None, "hostctl status")
    assert [h.name for h in s.hosts] == list(site.inventory.hosts)


@pytest.mark.parametrize(("answer", "note", "still_locked"), [
    (Result(0, "@@finished\n", ""), "", False),
    (Result(0, "@@lock kept\n@@finished\n", ""),
     " (its apply was still running on the host 30 s after the connection dropped: the lock "
     "is kept; once it has ended, deploy again with --force-unlock)", False),
    (ConnectionLost("app-1", "the connection was closed"),
     " (could not release the lock: app-1: the connection was closed)", True),
])
def test_finish_audits_and_releases_in_one_round_trip(
        site: Site, answer: Result | ConnectionLost, note: str, still_locked: bool) -> None:
    s = Session(site, ["app-1"], "hostctl deploy")
    s.locked.add("app-1")
    runner = RecordingRunner("app-1", [(("sh", "-s"), answer)])
    audit = {**s.audit_base(), "result": "deployed"}
    assert s.finish(runner, audit, ["r9"]) == note
    [call] = runner.calls
    assert call.stdin == S.finish_script(s.lock_record, audit, protect=["r9"]).encode()
    assert ("app-1" in s.locked) is still_locked
