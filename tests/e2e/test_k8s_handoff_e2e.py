"""`hostctl k8s handoff` of a routed service end to end on sandbox hosts.

The cluster is the kube-apiserver stand-in on this machine's 127.0.0.1
(tests/rigs/k8s_apiserver_standin.py, which reports a Deployment's replicas ready one poll at a
time); Kong is the site's external gateway (`gateway.managed: false`), played by the Admin
API stand-in on edge-1's loopback and reached through hostctl's SSH tunnel. The hosts, their
systemd units, the handoff records and the deploys that follow are real.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml

from tests.rigs.deploy_rig import Site, example_site
from tests.rigs.gateway_rig import standin_on
from tests.rigs.k8s_apiserver_standin import StandIn, running

pytestmark = pytest.mark.sandbox
__all__ = ["example_site"]

TARGET = "10.99.0.50:80"  # where the gateway hosts would reach the cluster's ingress
DEPLOYMENT = "/apis/apps/v1/namespaces/triage/deployments/triage-api"
RECORD = "/var/lib/hostctl/cluster/triage-api"
UNITS = "hostctl-triage-api-1.service hostctl-triage-api-2.service"
# triage-api runs on app-1 behind edge-1's gateway; the GPU host plays no part here.
HOSTS = ("--hosts", "app-1,edge-1")


@dataclass
class Rig:
    site: Site
    api: StandIn

    def hostctl(self, *args: str) -> tuple[int, str]:
        res = self.site.hostctl(*args, "-i", str(self.site.inventory))
        return res.returncode, res.stdout + res.stderr

    def kong_targets(self) -> dict[str, int]:
        """The triage-api targets of the config Kong runs now, with their weights."""
        loaded = json.loads(self.site.ssh("edge-1", "curl -s http://127.0.0.1:8001/"
                                                    "_standin/weights"))
        return {k.split(" ", 1)[1]: v for k, v in loaded[-1].items()
                if k.startswith("hostctl-triage-api ")}

    def kong_route(self) -> dict[str, object]:
        text = json.loads(self.site.ssh("edge-1", "curl -s http://127.0.0.1:8001/config"))
        routes = yaml.safe_load(text["config"])["routes"]
        return next(r for r in routes if r["name"] == "triage-api")

    def units(self) -> list[str]:
        out = self.site.ssh("app-1", f"systemctl is-active {UNITS}; true")
        return out.split()

    def records(self) -> dict[str, str]:
        return {h: self.site.ssh(h, f"cat {RECORD} 2>/dev/null; true").strip()
                for h in ("app-1", "edge-1", "gpu-1")}


@pytest.fixture(scope="module")
def rig(example_site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("handoff")
    with running() as api:
        kubeconfig = api.write_kubeconfig(tmp / "kube.yaml", "e2e-token")
        inventory = yaml.safe_load(example_site.inventory.read_text())
        inventory["gateway"]["managed"] = False
        inventory["gateway"]["drain"] = "1s"
        inventory["k3s"] = {"kubeconfig": str(kubeconfig), "gateway_target": TARGET,
                            "rollout_timeout": "20s"}
        example_site.inventory.write_text(yaml.safe_dump(inventory, sort_keys=False))
        with standin_on(example_site, "edge-1", 8001, tmp):
            r = Rig(example_site, api)
            rc, out = r.hostctl("deploy", "--yes", *HOSTS)
            assert rc == 0, out
            yield r


def test_handoff_routes_to_the_cluster_and_records_it_on_the_hosts(rig: Rig) -> None:
    app = rig.site.hosts["app-1"].address
    assert rig.kong_targets() == {f"{app}:18080": 100, f"{app}:18081": 100}
    rc, out = rig.hostctl("k8s", "handoff", "triage-api")
    assert rc == 0, out
    assert out.startswith("triage-api now serves from the cluster\n")  # stdout first
    # the cluster got it and reported it ready before anything else moved
    assert DEPLOYMENT in rig.api.objects
    assert rig.api.paths("GET").count(DEPLOYMENT) >= 2  # waited until every replica was ready
    # Kong sends the route to the cluster's ingress, Host and path as the client sent them
    assert rig.kong_targets() == {TARGET: 100}
    route = rig.kong_route()
    assert (route["paths"], route["strip_path"], route["preserve_host"]) == (
        ["/triage"], False, True)
    # stopped on the hosts, and recorded there and on the gateway host (not on gpu-1)
    assert rig.units() == ["inactive", "inactive"]
    records = rig.records()
    assert records["gpu-1"] == ""
    assert records["app-1"] == records["edge-1"]
    record = json.loads(records["app-1"])
    assert sorted(record) == ["context", "run", "target", "time", "who"]
    assert (record["context"], record["target"]) == ("standin", TARGET)
    assert rig.site.ssh("app-1", "ls /var/lib/hostctl/cluster").split() == ["triage-api"]


def test_deploy_leaves_it_in_the_cluster(rig: Rig) -> None:
    rig.site.edit("specs/triage.yml", "  LOG_LEVEL: info", "  LOG_LEVEL: debug")
    rc, out = rig.hostctl("plan", *HOSTS)
    assert rc == 1, out  # the unit files change ...
    assert "lives in the cluster since " in out
    assert "`hostctl k8s handoff --back triage-api` to bring it back" in out
    assert "start hostctl-triage-api" not in out and "restart hostctl-triage-api" not in out
    rc, out = rig.hostctl("deploy", "--yes", *HOSTS)
    assert rc == 0, out
    assert "gateway edge-1: " in out
    # ... but the service is neither started nor routed back to the hosts
    assert rig.units() == ["inactive", "inactive"]
    assert rig.kong_targets() == {TARGET: 100}
    assert "LOG_LEVEL=debug" in rig.site.ssh(
        "app-1", "cat /etc/systemd/system/hostctl-triage-api-1.service")
    rc, out = rig.hostctl("status", *HOSTS)
    assert rc == 0, out
    rows = [line.split() for line in out.splitlines() if line.startswith("  triage-api ")]
    assert [row[:4] for row in rows] == [["triage-api", "1", "in", "cluster"],
                                         ["triage-api", "2", "in", "cluster"]]
    # `hostctl gateway` reads the records too: nothing to change, nothing routed back
    rc, out = rig.hostctl("gateway", "plan")
    assert (rc, out) == (0, "edge-1: no changes\n")
    # a deploy of the gateway host alone still knows (it keeps a record too)
    rc, out = rig.hostctl("deploy", "--yes", "--hosts", "edge-1")
    assert rc == 0, out
    assert rig.kong_targets() == {TARGET: 100}


def test_back_restores_the_hosts_and_their_route(rig: Rig) -> None:
    app = rig.site.hosts["app-1"].address
    rc, out = rig.hostctl("k8s", "handoff", "triage-api", "--back")
    assert rc == 0, out
    assert out.startswith("triage-api now serves from the hosts\n")
    assert rig.units() == ["active", "active"]
    assert rig.site.ssh("app-1", f"systemctl is-enabled {UNITS}").split() == [
        "enabled", "enabled"]
    assert rig.kong_targets() == {f"{app}:18080": 100, f"{app}:18081": 100}
    assert rig.kong_route()["strip_path"] is True
    assert rig.records() == {"app-1": "", "edge-1": "", "gpu-1": ""}
    assert DEPLOYMENT not in rig.api.objects
    rc, out = rig.hostctl("plan", *HOSTS)
    assert rc == 0, out  # nothing left to do: the hosts run it as the specs say
    assert "lives in the cluster" not in out
