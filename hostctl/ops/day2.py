"""Day-2 operations on what the specs placed: logs, exec, and start/stop/restart of units.

Three layers, each testable on its own:
- selection (pure): which instances a SERVICE [--host H] [--instance N] means, with errors
  that say what exists instead;
- command builders (pure): argv lists, quoted only by the runner;
- orchestration: functions over already-connected runners (`{host: Runner | RunnerError}`),
  so tests drive them with RecordingRunner and the CLI with SSH runners.
"""

from __future__ import annotations

import fnmatch
import json
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hostctl import layout as L
from hostctl.errors import HostctlError
from hostctl.hosts.audit import audit_record as build_audit_record
from hostctl.hosts.audit import audit_script
from hostctl.hosts.facts import UnitState, parse_handed_off, split_sections
from hostctl.hosts.lock import held_by, parse_lock, take_lock_lines, unlock_argv
from hostctl.hosts.unit_show import parse_units
from hostctl.ops.status import JOB_PREFIX, host_error
from hostctl.runner.base import Result, Runner, RunnerError
from hostctl.runner.pool import run_parallel
from hostctl.spec import model as m
from hostctl.spec.placement import Instance, eligible_hosts, service_instances
from hostctl.spec.schema import did_you_mean

ACTIONS = ("start", "stop", "restart")
JOURNAL_FIELDS = ("MESSAGE", "_SYSTEMD_UNIT", "UNIT", "OBJECT_SYSTEMD_UNIT", "PRIORITY")
# Fields that name the unit an entry belongs to, in the order `journalctl -u` matches them:
# the unit's own output, then systemd's messages about it ("Started ...").
UNIT_FIELDS = ("_SYSTEMD_UNIT", "UNIT", "OBJECT_SYSTEMD_UNIT")
SHOW_PROPERTIES = ("Id", "LoadState", "ActiveState", "SubState", "Result", "NRestarts",
                   "ActiveEnterTimestamp", "StateChangeTimestamp")
JOURNAL_TIMEOUT = 60.0
ACTION_TIMEOUT = 180.0  # systemctl stop waits for TimeoutStopSec= of every unit
SHOW_TIMEOUT = 30.0
FAILURE_LOG_LINES = 10
STABLE_SECONDS = 2.0  # active this long without a restart in between counts as up
FOLLOW_MAX_ERRORS = 3  # consecutive failed polls before a host is given up on


# -- selection ---------------------------------------------------------------------------

def find_workload(site: m.Site, name: str, *, jobs: bool = False) -> m.Workload:
    """The workload called `name`; a job only when `jobs` (logs), else a clear error."""
    by_name = {w.name: w for w in site.workloads}
    w = by_name.get(name)
    if w is None:
        known = [w.name for w in site.workloads if jobs or not w.is_job]
        raise HostctlError(f"no service '{name}' in the specs{did_you_mean(name, known)}")
    if w.is_job and not jobs:
        raise HostctlError(f"'{name}' is a job, not a service: its runs are started by its "
                           "timer or by hand on the host; `hostctl logs` shows their output")
    return w


def _check_host(site: m.Site, host: str | None) -> None:
    inv = site.inventory
    if host is not None and host not in inv.hosts:
        raise HostctlError(f"--host: no host '{host}' in {inv.file}{did_you_mean(host, inv.hosts)}")


def select_instances(site: m.Site, name: str, host: str | None = None,
                     instance: int | None = None) -> list[Instance]:
    """The service's instances, narrowed by --host and --instance; never empty."""
    w = find_workload(site, name)
    _check_host(site, host)
    found = service_instances(w, site.inventory)
    if not found:
        raise HostctlError(f"{name}: no host matches its placement, so it runs nowhere")
    if host is not None:
        on_host = [i for i in found if i.host.name == host]
        if not on_host:
            where = ", ".join(sorted({i.host.name for i in found}))
            raise HostctlError(f"{name} does not run on {host}; it runs on {where}")
        found = on_host
    if instance is not None:
        chosen = [i for i in found if i.index == instance]
        if not chosen:
            raise HostctlError(f"{name} has no instance {instance}; it has "
                               f"{_count(w.instances, 'instance')} (1-{w.instances})")
        found = chosen
    return found


