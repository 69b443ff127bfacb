"""The inventory's `projects:` -> Kueue objects (kueue.x-k8s.io/v1beta1), and the labels that
put a project's Jobs in its queue.

- one ResourceFlavor, `default-flavor` (no node labels: every node), with the namespace
  prefix like every other site-wide name;
- when the inventory's hosts name GPU models (`gpus: [{model: l4, count: 2}]`), one
  ResourceFlavor per model, `gpu-<model>`, whose nodeLabels select the nodes of that model
  by NVIDIA GPU feature discovery's `nvidia.com/gpu.product` label (its value is
  k3s/gpu_products' for the model, e.g. NVIDIA-A100-SXM4-80GB, else the model name as the
  inventory spells it: the nodes' labels must say the same), and, when some
  host's GPUs have no model, `default-gpu-flavor` (no node labels) for those;
- per listed project a ClusterQueue named like its namespace, selecting only that namespace,
  with the quota as `nominalQuota` for cpu, memory and nvidia.com/gpu. Kueue keeps a Job
  out when it asks for a resource its ClusterQueue does not cover ("resource cpu
  unavailable in ClusterQueue", pkg/scheduler/flavorassigner), so all three are always
  covered and a resource the project has no quota on gets UNLIMITED. Without GPU models
  it is one resource group, the three resources in default-flavor. With them it is two,
  as Kueue's ClusterQueue webhook wants (a resource in one group only, a flavor in one
  group only, each flavor listing exactly its group's coveredResources, at most 16
  flavors a group): cpu and memory in default-flavor, and nvidia.com/gpu in the model
  flavors (in name order) then default-gpu-flavor. A Job asking `gpu_model:` carries a
  nodeSelector (or a node affinity for a list) on the product label, so Kueue gives it
  only a matching flavor; a Job asking no model takes the first flavor with room, and
  Kueue adds that flavor's node labels to its pods.
  The project's `gpus:` quota is each GPU flavor's nominalQuota: Kueue has no quota
  across flavors, and splitting N among the models would refuse runs the hosts admit. So
  in the cluster a project may hold N GPUs of each model at once, not N in all; the
  report says so (hostctl's own admission on the hosts counts them together). Nor can a
  flavor select "nodes without a product label": default-gpu-flavor selects none, so
  Kueue may count a Job asking a model there once its model's flavor is full (its pods
  still go to that model's nodes); the report says that too;
- per listed project a LocalQueue (named after the project) in its namespace;
- WorkloadPriorityClasses for high, normal and low (PRIORITY_VALUES), named with the
  namespace prefix like every other site-wide name;
- the project's Jobs (and CronJobs' job templates) labelled with the LocalQueue and the
  project's priority class. Projects not listed get none of this.
What Kueue has no field for (the monthly budget, the owners) and what it counts differently
(it queues Jobs, not Deployments) goes to the report.
"""

from __future__ import annotations

from typing import Any

from hostctl.k8s import checks as kc
from hostctl.k8s.names import LABEL, MANAGED_BY, meta, namespace_of
from hostctl.k8s.placement import GPU_PRODUCT_LABEL
from hostctl.k8s.render_context import RenderContext, ReportItem
from hostctl.k8s.values import cpu_quantity, memory_quantity
from hostctl.spec import model as m
from hostctl.spec.sections.projects import ProjectQuota

KUEUE_API = "kueue.x-k8s.io/v1beta1"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
DEFAULT_FLAVOR = "default-flavor"
DEFAULT_GPU_FLAVOR = "default-gpu-flavor"  # GPUs of hosts that name no model
GPU_FLAVOR_PREFIX = "gpu-"  # + the model: never default-gpu-flavor nor default-flavor
GPU_RESOURCE = "nvidia.com/gpu"
COVERED = ("cpu", "memory", GPU_RESOURCE)
MAX_FLAVORS = 16  # in one resource group (the CRD's maxItems, the webhook's flavorsMaxItems)
PRIORITY_VALUES = {"high": 1000, "normal": 500, "low": 100}
# nominalQuota for a resource the project sets no limit on: far beyond any cluster hostctl
# hands off to (a million CPUs or GPUs, an exbibyte of memory), still a valid quantity.
UNLIMITED = {"cpu": "1000000", "memory": "1Ei", GPU_RESOURCE: "1000000"}


def queued(ctx: RenderContext, w: m.Workload) -> dict[str, str]:
    """The Kueue labels of `w`'s Job: its project's LocalQueue and priority class, or none
    when its project is not listed under projects:."""
    quota = ctx.inv.projects.projects.get(w.project)
    if quota is None:
        return {}
    return {QUEUE_LABEL: local_queue_name(w.project),
            PRIORITY_LABEL: priority_class_name(ctx, quota.priority)}


