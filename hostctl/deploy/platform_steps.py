"""The platform steps after a deploy: send Kong the config of what now runs, and give
Elasticsearch its log retention.

Both come after the hosts' own transactions and only on hosts that deployed cleanly: the
gateway then routes to services that answer, and Elasticsearch is up to take the policy.
Neither rolls anything back; a step that cannot run is one line in the summary.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hostctl.deploy.outcome import HostOutcome
from hostctl.errors import HostctlError
from hostctl.gateway import ops
from hostctl.hosts.progress import Progress
from hostctl.observability.retention import apply_retention as apply_policy
from hostctl.runner.base import Runner, RunnerError
from hostctl.spec import model as m
from hostctl.spec.platform import GATEWAY, LOGGING


def sync_gateway(site: m.Site, skip_platform: frozenset[str],
                 outcomes: Mapping[str, HostOutcome],
                 runners: Mapping[str, Runner | RunnerError],
                 cluster_targets: Mapping[str, str], progress: Progress) -> list[Any]:
    """After the services are healthy: send Kong the config of what now runs.

    Skipped (with a note) when the gateway is left out, or its hosts are not in this run
    or did not deploy cleanly: Kong keeps routing to what it knew, which still runs.
    """
    gw = site.inventory.gateway
    if gw is None or GATEWAY in skip_platform:
        return []
    reports: list[Any] = []
    ready: dict[str, Runner | RunnerError] = {}
    for name in gw.hosts:
        outcome = outcomes.get(name)
        runner = runners.get(name)
        if runner is None or outcome is None:
            reports.append(ops.GatewayReport(name, True, [
                f"{name}: gateway not synced: the host is not part of this run"]))
        elif not outcome.ok or isinstance(runner, RunnerError):
            reports.append(ops.GatewayReport(name, False, [
                f"{name}: gateway not synced: the host did not deploy cleanly"]))
        else:
            ready[name] = runner
    if ready:
        rendered = ops.desired(site, cluster_targets=cluster_targets)
        for name in ready:
            progress(name, "gateway", "sync")
        reports += ops.for_each_gateway(ready, lambda r: ops.sync_one(r, site, rendered))
    return reports


def apply_retention(site: m.Site, skip_platform: frozenset[str],
                    outcomes: Mapping[str, HostOutcome],
                    runners: Mapping[str, Runner | RunnerError],
                    progress: Progress) -> list[str]:
    """After the logging host deployed cleanly: the lifecycle policy and index template,
    once Elasticsearch is healthy. Notes for the summary; a refusal is one clear line."""
    log = site.inventory.logging
    if log is None or LOGGING in skip_platform:
        return []
    outcome, runner = outcomes.get(log.host), runners.get(log.host)
    # hostctl's own Elasticsearch is reached through the logging host, so that host must have
    # deployed cleanly; an external one is reached at its URL, whatever happened here.
    if log.managed_elasticsearch and (outcome is None or not outcome.ok
                                      or runner is None or isinstance(runner, RunnerError)):
        return [f"{log.host}: log retention not applied: the logging host did not "
                "deploy cleanly in this run"]
    progress(log.host, "logging", "retention")
    try:
        applied = apply_policy(log, site.inventory.site,
                               None if isinstance(runner, RunnerError) else runner)
    except HostctlError as exc:
        return [f"{log.host}: log retention not applied: {exc}"]
    return [f"{log.host}: {a.what}: {a.action}" for a in applied]