def choose_one(instances: Sequence[Instance], name: str) -> Instance:
    """The single instance a command acts on; an error listing the choices otherwise."""
    if len(instances) == 1:
        return instances[0]
    choices = ", ".join(label(i) for i in instances)
    hosts = {i.host.name for i in instances}
    # Name only the options that can tell these instances apart.
    if len(hosts) == 1:
        how = "--instance N"
    elif len(hosts) == len(instances):
        how = "--host H"
    else:
        how = "--host H and --instance N"
    raise HostctlError(f"{name} has {len(instances)} instances ({choices}); choose one with "
                       f"{how}")


def label(inst: Instance) -> str:
    """How output names an instance: host/index."""
    return f"{inst.host.name}/{inst.index}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class LogTarget:
    """What to read from one host's journal: units (or unit patterns) and their labels."""

    host: str
    units: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict)  # unit -> label, for known units

    def label_of(self, unit: str) -> str:
        """The label of an entry's unit; job runs are named after their run."""
        if unit in self.labels:
            return self.labels[unit]
        run = unit.removesuffix(".service").partition("@")[2]
        return f"{self.host}/run {run}" if run else f"{self.host}/{unit}"


def log_targets(site: m.Site, name: str, host: str | None = None,
                instance: int | None = None) -> list[LogTarget]:
    """Per host, the journal units of a service's instances, or of a job's runs."""
    w = find_workload(site, name, jobs=True)
    _check_host(site, host)
    if not w.is_job:
        by_host: dict[str, list[Instance]] = {}
        for inst in select_instances(site, name, host, instance):
            by_host.setdefault(inst.host.name, []).append(inst)
        return [LogTarget(h, tuple(i.unit for i in insts), {i.unit: label(i) for i in insts})
                for h, insts in by_host.items()]
    if instance is not None:
        raise HostctlError(f"{name} is a job: it has runs, not instances; drop --instance")
    hosts = [h.name for h in eligible_hosts(w, site.inventory)]
    if host is not None:
        if host not in hosts:
            raise HostctlError(f"{name} does not run on {host}; it runs on {', '.join(hosts)}")
        hosts = [host]
    if not hosts:
        raise HostctlError(f"{name}: no host matches its placement, so it runs nowhere")
    # A pattern: journalctl -u matches every run of the template (scheduled, by hand, ...).
    return [LogTarget(h, (f"{JOB_PREFIX}{w.name}@*.service",)) for h in hosts]


# -- command builders (pure) -------------------------------------------------------------

def journal_argv(units: Sequence[str], *, lines: int | None = None,
                 after_cursor: str | None = None) -> list[str]:
    """journalctl for `units` as JSON: each entry carries its cursor, unit and time, so
    the follow loop resumes exactly after the last entry shown (no --show-cursor needed),
    and entries of several instances are told apart without parsing text."""
    argv = ["journalctl", "--no-pager", "--output=json", "--all",
            "--output-fields=" + ",".join(JOURNAL_FIELDS)]
    for unit in units:
        argv += ["--unit", unit]
    if after_cursor is not None:
        argv += ["--after-cursor", after_cursor]
    elif lines is not None:
        argv += ["--lines", str(lines)]
    return argv


def exec_argv(docker: str, container: str, command: Sequence[str]) -> list[str]:
    """`docker exec` without -i/-t: no terminal, no stdin, output collected at the end."""
    return [docker, "exec", container, *command]


def action_argv(action: str, units: Sequence[str]) -> list[str]:
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    return ["systemctl", action, "--", *units]


def show_argv(units: Sequence[str]) -> list[str]:
    """systemctl show in the C locale and UTC, so health_verdict.parse_timestamp reads its times."""
    return ["env", "LC_ALL=C", "TZ=UTC", "systemctl", "show",
            "--property=" + ",".join(SHOW_PROPERTIES), "--", *units]


def unit_log_argv(unit: str, lines: int = FAILURE_LOG_LINES) -> list[str]:
    return ["journalctl", "--no-pager", "--output=cat", "--unit", unit, "--lines", str(lines)]


# A start/stop/restart takes the host's deploy lock (the one `hostctl deploy` takes in its
# facts script) for as long as it acts and waits: a deploy half-way through must not have
# units restarted under it, and a deploy must not start while units are being restarted.
# A service handed to the cluster (`hostctl k8s handoff`) is not started on the hosts by
# hand either: its handoff record (in_cluster) is checked under the same lock.
LOCKED_EXIT = 75  # EX_TEMPFAIL: someone else holds the lock
IN_CLUSTER_EXIT = 76
DONE = {"start": "started", "stop": "stopped", "restart": "restarted"}


