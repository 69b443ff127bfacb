"""deploy: connect -> facts (+lock) -> plan -> confirm -> apply, health gate, rollback -> finish.

Only this module and its deploy_* parts (through runners) touch hosts. Each host is its own
transaction: it ends on the new release with every changed service healthy, or back on its
previous release, and always with an audit record and its lock released.

The Run here holds the hosts.session.Session it connects through (runners, who, run id,
lock record, audit fields, finish and unlock), reads facts, plans and applies; the rest is
in parts: deploy_target (what each host should run, from the site alone), deploy_rolling
(restarts one instance at a time through the gateway),
deploy_release (the manifests of the release staged and the one a failure returns to),
deploy_platform_steps (Kong's config and log retention after the hosts), deploy_rollback
(`hostctl rollback`) and deploy_outcome (each host's outcome and failure texts).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from hostctl import layout as L
from hostctl.deploy.activate import activate
from hostctl.deploy.health_gate import HealthResult, health_script, parse_health
from hostctl.deploy.images import LocalImages, pull, push
from hostctl.deploy.outcome import HostOutcome, describe_exc, failure_text
from hostctl.deploy.outcome import exit_status as exit_status
from hostctl.deploy.plan import (
    HostPlan,
    Plan,
    plan_files,
    plan_host,
    target_from_manifest,
    unit_of,
)
from hostctl.deploy.platform_steps import apply_retention, sync_gateway
from hostctl.deploy.release import release_manifest, rollback_point
from hostctl.deploy.rollback import apply_rollback, rollback_plan
from hostctl.deploy.rolling import GatewayRolling
from hostctl.deploy.target import HostTarget, build_target
from hostctl.deploy.target import probe_for as probe_for
from hostctl.errors import HostctlError
from hostctl.hosts import scripts as S
from hostctl.hosts.facts import FactsError, HostFacts, UnitState, facts_script, parse_facts
from hostctl.hosts.lock import break_stale_lock, lock_message
from hostctl.hosts.progress import Progress, quiet
from hostctl.hosts.session import Session, runner_for
from hostctl.render.probe import HealthProbe
from hostctl.runner.base import Runner, RunnerError
from hostctl.runner.pool import run_parallel
from hostctl.spec import model as m

# Other modules and the tests import these names from here, as before the split into
# deploy_* modules (`X as X` above tells linters an import is such a re-export).
_failure_text = failure_text


@dataclass(frozen=True)
class DeployOptions:
    dry_run: bool = False
    hosts: frozenset[str] | None = None
    only: frozenset[str] | None = None
    serial: int | None = None
    fail_fast: bool = False
    force_unlock: bool = False
    lock_ttl: float = 1800.0
    command: str = "hostctl deploy"
    skip_platform: frozenset[str] = frozenset()


class Run:
    """One hostctl run against some hosts: their runners, facts, plans and outcomes."""

    def __init__(self, site: m.Site, options: DeployOptions,
                 factory: Callable[[m.Host], Runner] = runner_for,
                 progress: Progress = quiet, local_images: LocalImages | None = None):
        self.site = site
        self.options = options
        self.progress = progress
        self.local_images = local_images or LocalImages()
        self.session = Session(site, options.hosts, options.command, factory, progress)
        self.facts: dict[str, HostFacts] = {}
        self.targets: dict[str, HostTarget] = {}
        self.outcomes: dict[str, HostOutcome] = {}
        self.rolling = GatewayRolling(site, options.skip_platform, progress, self.check_health)
        self.cluster_targets: dict[str, str] = {}  # routed services handed to the cluster
        self._targets_future: Future[dict[str, HostTarget]] | None = None

    # The session's parts, as the deploy's parts read them.
    @property
    def hosts(self) -> list[m.Host]:
        return self.session.hosts

    @property
    def runners(self) -> dict[str, Runner | RunnerError]:
        return self.session.runners

    @property
    def locked(self) -> set[str]:
        return self.session.locked

    @property
    def who(self) -> str:
        return self.session.who

    @property
    def run_id(self) -> str:
        return self.session.run_id

    @property
    def lock_record(self) -> str:
        return self.session.lock_record

    @property
    def revision(self) -> str | None:
        return self.session.revision

    # -- connect and read -------------------------------------------------------------

    def _build_targets(self) -> dict[str, HostTarget]:
        needs_images = any((w.image_source or self.site.inventory.image_source) == "push"
                           for w in self.site.workloads)
        return {h.name: build_target(self.site, h, self.local_images if needs_images else None)
                for h in self.hosts}

    @contextmanager
    def connected(self, plan: bool = True) -> Iterator[Run]:
        """Runners to the run's hosts. With `plan` (a run that will `gather`), what each host
        should run is worked out meanwhile, while the network is busy connecting and
        reading facts: the run then costs about the longer of the two, not their sum."""
        if plan:
            pool = ThreadPoolExecutor(max_workers=1)
            self._targets_future = pool.submit(self._build_targets)
            pool.shutdown(wait=False)
        with self.session.connected():
            try:
                yield self
            finally:
                self._release_forgotten_locks()

    def gather(self, take_lock: bool) -> Plan:
        """Facts from every host (taking the lock if asked), then the plan. One round trip."""
        record = self.lock_record if take_lock else None

        def read(runner: Runner) -> HostFacts:
            self.progress(runner.host, "facts", "")
            host = self.site.inventory.hosts[runner.host]
            script = facts_script(host.docker, record, runtimes=host.gpus > 0)
            res = runner.run(["sh", "-s"], stdin=script.encode(), timeout=120)
            facts = parse_facts(runner.host, res.stdout)
            if record is not None and facts.lock.held and self.options.force_unlock:
                facts = break_stale_lock(runner, facts, self.options.lock_ttl,
                                         self.lock_record, self.progress)
            return facts

        results = run_parallel(self.runners, read)
        assert self._targets_future is not None, "gather() runs inside connected()"
        self.targets.update(self._targets_future.result())
        from hostctl.deploy import handoff  # services handed to the cluster keep routing there

        self.cluster_targets = handoff.route_gateway(self.site, self.targets, {
            n: f for n, f in results.items() if isinstance(f, HostFacts)})
        plans: dict[str, HostPlan] = {}
        for h in self.hosts:
            outcome = results[h.name]
            if isinstance(outcome, RunnerError):
                self.outcomes[h.name] = HostOutcome(h.name, "unreachable", str(outcome))
                plans[h.name] = HostPlan(h.name, error=str(outcome))
                continue
            if isinstance(outcome, FactsError | Exception):
                msg = (str(outcome) if isinstance(outcome, FactsError | HostctlError)
                       else f"{h.name}: {outcome!r}")
                self.outcomes[h.name] = HostOutcome(h.name, "failed", msg)
                plans[h.name] = HostPlan(h.name, error=msg)
                continue
            facts = outcome
            self.facts[h.name] = facts
            if facts.lock.acquired:
                self.locked.add(h.name)
            plans[h.name] = self._plan_one(h, facts, take_lock)
        return Plan(plans)

    def _plan_one(self, host: m.Host, facts: HostFacts, take_lock: bool) -> HostPlan:
        target = self.targets[host.name]
        if take_lock and facts.lock.held:
            msg = lock_message(host.name, facts.lock, facts.now, self.options.lock_ttl)
            self.outcomes[host.name] = HostOutcome(host.name, "locked", msg)
            return HostPlan(host.name, error=msg)
        if not facts.docker_ok:
            msg = (f"{host.name}: Docker is not running on the host ({facts.docker_detail}); "
                   "start it with: systemctl start docker")
            return HostPlan(host.name, error=msg)
        # The job queue's helper serves every job and GPU service: --only any of them keeps it.
        owned = (set(self.options.only) | {L.JOBS_WORKLOAD}
                 if self.options.only is not None else None)
        from hostctl.spec.platform import skipped_workloads

        leave = skipped_workloads(self.options.skip_platform)
        plan = plan_host(facts, target.target, target.images, target.networks,
                         owned=owned, leave=leave, image_users=target.image_users)
        from hostctl.deploy.handoff import keep_stopped

        plan = keep_stopped(plan, facts, self.site)
        if target.error:
            plan = replace(plan, error=f"{host.name}: {target.error}")
        from hostctl.jobs.plan import gpu_runtime_error  # GPU workloads need nvidia's runtime

        gpu_error = gpu_runtime_error(self.site, host, facts.runtimes, self.options.only)
        plan = replace(plan, error=plan.error or gpu_error)
        rolling = self.rolling.units(plan, self.runners)
        gaps = [u.unit for u in plan.units if u.action == "restart" and u.unit not in rolling]
        notes = []
        if rolling:
            notes.append(f"rolling through the gateway, one instance at a time: "
                         f"{', '.join(sorted(rolling))} (weight 0, drain, restart, health, "
                         "weight back)")
        if gaps:
            notes.append(f"restarting in place: {', '.join(gaps)} "
                         "(each has a short gap while it restarts)")
        return replace(plan, notes=tuple(notes)) if notes else plan

    # -- apply --------------------------------------------------------------------------

    def apply(self, plan: Plan) -> dict[str, HostOutcome]:
        waves = self._waves(plan)
        stop = False
        for wave in waves:
            if stop:
                for name in wave:
                    self.outcomes.setdefault(name, HostOutcome(
                        name, "skipped", "not started: an earlier wave failed",
                        plan.hosts[name]))
                continue
            live = {n: self.runners[n] for n in wave if n in self.facts and n in self.locked}
            results = run_parallel(live, lambda r: self._apply_host(r, plan.hosts[r.host]))
            for name, result in results.items():
                if isinstance(result, HostOutcome):
                    self.outcomes[name] = result
                else:
                    self.outcomes[name] = HostOutcome(name, "failed", describe_exc(name, result),
                                                      plan.hosts[name])
            if any(not self.outcomes[n].ok for n in wave if n in self.outcomes):
                stop = self.options.serial is not None or self.options.fail_fast
        for name in plan.hosts:
            self.outcomes.setdefault(name, HostOutcome(name, "failed", plan.hosts[name].error
                                                       or "not applied", plan.hosts[name]))
        return self.outcomes

    def _waves(self, plan: Plan) -> list[list[str]]:
        names = [h.name for h in self.hosts if h.name in plan.hosts]
        size = self.options.serial or len(names) or 1
        return [names[i:i + size] for i in range(0, len(names), size)]

    def _apply_host(self, runner: Runner, plan: HostPlan) -> HostOutcome:
        start = time.monotonic()
        try:
            outcome = self._apply_steps(runner, plan)
        except RunnerError as exc:
            # The connection dropped (or a command timed out) mid-apply: what the host did
            # is unknown. The finish below reconnects to audit the run and unlock.
            outcome = HostOutcome(runner.host, "failed", str(exc), plan)
        except HostctlError as exc:  # any other expected failure still audits and unlocks
            outcome = HostOutcome(runner.host, "failed", describe_exc(runner.host, exc), plan)
        outcome.seconds = round(time.monotonic() - start, 3)
        self.finish_host(runner, outcome)
        outcome.round_trips = runner.round_trips  # the whole run's, facts included
        self.progress(runner.host, outcome.status, outcome.message)
        return outcome

    def _apply_steps(self, runner: Runner, plan: HostPlan) -> HostOutcome:
        name = runner.host
        host = self.site.inventory.hosts[name]
        facts = self.facts[name]
        target = self.targets[name]
        if plan.error:
            return HostOutcome(name, "failed", plan.error, plan)
        if not plan.changed:
            return HostOutcome(name, "unchanged", "", plan)
        for img in plan.images:
            self.progress(name, "images", f"{img.method} {img.ref}")
            if img.method == "push":
                res = push(runner, host.docker, img.ref, self.local_images.save(img.ref))
            else:
                res = pull(runner, host.docker, img.ref)
            if not res.ok:
                detail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no output"]
                return HostOutcome(name, "failed", f"{name}: could not {img.method} {img.ref}: "
                                                   f"{detail[0]}; nothing was changed", plan)
        release = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + self.run_id[:6]
        previous, snapshot = rollback_point(facts)
        new_manifest = release_manifest(release, facts, target, plan, previous, site=self.site,
                                        by=self.who, run_id=self.run_id,
                                        revision=self.revision)
        contents = {f.path: (target.files[f.path].content, f.mode)
                    for f in plan.files if f.action == "write"}
        removed = [f.path for f in plan.files if f.action == "remove"]
        script = S.PRELUDE + snapshot + S.stage_release(release, contents, removed, new_manifest)
        rolling = self.rolling.units(plan, self.runners)
        in_place = replace(plan, units=tuple(u for u in plan.units if u.unit not in rolling))
        script += activate(in_place, release, host.docker, target.networks)
        self.progress(name, "apply", _counts_text(plan))
        res = runner.run(["sh", "-s"], stdin=script.encode(), timeout=300)
        marks = S.markers(res.stdout)
        if "applied" not in marks:
            why = failure_text(res.stdout, res.stderr)
            if "staged" not in marks:
                return HostOutcome(name, "failed", f"{name}: could not stage the release: "
                                                   f"{why}; nothing was changed", plan)
            return self._roll_back(runner, plan, new_manifest, previous,
                                   f"applying failed: {why}", [])
        units = [u.unit for u in in_place.units if u.action in ("start", "restart")
                 and u.unit in target.probes]
        health = self.check_health(runner, host, [target.probes[u] for u in units])
        for unit in sorted(rolling) if all(h.ok for h in health) else []:
            result = self.rolling.roll_one(runner, host, target.probes[unit],
                                           self.cluster_targets)
            health.append(result)
            if not result.ok:
                break
        bad = [h for h in health if not h.ok]
        if bad:
            names = ", ".join(h.unit for h in bad)
            outcome = self._roll_back(runner, plan, new_manifest, previous,
                                      f"unhealthy after the change: {names}", health)
            for h in bad:
                if h.unit in rolling:  # the old version runs again: give it its traffic back
                    try:
                        self.rolling.set_weight(name, h.unit.removesuffix(".service"), None,
                                                self.cluster_targets)
                    except HostctlError as exc:
                        outcome.message += f"; its gateway weight is still 0 ({exc})"
            return outcome
        return HostOutcome(name, "deployed", f"release {release}", plan, health, release)

    def _roll_back(self, runner: Runner, failed: HostPlan, new_manifest: Mapping[str, Any],
                   previous: Mapping[str, Any], why: str,
                   health: list[HealthResult]) -> HostOutcome:
        name = runner.host
        host = self.site.inventory.hosts[name]
        self.progress(name, "rollback", why)
        back_to = previous.get("release")
        target = target_from_manifest(previous) if previous else {}
        live = {f["path"]: f["sha256"] for f in new_manifest.get("files", [])}
        running = {u.unit: UnitState(u.unit, active="active", file_state="enabled")
                   for u in failed.units if u.action in ("start", "restart")}
        for path in live:
            unit = unit_of(path)
            if unit and unit not in running:
                running[unit] = UnitState(unit, active="active", file_state="enabled")
        plan = plan_files(name, target, live, running)
        plan = replace(plan, enable=())
        script = S.PRELUDE + S.mark_rolled_back(new_manifest["release"]) + activate(
            plan, back_to, host.docker, {})
        res = runner.run(["sh", "-s"], stdin=script.encode(), timeout=300)
        if "applied" not in S.markers(res.stdout):
            return HostOutcome(name, "failed", f"{name}: {why}; ROLLBACK FAILED: "
                                               f"{failure_text(res.stdout, res.stderr)}",
                               failed, health)
        target_probes = self.targets[name].probes
        again = [target_probes[u.unit] for u in plan.units
                 if u.action in ("start", "restart") and u.unit in target_probes]
        after = self.check_health(runner, host, again) if again else []
        where = f"release {back_to}" if back_to else "the state before hostctl"
        verdict = ("; the previous version is healthy" if all(h.ok for h in after)
                   else "; the previous version is NOT healthy either: "
                   + ", ".join(h.unit for h in after if not h.ok))
        return HostOutcome(name, "rolled-back", f"{why}; rolled back to {where}{verdict}",
                           failed, health, back_to)

    def check_health(self, runner: Runner, host: m.Host,
                     probes: list[HealthProbe]) -> list[HealthResult]:
        """Wait for each probe to pass or run out of retries, in one round trip."""
        if not probes:
            return []
        self.progress(runner.host, "health", f"{len(probes)} unit(s)")
        budget = max(p.budget for p in probes) + 30
        res = runner.run(["sh", "-s"], stdin=health_script(probes, host.docker).encode(),
                         timeout=budget)
        return parse_health(res.stdout, [p.unit for p in probes])

    # -- after the hosts: Kong's config and log retention (deploy_platform_steps) ---------

    def sync_gateway(self) -> list[Any]:
        """After the services are healthy: send Kong the config of what now runs."""
        return sync_gateway(self.site, self.options.skip_platform, self.outcomes, self.runners,
                            self.cluster_targets, self.progress)

    def apply_retention(self) -> list[str]:
        """After the logging host deployed cleanly: Elasticsearch's retention policy."""
        return apply_retention(self.site, self.options.skip_platform, self.outcomes,
                               self.runners, self.progress)

    # -- rollback by hand (deploy_rollback) ------------------------------------------------

    rollback_to: dict[str, str]  # host -> the release rollback_plan chose for it

    def rollback_plan(self, to: str | None) -> Plan:
        """After `gather(take_lock=True)`: per host, the plan back to release `to` (default:
        the release before the current one)."""
        plan, self.rollback_to = rollback_plan(self.site, self.hosts, self.runners, self.facts,
                                               self.outcomes, self.options.lock_ttl, to)
        return plan

    def apply_rollback(self, plan: Plan) -> dict[str, HostOutcome]:
        return apply_rollback(self, plan, self.rollback_to)

    # -- finish -------------------------------------------------------------------------

    def audit_base(self) -> dict[str, Any]:
        return self.session.audit_base()

    def audit_record(self, outcome: HostOutcome) -> dict[str, Any]:
        return {
            **self.audit_base(), "time": int(time.time()), "revision": self.revision,
            "host": outcome.host, "result": outcome.status,
            "message": outcome.message, "release": outcome.release,
            "plan": outcome.plan.counts() if outcome.plan else {},
            "failed": [h.unit for h in outcome.health if not h.ok],
            "seconds": outcome.seconds,
        }

    def finish_host(self, runner: Runner, outcome: HostOutcome) -> None:
        """Audit the host's outcome and release its lock, in one round trip."""
        protect = [outcome.release] if outcome.release else []
        outcome.message += self.session.finish(runner, self.audit_record(outcome), protect)

    def release_locks(self, result: str, plan: Plan | None = None) -> None:
        """End a run that applies nothing (dry run, declined): audit and unlock each host,
        recording the plan that was not applied."""

        def finish(runner: Runner) -> None:
            outcome = self.outcomes.get(runner.host) or HostOutcome(
                runner.host, result, plan=plan.hosts.get(runner.host) if plan else None)
            self.finish_host(runner, outcome)

        live = {n: r for n, r in self.runners.items() if n in self.locked}
        run_parallel(live, finish)

    def _release_forgotten_locks(self) -> None:
        if self.locked:
            self.release_locks("aborted")


def _counts_text(plan: HostPlan) -> str:
    c = plan.counts()
    parts = [f"{c[k]} {label}" for k, label in (
        ("write", "to write"), ("remove", "to remove"), ("start", "to start"),
        ("restart", "to restart"), ("stop", "to stop"), ("images", "image(s)")) if c[k]]
    return ", ".join(parts) or "nothing to do"
