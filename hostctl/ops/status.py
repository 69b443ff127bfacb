"""`hostctl status`: what every host runs, read in one round trip, compared with the specs.

`status_script` builds the shell script (pure) and `parse_status` reads its output (pure),
so the parser is tested on captured output. `host_report` compares a host's answer with
the site (pure) and marks drift; `report_lines` and `report_json` render it.

Secret-free by construction: the script reads unit files (for their spec-hash label),
`systemctl show`, `docker ps` and the current-release link; env files are never opened.
"""

from __future__ import annotations

import calendar
import re
import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from hostctl import layout as L
from hostctl.errors import HostctlError, printable
from hostctl.hosts import docker_api as A
from hostctl.hosts.facts import UnitState, split_sections
from hostctl.hosts.health_verdict import VERIFIED_SUFFIX, Records, verdict
from hostctl.hosts.unit_show import parse_units
from hostctl.k8s import handoff_records as in_cluster
from hostctl.layout import MARK
from hostctl.observability.shipping import (
    LogstashStats,
    drivers_job,
    parse_drivers,
    parse_stats,
    stats_job,
)
from hostctl.render.docker_cmd import LABEL
from hostctl.render.probe import host_probes
from hostctl.runner.base import Runner, RunnerError
from hostctl.runner.pool import run_parallel
from hostctl.spec import model as m
from hostctl.spec.hashing import spec_hash
from hostctl.spec.placement import UNIT_PREFIX, schedule_host, service_instances

VERSION = "1"
JOB_PREFIX = f"{UNIT_PREFIX}job-"
# StateChangeTimestamp is "since when" the unit is in its current state (active or not);
# ActiveEnterTimestamp is kept for JSON readers who want the last start.
UNIT_PROPERTIES = ("Id", "LoadState", "ActiveState", "SubState", "Result", "NRestarts",
                   "ActiveEnterTimestamp", "StateChangeTimestamp")
CONTAINER_FIELDS = ("Names", "Image", "State", "Status")
CONTAINER_LABELS = ("spec-hash", "workload", "project", "instance", "kind", "run")
SCRIPT_TIMEOUT = 60.0
SHORT_HASH = 8


class StatusError(HostctlError):
    """The host's answer is not what the status script prints (cut short, wrong shell...)."""


@dataclass(frozen=True)
class ContainerStatus:
    """One container with the io.hostctl.managed label, as `docker ps -a` shows it."""

    name: str
    image: str
    state: str  # running | exited | restarting | created | ...
    status: str  # Docker's human text: "Up 5 minutes (healthy)"
    labels: dict[str, str] = field(default_factory=dict)  # without the io.hostctl. prefix

    @property
    def health(self) -> str:
        """Docker's health verdict (healthy, unhealthy, starting), or "-" without a check."""
        return docker_health(self.status)

    @property
    def spec_hash(self) -> str:
        return self.labels.get("spec-hash", "")


@dataclass(frozen=True)
class HostStatus:
    """Everything `status_script` printed for one host."""

    host: str
    now: int = 0  # the host's clock, epoch seconds: ages are computed against it
    release: str | None = None
    docker_ok: bool = False
    docker_detail: str = ""
    unit_files: dict[str, str] = field(default_factory=dict)  # file name -> spec hash or ""
    units: dict[str, UnitState] = field(default_factory=dict)
    containers: dict[str, ContainerStatus] = field(default_factory=dict)
    # unit -> the health probe's state (hostctl.render.probe): health, failures, last_failure...
    probe: dict[str, dict[str, str]] = field(default_factory=dict)
    # unit -> when a deploy's health gate last saw it healthy (epoch seconds)
    verified: dict[str, int] = field(default_factory=dict)
    # service -> its handoff record: it lives in the k3s cluster (hostctl.k8s.handoff_records)
    handed_off: dict[str, dict[str, Any]] = field(default_factory=dict)
    # GPUs busy with a compute process hostctl did not start, as its job queue last saw
    # them (nvidia-smi): (device, pid, process name, memory)
    foreign_gpus: tuple[tuple[str, str, str, str], ...] = ()
    # container -> its log driver, on a site that ships logs (status_script's `drivers`)
    log_drivers: dict[str, str] = field(default_factory=dict)
    # Logstash's counters, on its host (status_script's `logstash`); None when it did not
    # answer, or was not asked
    logstash: LogstashStats | None = None


