"""Admission of runs whose project has a quota: the fleet lock, the settle, the grants and the
submit, over connected runners. The rules are hostctl.jobs.quota's; this module only talks.

One admission: take the fleet's lock on the ledger host; settle the project on every host
its jobs may run on (each shrinks its allotment to what its admitted runs use and says what
waits, and how many GPU-hours the project used this month); decide; send every settled host
its grant (the new runs' host with them, held, in the same round trip); release the lock.
Whatever is refused (budget, --no-wait) is refused after the grants went out, so a refusal
never leaves a host with less than its waiting runs were given.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from typing import Any

from hostctl.errors import HostctlError
from hostctl.hosts.audit import append_audit_lines, audit_record
from hostctl.jobs import hostside as H
from hostctl.jobs import quota as Q
from hostctl.jobs.plan import job_host_names
from hostctl.runner.base import Runner, RunnerError
from hostctl.runner.pool import run_parallel
from hostctl.spec import model as m
from hostctl.spec.placement import eligible_hosts, gpus_needed, service_instances
from hostctl.spec.sections.projects import ProjectQuota

SETTLE_TIMEOUT = 60.0
NUDGE_S = 10.0  # how often a waiting hostctl settles its held runs' project again


def ledger_host(site: m.Site) -> str:
    """The host whose admission lock is the fleet's: `projects: ledger_host`, else the first
    host (inventory order) that runs jobs."""
    named = site.inventory.projects.ledger_host
    if named is not None:
        return named
    hosts = job_host_names(site)
    if not hosts:
        raise HostctlError("no host runs jobs: nowhere to keep the admission lock")
    return hosts[0]


def project_hosts(site: m.Site, project: str) -> list[str]:
    """The hosts some job of `project` may run on (where its runs and their shares are), and
    those its GPU services run on (their GPU time is in its budget)."""
    names = {h.name for w in site.jobs if w.project == project
             for h in eligible_hosts(w, site.inventory)}
    names |= {i.host.name for w in site.workloads if not w.is_job and w.project == project
              and gpus_needed(w, site.inventory) for i in service_instances(w, site.inventory)}
    return [h for h in site.inventory.hosts if h in names]


def usage_hosts(site: m.Site) -> list[str]:
    """Every host that keeps GPU time of some project: job hosts and GPU service hosts."""
    names = {h for p in {w.project for w in site.workloads} for h in project_hosts(site, p)}
    return [h for h in site.inventory.hosts if h in names]


def hosts_needed(site: m.Site, project: str) -> list[str]:
    """Every host an admission of `project` talks to (its job hosts and the ledger host);
    none when the project has no quota."""
    if not Q.governs(site.inventory.projects.projects.get(project)):
        return []
    return sorted({*project_hosts(site, project), ledger_host(site)},
                  key=list(site.inventory.hosts).index)


def _sh(runner: Runner, lines: list[str], timeout: float) -> str:
    res = runner.run(["sh", "-s"], stdin=H.script(lines).encode(), timeout=timeout)
    return res.stdout


@contextmanager
def fleet_lock(runners: Mapping[str, Runner | RunnerError], host: str, record: str,
               ) -> Iterator[None]:
    """Hold the admission lock on `host` for the duration of the block."""
    runner = runners.get(host)
    if runner is None or isinstance(runner, RunnerError):
        why = f": {runner}" if isinstance(runner, RunnerError) else ""
        raise HostctlError(f"the admission lock is kept on {host}, which could not be "
                           f"reached{why}; runs of projects with a quota wait for it")
    token = secrets.token_hex(8)
    out = _sh(runner, Q.lock_lines(record, token), Q.LOCK_WAIT_S + 30)
    if "@@admission locked" not in out:
        holder = out.partition("@@admission busy")[2].strip()
        raise HostctlError(f"{host}: another admission held the lock for {Q.LOCK_WAIT_S} s"
                           + (f" ({holder[:200]})" if holder else "") + "; try again")
    try:
        yield
    finally:
        with suppress(RunnerError):  # else it expires by itself (LOCK_STALE_S)
            _sh(runner, Q.unlock_lines(token), 30)


# Where runs that must wait go instead, given the project's admitted use per host (None: stay).
Move = Callable[[Mapping[str, Q.Amount]], Mapping[str, Sequence[H.RunRequest]] | None]


@dataclass(frozen=True)
class Outcome:
    """What an admission decided for the new runs."""

    admitted: bool  # they start as soon as their host has room (False: they wait)
    used: Q.Amount  # the project's use (services and admitted runs) before them
    limit: Q.Limit
    ahead: int  # runs waiting for the quota before them
    gpu_ms: int  # the project's GPU time this month

    def waits_text(self, project: str) -> str:
        return (f"waits for project {project}'s quota: {Q.use_text(self.limit, self.used)} "
                "in use (runs and services)"
                + (f", {self.ahead} run(s) waiting before it" if self.ahead else ""))


@dataclass
class Admission:
    """The admission of one job's runs: who submits, at what priority, with what reasons."""

    site: m.Site
    w: m.Workload
    runners: Mapping[str, Runner | RunnerError]
    lock_record: str
    audit_base: Mapping[str, Any]
    priority: str = ""  # "" = the project's
    no_wait: bool = False
    over_budget: str = ""
    clock: Callable[[], float] = time.time
    _nudged: float = field(default=0.0, init=False)

    @property
    def listed(self) -> ProjectQuota | None:
        """The project's `projects:` entry (its priority and owners), if any."""
        return self.site.inventory.projects.projects.get(self.w.project)

    @property
    def quota(self) -> ProjectQuota | None:
        """The entry when it has a limit or a budget to admit by (Q.governs)."""
        listed = self.listed
        return listed if Q.governs(listed) else None

    def prepare(self, req: H.RunRequest) -> H.RunRequest:
        """The request as this admission queues it: its priority, held when it has a quota
        (its host lifts the hold once its grant arrives, in the same round trip)."""
        listed = self.listed
        prio = self.priority or (listed.priority if listed else "normal")
        return replace(req, priority=prio, hold="quota" if self.quota else "")

    def submit(self, batches: Mapping[str, Sequence[H.RunRequest]],
               submit_lines: Callable[[Sequence[H.RunRequest]], list[str]],
               move: Move | None = None,
               ) -> tuple[dict[str, str | Exception], Outcome | None]:
        """Queue `batches` ({host: requests}); with a quota, under the fleet lock with the
        grants. ({host: its answer or what went wrong}, the admission's outcome or None).

        When they have to wait, `move` (given the project's admitted use per host) may put
        them elsewhere: on a host where the project's runs are, they start the moment one
        of those ends, with no hostctl around (hosts never talk to each other)."""
        quota = self.quota
        if quota is None:
            return self._send({h: submit_lines(b) for h, b in batches.items()}), None
        project = self.w.project
        limit = Q.Limit.of(quota)
        started = time.monotonic()
        with fleet_lock(self.runners, ledger_host(self.site), self.lock_record):
            settled = self._settle(project)
            now = int(self.clock() * 1000)
            used_ms = month_gpu_ms(self.site, settled).get(project, 0)
            spent = Q.budget_error(project, quota, used_ms, now) if batches else None
            refusal = None if self.over_budget else spent
            if spent is not None and self.over_budget:
                # Passed: the reason goes with each run and to the audit log.
                batches = {h: [replace(r, over_budget=self.over_budget) for r in rs]
                           for h, rs in batches.items()}
            waiting = [r for s in settled.values() for r in s.held.get(project, [])]
            admitted = {h: s.admitted.get(project, Q.Amount()) for h, s in settled.items()}
            ask = Q.run_ask(self.w, self.site.inventory)
            services = Q.services_use(self.site, project)

            def decide(batches: Mapping[str, Sequence[H.RunRequest]]) -> Q.Grants:
                new = [Q.Waiting(h, r.id, self.prepare(r).priority, now, ask)
                       for h, rs in batches.items() for r in rs]
                return Q.grant(limit, services, admitted, waiting, now,
                               new if refusal is None else [])

            decided = decide(batches)
            if refusal is None and not decided.admitted and move is not None:
                moved = move(admitted)
                if moved is not None:
                    batches = moved
                    decided = decide(batches)
            if refusal is None and self.no_wait and batches and not decided.admitted:
                refusal = (f"project {project}'s quota is in use: "
                           f"{Q.use_text(limit, decided.used)} (runs and services)"
                           + (f", {decided.ahead} run(s) waiting before it" if decided.ahead
                              else "") + "; without --no-wait the run waits for it")
            if time.monotonic() - started > Q.ADMISSION_DEADLINE_S:
                raise HostctlError("the admission took longer than "
                                   f"{Q.ADMISSION_DEADLINE_S:.0f} s (slow hosts?): nothing "
                                   "was queued; try again")
            scripts = {h: Q.grant_lines(project, decided.grants.get(h, Q.Amount()), limit)
                       for h in settled}
            if refusal is None:
                for h, reqs in batches.items():
                    audit = self._audit(h, reqs, used_ms) if spent is not None else []
                    scripts[h] = [*scripts.get(h, []), *audit, *submit_lines(reqs)]
            answers = self._send(scripts)
        if refusal is not None:
            raise HostctlError(refusal)
        outcome = Outcome(decided.admitted, decided.used, limit, decided.ahead, used_ms)
        return {h: answers[h] for h in batches}, outcome

    def rebalance(self) -> None:
        """Settle the project and grant what is free to its waiting runs (after a cancel)."""
        self.submit({}, lambda reqs: [])

    def nudge(self, held: bool) -> None:
        """While hostctl waits for runs of which some are held for the quota: settle again
        now and then (at most every NUDGE_S), so that the project's share freed on another
        host reaches them. A settle that fails is tried again at the next nudge."""
        now = time.monotonic()
        if not held or self.quota is None or now - self._nudged < NUDGE_S:
            return
        self._nudged = now
        with suppress(HostctlError):
            self.rebalance()

    def _settle(self, project: str) -> dict[str, Q.Settled]:
        hosts = project_hosts(self.site, project)
        live = {h: self.runners[h] for h in hosts if h in self.runners}
        missing = [h for h in hosts if h not in self.runners]
        seen = run_parallel(live, lambda r: Q.parse_settle(
            r.host, _sh(r, Q.settle_lines([project]), SETTLE_TIMEOUT)))
        bad = [f"{h}: {v}" for h, v in seen.items() if isinstance(v, Exception)]
        bad += [f"{h}: not connected" for h in missing]
        if bad:
            # Its runs cannot be counted, nor its share taken back: nothing may be granted.
            raise HostctlError(f"project {project} has a quota, and its runs on every host "
                               f"its jobs run on must be counted; not reached: {'; '.join(bad)}")
        out = {h: v for h, v in seen.items() if isinstance(v, Q.Settled)}
        short = [h for h, v in out.items() if project not in v.admitted]
        if short:  # an answer without the project's use cannot be counted as none
            raise HostctlError(f"project {project}: no settle answer from {', '.join(short)}; "
                               "nothing was queued; try again")
        return out

    def _audit(self, host: str, reqs: Sequence[H.RunRequest], used_ms: int) -> list[str]:
        if not self.over_budget:
            return []
        quota = self.quota
        budget = quota.gpu_hours_per_month if quota else None
        record = audit_record(self.audit_base, host, "over-budget", self.over_budget, [],
                              action="run", project=self.w.project, job=self.w.name,
                              runs=[r.id for r in reqs],
                              gpu_hours_used=round(Q.gpu_hours(used_ms), 3),
                              gpu_hours_budget=budget)
        return append_audit_lines(record)

    def _send(self, scripts: Mapping[str, list[str]]) -> dict[str, str | Exception]:
        live = {h: self.runners[h] for h in scripts}
        return run_parallel(live, lambda r: _sh(r, scripts[r.host], SETTLE_TIMEOUT))


