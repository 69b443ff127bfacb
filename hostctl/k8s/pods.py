"""The pod template shared by Deployments, Jobs and CronJobs: one container with the spec's
image, command, env, secrets, ports, resources, health probes and volumes.

Where Docker and Kubernetes differ by default, the template chooses Docker's behaviour, so a
workload moved to the cluster behaves as it did on its hosts (see the comments below).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hostctl.k8s import checks as kc
from hostctl.k8s.names import (
    env_config_map,
    meta,
    namespace_of,
    secret_name,
)
from hostctl.k8s.placement import place
from hostctl.k8s.render_context import RenderContext
from hostctl.k8s.values import cpu_quantity, escape_expansion, memory_quantity, seconds
from hostctl.k8s.volumes import volumes
from hostctl.spec import model as m
from hostctl.spec.checks import at

SHARD_INDEX_PATH = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_RUNTIME_CLASS = "nvidia"


def pod_template(ctx: RenderContext, w: m.Workload, labels: Mapping[str, str],
                 restart: str) -> dict[str, Any]:
    """The pod template for `w`; the ConfigMap and Secret it refers to go into `ctx`."""
    container: dict[str, Any] = {"name": w.name, "image": w.image}
    if w.image_source == "push":
        container["imagePullPolicy"] = "IfNotPresent"
        ctx.note(w, "image", f"image_source push: the cluster pulls images itself; import "
                 f"{w.image} on every node (k3s ctr images import) or push it to a "
                 "registry the cluster can reach")
    if w.command:
        container["command"] = [escape_expansion(x) for x in w.command]
    if w.args:
        container["args"] = [escape_expansion(x) for x in w.args]
    if w.env:
        container["envFrom"] = [{"configMapRef": {"name": env_config_map(w)}}]
        ctx.add({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": meta(env_config_map(w), namespace_of(ctx.cfg, w.project),
                                  ctx.labels(w)),
                 "data": dict(w.env)}, kc.origin_of(w, "env"))
    env = secret_env(ctx, w) + shard_env(w)
    if env:
        container["env"] = env
    if w.ports:
        container["ports"] = [{"name": pname, "containerPort": p.container,
                               "protocol": p.protocol.upper()}
                              for pname, p in w.ports.items()]
    limits = resources(ctx, w)
    if limits:
        container["resources"] = limits
    if w.health is not None:
        container.update(probes(ctx, w, w.health))
    pod_volumes, mounts = volumes(ctx, w)
    if mounts:
        container["volumeMounts"] = mounts
    spec: dict[str, Any] = {
        "containers": [container],
        "restartPolicy": restart,
        # Containers on hosts get neither API credentials nor service-link variables.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": seconds(ctx, w, "stop_timeout", w.stop_timeout),
    }
    if w.resources.gpus:
        spec["runtimeClassName"] = GPU_RUNTIME_CLASS
    if pod_volumes:
        spec["volumes"] = pod_volumes
    place(ctx, w, spec)
    return {"metadata": {"labels": dict(labels)}, "spec": spec}


def secret_env(ctx: RenderContext, w: m.Workload) -> list[dict[str, Any]]:
    """References into the workload's Secret (added to `ctx`): values never sit in a pod."""
    if not w.secrets:
        return []
    values = {}
    for name in w.secrets:
        value = ctx.site.secrets.get(name)
        if value is None:  # the loader refuses a missing secret; never send an empty one
            ctx.problems.append(at(w, "secrets", f"secret '{name}' has no value"))
            continue
        values[name] = value
    ctx.add({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
             "metadata": meta(secret_name(w), namespace_of(ctx.cfg, w.project),
                              ctx.labels(w)),
             "stringData": values}, kc.origin_of(w, "secrets"))
    return [{"name": name, "valueFrom": {"secretKeyRef": {"name": secret_name(w),
                                                          "key": name}}}
            for name in w.secrets]


def shard_env(w: m.Workload) -> list[dict[str, Any]]:
    """A sharded job's index and count, as hostctl sets them on hosts; the index comes from
    the Indexed Job's completion index."""
    if not w.is_job or w.shards <= 1:
        return []
    return [{"name": "HOSTCTL_SHARD_INDEX",
             "valueFrom": {"fieldRef": {"fieldPath": SHARD_INDEX_PATH}}},
            {"name": "HOSTCTL_SHARD_COUNT", "value": str(w.shards)}]


def resources(ctx: RenderContext, w: m.Workload) -> dict[str, Any]:
    """Docker's --cpus and --memory are hard limits with nothing reserved; requests equal
    to limits keep that promise on a busy node (Guaranteed QoS)."""
    r = w.resources
    limits: dict[str, str] = {}
    if r.cpus is not None:
        limits["cpu"] = cpu_quantity(r.cpus)
        if abs(r.cpus * 1000 - round(r.cpus * 1000)) > 1e-6 or r.cpus < 0.001:
            ctx.note(w, "resources", f"cpus {r.cpus:g} rounds to {limits['cpu']}: "
                     "Kubernetes counts CPU in thousandths")
    if r.memory is not None:
        limits["memory"] = memory_quantity(r.memory)
    if r.gpus:
        limits[GPU_RESOURCE] = str(r.gpus)
    return {"requests": dict(limits), "limits": limits} if limits else {}


def probes(ctx: RenderContext, w: m.Workload, h: m.Health) -> dict[str, Any]:
    """The health check as a readiness probe (traffic only to healthy pods) and a liveness
    probe (restart when unhealthy), with the same action and timing."""
    if h.http is not None:
        action: dict[str, Any] = {"httpGet": {"path": h.http.path, "port": h.http.port}}
    elif h.tcp is not None:
        action = {"tcpSocket": {"port": h.tcp.port}}
    else:
        action = {"exec": {"command": list(h.command or ())}}
    timing = {"periodSeconds": seconds(ctx, w, "health/interval", h.interval),
              "timeoutSeconds": seconds(ctx, w, "health/timeout", h.timeout),
              "failureThreshold": h.retries, "successThreshold": 1}
    liveness = {**action, **timing}
    if h.start_period:
        # Docker ignores failures during start_period; so does a liveness probe that
        # starts after it. Readiness starts at once, as Docker marks healthy on success.
        liveness["initialDelaySeconds"] = seconds(ctx, w, "health/start_period",
                                                  h.start_period, minimum=0)
    return {"readinessProbe": {**action, **timing}, "livenessProbe": liveness}
