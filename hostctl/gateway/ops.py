"""Talking to the gateway hosts' Kong: plan, sync and status, through SSH tunnels.

Kong's Admin API listens on each gateway host's loopback only; hostctl reaches it through
`Runner.forward_port`, so nothing opens it to the network.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from hostctl.errors import HostctlError
from hostctl.gateway.admin import (
    GatewayError,
    KongAdmin,
    SyncResult,
    TargetHealth,
    config_hash,
    ready,
)
from hostctl.gateway.declarative import RenderedGateway, render_declarative
from hostctl.gateway.diff import diff_configs, hash_summary
from hostctl.runner.base import Runner, RunnerError
from hostctl.runner.pool import run_parallel
from hostctl.spec import model as m
from hostctl.spec.platform import PLATFORM_PROJECT


def desired(site: m.Site, weights: dict[tuple[str, str], int] | None = None,
            cluster_targets: Mapping[str, str] | None = None) -> RenderedGateway:
    """The config hostctl would send: the site's own services (platform services excluded),
    those in `cluster_targets` routed to the k3s cluster."""
    own = replace(site, workloads=tuple(w for w in site.workloads
                                        if w.project != PLATFORM_PROJECT))
    rendered = render_declarative(own, weights, cluster_targets)
    if rendered is None:
        raise HostctlError(f"{site.inventory.file}: no gateway section: nothing to do "
                           "(`hostctl docs gateway` shows how to add one)")
    return rendered


def gateway_hosts(site: m.Site) -> list[str]:
    gw = site.inventory.gateway
    return list(gw.hosts) if gw is not None else []


@contextmanager
def admin_on(runner: Runner, site: m.Site) -> Iterator[KongAdmin]:
    """The Admin API of the Kong on `runner`'s host, through an SSH tunnel."""
    gw = site.inventory.gateway
    assert gw is not None
    with runner.forward_port(gw.admin_port) as local:
        yield KongAdmin(f"http://127.0.0.1:{local}")


@dataclass
class GatewayReport:
    host: str
    ok: bool
    lines: list[str] = field(default_factory=list)
    changed: bool = False
    data: dict[str, Any] = field(default_factory=dict)


def for_each_gateway(runners: Mapping[str, Runner | RunnerError],
                     fn: Callable[[Runner], GatewayReport]) -> list[GatewayReport]:
    """Run `fn` per gateway host; a host that cannot be reached or asked gets its error."""
    reports = []
    for name, result in run_parallel(runners, fn).items():
        if isinstance(result, GatewayReport):
            reports.append(result)
        elif isinstance(result, HostctlError):
            reports.append(GatewayReport(name, False, [f"{name}: {result}"
                                                       .replace(f"{name}: {name}", name)]))
        else:
            reports.append(GatewayReport(name, False, [f"{name}: unexpected error {result!r}"]))
    return reports


def plan_one(runner: Runner, site: m.Site, rendered: RenderedGateway) -> GatewayReport:
    with admin_on(runner, site) as admin:
        running = admin.running_config()
        current = admin.configuration_hash()
    wanted = config_hash(rendered.text)
    if running is None:  # this Kong cannot export its configuration: compare hashes
        text = hash_summary(current, wanted).strip()
        return GatewayReport(runner.host, True, [f"{runner.host}: {text}"],
                             changed=current != wanted)
    diff = diff_configs(running, yaml.safe_load(rendered.text), rendered.provenance)
    changed = not diff.empty or current != wanted
    lines = [f"{runner.host}: " + ("changes" if changed else "no changes")]
    lines += [f"  {line}" for c in diff.changes for line in c.lines()]
    return GatewayReport(runner.host, True, lines, changed)


def sync_one(runner: Runner, site: m.Site, rendered: RenderedGateway) -> GatewayReport:
    with admin_on(runner, site) as admin:
        result: SyncResult = admin.sync(rendered.text, rendered.provenance)
    verb = "updated" if result.changed else "unchanged"
    return GatewayReport(runner.host, True, [
        f"{runner.host}: {verb}; Kong runs configuration {result.configuration_hash}"
        + (f" (after {result.attempts} attempts)" if result.attempts > 1 else "")],
        result.changed, {"hash": result.configuration_hash, "changed": result.changed})


def status_one(runner: Runner, site: m.Site, rendered: RenderedGateway) -> GatewayReport:
    want = yaml.safe_load(rendered.text) or {}
    upstreams = sorted(u["name"] for u in want.get("upstreams", []))

    with admin_on(runner, site) as admin:
        current = admin.configuration_hash()
        health: dict[str, list[TargetHealth]] = {}
        for name in upstreams:
            try:
                health[name] = admin.upstream_health(name)
            except GatewayError as exc:
                health[name] = [TargetHealth(f"({exc})", 0, "UNKNOWN")]
    gw = site.inventory.gateway
    assert gw is not None
    with runner.forward_port(gw.status_port) as local:
        is_ready = ready(f"http://127.0.0.1:{local}")
    in_sync = current == config_hash(rendered.text)
    lines = [f"{runner.host}: {'ready' if is_ready else 'NOT READY'}; configuration {current} "
             + ("(as hostctl would send it)" if in_sync else "(differs: run hostctl gateway sync)")]
    for svc in sorted(want.get("services", []), key=lambda s: s["name"]):
        for route in svc.get("routes", []):
            paths = ",".join(route.get("paths", [])) or "-"
            lines.append(f"  route {route['name']}: {paths} -> {svc['host']}")
    for name, targets in health.items():
        for t in targets:
            lines.append(f"  upstream {name}: {t.target} weight {t.weight} {t.health}")
    return GatewayReport(runner.host, is_ready, lines, not in_sync,
                         {"hash": current, "in_sync": in_sync, "ready": is_ready,
                          "upstreams": {n: [(t.target, t.weight, t.health) for t in ts]
                                        for n, ts in health.items()}})
