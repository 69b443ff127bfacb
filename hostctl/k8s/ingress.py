"""A service's route -> an Ingress of the cluster's ingress class, with what that class
needs beside it: KongPlugins (Kong) or Middlewares (Traefik).

Kong gets exactly the plugin configs the host gateway uses (built by the gateway's own
code), so a route behaves the same in the cluster. Traefik can do less: what it cannot do is
reported, and a route with auth gets no Ingress at all, because an open route is worse than
a closed one.
"""

from __future__ import annotations

from typing import Any

from hostctl.gateway.declarative import build_declarative
from hostctl.k8s import checks as kc
from hostctl.k8s.names import meta, namespace_of
from hostctl.k8s.network_policy import admit_ingress_controller
from hostctl.k8s.render_context import RenderContext
from hostctl.spec import model as m
from hostctl.spec.checks import at
from hostctl.spec.sections.gateway import GatewayConfig, route_port
from hostctl.spec.sections.k3s import KONG

KONG_API = "configuration.konghq.com/v1"
TRAEFIK_API = "traefik.io/v1alpha1"
# Kong's default CORS methods (its cors plugin schema), for Traefik when a spec names none.
KONG_CORS_METHODS = ("GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE",
                     "CONNECT")

# The spec key each Kong plugin comes from, so a problem with a plugin points there.
_PLUGIN_SOURCE = {"key-auth": "route/auth", "jwt": "route/auth", "acl": "route/auth",
                  "rate-limiting": "route/rate_limit", "cors": "route/cors",
                  "request-size-limiting": "route/max_body"}


def exposed(ctx: RenderContext, w: m.Workload) -> bool:
    """Whether the route gets an Ingress (Traefik cannot check auth: those stay closed)."""
    return w.route is not None and (ctx.ingress == KONG or w.route.auth == "none")


def route(ctx: RenderContext, w: m.Workload) -> None:
    """The Ingress for `w`'s route, its plugins or middlewares, and the policy that lets
    the ingress controller reach the routed port."""
    r = w.route
    assert r is not None
    ns = namespace_of(ctx.cfg, w.project)
    port = route_port(w)
    assert port is not None
    if w.ports[port].protocol != "tcp":
        # An Ingress carries HTTP, which runs over TCP: never a backend on a UDP port.
        ctx.problems.append(at(w, "route/port" if r.port else "route", (
            f"port '{port}' is {w.ports[port].protocol.upper()}: an Ingress routes HTTP, "
            "which runs over TCP; route a TCP port")))
        return
    # Checked before the class decides (Traefik leaves auth routes out): every site that
    # validates must render for either class.
    for i, path in enumerate(r.paths):
        if (msg := kc.ingress_path_problem(path)) is not None:
            ctx.problems.append(at(w, kc.spec_item(w, "route/path", i), msg))
    for i, name in enumerate(r.hosts):
        if (msg := kc.ingress_host_problem(name)) is not None:
            ctx.problems.append(at(w, kc.spec_item(w, "route/hosts", i), msg))
    annotations: dict[str, str] = {}
    if ctx.ingress == KONG:
        annotations = kong_route(ctx, w, r)
    elif not traefik_route(ctx, w, r, annotations):
        return
    rules = []
    paths = [{"path": p, "pathType": "Prefix", "backend": {"service": {
        "name": w.name, "port": {"name": port}}}} for p in (r.paths or ("/",))]
    for host in r.hosts or (None,):
        rule: dict[str, Any] = {"http": {"paths": paths}}
        if host is not None:
            rule["host"] = host
        rules.append(rule)
    ctx.add({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
             "metadata": meta(w.name, ns, ctx.labels(w), annotations),
             "spec": {"ingressClassName": ctx.ingress, "rules": rules}},
            kc.origin_of(w, "route"))
    admit_ingress_controller(ctx, w, port)


# -- Kong

def kong_route(ctx: RenderContext, w: m.Workload, r: m.Route) -> dict[str, str]:
    """Add the route's KongPlugins; the Ingress annotations that attach them."""
    ns = namespace_of(ctx.cfg, w.project)
    names = []
    for plugin in kong_plugins(ctx.site, ctx.gw, w):
        name = f"{w.name}-{plugin['name']}"
        names.append(name)
        ctx.add({"apiVersion": KONG_API, "kind": "KongPlugin",
                 "metadata": meta(name, ns, ctx.labels(w),
                                  {"kubernetes.io/ingress.class": KONG}),
                 "plugin": plugin["name"], "config": plugin["config"]},
                kc.origin_of(w, _PLUGIN_SOURCE.get(plugin["name"], "route")))
    annotations = {"konghq.com/strip-path": str(r.strip_path).lower(),
                   "konghq.com/protocols": "http,https"}
    if names:
        annotations["konghq.com/plugins"] = ",".join(names)
    if r.methods:
        annotations["konghq.com/methods"] = ",".join(r.methods)
    return annotations


