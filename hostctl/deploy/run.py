"""deploy: connect -> facts (+lock) -> plan -> confirm -> apply, health gate, rollback -> finish.

Only this package (through runners) touches hosts. The Deploy here holds the
hosts.session.Session it connects through (runners, who, run id, lock record, audit fields,
finish and unlock), reads facts, plans, and runs each host's transaction (deploy.transaction:
apply, health gate, rollback, finish) in parallel or in waves; the rest is in parts that
take what they need: deploy.target (what each host should run, from the site alone),
deploy.rolling (restarts one instance at a time through the gateway), deploy.release (the
manifests of the release staged and the one a failure returns to), deploy.platform_steps
(Kong's config and log retention after the hosts), deploy.rollback (`hostctl rollback`) and
deploy.outcome (each host's outcome, failure texts and its finish).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from hostctl import layout as L
from hostctl.deploy import handoff
from hostctl.deploy.outcome import HostOutcome, describe_exc, finish_host
from hostctl.deploy.outcome import exit_status as exit_status
from hostctl.deploy.plan import HostPlan, Plan, plan_host
from hostctl.deploy.platform_steps import apply_retention, sync_gateway
from hostctl.deploy.rollback import apply_rollback, rollback_plan
from hostctl.deploy.rolling import GatewayRolling
from hostctl.deploy.target import HostTarget, build_target
from hostctl.deploy.transaction import HostTransaction
from hostctl.errors import HostctlError
from hostctl.hosts import scripts as S
from hostctl.hosts.facts import FactsError, HostFacts, facts_script, parse_facts
from hostctl.hosts.images import LocalImages
from hostctl.hosts.lock import break_stale_lock, lock_message
from hostctl.hosts.progress import Progress, quiet
from hostctl.hosts.session import Session, runner_for
from hostctl.runner.base import Runner, RunnerError
from hostctl.runner.pool import run_parallel
from hostctl.spec import model as m
from hostctl.spec.platform import skipped_workloads


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


class Deploy:
    """One deploy (or rollback) through a session: the hosts' facts, targets, plans, each
    host's transaction and the outcomes."""

    def __init__(self, session: Session, options: DeployOptions,
                 local_images: LocalImages | None = None):
        self.session = session
        self.site = session.site
        self.options = options
        self.progress = session.progress
        self.local_images = local_images or LocalImages()
        self.facts: dict[str, HostFacts] = {}
        self.targets: dict[str, HostTarget] = {}
        self.outcomes: dict[str, HostOutcome] = {}
        self.rolling = GatewayRolling(self.site, options.skip_platform, self.progress)
        self.cluster_targets: dict[str, str] = {}  # routed services handed to the cluster
        self.rollback_to: dict[str, str] = {}  # host -> the release rollback_plan chose for it
        self._targets_future: Future[dict[str, HostTarget]] | None = None

    @classmethod
    def for_site(cls, site: m.Site, options: DeployOptions,
                 factory: Callable[[m.Host], Runner] = runner_for,
                 progress: Progress = quiet) -> Deploy:
        """A deploy of `site` on a new session to the hosts `options` names (all by
        default), reporting to `progress`."""
        return cls(Session(site, options.hosts, options.command, factory, progress), options)

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
    def lock_record(self) -> str:
        return self.session.lock_record

    # -- connect and read -------------------------------------------------------------

    def _build_targets(self) -> dict[str, HostTarget]:
        needs_images = any((w.image_source or self.site.inventory.image_source) == "push"
                           for w in self.site.workloads)
        return {h.name: build_target(self.site, h, self.local_images if needs_images else None)
                for h in self.hosts}

    @contextmanager
    def connected(self, plan: bool = True) -> Iterator[Deploy]:
        """Runners to the run's hosts. With `plan` (a run that will `gather`), what each host
        should run is worked out meanwhile, while the network is busy connecting and
        reading facts: the run then costs about the longer of the two, not their sum."""
        if plan:
            pool = ThreadPoolExecutor(max_workers=2)
            self._targets_future = pool.submit(self._build_targets)
            if not self.options.dry_run:  # every host's finish records it: ask git now
                pool.submit(lambda: self.session.revision)
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
            script = facts_script(host.docker, record, runtimes=host.gpus > 0,
                                  expected=self._public_hashes(host.name))
            res = runner.run(["sh", "-s"], stdin=script.encode(), timeout=120)
            facts = parse_facts(runner.host, res.stdout)
            if record is not None and facts.lock.held and self.options.force_unlock:
                facts = break_stale_lock(runner, facts, self.options.lock_ttl,
                                         self.lock_record, self.progress)
            return facts

        results = run_parallel(self.runners, read)
        assert self._targets_future is not None, "gather() runs inside connected()"
        self.targets.update(self._targets_future.result())
        # Services handed to the cluster keep routing there.
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

    def _public_hashes(self, host: str) -> dict[str, str] | None:
        """path -> sha256 of the public files `host` should have: the host sends the content
        of those that differ, for the plan's diffs (None: targets failed to build; the
        host sends every public file, and gather reports the failure)."""
        assert self._targets_future is not None, "gather() runs inside connected()"
        try:
            target = self._targets_future.result()[host]
        except Exception:  # raised again by gather, where it is reported
            return None
        return {p: t.sha256 for p, t in target.target.items() if not t.secret}

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
        leave = skipped_workloads(self.options.skip_platform)
        plan = plan_host(facts, target.target, target.images, target.networks,
                         owned=owned, leave=leave, image_users=target.image_users)
        plan = handoff.keep_stopped(plan, facts, self.site)
        if target.error:
            plan = replace(plan, error=f"{host.name}: {target.error}")
        # GPU workloads need nvidia's runtime (only a host with GPUs whose Docker named its
        # runtimes can lack it).
        gpu_error = None
        if host.gpus > 0 and facts.runtimes is not None:
            from hostctl.jobs.plan import gpu_runtime_error  # start-up: GPU hosts only

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
        if facts.current_status == S.UNVERIFIED and not plan.changed:
            notes.append(f"release {facts.current_release} is live and unverified (its deploy "
                         "could not finish its health gate): its services' health is checked "
                         "again")
        return replace(plan, notes=tuple(notes)) if notes else plan

    # -- apply --------------------------------------------------------------------------

    def apply(self, plan: Plan) -> dict[str, HostOutcome]:
        """Each host's transaction, in waves (all hosts at once without --serial); after a
        wave with a failure, with --serial or --fail-fast, the rest are skipped."""
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
            results = run_parallel(live, lambda r: self.transaction(r, plan.hosts[r.host]).run())
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

    def transaction(self, runner: Runner, plan: HostPlan) -> HostTransaction:
        """The transaction of `plan` on the runner's host (after `gather`)."""
        name = runner.host
        return HostTransaction(
            runner, self.site.inventory.hosts[name], plan, self.facts[name], self.targets[name],
            self.session, rolling=self.rolling, cluster_targets=self.cluster_targets,
            local_images=self.local_images, progress=self.progress)

    # -- after the hosts: Kong's config and log retention (deploy.platform_steps) ---------

    def sync_gateway(self) -> list[Any]:
        """After the services are healthy: send Kong the config of what now runs."""
        return sync_gateway(self.site, self.options.skip_platform, self.outcomes, self.runners,
                            self.cluster_targets, self.progress)

    def apply_retention(self) -> list[str]:
        """After the logging host deployed cleanly: Elasticsearch's retention policy."""
        return apply_retention(self.site, self.options.skip_platform, self.outcomes,
                               self.runners, self.progress)

    # -- rollback by hand (deploy.rollback) ------------------------------------------------

    def rollback_plan(self, to: str | None) -> Plan:
        """After `gather(take_lock=True)`: per host, the plan back to release `to` (default:
        the release before the current one); `rollback_to` then says which release each
        host goes back to."""
        plan, self.rollback_to = rollback_plan(self.site, self.hosts, self.runners, self.facts,
                                               self.outcomes, self.options.lock_ttl, to)
        return plan

    def apply_rollback(self, plan: Plan) -> dict[str, HostOutcome]:
        """`rollback_plan`'s plan on the hosts this run locked; every host in the plan gets an
        outcome (those not applied: failed, with the plan's reason)."""
        probes = {n: t.probes for n, t in self.targets.items()}
        self.outcomes.update(apply_rollback(self.session, plan, self.rollback_to, probes,
                                            self.progress))
        for name, hp in plan.hosts.items():
            self.outcomes.setdefault(name, HostOutcome(name, "failed", hp.error or "not run", hp))
        return self.outcomes

    # -- finish -------------------------------------------------------------------------

    def release_locks(self, result: str, plan: Plan | None = None) -> None:
        """End a run that applies nothing (dry run, declined): audit and unlock each host,
        recording the plan that was not applied."""

        def finish(runner: Runner) -> None:
            outcome = self.outcomes.get(runner.host) or HostOutcome(
                runner.host, result, plan=plan.hosts.get(runner.host) if plan else None)
            finish_host(self.session, runner, outcome)

        live = {n: r for n, r in self.runners.items() if n in self.locked}
        run_parallel(live, finish)

    def _release_forgotten_locks(self) -> None:
        if self.locked:
            self.release_locks("aborted")

