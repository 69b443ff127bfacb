"""The inventory's `projects:` -> Kueue objects (kueue.x-k8s.io/v1beta1), and the labels that
put a project's Jobs in its queue.

- one ResourceFlavor, `default-flavor` (no node labels: every node), with the namespace
  prefix like every other site-wide name;
- per listed project a ClusterQueue named like its namespace, selecting only that namespace,
  with the quota as `nominalQuota` for cpu, memory and nvidia.com/gpu. Kueue keeps a Job
  out when it asks for a resource its ClusterQueue does not cover ("resource cpu
  unavailable in ClusterQueue", pkg/scheduler/flavorassigner), so all three are always
  covered and a resource the project has no quota on gets UNLIMITED;
- per listed project a LocalQueue (named after the project) in its namespace;
- WorkloadPriorityClasses for high, normal and low (PRIORITY_VALUES), named with the
  namespace prefix like every other site-wide name;
- the project's Jobs (and CronJobs' job templates) labelled with the LocalQueue and the
  project's priority class. Projects not listed get none of this.
What Kueue has no field for (the monthly budget, the owners) and what it counts differently
(it queues Jobs, not Deployments) goes to the report.
"""

from __future__ import annotations

from hostctl.k8s import checks as kc
from hostctl.k8s.names import LABEL, MANAGED_BY, meta, namespace_of
from hostctl.k8s.render_context import RenderContext, ReportItem
from hostctl.k8s.values import cpu_quantity, memory_quantity
from hostctl.spec import model as m
from hostctl.spec.sections.projects import ProjectQuota

KUEUE_API = "kueue.x-k8s.io/v1beta1"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
DEFAULT_FLAVOR = "default-flavor"
GPU_RESOURCE = "nvidia.com/gpu"
COVERED = ("cpu", "memory", GPU_RESOURCE)
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
                 "resourceGroups": [{
                     "coveredResources": list(COVERED),
                     "flavors": [{"name": flavor_name(ctx), "resources": [
                         {"name": name, "nominalQuota": amount}
                         for name, amount in nominal_quota(quota).items()]}],
                 }],
             }}, origin)
    ctx.add({"apiVersion": KUEUE_API, "kind": "LocalQueue",
             "metadata": meta(local_queue_name(project), ns, labels),
             "spec": {"clusterQueue": ns}}, origin)
    _notes(ctx, project, quota)


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

