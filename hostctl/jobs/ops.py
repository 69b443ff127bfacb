"""Job runs over connected runners (`{host: Runner | RunnerError}`): read, submit, wait,
follow, cancel, and run a group of shards to its end.

Tests drive these with recording runners or real sandbox hosts; the CLI with SSH runners.
Every loop is bounded by a deadline or a count, and sleeps through an injectable `sleep`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from hostctl.errors import HostctlError
from hostctl.hosts.images import LocalImages, push
from hostctl.jobs import host_files as HF
from hostctl.jobs import hostside as H
from hostctl.jobs import plan as P
from hostctl.jobs.admission import Admission, Outcome
from hostctl.jobs.provenance import RunOrigin
from hostctl.jobs.quota import Amount
from hostctl.jobs.records import RunRecord, latest_per_shard
from hostctl.runner.base import Runner, RunnerError
from hostctl.runner.pool import run_parallel
from hostctl.spec import model as m
from hostctl.spec.hashing import spec_hash

READ_TIMEOUT = 60.0
POLL_SECONDS = 0.5  # how often a shard group's hosts are asked how their runs are doing
WAIT_POLL_SECONDS = 1.0
# A run that ends at once is seen soon: the first polls of a wait come quicker (then every
# WAIT_POLL_SECONDS).
FIRST_POLLS = (0.1, 0.2, 0.3, 0.5)
MAX_POLL_FAILURES = 5  # consecutive failed polls before a host's runs are given up on
DEFAULT_DEADLINE = 7 * 24 * 3600.0  # jobs without a timeout: a week of waiting at most

Sleep = Callable[[float], None]
Clock = Callable[[], float]
# The job unit's `docker run` argv on a host for a run id (render.site.job_run_argv).
DockerRun = Callable[[m.Host, str], Sequence[str]]


def _script(*parts: list[str]) -> bytes:
    return H.script(*parts).encode()


def _fail(host: str, what: str, stdout: str, stderr: str) -> HostctlError:
    tail = (stderr.strip() or stdout.strip()).splitlines()
    return HostctlError(f"{host}: {what} failed: {tail[-1] if tail else 'no output'}")


def read_host(runner: Runner, host: m.Host, *, install: bool = True,
              select: Sequence[str] = (), jobs: Sequence[str] = (),
              timers: Sequence[str] = (), runtimes: bool = False,
              keep_runs: int = HF.DEFAULT_KEEP_RUNS,
              fields: Sequence[str] | None = None) -> H.HostJobs:
    """One round trip: install the queue helper when needed, then read the host's runs
    (with `fields`, of every run only those fields: H.read_lines)."""
    parts = [H.install_lines(HF.gpu_config(host, keep_runs))] if install else []
    parts.append(H.read_lines(select, jobs, timers, host.docker if runtimes else None,
                              fields))
    res = runner.run(["sh", "-s"], stdin=_script(*parts), timeout=READ_TIMEOUT)
    try:
        return H.parse_read(runner.host, res.stdout)
    except H.JobsReadError as exc:
        raise _fail(runner.host, "reading its runs", res.stdout, res.stderr) from exc


def read_hosts(site: m.Site, runners: Mapping[str, Runner | RunnerError],
               **kw: object) -> dict[str, H.HostJobs | Exception]:
    hosts = site.inventory.hosts
    kw.setdefault("keep_runs", site.inventory.jobs.keep_runs)
    return run_parallel(runners, lambda r: read_host(r, hosts[r.host], **kw))  # type: ignore[arg-type]


def read_listing(site: m.Site, runners: Mapping[str, Runner | RunnerError],
                 select: Sequence[str], timers: Mapping[str, Sequence[str]],
                 ) -> dict[str, H.HostJobs | Exception]:
    """Every host's runs (or those in `select`) and the timers of the jobs scheduled there.
    Installs the queue helper, so a host only deployed to gets it (its timers need it)."""
    hosts = site.inventory.hosts
    return run_parallel(runners, lambda r: read_host(
        r, hosts[r.host], select=select, keep_runs=site.inventory.jobs.keep_runs,
        timers=[f"hostctl-job-{job}.timer" for job in timers.get(r.host, ())]))


def submit(runner: Runner, requests: Sequence[H.RunRequest]) -> None:
    """Queue runs on one host (they start at once when they fit)."""
    res = runner.run(["sh", "-s"], stdin=_script(H.submit_lines(requests)),
                     timeout=READ_TIMEOUT)
    if "@@submitted" not in res.stdout:
        raise _fail(runner.host, "queueing runs", res.stdout, res.stderr)


def submit_and_read(runner: Runner, requests: Sequence[H.RunRequest], select: Sequence[str],
                    stderr: bool = True) -> H.HostJobs:
    """`submit`, then `read_host(install=False, select=...)`, in one round trip: the read
    runs once the runs are queued (and not when queueing failed). `stderr`: a failure to
    queue names stderr's last line (as `submit` does), else stdout's (as an admission's)."""
    lines = H.submit_lines(requests)
    queue = lines.pop()
    assert queue.endswith("&& echo '@@submitted'"), queue
    res = runner.run(["sh", "-s"], stdin=_script(lines, [f"if {queue}; then"],
                                                 H.read_lines(select), ["fi"]),
                     timeout=READ_TIMEOUT)
    if "@@submitted" not in res.stdout:
        raise _fail(runner.host, "queueing runs", res.stdout, res.stderr if stderr else "")
    try:
        return H.parse_read(runner.host, res.stdout)
    except H.JobsReadError as exc:
        raise _fail(runner.host, "reading its runs", res.stdout, res.stderr) from exc


def host_error(host: str, exc: Exception) -> str:
    """One line for a host that could not be read: hostctl's own message, else the host
    and what was raised."""
    return str(exc) if isinstance(exc, HostctlError) else f"{host}: {exc!r}"


def live_runner(runners: Mapping[str, Runner | RunnerError], host: str) -> Runner:
    runner = runners[host]
    if isinstance(runner, RunnerError):
        raise runner
    return runner


# -- checks before a run ----------------------------------------------------------------

def preflight(site: m.Site, w: m.Workload, seen: Mapping[str, H.HostJobs | Exception],
              ) -> tuple[dict[str, H.HostJobs], list[str], list[str]]:
    """(hosts ready to run `w`, warnings, errors): the host must have the CPUs, memory and
    GPUs a run asks (a host that never can is left out; when none can, one error says what
    each has), the job's unit must be deployed, and a host handing out real GPUs needs
    Docker's nvidia runtime."""
    ready: dict[str, H.HostJobs] = {}
    warnings: list[str] = []
    errors: list[str] = []
    too_small: list[str] = []
    want = spec_hash(w)
    for name, hj in seen.items():
        if isinstance(hj, Exception):
            errors.append(host_error(name, hj))
            continue
        short = P.never_fits(hj, w)
        if short is not None:
            too_small.append(short)
            continue
        host = site.inventory.hosts[name]
        if w.name not in hj.units:
            errors.append(f"{name}: {w.name} is not deployed there (`hostctl deploy` first)")
            continue
        if hj.units[w.name] != want:
            warnings.append(f"{name}: its unit of {w.name} was rendered from another version "
                            "of the spec; runs use what is deployed (`hostctl deploy` updates "
                            "it)")
        problem = H.runtime_problem(name, host.gpus, P.gpu_mode(host), hj.runtimes)
        if problem and w.resources.gpus:
            errors.append(problem)
            continue
        ready[name] = hj
    if too_small and ready:
        warnings += [f"{w.name} asks {P.asks_text(w)}; {text}: left out" for text in too_small]
    elif too_small:
        errors.append(P.fit_error(w, too_small))
    return ready, warnings, errors


# -- one run ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Started:
    run_id: str
    host: str
    record: RunRecord | None  # as the host had it right after queueing
    admission: Outcome | None = None  # with a project quota: what its admission decided


def start_one(site: m.Site, w: m.Workload, runners: Mapping[str, Runner | RunnerError],
              ready: Mapping[str, H.HostJobs], *, by: str, env: Mapping[str, str],
              run_id: str | None = None, origin: RunOrigin | None = None,
              docker_run: DockerRun | None = None,
              prepare: Callable[[Runner, m.Host], None] | None = None,
              admission: Admission | None = None) -> Started:
    """Queue one run on the host with the most room (or the shortest queue). `prepare` runs
    first on the chosen host (a rerun makes sure its image is there). With `admission`, the
    run gets its priority, and its project's quota admits it (hostctl.jobs.admission)."""
    rooms = [P.room(hj, w) for hj in ready.values()]
    host = P.pick_host(rooms)
    run_id = run_id or P.new_group()

    def build(name: str) -> H.RunRequest:
        target = site.inventory.hosts[name]
        argv = (lambda rid: docker_run(target, rid)) if docker_run else None
        return P.request(w, target, run_id, by=by, env=env, origin=origin, docker_run=argv)

    def move(admitted: Mapping[str, Amount]) -> dict[str, list[H.RunRequest]] | None:
        # A run that waits for its quota goes where its project's runs are (most first),
        # so it starts as one of them ends.
        there = [h for h in ready if admitted.get(h, Amount()) != Amount()]
        if not there or host in there or prepare is not None:
            return None
        best = max(there, key=lambda h: (admitted[h].gpus, admitted[h].cpu))
        return {best: [admission.prepare(build(best))]} if admission else None

    outcome = None
    if prepare is not None:
        prepare(live_runner(runners, host), site.inventory.hosts[host])
    if admission is None or admission.quota is None:
        # No quota to settle: queued and read back in one round trip.
        request = build(host) if admission is None else admission.prepare(build(host))
        after = submit_and_read(live_runner(runners, host), [request], (run_id,),
                                stderr=admission is None)
        return Started(run_id, host, next((r for r in after.runs if r.id == run_id), None))
    answers, outcome = admission.submit({host: [admission.prepare(build(host))]},
                                        H.submit_lines, move)
    host = next(iter(answers))
    _submitted(host, answers[host])
    runner = live_runner(runners, host)
    after = read_host(runner, site.inventory.hosts[host], install=False, select=(run_id,))
    return Started(run_id, host, next((r for r in after.runs if r.id == run_id), None),
                   outcome)


def _submitted(host: str, answer: str | Exception) -> None:
    if isinstance(answer, Exception):
        raise answer
    if "@@submitted" not in answer:
        raise _fail(host, "queueing runs", answer, "")


def find_run(site: m.Site, runners: Mapping[str, Runner | RunnerError], run_id: str,
             ) -> tuple[RunRecord, list[str]]:
    """The run's record from whichever host has it; errors of hosts that could not be read."""
    seen = read_hosts(site, runners, install=False, select=(run_id,))
    errors = []
    for hj in seen.values():
        if isinstance(hj, Exception):
            errors.append(str(hj))
            continue
        for r in hj.runs:
            if r.id == run_id:
                return r, errors
    hint = f" (not read: {'; '.join(errors)})" if errors else ""
    raise HostctlError(f"no run {run_id} on any host{hint}; `hostctl jobs --all` lists runs")


def poll_delay(polls: int, interval: float) -> float:
    """The pause after a wait's poll number `polls` (0 first): FIRST_POLLS, then `interval`
    (never longer than it)."""
    return min(FIRST_POLLS[polls], interval) if polls < len(FIRST_POLLS) else interval


def wait_run(runner: Runner, host: m.Host, run_id: str, *, deadline: float,
             on_change: Callable[[RunRecord], None] = lambda r: None,
             clock: Clock = time.monotonic, sleep: Sleep = time.sleep,
             interval: float = WAIT_POLL_SECONDS,
             admission: Admission | None = None) -> RunRecord:
    """Poll the run's record until it ends (or `deadline`, a clock() value, passes). While
    it waits for its project's quota, `admission` settles the project now and then."""
    last: RunRecord | None = None
    failures = 0
    polls = 0
    while True:
        try:
            hj = read_host(runner, host, install=False, select=(run_id,))
            failures = 0
            rec = next((r for r in hj.runs if r.id == run_id), None)
            if rec is None:
                raise HostctlError(f"{host.name}: run {run_id} has no record there any more")
            if last is None or (rec.state, rec.attempt) != (last.state, last.attempt):
                on_change(rec)
            last = rec
            if rec.final:
                return rec
            if admission is not None:
                admission.nudge(bool(rec.hold))
        except RunnerError:
            failures += 1
            if failures >= MAX_POLL_FAILURES:
                raise
        if clock() >= deadline:
            raise HostctlError(f"run {run_id} on {host.name} had not ended when hostctl "
                               "stopped waiting; it goes on (`hostctl jobs` shows it)")
        sleep(poll_delay(polls, interval))
        polls += 1


def cancel_run(runner: Runner, run_id: str) -> str:
    res = runner.run(["sh", "-s"], stdin=_script(H.cancel_lines(run_id)), timeout=READ_TIMEOUT)
    verdict = H.parse_cancel(res.stdout).get(run_id)
    if verdict is None:
        raise _fail(runner.host, f"cancelling {run_id}", res.stdout, res.stderr)
    return verdict


def deadline_for(w: m.Workload, waves: int = 1) -> float:
    """How long hostctl waits for runs of `w` at most: every attempt timing out, with its
    back-off, for each wave of runs; a week for jobs without a timeout."""
    if not w.timeout:
        return DEFAULT_DEADLINE
    per_run = (w.timeout + w.stop_timeout + 30) * (w.retries + 1) + 600 * w.retries
    return per_run * max(1, waves) + 300


# -- shard groups -------------------------------------------------------------------------

@dataclass
class GroupState:
    """What hostctl knows of a group's runs while it drives them."""

    group: str
    shards: int
    records: dict[str, RunRecord] = field(default_factory=dict)  # run id -> latest record
    placed: dict[str, str] = field(default_factory=dict)  # run id -> host
    lost: set[str] = field(default_factory=set)  # runs on hosts that stopped answering
    started_at: float = 0.0

    def outstanding(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for rid, host in self.placed.items():
            rec = self.records.get(rid)
            if rid not in self.lost and (rec is None or not rec.final):
                out[host] = out.get(host, 0) + 1
        return out

    def latest(self) -> dict[int, RunRecord]:
        return latest_per_shard(self.records.values())


Observer = Callable[[GroupState], None]


def run_group(site: m.Site, w: m.Workload, runners: Mapping[str, Runner | RunnerError],
              ready: Mapping[str, H.HostJobs], *, group: str, shards: int,
              indexes: Iterable[int], retry: int = 0, by: str = "",
              env: Mapping[str, str] | None = None, max_parallel: int | None = None,
              observe: Observer = lambda s: None, clock: Clock = time.monotonic,
              sleep: Sleep = time.sleep, interval: float = POLL_SECONDS,
              deadline: float | None = None, known: Iterable[RunRecord] = (),
              origin: RunOrigin | None = None,
              docker_run: DockerRun | None = None,
              admission: Admission | None = None) -> GroupState:
    """Run shards `indexes` of a group over the ready hosts until every one has ended.

    Each host gets what fits now plus as much again waiting in its own queue, topped up as
    runs end; one round trip per host per poll. `known` are earlier runs of the group
    (--retry-failed), so the summary covers every shard.
    """
    hosts = site.inventory.hosts
    state = GroupState(group, shards, started_at=clock())
    for r in known:
        state.records[r.id] = r
    slots = P.ShardSlots.from_rooms([P.room(hj, w) for hj in ready.values()], max_parallel)
    pending = deque(indexes)
    failures: dict[str, int] = {}
    total_slots = sum(slots.limits.values()) or 1
    end = deadline if deadline is not None else clock() + deadline_for(
        w, -(-len(pending) // total_slots))
    while True:
        give = slots.assign(len(pending), state.outstanding())
        batches = {h: [pending.popleft() for _ in range(n)] for h, n in give.items()}
        if batches:
            _submit_batches(site, w, runners, state, batches, pending, slots, group, shards,
                            retry, by, env or {}, origin, docker_run, admission)
        if not pending and not state.outstanding():
            observe(state)
            return state
        if not slots.limits:
            raise HostctlError(f"group {group}: no host left to run its shards on")
        if clock() >= end:
            raise HostctlError(f"group {group}: not every shard had ended when hostctl "
                               "stopped waiting; they go on (`hostctl jobs` shows them)")
        observe(state)
        sleep(interval)
        busy = {h: runners[h] for h in state.outstanding()}
        seen = run_parallel(busy, lambda r: read_host(r, hosts[r.host], install=False,
                                                      select=(f"{group}-*",)))
        for host, hj in seen.items():
            if isinstance(hj, Exception):
                failures[host] = failures.get(host, 0) + 1
                if failures[host] >= MAX_POLL_FAILURES:
                    # Give up on the host: its shards count as lost, the others go on.
                    state.lost |= {rid for rid, h in state.placed.items() if h == host}
                    slots.limits.pop(host, None)
                continue
            failures[host] = 0
            for rec in hj.runs:
                if rec.id in state.placed:
                    state.records[rec.id] = rec
        if admission is not None:
            admission.nudge(any(r.hold and not r.final for r in state.records.values()))


def _submit_batches(site: m.Site, w: m.Workload, runners: Mapping[str, Runner | RunnerError],
                    state: GroupState, batches: dict[str, list[int]], pending: deque[int],
                    slots: P.ShardSlots, group: str, shards: int, retry: int, by: str,
                    env: Mapping[str, str], origin: RunOrigin | None,
                    docker_run: DockerRun | None, admission: Admission | None) -> None:
    hosts = site.inventory.hosts

    def argv(host: m.Host) -> Callable[[str], Sequence[str]] | None:
        return (lambda rid: docker_run(host, rid)) if docker_run else None

    requests = {h: [P.request(w, hosts[h], P.shard_id(group, i, retry), group=group, shard=i,
                              shards=shards, by=by, env=env, origin=origin,
                              docker_run=argv(hosts[h])) for i in idx]
                for h, idx in batches.items()}
    done: Mapping[str, object]
    if admission is None:
        done = run_parallel({h: runners[h] for h in requests},
                            lambda r: submit(r, requests[r.host]))
    else:
        requests = {h: [admission.prepare(r) for r in reqs] for h, reqs in requests.items()}
        answers, _ = admission.submit(requests, H.submit_lines)
        done = {h: a if isinstance(a, Exception) or "@@submitted" in a else
                HostctlError(f"{h}: queueing runs failed") for h, a in answers.items()}
    for host, outcome in done.items():
        if isinstance(outcome, Exception):
            # The host refused or dropped: its shards go back to the front of the line.
            pending.extendleft(reversed(batches[host]))
            slots.limits.pop(host, None)
            continue
        for req in requests[host]:
            state.placed[req.id] = host


def group_records(site: m.Site, runners: Mapping[str, Runner | RunnerError], group: str,
                  ) -> tuple[list[RunRecord], list[str]]:
    """Every run of a group, from every host; errors of hosts that could not be read."""
    seen = read_hosts(site, runners, install=False, select=(group, f"{group}-*"))
    records: list[RunRecord] = []
    errors: list[str] = []
    for hj in seen.values():
        if isinstance(hj, Exception):
            errors.append(str(hj))
        else:
            records += [r for r in hj.runs if r.group == group]
    return records, errors


def run_env(runner: Runner, run_id: str) -> dict[str, str]:
    """The --set values of a run (its env file without hostctl's own variables)."""
    res = runner.run(["sh", "-s"], stdin=_script(H.env_lines(run_id)), timeout=READ_TIMEOUT)
    out = {}
    for line in res.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("HOSTCTL_"):
            out[key] = value
    return out


# -- run history (hostctl runs, runs show, compare, run --rerun) ---------------------------

def read_runs(site: m.Site, runners: Mapping[str, Runner | RunnerError],
              fields: Sequence[str] | None = None) -> tuple[list[RunRecord], list[str], int]:
    """Every run the hosts keep (their history and their active runs), one round trip per
    host, with only `fields` when given; (records, errors of hosts that could not be read,
    the newest host clock in ms)."""
    seen = read_hosts(site, runners, install=False, fields=fields)
    records: list[RunRecord] = []
    errors: list[str] = []
    now = int(time.time() * 1000)
    for name, hj in seen.items():
        if isinstance(hj, Exception):
            errors.append(host_error(name, hj))
            continue
        now = max(now, hj.now_ms)
        records += hj.runs
    return records, errors, now


def read_selected(site: m.Site, runners: Mapping[str, Runner | RunnerError],
                  run_ids: Sequence[str]) -> tuple[list[RunRecord], list[str]]:
    """The whole records of `run_ids`, from whichever hosts have them (one round trip per
    host, each reading only those runs' directories)."""
    if not run_ids:
        return [], []
    seen = read_hosts(site, runners, install=False, select=tuple(run_ids))
    records: list[RunRecord] = []
    errors: list[str] = []
    for name, hj in seen.items():
        if isinstance(hj, Exception):
            errors.append(host_error(name, hj))
        else:
            records += [r for r in hj.runs if r.id in run_ids]
    return records, errors


Points = dict[str, list[tuple[int | None, float]]]


def read_points(runners: Mapping[str, Runner | RunnerError], records: Iterable[RunRecord],
                ) -> tuple[dict[str, Points], list[str]]:
    """The metric points of `records` ({run id: {metric: [(step, value)]}}), one round trip
    per host holding some; errors of hosts that could not be read."""
    ids: dict[str, list[str]] = {}
    for r in records:
        ids.setdefault(r.host, []).append(r.id)
    present = {h: runners[h] for h in ids if h in runners}

    def fetch(runner: Runner) -> dict[str, Points]:
        res = runner.run(["sh", "-s"], stdin=_script(H.points_lines(ids[runner.host])),
                         timeout=READ_TIMEOUT)
        if "@@end" not in res.stdout:
            raise _fail(runner.host, "reading metric points", res.stdout, res.stderr)
        return H.parse_points_read(res.stdout)

    points: dict[str, Points] = {}
    errors = [f"{h}: not connected" for h in ids if h not in runners]
    for host, got in run_parallel(present, fetch).items():
        if isinstance(got, Exception):
            errors.append(host_error(host, got))
        else:
            points.update(got)
    return points, errors


def show_run(runners: Mapping[str, Runner | RunnerError], run_id: str,
             ) -> tuple[H.RunShow, list[str]]:
    """The run's record, unit.env and ExecStart from whichever host has it."""
    def fetch(runner: Runner) -> H.RunShow:
        res = runner.run(["sh", "-s"], stdin=_script(H.show_lines(run_id)),
                         timeout=READ_TIMEOUT)
        try:
            return H.parse_show(runner.host, run_id, res.stdout)
        except H.JobsReadError as exc:
            raise _fail(runner.host, f"reading run {run_id}", res.stdout, res.stderr) from exc

    errors = []
    for host, got in run_parallel(runners, fetch).items():
        if isinstance(got, Exception):
            errors.append(host_error(host, got))
        elif got.record is not None:
            return got, errors
    hint = f" (not read: {'; '.join(errors)})" if errors else ""
    raise HostctlError(f"no run {run_id} on any host{hint}; `hostctl runs` lists runs")


def ensure_image(runner: Runner, host: m.Host, image_id: str, run_id: str,
                 local: LocalImages) -> bool:
    """Make sure the host has image `image_id` (a rerun runs exactly that image): True when
    it had to be sent from this machine. Refused when neither has it any more."""
    res = runner.run([host.docker, "image", "inspect", "--format", "{{.Id}}", image_id],
                     timeout=READ_TIMEOUT)
    if res.ok and res.stdout.strip() == image_id:
        return False
    try:
        have = local.image_id(image_id)
    except HostctlError:
        have = None  # no Docker engine here: the host's answer stands
    if have != image_id:
        raise HostctlError(
            f"run {run_id} ran image {image_id}, which is gone from {host.name} and from this "
            "machine's Docker engine: it cannot run again as it was (load or build that "
            "image here, or start a new run of the image the spec names now)")
    sent = push(runner, host.docker, image_id, local.save(image_id))
    if not sent.ok:
        raise _fail(host.name, f"sending image {image_id}", sent.stdout, sent.stderr)
    return True
