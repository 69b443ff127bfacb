"""What the exporter reads on its host: Docker, systemd, the cgroup files of containers,
hostctl's release manifests and the records of services handed to the k3s cluster. Each
source is a command (or a file) and a pure parser, so the parsers are tested on captured output.

Runs inside the exporter bundle on the host's own python3: standard library only (and
hostctl.hosts.health_verdict, which the bundle ships too).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hostctl.hosts.unit_show import UnitState, parse_units

LABEL = "io.hostctl"
Run = Callable[[Sequence[str]], tuple[int, str]]


def run_command(argv: Sequence[str], timeout: float = 20.0) -> tuple[int, str]:
    """(exit status, stdout); a missing program or a hang is a failure, not a crash.
    In the C locale and UTC: systemctl's times are then read without guessing a zone."""
    env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                              check=False, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)
    return done.returncode, done.stdout


# -- Docker ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Container:
    id: str
    name: str
    labels: dict[str, str]
    running: bool
    pid: int
    started_at: float | None  # epoch seconds
    health: str | None  # Docker's health status when the container has a health check
    image: str
    gpus: int | None  # from its device requests; None when it asked for none
    addresses: tuple[str, ...] = ()
    # The device ids it was given: `--gpus "device=0,1"` (its device request) or, on a test
    # host (gpu_mode: env), HOSTCTL_GPU_DEVICES in its environment; () when neither says.
    gpu_devices: tuple[str, ...] = ()

    def label(self, key: str) -> str:
        return self.labels.get(f"{LABEL}.{key}", "")


def ps_argv(docker: str) -> list[str]:
    return [docker, "ps", "-a", "-q", "--no-trunc", "--filter", f"label={LABEL}.managed=true"]


def inspect_argv(docker: str, ids: Sequence[str]) -> list[str]:
    return [docker, "inspect", "--type", "container", *ids]


def parse_time(text: str) -> float | None:
    """Docker's RFC 3339 time with nanoseconds -> epoch seconds; None for its zero time."""
    if not text or text.startswith("0001-01-01"):
        return None
    text = text.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # Python reads at most 6 digits of fraction
        digits = "".join(itertools.takewhile(str.isdigit, rest))
        zone = rest[len(digits):]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _gpus(requests: Any, host_gpus: int) -> int | None:
    total = None
    for req in requests or []:
        caps = [c for group in req.get("Capabilities") or [] for c in group]
        if "gpu" not in caps and req.get("Driver") != "nvidia":
            continue
        ids = req.get("DeviceIDs") or []
        count = len(ids) if ids else int(req.get("Count") or 0)
        total = (total or 0) + (host_gpus if count == -1 else count)
    return total


def _gpu_devices(item: Mapping[str, Any]) -> tuple[str, ...]:
    ids = [str(i) for req in (item.get("HostConfig") or {}).get("DeviceRequests") or []
           for i in req.get("DeviceIDs") or []]
    if not ids:
        for entry in (item.get("Config") or {}).get("Env") or []:
            name, _, value = str(entry).partition("=")
            if name == "HOSTCTL_GPU_DEVICES":
                ids = [v.strip() for v in value.split(",") if v.strip()]
    return tuple(ids)


def parse_inspect(text: str, host_gpus: int = 0) -> list[Container]:
    """`docker inspect` JSON -> containers."""
    out = []
    for item in json.loads(text or "[]"):
        state = item.get("State") or {}
        health = state.get("Health") or {}
        networks = (item.get("NetworkSettings") or {}).get("Networks") or {}
        out.append(Container(
            id=str(item.get("Id", "")),
            name=str(item.get("Name", "")).lstrip("/"),
            labels=dict((item.get("Config") or {}).get("Labels") or {}),
            running=bool(state.get("Running")),
            pid=int(state.get("Pid") or 0),
            started_at=parse_time(str(state.get("StartedAt") or "")),
            health=health.get("Status") or None,
            image=str((item.get("Config") or {}).get("Image", "")),
            gpus=_gpus((item.get("HostConfig") or {}).get("DeviceRequests"), host_gpus),
            addresses=tuple(str(n["IPAddress"]) for _, n in sorted(networks.items())
                            if n.get("IPAddress")),
            gpu_devices=_gpu_devices(item),
        ))
    return out


def read_containers(docker: str, run: Run, host_gpus: int) -> list[Container] | None:
    """hostctl's containers on this host; None when Docker does not answer."""
    code, out = run(ps_argv(docker))
    if code != 0:
        return None
    ids = out.split()
    if not ids:
        return []
    code, out = run(inspect_argv(docker, ids))
    if code != 0 and not out.strip().startswith("["):
        return None
    # A container removed between ps and inspect makes inspect fail for it alone.
    return parse_inspect(out, host_gpus)


# -- cgroups ---------------------------------------------------------------------------------

def parse_proc_cgroup(text: str) -> dict[str, str]:
    """`/proc/PID/cgroup` -> {controller list (v1) or "" (v2): path}."""
    paths = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            paths[parts[1]] = parts[2]
    return paths


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError):
        return None


def _stat(text: str | None) -> dict[str, int]:
    out = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


