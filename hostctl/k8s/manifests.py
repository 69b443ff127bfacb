"""Site -> Kubernetes manifests, and a report of what the specs say that Kubernetes cannot.

Pure: no I/O. The result is a sorted list of plain dicts (apply order: namespaces first),
identical for identical input. Secret values stay `hostctl.spec.secrets.Secret` objects inside
the dicts until `materialize` turns them into values (for the API server) or into
`<secret NAME>` (for files and people).

What maps to what (issue 7):
- a project -> a Namespace (`namespace_prefix` + project) with NetworkPolicies that admit
  only its own pods, the ingress controller (to routed ports) and `reach` peers, as the
  per-project Docker networks do on hosts;
- a service -> Deployment (replicas = instances x eligible hosts) + Service (named ports),
  env in a ConfigMap, secrets as references into a Secret, named volumes as claims,
  health as readiness and liveness probes, resources as requests = limits, GPUs as
  `nvidia.com/gpu` with `runtimeClassName: nvidia`;
- a route -> Ingress of the inventory's class: Kong's with KongPlugins (key-auth, jwt, acl,
  rate-limiting, request-size-limiting, cors: the same plugin configs the host gateway
  uses) and KongConsumers, or Traefik's with Middlewares;
- a job -> Job (shards: Indexed, completions = parallelism = shards, HOSTCTL_SHARD_INDEX
  from the completion index), or CronJob when scheduled;
- the inventory's projects: -> Kueue queues (a ClusterQueue with the quota and a LocalQueue
  per listed project, priority classes, one ResourceFlavor; queues.py), and the project's
  Jobs labelled with its LocalQueue.
Everything a spec says that has no Kubernetes meaning becomes a `ReportItem`.

This module walks the site and owns the result; each kind of object is built elsewhere:
services.py (Deployment, Service), pods.py (the pod template), volumes.py, placement.py,
jobs.py (Job, CronJob), ingress.py (Ingress, KongPlugin, Middleware), kong_consumers.py,
network_policy.py, queues.py (Kueue); render_context.py holds what a walk gathers, names.py
the shared names and labels, values.py the unit conversions, manifest_files.py the YAML and
files. The names other modules and tests import stay importable from here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hostctl.errors import ConfigError
from hostctl.k8s import checks as kc
from hostctl.k8s.ingress import KONG_API, KONG_CORS_METHODS, TRAEFIK_API, kong_plugins
from hostctl.k8s.jobs import job
from hostctl.k8s.kong_consumers import consumers
from hostctl.k8s.manifest_files import (
    content_hash,
    dump,
    dump_all,
    file_name,
    files,
    report_text,
)
from hostctl.k8s.names import (
    LABEL,
    MANAGED_BY,
    SELECTOR_KEY,
    env_config_map,
    meta,
    namespace_of,
    project_labels,
    secret_name,
)
from hostctl.k8s.network_policy import ISOLATION_POLICY, isolate_project
from hostctl.k8s.pods import GPU_RESOURCE, GPU_RUNTIME_CLASS, SHARD_INDEX_PATH
from hostctl.k8s.queues import kueue_objects
from hostctl.k8s.render_context import RenderContext, ReportItem
from hostctl.k8s.services import service
from hostctl.k8s.values import cpu_quantity, escape_expansion, memory_quantity
from hostctl.spec import model as m
from hostctl.spec.secrets import materialize
from hostctl.spec.sections.k3s import KONG, TRAEFIK, K3sConfig

__all__ = [
    "GPU_RESOURCE", "GPU_RUNTIME_CLASS", "ISOLATION_POLICY", "KIND_ORDER", "KONG_API",
    "KONG_CORS_METHODS", "LABEL", "MANAGED_BY", "SELECTOR_KEY", "SHARD_INDEX_PATH",
    "TRAEFIK_API", "Rendering", "ReportItem", "content_hash", "cpu_quantity", "dump",
    "dump_all", "env_config_map", "escape_expansion", "file_name", "files", "kong_plugins",
    "materialize", "memory_quantity", "namespace_of", "render_manifests", "report_text",
    "secret_name", "sort_key",
]

# Apply order: what others refer to comes first.
KIND_ORDER = ("Namespace", "ResourceFlavor", "WorkloadPriorityClass", "ClusterQueue",
              "LocalQueue", "ConfigMap", "Secret", "PersistentVolumeClaim", "Service",
              "Deployment", "Job", "CronJob", "KongPlugin", "KongConsumer", "Middleware",
              "Ingress", "NetworkPolicy")


@dataclass
class Rendering:
    """The manifests (sorted, Secret values unrevealed), where each came from, and the
    report of what did not carry over."""

    manifests: list[dict[str, Any]]
    origins: dict[tuple[str, str, str], kc.Origin]
    report: list[ReportItem]
    ingress_class: str = TRAEFIK

    def select(self, names: Iterable[str]) -> Rendering:
        """Only what the named workloads need (their namespace and policies included)."""
        wanted = set(names)
        keep = [d for d in self.manifests
                if self.origins[kc.manifest_key(d)].workloads & wanted]
        keys = {kc.manifest_key(d) for d in keep}
        return Rendering(keep, {k: v for k, v in self.origins.items() if k in keys},
                         [r for r in self.report if not r.workload or r.workload in wanted],
                         self.ingress_class)


def render_manifests(site: m.Site, cfg: K3sConfig | None = None) -> Rendering:
    """Every manifest for the site; ConfigError (every problem, located) when the specs hold
    something the cluster would refuse or cron cannot schedule."""
    ctx = RenderContext(site, site.inventory.k3s if cfg is None else cfg)
    _walk(ctx)
    manifests = sorted(ctx.docs.values(), key=sort_key)
    # The builders' problems first (in walk order), then what the finished objects break.
    problems = ctx.problems + kc.check_manifests(manifests, ctx.origins)
    if problems:
        raise ConfigError(problems)
    return Rendering(manifests, ctx.origins, sorted(set(ctx.report)), ctx.ingress)


def sort_key(doc: Mapping[str, Any]) -> tuple[int, str, str]:
    kind = str(doc["kind"])
    order = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    metadata = doc["metadata"]
    return order, str(metadata.get("namespace", "")), str(metadata["name"])


def _walk(ctx: RenderContext) -> None:
    """Projects first, then workloads by name, then what the inventory says. An object
    added twice (a shared claim) keeps its first copy and origin, so the order matters."""
    workloads = ctx.site.workloads
    for project in sorted({w.project for w in workloads}):
        members = frozenset(w.name for w in workloads if w.project == project)
        _namespace(ctx, project, members)
    for w in sorted(workloads, key=lambda w: w.name):
        if w.is_job:
            job(ctx, w)
        else:
            service(ctx, w)
    consumers(ctx)
    kueue_objects(ctx)
    _inventory_notes(ctx)


def _namespace(ctx: RenderContext, project: str, members: frozenset[str]) -> None:
    """The project's Namespace and its isolation policy, located at the first spec (by file
    and line) that names the project, and owned by all its workloads."""
    ns = namespace_of(ctx.cfg, project)
    first = min((w for w in ctx.site.workloads if w.project == project),
                key=lambda w: (w.file, w.line))
    origin = kc.Origin(first.file, first.lines.get("project", first.line), "project",
                       members)
    ctx.add({"apiVersion": "v1", "kind": "Namespace",
             "metadata": meta(ns, None, project_labels(ctx.inv.site, project))}, origin)
    isolate_project(ctx, project, origin)


def _inventory_notes(ctx: RenderContext) -> None:
    """Inventory settings the cluster does not take over."""
    if ctx.inv.logging:
        ctx.note_inventory("logging", "not carried: in the cluster, container output "
                           "goes to the node's container logs (kubectl logs)")
    if ctx.inv.metrics:
        ctx.note_inventory("metrics", "not carried: scrape the cluster's own metrics")
    if ctx.gw is not None and ctx.ingress == KONG:
        ctx.note_inventory("gateway/hosts", "the cluster's Kong (ingress class kong) "
                           "takes over: gateway hosts, image and ports are not carried")
