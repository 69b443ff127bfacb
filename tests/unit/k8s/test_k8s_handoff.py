"""The handoff sequence: the plan as a value, the executor with injected steps, and what a
failure at each step leaves behind (the service serving from where it was)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hostctl.errors import HostctlError
from hostctl.k8s import handoff as h
from hostctl.k8s.handoff import HandoffFailed, plan_handoff, run_handoff
from tests.rigs.k8s_apiserver_standin import StandIn, running


def test_plan_to_the_cluster_and_back() -> None:
    to = plan_handoff("triage-api")
    assert [s.name for s in to.steps] == [h.APPLY, h.WAIT_CLUSTER, h.GATEWAY_TO_CLUSTER,
                                          h.STOP_HOSTS]
    assert to.lines() == [
        "hand triage-api over to the cluster:",
        "  1. apply the service's manifests to the cluster (server-side apply) "
        "(undo: remove its Deployment from the cluster)",
        "  2. wait until its Deployment is rolled out and every replica is ready",
        "  3. point its gateway route at the cluster (undo: point its gateway route at the "
        "hosts' instances)",
        "  4. stop its instances on the hosts (undo: start its instances on the hosts)",
    ]
    back = plan_handoff("triage-api", back=True)
    assert [s.name for s in back.steps] == [h.START_HOSTS, h.WAIT_HOSTS, h.GATEWAY_TO_HOSTS,
                                            h.REMOVE_CLUSTER]
    assert plan_handoff("worker", routed=False).as_json() == {
        "service": "worker", "to": "cluster",
        "steps": [{"step": h.APPLY, "undo": h.REMOVE_CLUSTER},
                  {"step": h.WAIT_CLUSTER, "undo": None},
                  {"step": h.STOP_HOSTS, "undo": h.START_HOSTS}]}


class Fake:
    """Records the steps run; `fail` names a step that raises; `fail_undo` an undo that does."""

    def __init__(self, fail: str = "", fail_undo: str = ""):
        self.log: list[str] = []
        self.fail, self.fail_undo = fail, fail_undo
        self.undoing = False

    def actions(self) -> dict[str, h.Action]:
        return {name: self.step(name) for name in h.DESCRIPTIONS}

    def step(self, name: str) -> h.Action:
        def run() -> None:
            self.log.append(name)
            if name == self.fail and name not in self.log[:-1]:
                raise RuntimeError(f"{name} broke")
            if name == self.fail_undo and self.fail and self.fail in self.log:
                raise RuntimeError(f"{name} broke too")
        return run


def test_success_runs_every_step_in_order() -> None:
    fake = Fake()
    done = run_handoff(plan_handoff("svc"), fake.actions())
    assert fake.log == done == [h.APPLY, h.WAIT_CLUSTER, h.GATEWAY_TO_CLUSTER, h.STOP_HOSTS]


@pytest.mark.parametrize(("fail", "after"), [
    (h.APPLY, [h.REMOVE_CLUSTER]),
    (h.WAIT_CLUSTER, [h.REMOVE_CLUSTER]),
    (h.GATEWAY_TO_CLUSTER, [h.GATEWAY_TO_HOSTS, h.REMOVE_CLUSTER]),
    (h.STOP_HOSTS, [h.START_HOSTS, h.GATEWAY_TO_HOSTS, h.REMOVE_CLUSTER]),
])
def test_a_failed_step_is_undone_with_every_step_before_it(fail: str, after: list[str]) -> None:
    fake = Fake(fail=fail)
    plan = plan_handoff("svc")
    with pytest.raises(HandoffFailed) as exc:
        run_handoff(plan, fake.actions())
    ran = [s.name for s in plan.steps][:[s.name for s in plan.steps].index(fail) + 1]
    assert fake.log == ran + after
    assert exc.value.step == fail and exc.value.undone == after
    assert str(exc.value).endswith(f"{fail} broke; the service still serves from the hosts")


def test_a_failed_undo_is_reported_and_the_rest_still_undone() -> None:
    fake = Fake(fail=h.STOP_HOSTS, fail_undo=h.GATEWAY_TO_HOSTS)
    with pytest.raises(HandoffFailed) as exc:
        run_handoff(plan_handoff("svc"), fake.actions())
    assert fake.log[-3:] == [h.START_HOSTS, h.GATEWAY_TO_HOSTS, h.REMOVE_CLUSTER]
    assert exc.value.undo_errors == [
        "point its gateway route at the hosts' instances: gateway-to-hosts broke too"]
    assert "undoing failed too, check by hand" in str(exc.value)


def test_back_failure_keeps_the_cluster_serving() -> None:
    fake = Fake(fail=h.WAIT_HOSTS)
    with pytest.raises(HandoffFailed, match="still serves from the cluster"):
        run_handoff(plan_handoff("svc", back=True), fake.actions())
    assert fake.log == [h.START_HOSTS, h.WAIT_HOSTS, h.STOP_HOSTS]


def test_missing_actions_are_refused_before_anything_runs() -> None:
    fake = Fake()
    actions = fake.actions()
    del actions[h.START_HOSTS]
    with pytest.raises(Exception, match="no action for start-on-hosts"):
        run_handoff(plan_handoff("svc"), actions)
    assert fake.log == []


# -- the real actions: the cluster is the apiserver stand-in; the hosts and the gateway are
# -- injected (their own end-to-end test is tests/e2e/test_k8s_handoff_e2e.py) ------------------

DEPLOYMENT = "/apis/apps/v1/namespaces/triage/deployments/triage-api"


@pytest.fixture
def routed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
           ) -> Iterator[tuple[list[str], Callable[..., dict[str, h.Action]], StandIn]]:
    """(what the hosts and the gateway were asked, a factory of the real actions, the
    cluster); `fail` names the host/gateway call that raises."""
    from hostctl.k8s import handoff_actions as ha
    from hostctl.k8s.client import Cluster
    from hostctl.k8s.kubeconfig import ClusterAuth
    from hostctl.k8s.manifests import render_manifests
    from hostctl.spec.sections.k3s import K3sConfig
    from tests.rigs.gateway_sites import example_site

    site = example_site(tmp_path)
    cfg = K3sConfig(gateway_target="10.20.0.50:80", rollout_timeout=20)
    rendering = render_manifests(site, cfg).select(["triage-api"])
    w = next(x for x in site.workloads if x.name == "triage-api")
    calls: list[str] = []
    failing: dict[str, str] = {}

    def fake(name: str) -> Callable[..., None]:
        def call(*args: object, **kw: object) -> None:
            label = f"{name}(to_cluster={kw['to_cluster']})" if "to_cluster" in kw else name
            calls.append(label)
            if failing.get("fail") == label:
                raise HostctlError(f"{label} broke")
        return call

    for name in ("point_gateway", "stop_on_hosts", "start_on_hosts", "_units_up"):
        monkeypatch.setattr(ha, name, fake(name))
    with running() as api:
        cluster = Cluster(ClusterAuth(server=api.url, context="standin"))

        def actions(fail: str = "", timeout: float = 20) -> dict[str, h.Action]:
            failing["fail"] = fail
            return dict(ha.handoff_actions(site, replace(cfg, rollout_timeout=timeout), w,
                                           rendering, cluster, lambda _: None))

        yield calls, actions, api


def test_routed_handoff_applies_waits_routes_then_stops(routed: Any) -> None:
    calls, actions, api = routed
    done = run_handoff(plan_handoff("triage-api"), actions())
    assert done == [h.APPLY, h.WAIT_CLUSTER, h.GATEWAY_TO_CLUSTER, h.STOP_HOSTS]
    assert calls == ["point_gateway(to_cluster=True)", "stop_on_hosts"]
    # the wait read the Deployment until the stand-in reported every replica ready
    assert api.paths("GET").count(DEPLOYMENT) >= 2 and DEPLOYMENT in api.objects
    calls.clear()
    done = run_handoff(plan_handoff("triage-api", back=True), actions())
    assert calls == ["start_on_hosts", "_units_up", "point_gateway(to_cluster=False)"]
    assert DEPLOYMENT not in api.objects


def test_a_gateway_that_refuses_leaves_the_hosts_serving(routed: Any) -> None:
    calls, actions, api = routed
    with pytest.raises(HandoffFailed) as exc:
        run_handoff(plan_handoff("triage-api"), actions("point_gateway(to_cluster=True)"))
    assert exc.value.step == h.GATEWAY_TO_CLUSTER
    assert exc.value.undone == [h.GATEWAY_TO_HOSTS, h.REMOVE_CLUSTER]
    # never stopped on the hosts; the route put back (it may have half-happened); the
    # cluster's Deployment gone again
    assert calls == ["point_gateway(to_cluster=True)", "point_gateway(to_cluster=False)"]
    assert DEPLOYMENT not in api.objects
    assert str(exc.value).endswith("point_gateway(to_cluster=True) broke; the service still "
                                   "serves from the hosts")


def test_hosts_that_cannot_stop_get_started_and_routed_back(routed: Any) -> None:
    calls, actions, api = routed
    with pytest.raises(HandoffFailed):
        run_handoff(plan_handoff("triage-api"), actions("stop_on_hosts"))
    assert calls == ["point_gateway(to_cluster=True)", "stop_on_hosts", "start_on_hosts",
                     "point_gateway(to_cluster=False)"]
    assert DEPLOYMENT not in api.objects


def test_a_cluster_that_never_gets_ready_is_never_routed_to(routed: Any) -> None:
    calls, actions, api = routed
    api.stuck.add("triage-api")  # the stand-in never reports its replicas ready
    with pytest.raises(HandoffFailed) as exc:
        run_handoff(plan_handoff("triage-api"), actions(timeout=1.0))
    assert exc.value.step == h.WAIT_CLUSTER and exc.value.undone == [h.REMOVE_CLUSTER]
    assert calls == []  # neither the gateway nor the hosts were touched
    assert DEPLOYMENT not in api.objects
