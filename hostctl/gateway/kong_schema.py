"""The Kong 3.9 entity and plugin fields hostctl emits, as a schema, with Kong's own wording.

Written from Kong's sources (Kong/kong at tag 3.9.1, the image hostctl pins), value rules
ported line for line in `kong_typedefs`: `kong/db/schema/entities/{services,routes,upstreams,
targets,consumers}.lua`, `kong/db/schema/typedefs.lua` (names, paths, hosts, ports),
`kong/plugins/{key-auth,jwt,acl,rate-limiting,cors,request-size-limiting}/schema.lua` and
`daos.lua` (credentials), the declarative format in `kong/db/declarative/` (nesting,
uniqueness) and the flattened errors of `POST /config?flatten_errors=1` (`kong/db/errors.lua`).

It covers what hostctl writes, not all of Kong: a field Kong has but hostctl never sets is
simply not declared here, so a typo in hostctl's generator shows up as "unknown field" in
hostctl's own tests instead of as a 400 from a production gateway.

Not ported: the traditional_compatible router's own check of each route (its ATC
expression), which could refuse characters inside paths and hosts; the spec rules
(`spec_rules`) keep hostctl's paths to RFC 3986 characters and its hosts to DNS names, which
that router takes as they are.

`validate` answers like Kong does (entity type, name, tags, field errors with 1-based list
positions); `check` turns that into one line per problem, plus hostctl's own lints.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hostctl.gateway import kong_typedefs as kt

FORMAT_VERSIONS = ("1.1", "2.1", "3.0")
HTTP_METHODS = ("GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE", "CONNECT")
PERIODS = ("second", "minute", "hour", "day", "month", "year")
NO_DEFAULT: Any = object()

Validator = Callable[[Any], str | None]


@dataclass(frozen=True)
class F:
    """One field, with the rules of Kong's schema library that hostctl relies on."""

    type: str  # string integer number boolean array set record map foreign
    required: bool = False
    default: Any = NO_DEFAULT
    one_of: tuple[Any, ...] | None = None
    between: tuple[float, float] | None = None
    gt: float | None = None
    len_min: int | None = None
    elements: F | None = None
    fields: Mapping[str, F] | None = None
    validator: Validator | None = None


@dataclass(frozen=True)
class FieldError:
    field: str | None  # None for an entity-level error
    message: str

    @property
    def type(self) -> str:
        return "entity" if self.field is None else "field"


@dataclass
class EntityErrors:
    """One entity Kong would reject, shaped like an item of Kong's `flattened_errors`."""

    entity_type: str  # singular, as Kong reports it: service, route, keyauth_credential...
    entity: dict[str, Any]
    errors: list[FieldError] = field(default_factory=list)
    entity_name: str | None = None

    @property
    def tags(self) -> list[str]:
        tags = self.entity.get("tags")
        return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []

    def as_flattened(self) -> dict[str, Any]:
        out: dict[str, Any] = {"entity_type": self.entity_type, "entity": self.entity,
                               "errors": [_error_json(e) for e in self.errors]}
        if self.entity_name is not None:
            out["entity_name"] = self.entity_name
        if self.tags:
            out["entity_tags"] = self.tags
        return out


def _error_json(e: FieldError) -> dict[str, str]:
    out = {"message": e.message, "type": e.type}
    if e.field is not None:
        out["field"] = e.field
    return out


# -- typedefs (kong/db/schema/typedefs.lua, ported in kong_typedefs) -------------------------

normalize_path = kt.normalize_path
_router_path = kt.router_path


STRING = F("string")
NAME = F("string", validator=kt.utf8_name)
TAGS = F("set", elements=F("string", validator=kt.tag))
COUNT = F("integer", between=(0, 255))  # upstreams.lua one_byte_integer
STATUSES = F("array", elements=F("integer", between=(100, 999)))  # upstreams.lua http_statuses
SECONDS = F("number", between=(0, 65535))
PROTOCOLS = ("grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp",
             "ws", "wss")
