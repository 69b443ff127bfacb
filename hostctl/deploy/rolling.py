"""Zero-downtime restarts through the gateway: one instance at a time, out of Kong's
rotation while it restarts.

A routed service with more than one instance in the site need never stop answering: each
instance's target gets weight 0, drains, restarts, passes its health check, and gets its
weight back. Used only when Kong can steer traffic during the run; otherwise deploy restarts
in place (a short gap) and says so in the plan.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from hostctl.deploy.health_gate import HealthResult, check_health
from hostctl.deploy.plan import HostPlan
from hostctl.errors import HostctlError
from hostctl.gateway import ops
from hostctl.gateway.admin import GatewayError
from hostctl.hosts.progress import Progress
from hostctl.render.probe import HealthProbe
from hostctl.runner.base import Runner, RunnerError
from hostctl.spec import model as m
from hostctl.spec.placement import service_instances
from hostctl.spec.platform import GATEWAY


class GatewayRolling:
    """The gateway state of one run: whether Kong can steer traffic, and the instances
    currently out of rotation. Hosts apply in parallel, so the state is behind a lock."""

    def __init__(self, site: m.Site, skip_platform: frozenset[str], progress: Progress):
        self.site = site
        self.skip_platform = skip_platform
        self.progress = progress
        self._lock = threading.Lock()
        self._checked = False
        self._gateway: dict[str, Runner | RunnerError] | None = None
        self._weights: dict[tuple[str, str], int] = {}

    def gateway_runners(self, runners: Mapping[str, Runner | RunnerError]
                        ) -> dict[str, Runner | RunnerError] | None:
        """The gateway hosts' runners when Kong can steer traffic during this run, else None
        (no gateway, skipped, a gateway host outside the run, or Kong not answering).
        Asked once per run: every host's plan and apply then agree on it."""
        with self._lock:
            if self._checked:
                return self._gateway
            self._checked = True
            self._gateway = self._find_gateway(runners)
            return self._gateway

    def _find_gateway(self, runners: Mapping[str, Runner | RunnerError]
                      ) -> dict[str, Runner | RunnerError] | None:
        gw = self.site.inventory.gateway
        if gw is None or GATEWAY in self.skip_platform:
            return None
        found: dict[str, Runner | RunnerError] = {}
        for name in gw.hosts:
            runner = runners.get(name)
            if runner is None or isinstance(runner, RunnerError):
                return None
            try:
                with ops.admin_on(runner, self.site) as admin:
                    admin.status()
            except (GatewayError, RunnerError):
                return None
            found[name] = runner
        return found

    def units(self, plan: HostPlan, runners: Mapping[str, Runner | RunnerError]) -> set[str]:
        """Restarts of routed services with more than one instance in the site: those go
        one at a time through the gateway, so the service never stops answering."""
        routed = {w.name for w in self.site.workloads
                  if w.route is not None and len(service_instances(w, self.site.inventory)) > 1}
        units = {u.unit for u in plan.units if u.action == "restart" and u.workload in routed}
        # Kong is asked only when something could roll: a run without such restarts never
        # opens an Admin API tunnel.
        if not units or self.gateway_runners(runners) is None:
            return set()
        return units

    def set_weight(self, host: str, instance: str, weight: int | None,
                   cluster_targets: Mapping[str, str]) -> None:
        """Give one instance's gateway target a weight (None: back to normal) on every
        gateway host, and wait until Kong runs it (the sync verifies the hash).

        The whole config is sent each time, with every weight now set (other hosts may be
        rolling too) and the services handed to the cluster still routed there."""
        with self._lock:
            if weight is None:
                self._weights.pop((host, instance), None)
            else:
                self._weights[(host, instance)] = weight
            rendered = ops.desired(self.site, dict(self._weights), cluster_targets)
            for runner in (self._gateway or {}).values():
                assert not isinstance(runner, RunnerError)
                ops.sync_one(runner, self.site, rendered)

    def roll_one(self, runner: Runner, host: m.Host, probe: HealthProbe,
                 cluster_targets: Mapping[str, str]) -> HealthResult:
        """Restart one instance out of rotation. Unhealthy, it stays at weight 0: the deploy
        rolls the host back, then gives the old version its traffic back."""
        gw = self.site.inventory.gateway
        assert gw is not None
        instance = probe.unit.removesuffix(".service")
        self.progress(host.name, "rolling", f"{instance}: weight 0, drain {gw.drain:g}s")
        try:
            self.set_weight(host.name, instance, 0, cluster_targets)
        except HostctlError as exc:  # Kong did not take it: restarting now would drop traffic
            return HealthResult(probe.unit, False, f"gateway refused weight 0: {exc}")
        time.sleep(gw.drain)
        res = runner.run(["systemctl", "restart", "--", probe.unit], timeout=120)
        if not res.ok:
            return HealthResult(probe.unit, False, f"restart failed: {res.stderr.strip()}")
        (result,) = check_health(runner, host, [probe], self.progress)
        if result.ok:
            self.set_weight(host.name, instance, None, cluster_targets)
        return result
