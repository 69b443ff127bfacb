"""plan: what must change on each host, as a plain value (printable, JSON-able, testable).

The same function plans a deploy (target = freshly rendered files) and a rollback
(target = an earlier release's manifest): "make the live files equal the target, and
restart exactly the units whose files changed".
"""

from __future__ import annotations

import fnmatch
import hashlib
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hostctl import layout as L
from hostctl.hosts.facts import HostFacts, UnitState, normalise_ref


@dataclass(frozen=True)
class TargetFile:
    """A file as it should be on the host: enough to plan, no content (content may be secret)."""

    path: str
    sha256: str
    mode: int
    workload: str
    secret: bool = False
    owner: str | None = None
    restarts: bool = True  # False: its service reloads it without a restart


@dataclass(frozen=True)
class FileAction:
    path: str
    action: str  # "write" | "remove"
    mode: int = 0o644
    secret: bool = False
    workload: str = ""
    owner: str | None = None
    old_sha256: str | None = None
    new_sha256: str | None = None


@dataclass(frozen=True)
class UnitAction:
    unit: str
    action: str  # "start" | "restart" | "stop"
    reason: str
    workload: str = ""


@dataclass(frozen=True)
class ImageAction:
    ref: str
    method: str  # "push" | "pull"
    reason: str
    local_id: str | None = None


@dataclass(frozen=True)
class HostPlan:
    host: str
    files: tuple[FileAction, ...] = ()
    units: tuple[UnitAction, ...] = ()
    images: tuple[ImageAction, ...] = ()
    networks: tuple[str, ...] = ()
    enable: tuple[str, ...] = ()
    unchanged: int = 0
    error: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.files or self.units or self.images or self.networks or self.enable)

    def counts(self) -> dict[str, int]:
        def n(items: Iterable[Any], action: str) -> int:
            return sum(1 for i in items if i.action == action)

        return {
            "write": n(self.files, "write"), "remove": n(self.files, "remove"),
            "start": n(self.units, "start"), "restart": n(self.units, "restart"),
            "stop": n(self.units, "stop"), "images": len(self.images),
            "networks": len(self.networks), "unchanged": self.unchanged,
        }


@dataclass(frozen=True)
class Plan:
    hosts: dict[str, HostPlan] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return any(h.changed for h in self.hosts.values())

    @property
    def errors(self) -> dict[str, str]:
        return {name: h.error for name, h in self.hosts.items() if h.error}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def unit_of(path: str) -> str | None:
    """The unit a managed file *is* (not template units: they only run as job instances)."""
    name = posixpath.basename(path)
    if not path.startswith(L.UNIT_DIR + "/") or name.endswith("@.service"):
        return None
    return name


def plan_files(
    host: str,
    target: Mapping[str, TargetFile],
    live: Mapping[str, str],
    units: Mapping[str, UnitState],
    *,
    owned: set[str] | None = None,
    leave: frozenset[str] = frozenset(),
) -> HostPlan:
    """Files and units to change so `live` (path -> sha256) becomes `target`.

    `owned` limits the plan to some workloads (deploy --only); `leave` keeps some out of it
    (a skipped platform service). Their files are neither written nor removed.
    """

    def mine(workload: str) -> bool:
        return (owned is None or workload in owned) and workload not in leave

    files: list[FileAction] = []
    written_workloads: dict[str, str] = {}  # workload -> why its units restart
    unchanged = 0
    for path, t in sorted(target.items()):
        if not mine(t.workload):
            continue
        old = live.get(path)
        if old == t.sha256:
            unchanged += 1
            continue
        files.append(FileAction(path, "write", t.mode, t.secret, t.workload, t.owner, old,
                                t.sha256))
        if t.restarts and unit_of(path) is None and not path.endswith("@.service"):
            # An env file or a config file (Logstash's pipeline, the exporter's config):
            # the units of its workload read it at start only.
            written_workloads.setdefault(t.workload,
                                         "secrets changed" if t.secret else "config changed")
    live_workload = _live_workloads(live, units)
    for path in sorted(set(live) - set(target)):
        if not L.is_managed(path) or not mine(live_workload.get(path, "")):
            continue
        files.append(FileAction(path, "remove", workload=live_workload.get(path, ""),
                                old_sha256=live[path]))

    unit_actions: list[UnitAction] = []
    written = {f.path for f in files if f.action == "write"}
    enable: list[str] = []
    for path, t in sorted(target.items()):
        unit = unit_of(path)
        if unit is None or not mine(t.workload):
            continue
        state = units.get(unit)
        running = state is not None and state.active in ("active", "activating", "reloading")
        if path in written:
            reason = "new" if path not in live else "unit changed"
            unit_actions.append(UnitAction(unit, "restart" if running else "start", reason,
                                           t.workload))
        elif t.workload in written_workloads:
            unit_actions.append(UnitAction(unit, "restart" if running else "start",
                                           written_workloads[t.workload], t.workload))
        elif not running:
            was = state.active if state and state.active else "not loaded"
            unit_actions.append(UnitAction(unit, "start", f"was {was}", t.workload))
        if state is None or state.file_state != "enabled":
            enable.append(unit)
    for f in files:
        unit = unit_of(f.path)
        if f.action == "remove" and unit is not None:
            unit_actions.append(UnitAction(unit, "stop", "left the specs", f.workload))
    return HostPlan(host=host, files=tuple(files), units=tuple(unit_actions),
                    enable=tuple(enable), unchanged=unchanged)


