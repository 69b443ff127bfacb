"""deploy: connect -> facts (+lock) -> plan -> confirm -> apply, health gate, rollback -> finish.

Only this module (through runners) touches hosts. Each host is its own transaction: it
ends on the new release with every changed service healthy, or back on its previous
release, and always with an audit record and its lock released.
"""

from __future__ import annotations

import functools
import getpass
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from hostctl import docker_cmd as d
from hostctl import model as m
from hostctl.errors import HostctlError
from hostctl.images import LocalImages, pull, push
from hostctl.placement import eligible_hosts, service_instances
from hostctl.plan import (
    HostPlan,
    Plan,
    TargetFile,
    _live_workloads,
    plan_files,
    plan_host,
    sha256,
    target_from_manifest,
    unit_of,
)
from hostctl.platform import PLATFORM_PROJECT, platform_name
from hostctl.remote import layout as L
from hostctl.remote import scripts as S
from hostctl.remote.facts import FactsError, HostFacts, UnitState, facts_script, parse_facts
from hostctl.render import RenderedFile, render_host
from hostctl.runner.base import Runner, RunnerError
from hostctl.runner.pool import open_runners, run_parallel

Progress = Callable[[str, str, str], None]  # (host, phase, detail)


def _quiet(host: str, phase: str, detail: str) -> None:
    return None


@dataclass(frozen=True)
class DeployOptions:
    dry_run: bool = False
    hosts: frozenset[str] | None = None
    only: frozenset[str] | None = None
    serial: int | None = None
    fail_fast: bool = False
    force_unlock: bool = False
    lock_ttl: float = 1800.0
    command: str = "hostctl deploy"
    skip_platform: frozenset[str] = frozenset()


@dataclass(frozen=True)
class HostTarget:
    """What one host should run, derived from the site alone (no host contact)."""

    host: m.Host
    files: dict[str, RenderedFile]
    target: dict[str, TargetFile]
    images: dict[str, tuple[str, str | None]]
    image_users: dict[str, set[str]]
    networks: dict[str, str]  # network -> project
    probes: dict[str, S.HealthProbe]
    error: str | None = None


@dataclass
class HostOutcome:
    host: str
    status: str  # unchanged | deployed | rolled-back | failed | unreachable | locked | skipped
    message: str = ""
    plan: HostPlan | None = None
    health: list[S.HealthResult] = field(default_factory=list)
    release: str | None = None
    seconds: float = 0.0
    round_trips: int = 0

    @property
    def ok(self) -> bool:
        return self.status in ("unchanged", "deployed", "planned")


def build_target(site: m.Site, host: m.Host, images: LocalImages | None) -> HostTarget:
    inv = site.inventory
    files = {f.path: f for f in render_host(site, host)}
    target = {p: TargetFile(p, sha256(f.content), f.mode, f.workload, f.secret, f.owner,
                            f.restarts) for p, f in files.items()}
    refs: dict[str, tuple[str, str | None]] = {}
    users: dict[str, set[str]] = {}
    networks: dict[str, str] = {}
    probes: dict[str, S.HealthProbe] = {}
    error = None
    for w in site.workloads:
        if host not in eligible_hosts(w, inv):
            continue
        networks[d.network_name(w.project)] = w.project
        for project in w.reach:
            networks[d.network_name(project)] = project
        users.setdefault(w.image, set()).add(w.name)
        method = w.image_source or inv.image_source
        local_id = None
        if method == "push" and images is not None:
            try:
                local_id = images.image_id(w.image)
            except HostctlError as exc:
                error = str(exc)
            if local_id is None and error is None:
                error = (f"image {w.image} (for {w.name}) is not on this machine; build or "
                         "pull it here first: image_source is push")
                if w.project == PLATFORM_PROJECT:
                    error = (f"platform service {w.name} cannot start: its image {w.image} "
                             "is not on this machine (image_source push); load it here "
                             "(docker load), or leave it out explicitly with "
                             f"--skip-platform {platform_name(w.name)}")
        refs[w.image] = (method, local_id)
        for inst in service_instances(w, inv):
            if inst.host.name == host.name:
                probes[inst.unit] = probe_for(inst.workload, inst.name, inst.unit)
    return HostTarget(host, files, target, refs, users, networks, probes, error)


def probe_for(w: m.Workload, container: str, unit: str) -> S.HealthProbe:
    h = w.health
    if h is None:
        return S.HealthProbe(unit, container, "running", interval=1, timeout=1, retries=3)
    if h.command is not None:
        kind, port, path = "command", 0, "/"
    else:
        check = h.http or h.tcp
        assert check is not None
        kind = "http" if h.http else "tcp"
        port = w.ports[check.port].container
        path = h.http.path if h.http else "/"
    return S.HealthProbe(unit, container, kind, port, path, h.interval, h.timeout, h.retries,
                         h.start_period)


