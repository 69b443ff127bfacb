"""Site -> Kong's declarative configuration, and where every part of it came from.

Pure: no I/O. Each routed service becomes a Kong service (named like the workload) with one
route and its plugins, and an upstream `hostctl-<service>` whose targets are every instance
on every host (host address : published port), or, for a service handed to the k3s cluster
(`cluster_targets`), the one address where the gateway hosts reach the cluster's ingress.
Consumers and their credentials come from the inventory's gateway section, with values
from the secrets source.

Credential values stay `Secret`s until the very end: `render_declarative` writes them once
into the file for the gateway host and once as `<secret NAME>` for everything a person or a
test may read. Every entity carries one tag, `hostctl:<ref>`, which Kong echoes back in its
errors, so a rejected field maps to the spec file, line and key that produced it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import yaml

from hostctl.errors import ConfigError, Problem
from hostctl.gateway import kong_schema as ks
from hostctl.render.files import MODE_SECRET, RenderedFile
from hostctl.spec import model as m
from hostctl.spec.placement import service_instances
from hostctl.spec.secrets import Secret, materialize
from hostctl.spec.sections.gateway import (
    DECLARATIVE_PATH,
    GatewayConfig,
    Source,
    check_gateway,
    route_port,
)

FORMAT_VERSION = "3.0"
TAG_PREFIX = "hostctl:"
UPSTREAM_PREFIX = "hostctl-"
DEFAULT_WEIGHT = 100
# Passive checks (a circuit breaker on live traffic): on by default, as an operator expects.
# Recovery is left to the active probes, which every upstream has.
PASSIVE_UNHEALTHY = {"http_failures": 5, "tcp_failures": 2, "timeouts": 3,
                     "http_statuses": [500, 502, 503, 504]}
# An http probe passes as hostctl's own probe does (`curl -f`, docs/service.yml: "GET must
# answer 2xx/3xx") and fails on any 4xx/5xx; Kong's defaults ([200, 302] healthy, eight codes
# unhealthy) would never bring back a target whose health answers 204 or 301.
HEALTHY_STATUSES = list(range(200, 400))
UNHEALTHY_STATUSES = list(range(400, 600))
NO_HEALTH_INTERVAL = 10.0  # services without an http/tcp health check get a tcp probe this often
NO_HEALTH_TIMEOUT = 5.0
NO_HEALTH_RETRIES = 3


@dataclass(frozen=True)
class EntitySource:
    """Where one emitted entity, and each of its fields, came from."""

    ref: str
    entity_type: str  # as Kong names it in errors: service, route, plugin, keyauth_credential...
    label: str  # for messages: "plugin 'rate-limiting' on route 'triage-api'"
    source: Source
    name: str | None = None  # what Kong reports as entity_name (name, username, plugin name)
    fields: Mapping[str, Source] = field(default_factory=dict)  # Kong field path -> source

    def locate(self, kong_field: str | None) -> Source:
        """The source of `kong_field` (e.g. `config.minute`, `paths.2`) or of its parent."""
        probe = kong_field or ""
        while probe:
            if probe in self.fields:
                return self.fields[probe]
            probe = probe.rpartition(".")[0]
        return self.source


@dataclass(frozen=True)
class Provenance:
    """Every entity of a rendered configuration by ref, and the secrets it holds (as Secrets,
    which print as their names), so any text about it can be scrubbed before it is shown."""

    entities: Mapping[str, EntitySource]
    root: Source  # the gateway section: where problems no entity claims are reported
    secrets: tuple[Secret, ...] = ()

    def find(self, entity_type: str, name: Any, tags: Iterable[Any]) -> EntitySource | None:
        for tag in tags:
            if isinstance(tag, str) and tag.startswith(TAG_PREFIX):
                found = self.entities.get(tag[len(TAG_PREFIX):])
                if found is not None:
                    return found
        named = [e for e in self.entities.values()
                 if e.entity_type == entity_type and name is not None and e.name == name]
        return named[0] if len(named) == 1 else None

    def scrub(self, text: str) -> str:
        """`text` with every secret value replaced by `<secret NAME>` (longest first)."""
        for secret in sorted(self.secrets, key=lambda s: -len(s.reveal())):
            if secret.reveal():
                text = text.replace(secret.reveal(), repr(secret))
        return text

    def problems(self, flattened: Iterable[Mapping[str, Any]], verb: str) -> list[Problem]:
        """Kong's `flattened_errors` as located Problems: `file:line: key: message`."""
        out: list[Problem] = []
        for item in flattened:
            if not isinstance(item, Mapping):
                continue
            etype = str(item.get("entity_type", "entity"))
            name = item.get("entity_name")
            found = self.find(etype, name, item.get("entity_tags") or [])
            label = found.label if found else f"{etype} '{name}'" if name else etype
            for err in item.get("errors") or []:
                if not isinstance(err, Mapping):
                    continue
                where = found.locate(err.get("field")) if found else self.root
                what = f"{err['field']}: " if err.get("field") else ""
                message = self.scrub(f"{verb} {label}: {what}{err.get('message', '')}")
                out.append(where.problem(message))
        return out


