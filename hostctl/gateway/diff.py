"""What would change in Kong: the running configuration against the one hostctl would send.

The running side is Kong's own export (`GET /config`: flat lists, ids, foreign keys as ids,
every default filled in, credentials in clear); the desired side is hostctl's nested file.
Both are reduced to entities keyed by what identifies them (names, a target within its
upstream, a plugin within its route), so ids and nesting never show up as differences.
Credential values never appear: a changed key reads `key: (changed)`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from hostctl.gateway import kong_schema as ks
from hostctl.gateway.declarative import TAG_PREFIX, Provenance
from hostctl.spec.secrets import Secret

IGNORED = {"id", "created_at", "updated_at", "tags", "ws_id"}
KIND_ORDER = ("services", "routes", "upstreams", "targets", "consumers", "acls",
              "keyauth_credentials", "jwt_secrets", "plugins")


@dataclass(frozen=True)
class Change:
    sign: str  # + new, - removed, ~ changed
    label: str
    where: str = ""  # spec file:line of a desired entity
    details: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        head = f"{self.sign} {self.label}" + (f"  ({self.where})" if self.where else "")
        return [head, *(f"    {d}" for d in self.details)]


@dataclass(frozen=True)
class ConfigDiff:
    changes: tuple[Change, ...]

    @property
    def empty(self) -> bool:
        return not self.changes

    def text(self) -> str:
        if self.empty:
            return "Kong already runs this configuration.\n"
        return "".join(line + "\n" for c in self.changes for line in c.lines())


@dataclass
class _Flat:
    kind: str
    key: str
    label: str
    fields: dict[str, Any]
    ref: str | None = None
    schema: Mapping[str, ks.F] = field(default_factory=dict)


def _ref(item: Mapping[str, Any]) -> str | None:
    for tag in item.get("tags") or []:
        if isinstance(tag, str) and tag.startswith(TAG_PREFIX):
            return tag[len(TAG_PREFIX):]
    return None


def _flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in value.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, path + "."))
        else:
            out[path] = v
    return out


def _field_schema(fields: Mapping[str, ks.F], path: str) -> ks.F | None:
    head, _, rest = path.partition(".")
    f = fields.get(head)
    if f is None or not rest:
        return f
    return _field_schema(f.fields or {}, rest) if f.type == "record" else None


class _Index:
    """Entities of one document by (dao name, id), to resolve a flat export's foreign keys."""

    def __init__(self, config: Mapping[str, Any]):
        self.by_id: dict[tuple[str, str], dict[str, Any]] = {}
        for entity, item, _ in ks.iter_entities(config):
            if isinstance(item.get("id"), str):
                self.by_id[(entity.name, item["id"])] = item

    def name_of(self, dao: str, value: Any) -> str | None:
        if isinstance(value, dict):
            value = value.get("id") or value.get("name") or value.get("username")
        if not isinstance(value, str):
            return None
        item = self.by_id.get((dao, value))
        if item is None:
            return value  # declarative files may refer by name
        found = item.get("name") or item.get("username") or item.get("id")
        return str(found)


def _scope(entity: ks.Entity, item: Mapping[str, Any],
           parent: tuple[str, dict[str, Any]] | None, index: _Index) -> dict[str, str]:
    """The names of the entities this one belongs to: {"services": "api", "routes": ...}."""
    out: dict[str, str] = {}
    if parent is not None:
        pitem = parent[1]
        out[parent[0]] = str(pitem.get("name") or pitem.get("username") or "")
    for dao, key in (("services", "service"), ("routes", "route"), ("consumers", "consumer"),
                     ("upstreams", "upstream")):
        if key in entity.fields and item.get(key) is not None and dao not in out:
            name = index.name_of(dao, item.get(key))
            if name:
                out[dao] = name
    return out


def _identity(entity: ks.Entity, item: Mapping[str, Any], scope: Mapping[str, str]
              ) -> tuple[str, str]:
    """(key, label) for an entity, the same whichever side it comes from."""
    name = item.get(entity.display) if entity.display else None
    if entity.name in ("services", "routes", "upstreams", "consumers"):
        return f"{entity.name}:{name}", f"{entity.singular} '{name}'"
    if entity.name == "targets":
        up = scope.get("upstreams", "?")
        return (f"targets:{up}:{item.get('target')}",
                f"target '{item.get('target')}' of upstream '{up}'")
    if entity.name == "plugins":
        where = next(((k[:-1], v) for k, v in scope.items()), ("global", ""))
        at = f" on {where[0]} '{where[1]}'" if where[1] else " (global)"
        return f"plugins:{name}:{where[0]}:{where[1]}", f"plugin '{name}'{at}"
    consumer = scope.get("consumers", "?")
    if entity.name == "acls":
        return (f"acls:{consumer}:{item.get('group')}",
                f"acl group '{item.get('group')}' of consumer '{consumer}'")
    if entity.name == "jwt_secrets":
        return (f"jwt_secrets:{consumer}:{item.get('key')}",
                f"jwt credential '{item.get('key')}' of consumer '{consumer}'")
    ref = _ref(item) or str(item.get("id", "?"))
    return f"{entity.name}:{consumer}:{ref}", f"key-auth credential of consumer '{consumer}'"


