"""Project quotas, budgets and owners: the rules of admission, as pure functions.

A project listed under `projects:` may use at most its quota (GPUs, CPUs, memory) at once
across the fleet, its runs and services together. Each host holds a share of it, its
*allotment* ($STATE/quota/PROJECT): the host's queue (hostctl-jobs.sh) lifts a run's
`hold: quota` only while the project's admitted runs there fit the allotment, so a run
that ends hands its share to the next waiting run of its project on that host at once,
with no hostctl around. The sum of the allotments never exceeds the quota less what the
project's services take:

- `hostctl run` and `hostctl cancel` *settle* under the fleet's admission lock: every job
  host shrinks the project's allotment to what its admitted runs use (nothing new can
  start there meanwhile) and says what waits;
- the room left (quota - services - admitted) is then *granted*, strictly in queue order
  (priority with ageing, then submission time; the first waiting run that does not fit
  stops the line, as Kueue's StrictFIFO does), to the hosts of the waiting runs.

A run that waits on one host while its project's share sits idle on another starts at the
next settle (any `hostctl run` or `cancel` of the project), not sooner: hosts never talk
to each other. `hostctl run` puts a run that will have to wait on a host where its project
already runs, when it may, so that it starts the moment one of those ends.

Budgets are GPU-hours per calendar month (UTC) of the project's runs and GPU services, as
the hosts recorded them; owners are matched against HOSTCTL_USER, else the local user.
"""

from __future__ import annotations

import calendar
import getpass
import os
import re
import shlex
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from hostctl import layout as L
from hostctl.errors import HostctlError
from hostctl.spec import model as m
from hostctl.spec.placement import service_instances
from hostctl.spec.sections.projects import ProjectQuota, asks, size_text

q = shlex.quote
END = "@@end"
_PROJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # what the host's helper takes as a name

LEVELS = {"high": 2, "normal": 1, "low": 0}
AGE_STEP_MS = 30 * 60 * 1000  # a waiting run gains one level per 30 minutes (hostctl-jobs.sh)
ONE_CPU = 1000  # milli-CPUs a run without `cpus` counts, as the host's queue claims it
ADMISSION_LOCK = f"{L.STATE_DIR}/admission.lock"
LOCK_WAIT_S = 30  # how long `hostctl run` waits for another admission to finish
LOCK_STALE_S = 120  # a lock older than this was left by a hostctl that died: taken over
ADMISSION_DEADLINE_S = 90.0  # an admission slower than this gives up before it grants


@dataclass(frozen=True)
class Amount:
    """CPUs (milli), memory (bytes) and GPUs: what runs ask and use."""

    cpu: int = 0
    memory: int = 0
    gpus: int = 0

    def __add__(self, other: Amount) -> Amount:
        return Amount(self.cpu + other.cpu, self.memory + other.memory, self.gpus + other.gpus)

    def __sub__(self, other: Amount) -> Amount:
        return Amount(self.cpu - other.cpu, self.memory - other.memory, self.gpus - other.gpus)


@dataclass(frozen=True)
class Limit:
    """A quota in the same units; None: no limit on that resource."""

    cpu: int | None = None
    memory: int | None = None
    gpus: int | None = None

    @classmethod
    def of(cls, quota: ProjectQuota) -> Limit:
        return cls(None if quota.cpus is None else round(quota.cpus * 1000), quota.memory,
                   quota.gpus)

    def room(self, used: Amount) -> Limit:
        """What is left of the limit once `used` is taken (negative when over)."""
        return Limit(*(None if lim is None else lim - u for lim, u in self._pairs(used)))

    def holds(self, amount: Amount) -> bool:
        return all(lim is None or a <= lim for lim, a in self._pairs(amount))

    def _pairs(self, a: Amount) -> list[tuple[int | None, int]]:
        return [(self.cpu, a.cpu), (self.memory, a.memory), (self.gpus, a.gpus)]


