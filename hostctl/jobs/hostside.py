"""Scripts hostctl sends to a host for its job runs, and the parser of what they print.

Pure builders: each returns a POSIX sh script that the runner sends on stdin to `sh -s`.
Every script starts by installing the host-side helper (hostctl-jobs.sh, next to this file)
and the queue's timer when the host's copies differ, so a host is ready for runs from the
first `hostctl run` on, without a deploy. Output is `@@` marker sections, like the facts
script's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from hostctl import layout as L
from hostctl.hosts.facts import split_sections
from hostctl.hosts.health_verdict import parse_timestamp
from hostctl.hosts.unit_show import show_blocks
from hostctl.jobs.host_files import GpuConfig, gpu_conf_text, helper_text
from hostctl.jobs.records import RunRecord, parse_fields, parse_points, parse_records, record_from

q = shlex.quote

STATE_DIR = "/var/lib/hostctl"
RUNS_DIR = f"{STATE_DIR}/runs"
GPU_DIR = f"{STATE_DIR}/gpu"
HELPER = L.JOBS_HELPER
GPU_CONF = L.GPU_CONF  # the inventory's GPUs of the host, read by the helper
# The queue's periodic pass (reclaims what dead runs and services held): written by the
# helper itself (hostctl-jobs.sh install_queue), named outside hostctl-*.service/timer.
QUEUE_TIMER = "hostctl.jobs.timer"
HELPER_MODE = "0755"
GPU_CONF_MODE = "0644"
VERSION = "1"
_SELECT = re.compile(r"[a-z0-9][a-z0-9.-]*\*?")
_RUN_ID = re.compile(r"[a-z0-9][a-z0-9.-]*")
# What a run's directory holds that is not a field of its record: its env files (--set
# values), its cancel flag, its metric points and the directory its container wrote.
_NOT_FIELDS = "--exclude='*env' --exclude=cancel --exclude=metrics.tsv --exclude-dir=out"



def _put_file(path: str, data: bytes, mode: str) -> list[str]:
    """Replace `path` by `data` only when it differs; `@@changed PATH` when it did."""
    digest = hashlib.sha256(data).hexdigest()
    return [
        f'if [ "$(sha256sum < {q(path)} 2>/dev/null | cut -c1-64)" != {digest} ]; then',
        f"  mkdir -p {q(path.rsplit('/', 1)[0])}",
        f"  base64 -d > {q(path + '.hostctl-new')} <<'HOSTCTL_EOF'",
        base64.encodebytes(data).decode().rstrip("\n"),
        "HOSTCTL_EOF",
        f"  chmod {mode} {q(path + '.hostctl-new')} && mv -f {q(path + '.hostctl-new')} {q(path)}",
        f"  echo '@@changed {path}'",
        "fi",
    ]


def install_lines(gpu: GpuConfig) -> list[str]:
    """Make the host ready for runs: helper, queue timer, GPU devices and mode. Cheap when
    nothing changed (compared on the host); daemon-reload only when a unit did.

    The helper and gpu conf are the same bytes and mode a deploy writes (render.py), so
    neither undoes the other."""
    lines = [
        "export LC_ALL=C",
        "umask 077",
        f"mkdir -p {STATE_DIR} {RUNS_DIR}/.active {GPU_DIR}/lease {GPU_DIR}/want "
        f"&& chmod 0700 {STATE_DIR}",
    ]
    lines += _put_file(HELPER, helper_text(), HELPER_MODE)
    lines += _put_file(GPU_CONF, gpu_conf_text(gpu), GPU_CONF_MODE)
    # The helper writes the queue's units (it installs them itself on a host only deployed
    # to) and reads the GPUs from the conf when it changed: now, so the read sees them.
    lines.append(f"{HELPER} install-queue")
    return lines


# -- submitting runs ------------------------------------------------------------------------

@dataclass(frozen=True)
class RunRequest:
    """One run to queue on a host: its record's first fields and its environment."""

    id: str
    job: str
    project: str
    host: str
    unit: str
    need: int = 0  # GPUs
    gpu_models: tuple[str, ...] = ()  # the GPU models it accepts (none: any)
    cpus: int = 0  # milli-CPUs it claims (0: one CPU)
    memory: int = 0  # bytes
    attempts: int = 1
    group: str = ""
    shard: int = 0
    shards: int = 1
    by: str = ""
    env: tuple[tuple[str, str], ...] = ()  # --set values, after hostctl's own
    # What makes it findable and reproducible (issue 12; records.RunRecord reads them back).
    experiment: str = ""
    description: str = ""  # `--note`
    params_json: str = ""  # one-line JSON object
    image: str = ""  # the reference; the queue resolves it to the id the run runs
    spec_hash: str = ""
    git_rev: str = ""
    git_branch: str = ""
    rerun_of: str = ""
    docker_run_json: str = ""  # one-line JSON list
    pin_image: str = ""  # `--rerun`: the image id to run, or the run fails on the host
    # Issue 13: its place in the host's queue and its project's quota (hostctl-jobs.sh).
    priority: str = "normal"  # high|normal|low
    hold: str = ""  # "quota": it waits for its project's quota (never starts while held)
    over_budget: str = ""  # `--over-budget`: why it runs past its project's spent budget

    def fields(self) -> dict[str, str]:
        """The record's files. A field is one line: any line break in a value becomes a
        space (the values hostctl writes are one line already: JSON, names, a note)."""
        fields = {
            "job": self.job, "project": self.project, "host": self.host, "unit": self.unit,
            "need": str(self.need), "cpus": str(self.cpus), "memory": str(self.memory),
            "attempts": str(self.attempts), "attempt": "1", "group": self.group or self.id,
            "shard": str(self.shard), "shards": str(self.shards), "by": self.by,
            "priority": self.priority,
        }
        if self.gpu_models:  # the queue hands it only devices of these models
            fields["gpu_models"] = ",".join(self.gpu_models)
        for name, value in (("experiment", self.experiment),
                            ("description", self.description), ("params", self.params_json),
                            ("image", self.image), ("spec_hash", self.spec_hash),
                            ("git_rev", self.git_rev), ("git_branch", self.git_branch),
                            ("rerun_of", self.rerun_of), ("docker_run", self.docker_run_json),
                            ("pin_image", self.pin_image), ("hold", self.hold),
                            ("over_budget", self.over_budget)):
            if value:
                fields[name] = " ".join(value.splitlines())
        return fields

    def env_text(self) -> str:
        """Docker's env-file format: one NAME=VALUE a line, the value taken literally."""
        own = [("HOSTCTL_RUN_ID", self.id), ("HOSTCTL_SHARD_INDEX", str(self.shard)),
               ("HOSTCTL_SHARD_COUNT", str(self.shards))]
        return "".join(f"{k}={v}\n" for k, v in [*own, *self.env])


