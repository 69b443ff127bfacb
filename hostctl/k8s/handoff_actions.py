"""The concrete actions behind each handoff step: the cluster through `Cluster`, the hosts
through the same runners and unit actions as `hostctl start/stop`, the gateway through the
same tunnel, `POST /config` and hash check as `hostctl gateway sync`.

Stopping on the hosts also records the handoff there (hostctl.k8s.handoff_records), so every later
deploy leaves the service stopped and routed to the cluster; starting removes the record
once the units hold. `check_handoff` refuses what cannot work before any step runs.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from hostctl.errors import HostctlError, Problem
from hostctl.hosts.session import session
from hostctl.k8s import handoff as h
from hostctl.k8s import handoff_records as in_cluster
from hostctl.k8s.client import Cluster, apply_all, wait_rollouts
from hostctl.k8s.manifests import Rendering
from hostctl.ops import day2
from hostctl.runner.pool import run_parallel
from hostctl.spec import model as m
from hostctl.spec.placement import service_instances
from hostctl.spec.sections.k3s import K3sConfig

if TYPE_CHECKING:
    from hostctl.hosts.session import Session
    from hostctl.runner.base import Runner


def is_routed(site: m.Site, w: m.Workload) -> bool:
    """Whether the site's gateway routes to `w` (then the handoff moves its route too)."""
    return w.route is not None and site.inventory.gateway is not None


def check_handoff(site: m.Site, cfg: K3sConfig, w: m.Workload, rendering: Rendering,
                  back: bool = False) -> list[Problem]:
    """What makes a handoff of `w` impossible, located; checked before any step runs.
    Going back needs neither: the route returns to the hosts whatever the cluster has."""
    if back or not is_routed(site, w):
        return []
    problems = []
    if not cfg.gateway_target:
        problems.append(cfg.problem(
            "gateway_target", f"handing off {w.name}, which the gateway routes, needs the "
            "address where the gateway hosts reach the cluster's ingress: set "
            "k3s/gateway_target (host:port, e.g. 10.20.0.50:80) in the inventory"))
    ingress = [d for d in rendering.manifests if d["kind"] == "Ingress"
               and d["metadata"]["name"] == w.name]
    if not ingress:
        why = [r.message for r in rendering.report if r.path.startswith("route")]
        problems.append(Problem(w.file, w.lines.get("route", w.line), "route",
                                f"{w.name} gets no Ingress in the cluster, so the gateway "
                                "could not reach it there" + (f": {why[0]}" if why else "")))
    return problems


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

    context = cluster.auth.context
    return {
        h.APPLY: apply,
        h.WAIT_CLUSTER: wait_cluster,
        h.REMOVE_CLUSTER: remove,
        h.GATEWAY_TO_CLUSTER: lambda: point_gateway(site, cfg, w, to_cluster=True),
        h.GATEWAY_TO_HOSTS: lambda: point_gateway(site, cfg, w, to_cluster=False),
        h.STOP_HOSTS: lambda: stop_on_hosts(site, cfg, w, context),
        h.START_HOSTS: lambda: start_on_hosts(site, w),
        h.WAIT_HOSTS: lambda: _units_up(site, w),
    }


# -- the hosts --------------------------------------------------------------------------------

def record_hosts(site: m.Site, w: m.Workload) -> frozenset[str]:
    """Where the handoff is recorded: the hosts that run `w`, and the gateway hosts."""
    gw = site.inventory.gateway
    gateway = set(gw.hosts) if gw is not None and w.route is not None else set()
    return frozenset({i.host.name for i in service_instances(w, site.inventory)} | gateway)


@contextmanager
def _connected(site: m.Site, hosts: frozenset[str]) -> Iterator[Session]:
    """hosts.session, refusing to go on when a host cannot be reached: a handoff step
    must act on every host it names."""
    with session(site, hosts) as run:
        bad = [f"{n}: {r}".replace(f"{n}: {n}", n) for n, r in sorted(run.runners.items())
               if isinstance(r, Exception)]
        if bad:
            raise HostctlError("; ".join(bad))
        yield run


def _script_on_all(run: Session, script: str, mark: str, what: str) -> None:
    def one(runner: Runner) -> None:
        res = runner.run(["sh", "-s"], stdin=script.encode(), timeout=60)
        if f"@@{mark}" not in res.stdout:
            raise HostctlError(f"{runner.host}: could not {what}: "
                               + ((res.stderr or res.stdout).strip().splitlines()
                                  or ["no output"])[-1])

    results = run_parallel(run.runners, one)
    errors = [str(e) for e in results.values() if isinstance(e, Exception)]
    if errors:
        raise HostctlError("; ".join(errors))


