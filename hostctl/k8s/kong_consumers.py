"""The gateway's consumers -> KongConsumers, each with its credentials (acl group, key-auth
keys, jwt secrets) as labelled Secrets that Kong's ingress controller reads.

Only for Kong: Traefik has no consumers, so there they are reported (and routes with auth
stay closed, see ingress.py). A consumer is rendered only when its project has workloads in
the site, into that project's namespace. Its username stays exactly the gateway section's
name; the objects' names are derived from it (names.consumer_object_name).
"""

from __future__ import annotations

from typing import Any

from hostctl.k8s import checks as kc
from hostctl.k8s.ingress import KONG_API
from hostctl.k8s.names import consumer_object_name, meta, namespace_of, project_labels
from hostctl.k8s.render_context import RenderContext
from hostctl.spec.secrets import Secret
from hostctl.spec.sections.k3s import KONG


def consumers(ctx: RenderContext) -> None:
    if ctx.gw is None or not ctx.gw.consumers:
        return
    if ctx.ingress != KONG:
        ctx.note_inventory("gateway/consumers", "consumers are not carried: Traefik has "
                           "none; routes with auth stay closed (set k3s/ingress: kong)")
        return
    projects = {w.project for w in ctx.site.workloads}
    for name, c in sorted(ctx.gw.consumers.items()):
        if c.project not in projects:
            continue
        consumer(ctx, name, c)


def consumer(ctx: RenderContext, name: str, c: Any) -> None:
    gw = ctx.gw
    assert gw is not None
    ns = namespace_of(ctx.cfg, c.project)
    labels = project_labels(ctx.inv.site, c.project)
    where = f"gateway/consumers/{name}"
    src = gw.source(where)
    # The consumer belongs to every routed service it may call (for --only).
    callers = frozenset(w.name for w in ctx.site.services if w.route is not None and (
        w.project == c.project or c.project in w.route.allow_projects))
    origin = kc.Origin(src.file, src.line, where, callers)
    # Object names are derived (Kubernetes refuses '_' and more); the username stays exact.
    obj = consumer_object_name(name)
    # The acl group is the project: routes admit the groups of their allowed projects.
    credentials: list[tuple[str, str, dict[str, Any]]] = [
        (f"{obj}-acl", "acl", {"group": c.project})]
    credentials += [(f"{obj}-key-auth-{i}", "key-auth", {"key": secret(ctx, s, origin)})
                    for i, s in enumerate(c.key_auth)]
    credentials += [(f"{obj}-jwt-{i}", "jwt", {
        "key": j.key or name, "algorithm": j.algorithm,
        "secret": secret(ctx, j.secret, origin)}) for i, j in enumerate(c.jwt)]
    for secret_object, kind, data in credentials:
        ctx.add({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                 "metadata": meta(secret_object, ns, {**labels,
                                                      "konghq.com/credential": kind}),
                 "stringData": data}, origin)
    ctx.add({"apiVersion": KONG_API, "kind": "KongConsumer",
             "metadata": meta(obj, ns, labels, {"kubernetes.io/ingress.class": KONG}),
             "username": name, "credentials": [s for s, _, _ in credentials]}, origin)


def secret(ctx: RenderContext, name: str, origin: kc.Origin) -> Secret | str:
    """The secret's value, or a problem at the consumer when the site has none."""
    value = ctx.site.secrets.get(name)
    if value is None:
        ctx.problems.append(origin.problem(f"secret '{name}' has no value"))
        return ""
    return value
