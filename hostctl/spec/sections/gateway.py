"""The inventory's `gateway:` section: its rules, its typed form, and its cross-checks.

The section names the hosts that run Kong, the Kong image, the ports Kong listens on and the
consumers (API clients) with the *names* of their secrets; values come from the secrets
source. `kong/gateway.example.yml` documents every key and is validated by the tests.

The schema is built on first use and imports `hostctl.spec.rules` only then, so
`spec_schema` can use `GATEWAY` for the inventory's `gateway` key without an import cycle.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hostctl.errors import Problem, Source
from hostctl.gateway import kong_typedefs as kt
from hostctl.spec import rules as s
from hostctl.spec.located import at, digest_push_problem
from hostctl.spec.placement import service_instances
from hostctl.spec.schema import (
    Bool,
    Check,
    Context,
    Duration,
    Field,
    ListOf,
    MapOf,
    Record,
    Section,
    Str,
    did_you_mean,
)
from hostctl.spec.yamlsource import Path

if TYPE_CHECKING:
    from hostctl.spec import model as m
    from hostctl.spec.secrets import SecretStore

DEFAULT_IMAGE = "kong:3.9.1"  # pinned: a new Kong is a change someone reviews, not a surprise
DECLARATIVE_PATH = "/etc/hostctl/gateway/kong.yml"  # on each gateway host, mode 0600
CONTAINER_CONFIG_PATH = "/kong/declarative/kong.yml"
PROXY_CONTAINER_PORTS = {"http": 8000, "https": 8443}
ADMIN_CONTAINER_PORT = 8001
STATUS_CONTAINER_PORT = 8100
# A rolling deploy waits this long per instance (kong/gateway.example.yml says so).
DRAIN_MAX = 3600.0  # 1h




@dataclass(frozen=True)
class JwtCredential:
    secret: str  # name of the secret holding the HMAC secret
    key: str | None = None  # the `iss` claim that selects this credential; default: consumer name
    algorithm: str = "HS256"


@dataclass(frozen=True)
class Consumer:
    """An API client: belongs to one project, authenticates with keys and/or JWTs."""

    name: str
    project: str
    key_auth: tuple[str, ...] = ()  # names of secrets, each one API key
    jwt: tuple[JwtCredential, ...] = ()


@dataclass(frozen=True)
class ProxyPorts:
    http: int | None = 8000
    https: int | None = None  # off unless asked: Kong would serve a self-signed certificate


@dataclass(frozen=True)
class GatewayConfig:
    hosts: tuple[str, ...]
    image: str = DEFAULT_IMAGE
    image_source: str | None = None  # None: the inventory's image_source
    proxy: ProxyPorts = field(default_factory=ProxyPorts)
    admin_port: int = 8001  # on the gateway host's 127.0.0.1 only
    status_port: int = 8100  # on the gateway host's 127.0.0.1 only
    key_names: tuple[str, ...] = ("apikey",)
    consumers: dict[str, Consumer] = field(default_factory=dict)
    managed: bool = True  # False: Kong runs already (not deployed by hostctl); only synced
    drain: float = 3.0  # seconds an instance at weight 0 gets to finish requests in flight
    file: str = ""
    lines: dict[str, int] = field(default_factory=dict)  # "gateway/consumers/x" -> line

    def source(self, path: str) -> Source:
        """`path` inside the inventory (e.g. gateway/hosts/0), at its line or its parent's."""
        probe = path
        while probe and probe not in self.lines:
            probe = probe.rpartition("/")[0]
        return Source(self.file, self.lines.get(probe, 0), path)

    def published_ports(self) -> list[tuple[str, int, int]]:
        """(bind address, host port, container port) for `docker run -p`."""
        ports = [("0.0.0.0", port, PROXY_CONTAINER_PORTS[name])
                 for name, port in (("http", self.proxy.http), ("https", self.proxy.https))
                 if port is not None]
        return [*ports, ("127.0.0.1", self.admin_port, ADMIN_CONTAINER_PORT),
                ("127.0.0.1", self.status_port, STATUS_CONTAINER_PORT)]