class RenderedGateway(NamedTuple):
    """The declarative file twice (with values, for the gateway host only; redacted, for
    everything else), and its provenance."""

    text: bytes
    redacted: bytes
    provenance: Provenance


# -- building -------------------------------------------------------------------------------

def _spec(w: m.Workload, path: str) -> Source:
    probe = path
    while probe and probe not in w.lines:
        probe = probe.rpartition("/")[0]
    return Source(w.file, w.lines.get(probe, w.line), path)


def _num(value: float) -> float | int:
    """Whole seconds as integers, so the YAML reads `2`, not `2.0`."""
    return int(value) if float(value).is_integer() else value


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class _Builder:
    def __init__(self, site: m.Site, gw: GatewayConfig,
                 weights: Mapping[tuple[str, str], int], cluster: Mapping[str, str]):
        self.site, self.gw, self.weights, self.cluster = site, gw, weights, cluster
        self.entities: dict[str, EntitySource] = {}
        self.secrets: list[Secret] = []

    def record(self, ref: str, entity_type: str, label: str, source: Source,
               fields: Mapping[str, Source] | None = None, name: str | None = None
               ) -> list[str]:
        self.entities[ref] = EntitySource(ref, entity_type, label, source, name=name,
                                          fields=dict(fields or {}))
        return [TAG_PREFIX + ref]

    def secret(self, name: str) -> Secret:
        value = self.site.secrets.get(name)
        if value is None:  # check_gateway reports it; never write an empty credential
            raise ConfigError([self.gw.source("gateway").problem(f"secret '{name}' missing")])
        self.secrets.append(value)
        return value

    def config(self) -> dict[str, Any]:
        routed = sorted((w for w in self.site.services if w.route is not None),
                        key=lambda w: w.name)
        out: dict[str, Any] = {"_format_version": FORMAT_VERSION}
        services = [self.service(w) for w in routed]
        upstreams = [self.upstream(w) for w in routed]
        consumers = [self.consumer(name) for name in sorted(self.gw.consumers)]
        for key, items in (("services", services), ("upstreams", upstreams),
                           ("consumers", consumers)):
            if items:
                out[key] = items
        return out

    def service(self, w: m.Workload) -> dict[str, Any]:
        assert w.route is not None
        t = w.route.timeouts or m.Timeouts()
        tags = self.record(f"service:{w.name}", "service", f"service '{w.name}'",
                           _spec(w, "route"), {
                               "name": _spec(w, "name"), "host": _spec(w, "route/port"),
                               "connect_timeout": _spec(w, "route/timeouts/connect"),
                               "read_timeout": _spec(w, "route/timeouts/read"),
                               "write_timeout": _spec(w, "route/timeouts/write")}, w.name)
        return {
            "name": w.name, "protocol": "http", "host": UPSTREAM_PREFIX + w.name,
            "connect_timeout": _ms(t.connect), "read_timeout": _ms(t.read),
            "write_timeout": _ms(t.write), "tags": tags, "routes": [self.route(w)],
        }

    def route(self, w: m.Workload) -> dict[str, Any]:
        r = w.route
        assert r is not None
        path_key = "route/path"
        fields = {"name": _spec(w, "name"), "paths": _spec(w, path_key),
                  "hosts": _spec(w, "route/hosts"), "methods": _spec(w, "route/methods"),
                  "strip_path": _spec(w, "route/strip_path")}
        if f"{path_key}/0" in w.lines:
            fields.update({f"paths.{i + 1}": _spec(w, f"{path_key}/{i}")
                           for i in range(len(r.paths))})
        route: dict[str, Any] = {
            "name": w.name, "protocols": ["http", "https"], "paths": list(r.paths),
            "strip_path": r.strip_path,
            "tags": self.record(f"route:{w.name}", "route", f"route '{w.name}'",
                                _spec(w, "route"), fields, w.name),
        }
        if w.name in self.cluster:
            # The cluster's Ingress for this route matches the client's own path and Host
            # (hostctl.k8s.manifests renders it from the same route) and strips the prefix
            # itself; stripping here too would leave it nothing to match.
            route["strip_path"] = False
            route["preserve_host"] = True
        if r.hosts:
            route["hosts"] = list(r.hosts)
        if r.methods:
            route["methods"] = list(r.methods)
        plugins = self.plugins(w)
        if plugins:
            route["plugins"] = plugins
        return route

    def plugin(self, w: m.Workload, name: str, config: dict[str, Any], source: str,
               fields: Mapping[str, Source]) -> dict[str, Any]:
        tags = self.record(f"plugin:{w.name}:{name}", "plugin",
                           f"plugin '{name}' on route '{w.name}'", _spec(w, source), fields,
                           name)
        return {"name": name, "config": config, "tags": tags}

    def plugins(self, w: m.Workload) -> list[dict[str, Any]]:
        r = w.route
        assert r is not None
        out = []
        if r.auth == "key-auth":
            # In the cluster, its ingress checks the key again (anyone who reaches the
            # cluster's address could call it otherwise) and hides it from the app there:
            # pass it on.
            out.append(self.plugin(w, "key-auth", {
                "key_names": list(self.gw.key_names),
                "hide_credentials": w.name not in self.cluster,
            }, "route/auth", {"config.key_names": self.gw.source("gateway/key_names")}))
        elif r.auth == "jwt":
            out.append(self.plugin(w, "jwt", {
                "claims_to_verify": ["exp"], "key_claim_name": "iss",
            }, "route/auth", {}))
        if r.auth != "none":
            allow = sorted({w.project, *r.allow_projects})
            out.append(self.plugin(w, "acl", {"allow": allow, "hide_groups_header": True},
                                   "route/auth",
                                   {"config.allow": _spec(w, "route/allow_projects")}))
        if r.rate_limit is not None:
            limits = {p: getattr(r.rate_limit, p) for p in ("second", "minute", "hour", "day")
                      if getattr(r.rate_limit, p) is not None}
            out.append(self.plugin(w, "rate-limiting", {
                **limits, "policy": "local",
                "limit_by": "consumer" if r.auth != "none" else "ip",
            }, "route/rate_limit", {f"config.{p}": _spec(w, f"route/rate_limit/{p}")
                                    for p in limits}))
        if r.max_body is not None:
            out.append(self.plugin(w, "request-size-limiting", {
                "allowed_payload_size": r.max_body, "size_unit": "bytes",
            }, "route/max_body", {}))
        if r.cors is not None:
            out.append(self.cors(w, r.cors))
        return sorted(out, key=lambda p: p["name"])

    def cors(self, w: m.Workload, cors: Any) -> dict[str, Any]:
        config: dict[str, Any] = {"origins": list(cors.origins),
                                  "credentials": bool(cors.credentials)}
        for key in ("methods", "headers", "exposed_headers"):
            if getattr(cors, key, ()):
                config[key] = list(getattr(cors, key))
        if getattr(cors, "max_age", None) is not None:
            config["max_age"] = _num(cors.max_age)
        fields = {f"config.{k}": _spec(w, f"route/cors/{k}") for k in config}
        return self.plugin(w, "cors", config, "route/cors", fields)

    def upstream(self, w: m.Workload) -> dict[str, Any]:
        if w.name in self.cluster:
            return self.cluster_upstream(w, self.cluster[w.name])
        port_name = route_port(w)
        assert port_name is not None
        name = UPSTREAM_PREFIX + w.name
        hc, hc_fields = _healthchecks(w, port_name)
        targets = []
        for inst in service_instances(w, self.site.inventory):
            address = inst.host.address
            host = f"[{address}]" if ":" in address else address
            target = f"{host}:{inst.host_port(port_name)}"
            ref = f"target:{w.name}:{inst.host.name}:{inst.index}"
            where = _spec(w, f"ports/{port_name}/host")
            targets.append({
                "target": target,
                "weight": self.weights.get((inst.host.name, inst.name), DEFAULT_WEIGHT),
                "tags": self.record(ref, "target", f"target '{target}' ({inst.name} on "
                                    f"{inst.host.name}) of upstream '{name}'", where,
                                    {"target": where}),
            })
        source = _spec(w, "health" if w.health else f"ports/{port_name}")
        tags = self.record(f"upstream:{w.name}", "upstream", f"upstream '{name}'", source,
                           {"name": _spec(w, "name"), **hc_fields}, name)
        return {"name": name, "healthchecks": hc, "tags": tags, "targets": targets}

    def cluster_upstream(self, w: m.Workload, target: str) -> dict[str, Any]:
        """One target, the cluster's ingress. Its probe is TCP: an http probe of the spec's
        health path would reach the Ingress without the route's Host and path and mark the
        only target down; the cluster checks its pods' readiness itself."""
        name = UPSTREAM_PREFIX + w.name
        inv = self.site.inventory
        key = "k3s/gateway_target"
        where = Source(inv.file, inv.lines.get(key, inv.lines.get("k3s", 0)), key)
        interval = w.health.interval if w.health else NO_HEALTH_INTERVAL
        timeout = w.health.timeout if w.health else NO_HEALTH_TIMEOUT
        retries = w.health.retries if w.health else NO_HEALTH_RETRIES
        hc = {"active": {"type": "tcp", "timeout": _num(timeout),
                         "healthy": {"interval": _num(interval), "successes": 1},
                         "unhealthy": {"interval": _num(interval), "tcp_failures": retries,
                                       "timeouts": retries}},
              "passive": {"type": "http", "unhealthy": dict(PASSIVE_UNHEALTHY)}}
        tags = self.record(f"target:{w.name}:cluster", "target",
                           f"target '{target}' (the cluster) of upstream '{name}'", where,
                           {"target": where})
        up_tags = self.record(f"upstream:{w.name}", "upstream", f"upstream '{name}'", where,
                              {"name": _spec(w, "name")}, name)
        return {"name": name, "healthchecks": hc, "tags": up_tags,
                "targets": [{"target": target, "weight": DEFAULT_WEIGHT, "tags": tags}]}

    def consumer(self, name: str) -> dict[str, Any]:
        c = self.gw.consumers[name]
        where = f"gateway/consumers/{name}"
        src = self.gw.source
        out: dict[str, Any] = {
            "username": name,
            "tags": self.record(f"consumer:{name}", "consumer", f"consumer '{name}'",
                                src(where), {"username": src(where)}, name),
            "acls": [{"group": c.project,
                      "tags": self.record(f"acl:{name}", "acl", f"acl of consumer '{name}'",
                                          src(f"{where}/project"))}],
        }
        keys = []
        for i, secret_name in enumerate(c.key_auth):
            path = f"{where}/key_auth/{i}"
            keys.append({"key": self.secret(secret_name), "tags": self.record(
                f"keyauth_credential:{name}:{i}", "keyauth_credential",
                f"key-auth credential {secret_name} of consumer '{name}'", src(path))})
        jwts = []
        for i, j in enumerate(c.jwt):
            path = f"{where}/jwt/{i}"
            jwts.append({"key": j.key or name, "secret": self.secret(j.secret),
                         "algorithm": j.algorithm, "tags": self.record(
                             f"jwt_secret:{name}:{i}", "jwt_secret",
                             f"jwt credential {j.secret} of consumer '{name}'", src(path),
                             {"key": src(f"{path}/key"), "secret": src(f"{path}/secret"),
                              "algorithm": src(f"{path}/algorithm")})})
        if keys:
            out["keyauth_credentials"] = keys
        if jwts:
            out["jwt_secrets"] = jwts
        return out