def governs(quota: ProjectQuota | None) -> bool:
    """Whether admission has anything to check for the project: a limit or a budget (a
    project listed for its priority or owners alone is admitted as one not listed)."""
    return quota is not None and any(v is not None for v in (
        quota.gpus, quota.cpus, quota.memory, quota.gpu_hours_per_month))


def run_ask(w: m.Workload, inv: m.Inventory) -> Amount:
    """What one run of job `w` counts against its project's quota."""
    r = asks(w, inv)
    return Amount(round(r.cpus * 1000) if r.cpus else ONE_CPU, r.memory or 0, r.gpus)


def services_use(site: m.Site, project: str) -> Amount:
    """What the project's deployed services take, every instance on every host (as the
    specs place them): they count against the quota all the time."""
    total = Amount()
    for w in site.workloads:
        if w.is_job or w.project != project:
            continue
        r = asks(w, site.inventory)
        one = Amount(round(r.cpus * 1000) if r.cpus else 0, r.memory or 0, r.gpus)
        for _ in service_instances(w, site.inventory):
            total = total + one
    return total


def unit_projects(site: m.Site) -> dict[str, str]:
    """Each service instance's unit name -> its project (the GPU time the hosts record of a
    service's leases is in that project's budget)."""
    return {i.unit: w.project for w in site.workloads if not w.is_job
            for i in service_instances(w, site.inventory)}


def level(priority: str, submitted_ms: int, now_ms: int) -> int:
    """A waiting run's level: its priority, one up per AGE_STEP_MS waited, high at most."""
    waited = max(0, now_ms - submitted_ms) // AGE_STEP_MS
    return min(LEVELS["high"], LEVELS.get(priority, LEVELS["normal"]) + waited)


# -- what the hosts say ----------------------------------------------------------------------

@dataclass(frozen=True)
class Waiting:
    """A run held for its project's quota (or the one being submitted)."""

    host: str
    id: str
    priority: str
    submitted: int
    ask: Amount


@dataclass
class Settled:
    """One host's answer to a settle: per project its admitted use and waiting runs, the
    GPU-milliseconds of this month per project (runs) and per service unit."""

    admitted: dict[str, Amount] = field(default_factory=dict)
    held: dict[str, list[Waiting]] = field(default_factory=dict)
    gpu_ms: dict[str, int] = field(default_factory=dict)
    svc_gpu_ms: dict[str, int] = field(default_factory=dict)
    # The same time by GPU model ("" when the host names none), for its cost:
    # (project, model) of runs, (unit, model) of services.
    run_model_ms: dict[tuple[str, str], int] = field(default_factory=dict)
    svc_model_ms: dict[tuple[str, str], int] = field(default_factory=dict)


def _ints(parts: Sequence[str]) -> list[int] | None:
    return [int(p) for p in parts] if all(p.isdigit() for p in parts) else None


class SettleReadError(HostctlError):
    """A settle's answer was cut short: nothing of it may be believed (a project missing from
    it would read as using nothing, and be granted too much)."""


def parse_settle(host: str, text: str) -> Settled:
    """The `@@quota`, `@@held`, `@@gpu_ms`, `@@svc_gpu_ms` and `@@gpu_model_ms` lines of a
    settle (or of the read-only `usage`), which end with `@@end`; other lines are passed
    over."""
    lines = text.splitlines()
    if END not in lines:
        raise SettleReadError(f"{host}: incomplete answer from the host (no end marker)")
    out = Settled()
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        tag, rest = parts[0], parts[1:]
        if tag == "@@quota" and len(rest) == 4 and (n := _ints(rest[1:])):
            out.admitted[rest[0]] = Amount(*n)
        elif tag == "@@held" and len(rest) == 7 and (n := _ints(rest[3:])):
            out.held.setdefault(rest[0], []).append(
                Waiting(host, rest[1], rest[2], n[0], Amount(*n[1:])))
        elif tag == "@@gpu_ms" and len(rest) == 2 and rest[1].isdigit():
            out.gpu_ms[rest[0]] = int(rest[1])
        elif tag == "@@svc_gpu_ms" and len(rest) == 2 and rest[1].isdigit():
            out.svc_gpu_ms[rest[0]] = int(rest[1])
        elif tag == "@@gpu_model_ms" and len(rest) == 4 and rest[3].isdigit():
            kind, key, model = rest[0], rest[1], "" if rest[2] == "-" else rest[2]
            into = out.run_model_ms if kind == "run" else out.svc_model_ms if kind == "svc" \
                else None
            if into is not None:
                into[key, model] = into.get((key, model), 0) + int(rest[3])
    return out


