"""Moving one service between the hosts and the cluster without a moment where nothing serves.

`plan_handoff` is pure: the steps, in order, each with the step that undoes it. `run_handoff`
runs them with injected actions (so tests, `--dry-run` and the CLI share one sequence). On a
failure it undoes the failed step (it may have half-happened: undos are idempotent) and every
step before it, newest first, so the service keeps serving from where it was.

To the cluster:   apply -> wait until ready -> gateway to cluster -> stop on hosts
Back (--back):    start on hosts -> wait until healthy -> gateway to hosts -> remove from cluster
Without a route (or a gateway) the gateway steps are left out: nothing routes to it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hostctl.errors import HostctlError

APPLY = "apply-to-cluster"
WAIT_CLUSTER = "wait-cluster-ready"
GATEWAY_TO_CLUSTER = "gateway-to-cluster"
GATEWAY_TO_HOSTS = "gateway-to-hosts"
STOP_HOSTS = "stop-on-hosts"
START_HOSTS = "start-on-hosts"
WAIT_HOSTS = "wait-hosts-healthy"
REMOVE_CLUSTER = "remove-from-cluster"

DESCRIPTIONS = {
    APPLY: "apply the service's manifests to the cluster (server-side apply)",
    WAIT_CLUSTER: "wait until its Deployment is rolled out and every replica is ready",
    GATEWAY_TO_CLUSTER: "point its gateway route at the cluster",
    GATEWAY_TO_HOSTS: "point its gateway route at the hosts' instances",
    STOP_HOSTS: "stop its instances on the hosts",
    START_HOSTS: "start its instances on the hosts",
    WAIT_HOSTS: "wait until every instance on the hosts is healthy",
    REMOVE_CLUSTER: "remove its Deployment from the cluster",
}
# What undoes each step; None: nothing to undo (a wait changes nothing).
UNDO: dict[str, str | None] = {
    APPLY: REMOVE_CLUSTER,
    WAIT_CLUSTER: None,
    GATEWAY_TO_CLUSTER: GATEWAY_TO_HOSTS,
    STOP_HOSTS: START_HOSTS,
    START_HOSTS: STOP_HOSTS,
    WAIT_HOSTS: None,
    GATEWAY_TO_HOSTS: GATEWAY_TO_CLUSTER,
    REMOVE_CLUSTER: None,  # last step back: the hosts already serve; a failure is reported
}


class HandoffFailed(HostctlError):
    """A step failed; the steps before it were undone (see `undone` and `undo_errors`)."""

    def __init__(self, message: str, step: str, undone: list[str], undo_errors: list[str]):
        super().__init__(message)
        self.step, self.undone, self.undo_errors = step, undone, undo_errors


@dataclass(frozen=True)
class Step:
    name: str
    undo: str | None

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self.name]


@dataclass(frozen=True)
class HandoffPlan:
    service: str
    back: bool
    steps: tuple[Step, ...]

    @property
    def destination(self) -> str:
        return "the hosts" if self.back else "the cluster"

    def lines(self) -> list[str]:
        out = [f"hand {self.service} over to {self.destination}:"]
        for i, s in enumerate(self.steps, 1):
            undo = f" (undo: {DESCRIPTIONS[s.undo]})" if s.undo else ""
            out.append(f"  {i}. {s.description}{undo}")
        return out

    def as_json(self) -> dict[str, Any]:
        return {"service": self.service, "to": "hosts" if self.back else "cluster",
                "steps": [{"step": s.name, "undo": s.undo} for s in self.steps]}


def plan_handoff(service: str, *, back: bool = False, routed: bool = True) -> HandoffPlan:
    """The steps for `service`; `routed`: it has a route on a site that runs the gateway."""
    if back:
        names = [START_HOSTS, WAIT_HOSTS, GATEWAY_TO_HOSTS, REMOVE_CLUSTER]
    else:
        names = [APPLY, WAIT_CLUSTER, GATEWAY_TO_CLUSTER, STOP_HOSTS]
    if not routed:
        names = [n for n in names if n not in (GATEWAY_TO_CLUSTER, GATEWAY_TO_HOSTS)]
    return HandoffPlan(service, back, tuple(Step(n, UNDO[n]) for n in names))


Action = Callable[[], None]


def run_handoff(plan: HandoffPlan, actions: Mapping[str, Action],
                progress: Callable[[str], None] = lambda _: None) -> list[str]:
    """Run the plan's steps with `actions` (one per step name, undos included); the names of
    the steps done. On failure: undo, then raise HandoffFailed naming the step."""
    needed = {s.name for s in plan.steps} | {s.undo for s in plan.steps if s.undo}
    missing = sorted(needed - set(actions))
    if missing:
        raise HostctlError(f"handoff cannot run: no action for {', '.join(missing)}")
    done: list[Step] = []
    for step in plan.steps:
        progress(f"{step.description} ...")
        try:
            actions[step.name]()
        except Exception as exc:
            undone, errors = _undo([*done, step], actions, progress)
            where = "; the service still serves from " + (
                "the cluster" if plan.back else "the hosts")
            if errors:
                where = ("; undoing failed too, check by hand: " + "; ".join(errors))
            raise HandoffFailed(f"{plan.service}: could not {step.description}: {exc}{where}",
                                step.name, undone, errors) from exc
        done.append(step)
        progress(f"{step.description}: done")
    return [s.name for s in done]


def _undo(steps: list[Step], actions: Mapping[str, Action], progress: Callable[[str], None]
          ) -> tuple[list[str], list[str]]:
    undone: list[str] = []
    errors: list[str] = []
    for step in reversed(steps):
        if step.undo is None:
            continue
        progress(f"undo: {DESCRIPTIONS[step.undo]} ...")
        try:
            actions[step.undo]()
            undone.append(step.undo)
        except Exception as exc:  # keep undoing the rest: each undo stands alone
            errors.append(f"{DESCRIPTIONS[step.undo]}: {exc}")
    return undone, errors
