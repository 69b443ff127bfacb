"""The gateway commands end to end: through a real SSH tunnel to a sandbox host whose
loopback runs the Kong Admin API stand-in (no Kong image can be had here)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.rigs.deploy_rig import Site, example_site
from tests.rigs.gateway_rig import standin_on

pytestmark = pytest.mark.sandbox
__all__ = ["example_site"]

SECRET_KEY = "example-ci-key-1111"


@pytest.fixture(scope="module")
def gateway_site(example_site: Site, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[Site]:
    res = example_site.deploy()
    assert res.returncode == 0, res.stdout + res.stderr
    with standin_on(example_site, "edge-1", 8001, tmp_path_factory.mktemp("standin")):
        yield example_site


def gateway(s: Site, *args: str) -> tuple[int, str, str]:
    res = s.hostctl("gateway", *args, "-i", str(s.inventory))
    return res.returncode, res.stdout, res.stderr


def test_plan_shows_what_a_sync_would_add(gateway_site: Site) -> None:
    rc, out, err = gateway(gateway_site, "plan")
    assert rc == 1, out + err
    assert out.startswith("edge-1: changes\n")
    assert "+ service 'triage-api'" in out and "+ route 'reports-web'" in out
    assert SECRET_KEY not in out + err


def test_sync_loads_it_and_verifies_the_hash(gateway_site: Site) -> None:
    rc, out, err = gateway(gateway_site, "sync", "--json")
    assert rc == 0, out + err
    report = json.loads(out)["edge-1"]
    assert report["ok"] and report["changed"] and len(report["hash"]) == 32
    rc, out, _ = gateway(gateway_site, "sync")
    assert rc == 0
    assert out.startswith("edge-1: unchanged; Kong runs configuration ")
    rc, out, _ = gateway(gateway_site, "plan")
    assert (rc, out) == (0, "edge-1: no changes\n")


def test_status_shows_routes_and_targets(gateway_site: Site) -> None:
    rc, out, err = gateway(gateway_site, "status")
    assert rc == 0, out + err
    assert out.splitlines()[0].startswith("edge-1: ready; configuration ")
    assert "(as hostctl would send it)" in out.splitlines()[0]
    app = gateway_site.hosts["app-1"].address
    assert "  route triage-api: /triage -> hostctl-triage-api" in out
    assert f"  upstream hostctl-triage-api: {app}:18080 weight 100" in out
    assert f"  upstream hostctl-triage-api: {app}:18081 weight 100" in out


def test_a_route_change_is_a_readable_diff(gateway_site: Site) -> None:
    s = gateway_site
    s.edit("specs/reports.yml", "  path: /reports", "  path: /reports-v2")
    rc, out, _ = gateway(s, "plan")
    assert rc == 1
    assert "~ route 'reports-web'" in out and "/reports-v2" in out
    assert gateway(s, "sync")[0] == 0
    assert gateway(s, "plan")[:2] == (0, "edge-1: no changes\n")


def test_the_admin_api_is_reachable_only_through_the_tunnel(gateway_site: Site) -> None:
    import socket

    address = gateway_site.hosts["edge-1"].address
    with pytest.raises(OSError), socket.create_connection((address, 8001), timeout=2):
        pass


def test_no_credential_reaches_the_operator(gateway_site: Site) -> None:
    for command in ("plan", "status", "sync"):
        _, out, err = gateway(gateway_site, command, "--json")
        assert SECRET_KEY not in out + err