FOREIGN = F("foreign")


def _record(fields: Mapping[str, F], required: bool = False) -> F:
    return F("record", fields=fields, required=required)


# -- entities -------------------------------------------------------------------------------

EntityCheck = Callable[[dict[str, Any]], Iterator[FieldError]]


@dataclass(frozen=True)
class Entity:
    name: str  # the DAO name, also the key of its list in a declarative file
    singular: str  # how flattened errors name its type
    fields: Mapping[str, F]
    nested: Mapping[str, str] = field(default_factory=dict)  # declarative key -> entity name
    parent_key: Mapping[str, str] = field(default_factory=dict)  # parent entity -> foreign key
    display: str | None = None  # the field Kong reports as entity_name
    unique: tuple[tuple[str, ...], ...] = ()  # fields (with parent) unique across the file
    checks: tuple[EntityCheck, ...] = ()


def _route_matches_something(route: dict[str, Any]) -> Iterator[FieldError]:
    """routes_subschemas.lua, the http subschema's conditional_at_least_one_of."""
    protocols = route.get("protocols") or ["http", "https"]
    protocols = protocols if isinstance(protocols, list) else []
    fields: tuple[str, ...] = ("methods", "hosts", "headers", "paths")
    if "https" in protocols:
        fields, which = (*fields, "snis"), "https"
    elif "http" in protocols:
        which = "http"
    else:
        return
    if not any(route.get(k) for k in fields):
        quoted = ", ".join(f"'{k}'" for k in fields)
        yield FieldError(None, f"must set one of {quoted} when 'protocols' is '{which}'")


def _consumer_has_identity(consumer: dict[str, Any]) -> Iterator[FieldError]:
    if not consumer.get("username") and not consumer.get("custom_id"):
        yield FieldError(None, "at least one of these fields must be non-empty: 'custom_id', "
                               "'username'")


def _service_has_host(service: dict[str, Any]) -> Iterator[FieldError]:
    if "url" in service and any(k in service for k in ("protocol", "host", "port", "path")):
        yield FieldError(None, "'url' cannot be combined with 'protocol', 'host', 'port' or "
                               "'path'")


SERVICE = Entity("services", "service", {
    "name": NAME, "tags": TAGS, "enabled": F("boolean", default=True),
    "protocol": F("string", required=True, default="http", one_of=PROTOCOLS),
    "host": F("string", required=True, validator=kt.host),
    "port": F("integer", required=True, default=80, between=(0, 65535)),
    "path": F("string", validator=kt.path),
    "retries": F("integer", default=5, between=(0, 32767)),
    "connect_timeout": F("integer", default=60000, between=(1, 2**31 - 2)),
    "write_timeout": F("integer", default=60000, between=(1, 2**31 - 2)),
    "read_timeout": F("integer", default=60000, between=(1, 2**31 - 2)),
}, nested={"routes": "routes", "plugins": "plugins"}, display="name",
    unique=(("name",),), checks=(_service_has_host,))

ROUTE = Entity("routes", "route", {
    "name": NAME, "tags": TAGS, "service": FOREIGN,
    "protocols": F("set", elements=F("string", one_of=PROTOCOLS), default=["http", "https"]),
    "methods": F("set", elements=F("string", validator=lambda v: None if re.fullmatch(
        "[A-Z]+", v) else "invalid value: " + v)),
    "hosts": F("array", elements=F("string", validator=kt.route_host)),
    "paths": F("array", elements=F("string", validator=kt.router_path)),
    "strip_path": F("boolean", default=True),
    "preserve_host": F("boolean", default=False),
    "path_handling": F("string", default="v0", one_of=("v0", "v1")),
    "https_redirect_status_code": F("integer", default=426, one_of=(426, 301, 302, 307, 308)),
    "regex_priority": F("integer", default=0),
    "request_buffering": F("boolean", default=True),
    "response_buffering": F("boolean", default=True),
}, nested={"plugins": "plugins"}, parent_key={"services": "service"}, display="name",
    unique=(("name",),), checks=(_route_matches_something,))