def kong_service_annotations(ctx: RenderContext, w: m.Workload) -> dict[str, str] | None:
    """Route timeouts: Kong reads them from the Service, not the Ingress."""
    r = w.route
    if r is None or ctx.ingress != KONG or r.timeouts is None:
        return None
    t = r.timeouts
    return {"konghq.com/connect-timeout": str(_ms(t.connect)),
            "konghq.com/read-timeout": str(_ms(t.read)),
            "konghq.com/write-timeout": str(_ms(t.write))}


def kong_plugins(site: m.Site, gw: GatewayConfig | None, w: m.Workload
                 ) -> list[dict[str, Any]]:
    """The route's plugins with exactly the configs the host gateway gives them."""
    config, _ = build_declarative(_routed_only(site, w), gw or GatewayConfig(hosts=()))
    services = config.get("services", [])
    plugins = services[0]["routes"][0].get("plugins", []) if services else []
    return [{"name": p["name"], "config": p["config"]} for p in plugins]


def _routed_only(site: m.Site, w: m.Workload) -> m.Site:
    # A site of this one workload: the gateway's Kong file then has exactly its route.
    return m.Site(inventory=site.inventory, workloads=(w,), secrets=site.secrets)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


# -- Traefik

def traefik_route(ctx: RenderContext, w: m.Workload, r: m.Route,
                  annotations: dict[str, str]) -> bool:
    """Traefik's Middlewares for what it can do; False when the route must stay closed."""
    if r.auth != "none":
        ctx.note(w, "route/auth", f"auth {r.auth} needs Kong (set k3s/ingress: kong); "
                 "Traefik cannot check it, so this route gets no Ingress and stays "
                 "closed rather than open")
        return False
    ns = namespace_of(ctx.cfg, w.project)
    middlewares: list[tuple[str, dict[str, Any], str]] = []
    if r.strip_path and r.paths:
        middlewares.append(("strip-prefix", {"stripPrefix": {"prefixes": list(r.paths)}},
                            "route/strip_path"))
    if r.rate_limit is not None:
        middlewares.append(("rate-limit", {"rateLimit": traefik_rate(ctx, w, r.rate_limit)},
                            "route/rate_limit"))
    if r.max_body is not None:
        middlewares.append(("max-body", {"buffering": {"maxRequestBodyBytes": r.max_body}},
                            "route/max_body"))
    if r.cors is not None:
        middlewares.append(("cors", {"headers": _traefik_cors(r.cors)}, "route/cors"))
    if r.methods:
        ctx.note(w, "route/methods", f"methods {', '.join(r.methods)} are not carried: a "
                 "Traefik Ingress routes every method (use k3s/ingress: kong)")
    if r.timeouts is not None:
        ctx.note(w, "route/timeouts", "timeouts are not carried: Traefik sets them for "
                 "all routes in its own configuration")
    names = []
    for suffix, spec, source in middlewares:
        name = f"{w.name}-{suffix}"
        # Traefik names a CRD middleware NAMESPACE-NAME@kubernetescrd in the annotation.
        names.append(f"{ns}-{name}@kubernetescrd")
        ctx.add({"apiVersion": TRAEFIK_API, "kind": "Middleware",
                 "metadata": meta(name, ns, ctx.labels(w)), "spec": spec},
                kc.origin_of(w, source))
    if names:
        annotations["traefik.ingress.kubernetes.io/router.middlewares"] = ",".join(names)
    return True


def traefik_rate(ctx: RenderContext, w: m.Workload, limit: m.RateLimit) -> dict[str, Any]:
    """Traefik has one token bucket per middleware: the shortest window's limit."""
    given = [(p, getattr(limit, p)) for p in ("second", "minute", "hour", "day")
             if getattr(limit, p) is not None]
    (period, count), rest = given[0], given[1:]
    for p, n in rest:
        ctx.note(w, f"route/rate_limit/{p}", f"{n} per {p} is not carried: Traefik "
                 f"enforces one limit, {count} per {period}")
    unit = {"second": "1s", "minute": "1m", "hour": "1h", "day": "24h"}[period]
    return {"average": count, "period": unit, "burst": count}


def _traefik_cors(cors: m.Cors) -> dict[str, Any]:
    # Traefik matches exact origins and regexes in separate lists; Kong takes both in one.
    exact = [o for o in cors.origins if o == "*" or ("://" in o and not _regexy(o))]
    regex = [o for o in cors.origins if o not in exact]
    out: dict[str, Any] = {"accessControlAllowMethods": list(cors.methods or KONG_CORS_METHODS),
                           "accessControlAllowCredentials": cors.credentials}
    if exact:
        out["accessControlAllowOriginList"] = exact
    if regex:
        out["accessControlAllowOriginListRegex"] = regex
    if cors.headers:
        out["accessControlAllowHeaders"] = list(cors.headers)
    if cors.exposed_headers:
        out["accessControlExposeHeaders"] = list(cors.exposed_headers)
    if cors.max_age is not None:
        out["accessControlMaxAge"] = int(cors.max_age)
    return out


def _regexy(origin: str) -> bool:
    return any(c in origin for c in "*+?()[]{}|^$\\")
