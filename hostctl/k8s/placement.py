"""How many pods a workload runs and which nodes may take them.

On hosts a service runs `instances` containers on each eligible host; in the cluster the
same count becomes the Deployment's replicas, and Kubernetes chooses the nodes. Placement by
host name has no cluster meaning; placement by labels carries over only as a nodeSelector,
when the inventory asks for it (k3s/node_selector). A GPU model asked for (`gpu_model:`)
always carries over: as a nodeSelector on NVIDIA GPU feature discovery's product label
(one model) or a required node affinity (a list of acceptable ones), the label Kueue's
per-model ResourceFlavors select (hostctl.k8s.queues).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hostctl.spec import model as m
from hostctl.spec.placement import eligible_hosts, gpu_models_needed

if TYPE_CHECKING:
    from hostctl.k8s.render_context import RenderContext

# The node label NVIDIA's GPU feature discovery sets to the GPU's product name; hostctl
# writes k3s/gpu_products' value for the model, else the model name as the inventory spells
# it (the nodes' labels must match).
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"


def pod_count(inv: m.Inventory, w: m.Workload) -> int:
    """Pods running at once: a job's shards, or a service's instances x eligible hosts."""
    if w.is_job:
        return w.shards
    return w.instances * len(eligible_hosts(w, inv))


def place(ctx: RenderContext, w: m.Workload, spec: dict[str, Any]) -> None:
    """Add a nodeSelector to the pod `spec` if asked for; report what placement loses."""
    p = w.placement
    if ctx.cfg.node_selector and p.labels:
        spec["nodeSelector"] = dict(p.labels)
    if p.hosts:
        ctx.note(w, "placement/hosts", f"hosts {', '.join(p.hosts)} are not carried: "
                 "Kubernetes chooses nodes"
                 + ("" if w.is_job else
                    f"; replicas = instances x eligible hosts = {ctx.pod_count(w)}"))
    models = [ctx.cfg.gpu_product(model) for model in gpu_models_needed(w, ctx.inv)]
    if len(models) == 1:
        spec["nodeSelector"] = {**spec.get("nodeSelector", {}), GPU_PRODUCT_LABEL: models[0]}
    elif models:
        spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": GPU_PRODUCT_LABEL, "operator": "In", "values": list(models)}]}]}}}
    if p.labels and not ctx.cfg.node_selector:
        wanted = ", ".join(f"{k}={v}" for k, v in p.labels.items())
        ctx.note(w, "placement/labels", f"labels {wanted} are not carried: Kubernetes "
                 "chooses nodes (set k3s/node_selector: true to require nodes labelled so)")