def locked_action_script(action: str, units: Sequence[str], lock_record: str,
                         refuse_in_cluster: str | None = None) -> str:
    """Take the lock as deploy does (exit LOCKED_EXIT when someone holds it); with
    `refuse_in_cluster`, exit IN_CLUSTER_EXIT, printing its record, when that service is
    handed to the cluster; else run `systemctl ACTION` on the units."""
    lines = take_lock_lines(lock_record, held_exit=LOCKED_EXIT)
    if refuse_in_cluster:
        record = shlex.quote(f"{L.CLUSTER_DIR}/{refuse_in_cluster}")
        lines += [
            f"if [ -f {record} ]; then",
            f"  echo '@@cluster'; printf '%s ' {shlex.quote(refuse_in_cluster)}",
            f"  head -c 4096 {record} | tr -d '\\n'; echo; exit {IN_CLUSTER_EXIT}",
            "fi",
        ]
    lines.append("exec " + shlex.join(action_argv(action, units)))
    return "\n".join(lines) + "\n"


def in_cluster_message(host: str, stdout: str, action: str) -> str | None:
    records = parse_handed_off(split_sections(stdout).get("cluster", []))
    if not records:
        return None
    service, record = next(iter(records.items()))
    since = f" since {record['time']}" if record.get("time") else ""
    by = f" (handed off by {record['who']})" if record.get("who") else ""
    return (f"{host}: nothing {DONE[action]}: {service} lives in the cluster{since}{by}; "
            f"`hostctl k8s handoff --back {service}` brings it back to the hosts")


def lock_message(host: str, stdout: str, action: str) -> str | None:
    """The refusal when the host's lock is held (None when it was not), naming the holder
    as deploy does (hosts.lock.held_by). Day-two commands have no --force-unlock: deploy's."""
    sections = split_sections(stdout)
    lock = parse_lock(sections)
    if not lock.held:
        return None
    now = int((sections.get("now") or ["0"])[0] or 0)
    return (f"{host}: nothing {DONE[action]}: {held_by(lock, now)}; wait for it to end and "
            "retry (a lock left by a run that died is broken by `hostctl deploy "
            "--force-unlock`)")


# -- logs --------------------------------------------------------------------------------

@dataclass(frozen=True)
class LogEntry:
    host: str
    unit: str
    label: str
    time_us: int
    cursor: str
    message: str


def parse_journal(target: LogTarget, text: str) -> list[LogEntry]:
    """Entries from `journalctl --output=json`; lines that are not JSON are skipped."""
    out = []
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut short; the cursor of the previous one still holds
        if not isinstance(entry, dict) or "__CURSOR" not in entry:
            continue
        unit = _unit_of(entry, target.units)
        out.append(LogEntry(
            host=target.host, unit=unit, label=target.label_of(unit),
            time_us=_int(entry.get("__REALTIME_TIMESTAMP")), cursor=str(entry["__CURSOR"]),
            message=_message(entry.get("MESSAGE"))))
    return out


