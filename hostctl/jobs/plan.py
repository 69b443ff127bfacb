"""Which hosts a job's runs go to and how many each can take: pure functions, no I/O."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from hostctl.errors import HostctlError
from hostctl.jobs.hostside import HostJobs, RunRequest, runtime_problem
from hostctl.jobs.provenance import RunOrigin, params_json
from hostctl.jobs.records import RunRecord, latest_per_shard
from hostctl.spec import model as m
from hostctl.spec.hashing import spec_hash
from hostctl.spec.placement import eligible_hosts, gpu_fit, placed_on
from hostctl.spec.schema import did_you_mean

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RUN_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
ONE_CPU = 1000  # milli-CPUs a run without `cpus` claims


def gpu_mode(host: m.Host) -> str:
    """`env` on test hosts without NVIDIA (device ids in HOSTCTL_GPU_DEVICES), else nvidia."""
    return host.gpu_mode


def gpu_runtime_error(site: m.Site, host: m.Host, runtimes: frozenset[str] | None,
                      only: Iterable[str] | None = None) -> str | None:
    """Plan time: the host runs GPU workloads (of `only`, when given) but its Docker cannot
    hand GPUs to containers. None when Docker did not say which runtimes it has."""
    names = set(only) if only is not None else None
    users = sorted(w.name for w in site.workloads
                   if w.resources.gpus and placed_on(w, host)
                   and (names is None or w.name in names))
    problem = runtime_problem(host.name, host.gpus, gpu_mode(host), runtimes) if users else None
    if problem is None:
        return None
    return (f"{problem}; needed by {', '.join(users)} (on a test host without GPUs, the "
            "test-only `gpu_mode: env` of its inventory entry hands out device ids instead)")


def find_job(site: m.Site, name: str) -> m.Workload:
    w = next((w for w in site.workloads if w.name == name), None)
    if w is None:
        raise HostctlError(f"no job '{name}' in the specs"
                           f"{did_you_mean(name, [j.name for j in site.jobs])}")
    if not w.is_job:
        raise HostctlError(f"'{name}' is a service, not a job: `hostctl restart {name}` "
                           "restarts it")
    return w


def job_host_names(site: m.Site) -> list[str]:
    """Every host some job may run on, in inventory order: where runs and their records are."""
    return sorted({h.name for w in site.jobs for h in eligible_hosts(w, site.inventory)},
                  key=list(site.inventory.hosts).index)


def job_hosts(site: m.Site, w: m.Workload, only: str | None = None) -> list[m.Host]:
    """The hosts a run of `w` may go to (placement, enough GPUs), narrowed by --host."""
    inv = site.inventory
    if only is not None and only not in inv.hosts:
        raise HostctlError(f"--host: no host '{only}' in {inv.file}"
                           f"{did_you_mean(only, inv.hosts)}")
    placed = eligible_hosts(w, inv)
    models = w.resources.gpu_models
    fit = [h for h in placed if gpu_fit(h, w.resources.gpus, models)]
    # Plain counts keep their words; a model names what the host has of it.
    of = f" of model {' or '.join(models)}" if models else ""
    if only is not None:
        if only not in {h.name for h in placed}:
            where = ", ".join(h.name for h in placed) or "no host"
            raise HostctlError(f"{w.name} does not run on {only}: its placement allows {where}")
        if only not in {h.name for h in fit}:
            raise HostctlError(f"{w.name} needs {w.resources.gpus} GPU(s){of}; {only} has "
                               f"{inv.hosts[only].gpus_of(models)}")
        return [inv.hosts[only]]
    if not fit:
        raise HostctlError(f"{w.name}: no host matches its placement with "
                           f"{w.resources.gpus} GPU(s){of}")
    return fit


def parse_sets(pairs: Sequence[str]) -> dict[str, str]:
    """--set KEY=VALUE values: environment variables of this run only."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not _ENV_NAME.fullmatch(key):
            raise HostctlError(f"--set {pair!r}: give NAME=VALUE, NAME made of letters, "
                               "digits and _")
        if key.startswith("HOSTCTL_"):
            raise HostctlError(f"--set {key}: HOSTCTL_* variables are set by hostctl itself")
        if "\n" in value or "\0" in value:
            raise HostctlError(f"--set {key}: the value must be one line")
        out[key] = value
    return out


def check_sets_for(w: m.Workload, sets: Mapping[str, str]) -> None:
    """--set may override the spec's env (the run's env file is read after the job's), never
    a secret: those come from the secret store only."""
    for key in sets:
        if key in w.secrets:
            raise HostctlError(f"--set {key}: {key} is a secret of {w.name}; its value comes "
                               "from the secret store, never from the command line")


