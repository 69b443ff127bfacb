"""Where workloads run: eligible hosts, instances, and the host ports each instance gets."""

from __future__ import annotations

from dataclasses import dataclass

from hostctl.spec import model as m

UNIT_PREFIX = "hostctl-"


def placed_on(w: m.Workload, host: m.Host) -> bool:
    """Whether the placement allows `host`. No placement means every host."""
    if w.placement.hosts and host.name not in w.placement.hosts:
        return False
    return all(host.labels.get(k) == v for k, v in w.placement.labels.items())


def eligible_hosts(w: m.Workload, inv: m.Inventory) -> list[m.Host]:
    """Hosts the placement allows, in inventory order."""
    named = w.placement.hosts
    if len(named) == 1:  # most placements: one host by name (the inventory's key)
        host = inv.hosts.get(named[0])
        return [host] if host is not None and placed_on(w, host) else []
    return [host for host in inv.hosts.values() if placed_on(w, host)]


def gpus_needed(w: m.Workload, inv: m.Inventory) -> int:
    if w.resources.profile is not None and w.resources.profile in inv.profiles:
        return inv.profiles[w.resources.profile].gpus
    return w.resources.gpus


def gpu_models_needed(w: m.Workload, inv: m.Inventory) -> tuple[str, ...]:
    """The GPU models it accepts (none: any)."""
    if w.resources.profile is not None and w.resources.profile in inv.profiles:
        return inv.profiles[w.resources.profile].gpu_models
    return w.resources.gpu_models


def gpu_fit(host: m.Host, need: int, models: tuple[str, ...]) -> bool:
    """Whether the host has `need` devices of an acceptable model."""
    return host.gpus_of(models) >= need


def schedule_host(w: m.Workload, inv: m.Inventory) -> m.Host | None:
    """The host that carries a scheduled job's timer: the first eligible one that fits."""
    need, models = gpus_needed(w, inv), gpu_models_needed(w, inv)
    return next((h for h in eligible_hosts(w, inv) if gpu_fit(h, need, models)), None)


@dataclass(frozen=True)
class Instance:
    """One running copy of a service on one host."""

    workload: m.Workload
    host: m.Host
    index: int  # 1-based, stable: instance 1 is always the first

    @property
    def name(self) -> str:
        """Container name and unit stem: hostctl-<service>-<index>."""
        return f"{UNIT_PREFIX}{self.workload.name}-{self.index}"

    @property
    def unit(self) -> str:
        return f"{self.name}.service"

    def host_port(self, port_name: str) -> int | None:
        port = self.workload.ports[port_name]
        return None if port.host is None else port.host + self.index - 1


def service_instances(w: m.Workload, inv: m.Inventory) -> list[Instance]:
    if w.is_job:
        return []
    return [Instance(w, host, i) for host in eligible_hosts(w, inv)
            for i in range(1, w.instances + 1)]


def instances_on(w: m.Workload, host: m.Host) -> list[Instance]:
    """The instances of service `w` that run on `host` (none for jobs)."""
    if w.is_job or not placed_on(w, host):
        return []
    return [Instance(w, host, i) for i in range(1, w.instances + 1)]