def _unit_of(entry: Mapping[str, Any], patterns: Sequence[str]) -> str:
    names = [str(entry[k]) for k in UNIT_FIELDS if isinstance(entry.get(k), str)]
    for name in names:
        if any(fnmatch.fnmatchcase(name, p) for p in patterns):
            return name
    # journalctl only returns entries of these units; with one unit asked, it is that one.
    if len(patterns) == 1 and "*" not in patterns[0]:
        return patterns[0]
    return names[0] if names else "?"


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _message(value: Any) -> str:
    """journald's MESSAGE: a string, or a list of byte values when it is not valid UTF-8."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(b, int) for b in value):
        return bytes(b & 0xFF for b in value).decode("utf-8", errors="replace")
    return "" if value is None else str(value)


def format_entry(entry: LogEntry, prefixed: bool) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.time_us / 1e6))
    prefix = f"{entry.label} | " if prefixed else ""
    return f"{prefix}{stamp} {entry.message}"


@dataclass
class LogReader:
    """Reads the journals of some targets, remembering per host where it stopped."""

    runners: Mapping[str, Runner | RunnerError]
    targets: Sequence[LogTarget]
    cursors: dict[str, str | None] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)  # consecutive, per host

    @property
    def prefixed(self) -> bool:
        """Name the instance on each line when more than one could have written it."""
        return (len(self.targets) > 1 or len(self.targets[0].units) > 1
                or any("*" in u for u in self.targets[0].units))

    @property
    def live(self) -> list[LogTarget]:
        return [t for t in self.targets if self.failures.get(t.host, 0) < FOLLOW_MAX_ERRORS]

    def first(self, lines: int, follow: bool) -> tuple[list[LogEntry], list[str]]:
        """The last `lines` entries of each host (merged by time), and one error per host
        that could not be read. When following, at least one entry is read to get a
        cursor to resume from, even with --lines 0."""
        ask = max(lines, 1) if follow else lines

        def read(t: LogTarget, runner: Runner) -> list[LogEntry]:
            entries = self._read(t, runner, journal_argv(t.units, lines=ask))
            return entries[-lines:] if lines else []

        return self._each(self.targets, read, fatal=True)

    def poll(self) -> tuple[list[LogEntry], list[str]]:
        """Entries written since the last read, on every host still followed."""

        def read(t: LogTarget, runner: Runner) -> list[LogEntry]:
            cursor = self.cursors.get(t.host)
            # No cursor: the journal had nothing for these units, so all of it is new.
            return self._read(t, runner, journal_argv(t.units, after_cursor=cursor))

        return self._each(self.live, read, fatal=False)

    def _read(self, t: LogTarget, runner: Runner, argv: list[str]) -> list[LogEntry]:
        res = runner.run(argv, timeout=JOURNAL_TIMEOUT)
        if not res.ok:
            raise HostctlError(f"{t.host}: journalctl failed: {_last_line(res)}")
        entries = parse_journal(t, res.stdout)
        if entries:
            self.cursors[t.host] = entries[-1].cursor
        else:
            self.cursors.setdefault(t.host, None)
        return entries

    def _each(self, targets: Sequence[LogTarget],
              read: Callable[[LogTarget, Runner], list[LogEntry]],
              fatal: bool) -> tuple[list[LogEntry], list[str]]:
        by_host = {t.host: t for t in targets}
        runners = {h: self.runners[h] for h in by_host}
        results = run_parallel(runners, lambda r: read(by_host[r.host], r))
        entries: list[LogEntry] = []
        errors: list[str] = []
        for host, res in results.items():
            if isinstance(res, Exception):
                # The first read, or a host that keeps failing, is given up on at once;
                # a follow poll that fails once (a blip) is retried on the next poll.
                self.failures[host] = (FOLLOW_MAX_ERRORS if fatal
                                       else self.failures.get(host, 0) + 1)
                if self.failures[host] >= FOLLOW_MAX_ERRORS:
                    errors.append(_error_text(host, res))
                continue
            self.failures[host] = 0
            entries.extend(res)
        # Hosts' clocks may differ a little; merging by time is still the best order.
        return sorted(entries, key=lambda e: e.time_us), errors


def follow(reader: LogReader, emit: Callable[[str], None], warn: Callable[[str], None], *,
           interval: float = 1.0, polls: int | None = None,
           sleep: Callable[[float], None] = time.sleep) -> bool:
    """Poll for new entries every `interval` seconds until interrupted (or `polls` polls).

    Each poll is one bounded journalctl per host. Returns False when every host was lost
    (nothing left to follow), True otherwise.
    """
    done = 0
    while polls is None or done < polls:
        if not reader.live:
            return False
        sleep(interval)
        entries, errors = reader.poll()
        for line in errors:
            warn(f"{line} (no longer followed)")
        for e in entries:
            emit(format_entry(e, reader.prefixed))
        done += 1
    return bool(reader.live)


def _last_line(res: Result) -> str:
    text = (res.stderr or res.stdout).strip().splitlines()
    return text[-1] if text else f"exit status {res.rc}"


def _error_text(host: str, exc: BaseException) -> str:
    if isinstance(exc, HostctlError):
        return host_error(host, str(exc))
    return f"{host}: unexpected error: {exc!r}"


# -- exec --------------------------------------------------------------------------------

def exec_in(runner: Runner, inst: Instance, command: Sequence[str],
            timeout: float | None) -> tuple[Result, str | None]:
    """Run `command` in the instance's container: its result, and a hint when Docker (not
    the command) failed because the container is not there or not running."""
    res = runner.run(exec_argv(inst.host.docker, inst.name, command), timeout=timeout)
    hint = None
    if res.rc != 0 and ("No such container" in res.stderr or "is not running" in res.stderr):
        hint = (f"{inst.name} is not running on {inst.host.name}; `hostctl status` shows its "
                f"unit, `hostctl logs {inst.workload.name}` why")
    return res, hint


# -- start / stop / restart --------------------------------------------------------------

@dataclass(frozen=True)
class UnitOutcome:
    unit: str
    label: str
    state: UnitState
    ok: bool
    detail: str
    log: tuple[str, ...] = ()


@dataclass
class ActionOutcome:
    host: str
    action: str
    units: list[UnitOutcome] = field(default_factory=list)
    error: str | None = None  # the host could not be asked, or systemctl refused
    audit_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(u.ok for u in self.units)


def is_up(s: UnitState) -> bool:
    return s.active == "active"


def is_down(s: UnitState) -> bool:
    """Stopped: nothing runs. `failed` counts too: a container stopped by SIGTERM makes
    `docker run` exit 143, which systemd records as a failure of the stop it asked for."""
    return s.active in ("inactive", "failed") or s.load == "not-found"


def read_states(runner: Runner, units: Sequence[str]) -> dict[str, UnitState]:
    res = runner.run(show_argv(units), timeout=SHOW_TIMEOUT)
    if not res.ok:
        raise HostctlError(f"{runner.host}: systemctl show failed: {_last_line(res)}")
    return parse_units(res.stdout.splitlines())


def wait_up(runner: Runner, units: Sequence[str], wait: float, *,
            interval: float = 1.0, stable: float = STABLE_SECONDS,
            clock: Callable[[], float] = time.monotonic,
            sleep: Callable[[float], None] = time.sleep) -> tuple[dict[str, UnitState], set[str]]:
    """Poll until every unit has stayed active for `stable` seconds, or `wait` runs out.

    `systemctl start` returns once `docker run` is exec'd (Type=exec), so "active" right
    after it proves little: a container that dies at once leaves the unit in auto-restart
    a moment later. Staying active across polls `stable` seconds apart, with the same
    activation (no restart in between), is the evidence asked for. Returns the last
    states and the units seen stable.
    """
    deadline = clock() + wait
    seen: dict[str, tuple[float, tuple[str, int]]] = {}  # unit -> (first seen up, activation)
    stable_units: set[str] = set()
    # Bounded twice: by the deadline, and by a poll count in case the clock stands still.
    for _ in range(int((wait + stable) / max(interval, 0.01)) + 2):
        states = read_states(runner, units)
        now = clock()
        stable_units = set()
        for unit in units:
            s = states.get(unit)
            if s is None or not is_up(s):
                seen.pop(unit, None)
                continue
            key = (s.active_enter, s.restarts)
            if unit not in seen or seen[unit][1] != key:
                seen[unit] = (now, key)
            if now - seen[unit][0] >= stable:
                stable_units.add(unit)
        settled = all(u in stable_units or _hopeless(states.get(u)) for u in units)
        if settled or now >= deadline:
            return states, stable_units
        sleep(interval)
    return states, stable_units


def _hopeless(s: UnitState | None) -> bool:
    """Waiting longer cannot make this unit come up by itself."""
    return s is None or s.load == "not-found" or s.active in ("failed", "inactive")


def _describe(s: UnitState) -> str:
    if s.load == "not-found":
        return "not on the host (not deployed?)"
    text = s.state
    if s.result and s.result != "success":
        text += f", result {s.result}"
    if s.restarts:
        text += f", {_count(s.restarts, 'restart')}"
    return text


def unit_action(runners: Mapping[str, Runner | RunnerError], action: str,
                instances: Sequence[Instance], *, wait: float = 60.0,
                audit: Mapping[str, Any] | None = None, interval: float = 1.0,
                clock: Callable[[], float] = time.monotonic,
                sleep: Callable[[float], None] = time.sleep,
                lock_record: str | None = None,
                refuse_in_cluster: str | None = None) -> dict[str, ActionOutcome]:
    """`systemctl ACTION` on the instances' units, every host in parallel, then each unit's
    resulting state (waiting, bounded, for start/restart to hold), the journal tail of the
    units that did not end as asked, and an audit record on the host.

    With `lock_record`, each host's deploy lock is taken in the same round trip as the
    action and released after the wait: a host locked by someone else is left untouched
    and reported. With `refuse_in_cluster` (a service name) too, a host where that service
    is recorded as handed to the cluster is left untouched and reported."""
    by_host: dict[str, list[Instance]] = {}
    for inst in instances:
        by_host.setdefault(inst.host.name, []).append(inst)

    def one(runner: Runner) -> ActionOutcome:
        if lock_record is None:
            return act(runner)
        try:
            return act(runner)
        finally:
            runner.run(unlock_argv(lock_record), timeout=SHOW_TIMEOUT)

    def act(runner: Runner) -> ActionOutcome:
        insts = by_host[runner.host]
        units = [i.unit for i in insts]
        labels = {i.unit: label(i) for i in insts}
        out = ActionOutcome(runner.host, action)
        if lock_record is None:
            res = runner.run(action_argv(action, units), timeout=ACTION_TIMEOUT)
        else:
            script = locked_action_script(action, units, lock_record, refuse_in_cluster)
            res = runner.run(["sh", "-s"], stdin=script.encode(), timeout=ACTION_TIMEOUT)
            refused = (lock_message(runner.host, res.stdout, action) if res.rc == LOCKED_EXIT
                       else in_cluster_message(runner.host, res.stdout, action)
                       if res.rc == IN_CLUSTER_EXIT else None)
            if refused:  # nothing was done: no states to wait for, nothing to audit
                out.error = refused
                return out
        if not res.ok:
            out.error = f"{runner.host}: systemctl {action} failed: {_last_line(res)}"
        stable: set[str] = set()
        if action == "stop":
            states = read_states(runner, units)
        else:
            states, stable = wait_up(runner, units, wait, interval=interval, clock=clock,
                                     sleep=sleep)
        for unit in units:
            s = states.get(unit, UnitState(unit, load="not-found"))
            ok = is_down(s) if action == "stop" else unit in stable
            log: tuple[str, ...] = ()
            if not ok and s.load != "not-found":
                tail = runner.run(unit_log_argv(unit), timeout=JOURNAL_TIMEOUT)
                log = tuple(tail.stdout.splitlines()[-FAILURE_LOG_LINES:])
            out.units.append(UnitOutcome(unit, labels[unit], s, ok, _describe(s), log))
        if audit is not None:
            out.audit_error = _append_audit(runner, audit, out)
        return out

    hosts = {h: runners[h] for h in by_host}
    results = run_parallel(hosts, one)
    outcomes: dict[str, ActionOutcome] = {}
    for host, res in results.items():
        if isinstance(res, ActionOutcome):
            outcomes[host] = res
        else:
            outcomes[host] = ActionOutcome(host, action, error=_error_text(host, res))
    return outcomes


def audit_record(base: Mapping[str, Any], outcome: ActionOutcome) -> dict[str, Any]:
    """The line appended to the host's audit log (the same log deploys write)."""
    return build_audit_record(
        base, outcome.host, outcome.action if outcome.ok else f"{outcome.action} failed",
        outcome.error or "", [u.unit for u in outcome.units if not u.ok],
        units={u.unit: u.state.state for u in outcome.units})