def check_run_id(text: str) -> str:
    if not _RUN_ID.fullmatch(text):
        raise HostctlError(f"'{text}' is not a run id (lower-case letters, digits and '-')")
    return text


def new_group() -> str:
    """8 hex digits: short enough to type, unique enough for one site's runs."""
    return secrets.token_hex(4)


def shard_id(group: str, index: int, retry: int = 0) -> str:
    """Runs of a group: GROUP-INDEX, and GROUP-INDEX-rN for the N-th --retry-failed."""
    return f"{group}-{index}" + (f"-r{retry}" if retry else "")


def request(w: m.Workload, host: m.Host, run_id: str, *, group: str = "", shard: int = 0,
            shards: int = 1, by: str = "", env: Mapping[str, str] | None = None,
            origin: RunOrigin | None = None,
            docker_run: Callable[[str], Sequence[str]] | None = None) -> RunRequest:
    """The run as the host queues it. `docker_run(run_id)` is the job unit's `docker run`
    argv for that run (render.site.job_run_argv); the queue's per-run words
    ($HOSTCTL_RUN_ARGS, ${HOSTCTL_RUN_IMAGE}) stay as they are: `runs show` fills them in."""
    r = w.resources
    o = origin or RunOrigin()
    return RunRequest(
        id=run_id, job=w.name, project=w.project, host=host.name,
        unit=f"hostctl-job-{w.name}@{run_id}.service", need=r.gpus,
        gpu_models=r.gpu_models if r.gpus else (),
        cpus=round(r.cpus * 1000) if r.cpus else 0, memory=r.memory or 0,
        attempts=w.retries + 1, group=group or run_id, shard=shard, shards=shards, by=by,
        env=tuple(sorted((env or {}).items())),
        experiment=o.experiment, description=o.description,
        params_json=params_json(dict(o.params)) if o.params else "",
        image=w.image, spec_hash=spec_hash(w), git_rev=o.git.rev, git_branch=o.git.branch,
        rerun_of=o.rerun_of, pin_image=o.pin_image,
        docker_run_json=json.dumps(list(docker_run(run_id)), separators=(",", ":"))
        if docker_run else "")


# -- room on hosts -------------------------------------------------------------------------

def _cpus_text(cpus: float) -> str:
    n = f"{cpus:g}"
    return f"{n} CPU" + ("" if n == "1" else "s")


def _memory_text(size: int) -> str:
    """Bytes the way a host's memory is thought of: GiB with one decimal, MiB when small."""
    if size >= 2**30:
        return f"{size / 2**30:.1f}".removesuffix(".0") + " GiB"
    return f"{size / 2**20:.1f}".removesuffix(".0") + " MiB"


def _gpus_text(n: int) -> str:
    return "no GPUs" if n == 0 else f"{n} GPU" + ("" if n == 1 else "s")


def asks_text(w: m.Workload) -> str:
    """What a run of `w` asks for, as the fit check's messages say it."""
    r = w.resources
    parts = [_cpus_text(r.cpus)] if r.cpus else []
    parts += [f"{_memory_text(r.memory)} memory"] if r.memory else []
    parts += [_gpus_text(r.gpus)] if r.gpus else []
    return ", ".join(parts) or "no set CPUs, memory or GPUs"


def never_fits(hj: HostJobs, w: m.Workload) -> str | None:
    """Why a run of `w` can never run on the host, however long it waits: it asks more CPUs,
    memory or GPUs than the host has (as it reported them). Docker refuses `--cpus` above
    the host's CPU count ("Range of CPUs is from 0.01 to N"), and the queue would never
    have room for it. None when it fits, or when the host did not say what it has."""
    r = w.resources
    short = []
    if r.cpus and hj.cpus and r.cpus > hj.cpus:
        short.append("too few CPUs")
    if r.memory and hj.memory and r.memory > hj.memory:
        short.append("too little memory")
    if r.gpus and r.gpus > len(hj.devices):
        short.append("too few GPUs")
    if not short:
        return None
    return (f"{hj.host} has {_cpus_text(hj.cpus)}, {_memory_text(hj.memory)}, "
            f"{_gpus_text(len(hj.devices))}: {', '.join(short)}")


def fit_error(w: m.Workload, reasons: Sequence[str]) -> str:
    """The refusal when no eligible host can ever hold a run of `w`."""
    return (f"{w.name} asks {asks_text(w)}: no eligible host has that much "
            f"({'; '.join(reasons)})")


def claim(cpus: int, memory: int, capacity_cpus: int, capacity_memory: int) -> tuple[int, int]:
    """What a run holds while it runs, as the host's queue counts it (hostctl-jobs.sh)."""
    c = cpus if cpus > 0 else ONE_CPU
    return min(c, capacity_cpus), min(memory, capacity_memory)