def _healthchecks(w: m.Workload, port_name: str) -> tuple[dict[str, Any], dict[str, Source]]:
    """Active probes from the spec's health check; Kong can only probe the target's own port,
    so a check on another port (or a command) becomes a TCP probe of the routed port."""
    h = w.health
    interval = h.interval if h else NO_HEALTH_INTERVAL
    timeout = h.timeout if h else NO_HEALTH_TIMEOUT
    retries = h.retries if h else NO_HEALTH_RETRIES
    http = h is not None and h.http is not None and h.http.port == port_name
    active: dict[str, Any] = {
        "type": "http" if http else "tcp",
        "timeout": _num(timeout),
        "healthy": {"interval": _num(interval), "successes": 1},
        "unhealthy": {"interval": _num(interval), "tcp_failures": retries, "timeouts": retries},
    }
    fields = {"healthchecks.active": _spec(w, "health"),
              "healthchecks.active.timeout": _spec(w, "health/timeout"),
              "healthchecks.active.healthy.interval": _spec(w, "health/interval"),
              "healthchecks.active.unhealthy.interval": _spec(w, "health/interval"),
              "healthchecks.active.unhealthy": _spec(w, "health/retries"),
              "healthchecks.passive": _spec(w, "health")}
    if http:
        assert h is not None and h.http is not None
        active["http_path"] = h.http.path
        active["healthy"]["http_statuses"] = list(HEALTHY_STATUSES)
        active["unhealthy"]["http_statuses"] = list(UNHEALTHY_STATUSES)
        active["unhealthy"]["http_failures"] = retries
        fields["healthchecks.active.http_path"] = _spec(w, "health/http/path")
    passive = {"type": "http", "unhealthy": dict(PASSIVE_UNHEALTHY)}
    return {"active": active, "passive": passive}, fields


