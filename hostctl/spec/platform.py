"""Platform services: what hostctl itself runs for the site (today: the Kong gateway).

Each one is expressed as an ordinary service Workload, so it is rendered, planned, pushed,
health-gated and rolled back exactly like the site's own services. `--skip-platform NAME`
leaves one out, explicitly and visibly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from hostctl import layout as L
from hostctl.errors import HostctlError
from hostctl.observability.platform import logging_workloads
from hostctl.spec import model as m
from hostctl.spec.sections.gateway import (
    ADMIN_CONTAINER_PORT,
    CONTAINER_CONFIG_PATH,
    DECLARATIVE_PATH,
    PROXY_CONTAINER_PORTS,
    STATUS_CONTAINER_PORT,
    kong_environment,
)
from hostctl.spec.sections.logging import ELASTICSEARCH_WORKLOAD, LOGSTASH_WORKLOAD

PLATFORM_PROJECT = "platform"
GATEWAY = "gateway"
LOGGING = "logging"  # Logstash, and Elasticsearch unless the site names its own
GATEWAY_WORKLOAD = L.GATEWAY_WORKLOAD
NAMES = (GATEWAY, LOGGING)


@dataclass(frozen=True)
class PlatformService:
    name: str  # what --skip-platform takes
    workload: m.Workload


def gateway_service(site: m.Site) -> PlatformService | None:
    inv = site.inventory
    gw = inv.gateway
    if gw is None or not gw.managed:
        return None
    ports = {
        "admin": m.Port(ADMIN_CONTAINER_PORT, gw.admin_port, bind="127.0.0.1"),
        "status": m.Port(STATUS_CONTAINER_PORT, gw.status_port, bind="127.0.0.1"),
    }
    if gw.proxy.http is not None:
        ports["proxy"] = m.Port(PROXY_CONTAINER_PORTS["http"], gw.proxy.http)
    if gw.proxy.https is not None:
        ports["proxy-tls"] = m.Port(PROXY_CONTAINER_PORTS["https"], gw.proxy.https)
    workload = m.Workload(
        kind=m.SERVICE, name=GATEWAY_WORKLOAD, project=PLATFORM_PROJECT, image=gw.image,
        image_source=gw.image_source or inv.image_source,
        file=inv.file, source="(inventory gateway section)", line=inv.lines.get("gateway", 0),
        env=dict(sorted(kong_environment(gw).items())),
        ports=dict(sorted(ports.items())),
        volumes=(m.Volume(DECLARATIVE_PATH, CONTAINER_CONFIG_PATH, read_only=True),),
        # Kong answers /status/ready only once its configuration is loaded.
        health=m.Health(http=m.HttpCheck(port="status", path="/status/ready"), interval=2.0,
                        timeout=2.0, retries=15, start_period=5.0),
        placement=m.Placement(hosts=gw.hosts),
        stop_timeout=15.0,
    )
    return PlatformService(GATEWAY, workload)


def logging_services(site: m.Site) -> list[PlatformService]:
    inv = site.inventory
    return [PlatformService(LOGGING, w) for w in logging_workloads(inv.logging, inv)]


def platform_services(site: m.Site) -> list[PlatformService]:
    gateway = [s for s in (gateway_service(site),) if s is not None]
    return gateway + logging_services(site)


def skipped_workloads(skip: Iterable[str]) -> frozenset[str]:
    """The workloads of skipped platform services: their files stay as they are."""
    by_name = {GATEWAY: (GATEWAY_WORKLOAD,), LOGGING: (LOGSTASH_WORKLOAD, ELASTICSEARCH_WORKLOAD)}
    return frozenset(w for name in skip for w in by_name.get(name, ()))


def platform_name(workload: str) -> str:
    """What --skip-platform takes for a platform workload."""
    return GATEWAY if workload == GATEWAY_WORKLOAD else LOGGING


def check_skip(names: Iterable[str]) -> frozenset[str]:
    skip = frozenset(names)
    unknown = sorted(skip - set(NAMES))
    if unknown:
        raise HostctlError(f"--skip-platform: no platform service '{unknown[0]}' "
                           f"(known: {', '.join(NAMES)})")
    return skip


def with_platform(site: m.Site, skip: frozenset[str] = frozenset()) -> m.Site:
    """The site with its platform services added as workloads, minus the skipped ones."""
    extra = tuple(s.workload for s in platform_services(site) if s.name not in skip)
    return replace(site, workloads=site.workloads + extra) if extra else site
