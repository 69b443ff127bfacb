"""NetworkPolicies that give pods the isolation Docker networks give containers on hosts.

On hosts each project has its own Docker network: its containers reach each other, the
gateway reaches routed ports, and a service that joins another project's network (`reach`)
talks both ways with it. In the cluster each project is a namespace whose pods admit only
their own namespace; further policies open exactly those other paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hostctl.k8s import checks as kc
from hostctl.k8s.names import (
    SELECTOR_KEY,
    meta,
    namespace_of,
    project_labels,
)
from hostctl.k8s.render_context import RenderContext
from hostctl.spec import model as m
from hostctl.spec.sections.k3s import ingress_namespace

ISOLATION_POLICY = "hostctl-project-isolation"


def isolate_project(ctx: RenderContext, project: str, origin: kc.Origin) -> None:
    """Pods of the project's namespace admit traffic only from that namespace."""
    ctx.add({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
             "metadata": meta(ISOLATION_POLICY, namespace_of(ctx.cfg, project),
                              project_labels(ctx.inv.site, project)),
             "spec": {"podSelector": {}, "policyTypes": ["Ingress"],
                      "ingress": [{"from": [{"podSelector": {}}]}]}}, origin)


def reach(ctx: RenderContext, w: m.Workload) -> None:
    """A service that joins another project's network can reach its pods and be reached
    by them (a Docker network is symmetric): a policy on each side."""
    ns = namespace_of(ctx.cfg, w.project)
    labels = ctx.labels(w)
    for i, project in enumerate(w.reach):
        other = namespace_of(ctx.cfg, project)
        origin = kc.origin_of(w, f"reach/{i}")
        ctx.add(policy(f"{w.name}-reach-from-{w.project}", other, labels, {}, [
            {"namespaceSelector": ns_selector(ns),
             "podSelector": {"matchLabels": {SELECTOR_KEY: w.name}}}]), origin)
        ctx.add(policy(f"{w.name}-reached-from-{project}", ns, labels,
                       {SELECTOR_KEY: w.name},
                       [{"namespaceSelector": ns_selector(other)}]), origin)


def admit_ingress_controller(ctx: RenderContext, w: m.Workload, port: str) -> None:
    """The ingress controller's namespace may reach the routed port, and only that one, as
    the gateway reaches only routed ports on hosts."""
    controller = ingress_namespace(ctx.cfg, ctx.inv)
    ctx.add(policy(f"{w.name}-from-ingress", namespace_of(ctx.cfg, w.project),
                   ctx.labels(w), {SELECTOR_KEY: w.name},
                   [{"namespaceSelector": ns_selector(controller)}],
                   [{"protocol": w.ports[port].protocol.upper(), "port": port}]),
            kc.origin_of(w, "route"))


def policy(name: str, ns: str, labels: Mapping[str, str], pods: Mapping[str, str],
           peers: list[dict[str, Any]], ports: list[dict[str, Any]] | None = None
           ) -> dict[str, Any]:
    """An Ingress-only policy in `ns`: pods matching `pods` (all when empty) admit `peers`,
    on `ports` when given."""
    rule: dict[str, Any] = {"from": peers}
    if ports:
        rule["ports"] = ports
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": meta(name, ns, labels),
            "spec": {"podSelector": {"matchLabels": dict(pods)} if pods else {},
                     "policyTypes": ["Ingress"], "ingress": [rule]}}


def ns_selector(namespace: str) -> dict[str, Any]:
    # Kubernetes sets this label on every namespace itself, so it needs no labelling of ours
    # (and matches the ingress controller's namespace, which hostctl does not create).
    return {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