def _entities(config: Mapping[str, Any] | None) -> dict[str, _Flat]:
    if not config:
        return {}
    index = _Index(config)
    out: dict[str, _Flat] = {}
    for entity, item, parent in ks.iter_entities(config):
        key, label = _identity(entity, item, _scope(entity, item, parent, index))
        plain = {k: v for k, v in item.items() if k not in entity.nested and k not in IGNORED
                 and entity.fields.get(k, ks.STRING).type != "foreign"}
        schema = dict(entity.fields)
        if entity is ks.PLUGIN and item.get("name") in ks.PLUGIN_CONFIGS:
            schema["config"] = ks.F("record", fields=ks.PLUGIN_CONFIGS[item["name"]])
        out[key] = _Flat(entity.name, key, label, _flatten(plain), _ref(item), schema)
    return out


def _same(f: ks.F | None, a: Any, b: Any) -> bool:
    a, b = _plain(a), _plain(b)
    if f is not None and f.type == "set" and isinstance(a, list) and isinstance(b, list):
        return sorted(map(str, a)) == sorted(map(str, b))
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(
            a, bool) and not isinstance(b, bool):
        return float(a) == float(b)
    return bool(a == b)


def _plain(value: Any) -> Any:
    if isinstance(value, Secret):
        return value.reveal()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _show(value: Any) -> str:
    if isinstance(value, Secret):
        return repr(value)
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(_plain(value), sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _secret_field(kind: str, path: str) -> bool:
    return path in ks.SECRET_FIELDS.get(kind, ())


def _changes(have: _Flat, want: _Flat) -> Iterator[str]:
    for path in sorted(set(want.fields) | set(have.fields)):
        f = _field_schema(want.schema, path)
        if path in want.fields:
            new = want.fields[path]
            old = have.fields.get(path)
            if _same(f, old, new):
                continue
            if _secret_field(want.kind, path):
                yield f"{path}: (changed)"
            else:
                yield f"{path}: {_show(old) if old is not None else '(unset)'} -> {_show(new)}"
            continue
        old = have.fields[path]
        default = f.default if f is not None else ks.NO_DEFAULT
        if old is None or default is ks.NO_DEFAULT or _same(f, old, default):
            continue  # a default Kong filled in, or a field hostctl does not manage
        yield f"{path}: {_show(old)} -> {_show(default)} (Kong's default)"


def diff_configs(running: Mapping[str, Any] | None, desired: Mapping[str, Any],
                 provenance: Provenance | None = None) -> ConfigDiff:
    """The changes a sync would make, desired entities located through `provenance`."""
    have, want = _entities(running), _entities(desired)
    changes: list[Change] = []

    def where(flat: _Flat) -> str:
        if provenance is None or flat.ref is None or flat.ref not in provenance.entities:
            return ""
        src = provenance.entities[flat.ref].source
        return f"{src.file}:{src.line}" if src.line else src.file

    for key in sorted(set(have) | set(want), key=lambda k: (_order(k), k)):
        if key not in have:
            changes.append(Change("+", want[key].label, where(want[key])))
        elif key not in want:
            changes.append(Change("-", have[key].label, "not in the specs: sync removes it"))
        else:
            details = tuple(_changes(have[key], want[key]))
            if details:
                changes.append(Change("~", want[key].label, where(want[key]), details))
    if provenance is not None:
        changes = [_scrubbed(c, provenance) for c in changes]
    return ConfigDiff(tuple(changes))


def _order(key: str) -> int:
    kind = key.split(":", 1)[0]
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)


def _scrubbed(change: Change, provenance: Provenance) -> Change:
    return Change(change.sign, provenance.scrub(change.label), change.where,
                  tuple(provenance.scrub(d) for d in change.details))


def hash_summary(running_hash: str, desired_hash: str) -> str:
    """When Kong cannot export its configuration, the hashes still say whether it differs."""
    if running_hash == desired_hash:
        return "Kong already runs this configuration (same configuration hash).\n"
    if running_hash == "0" * 32:
        return "Kong runs no configuration yet; sync loads this one.\n"
    return (f"Kong runs configuration {running_hash[:12]}, hostctl would send "
            f"{desired_hash[:12]}; this Kong cannot export its configuration, so the "
            "entities that differ are not listed.\n")