def kong_environment(gw: GatewayConfig) -> dict[str, str]:
    """The container's settings: DB-less, the declarative file, listeners inside the
    container (the host side is limited by `published_ports`)."""
    proxy = [f"0.0.0.0:{PROXY_CONTAINER_PORTS['http']}"] if gw.proxy.http else []
    if gw.proxy.https:
        proxy.append(f"0.0.0.0:{PROXY_CONTAINER_PORTS['https']} ssl")
    return {
        "KONG_DATABASE": "off",
        "KONG_DECLARATIVE_CONFIG": CONTAINER_CONFIG_PATH,
        "KONG_PROXY_LISTEN": ", ".join(proxy) or "off",
        "KONG_ADMIN_LISTEN": f"0.0.0.0:{ADMIN_CONTAINER_PORT}",
        "KONG_STATUS_LISTEN": f"0.0.0.0:{STATUS_CONTAINER_PORT}",
        "KONG_PROXY_ACCESS_LOG": "/dev/stdout",
        "KONG_ADMIN_ACCESS_LOG": "/dev/stdout",
        "KONG_PROXY_ERROR_LOG": "/dev/stderr",
        "KONG_ADMIN_ERROR_LOG": "/dev/stderr",
        "KONG_PLUGINS": "bundled",
    }


# -- the schema -----------------------------------------------------------------------------

CONSUMER_NAME = r"[a-z0-9]([a-z0-9._-]*[a-z0-9])?"
SECRET_NAME = r"[A-Za-z_][A-Za-z0-9_]*"


@functools.cache
def _section() -> Record[GatewayConfig]:
    secret = Str(SECRET_NAME, "secret names are letters, digits and _")
    jwt = Record(JwtCredential, {
        "secret": Field(secret, required=True),
        "key": Str(r"[^\s]+", "the key is the token's iss claim: no spaces"),
        "algorithm": Str(choices=("HS256", "HS384", "HS512")),
    })
    return Record(GatewayConfig, {
        "hosts": Field(ListOf(s.host_name, min_len=1, single_ok=True), required=True),
        "image": s.ImageRef("give an image reference such as kong:3.9.1"),
        "image_source": Str(choices=("pull", "push")),
        "proxy": Record(ProxyPorts, {"http": s.port_number, "https": s.port_number}),
        "admin_port": s.port_number,
        "status_port": s.port_number,
        "key_names": ListOf(Str(r"[A-Za-z0-9_-]+", "header names are letters, digits, _ "
                                                   "and -"), min_len=1),
        "managed": Bool(),
        "drain": Duration(maximum=DRAIN_MAX),
        "consumers": MapOf(Str(CONSUMER_NAME, "use lowercase letters, digits, '.', '_' and "
                                              "'-'"), _ConsumerCheck(s.name, secret, jwt)),
    })


class _ConsumerCheck(Check[Consumer]):
    """A consumer mapping; its name is the key it sits under."""

    def __init__(self, project: Check[str], secret: Check[str], jwt: Check[JwtCredential]):
        self.project, self.secret, self.jwt = project, secret, jwt

    def __call__(self, value: Any, path: Path, ctx: Context) -> Consumer:
        record = Record(Consumer, {
            "project": Field(self.project, required=True),
            "key_auth": ListOf(self.secret, single_ok=True),
            "jwt": ListOf(self.jwt, single_ok=True),
        }, extra={"name": str(path[-1])})
        return record(value, path, ctx)


# The `gateway:` key of an inventory. An empty section (`gateway: {}`) means no gateway,
# like a missing one.
GATEWAY = Section(lambda: _section())


# -- cross-checks ---------------------------------------------------------------------------

def route_port(w: m.Workload) -> str | None:
    """The port name a routed service is reached on (route/port, or its only port)."""
    if w.route is None:
        return None
    if w.route.port is not None:
        return w.route.port
    return next(iter(w.ports)) if len(w.ports) == 1 else None


def check_gateway(inv: m.Inventory, ws: Sequence[m.Workload], store: SecretStore
                  ) -> list[Problem]:
    """Every problem between the gateway section, the specs and the secrets, located."""
    problems: list[Problem] = []
    gw = inv.gateway
    if gw is None:
        return problems
    for check in (_known_hosts, _image_pushable, _secrets_present, _credentials_unique,
                  _consumer_projects, _auth_has_consumers, _allow_projects_known,
                  _no_route_overlap, _ports_free, _cors_preflight, _health_path_for_kong):
        problems.extend(check(gw, inv, ws, store))
    return problems


def _known_hosts(gw: GatewayConfig, inv: m.Inventory, ws: Sequence[m.Workload],
                 store: SecretStore) -> Iterator[Problem]:
    for i, host in enumerate(gw.hosts):
        if host not in inv.hosts:
            yield gw.source(f"gateway/hosts/{i}").problem(
                f"no host '{host}' in {inv.file}" + did_you_mean(host, inv.hosts)
                + f" (known: {', '.join(inv.hosts)})")