@dataclass(frozen=True)
class CgroupReader:
    """Reads a container's CPU and memory from cgroup v1 or v2 files, found through the
    cgroup of its main process (whatever Docker's cgroup driver)."""

    proc: str = "/proc"
    root: str = "/sys/fs/cgroup"

    def paths(self, pid: int) -> dict[str, str]:
        return parse_proc_cgroup(_read(f"{self.proc}/{pid}/cgroup") or "") if pid else {}

    def _v1_dir(self, paths: Mapping[str, str], controller: str) -> str | None:
        for controllers, path in paths.items():
            if controller in controllers.split(","):
                return f"{self.root}/{controllers}{path}"
        return None

    def cpu_seconds(self, paths: Mapping[str, str]) -> float | None:
        v1 = self._v1_dir(paths, "cpuacct")
        if v1 is not None:
            usage = _read(f"{v1}/cpuacct.usage")
            if usage is not None and usage.strip().isdigit():
                return int(usage) / 1e9
        if "" in paths:
            stat = _stat(_read(f"{self.root}{paths['']}/cpu.stat"))
            if "usage_usec" in stat:
                return stat["usage_usec"] / 1e6
        return None

    def memory_bytes(self, paths: Mapping[str, str]) -> float | None:
        """Usage without the inactive page cache, as `docker stats` shows it."""
        v1 = self._v1_dir(paths, "memory")
        if v1 is not None:
            usage = _read(f"{v1}/memory.usage_in_bytes")
            if usage is not None and usage.strip().isdigit():
                stat = _stat(_read(f"{v1}/memory.stat"))
                return float(max(0, int(usage) - stat.get("total_inactive_file", 0)))
        if "" in paths:
            current = _read(f"{self.root}{paths['']}/memory.current")
            if current is not None and current.strip().isdigit():
                stat = _stat(_read(f"{self.root}{paths['']}/memory.stat"))
                return float(max(0, int(current) - stat.get("inactive_file", 0)))
        return None


# -- systemd ---------------------------------------------------------------------------------

def show_argv(systemctl: str = "systemctl") -> list[str]:
    return [systemctl, "show", "--property=Id,NRestarts,ActiveState,ActiveEnterTimestamp",
            "hostctl-*.service"]


def read_units(run: Run, systemctl: str = "systemctl") -> dict[str, UnitState] | None:
    code, out = run(show_argv(systemctl))
    return parse_units(out.splitlines()) if code == 0 else None


# -- hostctl's health probe ------------------------------------------------------------------

def read_probe_restarts(probe: Mapping[str, Mapping[str, str]]) -> dict[str, int]:
    """unit -> restarts by hostctl's health probe, ever (the `restarts=` line of the probe's
    <unit>.state files, hostctl.render.probe, as health_verdict.read_records reads them)."""
    return {unit: int(rec["restarts"]) for unit, rec in probe.items()
            if rec.get("restarts", "").isdigit()}


# -- services handed to the k3s cluster ------------------------------------------------------

CLUSTER_SUBDIR = "cluster"  # under the state dir: hostctl.layout.CLUSTER_DIR
RECORD_MAX = 4096  # a record is one short JSON line (hostctl.k8s.handoff_records.record_line)


def read_handed_off(state_dir: str) -> dict[str, dict[str, Any]]:
    """service -> its handoff record (`hostctl k8s handoff` writes one file per service,
    by temp file and rename; hostctl.k8s.handoff_records). An unreadable record still means handed
    off, as it does for deploy; a missing folder means none."""
    folder = os.path.join(state_dir, CLUSTER_SUBDIR)
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        path = os.path.join(folder, name)
        if name.startswith(".") or name.endswith(".tmp") or not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                record = json.loads(fh.read(RECORD_MAX) or "{}")
        except (OSError, ValueError):
            record = {}
        out[name] = record if isinstance(record, dict) else {}
    return out


# -- hostctl's releases ----------------------------------------------------------------------

@dataclass
class Releases:
    """The release manifests on this host, newest first along the `previous` chain."""

    manifests: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def read(cls, state_dir: str, limit: int = 20) -> Releases:
        manifests: list[dict[str, Any]] = []
        name = os.path.basename(os.path.realpath(f"{state_dir}/current"))
        while name and len(manifests) < limit:
            text = _read(f"{state_dir}/releases/{name}/manifest.json")
            try:
                manifest = json.loads(text) if text else None
            except ValueError:
                manifest = None
            if not isinstance(manifest, dict):
                break
            manifests.append(manifest)
            name = str(manifest.get("previous") or "")
        return cls(manifests)

    def deployed_at(self, workload: str) -> float | None:
        """When the spec that runs now was deployed: the oldest release in an unbroken run
        of releases with the current spec hash of `workload`."""
        if not self.manifests:
            return None
        current = (self.manifests[0].get("workloads") or {}).get(workload)
        if current is None:
            return None
        when = None
        for manifest in self.manifests:
            if (manifest.get("workloads") or {}).get(workload) != current:
                break
            created = manifest.get("created")
            when = float(created) if isinstance(created, (int, float)) else when
        return when