def submit_lines(runs: Sequence[RunRequest]) -> list[str]:
    """Prepare each run's directory aside, then queue them all in one locked step (so the
    queue never sees half a run) and start what fits."""
    lines = []
    for r in runs:
        d = f"{RUNS_DIR}/.new-{r.id}"
        lines += [f"rm -rf {q(d)} && mkdir -p {q(d)}"]
        for name, value in r.fields().items():
            lines.append(f"printf '%s\\n' {q(value)} > {q(d + '/' + name)}")
        lines.append(f"printf '%s\\n' \"$(date +%s%3N)\" > {q(d + '/submitted')}")
        lines.append(f"printf '%s' {q(r.env_text())} > {q(d + '/env')}")
    ids = " ".join(q(r.id) for r in runs)
    lines.append(f"{HELPER} submit {ids} && echo '@@submitted'")
    return lines


def cancel_lines(run_id: str) -> list[str]:
    return [f"{HELPER} cancel {q(run_id)}"]


# -- reading runs ---------------------------------------------------------------------------

ACTIVE = "@active"  # in `select`: the runs that have not ended (the queue's own list)


def read_lines(select: Sequence[str] = (), jobs: Sequence[str] = (),
               timers: Sequence[str] = (), docker: str | None = None,
               fields: Sequence[str] | None = None) -> list[str]:
    """Print the host's runs (all: the ended runs' history and the active runs' directories;
    or those in `select`: run ids, `PREFIX*` globs, or ACTIVE), its capacity, GPU leases,
    the spec hash of each job's unit file, its timers, and with `docker`, the runtimes its
    Docker knows (is `nvidia` among them?)."""
    for pattern in select:
        if pattern != ACTIVE and not _SELECT.fullmatch(pattern):
            raise ValueError(f"not a run id or run id prefix: {pattern!r}")
    lines = [
        f"echo '@@jobs {VERSION}'",
        'echo "@@now $(date +%s%3N)"',
        # %.0f, not %d: mawk (Debian's awk) prints no %d above 2^31 - 1, so 2 GiB at most.
        "echo \"@@capacity $(nproc) $(awk '/^MemTotal:/ { printf \"%.0f\", $2 * 1024 }' "
        "/proc/meminfo)\"",
        f'echo "@@devices $(cat {GPU_DIR}/devices 2>/dev/null)"',
        f'echo "@@mode $(cat {GPU_DIR}/mode 2>/dev/null)"',
        f'echo "@@models $(cat {GPU_DIR}/models 2>/dev/null)"',
        "echo '@@foreign'",
        f"cat {GPU_DIR}/foreign 2>/dev/null",
        "echo '@@leases'",
        f"grep -H '' {GPU_DIR}/lease/* 2>/dev/null | sed 's|.*/||'",
        "echo '@@wants'",
        f"grep -H '' {GPU_DIR}/want/* 2>/dev/null | sed 's|.*/||'",
        "echo '@@units'",
    ]
    for job in jobs:
        path = f"{L.UNIT_DIR}/hostctl-job-{job}@.service"
        lines.append(f"[ -f {q(path)} ] && printf '%s %s\\n' {q(job)} "
                     f"\"$(sed -n 's/.*io\\.hostctl\\.spec-hash=\\([0-9a-f]*\\).*/\\1/p' "
                     f"{q(path)} | head -n 1)\"")
    lines += ["echo '@@runs'"]
    if select:
        # Validated above: run ids and `PREFIX*` globs, safe to leave unquoted.
        globs = " ".join(s for s in select if s != ACTIVE)
        listing = "{ " + (f"ls -d {globs} 2>/dev/null; " if globs else "") + (
            "ls .active 2>/dev/null; " if ACTIVE in select else "") + "}"
        lines.append(f"cd {RUNS_DIR} 2>/dev/null && {listing} | sort -u | "
                     f"xargs -r grep -r -H '' {_NOT_FIELDS} 2>/dev/null")
    else:
        # One file for the ended runs, plus the active runs' directories: the active list
        # is taken first, so a run that ends meanwhile is in one or the other (or both: the
        # same fields). A host whose helper has not written the history yet: every
        # directory (ls leaves out the queue's own dot-directories, .active and .new-*).
        # The listing leaves out each run's `docker_run` (its longest field, a tenth of a
        # kilobyte and more): `runs show` reads it, a search of thousands of runs needs not.
        lines.append(f"cd {RUNS_DIR} 2>/dev/null && {{ if [ -f .history ]; then "
                     "a=$(ls .active 2>/dev/null); cat .history; "
                     f"[ -z \"$a\" ] || echo \"$a\" | xargs grep -r -H '' {_NOT_FIELDS} "
                     f"2>/dev/null; else ls | xargs -r grep -r -H '' {_NOT_FIELDS} 2>/dev/null; "
                     "fi; } | " + _listing_filter(fields))
    lines.append("echo '@@timers'")
    if timers:
        # C locale and UTC: times read as "Sun 2026-11-22 07:41:30 UTC" (status's parser).
        lines.append("LC_ALL=C TZ=UTC systemctl show "
                     "--property=Id,NextElapseUSecRealtime,LastTriggerUSec,ActiveState -- "
                     + " ".join(q(t) for t in timers) + " 2>/dev/null")
    if docker is not None:
        lines += ["echo '@@runtimes'",
                  f"{q(docker)} info --format '{{{{json .Runtimes}}}}' 2>/dev/null"]
    lines.append("echo '@@end'")
    return lines