def _image_pushable(gw: GatewayConfig, inv: m.Inventory, ws: Sequence[m.Workload],
                    store: SecretStore) -> Iterator[Problem]:
    if not gw.managed or (gw.image_source or inv.image_source) != "push":
        return
    why = digest_push_problem(gw.image, inv.file)
    if why is not None:
        yield gw.source("gateway/image").problem(why)


def _secrets_present(gw: GatewayConfig, inv: m.Inventory, ws: Sequence[m.Workload],
                     store: SecretStore) -> Iterator[Problem]:
    for name, c in gw.consumers.items():
        where = f"gateway/consumers/{name}"
        if not c.key_auth and not c.jwt:
            yield gw.source(where).problem("has no credentials: add key_auth: [SECRET_NAME] "
                                           "or jwt: [{secret: SECRET_NAME}]")
        wanted = [(f"{where}/key_auth/{i}", s) for i, s in enumerate(c.key_auth)]
        wanted += [(f"{where}/jwt/{i}/secret", j.secret) for i, j in enumerate(c.jwt)]
        for path, secret in wanted:
            if store.get(secret) is None:
                yield gw.source(path).problem(
                    f"secret '{secret}' is not in {store.describe_sources()}; add it there "
                    "(never in the inventory)")


def _projects(ws: Sequence[m.Workload]) -> list[str]:
    return sorted({w.project for w in ws})


def _consumer_projects(gw: GatewayConfig, inv: m.Inventory, ws: Sequence[m.Workload],
                       store: SecretStore) -> Iterator[Problem]:
    known = _projects(ws)
    if not known:
        return  # no spec passed its own checks: those problems come first
    for name, c in gw.consumers.items():
        if c.project not in known:
            yield gw.source(f"gateway/consumers/{name}/project").problem(
                f"no spec has project '{c.project}'" + did_you_mean(c.project, known)
                + f" (projects: {', '.join(known) or 'none'})")


def _auth_has_consumers(gw: GatewayConfig, inv: m.Inventory, ws: Sequence[m.Workload],
                        store: SecretStore) -> Iterator[Problem]:
    for w in ws:
        r = w.route
        if r is None or r.auth == "none":
            continue
        allowed = {w.project, *r.allow_projects}
        kind = "key_auth" if r.auth == "key-auth" else "jwt"
        callers = [c for c in gw.consumers.values()
                   if c.project in allowed and getattr(c, kind)]
        if not callers:
            yield at(w, "route/auth", f"no consumer can call this route: add one under "
                     f"gateway/consumers in {inv.file} with project: {w.project} and "
                     f"{kind}: [SECRET_NAME]")


def _allow_projects_known(gw: GatewayConfig, inv: m.Inventory, ws: Sequence[m.Workload],
                          store: SecretStore) -> Iterator[Problem]:
    known = _projects(ws)
    for w in ws:
        r = w.route
        if r is None or not r.allow_projects:
            continue
        if r.auth == "none":
            yield at(w, "route/allow_projects", "has no effect on a route without auth; set "
                                                "route/auth or remove it")
        for i, project in enumerate(r.allow_projects):
            if project not in known:
                yield at(w, f"route/allow_projects/{i}", f"no spec has project '{project}'"
                         + did_you_mean(project, known))


def _overlap(a: Sequence[str], b: Sequence[str]) -> bool:
    """Two match lists overlap when either matches anything (empty) or they share a value."""
    return not a or not b or bool(set(a) & set(b))


def _no_route_overlap(gw: GatewayConfig, inv: m.Inventory, ws: Sequence[m.Workload],
                      store: SecretStore) -> Iterator[Problem]:
    seen: list[tuple[m.Workload, str]] = []
    for w in ws:
        r = w.route
        if r is None:
            continue
        for i, path in enumerate(r.paths):
            for other, other_path in seen:
                o = other.route
                assert o is not None
                if other_path == path and _overlap(r.hosts, o.hosts) and _overlap(
                        r.methods, o.methods):
                    where = "route/path" + (f"/{i}" if len(r.paths) > 1 else "")
                    hosts = f" on {', '.join(r.hosts)}" if r.hosts else ""
                    yield at(w, where, f"'{path}'{hosts} is also routed to {other.name} "
                             f"({other.file}:{other.lines.get('route', other.line)}); give one "
                             "of them another path, hosts or methods")
                    break
        seen.extend((w, p) for p in r.paths)