def _append_audit(runner: Runner, base: Mapping[str, Any], out: ActionOutcome) -> str | None:
    script = audit_script(audit_record(base, out))
    try:
        res = runner.run(["sh", "-s"], stdin=script.encode(), timeout=SHOW_TIMEOUT)
    except RunnerError as exc:
        return str(exc)
    return None if res.ok else f"could not write the audit log: {_last_line(res)}"


def action_lines(outcomes: Mapping[str, ActionOutcome]) -> list[str]:
    """Text report: one line per unit, the journal tail under the ones that failed."""
    lines: list[str] = []
    for host, out in outcomes.items():
        if out.error:
            lines.append(host_error(host, out.error))
        for u in out.units:
            verdict = "ok" if u.ok else "FAILED"
            lines.append(f"{u.label}  {u.unit}  {verdict}  {u.detail}")
            for log in u.log:
                lines.append(f"    | {log}")
        if out.audit_error:
            lines.append(f"{host}: warning: {out.audit_error}")
    return lines


def action_json(outcomes: Mapping[str, ActionOutcome]) -> dict[str, Any]:
    return {"ok": all(o.ok for o in outcomes.values()), "hosts": {
        host: {"ok": o.ok, "action": o.action, "error": o.error, "audit_error": o.audit_error,
               "units": [{"unit": u.unit, "instance": u.label, "ok": u.ok,
                          "state": u.state.state, "result": u.state.result or None,
                          "restarts": u.state.restarts, "since": u.state.since,
                          "detail": u.detail, "log": list(u.log)} for u in o.units]}
        for host, o in outcomes.items()}}