def runner_for(host: m.Host) -> Runner:
    from hostctl.runner.ssh import SSHRunner

    kwargs: dict[str, Any] = {}
    if host.ssh.known_hosts:
        kwargs["known_hosts"] = host.ssh.known_hosts
    return SSHRunner(host.name, host.ssh_address, host.ssh.port, host.ssh.user,
                     host.ssh.key or "~/.ssh/id_ed25519", host.ssh.connect_timeout, **kwargs)


def who() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def spec_revision(inventory_file: str) -> str | None:
    """The git revision of the specs, with `+dirty` when there are uncommitted changes."""
    where = os.path.dirname(os.path.abspath(inventory_file))
    try:
        rev = subprocess.run(["git", "-C", where, "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", where, "status", "--porcelain", "--", "."],
                               capture_output=True, text=True, timeout=5)
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


class Run:
    """One hostctl run against some hosts: their runners, facts, plans and outcomes."""

    def __init__(self, site: m.Site, options: DeployOptions,
                 factory: Callable[[m.Host], Runner] = runner_for,
                 progress: Progress = _quiet, local_images: LocalImages | None = None):
        self.site = site
        self.options = options
        self.factory = factory
        self.progress = progress
        self.local_images = local_images or LocalImages()
        self.run_id = uuid.uuid4().hex[:8]
        self.started = time.time()
        self.who = who()
        self.lock_record = json.dumps({
            "who": self.who, "run": self.run_id, "pid": os.getpid(),
            "started": int(self.started), "command": options.command,
        }, sort_keys=True)
        inv = site.inventory
        self.hosts = [h for h in inv.hosts.values()
                      if options.hosts is None or h.name in options.hosts]
        self.runners: dict[str, Runner | RunnerError] = {}
        self.facts: dict[str, HostFacts] = {}
        self.targets: dict[str, HostTarget] = {}
        self.outcomes: dict[str, HostOutcome] = {}
        self.locked: set[str] = set()
        self._gateway_lock = threading.Lock()
        self._gateway_checked = False
        self._gateway: dict[str, Runner | RunnerError] | None = None
        self._weights: dict[tuple[str, str], int] = {}
        self.cluster_targets: dict[str, str] = {}  # routed services handed to the cluster
        self._targets_future: Future[dict[str, HostTarget]] | None = None

    @functools.cached_property
    def revision(self) -> str | None:
        """The specs' git revision, asked once per run (every host's records share it).

        Asked where the specs are: the inventory may live elsewhere (`sandbox up` writes its
        copy into a state folder) and point at specs kept in a repository."""
        files = sorted({w.file for w in self.site.workloads if w.file})
        return spec_revision(files[0] if files else self.site.inventory.file)

    # -- connect and read -------------------------------------------------------------

    def _build_targets(self) -> dict[str, HostTarget]:
        needs_images = any((w.image_source or self.site.inventory.image_source) == "push"
                           for w in self.site.workloads)
        return {h.name: build_target(self.site, h, self.local_images if needs_images else None)
                for h in self.hosts}

    @contextmanager
    def connected(self) -> Iterator[Run]:
        # What each host should run is worked out here while the network is busy connecting
        # and reading facts: the run then costs about the longer of the two, not their sum.
        pool = ThreadPoolExecutor(max_workers=1)
        self._targets_future = pool.submit(self._build_targets)
        pool.shutdown(wait=False)
        by_name = {h.name: h for h in self.hosts}
        for h in self.hosts:
            self.progress(h.name, "connect", "")
        with open_runners(list(by_name), lambda n: self.factory(by_name[n])) as runners:
            self.runners = runners
            try:
                yield self
            finally:
                self._release_forgotten_locks()

    def gather(self, take_lock: bool) -> Plan:
        """Facts from every host (taking the lock if asked), then the plan. One round trip."""
        record = self.lock_record if take_lock else None

        def read(runner: Runner) -> HostFacts:
            self.progress(runner.host, "facts", "")
            host = self.site.inventory.hosts[runner.host]
            res = runner.run(["sh", "-s"], stdin=facts_script(host.docker, record).encode(),
                             timeout=120)
            facts = parse_facts(runner.host, res.stdout)
            if record is not None and facts.lock.held and self.options.force_unlock:
                facts = self._break_stale_lock(runner, facts)
            return facts

        results = run_parallel(self.runners, read)
        assert self._targets_future is not None, "gather() runs inside connected()"
        self.targets.update(self._targets_future.result())
        from hostctl import in_cluster  # services handed to the cluster keep routing there

        self.cluster_targets = in_cluster.route_gateway(self.site, self.targets, {
            n: f for n, f in results.items() if isinstance(f, HostFacts)})
        plans: dict[str, HostPlan] = {}
        for h in self.hosts:
            outcome = results[h.name]
            if isinstance(outcome, RunnerError):
                self.outcomes[h.name] = HostOutcome(h.name, "unreachable", str(outcome))
                plans[h.name] = HostPlan(h.name, error=str(outcome))
                continue
            if isinstance(outcome, FactsError | Exception):
                msg = (str(outcome) if isinstance(outcome, FactsError | HostctlError)
                       else f"{h.name}: {outcome!r}")
                self.outcomes[h.name] = HostOutcome(h.name, "failed", msg)
                plans[h.name] = HostPlan(h.name, error=msg)
                continue
            facts = outcome
            self.facts[h.name] = facts
            if facts.lock.acquired:
                self.locked.add(h.name)
            plans[h.name] = self._plan_one(h, facts, take_lock)
        return Plan(plans)

    def _plan_one(self, host: m.Host, facts: HostFacts, take_lock: bool) -> HostPlan:
        target = self.targets[host.name]
        if take_lock and facts.lock.held:
            msg = self._lock_message(host.name, facts)
            self.outcomes[host.name] = HostOutcome(host.name, "locked", msg)
            return HostPlan(host.name, error=msg)
        if not facts.docker_ok:
            msg = (f"{host.name}: Docker is not running on the host ({facts.docker_detail}); "
                   "start it with: systemctl start docker")
            return HostPlan(host.name, error=msg)
        # The job queue's helper serves every job and GPU service: --only any of them keeps it.
        owned = (set(self.options.only) | {L.JOBS_WORKLOAD}
                 if self.options.only is not None else None)
        from hostctl.platform import skipped_workloads

        leave = skipped_workloads(self.options.skip_platform)
        plan = plan_host(facts, target.target, target.images, target.networks,
                         owned=owned, leave=leave, image_users=target.image_users)
        from hostctl.in_cluster import keep_stopped

        plan = keep_stopped(plan, facts, self.site)
        if target.error:
            plan = replace(plan, error=f"{host.name}: {target.error}")
        from hostctl.jobs.plan import gpu_runtime_error  # GPU workloads need nvidia's runtime

        gpu_error = gpu_runtime_error(self.site, host, facts.runtimes, self.options.only)
        plan = replace(plan, error=plan.error or gpu_error)
        rolling = self._rolling_units(plan)
        gaps = [u.unit for u in plan.units if u.action == "restart" and u.unit not in rolling]
        notes = []
        if rolling:
            notes.append(f"rolling through the gateway, one instance at a time: "
                         f"{', '.join(sorted(rolling))} (weight 0, drain, restart, health, "
                         "weight back)")
        if gaps:
            notes.append(f"restarting in place: {', '.join(gaps)} "
                         "(each has a short gap while it restarts)")
        return replace(plan, notes=tuple(notes)) if notes else plan

    # -- zero-downtime restarts through the gateway -----------------------------------------

    def _gateway_runners(self) -> dict[str, Runner | RunnerError] | None:
        """The gateway hosts' runners when Kong can steer traffic during this run, else None
        (no gateway, skipped, a gateway host outside the run, or Kong not answering)."""
        with self._gateway_lock:
            if self._gateway_checked:
                return self._gateway
            self._gateway_checked = True
            self._gateway = self._find_gateway()
            return self._gateway

    def _find_gateway(self) -> dict[str, Runner | RunnerError] | None:
        from hostctl.gateway import GatewayError, ops
        from hostctl.platform import GATEWAY

        gw = self.site.inventory.gateway
        if gw is None or GATEWAY in self.options.skip_platform:
            return None
        found: dict[str, Runner | RunnerError] = {}
        for name in gw.hosts:
            runner = self.runners.get(name)
            if runner is None or isinstance(runner, RunnerError):
                return None
            try:
                with ops.admin_on(runner, self.site) as admin:
                    admin.status()
            except (GatewayError, RunnerError):
                return None
            found[name] = runner
        return found

    def _rolling_units(self, plan: HostPlan) -> set[str]:
        """Restarts of routed services with more than one instance in the site: those go
        one at a time through the gateway, so the service never stops answering."""
        routed = {w.name for w in self.site.workloads
                  if w.route is not None and len(service_instances(w, self.site.inventory)) > 1}
        units = {u.unit for u in plan.units if u.action == "restart" and u.workload in routed}
        if not units or self._gateway_runners() is None:
            return set()
        return units

    def _set_weight(self, host: str, instance: str, weight: int | None) -> None:
        """Give one instance's gateway target a weight (None: back to normal) on every
        gateway host, and wait until Kong runs it (the sync verifies the hash)."""
        from hostctl.gateway import ops

        with self._gateway_lock:
            if weight is None:
                self._weights.pop((host, instance), None)
            else:
                self._weights[(host, instance)] = weight
            rendered = ops.desired(self.site, dict(self._weights), self.cluster_targets)
            for runner in (self._gateway or {}).values():
                assert not isinstance(runner, RunnerError)
                ops.sync_one(runner, self.site, rendered)

    def _roll_one(self, runner: Runner, host: m.Host, probe: S.HealthProbe) -> S.HealthResult:
        gw = self.site.inventory.gateway
        assert gw is not None
        instance = probe.unit.removesuffix(".service")
        self.progress(host.name, "rolling", f"{instance}: weight 0, drain {gw.drain:g}s")
        try:
            self._set_weight(host.name, instance, 0)
        except HostctlError as exc:  # Kong did not take it: restarting now would drop traffic
            return S.HealthResult(probe.unit, False, f"gateway refused weight 0: {exc}")
        time.sleep(gw.drain)
        res = runner.run(["systemctl", "restart", "--", probe.unit], timeout=120)
        if not res.ok:
            return S.HealthResult(probe.unit, False, f"restart failed: {res.stderr.strip()}")
        (result,) = self._health(runner, host, [probe])
        if result.ok:
            self._set_weight(host.name, instance, None)
        return result

    def _lock_message(self, host: str, facts: HostFacts) -> str:
        holder = facts.lock.holder
        started = int(holder.get("started") or facts.lock.since or 0)
        age = max(0, facts.now - started) if started else 0
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)) if started else "?"
        ttl = self.options.lock_ttl
        hint = ("rerun with --force-unlock to break it" if age > ttl else
                f"wait for it; if that run died, --force-unlock can break the lock once it is "
                f"older than {int(ttl)}s")
        return (f"{host}: locked by {holder.get('who', 'unknown')} since {when} ({age}s ago) "
                f"running `{holder.get('command', '?')}`; {hint}")

    def _break_stale_lock(self, runner: Runner, facts: HostFacts) -> HostFacts:
        started = int(facts.lock.holder.get("started") or facts.lock.since or 0)
        if facts.now - started <= self.options.lock_ttl:
            return facts
        self.progress(runner.host, "unlock", "breaking a stale lock")
        res = runner.run(["sh", "-s"], stdin=S.break_lock_script(
            facts.lock.raw, self.lock_record).encode(), timeout=60)
        if "@@lock acquired" in res.stdout:
            return replace(facts, lock=replace(facts.lock, acquired=True, held=False))
        return facts

    # -- apply --------------------------------------------------------------------------

    def apply(self, plan: Plan) -> dict[str, HostOutcome]:
        waves = self._waves(plan)
        stop = False
        for wave in waves:
            if stop:
                for name in wave:
                    self.outcomes.setdefault(name, HostOutcome(
                        name, "skipped", "not started: an earlier wave failed",
                        plan.hosts[name]))
                continue
            live = {n: self.runners[n] for n in wave if n in self.facts and n in self.locked}
            results = run_parallel(live, lambda r: self._apply_host(r, plan.hosts[r.host]))
            for name, result in results.items():
                if isinstance(result, HostOutcome):
                    self.outcomes[name] = result
                else:
                    self.outcomes[name] = HostOutcome(name, "failed", _describe_exc(name, result),
                                                      plan.hosts[name])
            if any(not self.outcomes[n].ok for n in wave if n in self.outcomes):
                stop = self.options.serial is not None or self.options.fail_fast
        for name in plan.hosts:
            self.outcomes.setdefault(name, HostOutcome(name, "failed", plan.hosts[name].error
                                                       or "not applied", plan.hosts[name]))
        return self.outcomes

    def _waves(self, plan: Plan) -> list[list[str]]:
        names = [h.name for h in self.hosts if h.name in plan.hosts]
        size = self.options.serial or len(names) or 1
        return [names[i:i + size] for i in range(0, len(names), size)]

    def _apply_host(self, runner: Runner, plan: HostPlan) -> HostOutcome:
        start = time.monotonic()
        try:
            outcome = self._apply_steps(runner, plan)
        except RunnerError as exc:
            # The connection dropped (or a command timed out) mid-apply: what the host did
            # is unknown. The finish below reconnects to audit the run and unlock.
            outcome = HostOutcome(runner.host, "failed", str(exc), plan)
        except HostctlError as exc:  # any other expected failure still audits and unlocks
            outcome = HostOutcome(runner.host, "failed", _describe_exc(runner.host, exc), plan)
        outcome.seconds = round(time.monotonic() - start, 3)
        self._finish(runner, outcome)
        outcome.round_trips = runner.round_trips  # the whole run's, facts included
        self.progress(runner.host, outcome.status, outcome.message)
        return outcome

    def _apply_steps(self, runner: Runner, plan: HostPlan) -> HostOutcome:
        name = runner.host
        host = self.site.inventory.hosts[name]
        facts = self.facts[name]
        target = self.targets[name]
        if plan.error:
            return HostOutcome(name, "failed", plan.error, plan)
        if not plan.changed:
            return HostOutcome(name, "unchanged", "", plan)
        for img in plan.images:
            self.progress(name, "images", f"{img.method} {img.ref}")
            if img.method == "push":
                res = push(runner, host.docker, self.local_images.save(img.ref))
            else:
                res = pull(runner, host.docker, img.ref)
            if not res.ok:
                detail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no output"]
                return HostOutcome(name, "failed", f"{name}: could not {img.method} {img.ref}: "
                                                   f"{detail[0]}; nothing was changed", plan)
        release = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + self.run_id[:6]
        previous, snapshot = self._rollback_point(facts, release)
        new_manifest = self._manifest(release, facts, target, plan, previous)
        contents = {f.path: (target.files[f.path].content, f.mode)
                    for f in plan.files if f.action == "write"}
        removed = [f.path for f in plan.files if f.action == "remove"]
        script = S.PRELUDE + snapshot + S.stage_release(release, contents, removed, new_manifest)
        rolling = self._rolling_units(plan)
        in_place = replace(plan, units=tuple(u for u in plan.units if u.unit not in rolling))
        script += S.activate(in_place, release, host.docker, target.networks)
        self.progress(name, "apply", _counts_text(plan))
        res = runner.run(["sh", "-s"], stdin=script.encode(), timeout=300)
        marks = S.markers(res.stdout)
        if "applied" not in marks:
            why = _failure_text(res.stdout, res.stderr)
            if "staged" not in marks:
                return HostOutcome(name, "failed", f"{name}: could not stage the release: "
                                                   f"{why}; nothing was changed", plan)
            return self._roll_back(runner, plan, new_manifest, previous,
                                   f"applying failed: {why}", [])
        units = [u.unit for u in in_place.units if u.action in ("start", "restart")
                 and u.unit in target.probes]
        health = self._health(runner, host, [target.probes[u] for u in units])
        for unit in sorted(rolling) if all(h.ok for h in health) else []:
            result = self._roll_one(runner, host, target.probes[unit])
            health.append(result)
            if not result.ok:
                break
        bad = [h for h in health if not h.ok]
        if bad:
            names = ", ".join(h.unit for h in bad)
            outcome = self._roll_back(runner, plan, new_manifest, previous,
                                      f"unhealthy after the change: {names}", health)
            for h in bad:
                if h.unit in rolling:  # the old version runs again: give it its traffic back
                    try:
                        self._set_weight(name, h.unit.removesuffix(".service"), None)
                    except HostctlError as exc:
                        outcome.message += f"; its gateway weight is still 0 ({exc})"
            return outcome
        return HostOutcome(name, "deployed", f"release {release}", plan, health, release)

    def _rollback_point(self, facts: HostFacts, release: str) -> tuple[dict[str, Any], str]:
        """The release to return to on failure, and a script that snapshots the live files
        first when no release matches them (first deploy, hand edits)."""
        current = facts.manifest
        live_matches = current and {f["path"]: f["sha256"] for f in current.get("files", [])
                                    } == facts.files
        if live_matches:
            return current, ""
        if not facts.files:
            return {}, ""
        # Named a second earlier, so it sorts before the release it precedes.
        snap = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - 1)) + "-base"
        owners = _live_workloads(facts.files, facts.units)
        manifest = {
            "release": snap, "note": "live files before hostctl's first managed release",
            "files": [{"path": p, "sha256": s, "mode": L.live_mode(p),
                       "workload": owners.get(p, ""), "secret": L.is_secret_path(p)}
                      for p, s in sorted(facts.files.items())],
        }
        return manifest, S.stage_release(snap, {}, [], manifest)

    def _manifest(self, release: str, facts: HostFacts, target: HostTarget, plan: HostPlan,
                  previous: Mapping[str, Any]) -> dict[str, Any]:
        written = {f.path for f in plan.files if f.action == "write"}
        removed = {f.path for f in plan.files if f.action == "remove"}
        known = {f["path"]: f for f in previous.get("files", [])}
        owners = _live_workloads(facts.files, facts.units)
        files = []
        for path in sorted((set(facts.files) - removed) | written):
            t = target.target.get(path)
            if t is not None and (path in written or facts.files.get(path) == t.sha256):
                files.append({"path": path, "sha256": t.sha256, "mode": f"{t.mode:04o}",
                              "workload": t.workload, "secret": t.secret, "owner": t.owner,
                              "restarts": t.restarts})
            elif path in known:
                files.append(known[path])
            else:
                files.append({"path": path, "sha256": facts.files[path],
                              "mode": L.live_mode(path),
                              "workload": owners.get(path, ""),
                              "secret": L.is_secret_path(path)})
        return {
            "release": release, "previous": previous.get("release"),
            "created": int(time.time()), "by": self.who, "run": self.run_id,
            "revision": self.revision,
            "workloads": {w.name: d.spec_hash(w) for w in self.site.workloads},
            "files": files,
        }

    def _roll_back(self, runner: Runner, failed: HostPlan, new_manifest: Mapping[str, Any],
                   previous: Mapping[str, Any], why: str,
                   health: list[S.HealthResult]) -> HostOutcome:
        name = runner.host
        host = self.site.inventory.hosts[name]
        self.progress(name, "rollback", why)
        back_to = previous.get("release")
        target = target_from_manifest(previous) if previous else {}
        live = {f["path"]: f["sha256"] for f in new_manifest.get("files", [])}
        running = {u.unit: UnitState(u.unit, active="active", file_state="enabled")
                   for u in failed.units if u.action in ("start", "restart")}
        for path in live:
            unit = unit_of(path)
            if unit and unit not in running:
                running[unit] = UnitState(unit, active="active", file_state="enabled")
        plan = plan_files(name, target, live, running)
        plan = replace(plan, enable=())
        script = S.PRELUDE + S.mark_rolled_back(new_manifest["release"]) + S.activate(
            plan, back_to, host.docker, {})
        res = runner.run(["sh", "-s"], stdin=script.encode(), timeout=300)
        if "applied" not in S.markers(res.stdout):
            return HostOutcome(name, "failed", f"{name}: {why}; ROLLBACK FAILED: "
                                               f"{_failure_text(res.stdout, res.stderr)}",
                               failed, health)
        target_probes = self.targets[name].probes
        again = [target_probes[u.unit] for u in plan.units
                 if u.action in ("start", "restart") and u.unit in target_probes]
        after = self._health(runner, host, again) if again else []
        where = f"release {back_to}" if back_to else "the state before hostctl"
        verdict = ("; the previous version is healthy" if all(h.ok for h in after)
                   else "; the previous version is NOT healthy either: "
                   + ", ".join(h.unit for h in after if not h.ok))
        return HostOutcome(name, "rolled-back", f"{why}; rolled back to {where}{verdict}",
                           failed, health, back_to)

    def _health(self, runner: Runner, host: m.Host,
                probes: list[S.HealthProbe]) -> list[S.HealthResult]:
        if not probes:
            return []
        self.progress(runner.host, "health", f"{len(probes)} unit(s)")
        budget = max(p.budget for p in probes) + 30
        res = runner.run(["sh", "-s"], stdin=S.health_script(probes, host.docker).encode(),
                         timeout=budget)
        return S.parse_health(res.stdout, [p.unit for p in probes])

    # -- the gateway ----------------------------------------------------------------------

    def sync_gateway(self) -> list[Any]:
        """After the services are healthy: send Kong the config of what now runs.

        Skipped (with a note) when the gateway is left out, or its hosts are not in this run
        or did not deploy cleanly: Kong keeps routing to what it knew, which still runs.
        """
        from hostctl.gateway import ops
        from hostctl.platform import GATEWAY

        gw = self.site.inventory.gateway
        if gw is None or GATEWAY in self.options.skip_platform:
            return []
        reports: list[Any] = []
        ready: dict[str, Runner | RunnerError] = {}
        for name in gw.hosts:
            outcome = self.outcomes.get(name)
            runner = self.runners.get(name)
            if runner is None or outcome is None:
                reports.append(ops.GatewayReport(name, True, [
                    f"{name}: gateway not synced: the host is not part of this run"]))
            elif not outcome.ok or isinstance(runner, RunnerError):
                reports.append(ops.GatewayReport(name, False, [
                    f"{name}: gateway not synced: the host did not deploy cleanly"]))
            else:
                ready[name] = runner
        if ready:
            rendered = ops.desired(self.site, cluster_targets=self.cluster_targets)
            for name in ready:
                self.progress(name, "gateway", "sync")
            reports += ops.for_each_gateway(ready, lambda r: ops.sync_one(r, self.site,
                                                                           rendered))
        return reports

    # -- log retention -------------------------------------------------------------------

    def apply_retention(self) -> list[str]:
        """After the logging host deployed cleanly: the lifecycle policy and index template,
        once Elasticsearch is healthy. Notes for the summary; a refusal is one clear line."""
        from hostctl.errors import HostctlError
        from hostctl.observability.retention import apply_retention
        from hostctl.platform import LOGGING

        log = self.site.inventory.logging
        if log is None or LOGGING in self.options.skip_platform:
            return []
        outcome, runner = self.outcomes.get(log.host), self.runners.get(log.host)
        if log.managed_elasticsearch and (outcome is None or not outcome.ok
                                          or runner is None or isinstance(runner, RunnerError)):
            return [f"{log.host}: log retention not applied: the logging host did not "
                    "deploy cleanly in this run"]
        self.progress(log.host, "logging", "retention")
        try:
            applied = apply_retention(log, self.site.inventory.site,
                                      None if isinstance(runner, RunnerError) else runner)
        except HostctlError as exc:
            return [f"{log.host}: log retention not applied: {exc}"]
        return [f"{log.host}: {a.what}: {a.action}" for a in applied]

    # -- rollback by hand ---------------------------------------------------------------

    def rollback_plan(self, to: str | None) -> Plan:
        """After `gather(take_lock=True)`: per host, the plan back to release `to` (default:
        the release before the current one). One more round trip to read the manifests."""
        self.rollback_to: dict[str, str] = {}
        live = {n: r for n, r in self.runners.items() if n in self.facts}
        results = run_parallel(live, lambda r: r.run(
            ["sh", "-s"], stdin=S.releases_script().encode(), timeout=60))
        plans: dict[str, HostPlan] = {}
        for h in self.hosts:
            name = h.name
            facts = self.facts.get(name)
            res = results.get(name)
            if facts is None or res is None:
                plans[name] = HostPlan(name, error=self.outcomes.get(
                    name, HostOutcome(name, "failed", f"{name}: no facts")).message)
                continue
            if facts.lock.held:
                plans[name] = HostPlan(name, error=self._lock_message(name, facts))
                continue
            if isinstance(res, Exception):
                plans[name] = HostPlan(name, error=_describe_exc(name, res))
                continue
            current, manifests = S.parse_releases(res.stdout)
            if to is not None:
                if to not in manifests:
                    known = ", ".join(sorted(manifests)) or "none"
                    plans[name] = HostPlan(name, error=f"{name}: no release {to} (known: {known})")
                    continue
                chosen = to
            else:
                earlier = [r for r in sorted(manifests) if current and r < current
                           and manifests[r].get("status") != "rolled-back"]
                if not earlier:
                    plans[name] = HostPlan(name, error=f"{name}: no release before the current "
                                                       f"one ({current or 'none'})")
                    continue
                chosen = earlier[-1]
            self.rollback_to[name] = chosen
            from hostctl.in_cluster import keep_gateway_file, keep_stopped

            target = keep_gateway_file(target_from_manifest(manifests[chosen]), facts)
            plans[name] = keep_stopped(plan_files(name, target, facts.files, facts.units),
                                       facts, self.site)
        return Plan(plans)

    def apply_rollback(self, plan: Plan) -> dict[str, HostOutcome]:
        def one(runner: Runner) -> HostOutcome:
            start = time.monotonic()
            name = runner.host
            outcome = self._rollback_host(runner, plan.hosts[name])
            outcome.seconds = round(time.monotonic() - start, 3)
            self._finish(runner, outcome)
            outcome.round_trips = runner.round_trips
            self.progress(name, outcome.status, outcome.message)
            return outcome

        live = {n: self.runners[n] for n in plan.hosts if n in self.locked}
        for name, result in run_parallel(live, one).items():
            self.outcomes[name] = result if isinstance(result, HostOutcome) else HostOutcome(
                name, "failed", _describe_exc(name, result), plan.hosts[name])
        for name, hp in plan.hosts.items():
            self.outcomes.setdefault(name, HostOutcome(name, "failed", hp.error or "not run",
                                                       hp))
        return self.outcomes

    def _rollback_host(self, runner: Runner, plan: HostPlan) -> HostOutcome:
        name = runner.host
        host = self.site.inventory.hosts[name]
        if plan.error:
            return HostOutcome(name, "failed", plan.error, plan)
        release = self.rollback_to[name]
        self.progress(name, "rollback", f"to {release}")
        res = runner.run(["sh", "-s"], stdin=(S.PRELUDE + S.activate(
            plan, release, host.docker, {})).encode(), timeout=300)
        if "applied" not in S.markers(res.stdout):
            return HostOutcome(name, "failed", f"{name}: rollback to {release} failed: "
                               f"{_failure_text(res.stdout, res.stderr)}", plan)
        probes = self.targets[name].probes
        checks = [probes.get(u.unit) or S.HealthProbe(u.unit, u.unit.removesuffix(".service"),
                                                      "running", interval=1, timeout=1)
                  for u in plan.units if u.action in ("start", "restart")
                  and u.unit.endswith(".service")]
        health = self._health(runner, host, checks)
        if any(not h.ok for h in health):
            bad = ", ".join(h.unit for h in health if not h.ok)
            return HostOutcome(name, "failed", f"{name}: rolled back to {release}, but "
                                               f"unhealthy: {bad}", plan, health, release)
        return HostOutcome(name, "deployed", f"rolled back to release {release}", plan,
                           health, release)

    # -- finish -------------------------------------------------------------------------

    def audit_record(self, outcome: HostOutcome) -> dict[str, Any]:
        return {
            "time": int(time.time()), "who": self.who, "command": self.options.command,
            "run": self.run_id, "revision": self.revision,
            "site": self.site.inventory.site, "host": outcome.host, "result": outcome.status,
            "message": outcome.message, "release": outcome.release,
            "plan": outcome.plan.counts() if outcome.plan else {},
            "failed": [h.unit for h in outcome.health if not h.ok],
            "seconds": outcome.seconds,
        }

    def _finish(self, runner: Runner, outcome: HostOutcome) -> None:
        protect = [outcome.release] if outcome.release else []
        script = S.finish_script(self.lock_record, self.audit_record(outcome), protect=protect)
        try:
            res = runner.run(["sh", "-s"], stdin=script.encode(), timeout=60)
            self.locked.discard(runner.host)
            if "@@lock kept" in res.stdout:
                outcome.message += (" (its apply was still running on the host 30 s after the "
                                    "connection dropped: the lock is kept; once it has ended, "
                                    "deploy again with --force-unlock)")
        except RunnerError as exc:
            outcome.message += f" (could not release the lock: {exc})"

    def release_locks(self, result: str, plan: Plan | None = None) -> None:
        """End a run that applies nothing (dry run, declined): audit and unlock each host,
        recording the plan that was not applied."""

        def finish(runner: Runner) -> None:
            outcome = self.outcomes.get(runner.host) or HostOutcome(
                runner.host, result, plan=plan.hosts.get(runner.host) if plan else None)
            self._finish(runner, outcome)

        live = {n: r for n, r in self.runners.items() if n in self.locked}
        run_parallel(live, finish)

    def _release_forgotten_locks(self) -> None:
        if self.locked:
            self.release_locks("aborted")


