"""apply, diff and handoff against a real cluster: only when HOSTCTL_KUBECONFIG names a
kubeconfig (e.g. a k3s server's /etc/rancher/k3s/k3s.yaml with its address); skipped, with
that reason, otherwise. Each run works in its own namespaces and deletes them at the end.

HOSTCTL_K8S_TEST_IMAGE (default busybox:1.36) must be pullable by the cluster's nodes.
The routed handoff sends the request Kong would send to HOSTCTL_GATEWAY_TARGET (host:port of
the cluster's ingress as the gateway hosts reach it; default: the API server's host, port
80, as on a single-node k3s with Traefik).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from hostctl.gateway.declarative import build_declarative
from hostctl.k8s import handoff as h
from hostctl.k8s.client import Cluster, apply_all, plan_changes, wait_rollouts
from hostctl.k8s.kubeconfig import load_kubeconfig
from hostctl.k8s.manifests import Rendering, render_manifests
from hostctl.spec.sections.gateway import GatewayConfig
from hostctl.spec.sections.k3s import K3sConfig
from hostctl.validate import load_site
from tests.rigs.site_factory import BASE_INVENTORY, made_site, make_site

KUBECONFIG = os.environ.get("HOSTCTL_KUBECONFIG", "")
IMAGE = os.environ.get("HOSTCTL_K8S_TEST_IMAGE", "busybox:1.36")

pytestmark = pytest.mark.skipif(
    not KUBECONFIG,
    reason="no cluster: set HOSTCTL_KUBECONFIG to a kubeconfig to run apply/diff/handoff "
           "end to end (request building is tested against the stand-in API server)")

WEB = f"""\
kind: service
name: web
project: PROJECT
image: {IMAGE}
command: [sh, -c, 'mkdir -p /w && echo ok > /w/health && exec httpd -f -p 8080 -h /w']
ports:
  http: {{container: 8080, host: 18080}}
health:
  http: {{path: /health, port: http}}
  interval: 2s
  timeout: 1s