def _live_workloads(live: Mapping[str, str], units: Mapping[str, UnitState]) -> dict[str, str]:
    """Which workload a live file belongs to, from its name (hostctl names are regular)."""
    out = {}
    for path in live:
        name = posixpath.basename(path)
        if path == L.GATEWAY_FILE:
            out[path] = L.GATEWAY_WORKLOAD
        elif path in L.EXPORTER_FILES:
            out[path] = L.EXPORTER_WORKLOAD
        elif fnmatch.fnmatchcase(path, L.PIPELINE_GLOB):
            out[path] = L.PIPELINE_WORKLOAD
        elif path in L.PROBE_FILES:
            out[path] = L.PROBE_WORKLOAD
        elif name.endswith(".env"):
            out[path] = name[: -len(".env")]
        elif name.startswith("hostctl-job-"):
            out[path] = name[len("hostctl-job-"):].split("@")[0].removesuffix(".timer")
        elif name.startswith("hostctl-") and name.endswith(".service"):
            out[path] = name[len("hostctl-"):].rsplit("-", 1)[0]
    return out


def plan_host(
    facts: HostFacts,
    target: Mapping[str, TargetFile],
    images: Mapping[str, tuple[str, str | None]],
    networks: Iterable[str],
    *,
    owned: set[str] | None = None,
    leave: frozenset[str] = frozenset(),
    image_users: Mapping[str, set[str]] | None = None,
) -> HostPlan:
    """A deploy's plan for one host.

    `images`: ref -> (method, local image id for push); `image_users`: ref -> workloads, so
    a pushed image whose id changed under the same tag restarts the units that use it. A
    pushed image is up to date only when the host has that very reference naming that id.
    """
    base = plan_files(facts.host, target, facts.files, facts.units, owned=owned, leave=leave)
    image_actions = []
    restart_for_image: set[str] = set()
    for ref, (method, local_id) in sorted(images.items()):
        have = facts.images.get(normalise_ref(ref))
        if method == "push":
            if have is None:
                # The image may be there under other names, but units run it by this one.
                reason = ("on the host under another name only"
                          if local_id is not None and local_id in facts.images.values()
                          else "missing on host")
                image_actions.append(ImageAction(ref, "push", reason, local_id))
            elif local_id is not None and have != local_id:
                image_actions.append(ImageAction(ref, "push", "newer build here", local_id))
                restart_for_image |= set((image_users or {}).get(ref, set()))
        elif have is None:
            image_actions.append(ImageAction(ref, "pull", "missing on host"))
    units = list(base.units)
    planned = {u.unit for u in units}
    for path, t in sorted(target.items()):
        unit = unit_of(path)
        if unit and t.workload in restart_for_image and unit not in planned \
                and (owned is None or t.workload in owned) and t.workload not in leave:
            units.append(UnitAction(unit, "restart", "image changed", t.workload))
    missing_networks = tuple(sorted(set(networks) - facts.networks))
    return HostPlan(
        host=facts.host, files=base.files, units=tuple(units), images=tuple(image_actions),
        networks=missing_networks, enable=base.enable, unchanged=base.unchanged,
    )


def target_from_manifest(manifest: Mapping[str, Any]) -> dict[str, TargetFile]:
    """An earlier release's files, as a rollback target."""
    out = {}
    for f in manifest.get("files", []):
        out[f["path"]] = TargetFile(f["path"], f["sha256"], int(f["mode"], 8),
                                    f.get("workload", ""), bool(f.get("secret")),
                                    f.get("owner"), bool(f.get("restarts", True)))
    return out