def _ports_free(gw: GatewayConfig, inv: m.Inventory, ws: Sequence[m.Workload],
                store: SecretStore) -> Iterator[Problem]:
    ours = {"proxy/http": gw.proxy.http, "proxy/https": gw.proxy.https,
            "admin_port": gw.admin_port, "status_port": gw.status_port}
    taken: dict[int, str] = {}
    # Defaults first, so a clash is reported at the key the operator wrote.
    for key, port in sorted(ours.items(), key=lambda kv: f"gateway/{kv[0]}" in gw.lines):
        if port is None:
            continue
        if port in taken:
            yield gw.source(f"gateway/{key}").problem(
                f"port {port} is also gateway/{taken[port]}; give each listener its own port")
        taken.setdefault(port, key)
    for w in ws:
        for inst in service_instances(w, inv):
            if inst.host.name not in gw.hosts:
                continue
            for pname in w.ports:
                number = inst.host_port(pname)
                if number in taken and w.ports[pname].protocol == "tcp":
                    yield gw.source(f"gateway/{taken[number]}").problem(
                        f"host port {number} on {inst.host.name} is also published by "
                        f"{w.name} ({w.file}); pick another port")


def _cors_preflight(gw: GatewayConfig, inv: m.Inventory, ws: Sequence[m.Workload],
                    store: SecretStore) -> Iterator[Problem]:
    for w in ws:
        r = w.route
        if r is None or r.cors is None or not r.methods:
            continue
        if "OPTIONS" not in r.methods:
            yield at(w, "route/methods", "browsers send CORS preflight requests as OPTIONS: "
                                         "add OPTIONS to route/methods")


def _credentials_unique(gw: GatewayConfig, inv: m.Inventory, ws: Sequence[m.Workload],
                        store: SecretStore) -> Iterator[Problem]:
    """Kong refuses an empty key or secret, and two key-auth credentials with one key, or two
    JWT credentials with one key (the token's iss), anywhere in the file. Values are compared
    and never shown: the messages name the secrets."""
    keys: dict[str, tuple[str, str]] = {}  # key value -> (path, secret name)
    jwt_keys: dict[str, str] = {}  # jwt key -> path
    for name, c in sorted(gw.consumers.items()):
        where = f"gateway/consumers/{name}"
        wanted = [(f"{where}/key_auth/{i}", s, "API key") for i, s in enumerate(c.key_auth)]
        wanted += [(f"{where}/jwt/{i}/secret", j.secret, "JWT secret")
                   for i, j in enumerate(c.jwt)]
        for path, secret, what in wanted:
            value = store.get(secret)
            if value is not None and value.reveal() == "":
                yield gw.source(path).problem(
                    f"secret '{secret}' is empty, and Kong refuses an empty {what}: give it "
                    f"a value in {store.describe_sources()}")
        for path, secret, _ in wanted[:len(c.key_auth)]:
            value = store.get(secret)
            if value is None or value.reveal() == "":
                continue
            first = keys.setdefault(value.reveal(), (path, secret))
            if first[0] != path:
                same = "is the same secret as" if first[1] == secret else (
                    f"holds the same key as secret '{first[1]}' at")
                yield gw.source(path).problem(
                    f"secret '{secret}' {same} {first[0]}, and Kong refuses two key-auth "
                    "credentials with one key: give each credential its own secret value")
        for i, j in enumerate(c.jwt):
            key = j.key or name
            path = f"{where}/jwt/{i}" + ("/key" if j.key else "")
            first_path = jwt_keys.setdefault(key, path)
            if first_path != path:
                yield gw.source(path).problem(
                    f"JWT key '{key}' is also the key at {first_path} (a missing key is the "
                    "consumer's name), and Kong refuses two JWT credentials with one key: set "
                    "a different key (the tokens' iss claim)")


def _health_path_for_kong(gw: GatewayConfig, inv: m.Inventory, ws: Sequence[m.Workload],
                          store: SecretStore) -> Iterator[Problem]:
    """A routed service's http health check on its routed port becomes Kong's active check,
    whose http_path is Kong's typedefs.path: no query, no `//`, only RFC 3986 characters."""
    for w in ws:
        h = w.health
        if w.route is None or h is None or h.http is None or h.http.port != route_port(w):
            continue
        message = kt.path(h.http.path)
        if message is not None:
            yield at(w, "health/http/path",
                     f"'{h.http.path}' is also the gateway's active health check of this "
                     f"routed service, and Kong refuses it ({message}): use a path without a "
                     "query string, '//' or characters outside RFC 3986, such as /health")