# upstreams.lua builds every healthchecks field from one table of types: intervals and
# timeouts are `seconds`, every counter a `one_byte_integer`.
_ACTIVE_HEALTHY = {"interval": SECONDS, "successes": COUNT, "http_statuses": STATUSES}
_ACTIVE_UNHEALTHY = {"interval": SECONDS,
                     "http_failures": COUNT, "tcp_failures": COUNT, "timeouts": COUNT,
                     "http_statuses": STATUSES}
_PASSIVE_HEALTHY = {"successes": COUNT, "http_statuses": STATUSES}
_PASSIVE_UNHEALTHY = {"http_failures": COUNT, "tcp_failures": COUNT, "timeouts": COUNT,
                      "http_statuses": STATUSES}
_CHECK_TYPES = ("tcp", "http", "https", "grpc", "grpcs")

UPSTREAM = Entity("upstreams", "upstream", {
    "name": F("string", required=True, validator=kt.upstream_name), "tags": TAGS,
    "algorithm": F("string", default="round-robin",
                   one_of=("consistent-hashing", "least-connections", "round-robin",
                           "latency")),
    "slots": F("integer", default=10000, between=(10, 2**16)),
    "healthchecks": _record({
        "threshold": F("number", default=0, between=(0, 100)),
        "active": _record({
            "type": F("string", default="http", one_of=_CHECK_TYPES),
            "timeout": SECONDS,
            "concurrency": F("integer", default=10, between=(1, 2**31)),
            "http_path": F("string", default="/", validator=kt.path),
            "healthy": _record(_ACTIVE_HEALTHY),
            "unhealthy": _record(_ACTIVE_UNHEALTHY),
        }),
        "passive": _record({
            "type": F("string", default="http", one_of=_CHECK_TYPES),
            "healthy": _record(_PASSIVE_HEALTHY),
            "unhealthy": _record(_PASSIVE_UNHEALTHY),
        }),
    }),
}, nested={"targets": "targets"}, display="name", unique=(("name",),))

TARGET = Entity("targets", "target", {
    "target": F("string", required=True, validator=kt.target), "tags": TAGS,
    "weight": F("integer", default=100, between=(0, 65535)), "upstream": FOREIGN,
}, parent_key={"upstreams": "upstream"}, unique=(("upstream", "target"),))

CONSUMER = Entity("consumers", "consumer", {
    "username": STRING, "custom_id": STRING, "tags": TAGS,
}, nested={"keyauth_credentials": "keyauth_credentials", "jwt_secrets": "jwt_secrets",
           "acls": "acls", "plugins": "plugins"},
    display="username", unique=(("username",), ("custom_id",)),
    checks=(_consumer_has_identity,))

KEYAUTH_CREDENTIAL = Entity("keyauth_credentials", "keyauth_credential", {
    "consumer": FOREIGN, "key": STRING, "tags": TAGS,
    "ttl": F("integer", between=(0, 100000000)),
}, parent_key={"consumers": "consumer"}, unique=(("key",),))

JWT_ALGORITHMS = ("HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384",
                  "ES512", "PS256", "PS384", "PS512", "EdDSA")


def _jwt_needs_public_key(cred: dict[str, Any]) -> Iterator[FieldError]:
    algorithm = cred.get("algorithm", "HS256")
    # jwt/daos.lua: the conditional on algorithm matching RS*, PS* or EdDSA
    if algorithm in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA") and \
            not cred.get("rsa_public_key"):
        yield FieldError("rsa_public_key", "required field missing")


