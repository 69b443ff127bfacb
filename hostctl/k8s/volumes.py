"""A workload's volumes: named Docker volumes become PersistentVolumeClaims, host paths
become hostPath volumes.

Both change meaning in a cluster (a claim has a size and an access mode, a host path is
whichever node the pod lands on), so each volume is also reported with what it became.
"""

from __future__ import annotations

from typing import Any

from hostctl.k8s import checks as kc
from hostctl.k8s.names import meta, namespace_of, project_labels
from hostctl.k8s.render_context import RenderContext
from hostctl.k8s.values import memory_quantity
from hostctl.spec import model as m


def volumes(ctx: RenderContext, w: m.Workload
            ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The pod's volumes and the container's mounts of them (claims added to `ctx`)."""
    volumes, mounts = [], []
    pods = ctx.pod_count(w)
    for i, v in enumerate(w.volumes):
        name = f"volume-{i}"
        mount: dict[str, Any] = {"name": name, "mountPath": v.target}
        if v.read_only:
            mount["readOnly"] = True
        mounts.append(mount)
        if v.source.startswith("/"):
            volumes.append({"name": name, "hostPath": {"path": v.source}})
            ctx.note(w, f"volumes/{i}", f"host path {v.source} becomes a hostPath volume: "
                     "it is the node's directory, so data differs from node to node and "
                     "the directory must exist there")
            continue
        volumes.append({"name": name, "persistentVolumeClaim": {"claimName": v.source}})
        claim(ctx, w, i, v, pods)
    return volumes, mounts


def claim(ctx: RenderContext, w: m.Workload, i: int, v: m.Volume, pods: int) -> None:
    """The claim for named volume `v` (one per project and name: workloads of a project
    that name the same volume share it, as they share the Docker volume on a host)."""
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {
                                "storage": memory_quantity(ctx.cfg.volume_size)}}}
    if ctx.cfg.storage_class:
        spec["storageClassName"] = ctx.cfg.storage_class
    ns = namespace_of(ctx.cfg, w.project)
    ctx.add({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
             "metadata": meta(v.source, ns, project_labels(ctx.inv.site, w.project)),
             "spec": spec}, kc.origin_of(w, f"volumes/{i}"))
    sharing = [o.name for o in ctx.site.workloads
               if o.project == w.project and any(x.source == v.source for x in o.volumes)]
    note = (f"volume '{v.source}' becomes PersistentVolumeClaim {v.source} in {ns} "
            f"({memory_quantity(ctx.cfg.volume_size)}, ReadWriteOnce, storage class "
            f"{ctx.cfg.storage_class or 'the cluster default'}); Docker volumes have no "
            "size")
    # ReadWriteOnce binds the claim to one node: every pod using it must land there.
    if pods > 1 or len(sharing) > 1:
        note += (f"; it is shared by {pods} pod(s) of {', '.join(sharing)}, which must "
                 "then run on one node (or use a ReadWriteMany storage class)")
    ctx.note(w, f"volumes/{i}", note)
