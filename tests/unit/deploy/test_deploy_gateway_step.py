"""deploy's gateway step: after the services are healthy, Kong gets the config of what runs.

The runner is a RecordingRunner whose forwarded Admin API port leads to the Kong stand-in on
127.0.0.1, so the step's choices (which hosts, when to skip) are tested without a host.
"""

from __future__ import annotations

from pathlib import Path

from hostctl.deploy.outcome import HostOutcome
from hostctl.deploy.run import Deploy, DeployOptions
from hostctl.runner.recording import RecordingRunner
from hostctl.spec.platform import with_platform
from hostctl.validate import load_site
from tests.rigs.kong_admin_standin import KongAdminStandIn

EXAMPLE = Path(__file__).resolve().parents[3] / "inventories" / "site.yml"


def _run(skip: frozenset[str], outcome: str, standin_port: int) -> Deploy:
    site = load_site(str(EXAMPLE))
    run = Deploy.for_site(with_platform(site, skip), DeployOptions(skip_platform=skip))
    run.session.runners = {"edge-1": RecordingRunner("edge-1", ports={8001: standin_port})}
    run.outcomes = {"edge-1": HostOutcome("edge-1", outcome)}
    return run


def test_healthy_gateway_host_gets_the_config_through_its_tunnel() -> None:
    with KongAdminStandIn() as kong:
        port = int(kong.url.rsplit(":", 1)[1])
        run = _run(frozenset(), "deployed", port)
        reports = run.sync_gateway()
        assert [(r.host, r.ok, r.changed) for r in reports] == [("edge-1", True, True)]
        assert reports[0].lines[0].startswith("edge-1: updated; Kong runs configuration ")
        assert run.runners["edge-1"].forwards == [("127.0.0.1", 8001)]  # type: ignore[union-attr]
        assert kong.posts() == 1
        assert run.sync_gateway()[0].changed is False  # the same config: Kong answers 304


def test_no_sync_when_the_gateway_is_skipped_or_its_host_failed() -> None:
    with KongAdminStandIn() as kong:
        port = int(kong.url.rsplit(":", 1)[1])
        assert _run(frozenset({"gateway"}), "deployed", port).sync_gateway() == []
        reports = _run(frozenset(), "rolled-back", port).sync_gateway()
        assert [(r.ok, r.lines) for r in reports] == [
            (False, ["edge-1: gateway not synced: the host did not deploy cleanly"])]
        assert kong.posts() == 0
