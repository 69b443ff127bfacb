"""One host's transaction in a deploy: apply its plan (images, stage the release, activate),
the health gate (with the restarts that roll through the gateway), the rollback to the
previous release when either fails, and the finish (audit record, lock released).

A transaction ends on the new release with every changed service healthy, or back on its
previous release, and always with an audit record and its lock released. It holds what it
needs for its host (the runner, the plan, the facts and target, the session it connects
through, the run's gateway rolling) and records what it changed and how it ended; the
deploy (hostctl.deploy.run.Deploy) runs the transactions, in parallel or in waves.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from hostctl.deploy.activate import activate
from hostctl.deploy.health_gate import HealthResult, check_health
from hostctl.deploy.outcome import HostOutcome, describe_exc, failure_text, finish_host
from hostctl.deploy.plan import HostPlan, plan_files, target_from_manifest, unit_of
from hostctl.deploy.release import release_manifest, rollback_point
from hostctl.deploy.rolling import GatewayRolling
from hostctl.deploy.target import HostTarget
from hostctl.errors import HostctlError
from hostctl.hosts import scripts as S
from hostctl.hosts.facts import HostFacts, UnitState
from hostctl.hosts.images import LocalImages, pull, push
from hostctl.hosts.progress import Progress
from hostctl.hosts.session import Session
from hostctl.runner.base import CommandTimeout, Runner, RunnerError
from hostctl.spec import model as m


class HostTransaction:
    """One host's deploy: `run()` applies, gates and (on failure) rolls back, then finishes.

    What it changed is kept as it goes: `release` (the release it staged, None before),
    `previous` (the manifest of the release a failure returns to, {} for the state before
    hostctl), `new_manifest` (the staged release's), `rolling` (the units restarted through
    the gateway) and, at the end, `outcome`."""

    def __init__(self, runner: Runner, host: m.Host, plan: HostPlan, facts: HostFacts,
                 target: HostTarget, session: Session, *, rolling: GatewayRolling,
                 cluster_targets: Mapping[str, str], local_images: LocalImages,
                 progress: Progress):
        self.runner = runner
        self.host = host
        self.plan = plan
        self.facts = facts
        self.target = target
        self.session = session
        self.gateway = rolling
        self.cluster_targets = cluster_targets
        self.local_images = local_images
        self.progress = progress
        self.release: str | None = None
        self.previous: dict[str, Any] = {}
        self.new_manifest: dict[str, Any] = {}
        self.rolling: set[str] = set()
        self.outcome: HostOutcome | None = None
        self.phase = ""  # apply | gate | rollback: how far it got, for a cut connection

    @property
    def name(self) -> str:
        return self.runner.host

    def run(self) -> HostOutcome:
        """The whole transaction, timed; whatever happened, audited and unlocked."""
        start = time.monotonic()
        try:
            outcome = self._steps()
        except RunnerError as exc:
            # The connection dropped (or a command timed out) mid-apply: what the host did
            # is unknown. The finish below reconnects to audit the run and unlock.
            outcome = HostOutcome(self.name, "failed", str(exc) + self._unverified(), self.plan)
        except HostctlError as exc:  # any other expected failure still audits and unlocks
            outcome = HostOutcome(self.name, "failed", describe_exc(self.name, exc), self.plan)
        outcome.seconds = round(time.monotonic() - start, 3)
        finish_host(self.session, self.runner, outcome)
        outcome.round_trips = self.runner.round_trips  # the whole run's, facts included
        self.progress(self.name, outcome.status, outcome.message)
        self.outcome = outcome
        return outcome

    def _steps(self) -> HostOutcome:
        name, plan = self.name, self.plan
        if plan.error:
            return HostOutcome(name, "failed", plan.error, plan)
        if not plan.changed:
            current = self.facts.current_release
            if (self.facts.current_status == S.UNVERIFIED and current
                    and self.facts.manifest.get("release") == current):
                return self.reverify(current)
            return HostOutcome(name, "unchanged", "", plan)
        ended = self.apply()
        if ended is not None:
            return ended
        self.phase = "gate"
        health = self.gate()
        bad = [h for h in health if not h.ok]
        if bad:
            return self.roll_back(f"unhealthy after the change: "
                                  f"{', '.join(h.unit for h in bad)}", health)
        return HostOutcome(name, "deployed", f"release {self.release}", plan, health,
                           self.release)

    def apply(self) -> HostOutcome | None:
        """Fetch the images, stage the release and activate it (the units that roll through
        the gateway are left for the gate). None once applied; else how the host ended:
        failed with nothing changed, or rolled back."""
        name, plan, host = self.name, self.plan, self.host
        for img in plan.images:
            self.progress(name, "images", f"{img.method} {img.ref}")
            if img.method == "push":
                res = push(self.runner, host.docker, img.ref, self.local_images.save(img.ref))
            else:
                res = pull(self.runner, host.docker, img.ref)
            if not res.ok:
                detail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no output"]
                return HostOutcome(name, "failed", f"{name}: could not {img.method} {img.ref}: "
                                                   f"{detail[0]}; nothing was changed", plan)
        session = self.session
        release = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + session.run_id[:6]
        self.previous, snapshot = rollback_point(self.facts)
        self.new_manifest = release_manifest(
            release, self.facts, self.target, plan, self.previous, site=session.site,
            by=session.who, run_id=session.run_id, revision=session.revision)
        self.release = release
        contents = {f.path: (self.target.files[f.path].content, f.mode)
                    for f in plan.files if f.action == "write"}
        removed = [f.path for f in plan.files if f.action == "remove"]
        script = S.PRELUDE + snapshot + S.stage_release(release, contents, removed,
                                                        self.new_manifest)
        script += S.mark_unverified(release)
        self.rolling = self.gateway.units(plan, session.runners)
        script += activate(self._in_place(), release, host.docker, self.target.networks)
        self.progress(name, "apply", counts_text(plan))
        self.phase = "apply"
        deadline = self.apply_deadline()
        try:
            res = self.runner.run(["sh", "-s"], stdin=script.encode(), timeout=deadline)
        except CommandTimeout:
            # A slow host: the runner stopped the script, which may have got anywhere.
            # Back to the previous release, as after any failed apply.
            return self.roll_back(f"applying did not finish in {deadline:g} s", [])
        marks = S.markers(res.stdout)
        if "applied" in marks:
            return None
        why = failure_text(res.stdout, res.stderr)
        if "staged" not in marks:
            return HostOutcome(name, "failed", f"{name}: could not stage the release: "
                                               f"{why}; nothing was changed", plan)
        return self.roll_back(f"applying failed: {why}", [])

    def apply_deadline(self) -> float:
        """Seconds the apply may take: APPLY_TIMEOUT, or more when a unit it stops or restarts
        may take longer to stop (its TimeoutStopSec=, stop_timeout + 15 s; units stop and
        start together, so the longest counts)."""
        stop = {w.name: w.stop_timeout for w in self.session.site.workloads}
        waits = [stop[u.workload] + 15 for u in self.plan.units
                 if u.action in ("stop", "restart") and u.workload in stop]
        return max([APPLY_TIMEOUT, *(w + APPLY_MARGIN for w in waits)])

    def _in_place(self) -> HostPlan:
        """The plan without the restarts that roll through the gateway."""
        return replace(self.plan, units=tuple(u for u in self.plan.units
                                              if u.unit not in self.rolling))

    def gate(self) -> list[HealthResult]:
        """The health gate: the units started or restarted in place, then (if all of them
        are healthy) each rolling restart in turn, up to the first that fails."""
        probes = self.target.probes
        units = [u.unit for u in self._in_place().units
                 if u.action in ("start", "restart") and u.unit in probes]
        health = check_health(self.runner, self.host, [probes[u] for u in units],
                              self.progress)
        for unit in sorted(self.rolling) if all(h.ok for h in health) else []:
            result = self.gateway.roll_one(self.runner, self.host, probes[unit],
                                           self.cluster_targets)
            health.append(result)
            if not result.ok:
                break
        return health

    def roll_back(self, why: str, health: list[HealthResult]) -> HostOutcome:
        """Back to the previous release (or the state before hostctl): the staged release
        marked rolled back, its files and units undone, the previous version's health
        checked; an instance left out of the gateway's rotation gets its traffic back."""
        name, failed = self.name, self.plan
        self.phase = "rollback"
        self.progress(name, "rollback", why)
        back_to = self.previous.get("release")
        target = target_from_manifest(self.previous) if self.previous else {}
        live = {f["path"]: f["sha256"] for f in self.new_manifest.get("files", [])}
        running = {u.unit: UnitState(u.unit, active="active", file_state="enabled")
                   for u in failed.units if u.action in ("start", "restart")}
        for path in live:
            unit = unit_of(path)
            if unit and unit not in running:
                running[unit] = UnitState(unit, active="active", file_state="enabled")
        plan = replace(plan_files(name, target, live, running), enable=())
        script = S.PRELUDE + S.mark_rolled_back(self.new_manifest["release"]) + activate(
            plan, back_to, self.host.docker, {})
        res = self.runner.run(["sh", "-s"], stdin=script.encode(), timeout=300)
        if "applied" not in S.markers(res.stdout):
            outcome = HostOutcome(name, "failed", f"{name}: {why}; ROLLBACK FAILED: "
                                                  f"{failure_text(res.stdout, res.stderr)}",
                                  failed, health)
        else:
            probes = self.target.probes
            again = [probes[u.unit] for u in plan.units
                     if u.action in ("start", "restart") and u.unit in probes]
            after = check_health(self.runner, self.host, again, self.progress) if again else []
            where = f"release {back_to}" if back_to else "the state before hostctl"
            verdict = ("; the previous version is healthy" if all(h.ok for h in after)
                       else "; the previous version is NOT healthy either: "
                       + ", ".join(h.unit for h in after if not h.ok))
            outcome = HostOutcome(name, "rolled-back", f"{why}; rolled back to {where}{verdict}",
                                  failed, health, back_to)
        for h in health:
            if not h.ok and h.unit in self.rolling:
                # The old version runs again: give it its traffic back.
                try:
                    self.gateway.set_weight(name, h.unit.removesuffix(".service"), None,
                                            self.cluster_targets)
                except HostctlError as exc:
                    outcome.message += f"; its gateway weight is still 0 ({exc})"
        return outcome

    def reverify(self, release: str) -> HostOutcome:
        """A host whose current release no health gate saw healthy (its deploy was cut off,
        hosts.scripts.mark_unverified) and nothing else to change: the gate again, over
        every service the specs run there; unhealthy, back to the release before it."""
        name, probes, units = self.name, self.target.probes, self.facts.units
        self.phase, self.release, self.new_manifest = "gate", release, self.facts.manifest
        # The services it runs: enabled (not one handed to the cluster, stopped on purpose).
        running = [probes[u] for u in sorted(probes)
                   if u in units and units[u].file_state == "enabled"]
        health = check_health(self.runner, self.host, running, self.progress)
        bad = [h.unit for h in health if not h.ok]
        if not bad:
            return HostOutcome(name, "deployed", f"release {release} verified (its deploy "
                               "could not finish its health gate)", self.plan, health, release)
        back_to = self.facts.manifest.get("previous")
        if back_to:
            res = self.runner.run(["sh", "-s"], stdin=S.releases_script().encode(),
                                  timeout=60)
            self.previous = S.parse_releases(res.stdout)[1].get(back_to, {})
            if not self.previous:
                return HostOutcome(name, "failed", f"{name}: release {release} is live and "
                                   f"unhealthy: {', '.join(bad)}; its previous release "
                                   f"{back_to} is gone from the host: fix the specs and "
                                   "deploy again", self.plan, health, release)
        return self.roll_back(f"release {release} (unverified) is unhealthy: "
                              f"{', '.join(bad)}", health)

    def _unverified(self) -> str:
        """What a run cut off during the health gate left: the new release live, unchecked."""
        if self.phase != "gate" or self.release is None:
            return ""
        return (f"; release {self.release} is live and unverified (its health gate did not "
                "finish): the next deploy checks its health again")


APPLY_TIMEOUT = 300  # seconds: writing files and starting units (images come before)
APPLY_MARGIN = 120  # seconds beyond the longest stop of a unit: the rest of the apply


def counts_text(plan: HostPlan) -> str:
    c = plan.counts()
    parts = [f"{c[k]} {label}" for k, label in (
        ("write", "to write"), ("remove", "to remove"), ("start", "to start"),
        ("restart", "to restart"), ("stop", "to stop"), ("images", "image(s)")) if c[k]]
    return ", ".join(parts) or "nothing to do"