@dataclass(frozen=True)
class Room:
    """How many more runs of one job a host can start now, and how many it could hold."""

    host: str
    free: int  # runs it can start now (after the runs already waiting in its queue)
    total: int  # runs it holds at once when nothing else runs
    queued: int  # runs waiting in its queue


def room(hj: HostJobs, w: m.Workload) -> Room:
    cap_cpu, cap_mem = hj.cpus * 1000, hj.memory
    want_cpu, want_mem = claim(round(w.resources.cpus * 1000) if w.resources.cpus else 0,
                               w.resources.memory or 0, cap_cpu, cap_mem)
    used_cpu = used_mem = 0
    busy_gpus = len(hj.leases) + sum(hj.wants.values())
    queued = [r for r in hj.runs if r.state == "queued"]
    for r in hj.runs:
        # Queued runs go first, so they count as taken as well.
        if r.active:
            c, mem = claim(r.cpus, r.memory, cap_cpu, cap_mem)
            used_cpu, used_mem = used_cpu + c, used_mem + mem
            if r.state == "queued":
                busy_gpus += r.need

    def fit(free_cpu: int, free_mem: int, free_gpus: int) -> int:
        n = max(0, free_cpu) // want_cpu if want_cpu else 0
        if want_mem:
            n = min(n, max(0, free_mem) // want_mem)
        if w.resources.gpus:
            n = min(n, max(0, free_gpus) // w.resources.gpus)
        return n

    devices = len(hj.devices)
    return Room(hj.host, fit(cap_cpu - used_cpu, cap_mem - used_mem, devices - busy_gpus),
                max(1, fit(cap_cpu, cap_mem, devices)), len(queued))


def pick_host(rooms: Sequence[Room]) -> str:
    """A single run goes where it starts now (most room first), else to the shortest queue;
    ties keep inventory order."""
    if not rooms:
        raise HostctlError("no host to run on")
    best = max(rooms, key=lambda r: (r.free > 0, r.free, -r.queued))
    if best.free > 0:
        return best.host
    return min(rooms, key=lambda r: r.queued).host


@dataclass
class ShardSlots:
    """How many runs of a shard group each host is given at once.

    Without --max-parallel each host holds its room now plus as many again waiting in its
    own queue, so it starts the next shard the moment one ends, without waiting for
    hostctl to notice. With --max-parallel the total in flight is capped and nothing waits
    on a host (so the cap holds).
    """

    limits: dict[str, int]
    max_parallel: int | None = None

    @classmethod
    def from_rooms(cls, rooms: Iterable[Room], max_parallel: int | None = None) -> ShardSlots:
        limits = {}
        for r in rooms:
            now = max(r.free, 1 if r.free == 0 and r.total > 0 else 0)
            limits[r.host] = now if max_parallel else now + max(r.total, 1)
        return cls(limits, max_parallel)

    def assign(self, pending: int, outstanding: Mapping[str, int]) -> dict[str, int]:
        """How many of `pending` shards to hand each host now."""
        give = dict.fromkeys(self.limits, 0)
        total = sum(outstanding.values())
        cap = self.max_parallel
        for _ in range(pending):
            if cap is not None and total >= cap:
                break
            # Fill the host with the most unused slots first, so all hosts start at once.
            host = max(self.limits, key=lambda h: (
                self.limits[h] - outstanding.get(h, 0) - give[h], -list(self.limits).index(h)))
            if self.limits[host] - outstanding.get(host, 0) - give[host] <= 0:
                break
            give[host] += 1
            total += 1
        return {h: n for h, n in give.items() if n}


def failed_shards(records: Iterable[RunRecord]) -> list[RunRecord]:
    """The latest attempt of each shard of a group, where it did not succeed."""
    return [r for r in latest_per_shard(records).values() if r.final and r.state != "succeeded"]


def shards_to_retry(records: Sequence[RunRecord]) -> list[int]:
    """What `--retry-failed` runs again: the shards whose latest run ended without success,
    and those never queued (hostctl was interrupted before it got to them)."""
    if not records:
        return []
    shards = max(r.shards for r in records)
    seen = {r.shard for r in records}
    missing = [i for i in range(shards) if i not in seen]
    return sorted([r.shard for r in failed_shards(records)] + missing)


def retry_number(run_id: str) -> int:
    """GROUP-INDEX-rN -> N (0 for a first run)."""
    tail = run_id.rsplit("-", 1)[-1]
    return int(tail[1:]) if tail.startswith("r") and tail[1:].isdigit() else 0