@dataclass(frozen=True)
class ProbeState:
    """What the host's health probe last recorded for a unit."""

    health: str = ""  # healthy | unhealthy | starting | inactive | restarting
    restarts: int = 0  # restarts by the probe
    last_failure: int | None = None  # epoch seconds
    last_reason: str = ""
    last_restart: int | None = None
    last_check: int | None = None  # epoch seconds of its last check (healthy or not)

    @staticmethod
    def of(values: Mapping[str, str] | None) -> ProbeState | None:
        if not values:
            return None

        def num(key: str) -> int:
            v = values.get(key, "")
            return int(v) if v.isdigit() else 0

        return ProbeState(values.get("health", ""), num("restarts"),
                          num("last_failure") or None, values.get("last_reason", ""),
                          num("last_restart") or None, num("last_check") or None)


# -- the script and its parser -----------------------------------------------------------

# awk over the files given: for each, `f` its path and `n` its name (the path's last part).
_AWK_EACH = "BEGIN { for (i = 1; i < ARGC; i++) { f = ARGV[i]; n = f; sub(/.*\\//, \"\", n); "


def _each_file(globs: str, command: str) -> list[str]:
    """Run `command` once with every regular file the globs name as "$@" (not at all when
    there is none)."""
    return ["set --",
            f"for f in {globs}; do [ -f \"$f\" ] && set -- \"$@\" \"$f\"; done",
            f"[ $# -eq 0 ] || {command}"]


