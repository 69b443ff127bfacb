"""The concrete actions behind each handoff step: the cluster through `Cluster`, the hosts
through the same runners and unit actions as `hostctl start/stop`.

The gateway steps need the host gateway to route one service to a target outside the
hosts (the proposed `cluster_targets` argument of `gateway.declarative.build_declarative`);
until then they fail with a message, and the executor undoes the steps before them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hostctl import model as m
from hostctl.errors import HostctlError
from hostctl.k8s import handoff as h
from hostctl.k8s.client import Cluster, apply_all, wait_rollouts
from hostctl.k8s.config import K3sConfig
from hostctl.k8s.manifests import Rendering


def handoff_actions(site: m.Site, cfg: K3sConfig, w: m.Workload, rendering: Rendering,
                    cluster: Cluster, progress: Callable[[str], None]
                    ) -> Mapping[str, h.Action]:
    deployments = [d for d in rendering.manifests if d["kind"] == "Deployment"]

    def apply() -> None:
        apply_all(cluster, rendering.manifests, progress=progress)

    def wait_cluster() -> None:
        wait_rollouts(cluster, deployments, cfg.rollout_timeout, progress=progress)

    def remove() -> None:
        # Only the Deployment: its config, secrets and claims (data) stay for a next time.
        for doc in deployments:
            cluster.delete(doc)

    def gateway(to: str) -> h.Action:
        def point() -> None:
            raise HostctlError(f"pointing the gateway route of {w.name} at {to} needs cluster "
                               "targets in the gateway's declarative config (not built yet)")
        return point

    return {
        h.APPLY: apply,
        h.WAIT_CLUSTER: wait_cluster,
        h.REMOVE_CLUSTER: remove,
        h.GATEWAY_TO_CLUSTER: gateway(cfg.gateway_target or "the cluster"),
        h.GATEWAY_TO_HOSTS: gateway("the hosts"),
        h.STOP_HOSTS: lambda: _units(site, w, "stop"),
        h.START_HOSTS: lambda: _units(site, w, "start"),
        h.WAIT_HOSTS: lambda: _units_up(site, w),
    }


def _units(site: m.Site, w: m.Workload, action: str) -> None:
    from hostctl import day2
    from hostctl.deploy import DeployOptions, Run, command_line, who

    instances = day2.select_instances(site, w.name)
    hosts = frozenset(i.host.name for i in instances)
    run = Run(site, DeployOptions(hosts=hosts, command=command_line()))
    with run.connected():
        audit = {"who": who(), "command": run.options.command, "run": run.run_id,
                 "site": site.inventory.site}
        outcomes = day2.unit_action(run.runners, action, instances, audit=audit)
    bad = [line for line in day2.action_lines(outcomes) if not _ok_line(line)]
    if not all(o.ok for o in outcomes.values()):
        raise HostctlError(f"{action} {w.name} on the hosts: " + "; ".join(bad[:5]))


def _ok_line(line: str) -> bool:
    return "ok" in line.split()


def _units_up(site: m.Site, w: m.Workload) -> None:
    from hostctl import day2
    from hostctl.deploy import DeployOptions, Run, command_line

    instances = day2.select_instances(site, w.name)
    hosts = frozenset(i.host.name for i in instances)
    run = Run(site, DeployOptions(hosts=hosts, command=command_line()))
    down: list[str] = []
    with run.connected():
        for host, runner in run.runners.items():
            if isinstance(runner, Exception):
                raise HostctlError(f"{host}: {runner}")
            units = [i.unit for i in instances if i.host.name == host]
            states: Mapping[str, Any] = day2.read_states(runner, units)
            down += [f"{host}/{u}" for u in units
                     if u not in states or not day2.is_up(states[u])]
    if down:
        raise HostctlError(f"{w.name} is not up on the hosts: {', '.join(down)}")