def _counts_text(plan: HostPlan) -> str:
    c = plan.counts()
    parts = [f"{c[k]} {label}" for k, label in (
        ("write", "to write"), ("remove", "to remove"), ("start", "to start"),
        ("restart", "to restart"), ("stop", "to stop"), ("images", "image(s)")) if c[k]]
    return ", ".join(parts) or "nothing to do"


def _failure_text(stdout: str, stderr: str) -> str:
    """The failed step and its last line of output, then each failing unit's last line
    (the `@@unit-log UNIT` sections remote.scripts.unit_step prints after `@@failed`)."""
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("@@failed "):
            continue
        own: list[str] = []
        logs: dict[str, list[str]] = {}
        current: list[str] | None = own
        for ln in lines[i + 1:]:
            if ln.startswith("@@unit-log "):
                current = logs.setdefault(ln.split(" ", 1)[1], [])
            elif ln.startswith("@@"):
                current = None
            elif current is not None and ln.strip():
                current.append(ln)
        text = f"step {line.split()[1]}: " + (own[-1] if own else "no output")
        return text + "".join(f"; {unit}: {log[-1]}" for unit, log in logs.items() if log)
    err = stderr.strip().splitlines()
    return err[-1] if err else "the script stopped early"


def _describe_exc(host: str, exc: BaseException) -> str:
    if isinstance(exc, HostctlError):
        return str(exc)
    return f"{host}: unexpected error: {exc!r}"


def exit_status(outcomes: Mapping[str, HostOutcome]) -> int:
    return 0 if all(o.ok for o in outcomes.values()) else 1


def command_line() -> str:
    return "hostctl " + " ".join(sys.argv[1:])