def stop_on_hosts(site: m.Site, cfg: K3sConfig, w: m.Workload, context: str) -> None:
    """Record the handoff (first: a deploy that runs meanwhile must not start it again),
    disable the units (a reboot must not either), then stop them."""
    instances = day2.select_instances(site, w.name)
    with _connected(site, record_hosts(site, w)) as run:
        line = in_cluster.record_line(run.who, run.run_id, context, cfg.gateway_target)
        _script_on_all(run, in_cluster.write_record_script(w.name, line), "recorded",
                       f"record the handoff of {w.name}")
        runners = _set_enabled(run, instances, False)
        _unit_action(run, runners, instances, "stop")


def start_on_hosts(site: m.Site, w: m.Workload) -> None:
    """Enable and start the units; once they hold, remove the handoff record everywhere."""
    instances = day2.select_instances(site, w.name)
    with _connected(site, record_hosts(site, w)) as run:
        runners = _set_enabled(run, instances, True)
        _unit_action(run, runners, instances, "start")
        _script_on_all(run, in_cluster.remove_record_script(w.name), "removed",
                       f"remove the handoff record of {w.name}")


def _set_enabled(run: Session, instances: Any, enable: bool) -> dict[str, Any]:
    """Enable (or disable) the instances' units on their hosts, so a reboot does (or does
    not) start them; the runners of those hosts, for the action that follows."""
    verb = "enable" if enable else "disable"
    unit_hosts = {i.host.name for i in instances}
    runners = {n: r for n, r in run.runners.items() if n in unit_hosts}
    for name, runner in runners.items():
        assert not isinstance(runner, Exception)  # _connected refused unreachable hosts
        runner.run(["sh", "-c", enable_script(verb, [i.unit for i in instances
                                                      if i.host.name == name])], timeout=60)
    return runners


def enable_script(verb: str, units: Sequence[str]) -> str:
    """`systemctl enable|disable -- UNITS`, quoted for the remote shell like every other
    remote command; failures are ignored (a unit already in that state)."""
    return shlex.join(["systemctl", verb, "--", *units]) + " >/dev/null 2>&1; true"


def _unit_action(run: Session, runners: Mapping[str, Any], instances: Any, action: str) -> None:
    # Under the deploy lock, like `hostctl start/stop`: no deploy changes these units
    # while the handoff stops or starts them.
    outcomes = day2.unit_action(runners, action, instances, audit=run.audit_base(),
                                lock_record=run.lock_record)
    if not all(o.ok for o in outcomes.values()):
        bad = [line for line in day2.action_lines(outcomes) if "ok" not in line.split()]
        raise HostctlError(f"{action} {instances[0].workload.name} on the hosts: "
                           + "; ".join(bad[:5]))


def _units_up(site: m.Site, w: m.Workload) -> None:
    instances = day2.select_instances(site, w.name)
    hosts = frozenset(i.host.name for i in instances)
    down: list[str] = []
    with _connected(site, hosts) as run:
        for host, runner in run.runners.items():
            assert not isinstance(runner, Exception)
            units = [i.unit for i in instances if i.host.name == host]
            states: Mapping[str, Any] = day2.read_states(runner, units)
            down += [f"{host}/{u}" for u in units
                     if u not in states or not day2.is_up(states[u])]
    if down:
        raise HostctlError(f"{w.name} is not up on the hosts: {', '.join(down)}")


# -- the gateway ------------------------------------------------------------------------------

def point_gateway(site: m.Site, cfg: K3sConfig, w: m.Workload, *, to_cluster: bool) -> None:
    """Send every gateway host's Kong the whole config with `w` routed to the cluster (or to
    the hosts), other handed-off services where their records say, and verify its hash."""
    # imported here: keeps start-up fast (the Kong Admin API client and requests, only here)
    from hostctl.gateway import ops

    gw = site.inventory.gateway
    assert gw is not None
    # Every handoff of a routed service is recorded on the gateway hosts too: they know.
    with _connected(site, frozenset(gw.hosts)) as run:
        handed = in_cluster.handed_off(in_cluster.read_records(run.runners))
        if to_cluster:
            handed[w.name] = {"target": cfg.gateway_target}
        else:
            handed.pop(w.name, None)
        rendered = ops.desired(site, cluster_targets=in_cluster.cluster_targets(site, handed))
        reports = ops.for_each_gateway(run.runners, lambda r: ops.sync_one(r, site, rendered))
    bad = [line for r in reports if not r.ok for line in r.lines]
    if bad:
        raise HostctlError("the gateway did not take the new route: " + "; ".join(bad))
