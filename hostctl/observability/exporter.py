"""The per-host metrics exporter: what runs, whether it is healthy, what it uses and costs.

A sampler thread reads Docker, systemd and cgroup files every `sample_interval` seconds and
accumulates per-project CPU and GPU seconds (and cost, when prices are set); scrapes only
read the latest sample, so a slow Docker never makes a scrape time out. Totals are kept in
a state file, so a restarted exporter carries on counting instead of starting from zero.

Each sample also reads the runs that ended since the last one from the run history
(exporter_runs): runs by final state per job, and the last values of the metrics a job's
spec reports.

Runs from the bundle (exporter_bundle.py) on the host's own python3: standard library,
prometheus_client, hostctl.hosts.health_verdict (the health rule it shares with `hostctl status`)
and hostctl.jobs.records (the run records' parser) only. Metric names: REFERENCE.md (prefix
hostctl_, base units, counters end in _total). Labels never use `instance`, `job`, `host` or
`site` (the scrape target's labels; Prometheus would rename ours to exported_*): a service's
copy is `replica`, a job is `job_name`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import generate_latest, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from hostctl.hosts import health_verdict as hv
from hostctl.jobs import pricing
from hostctl.jobs.records import FINAL_STATES
from hostctl.observability import exporter_sources as src
from hostctl.observability.exporter_audit import AuditShipper
from hostctl.observability.exporter_run_log import RunShipper
from hostctl.observability.exporter_runs import Cursor, RunTotals, history_path

VERSION = "1"
CONFIG_PATH = "/etc/hostctl/exporter/config.json"
SERVICE_LABELS = ("service", "project", "replica")
RESTART_CAUSES = ("systemd", "probe")


# -- configuration (rendered by hostctl per host: exporter_bundle.exporter_config) -----------

@dataclass(frozen=True)
class ServiceConf:
    project: str
    image: str
    spec_hash: str
    replicas: tuple[int, ...]
    gpus: int = 0  # health is read from Docker and hostctl.hosts.health_verdict's records


@dataclass(frozen=True)
class ExporterConf:
    site: str
    host: str
    listen: str = "0.0.0.0"
    port: int = 9477
    docker: str = "docker"
    systemctl: str = "systemctl"
    proc: str = "/proc"  # where to read processes and cgroups: elsewhere when the exporter
    cgroup: str = "/sys/fs/cgroup"  # runs with the host's mounted under another path
    gpus: int = 0
    sample_interval: float = 5.0
    state_dir: str = "/var/lib/hostctl"
    # {"currency", "cpu_hour"?, "gpu_hour"?, "gpu_hour_by_model"?} (metrics.Prices.table)
    prices: dict[str, Any] | None = None
    gpu_models: dict[str, str] = field(default_factory=dict)  # device id -> model, if named
    services: dict[str, ServiceConf] = field(default_factory=dict)
    # name -> {project, gpus, report?: [metric, ...] (the spec's report:)}
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    audit: dict[str, Any] | None = None  # {"address": "udp://h:p", "file": path}
    metrics: bool = True  # False: no /metrics and no sampling, only the audit records shipped

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExporterConf:
        services = {
            name: ServiceConf(s["project"], s["image"], s["spec_hash"],
                              tuple(s["replicas"]), int(s.get("gpus", 0)))
            for name, s in data.get("services", {}).items()}
        keys = ("listen", "port", "docker", "systemctl", "proc", "cgroup", "gpus",
                "sample_interval", "state_dir", "prices", "jobs", "audit", "metrics",
                "gpu_models")
        simple = {k: data[k] for k in keys if k in data}
        return cls(site=data["site"], host=data["host"], services=services, **simple)

    @property
    def report(self) -> dict[str, list[str]]:
        """job -> the metrics its spec reports (report:)."""
        return {name: [str(m) for m in j.get("report", [])] for name, j in self.jobs.items()}

    @property
    def models(self) -> list[str]:
        """The GPU models this host names (none: it declares a count of GPUs)."""
        return sorted(set(self.gpu_models.values()))

    @property
    def projects(self) -> list[str]:
        return sorted({s.project for s in self.services.values()}
                      | {str(j["project"]) for j in self.jobs.values()})


def load_config(path: str) -> ExporterConf:
    with open(path, encoding="utf-8") as fh:
        return ExporterConf.from_json(json.load(fh))


# -- one sample ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Replica:
    service: str
    project: str
    replica: int
    up: bool
    healthy: bool
    restarts: Mapping[str, int]  # by cause: systemd, probe (see count_restarts)
    image: str
    spec_hash: str
    cpu_seconds: float | None
    memory_bytes: float | None


@dataclass
class Snapshot:
    taken: float = 0.0
    duration: float = 0.0
    docker_up: bool = False
    systemd_up: bool = False
    replicas: list[Replica] = field(default_factory=list)
    deployed: dict[str, float] = field(default_factory=dict)
    gpus_allocated: int = 0
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)  # totals, see State
    in_cluster: dict[str, str] = field(default_factory=dict)  # service -> project
    runs: RunTotals = field(default_factory=RunTotals)  # the jobs' runs that ended here
    gpus_allocated_by_model: dict[str, int] = field(default_factory=dict)  # named models


def healthy(c: src.Container | None, unit: src.UnitState | None,
            records: hv.Records) -> bool:
    """The replica's container runs and passes the one health rule `hostctl status` uses
    (hostctl.hosts.health_verdict): Docker's verdict, or while it has none yet, hostctl's own
    latest check of the unit's current run (the probe's, or the deploy's health gate's)."""
    if c is None or not c.running:
        return False
    return hv.counts_as_healthy(hv.verdict(c.health, records,
                                           unit.started if unit is not None else None))


@dataclass
class State:
    """What carries over between samples and exporter restarts: the totals per project,
    the last CPU reading of each container (to count only what is new), each unit's
    restart totals (count_restarts), the runs that ended (read from the run history) and
    how far the audit log and the run history were shipped."""

    projects: dict[str, dict[str, Any]] = field(default_factory=dict)
    containers: dict[str, float] = field(default_factory=dict)
    last: float | None = None
    audit_offset: int = 0
    restarts: dict[str, dict[str, int]] = field(default_factory=dict)  # unit -> count_restarts()
    runs: RunTotals = field(default_factory=RunTotals)
    runs_shipped: Cursor = field(default_factory=Cursor)  # run records sent to Logstash

    @classmethod
    def load(cls, path: str) -> State:
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
            return cls(data.get("projects", {}), data.get("containers", {}),
                       data.get("last"), int(data.get("audit_offset", 0)),
                       data.get("restarts", {}), RunTotals.from_json(data.get("runs")),
                       Cursor.from_json(data.get("runs_shipped")))
        except (OSError, ValueError, AttributeError):
            return cls()

    def save(self, path: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"projects": self.projects, "containers": self.containers,
                       "last": self.last, "audit_offset": self.audit_offset,
                       "restarts": self.restarts, "runs": self.runs.to_json(),
                       "runs_shipped": self.runs_shipped.to_json()}, fh, sort_keys=True)
        os.replace(tmp, path)

    def totals(self, project: str) -> dict[str, Any]:
        return self.projects.setdefault(project, {"cpu_seconds": 0.0, "gpu_seconds": 0.0,
                                                  "cost": {}})


def count_restarts(prev: Mapping[str, int] | None, nrestarts: int, probe: int
                   ) -> dict[str, int]:
    """The restart totals of one unit after a sample, by cause: `systemd` (its container
    exited, Restart= started it again) and `probe` (hostctl's probe found it unhealthy).

    Neither source is a counter: systemd resets NRestarts on every explicit start or restart
    (a deploy, the probe's own restarts), and the probe's file can be removed. So the totals
    grow by what each source gained since the last sample, and a source that went down has
    been reset: its whole new value is new. (Automatic restarts between a reset and the next
    sample that do not bring NRestarts back above its old value are missed; with samples
    seconds apart that takes a crash loop faster than RestartSec.)
    """
    if prev is None:
        return {"systemd": nrestarts, "probe": probe, "seen_systemd": nrestarts,
                "seen_probe": probe}

    def gained(now: int, seen: int) -> int:
        return now - seen if now >= seen else now

    return {"systemd": prev.get("systemd", 0) + gained(nrestarts, prev.get("seen_systemd", 0)),
            "probe": prev.get("probe", 0) + gained(probe, prev.get("seen_probe", 0)),
            "seen_systemd": nrestarts, "seen_probe": probe}


class Sampler:
    def __init__(self, conf: ExporterConf, run: src.Run = src.run_command,
                 cgroups: src.CgroupReader | None = None, state_path: str | None = None,
                 clock: Any = time.time):
        self.conf, self.run, self.clock = conf, run, clock
        self.cgroups = cgroups or src.CgroupReader(conf.proc, conf.cgroup)
        self.state_path = state_path or f"{conf.state_dir}/exporter/state.json"
        self.state = State.load(self.state_path)
        for project in conf.projects:
            self.state.totals(project)
        self.latest = Snapshot(projects=self._projects_copy())
        self.lock = threading.Lock()

    def _projects_copy(self) -> dict[str, dict[str, Any]]:
        return json.loads(json.dumps(self.state.projects))

    def _gpus_of(self, c: src.Container) -> int:
        workload = c.label("workload")
        if workload in self.conf.services:
            return self.conf.services[workload].gpus
        if workload in self.conf.jobs:
            return int(self.conf.jobs[workload].get("gpus", 0))
        return c.gpus or 0

    def _models_of(self, c: src.Container, gpus: int) -> list[str]:
        """The model of each of the container's `gpus` GPUs ("": none named): of the devices
        Docker (or HOSTCTL_GPU_DEVICES) says it has, else of no model."""
        if len(c.gpu_devices) == gpus:
            return [self.conf.gpu_models.get(d, "") for d in c.gpu_devices]
        return [""] * gpus

    def _charge(self, project: str, resource: str, seconds: float) -> None:
        totals = self.state.totals(project)
        totals[f"{resource}_seconds"] += seconds
        price = (self.conf.prices or {}).get(f"{resource}_hour")
        if price is not None:
            totals["cost"][resource] = totals["cost"].get(resource, 0.0) + seconds / 3600 * price

    def _charge_gpu(self, project: str, model: str, seconds: float) -> None:
        """GPU time of one device of `model`, at that model's price (jobs.pricing); a named
        model's time and cost are kept apart too (hostctl_project_gpu_model_*)."""
        totals = self.state.totals(project)
        totals["gpu_seconds"] += seconds
        price = pricing.gpu_hour(self.conf.prices or {}, model)
        cost = 0.0 if price is None else seconds / 3600 * price
        if price is not None:
            totals["cost"]["gpu"] = totals["cost"].get("gpu", 0.0) + cost
        if model:
            by_model = totals.setdefault("gpu_models", {})
            by_model[model] = by_model.get(model, 0.0) + seconds
            if price is not None:
                costs = totals.setdefault("gpu_model_cost", {})
                costs[model] = costs.get(model, 0.0) + cost

    def sample(self) -> Snapshot:
        started = self.clock()
        containers = src.read_containers(self.conf.docker, self.run, self.conf.gpus)
        units = src.read_units(self.run, self.conf.systemctl)
        now = self.clock()
        seen: dict[str, float] = {}
        cpu: dict[str, float | None] = {}
        memory: dict[str, float | None] = {}
        gpus_allocated = 0
        by_model = dict.fromkeys(self.conf.models, 0)
        for c in containers or []:
            if not c.running:
                continue
            paths = self.cgroups.paths(c.pid)
            cpu[c.id], memory[c.id] = self.cgroups.cpu_seconds(paths), \
                self.cgroups.memory_bytes(paths)
            project = c.label("project") or "unlabelled"
            used = cpu[c.id]
            if used is not None:
                self._charge(project, "cpu", max(0.0, used - self.state.containers.get(c.id, 0.0)))
                seen[c.id] = used
            gpus = self._gpus_of(c)
            gpus_allocated += gpus
            if gpus:
                since = max(c.started_at or now, self.state.last or 0.0)
                for model in self._models_of(c, gpus):
                    self._charge_gpu(project, model, max(0.0, now - since))
            for model in self._models_of(c, gpus):
                if model in by_model:
                    by_model[model] += 1
        if containers is not None:
            self.state.containers = seen
            self.state.last = now
        probe, verified = hv.read_records(f"{self.conf.state_dir}/health")
        if units is not None:
            self._count_restarts(units, probe)
        replicas = self._replicas(containers or [], units or {}, probe, verified, cpu, memory)
        # Read at every sample: a handoff (or its --back) changes no exporter config.
        handed = src.read_handed_off(self.conf.state_dir)
        in_cluster = {name: s.project for name, s in sorted(self.conf.services.items())
                      if name in handed}
        releases = src.Releases.read(self.conf.state_dir)
        deployed = {name: t for name in self.conf.services
                    if (t := releases.deployed_at(name)) is not None}
        self.state.runs.update(history_path(self.conf.state_dir), self.conf.report)
        try:
            self.state.save(self.state_path)
        except OSError as exc:
            print(f"hostctl-exporter: cannot save {self.state_path}: {exc}", file=sys.stderr)
        snap = Snapshot(now, self.clock() - started, containers is not None, units is not None,
                        replicas, deployed, gpus_allocated, self._projects_copy(), in_cluster,
                        self.state.runs.copy(), by_model)
        with self.lock:
            self.latest = snap
        return snap

    def _count_restarts(self, units: Mapping[str, src.UnitState],
                        records: Mapping[str, Mapping[str, str]]) -> None:
        probe = src.read_probe_restarts(records)
        for name, s in self.conf.services.items():
            for i in s.replicas:
                unit = f"hostctl-{name}-{i}.service"
                if unit in units:  # a unit systemd does not know yet has nothing to count
                    self.state.restarts[unit] = count_restarts(
                        self.state.restarts.get(unit), units[unit].restarts,
                        probe.get(unit, 0))

    def _replicas(self, containers: list[src.Container], units: Mapping[str, src.UnitState],
                  probe: Mapping[str, Mapping[str, str]], verified: Mapping[str, int],
                  cpu: Mapping[str, float | None], memory: Mapping[str, float | None]
                  ) -> list[Replica]:
        by_name = {c.name: c for c in containers}
        out = []
        for name, s in sorted(self.conf.services.items()):
            for i in s.replicas:
                c = by_name.get(f"hostctl-{name}-{i}")
                unit = f"hostctl-{name}-{i}.service"
                counted = self.state.restarts.get(unit, {})
                running = c is not None and c.running
                ok = healthy(c, units.get(unit),
                             hv.Records.of(probe.get(unit), verified.get(unit)))
                out.append(Replica(
                    name, s.project, i, running, ok,
                    {cause: counted.get(cause, 0) for cause in RESTART_CAUSES},
                    c.image if running and c else s.image,
                    (c.label("spec-hash") if running and c else "") or s.spec_hash,
                    cpu.get(c.id) if c else None, memory.get(c.id) if c else None))
        return out


# -- exposition ------------------------------------------------------------------------------

class HostctlCollector(Collector):
    def __init__(self, sampler: Sampler):
        self.sampler = sampler

    def collect(self) -> Iterator[Metric]:
        with self.sampler.lock:
            snap = self.sampler.latest
        yield from families(self.sampler.conf, snap)


def families(conf: ExporterConf, snap: Snapshot) -> Iterator[Metric]:
    """Every metric family of one sample."""
    # No `site` label: the scrape target carries it (a `site` here would come out as
    # `exported_site`).
    info = InfoMetricFamily("hostctl_exporter", "The exporter and what it watches",
                            labels=["version"])
    info.add_metric([VERSION], {})
    yield info
    yield GaugeMetricFamily("hostctl_exporter_docker_up",
                            "1 if Docker answered at the last sample", value=int(snap.docker_up))
    yield GaugeMetricFamily("hostctl_exporter_systemd_up",
                            "1 if systemd answered at the last sample", value=int(snap.systemd_up))
    yield GaugeMetricFamily("hostctl_exporter_last_sample_timestamp_seconds",
                            "When containers were last read", value=snap.taken)
    yield GaugeMetricFamily("hostctl_exporter_sample_duration_seconds",
                            "How long the last sample took", value=snap.duration)
    yield from _service_families(snap)
    yield GaugeMetricFamily("hostctl_host_gpus", "GPUs on this host", value=conf.gpus)
    yield GaugeMetricFamily("hostctl_host_gpus_allocated",
                            "GPUs allocated to running containers", value=snap.gpus_allocated)
    if conf.models:  # a host naming its GPUs' models: both by model too
        devices = GaugeMetricFamily("hostctl_host_model_gpus", "GPUs of the model on this "
                                    "host", labels=["gpu_model"])
        allocated = GaugeMetricFamily("hostctl_host_model_gpus_allocated", "GPUs of the model "
                                      "allocated to running containers", labels=["gpu_model"])
        for model in conf.models:
            devices.add_metric([model], sum(1 for m in conf.gpu_models.values() if m == model))
            allocated.add_metric([model], snap.gpus_allocated_by_model.get(model, 0))
        yield from (devices, allocated)
    yield from _project_families(conf, snap)
    yield from _run_families(conf, snap)


def _service_families(snap: Snapshot) -> Iterator[Metric]:
    labels = list(SERVICE_LABELS)
    up = GaugeMetricFamily("hostctl_service_up", "1 if the replica's container runs", labels=labels)
    ok = GaugeMetricFamily("hostctl_service_healthy", "1 if the replica passes its health check",
                           labels=labels)
    restarts = CounterMetricFamily("hostctl_service_restarts", "Restarts of the replica's "
                                   "unit, by cause: systemd (its container exited) or probe "
                                   "(hostctl's health probe found it unhealthy)",
                                   labels=[*labels, "by"])
    info = InfoMetricFamily("hostctl_service", "What the replica runs",
                            labels=[*labels, "image", "spec_hash"])
    cpu = CounterMetricFamily("hostctl_container_cpu_seconds", "CPU time of the replica's "
                              "current container", labels=labels)
    mem = GaugeMetricFamily("hostctl_container_memory_bytes", "Memory of the replica's "
                            "container, without inactive page cache", labels=labels)
    for r in snap.replicas:
        values = [r.service, r.project, str(r.replica)]
        up.add_metric(values, int(r.up))
        ok.add_metric(values, int(r.healthy))
        for cause in RESTART_CAUSES:
            restarts.add_metric([*values, cause], r.restarts.get(cause, 0))
        info.add_metric([*values, r.image, r.spec_hash], {})
        if r.cpu_seconds is not None:
            cpu.add_metric(values, r.cpu_seconds)
        if r.memory_bytes is not None:
            mem.add_metric(values, r.memory_bytes)
    deployed = GaugeMetricFamily("hostctl_service_deploy_timestamp_seconds", "When the spec "
                                 "that runs now was deployed", labels=["service", "project"])
    projects = {r.service: r.project for r in snap.replicas}
    for service, when in sorted(snap.deployed.items()):
        deployed.add_metric([service, projects.get(service, "")], when)
    # The alert rules leave these services' replicas alone: they run in the k3s cluster.
    in_cluster = GaugeMetricFamily("hostctl_service_in_cluster", "1 if the service was handed "
                                   "to the k3s cluster (hostctl k8s handoff): its replicas "
                                   "here are meant to be stopped", labels=["service", "project"])
    for service, project in sorted(snap.in_cluster.items()):
        in_cluster.add_metric([service, project], 1)
    yield from (up, ok, restarts, info, cpu, mem, deployed, in_cluster)


def _project_families(conf: ExporterConf, snap: Snapshot) -> Iterator[Metric]:
    cpu = CounterMetricFamily("hostctl_project_cpu_seconds", "CPU time used by the project's "
                              "containers on this host", labels=["project"])
    gpu = CounterMetricFamily("hostctl_project_gpu_seconds", "GPU time allocated to the "
                              "project's containers on this host", labels=["project"])
    for project, t in sorted(snap.projects.items()):
        cpu.add_metric([project], t["cpu_seconds"])
        gpu.add_metric([project], t["gpu_seconds"])
    yield from (cpu, gpu)
    models = conf.models
    if models:  # a host naming its GPUs' models: their time by model too
        by_model = CounterMetricFamily("hostctl_project_gpu_model_seconds", "GPU time "
                                       "allocated to the project's containers on this host, "
                                       "by GPU model", labels=["project", "gpu_model"])
        for project, t in sorted(snap.projects.items()):
            for model in models:
                by_model.add_metric([project, model], t.get("gpu_models", {}).get(model, 0.0))
        yield by_model
    prices = conf.prices
    if not prices:
        return  # no prices: no cost series at all, rather than a misleading 0
    yield from _cost_families(conf, snap, prices)


def _cost_families(conf: ExporterConf, snap: Snapshot, prices: Mapping[str, Any]
                   ) -> Iterator[Metric]:
    """Prices and cost. On a host naming its GPUs' models, the price of each of its models
    (`gpu_model`; "" on the CPU's and the price of GPUs of no listed model) and the cost by
    model; hostctl_project_cost{resource="gpu"} stays the cost of all its GPUs."""
    currency = str(prices["currency"])
    models = [(model, p) for model in conf.models
              if (p := pricing.gpu_hour(prices, model)) is not None]
    gpu_priced = prices.get("gpu_hour") is not None or bool(models)
    priced = [r for r, on in (("cpu", prices.get("cpu_hour") is not None),
                              ("gpu", gpu_priced)) if on]
    labels = ["resource", "currency", *(["gpu_model"] if conf.models else [])]
    price = GaugeMetricFamily("hostctl_price_per_hour", "Price of one CPU or GPU for an hour",
                              labels=labels)
    for resource in ("cpu", "gpu"):
        if prices.get(f"{resource}_hour") is not None:
            price.add_metric([resource, currency, *([""] if conf.models else [])],
                             float(prices[f"{resource}_hour"]))
    for model, p in models:
        price.add_metric(["gpu", currency, model], p)
    cost = CounterMetricFamily("hostctl_project_cost", "What the project's usage on this host "
                               "cost, at the inventory's prices",
                               labels=["project", "resource", "currency"])
    for project, t in sorted(snap.projects.items()):
        for resource in priced:
            cost.add_metric([project, resource, currency], t["cost"].get(resource, 0.0))
    yield from (price, cost)
    if models:
        by_model = CounterMetricFamily("hostctl_project_gpu_model_cost", "What the project's "
                                       "GPU time on this host cost, by GPU model",
                                       labels=["project", "gpu_model", "currency"])
        for project, t in sorted(snap.projects.items()):
            for model, _ in models:
                by_model.add_metric([project, model, currency],
                                    t.get("gpu_model_cost", {}).get(model, 0.0))
        yield by_model


def _run_families(conf: ExporterConf, snap: Snapshot) -> Iterator[Metric]:
    # `job_name`, not `job`: the scrape target's `job` label would rename ours exported_job
    # (kube-state-metrics names its Kubernetes jobs job_name for the same reason).
    runs = CounterMetricFamily("hostctl_job_runs", "Runs of the job that ended on this host, "
                               "by final state", labels=["project", "job_name", "state"])
    counts = {p: {j: dict(s) for j, s in jobs.items()} for p, jobs in snap.runs.counts.items()}
    for name, j in conf.jobs.items():  # every final state of every job here, from 0
        counts.setdefault(str(j["project"]), {}).setdefault(name, {})
    for project, jobs in sorted(counts.items()):
        for job, by_state in sorted(jobs.items()):
            for state in FINAL_STATES:
                runs.add_metric([project, job, state], by_state.get(state, 0))
    metric = GaugeMetricFamily("hostctl_job_metric", "The last value of a metric the job's "
                               "spec reports (report:), from the newest run of the experiment "
                               "that ended on this host with it; the 20 experiments of each "
                               "job whose runs ended last",
                               labels=["job_name", "experiment", "metric"])
    for job, experiments in sorted(snap.runs.latest.items()):
        for experiment, metrics in sorted(experiments.items()):
            for name, entry in sorted(metrics.items()):
                metric.add_metric([job, experiment, name], float(entry[2]))
    yield from (runs, metric)


# -- the process -----------------------------------------------------------------------------

def registry_for(sampler: Sampler) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HostctlCollector(sampler))
    return registry


def serve(conf: ExporterConf, once: bool = False) -> int:
    if not conf.metrics:
        return ship_audit_only(conf, once)
    sampler = Sampler(conf)
    registry = registry_for(sampler)
    shippers = _shippers(conf, sampler.state)
    sampler.sample()
    if once:
        sys.stdout.write(generate_latest(registry).decode())
        return 0
    start_http_server(conf.port, conf.listen, registry)
    print(f"hostctl-exporter: serving /metrics on {conf.listen}:{conf.port} for "
          f"{conf.host} (site {conf.site})", file=sys.stderr, flush=True)
    while True:
        time.sleep(conf.sample_interval)
        try:
            for shipper in shippers:
                shipper.ship()
            sampler.sample()
        except Exception as exc:  # keep serving the last sample; say what went wrong
            print(f"hostctl-exporter: sample failed: {type(exc).__name__}: {exc}",
                  file=sys.stderr, flush=True)


def _shippers(conf: ExporterConf, state: State) -> list[Any]:
    """With a logging section: the audit records' shipper and the finished runs'."""
    return [s for s in (AuditShipper.from_conf(conf, state), RunShipper.from_conf(conf, state))
            if s is not None]


def ship_audit_only(conf: ExporterConf, once: bool = False) -> int:
    """Logging without metrics: ship the audit records and the finished runs' records,
    keeping the offsets in the same state file the exporter would (so turning metrics on
    later sends nothing twice)."""
    path = f"{conf.state_dir}/exporter/state.json"
    state = State.load(path)
    shippers = _shippers(conf, state)
    if not shippers:
        print("hostctl-exporter: neither metrics nor an audit address: nothing to do",
              file=sys.stderr)
        return 2
    print(f"hostctl-exporter: shipping audit and run records of {conf.host} to "
          f"{conf.audit['address'] if conf.audit else ''}", file=sys.stderr, flush=True)
    while True:
        try:
            for shipper in shippers:
                shipper.ship()
            state.save(path)
        except Exception as exc:  # keep going: the next look sends what is still unsent
            print(f"hostctl-exporter: shipping failed: {type(exc).__name__}: {exc}",
                  file=sys.stderr, flush=True)
        if once:
            return 0
        time.sleep(conf.sample_interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hostctl-exporter",
                                     description="hostctl's per-host Prometheus exporter")
    parser.add_argument("--config", default=CONFIG_PATH)
    parser.add_argument("--once", action="store_true",
                        help="take one sample, print the metrics and exit")
    args = parser.parse_args(argv)
    try:
        conf = load_config(args.config)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"hostctl-exporter: cannot read {args.config}: {exc}", file=sys.stderr)
        return 2
    return serve(conf, once=args.once)


if __name__ == "__main__":
    sys.exit(main())
