"""`hostctl gateway plan|sync|status`: Kong's configuration, derived from the specs."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from hostctl.cli.options import inventory_option, json_option, names_option
from hostctl.errors import HostctlError


@click.group()
def gateway() -> None:
    """Kong, the API gateway: its configuration comes whole from the specs' routes and the
    inventory's gateway section, and reaches Kong's Admin API through an SSH tunnel to the
    gateway host's loopback. A service handed to the cluster (`hostctl k8s handoff`) stays
    routed to k3s/gateway_target, as the gateway hosts' records say."""


def _run(inventory: str, hosts: tuple[str, ...], what: str, as_json: bool) -> None:
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.gateway import ops
    from hostctl.hosts.session import session
    from hostctl.validate import load_site

    site = load_site(inventory)
    rendered = ops.desired(site)
    names = set(ops.gateway_hosts(site))
    if hosts:
        _check_hosts(site, hosts, names)
        names &= set(hosts)
    step = {"plan": ops.plan_one, "sync": ops.sync_one, "status": ops.status_one}[what]
    with session(site, names) as run:
        # Services handed to the cluster stay routed there: the gateway hosts hold a
        # record of each handoff (hostctl.k8s.handoff_records).
        # imported here: keeps hostctl --help and start-up fast
        from hostctl.k8s import handoff_records as in_cluster

        handed = in_cluster.handed_off(in_cluster.read_records(run.runners))
        routes = in_cluster.cluster_targets(site, handed)
        if routes:
            rendered = ops.desired(site, cluster_targets=routes)
        reports = ops.for_each_gateway(run.runners, lambda r: step(r, site, rendered))
    if as_json:
        click.echo(json.dumps({r.host: {"ok": r.ok, "changed": r.changed, "lines": r.lines,
                                        **r.data} for r in reports}, indent=2))
    else:
        for r in reports:
            for line in r.lines:
                click.echo(line)
    failed = any(not r.ok for r in reports)
    changed = any(r.changed for r in reports)
    sys.exit(2 if failed and what == "plan" else 1 if failed or (what == "plan" and changed)
             else 0)


def _check_hosts(site: Any, hosts: tuple[str, ...], gateway_hosts: set[str]) -> None:
    """A name that is no gateway host is refused, not silently left out."""
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.spec.schema import did_you_mean

    for h in hosts:
        if h not in gateway_hosts:
            known = ", ".join(sorted(gateway_hosts)) or "none"
            raise HostctlError(f"--hosts: no gateway host '{h}' in {site.inventory.file}"
                               f"{did_you_mean(h, gateway_hosts)} (gateway hosts: {known})")


def _hosts_option(f: Any) -> Any:
    return names_option("--hosts", "hosts", metavar="H1,H2",
                        help="Only these gateway hosts (comma-separated, or repeat the "
                             "option).")(f)


@gateway.command("plan")
@inventory_option
@_hosts_option
@json_option
def gateway_plan(inventory: str, hosts: tuple[str, ...], as_json: bool) -> None:
    """Show how the config Kong runs differs from the one hostctl would send (exit 0 same,
    1 different, 2 errors). Credential values are never shown."""
    _run(inventory, hosts, "plan", as_json)


@gateway.command("sync")
@inventory_option
@_hosts_option
@json_option
def gateway_sync(inventory: str, hosts: tuple[str, ...], as_json: bool) -> None:
    """Send the whole configuration (POST /config) and verify Kong's configuration hash. A
    config Kong rejects is reported against the spec lines that made it; Kong keeps
    running its previous one."""
    _run(inventory, hosts, "sync", as_json)


@gateway.command("status")
@inventory_option
@_hosts_option
@json_option
def gateway_status(inventory: str, hosts: tuple[str, ...], as_json: bool) -> None:
    """Routes, upstream target health, and whether Kong runs hostctl's configuration."""
    _run(inventory, hosts, "status", as_json)


COMMANDS = (gateway,)