def build_declarative(site: m.Site, gw: GatewayConfig,
                      weights: Mapping[tuple[str, str], int] | None = None,
                      cluster_targets: Mapping[str, str] | None = None
                      ) -> tuple[dict[str, Any], Provenance]:
    """The declarative config as data (credential values as `Secret`s) and its provenance.

    `weights` maps (host name, instance name) to a target weight (default 100); a rolling
    deploy sets an instance to 0 to drain it. `cluster_targets` maps a service handed to
    the k3s cluster to the host:port of the cluster's ingress (k3s/gateway_target): its
    upstream has that one target, and Kong sends the client's own Host and path on, so the
    cluster's Ingress matches; route, auth and plugins stay as they are for the client.
    """
    b = _Builder(site, gw, weights or {}, cluster_targets or {})
    config = b.config()
    return config, Provenance(b.entities, gw.source("gateway"), tuple(b.secrets))


# -- text -----------------------------------------------------------------------------------

def dump(config: Mapping[str, Any], reveal: bool, site_name: str = "") -> bytes:
    header = (f"# Kong declarative configuration for site {site_name}, generated by hostctl "
              "from the specs and the inventory.\n# Do not edit: hostctl replaces it whole.\n")
    body = yaml.safe_dump(materialize(dict(config), reveal), sort_keys=True,
                          default_flow_style=False, width=1000, allow_unicode=False)
    return (header + body).encode()