JWT_SECRET = Entity("jwt_secrets", "jwt_secret", {
    "consumer": FOREIGN, "key": STRING, "secret": STRING, "rsa_public_key": STRING,
    "algorithm": F("string", default="HS256", one_of=JWT_ALGORITHMS), "tags": TAGS,
}, parent_key={"consumers": "consumer"}, unique=(("key",),), checks=(_jwt_needs_public_key,))

ACL = Entity("acls", "acl", {
    "consumer": FOREIGN, "group": F("string", required=True), "tags": TAGS,
}, parent_key={"consumers": "consumer"}, unique=(("consumer", "group"),))


# -- plugins --------------------------------------------------------------------------------

def _only_one_of(*names: str) -> EntityCheck:
    def check(plugin: dict[str, Any]) -> Iterator[FieldError]:
        config = plugin.get("config") or {}
        given = [n for n in names if config.get(n)]
        quoted = ", ".join(f"'config.{n}'" for n in names)
        # Kong's only_one_of, then its at_least_one_of: none given fails both.
        if len(given) != 1:
            yield FieldError(None, f"exactly one of these fields must be non-empty: {quoted}")
        if not given:
            yield FieldError(None, f"at least one of these fields must be non-empty: {quoted}")
    return check


def _rate_limits(plugin: dict[str, Any]) -> Iterator[FieldError]:
    """The config record's custom_validator (validate_periods_order, run only when its
    fields are valid, reported on `config`), then the at_least_one_of entity check."""
    config = plugin.get("config") or {}
    fields_ok = not list(check_record(PLUGIN_CONFIGS["rate-limiting"], config, "config"))
    limits = [(p, config.get(p)) for p in PERIODS]
    numbers = [(p, v) for p, v in limits if isinstance(v, int | float) and
               not isinstance(v, bool)]
    order = [(lower, v1, upper, v2) for i, (lower, v1) in enumerate(numbers)
             for upper, v2 in numbers[i + 1:] if v2 < v1]
    if fields_ok and order:
        lower, v1, upper, v2 = order[0]
        yield FieldError("config", f"The limit for {upper}({v2:.1f}) cannot be lower than the "
                                   f"limit for {lower}({v1:.1f})")
    if not any(v is not None for _, v in limits):
        quoted = ", ".join(f"'config.{p}'" for p in PERIODS)
        yield FieldError(None, f"at least one of these fields must be non-empty: {quoted}")


PLUGIN_CONFIGS: dict[str, Mapping[str, F]] = {
    "key-auth": {
        "key_names": F("array", required=True, default=["apikey"],
                       elements=F("string", validator=kt.header_name)),
        "hide_credentials": F("boolean", required=True, default=False),
        "anonymous": STRING,
        "key_in_header": F("boolean", required=True, default=True),
        "key_in_query": F("boolean", required=True, default=True),
        "key_in_body": F("boolean", required=True, default=False),
        "run_on_preflight": F("boolean", required=True, default=True),
    },
    "jwt": {
        "uri_param_names": F("set", default=["jwt"], elements=STRING),
        "cookie_names": F("set", default=[], elements=STRING),
        "header_names": F("set", default=["authorization"], elements=STRING),
        "key_claim_name": F("string", default="iss"),
        "secret_is_base64": F("boolean", required=True, default=False),
        "claims_to_verify": F("set", elements=F("string", one_of=("exp", "nbf"))),
        "anonymous": STRING,
        "run_on_preflight": F("boolean", required=True, default=True),
        "maximum_expiration": F("number", default=0, between=(0, 31536000)),
    },
    "acl": {
        "allow": F("array", elements=STRING),
        "deny": F("array", elements=STRING),
        "hide_groups_header": F("boolean", required=True, default=False),
    },
    "rate-limiting": {
        **{p: F("number", gt=0) for p in PERIODS},
        "limit_by": F("string", default="consumer",
                      one_of=("consumer", "credential", "ip", "service", "header", "path")),
        # DB-less Kong narrows the policies to these two (`is_dbless()` in the schema).
        "policy": F("string", default="local", one_of=("local", "redis")),
        "fault_tolerant": F("boolean", required=True, default=True),
        "hide_client_headers": F("boolean", required=True, default=False),
        "error_code": F("number", default=429, gt=0),
        "error_message": F("string", default="API rate limit exceeded"),
    },
    "cors": {
        "origins": F("array", elements=F("string", validator=kt.cors_origin)),
        "headers": F("array", elements=STRING),
        "exposed_headers": F("array", elements=STRING),
        "methods": F("array", default=list(HTTP_METHODS),
                     elements=F("string", one_of=HTTP_METHODS)),
        "max_age": F("number"),
        "credentials": F("boolean", required=True, default=False),
        "preflight_continue": F("boolean", required=True, default=False),
        "private_network": F("boolean", required=True, default=False),
    },
    "request-size-limiting": {
        "allowed_payload_size": F("integer", default=128),
        "size_unit": F("string", required=True, default="megabytes",
                       one_of=("megabytes", "kilobytes", "bytes")),
        "require_content_length": F("boolean", required=True, default=False),
    },
}
PLUGIN_CHECKS: dict[str, tuple[EntityCheck, ...]] = {
    "acl": (_only_one_of("allow", "deny"),),
    "rate-limiting": (_rate_limits,),
}


