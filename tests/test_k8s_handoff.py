"""The handoff sequence: the plan as a value, the executor with injected steps, and what a
failure at each step leaves behind (the service serving from where it was)."""

from __future__ import annotations

import pytest

from hostctl.k8s import handoff as h
from hostctl.k8s.handoff import HandoffFailed, plan_handoff, run_handoff


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