_FIELD_NAME = re.compile(r"[a-z_]+")


def _listing_filter(fields: Sequence[str] | None) -> str:
    """The listing's field lines: only `fields` (what a search shows and filters on: less
    to send and to parse), else every field but docker_run."""
    if fields is None:
        return "grep -v '^[^/]*/docker_run:'"
    for name in fields:
        if not _FIELD_NAME.fullmatch(name):
            raise ValueError(f"not a run record field: {name!r}")
    return f"grep -E '^[^/]*/({'|'.join(sorted(set(fields)))}):'"


def _check_run_ids(run_ids: Sequence[str]) -> None:
    for run_id in run_ids:
        if not _RUN_ID.fullmatch(run_id):
            raise ValueError(f"not a run id: {run_id!r}")


def points_lines(run_ids: Sequence[str]) -> list[str]:
    """Each run's metric points (its metrics.tsv), in an `@@points ID` section."""
    _check_run_ids(run_ids)
    lines = []
    for run_id in run_ids:
        lines += [f"echo '@@points {run_id}'",
                  f"cat {q(RUNS_DIR + '/' + run_id + '/metrics.tsv')} 2>/dev/null"]
    lines.append("echo '@@end'")
    return lines


def parse_points_read(text: str) -> dict[str, dict[str, list[tuple[int | None, float]]]]:
    """points_lines' output -> {run id: {metric: [(step, value), ...]}}."""
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("@@points "):
            current = out.setdefault(line.removeprefix("@@points ").strip(), [])
        elif line.startswith("@@"):
            current = None
        elif current is not None:
            current.append(line)
    return {run_id: parse_points("\n".join(lines)) for run_id, lines in out.items()}


