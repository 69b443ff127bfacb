"""A hostctl service -> a Deployment (its pods) and a Service (its named ports), plus the
policies and Ingress its `reach` and `route` ask for.

Host ports and restart policies have no meaning for a Deployment; they are reported, not
silently dropped.
"""

from __future__ import annotations

from hostctl.k8s import checks as kc
from hostctl.k8s import ingress
from hostctl.k8s.names import SELECTOR_KEY, meta, namespace_of
from hostctl.k8s.network_policy import reach
from hostctl.k8s.pods import pod_template
from hostctl.k8s.render_context import RenderContext
from hostctl.spec import model as m


def service(ctx: RenderContext, w: m.Workload) -> None:
    ns = namespace_of(ctx.cfg, w.project)
    labels = ctx.labels(w)
    origin = kc.origin_of(w)
    # As many pods as the service runs containers on hosts: instances x eligible hosts.
    replicas = ctx.pod_count(w)
    pod = pod_template(ctx, w, labels, restart="Always")
    ctx.add({"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": meta(w.name, ns, labels),
             "spec": {"replicas": replicas, "selector": {"matchLabels": {
                 SELECTOR_KEY: w.name}}, "template": pod}}, origin)
    if w.ports:
        annotations = ingress.kong_service_annotations(ctx, w)
        ctx.add({"apiVersion": "v1", "kind": "Service",
                 "metadata": meta(w.name, ns, labels, annotations),
                 "spec": {"selector": {SELECTOR_KEY: w.name}, "ports": [
                     {"name": pname, "port": p.container, "targetPort": pname,
                      "protocol": p.protocol.upper()} for pname, p in w.ports.items()]}},
                origin)
    for pname, p in w.ports.items():
        if p.host is not None:
            ctx.note(w, f"ports/{pname}/host", f"host port {p.host} has no meaning in the "
                     f"cluster: Service {w.name}.{ns} serves port {p.container} inside it"
                     + (" and the Ingress outside" if ingress.exposed(ctx, w) else ""))
    if w.restart != "always":
        ctx.note(w, "restart", f"restart: {w.restart} has no Deployment equivalent: "
                 "Kubernetes always restarts a service's containers")
    reach(ctx, w)
    if w.route is not None:
        ingress.route(ctx, w)
