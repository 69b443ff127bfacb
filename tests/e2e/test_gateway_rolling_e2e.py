"""Zero-downtime rollouts through the gateway, end to end on sandbox hosts.

Kong itself cannot be had here, so the site runs an external Kong (`gateway.managed:
false`) played by the Admin API stand-in on edge-1's loopback; hostctl reaches it through
its SSH tunnel and the stand-in records every target weight it was asked to load.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import yaml

from tests.rigs.deploy_rig import Site, example_site
from tests.rigs.gateway_rig import standin_on

pytestmark = pytest.mark.sandbox
__all__ = ["example_site"]


@pytest.fixture(scope="module")
def external_kong(example_site: Site, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[Site]:
    inventory = yaml.safe_load(example_site.inventory.read_text())
    inventory["gateway"]["managed"] = False
    inventory["gateway"]["drain"] = "1s"
    example_site.inventory.write_text(yaml.safe_dump(inventory, sort_keys=False))
    with standin_on(example_site, "edge-1", 8001, tmp_path_factory.mktemp("standin")):
        yield example_site


def deploy(s: Site) -> tuple[int, str]:
    res = s.hostctl("deploy", "-i", str(s.inventory), "--yes")
    return res.returncode, res.stdout + res.stderr


def weights(s: Site) -> list[dict[str, int]]:
    return json.loads(s.ssh("edge-1", "curl -s http://127.0.0.1:8001/_standin/weights"))


def test_deploy_syncs_the_gateway_once_services_are_healthy(external_kong: Site) -> None:
    rc, out = deploy(external_kong)
    assert rc == 0, out
    assert "gateway edge-1: updated; Kong runs configuration " in out
    app = external_kong.hosts["app-1"].address
    assert weights(external_kong)[-1][f"hostctl-triage-api {app}:18080"] == 100


def test_a_routed_service_with_two_instances_rolls_one_at_a_time(external_kong: Site) -> None:
    s = external_kong
    app = s.hosts["app-1"].address
    first, second = f"hostctl-triage-api {app}:18080", f"hostctl-triage-api {app}:18081"
    before = s.active_since("app-1")
    loaded = len(weights(s))
    s.edit("specs/triage.yml", "  LOG_LEVEL: info", "  LOG_LEVEL: debug")
    plan = s.hostctl("plan", "-i", str(s.inventory))
    assert "rolling through the gateway, one instance at a time: " \
           "hostctl-triage-api-1.service, hostctl-triage-api-2.service" in plan.stdout
    rc, out = deploy(s)
    assert rc == 0, out
    history = [(w[first], w[second]) for w in weights(s)[loaded:]]
    # instance 1 out, back; instance 2 out, back: never both out of rotation
    assert history == [(0, 100), (100, 100), (100, 0), (100, 100)], history
    after = s.active_since("app-1")
    assert {u for u in after if after[u] != before.get(u)} == {
        "hostctl-triage-api-1.service", "hostctl-triage-api-2.service"}


def test_a_single_instance_service_restarts_in_place_and_says_so(external_kong: Site) -> None:
    s = external_kong
    s.edit("specs/reports.yml", "  PORT: 8080", "  PORT: 8080\n  MODE: v2")
    plan = s.hostctl("plan", "-i", str(s.inventory))
    assert ("restarting in place: hostctl-reports-web-1.service (each has a short gap while "
            "it restarts)") in plan.stdout
    rc, out = deploy(s)
    assert rc == 0, out