def local_queue_name(project: str) -> str:
    return project


def flavor_name(ctx: RenderContext) -> str:
    return ctx.cfg.namespace_prefix + DEFAULT_FLAVOR


def gpu_flavors(ctx: RenderContext) -> dict[str, str | None]:
    """The GPU flavors when hosts name GPU models (else none): flavor name -> the model its
    nodes have, in name order, then default-gpu-flavor (None) if some host's GPUs have
    no model."""
    named = sorted({model for h in ctx.inv.hosts.values() for _, model in h.gpu_devices
                    if model})
    if not named:
        return {}
    out: dict[str, str | None] = {
        ctx.cfg.namespace_prefix + GPU_FLAVOR_PREFIX + model: model for model in named}
    if any(not model for h in ctx.inv.hosts.values() for _, model in h.gpu_devices):
        out[ctx.cfg.namespace_prefix + DEFAULT_GPU_FLAVOR] = None
    return out


def priority_class_name(ctx: RenderContext, priority: str) -> str:
    return ctx.cfg.namespace_prefix + priority


def kueue_objects(ctx: RenderContext) -> None:
    """The flavor, priority classes and per project a ClusterQueue and a LocalQueue."""
    cfg = ctx.inv.projects
    listed = {p: q for p, q in cfg.projects.items()
              if any(w.project == p for w in ctx.site.workloads)}
    if not listed:
        return
    # Owned by the Jobs they queue: handing off a service alone needs none of them.
    everyone = frozenset(w.name for w in ctx.site.workloads if w.project in listed and w.is_job)
    site_labels = {**MANAGED_BY, f"{LABEL}/site": ctx.inv.site}
    top = kc.Origin(cfg.file, cfg.lines.get("projects", 0), "projects", everyone)
    _note(ctx, "projects", f"becomes Kueue queues ({KUEUE_API}): install Kueue in the "
          "cluster first (a release that serves v1beta1, such as v0.14); without it the "
          "queue objects cannot be applied")
    ctx.add({"apiVersion": KUEUE_API, "kind": "ResourceFlavor",
             "metadata": meta(flavor_name(ctx), None, site_labels)}, top)
    gpus = gpu_flavors(ctx)
    if len(gpus) > MAX_FLAVORS:
        ctx.problems.append(kc.Origin(ctx.inv.file, ctx.inv.lines.get("hosts", 0), "hosts",
                                      everyone).problem(
            f"the hosts name {len(gpus)} GPU flavors ({', '.join(gpus)}), and a Kueue "
            f"ClusterQueue takes at most {MAX_FLAVORS} flavors for nvidia.com/gpu: name "
            "fewer models (several products may share a model name)"))
    for name, model in gpus.items():
        flavor = {"apiVersion": KUEUE_API, "kind": "ResourceFlavor",
                  "metadata": meta(name, None, site_labels)}
        origin = top
        if model is not None:
            flavor["spec"] = {"nodeLabels": {GPU_PRODUCT_LABEL: ctx.cfg.gpu_product(model)}}
            # made from the first host naming the model: what is wrong with it is fixed there
            host = next(h for h in ctx.inv.hosts.values()
                        if any(model == d for _, d in h.gpu_devices))
            origin = kc.Origin(ctx.inv.file, host.line, f"hosts/{host.name}/gpus", everyone)
        ctx.add(flavor, origin)
    for priority, value in PRIORITY_VALUES.items():
        ctx.add({"apiVersion": KUEUE_API, "kind": "WorkloadPriorityClass",
                 "metadata": meta(priority_class_name(ctx, priority), None, site_labels),
                 "value": value,
                 "description": f"hostctl priority {priority} of site {ctx.inv.site}"}, top)
    for project, quota in listed.items():
        _project_queues(ctx, project, quota)


def _project_queues(ctx: RenderContext, project: str, quota: ProjectQuota) -> None:
    cfg = ctx.inv.projects
    ns = namespace_of(ctx.cfg, project)
    members = frozenset(w.name for w in ctx.site.workloads
                        if w.project == project and w.is_job)
    path = f"projects/{project}"
    origin = kc.Origin(cfg.file, cfg.source(path).line, path, members)
    labels = {**MANAGED_BY, f"{LABEL}/site": ctx.inv.site, f"{LABEL}/project": project}
    ctx.add({"apiVersion": KUEUE_API, "kind": "ClusterQueue",
             "metadata": meta(ns, None, labels),
             "spec": {
                 "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
                 "resourceGroups": resource_groups(ctx, quota),
             }}, origin)
    ctx.add({"apiVersion": KUEUE_API, "kind": "LocalQueue",
             "metadata": meta(local_queue_name(project), ns, labels),
             "spec": {"clusterQueue": ns}}, origin)
    _notes(ctx, project, quota)