def status_script(docker: str, drivers: bool = False, logstash: bool = False) -> str:
    """The script that prints a host's status. Read-only; env files are never opened.
    `drivers`: each hostctl container's log driver too (a site that ships logs);
    `logstash`: Logstash's counters too (its host). Both in the background, with the rest."""
    d = shlex.quote(docker)
    files = f"{L.UNIT_DIR}/{UNIT_PREFIX}*.service {L.UNIT_DIR}/{UNIT_PREFIX}*.timer"
    props = ",".join(UNIT_PROPERTIES)
    label_re = LABEL.replace(".", "\\.")  # the label as a sed regex
    fmt = "\\t".join([*(f"{{{{.{f}}}}}" for f in CONTAINER_FIELDS),
                      *(f'{{{{.Label "{LABEL}.{k}"}}}}' for k in CONTAINER_LABELS)])
    # Docker's two questions go in at once, in the background, while the shell reads files
    # and systemd (hosts.docker_api: one docker process for both; the docker commands where
    # that fails). Each section reads all its files with one process (a process a file made
    # the script's time grow with the services).
    cli = [
        f"( if out=$({d} version --format '{{{{.Server.Version}}}}' 2>&1); "
        "then echo \"ok $out\"; else echo \"down $(printf '%s' \"$out\" | tail -n 1)\"; fi "
        '>"$T/docker" ) &',
        f"( {d} ps -a --no-trunc --filter label={LABEL}.managed=true --format '{fmt}' "
        '>"$T/ps" 2>/dev/null ) &',
        "wait",
        f"echo '{MARK}docker'",
        'cat "$T/docker"',
        f"echo '{MARK}containers'",
        'cat "$T/ps"',
    ]
    lines = [
        # C locale and UTC: systemctl prints timestamps as "Tue 2024-05-14 10:00:00 UTC",
        # which the parser reads without guessing a time zone or a day-name language.
        "export LC_ALL=C TZ=UTC",
        f"echo '{MARK}hostctl-status {VERSION}'",
        f"echo \"{MARK}now $(date +%s)\"",
        f"r=$(readlink {L.CURRENT_LINK} 2>/dev/null); echo \"{MARK}release ${{r##*/}}\"",
        'T=$(mktemp -d)',
        *A.api_lines(docker, [A.VERSION, A.CONTAINERS]),
        *([drivers_job(docker, '"$T/drivers"')] if drivers else []),
        *([stats_job(docker, '"$T/logstash"')] if logstash else []),
        f"echo '{MARK}unitfiles'",
        # The spec hash is a label on the unit's `docker run` line: it says which spec the
        # unit file was rendered from, even while its container is not running. Per file:
        # its name and the label's value, the last on the first line that has it.
        *_each_file(files, "awk '" + _AWK_EACH + "{ h = \"\"; "
                    "while ((getline line < f) > 0) { found = 0; "
                    f"while (match(line, /{label_re}\\.spec-hash=[0-9a-f]*/)) {{ "
                    f"h = substr(line, RSTART + {len(LABEL) + 11}, RLENGTH - "
                    f"{len(LABEL) + 11}); found = 1; line = substr(line, RSTART + 1) }} "
                    "if (found) break } close(f); print n \" \" h } } }' \"$@\""),
        f"echo '{MARK}units'",
        # Unit files, plus units systemd still has loaded without a file (a removed unit
        # still running) and running job instances (hostctl-job-x@run.service).
        "units=$( { for f in " + files + "; do [ -f \"$f\" ] && echo \"${f##*/}\"; done",
        f"  systemctl list-units --all --plain --no-legend --full '{UNIT_PREFIX}*' "
        "2>/dev/null | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^"
        + UNIT_PREFIX + ".*\\.(service|timer)$/) { print $i; break } }'",
        "} | grep -v '@\\.service$' | sort -u)",
        f"[ -n \"$units\" ] && systemctl show --property={props} -- $units",
        # The health probe's state per unit (hostctl.render.probe), as "UNIT KEY=VALUE" lines.
        f"echo '{MARK}probe'",
        *_each_file(f"{L.HEALTH_DIR}/*.state", "awk '" + _AWK_EACH + "{ sub(/\\.state$/, "
                    "\"\", n); while ((getline line < f) > 0) print n \" \" line; close(f) } } }' "
                    '"$@"'),
        # When a deploy's health gate last saw each unit healthy, as "UNIT EPOCH" lines
        # (the digits of the file's first 20 bytes).
        f"echo '{MARK}verified'",
        *_each_file(f"{L.HEALTH_DIR}/*{VERIFIED_SUFFIX}", "awk '" + _AWK_EACH + "{ "
                    f"sub(/{re.escape(VERIFIED_SUFFIX)}$/, \"\", n); t = \"\"; "
                    "while (length(t) < 20 && (getline line < f) > 0) t = t line \"\\n\"; "
                    "close(f); t = substr(t, 1, 20); gsub(/[^0-9]/, \"\", t); "
                    "print n \" \" t } } }' \"$@\""),
        # Services handed to the cluster: shown as "in cluster", not as down.
        in_cluster.records_script().rstrip("\n"),
        f"echo '{MARK}gpu-foreign'",
        f"cat {L.STATE_DIR}/gpu/foreign 2>/dev/null",
        "wait",
        *A.answer_lines(cli),
        *([f"echo '{MARK}drivers'", 'cat "$T/drivers" 2>/dev/null'] if drivers else []),
        # base64 on one line: JSON may hold any text, and a line of it must not pass for a
        # section mark
        *([f"echo '{MARK}logstash'", '[ -s "$T/logstash" ] && base64 -w0 "$T/logstash"; echo']
          if logstash else []),
        'rm -rf "$T"',
        f"echo '{MARK}end'",
    ]
    return "\n".join(lines) + "\n"


