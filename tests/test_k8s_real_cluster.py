"""apply, diff and handoff against a real cluster: only when HOSTCTL_KUBECONFIG names a
kubeconfig (e.g. a k3s server's /etc/rancher/k3s/k3s.yaml with its address); skipped, with
that reason, otherwise. Each run works in its own namespaces and deletes them at the end.

HOSTCTL_K8S_TEST_IMAGE (default busybox:1.36) must be pullable by the cluster's nodes.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostctl.k8s import handoff as h
from hostctl.k8s.client import Cluster, apply_all, plan_changes, wait_rollouts
from hostctl.k8s.config import K3sConfig
from hostctl.k8s.kubeconfig import load_kubeconfig
from hostctl.k8s.manifests import Rendering, render_manifests
from hostctl.loader import load_site
from tests.site_factory import BASE_INVENTORY, make_site

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
