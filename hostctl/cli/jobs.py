"""`hostctl run`, `hostctl jobs` and `hostctl cancel`: job runs on the hosts' run queues.

Heavy imports stay inside commands, so `hostctl --help` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import click

from hostctl.cli.options import inventory_option, json_option

DAY_MS = 24 * 3600 * 1000
RECENT_RUNS = 50
PRIORITIES = ("high", "normal", "low")  # hostctl.spec.sections.projects.PRIORITIES


def _connected(site: Any, hosts: Iterable[str]) -> AbstractContextManager[Any]:
    """hosts.session: the same runners (and connect errors) as deploy, one per host."""
    # imported here: keeps start-up fast (it brings the SSH runner, fabric and paramiko)
    from hostctl.hosts.session import session

    return session(site, hosts)


def _err(text: str) -> None:
    click.secho(text, err=True, fg="red")


def _note(text: str) -> None:
    click.echo(text, err=True)


@click.command("run")
@inventory_option
@click.argument("job", required=False)
@click.option("--host", "host", metavar="H", help="Run on this host (default: where it fits).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="An environment variable of this run (repeatable). Not for secrets.")
@click.option("-f", "--follow", is_flag=True,
              help="Print the run's output as it comes, until it ends (implies --wait).")
@click.option("--wait", is_flag=True, help="Wait for the run to end; exit with its status.")
@click.option("--shards", type=click.IntRange(1, 10000), metavar="N",
              help="Split into N runs over every eligible host (default: the spec's shards).")
@click.option("--max-parallel", type=click.IntRange(1), metavar="N",
              help="At most N shards at once (default: as many as the hosts have room for).")
@click.option("--retry-failed", "retry_group", metavar="RUN_GROUP",
              help="Run again the shards of RUN_GROUP that did not succeed (or were never "
                   "queued), with the group's --set values.")
@click.option("--experiment", metavar="NAME",
              help="The experiment the run belongs to (default: the git branch of the "
                   "inventory's repository, else the job's name).")
@click.option("--note", metavar="TEXT", help="A one-line description kept with the run.")
@click.option("--rerun", "rerun_id", metavar="RUN_ID",
              help="Run RUN_ID again: same job, parameters, experiment and image id.")
@click.option("--priority", type=click.Choice(PRIORITIES),
              help="Its place in the host's queue (default: its project's, else normal).")
@click.option("--no-wait", "no_wait", is_flag=True,
              help="Refuse the run, instead of queueing it, when its project's quota is "
                   "in use.")
@click.option("--over-budget", "over_budget", metavar="REASON",
              help="Run although the project used its monthly GPU-hours; the reason goes "
                   "to the host's audit log.")
@json_option
def run_cmd(inventory: str, job: str | None, host: str | None, sets: tuple[str, ...],
            follow: bool, wait: bool, shards: int | None, max_parallel: int | None,
            retry_group: str | None, experiment: str | None, note: str | None,
            rerun_id: str | None, priority: str | None, no_wait: bool,
            over_budget: str | None, as_json: bool) -> None:
    """Start a run of JOB: queued on the host with room, started as soon as it fits.

    A run holds specific GPUs while it runs (none are ever shared); when none are free it
    waits in that host's queue: highest priority first (--priority, rising with the time
    it waits), first come first served within one. Its record stays on the host
    (`hostctl jobs`). With --wait or --follow, hostctl exits with the run's exit status
    (124 timed out, 130 cancelled).

    With shards (the spec's `shards:` or --shards N), the N runs spread over every eligible
    host, each told HOSTCTL_SHARD_INDEX and HOSTCTL_SHARD_COUNT; hostctl stays until all
    have ended, shows their progress, then a summary, and exits 1 if any failed.

    Every run records its experiment, --note, parameters (the spec's env and --set values,
    never secrets), the image id it ran, the spec hash and the specs' git revision, and the
    metrics it writes as JSON lines to the file named by $HOSTCTL_METRICS: `hostctl runs`
    finds them, `hostctl compare` puts them side by side.

    A project with a quota (`projects:` in the inventory) admits a run only while its runs
    and services together stay within it, on every host; otherwise the run waits for the
    quota (or, with --no-wait, is refused), and starts when runs of the project end. A
    project that used its monthly GPU-hours is refused until the month ends (an owner may
    pass with --over-budget). `hostctl docs job` states the queue's rules.
    """
    # imported here: keeps `hostctl --help` and start-up fast
    from hostctl.errors import HostctlError
    from hostctl.jobs import plan as P
    from hostctl.jobs import provenance as PV
    from hostctl.validate import load_site

    site = load_site(inventory)
    env = P.parse_sets(sets)
    if over_budget is not None:
        PV.check_text("--over-budget", over_budget, PV.MAX_NOTE)
    rules = Rules(priority or "", no_wait, over_budget or "")
    if experiment is not None:
        PV.check_text("--experiment", experiment, PV.MAX_EXPERIMENT)
    if note is not None:
        PV.check_text("--note", note, PV.MAX_NOTE)
    git = PV.git_info(os.path.dirname(os.path.abspath(site.inventory.file)))
    if rerun_id is not None:
        P.check_run_id(rerun_id)
        if sets or shards or retry_group:
            raise click.UsageError("--rerun repeats the run's own parameters: drop --set, "
                                   "--shards and --retry-failed")
        _rerun(site, job, rerun_id, host, experiment, note, git, follow, wait, as_json, rules)
        return
    if retry_group is not None:
        P.check_run_id(retry_group)
        if sets or shards:
            raise click.UsageError("--retry-failed repeats the group's own --set values and "
                                   "shards; drop --set and --shards")
        _retry_failed(site, job, retry_group, host, max_parallel, as_json, note, git, rules)
        return
    if job is None:
        raise click.UsageError("give a JOB (or --retry-failed RUN_GROUP, or --rerun RUN_ID)")
    w = P.find_job(site, job)
    P.check_sets_for(w, env)
    n = shards or w.shards
    if n > 1 and (follow or host or no_wait):
        raise HostctlError("--follow, --host and --no-wait are for a single run; a sharded "
                           "run spreads over every eligible host")
    origin = PV.RunOrigin(experiment=PV.experiment_name(experiment, git, w.name),
                          description=note or "",
                          params=tuple(PV.run_params(w.env, env).items()), git=git)
    hosts = [h.name for h in P.job_hosts(site, w, host)]
    rules.check_owner(site, w)
    with _connected(site, rules.hosts(site, w, hosts)) as conn:
        ready = _ready(site, w, {h: conn.runners[h] for h in hosts})
        admission = rules.admission(site, w, conn)
        if n > 1:
            code = _run_shards(site, w, conn.runners, ready, P.new_group(), n,
                               range(n), 0, env, max_parallel, as_json, conn.who,
                               origin=origin, admission=admission)
            sys.exit(code)
        code = _run_single(site, w, conn.runners, ready, env, follow, wait or follow, as_json,
                           conn.who, origin=origin, admission=admission)
    sys.exit(code)


@dataclass(frozen=True)
class Rules:
    """What `hostctl run` says about admission: --priority, --no-wait, --over-budget."""

    priority: str
    no_wait: bool
    over_budget: str

    def check_owner(self, site: Any, w: Any) -> None:
        """Who may submit, and --over-budget only where there is a budget to pass."""
        # imported here: keeps `hostctl --help` and start-up fast
        from hostctl.errors import HostctlError
        from hostctl.jobs import quota as Q

        quota = site.inventory.projects.projects.get(w.project)
        Q.check_owner(w.project, quota, Q.identity())
        if self.over_budget and (quota is None or quota.gpu_hours_per_month is None):
            raise HostctlError(f"--over-budget: project {w.project} has no GPU-hour budget "
                               "(projects: gpu_hours_per_month); drop the option")

    def hosts(self, site: Any, w: Any, job_hosts: Iterable[str]) -> list[str]:
        """The job's hosts, and those its project's admission talks to."""
        # imported here: keeps `hostctl --help` and start-up fast
        from hostctl.jobs.admission import hosts_needed

        extra = hosts_needed(site, w.project)
        return [*job_hosts, *(h for h in extra if h not in job_hosts)]

    def admission(self, site: Any, w: Any, conn: Any) -> Any:
        # imported here: keeps `hostctl --help` and start-up fast
        from hostctl.jobs.admission import Admission

        return Admission(site, w, conn.runners, conn.lock_record, conn.audit_base(),
                         priority=self.priority, no_wait=self.no_wait,
                         over_budget=self.over_budget)


def _docker_run(site: Any, w: Any) -> Any:
    """(host, run id) -> the job unit's `docker run` argv there, as the run record keeps it."""
    # imported here: keeps `hostctl --help` and start-up fast
    from hostctl.observability.logging_args import log_args
    from hostctl.render.site import job_run_argv

    inv = site.inventory
    return lambda host, run_id: job_run_argv(w, host, inv.site,
                                             log_args(inv.logging, inv, w), run_id)


def _rerun(site: Any, job: str | None, rerun_id: str, host: str | None,
           experiment: str | None, note: str | None, git: Any, follow: bool, wait: bool,
           as_json: bool, rules: Rules) -> None:
    """The run again: its job, parameters and experiment, exactly its image id."""
    # imported here: keeps `hostctl --help` and start-up fast
    from hostctl.errors import HostctlError
    from hostctl.hosts.images import LocalImages
    from hostctl.jobs import ops
    from hostctl.jobs import plan as P
    from hostctl.jobs import provenance as PV

    names = P.job_host_names(site)
    extra = [h for w in site.jobs for h in rules.hosts(site, w, names) if h not in names]
    with _connected(site, [*names, *dict.fromkeys(extra)]) as conn:
        first, _ = ops.find_run(site, {h: conn.runners[h] for h in names}, rerun_id)
        if job is not None and job != first.job:
            raise HostctlError(f"run {rerun_id} is a run of {first.job}, not {job}")
        w = P.find_job(site, first.job)
        rules.check_owner(site, w)
        if not first.image_id.startswith("sha256:"):
            raise HostctlError(f"run {rerun_id} has no image id on record (it ran before "
                               "hostctl recorded them, or never started): it cannot be run "
                               f"again as it was; `hostctl run {first.job}` starts a new run")
        params = {k: v for k, v in first.params.items() if not k.startswith("HOSTCTL_")}
        origin = PV.RunOrigin(
            experiment=experiment or first.experiment or PV.experiment_name(None, git, w.name),
            description=note or first.description, params=tuple(sorted(params.items())),
            git=git, rerun_of=first.id, pin_image=first.image_id)
        hosts = P.job_hosts(site, w, host)
        ready = _ready(site, w, {h.name: conn.runners[h.name] for h in hosts})
        local = LocalImages()

        def prepare(runner: Any, target: Any) -> None:
            if ops.ensure_image(runner, target, first.image_id, first.id, local):
                _note(f"sent image {first.image_id} to {target.name}")

        code = _run_single(site, w, conn.runners, ready, params, follow, wait or follow,
                           as_json, conn.who, origin=origin, prepare=prepare,
                           admission=rules.admission(site, w, conn))
    sys.exit(code)


def _ready(site: Any, w: Any, runners: Mapping[str, Any]) -> dict[str, Any]:
    # imported here: keeps `hostctl --help` and start-up fast
    from hostctl.errors import HostctlError
    from hostctl.jobs import hostside as H
    from hostctl.jobs import ops
    from hostctl.jobs import plan as P

    check_runtime = bool(w.resources.gpus) and any(
        P.gpu_mode(site.inventory.hosts[h]) != "env" for h in runners)
    seen = ops.read_hosts(site, runners, install=True, select=(H.ACTIVE,), jobs=[w.name],
                          runtimes=check_runtime)
    ready, warnings, errors = ops.preflight(site, w, seen)
    for text in warnings:
        _note(f"warning: {text}")
    if not ready:
        raise HostctlError("; ".join(errors) or "no host can run it")
    for text in errors:
        _err(f"error: {text} (left out)")
    return ready


def _run_single(site: Any, w: Any, runners: Mapping[str, Any], ready: Mapping[str, Any],
                env: Mapping[str, str], follow: bool, wait: bool, as_json: bool,
                by: str, *, origin: Any, prepare: Any = None, admission: Any = None) -> int:
    # imported here: keeps `hostctl --help` and start-up fast
    from hostctl.jobs import ops
    from hostctl.jobs import view as V

    started = ops.start_one(site, w, runners, ready, by=by, env=env, origin=origin,
                            docker_run=_docker_run(site, w), prepare=prepare,
                            admission=admission)
    rec = started.record
    state = V.state_text(rec, {}) if rec else "queued"
    if rec is not None and rec.state == "queued" and rec.hold:
        state += f" ({started.admission.waits_text(w.project)})" if started.admission else ""
    elif rec is not None and rec.state == "queued":
        ahead = sum(1 for r in ready[started.host].runs if r.state == "queued")
        state += f" ({ahead} ahead of it in {started.host}'s queue)" if ahead else ""
    if not as_json:
        click.echo(f"run {started.run_id} of {w.name} on {started.host}: {state}")
    if not wait:
        if as_json:
            click.echo(json.dumps({"run": started.run_id, "host": started.host,
                                   "state": rec.state if rec else "queued"}, indent=2))
        return 0
    host = site.inventory.hosts[started.host]
    runner = ops.live_runner(runners, started.host)
    deadline = time.monotonic() + ops.deadline_for(w)

    def changed(r: Any) -> None:
        if not as_json and not r.final:
            _note(f"run {r.id}: {V.state_text(r, {})}" + (f" (GPUs {r.gpus})" if r.gpus else ""))

    if follow:
        final = _follow(runner, host, started.run_id, w, deadline, changed, admission)
    else:
        final = ops.wait_run(runner, host, started.run_id, deadline=deadline, on_change=changed,
                             admission=admission)
    if as_json:
        click.echo(json.dumps(V.record_json(final), indent=2))
    else:
        click.echo(f"run {final.id} {final.state} after {V.duration(final.duration_ms)} "
                   f"(exit {final.exit or '-'})" + (f": {final.note}" if final.note else ""))
    return final.exit_status()


def _follow(runner: Any, host: Any, run_id: str, w: Any, deadline: float,
            changed: Any, admission: Any = None) -> Any:
    """Print the run's journal while polling its record; the last lines after it ends."""
    # imported here: keeps `hostctl --help` and start-up fast
    from hostctl.ops import day2

    unit = f"hostctl-job-{w.name}@{run_id}.service"
    reader = day2.LogReader({host.name: runner}, [day2.LogTarget(host.name, (unit,))])
    entries, errors = reader.first(0, follow=True)
    for e in entries:
        click.echo(day2.format_entry(e, False))
    last = None
    while True:
        rec = _peek(runner, host, run_id)
        if last is None or (rec.state, rec.attempt) != (last.state, last.attempt):
            changed(rec)
        last = rec
        more, errors = reader.poll()
        for e in more:
            click.echo(day2.format_entry(e, False))
        for text in errors:
            _err(f"error: {text}")
        if rec.final:
            return rec
        if time.monotonic() >= deadline:
            return rec
        if admission is not None:
            admission.nudge(bool(rec.hold))
        time.sleep(1.0)


def _peek(runner: Any, host: Any, run_id: str) -> Any:
    # imported here: keeps `hostctl --help` and start-up fast
    from hostctl.errors import HostctlError
    from hostctl.jobs import ops

    hj = ops.read_host(runner, host, install=False, select=(run_id,))
    rec = next((r for r in hj.runs if r.id == run_id), None)
    if rec is None:
        raise HostctlError(f"{host.name}: run {run_id} has no record there any more")
    return rec


def _run_shards(site: Any, w: Any, runners: Mapping[str, Any], ready: Mapping[str, Any],
                group: str, shards: int, indexes: Iterable[int], retry: int,
                env: Mapping[str, str], max_parallel: int | None, as_json: bool, by: str,
                known: Iterable[Any] = (), *, origin: Any, admission: Any = None) -> int:
    # imported here: keeps `hostctl --help` and start-up fast
    from hostctl.jobs import compare as C
    from hostctl.jobs import ops
    from hostctl.jobs import view as V

    indexes = list(indexes)
    if not as_json:
        click.echo(f"group {group}: {len(indexes)} of {shards} shard(s) of {w.name} over "
                   f"{', '.join(ready)}" + (f", at most {max_parallel} at once"
                                            if max_parallel else ""))
    live = sys.stderr.isatty() and not as_json
    view: Any = V.LiveShards(sys.stderr, shards) if live else (
        V.PlainShards(sys.stderr) if not as_json else (lambda s: None))
    try:
        if live:
            with view:
                state = ops.run_group(site, w, runners, ready, group=group, shards=shards,
                                      indexes=indexes, retry=retry, by=by, env=env,
                                      max_parallel=max_parallel, observe=view, known=known,
                                      origin=origin, docker_run=_docker_run(site, w),
                                      admission=admission)
        else:
            state = ops.run_group(site, w, runners, ready, group=group, shards=shards,
                                  indexes=indexes, retry=retry, by=by, env=env,
                                  max_parallel=max_parallel, observe=view, known=known,
                                  origin=origin, docker_run=_docker_run(site, w),
                                  admission=admission)
    except KeyboardInterrupt:
        _err(f"interrupted: shards already queued go on on their hosts; `hostctl run "
             f"--retry-failed {group}` runs the ones not queued yet, and any that failed")
        return 130
    latest = state.latest()
    # One table for the group's metrics (mean, min, max over shards, and where the extremes
    # are), not one per shard.
    spreads = C.group_summary(latest.values())
    if as_json:
        click.echo(json.dumps({"group": group, "shards": shards, "ok": all(
            r.state == "succeeded" for r in latest.values()) and len(latest) == shards,
            "runs": [V.record_json(r) for r in latest.values()],
            "metrics": C.group_summary_json(spreads)}, indent=2))
    else:
        for line in V.summary_lines(latest, shards, state.lost):
            click.echo(line)
        lines = C.group_summary_lines(spreads, shards)
        if lines:
            click.echo("")
            for line in lines:
                click.echo(line)
    ok = len(latest) == shards and all(r.state == "succeeded" for r in latest.values())
    if not ok and not as_json:
        click.echo(f"to run the failed shards again: hostctl run --retry-failed {group}")
    return 0 if ok else 1


def _retry_failed(site: Any, job: str | None, group: str, host: str | None,
                  max_parallel: int | None, as_json: bool, note: str | None,
                  git: Any, rules: Rules) -> None:
    # imported here: keeps `hostctl --help` and start-up fast
    from hostctl.errors import HostctlError
    from hostctl.jobs import ops
    from hostctl.jobs import plan as P
    from hostctl.jobs import provenance as PV

    candidates = [P.find_job(site, job)] if job else list(site.jobs)
    names = {h.name for w in candidates for h in P.job_hosts(site, w)} if not host else {host}
    names = {h for w in candidates for h in rules.hosts(site, w, sorted(names))}
    with _connected(site, names) as conn:
        records, errors = ops.group_records(site, conn.runners, group)
        for text in errors:
            _err(f"error: {text}")
        if not records:
            raise HostctlError(f"no runs of group {group} on any host")
        w = P.find_job(site, records[0].job)
        rules.check_owner(site, w)
        indexes = P.shards_to_retry(records)
        shards = max(r.shards for r in records)
        if not indexes:
            click.echo(f"group {group}: no failed shard to run again")
            sys.exit(0)
        retry = max(P.retry_number(r.id) for r in records) + 1
        # Every run of a group has the same --set values: read them from a failed one.
        source = (P.failed_shards(records) or records)[0]
        env = ops.run_env(ops.live_runner(conn.runners, source.host), source.id)
        # The group's experiment and parameters go on: its summary compares like with like.
        origin = PV.RunOrigin(
            experiment=source.experiment or PV.experiment_name(None, git, w.name),
            description=note or source.description,
            params=tuple(sorted((source.params or PV.run_params(w.env, env)).items())),
            git=git)
        ready = _ready(site, w, {h: r for h, r in conn.runners.items()
                                 if h in {x.name for x in P.job_hosts(site, w, host)}})
        code = _run_shards(site, w, conn.runners, ready, group, shards,
                           indexes, retry, env, max_parallel, as_json,
                           conn.who, known=records, origin=origin,
                           admission=rules.admission(site, w, conn))
    sys.exit(code)


@click.command("jobs")
@inventory_option
@click.option("--all", "show_all", is_flag=True,
              help="Every run the hosts still keep (the last `jobs: keep_runs` of each job), "
                   "not only recent ones.")
@click.option("--project", metavar="P", help="Only runs of this project's jobs.")
@click.option("--group", metavar="RUN_GROUP", help="Only the runs of this group.")
@json_option
def jobs_cmd(inventory: str, show_all: bool, project: str | None, group: str | None,
             as_json: bool) -> None:
    """List runs on every host: queued (with their place in line), running, and ended.

    Per run: id, job, host, GPUs held, state, start (UTC), duration, exit status. Without
    --all, runs that ended more than a day ago are left out (the latest 50 shown). Then
    each scheduled job's next run time. Exit status 1 when a host cannot be read.
    """
    # imported here: keeps `hostctl --help` and start-up fast
    from hostctl.jobs import ops
    from hostctl.jobs import plan as P
    from hostctl.jobs import view as V
    from hostctl.spec.placement import schedule_host
    from hostctl.validate import load_site

    site = load_site(inventory)
    jobs = [w for w in site.jobs if project is None or w.project == project]
    hosts = P.job_host_names(site)
    timers: dict[str, list[str]] = {}
    for w in jobs:
        if w.schedule:
            th = schedule_host(w, site.inventory)
            if th is not None:
                timers.setdefault(th.name, []).append(w.name)
    select = (group, f"{group}-*") if group else ()
    if group:
        P.check_run_id(group)
    with _connected(site, hosts) as conn:
        seen = ops.read_listing(site, conn.runners, select, timers)
    records: list[Any] = []
    errors: list[str] = []
    now = int(time.time() * 1000)
    timer_rows = []
    foreign: list[tuple[str, Any]] = []  # GPUs busy with processes hostctl did not start
    for name, hj in seen.items():
        if isinstance(hj, Exception):
            errors.append(str(hj))
            continue
        now = max(now, hj.now_ms)
        records += hj.runs
        foreign += [(name, p) for p in hj.foreign]
        for job in timers.get(name, []):
            t = hj.timers.get(f"hostctl-job-{job}.timer")
            if t is not None:
                timer_rows.append((job, name, t))
    if project is not None:
        records = [r for r in records if r.project == project]
    if not show_all and not group:
        records = [r for r in records if r.active or now - (r.ended or r.submitted) < DAY_MS]
        records = records[-RECENT_RUNS:]
    records.sort(key=lambda r: (r.submitted, r.seq, r.id))
    if as_json:
        click.echo(json.dumps({"ok": not errors, "errors": errors,
                               "runs": [V.record_json(r) for r in records],
                               "schedules": [{"job": j, "host": h, "next_ms": t.next_ms,
                                              "last_ms": t.last_ms} for j, h, t in timer_rows],
                               **({"foreign_gpu_processes": [V.foreign_json(h, p)
                                                             for h, p in foreign]}
                                  if foreign else {})},
                              indent=2))
    else:
        for text in errors:
            _err(f"error: {text}")
        if records:
            for line in V.run_lines(records, now):
                click.echo(line)
        else:
            click.echo("no runs" + ("" if show_all else " in the last day (--all for older)"))
        lines = V.timer_lines(timer_rows)
        if lines:
            click.echo("")
            for line in lines:
                click.echo(line)
        busy = [line for h, p in foreign for line in V.foreign_lines(h, [p])]
        if busy:
            click.echo("")
            for line in busy:
                click.echo(line)
    sys.exit(1 if errors else 0)


@click.command("cancel")
@inventory_option
@click.argument("run_id")
def cancel_cmd(inventory: str, run_id: str) -> None:
    """Cancel a run: a queued run never starts; a running one is stopped (its container
    too) and marked cancelled, and is not retried. Waits until it has stopped. What a run
    of a project with a quota held goes to the project's waiting runs at once."""
    # imported here: keeps `hostctl --help` and start-up fast
    from hostctl.errors import HostctlError
    from hostctl.jobs import ops
    from hostctl.jobs import plan as P
    from hostctl.jobs import view as V
    from hostctl.jobs.admission import Admission, hosts_needed
    from hostctl.jobs.quota import governs
    from hostctl.validate import load_site

    P.check_run_id(run_id)
    site = load_site(inventory)
    hosts = P.job_host_names(site)
    # A project with a quota gives what the run held to its waiting runs on every host.
    extra = {h for p in site.inventory.projects.projects for h in hosts_needed(site, p)}
    governed = {p for p, q in site.inventory.projects.projects.items() if governs(q)}
    with _connected(site, [*hosts, *sorted(extra - set(hosts))]) as conn:
        rec, _ = ops.find_run(site, {h: conn.runners[h] for h in hosts}, run_id)
        runner = ops.live_runner(conn.runners, rec.host)
        verdict = ops.cancel_run(runner, run_id)
        w = next((j for j in site.jobs if j.name == rec.job), None)
        if verdict == "stopping":
            limit = (w.stop_timeout if w else 10.0) + 60
            rec = ops.wait_run(runner, site.inventory.hosts[rec.host], run_id,
                               deadline=time.monotonic() + limit)
            verdict = rec.state
        if w is not None and w.project in governed:
            try:
                Admission(site, w, conn.runners, conn.lock_record, conn.audit_base()).rebalance()
            except HostctlError as exc:
                _err(f"warning: {exc}; what it held goes to waiting runs of {w.project} on "
                     f"{rec.host} now, elsewhere at the next `hostctl run` of the project")
    click.echo(f"run {run_id} on {rec.host}: {verdict}"
               + (f" after {V.duration(rec.duration_ms)}" if rec.duration_ms else ""))
    sys.exit(0 if verdict in ("cancelled", "succeeded", "failed", "timed-out") else 1)


COMMANDS = (run_cmd, jobs_cmd, cancel_cmd)