# -- reading use (hostctl projects) ----------------------------------------------------------

def month_gpu_ms(site: m.Site, settled: Mapping[str, Q.Settled]) -> dict[str, int]:
    """GPU-milliseconds this month per project: its runs, and its services' GPU leases."""
    unit_project = Q.unit_projects(site)
    out: dict[str, int] = {}
    for s in settled.values():
        for project, ms in s.gpu_ms.items():
            out[project] = out.get(project, 0) + ms
        for unit, ms in s.svc_gpu_ms.items():
            if unit in unit_project:
                out[unit_project[unit]] = out.get(unit_project[unit], 0) + ms
    return out


def month_gpu_model_ms(site: m.Site, settled: Mapping[str, Q.Settled]
                       ) -> dict[str, dict[str, int]]:
    """The same time per project by GPU model ("": GPUs of no model), for its cost."""
    unit_project = Q.unit_projects(site)
    out: dict[str, dict[str, int]] = {}
    for s in settled.values():
        pairs = [*s.run_model_ms.items(),
                 *(((unit_project[u], md), ms) for (u, md), ms in s.svc_model_ms.items()
                   if u in unit_project)]
        for (project, model), ms in pairs:
            mine = out.setdefault(project, {})
            mine[model] = mine.get(model, 0) + ms
    return out


def read_usage(runners: Mapping[str, Runner | RunnerError]) -> dict[str, Q.Settled | Exception]:
    return run_parallel(runners, lambda r: Q.parse_settle(
        r.host, _sh(r, Q.usage_lines(), SETTLE_TIMEOUT)))