def _plugin_name(value: str) -> str | None:
    if value not in PLUGIN_CONFIGS:
        return f"plugin '{value}' not enabled; add it to the 'plugins' configuration property"
    return None


PLUGIN = Entity("plugins", "plugin", {
    "name": F("string", required=True, validator=_plugin_name),
    "instance_name": NAME, "tags": TAGS, "enabled": F("boolean", default=True),
    "config": F("record"),  # checked against PLUGIN_CONFIGS[name]
    "protocols": F("set", elements=F("string", one_of=PROTOCOLS)),
    "service": FOREIGN, "route": FOREIGN, "consumer": FOREIGN,
}, parent_key={"services": "service", "routes": "route", "consumers": "consumer"},
    display="name", unique=(("name", "service", "route", "consumer"),))

ENTITIES: dict[str, Entity] = {e.name: e for e in (
    SERVICE, ROUTE, UPSTREAM, TARGET, CONSUMER, KEYAUTH_CREDENTIAL, JWT_SECRET, ACL, PLUGIN)}
TOP_LEVEL = ("_format_version", "_transform", "_comment", *ENTITIES)
SECRET_FIELDS = {"keyauth_credentials": ("key",), "jwt_secrets": ("secret",)}


# -- validation -----------------------------------------------------------------------------

def _describe_type(kind: str) -> str:
    return {"integer": "an integer", "array": "an array"}.get(kind, f"a {kind}")


def _type_ok(f: F, value: Any) -> bool:
    if f.type == "string":
        return isinstance(value, str)
    if f.type == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
    if f.type == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if f.type == "boolean":
        return isinstance(value, bool)
    if f.type in ("array", "set"):
        return isinstance(value, list)
    if f.type in ("record", "map"):
        return isinstance(value, dict)
    return True  # foreign: a name, an id or a {id|name} record, resolved by Kong


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _not_plainly_fine(f: F, items: list[Any]) -> Iterable[tuple[int, Any]]:
    """(1-based index, item) of the `items` of an array of `f` that need the full check:
    all but the integers within their bounds, when `f` is an integer with no other rule."""
    if not (f.type == "integer" and f.validator is None and f.one_of is None and f.gt is None):
        return enumerate(items, start=1)
    if f.between is None:
        return [(i, item) for i, item in enumerate(items, start=1) if type(item) is not int]
    lo, hi = f.between
    return [(i, item) for i, item in enumerate(items, start=1)
            if not (type(item) is int and lo <= item <= hi)]