# -- the decision ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Grants:
    """What a settle decided: the share each host is granted on top of what its admitted runs
    use, whether the new run (if any) is admitted, and where it stands."""

    grants: dict[str, Amount]
    admitted: bool  # every new run fits now
    used: Amount  # services + admitted runs, before the grants
    ahead: int  # runs already waiting before the first new one that waits


def grant(limit: Limit, services: Amount, admitted: Mapping[str, Amount],
          waiting: Iterable[Waiting], now_ms: int, new: Sequence[Waiting] = ()) -> Grants:
    """Hand the room left under `limit` to the waiting runs and the `new` ones, strictly in
    queue order: the first that does not fit stops the line."""
    used = services
    for a in admitted.values():
        used = used + a
    room = limit.room(used)
    fresh = {(r.host, r.id) for r in new}
    order = sorted([*waiting, *new],
                   key=lambda r: (-level(r.priority, r.submitted, now_ms), r.submitted,
                                  (r.host, r.id) in fresh, r.host, r.id))
    grants = {h: Amount() for h in admitted}
    granted = 0  # the runs granted: a prefix of `order`
    for r in order:
        if not room.holds(r.ask):
            break
        grants[r.host] = grants.get(r.host, Amount()) + r.ask
        room = Limit(*(None if x is None else x - a for x, a in (
            (room.cpu, r.ask.cpu), (room.memory, r.ask.memory), (room.gpus, r.ask.gpus))))
        granted += 1
    is_new = [(r.host, r.id) in fresh for r in order]
    first_waiting = next((i for i in range(granted, len(order)) if is_new[i]), None)
    ahead = 0 if first_waiting is None else is_new[:first_waiting].count(False)
    return Grants(grants, first_waiting is None, used, ahead)


# -- shell -----------------------------------------------------------------------------------

def lock_lines(record: str, token: str, lock: str = ADMISSION_LOCK,
               wait_s: int = LOCK_WAIT_S) -> list[str]:
    """Take the fleet's admission lock (a directory, like the deploy lock) on the ledger host:
    waits up to `wait_s` for another admission, takes over one older than LOCK_STALE_S
    (left by a hostctl that died). Each test-and-take runs under a short flock, so two
    takers never both break the same stale lock. Prints `@@admission locked`, or
    `@@admission busy` and the holder's record."""
    d = lock
    return [
        f"mkdir -p {os.path.dirname(d)} && chmod 0700 {os.path.dirname(d)}",
        f"end=$(( $(date +%s) + {wait_s} ))",
        "while :; do",
        f"  got=$(flock -w 10 {d}.guard sh -c '"
        f"if [ -d {d} ] && [ $(( $(date +%s) - $(stat -c %Y {d} 2>/dev/null || echo 0) ))"
        f" -gt {LOCK_STALE_S} ]; then rm -rf {d}; fi; "
        f"mkdir {d} 2>/dev/null && printf \"%s\\n\" \"$1\" > {d}/holder && echo yes' "
        f"_ {q(token + ' ' + record)})",
        "  [ \"$got\" = yes ] && { echo '@@admission locked'; break; }",
        "  if [ \"$(date +%s)\" -ge \"$end\" ]; then",
        f"    echo '@@admission busy'; head -c 2048 {d}/holder 2>/dev/null | head -n 1; break",
        "  fi",
        "  sleep 0.2",
        "done",
    ]