def parse_status(host: str, text: str) -> HostStatus:
    """Read `status_script` output; raise StatusError when it was cut short."""
    sections = split_sections(text)
    if "end" not in sections:
        raise StatusError(f"{host}: incomplete answer from the host (no end marker); "
                          "is /bin/sh a POSIX shell there?")
    docker = (sections.get("docker") or [""])[0]
    containers = _containers(sections.get("containers", []))
    if A.SECTION in sections:
        docker, containers = _engine_answers(host, sections[A.SECTION])
    now_text = (sections.get("now") or ["0"])[0].strip()
    release = (sections.get("release") or [""])[0].strip()
    return HostStatus(
        host=host,
        now=int(now_text) if now_text.isdigit() else 0,
        release=release or None,
        docker_ok=docker.startswith("ok "),
        docker_detail=docker.partition(" ")[2].strip(),
        unit_files=_unit_files(sections.get("unitfiles", [])),
        units=parse_units(sections.get("units", [])),
        containers=containers,
        probe=_probe_states(sections.get("probe", [])),
        verified=_verified(sections.get("verified", [])),
        handed_off=in_cluster.parse_records(sections.get("cluster", [])),
        foreign_gpus=_foreign_gpus(sections.get("gpu-foreign", [])),
        log_drivers=parse_drivers("\n".join(sections.get("drivers", []))),
        logstash=_logstash(sections.get("logstash", [])),
    )