def show_lines(run_id: str) -> list[str]:
    """One run as `runs show` tells it: its record (its directory, else its history lines),
    the docker options its unit ran with (unit.env) and its job's ExecStart line."""
    _check_run_ids([run_id])
    d = f"{RUNS_DIR}/{run_id}"
    history = f"{RUNS_DIR}/.history"
    return [
        "echo '@@record'",
        f"if [ -d {q(d)} ]; then (cd {RUNS_DIR} && grep -r -H '' {_NOT_FIELDS} {q(run_id)} "
        f"2>/dev/null); else grep '^{run_id}/' {history} 2>/dev/null; fi",
        f"job=$(cat {q(d + '/job')} 2>/dev/null || sed -n 's|^{run_id}/job:||p' {history} "
        "2>/dev/null | tail -n 1)",
        "echo '@@unit.env'",
        f"cat {q(d + '/unit.env')} 2>/dev/null",
        "echo '@@exec'",
        f"[ -n \"$job\" ] && sed -n 's/^ExecStart=//p' \"{L.UNIT_DIR}/hostctl-job-$job@.service\" "
        "2>/dev/null",
        "echo '@@end'",
    ]


@dataclass(frozen=True)
class RunShow:
    """What show_lines printed: the record (None when the host has no such run), the
    unit.env the queue wrote for it and its job's ExecStart line (empty when gone)."""

    record: RunRecord | None
    unit_env: str
    exec_start: str


def parse_show(host: str, run_id: str, text: str) -> RunShow:
    sections = split_sections(text)
    if "end" not in sections:
        raise JobsReadError(f"{host}: incomplete answer from the host (no end marker)")
    fields = parse_fields(sections.get("record", [])).get(run_id)
    return RunShow(record_from(host, run_id, fields) if fields and fields.get("state") else None,
                   "".join(f"{line}\n" for line in sections.get("unit.env", [])),
                   "\n".join(sections.get("exec", [])).strip())


def script(*parts: list[str]) -> str:
    return "\n".join(line for part in parts for line in part) + "\n"


@dataclass(frozen=True)
class TimerInfo:
    unit: str
    active: str
    next_ms: int | None
    last_ms: int | None


@dataclass(frozen=True)
class ForeignProcess:
    """A compute process on a GPU that hostctl did not lease (the queue's last nvidia-smi
    pass): the device is busy until it ends."""

    device: str
    pid: int
    name: str
    memory: str  # as nvidia-smi shows it, e.g. "10240 MiB"


@dataclass(frozen=True)
class HostJobs:
    """What a host said about its runs, in one read."""

    host: str
    now_ms: int = 0
    cpus: int = 0
    memory: int = 0
    devices: tuple[str, ...] = ()
    mode: str = ""
    leases: dict[str, str] = field(default_factory=dict)  # device -> holder
    models: dict[str, str] = field(default_factory=dict)  # device -> its GPU model
    foreign: tuple[ForeignProcess, ...] = ()  # processes hostctl did not start, on its GPUs
    wants: dict[str, int] = field(default_factory=dict)  # service unit -> GPUs it waits for
    units: dict[str, str] = field(default_factory=dict)  # job -> spec hash of its unit file
    runs: tuple[RunRecord, ...] = ()
    timers: dict[str, TimerInfo] = field(default_factory=dict)
    changed: tuple[str, ...] = ()  # files the install step replaced
    runtimes: frozenset[str] | None = None  # Docker's runtimes, when asked

    def gpus_of(self, models: Sequence[str] = ()) -> list[str]:
        """Its devices of one of `models` (every device when none is asked)."""
        return [d for d in self.devices if not models or self.models.get(d) in models]

    def gpus_free(self, models: Sequence[str] = ()) -> list[str]:
        """Those neither leased nor busy with a process hostctl did not start."""
        busy = set(self.leases) | {p.device for p in self.foreign}
        return [d for d in self.gpus_of(models) if d not in busy]