def check_value(f: F, value: Any, path: str) -> Iterator[FieldError]:
    """Errors for one field value, named by Kong's dotted, 1-based path."""
    if value is None:
        return
    if not _type_ok(f, value):
        yield FieldError(path, f"expected {_describe_type(f.type)}")
        return
    # Kong's Schema:validate_field: the elements or fields first, then the validators in
    # Schema.validators_order (one_of, gt, between, len_min, ..., custom_validator).
    if f.type in ("array", "set") and f.elements is not None:
        # Only the elements that are not plainly fine get the full check: status lists
        # hold hundreds of integers, and validate renders the whole file.
        inner = [e for i, item in _not_plainly_fine(f.elements, value)
                 for e in check_value(f.elements, item, f"{path}.{i}")]
        if inner:
            yield from inner
            return
    if f.type == "record" and f.fields is not None:
        inner = list(check_record(f.fields, value, path))
        if inner:
            yield from inner
            return
    if f.one_of is not None and value not in f.one_of:
        yield FieldError(path, "expected one of: " + ", ".join(str(c) for c in f.one_of))
        return
    if f.gt is not None and not value > f.gt:
        yield FieldError(path, f"value must be greater than {_number(f.gt)}")
        return
    if f.between is not None and not f.between[0] <= value <= f.between[1]:
        lo, hi = f.between
        yield FieldError(path, f"value should be between {_number(lo)} and {_number(hi)}")
        return
    len_min = f.len_min if f.len_min is not None else (1 if f.type == "string" else None)
    if len_min is not None and len(value) < len_min:
        yield FieldError(path, f"length must be at least {len_min}")
        return
    if f.validator is not None:
        message = f.validator(value)
        if message:
            yield FieldError(path, message)


def check_record(fields: Mapping[str, F], value: dict[str, Any], prefix: str = ""
                 ) -> Iterator[FieldError]:
    for key, item in value.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            yield FieldError(path, "unknown field")
        else:
            yield from check_value(fields[key], item, path)
    for key, f in fields.items():
        if f.required and f.default is NO_DEFAULT and value.get(key) is None:
            yield FieldError(f"{prefix}.{key}" if prefix else key, "required field missing")


@dataclass
class _Walk:
    errors: list[EntityErrors] = field(default_factory=list)
    top: list[FieldError] = field(default_factory=list)
    seen: dict[tuple[str, tuple[Any, ...]], bool] = field(default_factory=dict)


def validate(config: Any) -> tuple[list[FieldError], list[EntityErrors]]:
    """Check a declarative document: (document-level errors, entity errors), Kong-worded."""
    walk = _Walk()
    if not isinstance(config, dict):
        return [FieldError(None, "expected an object")], []
    version = config.get("_format_version")
    if version is None:
        walk.top.append(FieldError("_format_version", "required field missing"))
    elif version not in FORMAT_VERSIONS:
        walk.top.append(FieldError("_format_version",
                                   "expected one of: " + ", ".join(FORMAT_VERSIONS)))
    for key, value in config.items():
        if key not in TOP_LEVEL:
            walk.top.append(FieldError(key, "unknown field"))
        elif key in ENTITIES:
            _collection(walk, ENTITIES[key], value, key, parent=None)
    return walk.top, walk.errors


def _collection(walk: _Walk, entity: Entity, items: Any, where: str,
                parent: tuple[str, str] | None) -> None:
    if not isinstance(items, list):
        walk.top.append(FieldError(where, "expected an array"))
        return
    for item in items:
        _entity(walk, entity, item, parent)


def _display(entity: Entity, item: dict[str, Any]) -> str | None:
    value = item.get(entity.display) if entity.display else None
    return value if isinstance(value, str) else None


