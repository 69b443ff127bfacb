"""What each host should run, worked out from the site alone, before any host is contacted.

A HostTarget is the rendered files, the images and where they come from, the Docker networks,
and the health probe of each service instance on the host. Building it needs no network, so
a deploy builds every host's target while it connects (see deploy.run.Deploy.connected).
"""

from __future__ import annotations

from dataclasses import dataclass

from hostctl.deploy.plan import TargetFile, sha256
from hostctl.errors import HostctlError
from hostctl.hosts.images import LocalImages
from hostctl.render import docker_cmd as d
from hostctl.render.probe import HealthProbe, probe_for
from hostctl.render.site import RenderedFile, render_host
from hostctl.spec import model as m
from hostctl.spec.placement import eligible_hosts, service_instances
from hostctl.spec.platform import PLATFORM_PROJECT, platform_name


@dataclass(frozen=True)
class HostTarget:
    """What one host should run, derived from the site alone (no host contact)."""

    host: m.Host
    files: dict[str, RenderedFile]
    target: dict[str, TargetFile]
    images: dict[str, tuple[str, str | None]]
    image_users: dict[str, set[str]]
    networks: dict[str, str]  # network -> project
    probes: dict[str, HealthProbe]
    error: str | None = None  # why this host cannot be deployed (an image missing here)


def build_target(site: m.Site, host: m.Host, images: LocalImages | None) -> HostTarget:
    """The target of one host. `images` is asked for local image ids only when some workload
    is pushed from here (None: nothing is pushed, so no Docker is needed on this machine)."""
    inv = site.inventory
    files = {f.path: f for f in render_host(site, host)}
    target = {p: TargetFile(p, sha256(f.content), f.mode, f.workload, f.secret, f.owner,
                            f.restarts) for p, f in files.items()}
    refs: dict[str, tuple[str, str | None]] = {}
    users: dict[str, set[str]] = {}
    networks: dict[str, str] = {}
    probes: dict[str, HealthProbe] = {}
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