instances: 2
secrets: [DB_PASSWORD]
env: {{GREETING: 'hello $(USER)'}}
"""


@pytest.fixture
def rendered(tmp_path: Path) -> Iterator[tuple[Cluster, Rendering]]:
    project = f"hostctl-test-{secrets.token_hex(3)}"
    inv = make_site(tmp_path, {"web.yml": WEB.replace("PROJECT", project)},
                    inventory=BASE_INVENTORY)
    site = load_site(str(inv), environ={})
    rendering = render_manifests(site, K3sConfig(ingress="traefik"))
    auth = load_kubeconfig(KUBECONFIG)
    with Cluster(auth, secrets=list(site.secrets.values.values())) as cluster:
        try:
            yield cluster, rendering
        finally:
            for doc in rendering.manifests:
                if doc["kind"] == "Namespace":
                    cluster.delete(doc)


def test_apply_waits_for_rollout_and_a_second_diff_is_empty(
        rendered: tuple[Cluster, Rendering]) -> None:
    cluster, r = rendered
    assert {c.action for c in plan_changes(cluster, r.manifests)} == {"create"}
    apply_all(cluster, r.manifests)
    wait_rollouts(cluster, r.manifests, timeout=180)
    again = plan_changes(cluster, r.manifests)
    assert [str(c) for c in again if c.action != "unchanged"] == []


def test_handoff_cluster_steps_with_the_hosts_faked(rendered: tuple[Cluster, Rendering]
                                                   ) -> None:
    cluster, r = rendered
    deployments = [d for d in r.manifests if d["kind"] == "Deployment"]
    log: list[str] = []

    def host(name: str) -> h.Action:
        return lambda: log.append(name)

    actions = {
        h.APPLY: lambda: apply_all(cluster, r.manifests) and None,
        h.WAIT_CLUSTER: lambda: wait_rollouts(cluster, deployments, timeout=180),
        h.REMOVE_CLUSTER: lambda: [cluster.delete(d) for d in deployments] and None,
        h.STOP_HOSTS: host("stop"), h.START_HOSTS: host("start"), h.WAIT_HOSTS: host("wait"),
    }
    done = h.run_handoff(h.plan_handoff("web", routed=False), actions)
    assert done == [h.APPLY, h.WAIT_CLUSTER, h.STOP_HOSTS] and log == ["stop"]
    h.run_handoff(h.plan_handoff("web", back=True, routed=False), actions)
    assert all(cluster.get(d) is None or d["kind"] != "Deployment" for d in deployments)


def _gateway_target() -> str:
    given = os.environ.get("HOSTCTL_GATEWAY_TARGET")
    if given:
        return given
    return f"{urlsplit(load_kubeconfig(KUBECONFIG).server).hostname}:80"


def test_routed_handoff_the_clusters_ingress_answers_what_kong_sends(tmp_path: Path) -> None:
    """The whole forward handoff and back with the hosts faked; the gateway step builds the
    declarative config with the cluster target and sends the request Kong would (client's
    Host, unstripped path) to that target: the cluster's own Ingress must answer it."""
    import requests

    project = f"hostctl-test-{secrets.token_hex(3)}"
    spec = WEB.replace("PROJECT", project) + (
        f"route: {{path: /{project}, hosts: [{project}.hostctl.test], auth: none}}\n")
    site = made_site(tmp_path, {"web.yml": spec}, inventory=BASE_INVENTORY,
                     environ={})
    target = _gateway_target()
    cfg = K3sConfig(ingress="traefik", gateway_target=target)
    r = render_manifests(site, cfg)
    deployments = [d for d in r.manifests if d["kind"] == "Deployment"]
    log: list[str] = []

    def to_cluster() -> None:
        config, _ = build_declarative(site, GatewayConfig(hosts=()),
                                      cluster_targets={"web": target})
        (up,) = config["upstreams"]
        assert [t["target"] for t in up["targets"]] == [target]
        route = config["services"][0]["routes"][0]
        assert route["preserve_host"] is True and route["strip_path"] is False
        # as Kong forwards a client's GET /PROJECT/health for PROJECT.hostctl.test
        answer = requests.get(f"http://{target}/{project}/health", timeout=10,
                              headers={"Host": f"{project}.hostctl.test"})
        assert (answer.status_code, answer.text.strip()) == (200, "ok")
        log.append("gateway-to-cluster")

    auth = load_kubeconfig(KUBECONFIG)
    with Cluster(auth, secrets=list(site.secrets.values.values())) as cluster:
        actions = {
            h.APPLY: lambda: apply_all(cluster, r.manifests) and None,
            h.WAIT_CLUSTER: lambda: wait_rollouts(cluster, deployments, timeout=180),
            h.REMOVE_CLUSTER: lambda: [cluster.delete(d) for d in deployments] and None,
            h.GATEWAY_TO_CLUSTER: _retrying(to_cluster),
            h.GATEWAY_TO_HOSTS: lambda: log.append("gateway-to-hosts"),
            h.STOP_HOSTS: lambda: log.append("stop"),
            h.START_HOSTS: lambda: log.append("start"),
            h.WAIT_HOSTS: lambda: log.append("wait"),
        }
        try:
            done = h.run_handoff(h.plan_handoff("web"), actions)
            assert done == [h.APPLY, h.WAIT_CLUSTER, h.GATEWAY_TO_CLUSTER, h.STOP_HOSTS]
            assert log == ["gateway-to-cluster", "stop"]
            h.run_handoff(h.plan_handoff("web", back=True), actions)
            assert log[2:] == ["start", "wait", "gateway-to-hosts"]
        finally:
            for doc in r.manifests:
                if doc["kind"] == "Namespace":
                    cluster.delete(doc)


def _retrying(step: h.Action, seconds: float = 60) -> h.Action:
    """The ingress controller picks a new Ingress up within seconds, not at once."""
    import time

    def run() -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                return step()
            except (AssertionError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)
    return run