def _entity(walk: _Walk, entity: Entity, item: Any, parent: tuple[str, str] | None) -> None:
    if not isinstance(item, dict):
        walk.top.append(FieldError(entity.name, "expected a record"))
        return
    report = EntityErrors(entity.singular, _without_nested(entity, item),
                          entity_name=_display(entity, item))
    plain = {k: v for k, v in item.items() if k not in entity.nested}
    report.errors.extend(check_record(entity.fields, plain))
    if entity is PLUGIN and isinstance(item.get("name"), str) and item["name"] in PLUGIN_CONFIGS:
        config = item.get("config") or {}
        if isinstance(config, dict):
            report.errors.extend(check_record(PLUGIN_CONFIGS[item["name"]], config, "config"))
            for check in PLUGIN_CHECKS.get(item["name"], ()):
                report.errors.extend(check(item))
    for check in entity.checks:
        report.errors.extend(check(item))
    report.errors.extend(_uniqueness(walk, entity, item, parent))
    if report.errors:
        walk.errors.append(report)
    me = (entity.name, f"#{id(item)}")  # children are unique within this very entity
    for key, child in entity.nested.items():
        if key in item:
            _collection(walk, ENTITIES[child], item[key], f"{entity.name}.{key}", parent=me)


def _without_nested(entity: Entity, item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in entity.nested}


def _uniqueness(walk: _Walk, entity: Entity, item: dict[str, Any],
                parent: tuple[str, str] | None) -> Iterator[FieldError]:
    """Kong refuses two entities with the same unique key in one file (a target twice in an
    upstream, a credential key twice, a plugin twice on one route)."""
    for fields in entity.unique:
        main = next(n for n in fields if entity.fields[n].type != "foreign")
        if not isinstance(item.get(main), str | int):
            continue
        values = tuple(parent[1] if parent and entity.parent_key.get(parent[0]) == n
                       else repr(item.get(n)) for n in fields)
        key = (entity.name, (*fields, *values))
        if key in walk.seen:
            yield FieldError(None, f"uniqueness violation: '{entity.name}' entity with {main} "
                                   f"set to '{item[main]}' already declared")
        walk.seen[key] = True


def lint(config: Any) -> Iterator[str]:
    """hostctl's own rules on top of Kong's: things Kong accepts but that do not do what a
    config written by hostctl means (REFERENCE.md: intervals default to 0, which is "off")."""
    if not isinstance(config, dict):
        return
    for up in config.get("upstreams") or []:
        active = ((up.get("healthchecks") or {}).get("active") or {}) if isinstance(
            up, dict) else {}
        for side in ("healthy", "unhealthy"):
            if not (active.get(side) or {}).get("interval"):
                yield (f"upstream '{up.get('name')}': healthchecks.active.{side}.interval is 0, "
                       "which turns active probing off")


def check(config: Any) -> list[str]:
    """Every problem with `config`, one line each: Kong's rules, then hostctl's lints."""
    top, entities = validate(config)
    lines = [f"{e.field}: {e.message}" if e.field else e.message for e in top]
    for report in entities:
        who = report.entity_type + (f" '{report.entity_name}'" if report.entity_name else "")
        for e in report.errors:
            lines.append(f"{who}: {e.field}: {e.message}" if e.field else f"{who}: {e.message}")
    lines.extend(lint(config))
    return lines


def iter_entities(config: Mapping[str, Any]) -> Iterator[tuple[Entity, dict[str, Any],
                                                              tuple[str, dict[str, Any]] | None]]:
    """Every entity of a declarative document, nested or not, with its parent."""

    def walk(entity: Entity, items: Sequence[Any], parent: tuple[str, dict[str, Any]] | None
             ) -> Iterator[tuple[Entity, dict[str, Any], tuple[str, dict[str, Any]] | None]]:
        for item in items:
            if not isinstance(item, dict):
                continue
            yield entity, item, parent
            for key, child in entity.nested.items():
                if isinstance(item.get(key), list):
                    yield from walk(ENTITIES[child], item[key], (entity.name, item))

    for name, entity in ENTITIES.items():
        if isinstance(config.get(name), list):
            yield from walk(entity, config[name], None)