def resource_groups(ctx: RenderContext, quota: ProjectQuota) -> list[dict[str, Any]]:
    """One group of the three resources in default-flavor; with GPU models, cpu and memory
    in default-flavor and nvidia.com/gpu in each GPU flavor, the project's GPU quota each."""
    nominal = nominal_quota(quota)
    gpus = gpu_flavors(ctx)

    def group(covered: tuple[str, ...], flavors: list[str]) -> dict[str, Any]:
        return {"coveredResources": list(covered),
                "flavors": [{"name": f, "resources": [
                    {"name": r, "nominalQuota": nominal[r]} for r in covered]}
                    for f in flavors]}

    if not gpus:
        return [group(COVERED, [flavor_name(ctx)])]
    return [group(("cpu", "memory"), [flavor_name(ctx)]), group((GPU_RESOURCE,), list(gpus))]


def nominal_quota(quota: ProjectQuota) -> dict[str, str]:
    """cpu, memory and nvidia.com/gpu as Kueue quantities, UNLIMITED where no quota is set."""
    return {
        "cpu": UNLIMITED["cpu"] if quota.cpus is None else cpu_quantity(quota.cpus),
        "memory": UNLIMITED["memory"] if quota.memory is None else memory_quantity(quota.memory),
        GPU_RESOURCE: UNLIMITED[GPU_RESOURCE] if quota.gpus is None else str(quota.gpus),
    }


def _notes(ctx: RenderContext, project: str, quota: ProjectQuota) -> None:
    path = f"projects/{project}"
    limited = [k for k in ("gpus", "cpus", "memory") if getattr(quota, k) is not None]
    services = sorted(w.name for w in ctx.site.workloads
                      if w.project == project and not w.is_job)
    if limited and services:
        _note(ctx, path,
              f"the quota covers the project's Jobs only in the cluster: Kueue queues Jobs, "
              f"and the services ({', '.join(services)}) run as Deployments outside it")
    flavors = gpu_flavors(ctx)
    if quota.gpus is not None and len(flavors) > 1:
        unlabelled = [f for f, model in flavors.items() if model is None]
        _note(ctx, f"{path}/gpus",
              f"{quota.gpus} GPU(s) at once is carried per GPU flavor ("
              f"{', '.join(flavors)}): Kueue has no quota across flavors, so in the "
              f"cluster the project may hold {quota.gpus} of each at once, up to "
              f"{quota.gpus * len(flavors)} in all"
              + (f"; and {unlabelled[0]} selects no nodes (the GPUs of hosts naming no "
                 "model), so a Job asking a model whose flavor is full may be counted "
                 "there" if unlabelled else ""))
    if quota.gpu_hours_per_month is not None:
        _note(ctx, f"{path}/gpu_hours_per_month",
              f"{quota.gpu_hours_per_month:g} GPU-hours per month is not carried: Kueue has "
              "no budget over time, only the concurrent quota (ClusterQueue "
              f"{namespace_of(ctx.cfg, project)})")
    for w in sorted(ctx.site.workloads, key=lambda w: w.name):
        if w.project == project and w.is_job and w.shards > 1:
            _whole_job_note(ctx, w, quota)
    if quota.owners:
        _note(ctx, f"{path}/owners",
              f"owners {', '.join(quota.owners)} are not carried: in the cluster, who may "
              f"create Jobs in namespace {namespace_of(ctx.cfg, project)} is RBAC's to say")


def _whole_job_note(ctx: RenderContext, w: m.Workload, quota: ProjectQuota) -> None:
    """Hosts run a sharded job's shards as separate runs, as the quota leaves room; Kueue
    admits the Indexed Job whole (all shards at once) or not at once."""
    res = w.resources
    over = [f"{w.shards} x {need} {unit} > {limit} {unit}"
            for need, limit, unit in ((res.gpus or None, quota.gpus, "GPU(s)"),
                                      (res.cpus, quota.cpus, "CPU(s)"))
            if need is not None and limit is not None and need * w.shards > limit]
    if res.memory is not None and quota.memory is not None \
            and res.memory * w.shards > quota.memory:
        over.append(f"{w.shards} x {memory_quantity(res.memory)} memory > "
                    f"{memory_quantity(quota.memory)}")
    if over:
        ctx.note(w, "shards", f"Kueue admits the Indexed Job's {w.shards} shards together "
                 f"and the project's quota cannot hold them ({'; '.join(over)}): in the "
                 "cluster it would wait for ever; lower shards or raise the quota (hosts run "
                 "the shards one run at a time as the quota leaves room)")


def _note(ctx: RenderContext, path: str, message: str) -> None:
    """Report a setting of the projects section (located at its own line) not carried."""
    src = ctx.inv.projects.source(path)
    ctx.report.append(ReportItem(src.file, src.line, path, message))