def unlock_lines(token: str, lock: str = ADMISSION_LOCK) -> list[str]:
    """Release the lock when it is still ours (a lock taken over is someone else's now)."""
    d = lock
    return [f"flock -w 10 {d}.guard sh -c '"
            f"[ \"$(cut -d\" \" -f1 {d}/holder 2>/dev/null)\" = \"$1\" ] && rm -rf {d}' "
            f"_ {q(token)} || true"]


def _check_project(project: str) -> str:
    if not _PROJECT.fullmatch(project):
        raise ValueError(f"not a project name: {project!r}")
    return project


def settle_lines(projects: Sequence[str]) -> list[str]:
    """Each project's share on the host := what its admitted runs there use; the answer
    (parse_settle) tells that use, its held runs and the month's GPU time, then `@@end`."""
    names = " ".join(_check_project(p) for p in projects)
    return [f"{L.JOBS_HELPER} quota-settle {names} && echo '{END}'"]


def usage_lines() -> list[str]:
    """The month's GPU time per project and per service unit, read only (no settle)."""
    return [f"{L.JOBS_HELPER} usage && echo '{END}'"]


def grant_lines(project: str, share: Amount, limit: Limit) -> list[str]:
    """Add `share` to the host's allotment; a resource with no limit stays unlimited (`-`)."""
    words = []
    for lim, a in ((limit.cpu, share.cpu), (limit.memory, share.memory),
                   (limit.gpus, share.gpus)):
        if a < 0:
            raise ValueError(f"a grant adds, never takes: {a}")
        words.append("-" if lim is None else str(a))
    return [f"{L.JOBS_HELPER} quota-grant {_check_project(project)} {' '.join(words)}"]


def drop_lines(project: str) -> list[str]:
    """The project is no longer governed on the host: its held runs are released."""
    return [f"{L.JOBS_HELPER} quota-drop {_check_project(project)}"]


# -- words -----------------------------------------------------------------------------------

def use_text(limit: Limit, used: Amount) -> str:
    """'2/2 GPUs, 4/8 CPUs, 8Gi/32Gi memory': each limited resource as used / quota."""
    parts = []
    if limit.gpus is not None:
        parts.append(f"{used.gpus}/{limit.gpus} GPUs")
    if limit.cpu is not None:
        parts.append(f"{used.cpu / 1000:g}/{limit.cpu / 1000:g} CPUs")
    if limit.memory is not None:
        parts.append(f"{size_text(max(0, used.memory))}/{size_text(limit.memory)} memory")
    return ", ".join(parts)


def month_start_ms(now_ms: int) -> int:
    t = time.gmtime(now_ms / 1000)
    return calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0)) * 1000


def next_month_text(now_ms: int) -> str:
    t = time.gmtime(now_ms / 1000)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return f"{year:04d}-{month:02d}-01 00:00 UTC"


def gpu_hours(gpu_ms: int) -> float:
    return gpu_ms / 3_600_000


def hours_text(hours: float) -> str:
    """One decimal, or two significant digits for a sliver of an hour (0.00028)."""
    return f"{hours:.1f}" if hours >= 0.1 or hours == 0 else f"{hours:.2g}"


def budget_error(project: str, quota: ProjectQuota, used_ms: int, now_ms: int) -> str | None:
    """Why a run of `project` is refused for its budget, or None while it has some left."""
    budget = quota.gpu_hours_per_month
    if budget is None or gpu_hours(used_ms) < budget:
        return None
    return (f"project {project} has used {hours_text(gpu_hours(used_ms))} of its {budget:g} "
            "GPU-hours "
            f"this month; the budget resets {next_month_text(now_ms)}; an owner may pass "
            "with --over-budget REASON")


def identity() -> str:
    """Who is submitting: HOSTCTL_USER, else the local user."""
    user = os.environ.get("HOSTCTL_USER", "").strip()
    if user:
        return user
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return str(os.getuid())


def check_owner(project: str, quota: ProjectQuota | None, user: str) -> None:
    if quota is None or not quota.owners or user in quota.owners:
        return
    raise HostctlError(f"{user} may not submit runs of project {project} (its owners: "
                       f"{', '.join(quota.owners)}); HOSTCTL_USER names who you are")
