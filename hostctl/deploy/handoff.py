"""What a deploy (and a rollback) does for services handed to the cluster, as the hosts'
records say (k8s.handoff_records): their units stay stopped and disabled, the gateway keeps
routing them to the cluster, and a rollback keeps the gateway host's Kong file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from hostctl import layout as L
from hostctl.deploy.plan import HostPlan, sha256
from hostctl.deploy.target import HostTarget
from hostctl.gateway.ops import desired
from hostctl.hosts.facts import HostFacts
from hostctl.k8s import handoff_records as records
from hostctl.spec import model as m
from hostctl.spec.placement import service_instances


def keep_stopped(plan: HostPlan, facts: HostFacts, site: m.Site) -> HostPlan:
    """`plan` without starting, restarting or enabling the units of services this host
    handed to the cluster (their files are still written); a note for each."""
    here = {w.name for w in site.services} & set(facts.handed_off)
    if not here:
        return plan
    units = {i.unit for w in site.services if w.name in here
             for i in service_instances(w, site.inventory) if i.host.name == plan.host}
    kept = tuple(u for u in plan.units if not (
        u.action in ("start", "restart") and (u.workload in here or u.unit in units)))
    enable = tuple(u for u in plan.enable if u not in units)
    notes = tuple(records.note(s, facts.handed_off[s]) for s in sorted(here))
    return replace(plan, units=kept, enable=enable, notes=(*plan.notes, *notes))


def keep_gateway_file(target: dict[str, Any], facts: HostFacts) -> dict[str, Any]:
    """A rollback target that leaves the gateway host's Kong file as it is while services
    are handed to the cluster: an earlier release's file routes them to hosts where they
    are stopped, and Kong would load it at its next start."""
    path = L.GATEWAY_FILE
    live = facts.files.get(path)
    if not facts.handed_off or path not in target or live is None:
        return target
    return {**target, path: replace(target[path], sha256=live)}


def route_gateway(site: m.Site, targets: Mapping[str, HostTarget],
                  facts: Mapping[str, HostFacts]) -> dict[str, str]:
    """The cluster targets of this run; the gateway hosts' declarative file re-rendered
    with them (render.py wrote it before the facts were read)."""
    routes = records.cluster_targets(site, records.from_facts(facts))
    if not routes:
        return routes
    path = L.GATEWAY_FILE
    rendered = None
    for t in targets.values():
        old = t.files.get(path)
        if old is None:
            continue
        rendered = rendered or desired(site, cluster_targets=routes)
        t.files[path] = replace(old, content=rendered.text, redacted_content=rendered.redacted)
        t.target[path] = replace(t.target[path], sha256=sha256(rendered.text))
    return routes