class JobsReadError(ValueError):
    """The host's answer was not what the read script prints."""


def parse_read(host: str, text: str) -> HostJobs:
    sections = split_sections(text)
    if "end" not in sections:
        raise JobsReadError(f"{host}: incomplete answer from the host (no end marker)")
    cap = (sections.get("capacity") or [""])[0].split()
    leases = {}
    for line in sections.get("leases", []):
        dev, _, holder = line.partition(":")
        if dev and holder:
            leases[dev] = holder
    wants = {}
    for line in sections.get("wants", []):
        unit, _, n = line.partition(":")
        if unit and n.strip().isdigit():
            wants[unit] = int(n)
    models = {}
    for pair in (sections.get("models") or [""])[0].split():
        dev, _, model = pair.partition(":")
        if dev and model:
            models[dev] = model
    foreign = []
    for line in sections.get("foreign", []):
        parts = line.split("\t")
        if len(parts) == 4 and parts[1].isdigit():
            foreign.append(ForeignProcess(parts[0], int(parts[1]), parts[2], parts[3]))
    units = {}
    for line in sections.get("units", []):
        job, _, digest = line.partition(" ")
        if job:
            units[job] = digest.strip()
    return HostJobs(
        host=host,
        now_ms=_int((sections.get("now") or ["0"])[0]),
        cpus=_int(cap[0]) if cap else 0,
        memory=_int(cap[1]) if len(cap) > 1 else 0,
        devices=tuple((sections.get("devices") or [""])[0].split()),
        mode=(sections.get("mode") or [""])[0].strip(),
        leases=leases, models=models, foreign=tuple(foreign), wants=wants, units=units,
        runs=tuple(parse_records(host, sections.get("runs", []))),
        timers=_timers(sections.get("timers", [])),
        changed=tuple(sections.get("changed", [])),
        runtimes=_runtimes(sections["runtimes"]) if "runtimes" in sections else None,
    )


def _runtimes(lines: list[str]) -> frozenset[str]:
    try:
        data = json.loads("".join(lines) or "{}")
    except ValueError:
        return frozenset()
    return frozenset(data) if isinstance(data, dict) else frozenset()


def runtime_problem(host: str, gpus: int, mode: str, runtimes: frozenset[str] | None) -> str | None:
    """A host that declares GPUs but whose Docker cannot hand them to containers."""
    if gpus <= 0 or mode == "env" or runtimes is None or "nvidia" in runtimes:
        return None
    return (f"{host}: the inventory declares {gpus} GPU(s) but Docker on the host has no "
            "nvidia runtime (install the NVIDIA Container Toolkit and restart Docker), so "
            "`--gpus` cannot work")


def env_lines(run_id: str) -> list[str]:
    """A run's env file: the --set values a --retry-failed run repeats (no secrets: those
    live in the job's own env file)."""
    return [f"cat {q(RUNS_DIR + '/' + run_id + '/env')} 2>/dev/null"]


def _timers(lines: list[str]) -> dict[str, TimerInfo]:
    out = {}
    for block in show_blocks(lines):
        out[block["Id"]] = TimerInfo(block["Id"], block.get("ActiveState", ""),
                                     _unix_ms(block.get("NextElapseUSecRealtime", "")),
                                     _unix_ms(block.get("LastTriggerUSec", "")))
    return out


def _unix_ms(value: str) -> int | None:
    """`Sun 2026-11-22 07:41:30 UTC` -> epoch ms; None for empty or n/a."""
    seconds = parse_timestamp(value)
    return None if seconds is None else seconds * 1000


def _int(text: str) -> int:
    text = text.strip()
    return int(text) if text.isdigit() else 0


def parse_cancel(text: str) -> dict[str, str]:
    """`@@cancel ID VERDICT` lines -> {id: verdict}."""
    out = {}
    for line in text.splitlines():
        if line.startswith("@@cancel "):
            parts = line.split(" ", 2)
            if len(parts) == 3:
                out[parts[1]] = parts[2].strip()
    return out

