"""Rollback by hand (`hostctl rollback`): put hosts back on an earlier release.

Not the automatic rollback of a failed apply (that is HostTransaction.roll_back in
deploy.transaction): here the operator
picks the release, or takes the one before the current, and every host is its own
transaction as in a deploy: locked, applied, health-checked, audited and unlocked.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from hostctl.deploy.activate import activate
from hostctl.deploy.handoff import keep_gateway_file, keep_stopped
from hostctl.deploy.health_gate import check_health
from hostctl.deploy.outcome import HostOutcome, describe_exc, failure_text, finish_host
from hostctl.deploy.plan import HostPlan, Plan, plan_files, target_from_manifest
from hostctl.hosts import scripts as S
from hostctl.hosts.facts import HostFacts
from hostctl.hosts.lock import lock_message
from hostctl.hosts.progress import Progress
from hostctl.hosts.session import Session
from hostctl.render.probe import HealthProbe
from hostctl.runner.base import Runner, RunnerError
from hostctl.runner.pool import run_parallel
from hostctl.spec import model as m


def rollback_plan(site: m.Site, hosts: Sequence[m.Host],
                  runners: Mapping[str, Runner | RunnerError], facts_of: Mapping[str, HostFacts],
                  outcomes: Mapping[str, HostOutcome], lock_ttl: float,
                  to: str | None) -> tuple[Plan, dict[str, str]]:
    """After `gather(take_lock=True)`: per host, the plan back to release `to` (default:
    the release before the current one), and the release chosen for each host. One more
    round trip to read the manifests."""
    rollback_to: dict[str, str] = {}
    live = {n: r for n, r in runners.items() if n in facts_of}
    results = run_parallel(live, lambda r: r.run(
        ["sh", "-s"], stdin=S.releases_script().encode(), timeout=60))
    plans: dict[str, HostPlan] = {}
    for h in hosts:
        name = h.name
        facts = facts_of.get(name)
        res = results.get(name)
        if facts is None or res is None:
            plans[name] = HostPlan(name, error=outcomes.get(
                name, HostOutcome(name, "failed", f"{name}: no facts")).message)
            continue
        if facts.lock.held:
            plans[name] = HostPlan(name, error=lock_message(name, facts.lock, facts.now, lock_ttl))
            continue
        if isinstance(res, Exception):
            plans[name] = HostPlan(name, error=describe_exc(name, res))
            continue
        current, manifests = S.parse_releases(res.stdout)
        if to is not None:
            if to not in manifests:
                known = ", ".join(sorted(manifests)) or "none"
                plans[name] = HostPlan(name, error=f"{name}: no release {to} (known: {known})")
                continue
            chosen = to
        else:
            # A release that was itself rolled back failed its deploy: never go back to it.
            earlier = [r for r in sorted(manifests) if current and r < current
                       and manifests[r].get("status") != "rolled-back"]
            if not earlier:
                plans[name] = HostPlan(name, error=f"{name}: no release before the current "
                                                   f"one ({current or 'none'})")
                continue
            chosen = earlier[-1]
        rollback_to[name] = chosen
        target = keep_gateway_file(target_from_manifest(manifests[chosen]), facts)
        plans[name] = keep_stopped(plan_files(name, target, facts.files, facts.units),
                                   facts, site)
    return Plan(plans), rollback_to


def apply_rollback(session: Session, plan: Plan, rollback_to: Mapping[str, str],
                   probes: Mapping[str, Mapping[str, HealthProbe]], progress: Progress
                   ) -> dict[str, HostOutcome]:
    """Apply `rollback_plan`'s plan (back to `rollback_to`, host -> release) on the hosts
    the session locked, in parallel (`probes`: host -> unit -> the specs' health probe).
    The outcome of each host it ran on (one that raised: failed, with the error)."""

    def one(runner: Runner) -> HostOutcome:
        start = time.monotonic()
        name = runner.host
        outcome = roll_back_host(runner, session.site.inventory.hosts[name], plan.hosts[name],
                                 rollback_to, probes[name], progress)
        outcome.seconds = round(time.monotonic() - start, 3)
        finish_host(session, runner, outcome)
        outcome.round_trips = runner.round_trips
        progress(name, outcome.status, outcome.message)
        return outcome

    live = {n: session.runners[n] for n in plan.hosts if n in session.locked}
    return {name: result if isinstance(result, HostOutcome) else HostOutcome(
        name, "failed", describe_exc(name, result), plan.hosts[name])
        for name, result in run_parallel(live, one).items()}


def roll_back_host(runner: Runner, host: m.Host, plan: HostPlan,
                   rollback_to: Mapping[str, str], probes: Mapping[str, HealthProbe],
                   progress: Progress) -> HostOutcome:
    """One host back to its release in `rollback_to`, then the health of what it starts."""
    name = runner.host
    if plan.error:
        return HostOutcome(name, "failed", plan.error, plan)
    release = rollback_to[name]
    progress(name, "rollback", f"to {release}")
    res = runner.run(["sh", "-s"], stdin=(S.PRELUDE + activate(
        plan, release, host.docker, {})).encode(), timeout=300)
    if "applied" not in S.markers(res.stdout):
        return HostOutcome(name, "failed", f"{name}: rollback to {release} failed: "
                           f"{failure_text(res.stdout, res.stderr)}", plan)
    # The old release may run services the specs no longer have (no probe in the target):
    # those are at least checked to be running.
    checks = [probes.get(u.unit) or HealthProbe(u.unit, u.unit.removesuffix(".service"),
                                                  "running", interval=1, timeout=1)
              for u in plan.units if u.action in ("start", "restart")
              and u.unit.endswith(".service")]
    health = check_health(runner, host, checks, progress)
    if any(not h.ok for h in health):
        bad = ", ".join(h.unit for h in health if not h.ok)
        return HostOutcome(name, "failed", f"{name}: rolled back to {release}, but "
                                           f"unhealthy: {bad}", plan, health, release)
    return HostOutcome(name, "deployed", f"rolled back to release {release}", plan,
                       health, release)