def preflight(config: Mapping[str, Any], provenance: Provenance) -> list[Problem]:
    """What Kong would refuse in `config`, found before anything is sent, as located
    problems (Kong's rules as `kong_schema` knows them)."""
    top, entities = ks.validate(materialize(dict(config), reveal=True))
    problems = [provenance.root.problem(provenance.scrub(
        f"Kong would reject the file: {e.field}: {e.message}")) for e in top]
    problems += provenance.problems([e.as_flattened() for e in entities], "Kong would reject")
    return problems


def render_declarative(site: m.Site, weights: Mapping[tuple[str, str], int] | None = None,
                       cluster_targets: Mapping[str, str] | None = None
                       ) -> RenderedGateway | None:
    """The gateway's declarative file: (text with values, redacted text, provenance).

    None when the site has no gateway. Raises ConfigError, with every problem located in the
    specs or the inventory, when the gateway section or the routes are inconsistent or Kong
    would refuse the result.
    """
    inv = site.inventory
    gw = inv.gateway
    if gw is None:
        return None
    problems = check_gateway(inv, site.workloads, site.secrets)
    if problems:
        raise ConfigError(problems)
    config, provenance = build_declarative(site, gw, weights, cluster_targets)
    problems = preflight(config, provenance)
    if problems:
        raise ConfigError(problems)
    return RenderedGateway(dump(config, True, inv.site), dump(config, False, inv.site),
                           provenance)


def gateway_files(site: m.Site, weights: Mapping[tuple[str, str], int] | None = None,
                  cluster_targets: Mapping[str, str] | None = None
                  ) -> dict[str, list[RenderedFile]]:
    """Per gateway host, the declarative file as a RenderedFile (0600, shown redacted)."""
    rendered = render_declarative(site, weights, cluster_targets)
    if rendered is None:
        return {}
    gw = site.inventory.gateway
    assert gw is not None
    return {host: [RenderedFile(DECLARATIVE_PATH, rendered.text, mode=MODE_SECRET, secret=True,
                                redacted_content=rendered.redacted, workload="gateway")]
            for host in gw.hosts}