def _logstash(lines: list[str]) -> LogstashStats | None:
    """The `@@logstash` section (Logstash's counters, base64); None when empty or garbled."""
    try:
        text = A.base64_bytes("".join(lines)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return parse_stats(text) if text else None


def _engine_answers(host: str, lines: list[str]) -> tuple[str, dict[str, ContainerStatus]]:
    """The `@@api` section (answers to VERSION and CONTAINERS) as the docker commands' two
    sections read: "ok VERSION", and the containers."""
    try:
        version, found = A.section_answers(host, lines, 2)[:2]
    except A.DockerApiError as exc:
        raise StatusError(str(exc)) from None
    out = {}
    prefix = LABEL + "."
    for c in A.containers(found):
        name = A.container_name(c)
        if not name:
            continue
        labels = {k[len(prefix):]: v for k, v in A.labels(c).items()
                  if k.startswith(prefix) and k[len(prefix):] in CONTAINER_LABELS and v}
        out[name] = ContainerStatus(name, str(c.get("Image", "")), str(c.get("State", "")),
                                    str(c.get("Status", "")), labels)
    server = version.get("Version", "") if isinstance(version, dict) else ""
    return f"ok {server}", out


def _foreign_gpus(lines: list[str]) -> tuple[tuple[str, str, str, str], ...]:
    """The job queue's gpu/foreign: DEV TAB PID TAB NAME TAB MEMORY a line."""
    out = []
    for line in lines:
        parts = line.split("\t")
        if len(parts) == 4 and parts[1].isdigit():
            out.append((parts[0], parts[1], parts[2], parts[3]))
    return tuple(out)


def _probe_states(lines: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for line in lines:
        unit, _, kv = line.partition(" ")
        key, eq, value = kv.partition("=")
        if unit and eq:
            out.setdefault(unit, {})[key] = value
    return out


def _verified(lines: list[str]) -> dict[str, int]:
    out = {}
    for line in lines:
        unit, _, stamp = line.partition(" ")
        if unit and stamp.strip().isdigit():
            out[unit] = int(stamp)
    return out


def _unit_files(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        name, _, digest = line.partition(" ")
        if name:
            out[name] = digest.strip()
    return out


def _containers(lines: list[str]) -> dict[str, ContainerStatus]:
    out = {}
    width = len(CONTAINER_FIELDS) + len(CONTAINER_LABELS)
    for line in lines:
        parts = line.split("\t")
        if len(parts) != width or not parts[0]:
            continue  # not a line of our format (a docker warning, a cut line)
        name, image, state, status = parts[:4]
        labels = {k: v for k, v in zip(CONTAINER_LABELS, parts[4:], strict=True) if v}
        out[name] = ContainerStatus(name, image, state, status, labels)
    return out


_HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")


def docker_health(status: str) -> str:
    """The health part of `docker ps`'s status text: "Up 2 hours (healthy)" -> healthy."""
    found = _HEALTH.search(status)
    if not found:
        return "-"
    return "starting" if found.group(1) == "health: starting" else found.group(1)


# -- reading hosts -----------------------------------------------------------------------

def read_statuses(site: m.Site, runners: Mapping[str, Runner | RunnerError]
                  ) -> dict[str, HostStatus | Exception]:
    """Run the status script on every host in parallel: one round trip per host."""

    log = site.inventory.logging

    def read(runner: Runner) -> HostStatus:
        docker = site.inventory.hosts[runner.host].docker
        script = status_script(docker, drivers=log is not None,
                               logstash=log is not None and log.host == runner.host)
        res = runner.run(["sh", "-s"], stdin=script.encode(), timeout=SCRIPT_TIMEOUT)
        return parse_status(runner.host, res.stdout)

    return run_parallel(runners, read)


# -- comparing with the specs ------------------------------------------------------------

@dataclass(frozen=True)
class Expected:
    """A unit the specs put on this host."""

    workload: m.Workload
    instance: str  # "1", "2", ... for services; "timer" for a job's schedule
    container: str | None  # the container the unit runs (None for timers)
    spec_hash: str
    template: str | None = None  # for timers: the unit file that carries the spec hash


@dataclass(frozen=True)
class Row:
    """One line of a host's table: a unit, or a container that has none."""

    service: str
    instance: str
    unit: str | None
    state: str  # unit state, "missing" (in the specs, not on the host) or "no unit"
    result: str  # systemd's Result= of the last run: success, exit-code, oom-kill, ...
    restarts: int
    health: str
    container: str | None
    container_state: str
    image: str
    spec_hash: str  # what the host has ("" when unknown)
    want_hash: str | None  # what the specs say now (None: not in the specs)
    since: int | None
    drift: tuple[str, ...] = ()
    probe: ProbeState | None = None  # the host's health probe's record of this unit

    @property
    def ok(self) -> bool:
        """Running as it should: active, not unhealthy, no drift (or stopped because it
        lives in the cluster)."""
        up = self.state.startswith("active/") or self.state in ("active", IN_CLUSTER)
        return up and self.health in ("-", "healthy") and not self.drift


@dataclass(frozen=True)
class HostReport:
    host: str
    status: HostStatus | None = None
    rows: tuple[Row, ...] = ()
    error: str | None = None  # why the host could not be read

    @property
    def drift(self) -> bool:
        return any(r.drift for r in self.rows)


def expected_units(site: m.Site, host: str) -> dict[str, Expected]:
    """Every unit the specs place on `host`, in spec order: service instances and timers."""
    inv = site.inventory
    out: dict[str, Expected] = {}
    for w in site.workloads:
        if w.is_job:
            placed = schedule_host(w, inv) if w.schedule else None
            if placed is not None and placed.name == host:
                out[f"{JOB_PREFIX}{w.name}.timer"] = Expected(
                    w, "timer", None, spec_hash(w), template=f"{JOB_PREFIX}{w.name}@.service")
            continue
        for inst in service_instances(w, inv):
            if inst.host.name == host:
                out[inst.unit] = Expected(w, str(inst.index), inst.name, spec_hash(w))
    return out


def _job_run(unit: str) -> tuple[str, str] | None:
    """`hostctl-job-x@7.service` -> ("x", "7"); None for anything else."""
    if not (unit.startswith(JOB_PREFIX) and unit.endswith(".service") and "@" in unit):
        return None
    name, _, run = unit[len(JOB_PREFIX):-len(".service")].partition("@")
    return (name, run) if name and run else None


def _short(digest: str | None) -> str:
    return (digest or "")[:SHORT_HASH]


def _hash_drift(service: str, exp: Expected, file_hash: str,
                c: ContainerStatus | None) -> list[str]:
    want = exp.spec_hash
    if c is not None and c.spec_hash and c.spec_hash != want:
        hint = (f"its unit file is up to date: `hostctl restart {service}`" if file_hash == want
                else "`hostctl deploy` updates it")
        return [f"runs spec {_short(c.spec_hash)}, the specs say {_short(want)} ({hint})"]
    if file_hash and file_hash != want:
        return [f"unit file has spec {_short(file_hash)}, the specs say {_short(want)} "
                "(`hostctl deploy` updates it)"]
    return []


IN_CLUSTER = "in cluster"
EXPORTER_UNIT = "hostctl-exporter.service"
PROBE_TIMER = "hostctl-probe.timer"  # hostctl.render.probe.TIMER_UNIT
PROBE_UNITS = (PROBE_TIMER, "hostctl-probe@tick.service")


def host_report(site: m.Site, st: HostStatus) -> HostReport:
    """Rows for every unit the specs expect or the host has, with drift marked."""
    expected = expected_units(site, st.host)
    jobs_here = {w.name for w in site.jobs}
    rows: list[Row] = []
    seen_containers: set[str] = set()

    def make(service: str, instance: str, unit: str | None, u: UnitState | None,
             c: ContainerStatus | None, have_hash: str, want: str | None,
             drift: list[str], state: str | None = None) -> Row:
        if c is not None:
            seen_containers.add(c.name)
        probe = ProbeState.of(st.probe.get(unit)) if unit else None
        health = c.health if c else "-"
        if unit is not None:  # the one rule, shared with the exporter (hosts.health_verdict)
            health = verdict(health, Records.of(st.probe.get(unit), st.verified.get(unit)),
                             u.started if u is not None else None)
        return Row(
            service=service, instance=instance, unit=unit,
            state=state or (u.state if u else "missing"), result=u.result if u else "",
            restarts=u.restarts if u else 0,
            health=health, container=c.name if c else None,
            container_state=c.state if c else "", image=c.image if c else "-",
            spec_hash=(c.spec_hash if c and c.spec_hash else have_hash), want_hash=want,
            since=u.since if u else None, drift=tuple(drift), probe=probe)

    for unit, exp in expected.items():
        u = st.units.get(unit)
        c = st.containers.get(exp.container) if exp.container else None
        file_hash = st.unit_files.get(exp.template or unit, "")
        if u is None or u.load == "not-found":
            drift = ["not deployed: the unit is missing on the host (`hostctl deploy`)"]
        else:
            drift = _hash_drift(exp.workload.name, exp, file_hash, c)
        row = make(exp.workload.name, exp.instance, unit, u, c, file_hash, exp.spec_hash,
                   drift)
        record = st.handed_off.get(exp.workload.name)
        if record is not None and exp.container is not None:
            row = _in_cluster(row, record, u)
        rows.append(row)

    known = set(expected)
    if site.inventory.metrics is not None:  # the metrics exporter: no container, no spec
        known.add(EXPORTER_UNIT)
        u = st.units.get(EXPORTER_UNIT)
        drift = [] if u is not None and u.load != "not-found" else [
            "not deployed: the metrics exporter is missing on the host (`hostctl deploy`)"]
        rows.append(make("hostctl-exporter", "-", EXPORTER_UNIT, u, None,
                         st.unit_files.get(EXPORTER_UNIT, ""), None, drift))

    # The health probe: a row only when its timer is there but not running (a host
    # deployed before the probe existed gets it, and `plan` says so, at the next deploy).
    known.update(PROBE_UNITS)
    host = site.inventory.hosts.get(st.host)
    probe_timer = st.units.get(PROBE_TIMER)
    if (host is not None and host_probes(site, host) and probe_timer is not None
            and probe_timer.load != "not-found" and probe_timer.active != "active"):
        rows.append(make(L.PROBE_WORKLOAD, "-", PROBE_TIMER, probe_timer, None, "", None,
                         ["the health probe is not running: unhealthy services are not "
                          "restarted (`systemctl start hostctl-probe.timer`, or deploy)"]))

    for unit in sorted(set(st.units) - known):
        u = st.units[unit]
        run = _job_run(unit)
        if run is not None:
            name, run_id = run
            c = st.containers.get(f"{JOB_PREFIX}{name}-{run_id}")
            if u.active == "inactive" and c is None:
                # A timer keeps its run unit loaded between runs; only a run in progress
                # or one that failed says something.
                continue
            drift = [] if name in jobs_here else [
                "not in the specs: a job run of a job the specs no longer have"]
            want = next((spec_hash(w) for w in site.jobs if w.name == name), None)
            rows.append(make(name, f"run {run_id}", unit, u, c, "", want, drift))
            continue
        stem = unit.removesuffix(".service").removesuffix(".timer")
        c = st.containers.get(stem) if unit.endswith(".service") else None
        service = (c.labels.get("workload") if c else None) or _workload_of(unit)
        rows.append(make(service, (c.labels.get("instance", "?") if c else "?"), unit, u, c,
                         st.unit_files.get(unit, ""), None,
                         ["not in the specs: the next `hostctl deploy` removes it"]))

    for name, c in sorted(st.containers.items()):
        if name in seen_containers:
            continue
        service = c.labels.get("workload", name)
        instance = (f"run {c.labels['run']}" if c.labels.get("kind") == "job" and
                    c.labels.get("run") else c.labels.get("instance", "?"))
        rows.append(make(service, instance, None, None, c, "", None,
                         [f"container without a unit: systemd does not manage it (remove it "
                          f"with `docker rm -f {name}` on the host, or deploy)"],
                         state="no unit"))
    return HostReport(st.host, st, tuple(rows))


def _in_cluster(row: Row, record: Mapping[str, Any], u: UnitState | None) -> Row:
    """A unit of a service handed to the cluster: stopped is as it should be."""
    since = _record_time(record.get("time"))
    if u is not None and u.active in ("active", "activating", "reloading"):
        return replace(row, drift=(*row.drift, f"handed to the cluster{_since(record)}, yet "
                                   "running here too: `hostctl stop` it, or `hostctl k8s "
                                   f"handoff --back {row.service}`"))
    return replace(row, state=IN_CLUSTER, result="", restarts=0, since=since or row.since,
                   health="-")


def _since(record: Mapping[str, Any]) -> str:
    return f" since {record['time']}" if record.get("time") else ""


def _record_time(text: Any) -> int | None:
    try:
        return calendar.timegm(time.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return None


def _workload_of(unit: str) -> str:
    """Best guess of a workload name from a unit hostctl named: hostctl-<name>-<i>.service."""
    stem = unit.removeprefix(UNIT_PREFIX)
    if stem.endswith(".timer"):
        return stem.removesuffix(".timer").removeprefix("job-")
    return stem.removesuffix(".service").rsplit("-", 1)[0]


def build_reports(site: m.Site, results: Mapping[str, HostStatus | Exception]
                  ) -> dict[str, HostReport]:
    """A report per host in the order given; a host that failed keeps one error line."""
    out: dict[str, HostReport] = {}
    for host, res in results.items():
        if isinstance(res, HostStatus):
            out[host] = host_report(site, res)
        elif isinstance(res, HostctlError):
            out[host] = HostReport(host, error=str(res))
        else:  # a bug, but still one host's: say so and keep the others
            out[host] = HostReport(host, error=f"{host}: unexpected error: {res!r}")
    return out


# -- rendering ---------------------------------------------------------------------------

def age(seconds: float) -> str:
    """A compact age: 45s, 12m, 3h12m, 2d3h."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        h, m_ = divmod(s // 60, 60)
        return f"{h}h{m_:02d}m" if m_ else f"{h}h"
    d, h = divmod(s // 3600, 24)
    return f"{d}d{h}h" if h else f"{d}d"


def since_text(since: int | None, now: int) -> str:
    if since is None:
        return "-"
    stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime(since))
    return f"{stamp} ({age(now - since)} ago)" if now else stamp


def _state_text(r: Row) -> str:
    """The unit state, why it last stopped when that was not a success (exit-code,
    oom-kill, timeout...), and how often systemd restarted it."""
    text = r.state
    if r.result and r.result != "success":
        text += f", {r.result}"
    text += f", {r.restarts} restarts" if r.restarts else ""
    n = r.probe.restarts if r.probe else 0
    return text + (f", {n} by health probe" if n else "")


HEADERS = ("SERVICE", "INST", "STATE", "HEALTH", "IMAGE", "SPEC", "SINCE (UTC)")


def report_lines(reports: Mapping[str, HostReport]) -> list[str]:
    """The text form: a block per host, drift explained under its table."""
    lines: list[str] = []
    for host, rep in reports.items():
        if lines:
            lines.append("")
        if rep.error is not None or rep.status is None:
            lines.append(host_error(host, rep.error or "no answer"))
            continue
        st = rep.status
        head = f"{host}  release {st.release or '(none)'}"
        if not st.docker_ok:
            head += f"  DOCKER DOWN: {st.docker_detail or 'no answer'}"
        lines.append(head)
        for dev, pid, name, mem in st.foreign_gpus:
            lines.append(f"  ! GPU {dev}: busy with a process hostctl did not start (pid {pid} "
                         f"{printable(name)}, {printable(mem)}); hostctl leases it to nothing "
                         "until it ends")
        if not rep.rows:
            lines.append("  nothing from hostctl on this host")
            continue
        table = [HEADERS] + [
            (r.service, r.instance, _state_text(r), r.health, r.image,
             (_short(r.spec_hash) or "-") + ("*" if r.drift else ""), since_text(r.since, st.now))
            for r in rep.rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(HEADERS))]
        for row in table:
            lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(
                row, widths, strict=True)).rstrip())
        for r in rep.rows:
            for note in r.drift:
                lines.append(f"  * {r.service}/{r.instance}: {note}")
        for r in rep.rows:
            p = r.probe
            if p is not None and p.last_failure is not None:
                lines.append(f"  ! {r.service}/{r.instance}: last health failure "
                             f"{since_text(p.last_failure, st.now)}: {p.last_reason or '?'}"
                             + (f"; restarted {p.restarts}x by the health probe, last "
                                f"{since_text(p.last_restart, st.now)}" if p.restarts else ""))
    return lines


def host_error(host: str, message: str) -> str:
    """One line naming the host and the cause; runner errors already start with the host."""
    return message if message.startswith(host) else f"{host}: {message}"


def report_json(reports: Mapping[str, HostReport]) -> dict[str, Any]:
    """The machine-readable form (`--json`): every field of every row, full hashes."""
    hosts: dict[str, Any] = {}
    for host, rep in reports.items():
        if rep.error is not None or rep.status is None:
            hosts[host] = {"reachable": False, "error": rep.error}
            continue
        st = rep.status
        hosts[host] = {
            "reachable": True, "error": None, "now": st.now, "release": st.release,
            "docker": {"ok": st.docker_ok, "detail": st.docker_detail},
            "drift": rep.drift,
            **({"foreign_gpu_processes": [
                {"gpu": dev, "pid": int(pid), "process": name, "memory": mem}
                for dev, pid, name, mem in st.foreign_gpus]} if st.foreign_gpus else {}),
            "rows": [{
                "service": r.service, "instance": r.instance, "unit": r.unit,
                "state": r.state, "result": r.result or None, "restarts": r.restarts,
                "health": r.health,
                "container": r.container, "container_state": r.container_state or None,
                "image": None if r.image == "-" else r.image,
                "spec_hash": r.spec_hash or None, "want_spec_hash": r.want_hash,
                "since": r.since, "ok": r.ok, "drift": list(r.drift),
                "probe": None if r.probe is None else {
                    "health": r.probe.health or None, "restarts": r.probe.restarts,
                    "last_failure": r.probe.last_failure,
                    "last_reason": r.probe.last_reason or None,
                    "last_restart": r.probe.last_restart},
            } for r in rep.rows],
        }
    # ok: every host answered and everything on it runs as the specs say, healthy.
    return {"ok": all(r.error is None and all(row.ok for row in r.rows)
                      for r in reports.values()),
            "reachable": all(r.error is None for r in reports.values()),
            "drift": any(r.drift for r in reports.values()), "hosts": hosts}


def exit_code(reports: Mapping[str, HostReport]) -> int:
    """1 when a host could not be read; drift and unhealthy units are shown, not failed on."""
    return 1 if any(r.error is not None for r in reports.values()) else 0
