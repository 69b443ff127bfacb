"""A stand-in for Kong's Admin API in DB-less mode, for tests. It is not Kong.

No Kong image or package can be had on the test machines, so hostctl's Admin API client is
tested against this small HTTP server on 127.0.0.1. It answers the endpoints hostctl uses,
the way Kong 3.x documents and implements them (Kong/kong `kong/api/routes/config.lua`,
`kong/api/routes/health.lua`, `kong/db/declarative/`, `kong/db/errors.lua`; the DB-less
Admin API reference at https://docs.konghq.com/gateway/latest/production/deployment-topologies/db-less-and-declarative-config/):

- `POST /config` with the whole declarative document, as `{"config": TEXT}`, a raw body or
  an already-parsed document; `?check_hash=1` answers 304 when the MD5 of TEXT is the hash
  of the running config; success is 201; an invalid document is 400 with
  `{"code": 14, "name": "invalid declarative configuration", "message", "fields"}` and,
  with `?flatten_errors=1`, `flattened_errors`: one item per entity (entity_type,
  entity_name, entity_tags, entity, errors [{type, field, message}]). Documents are checked
  with hostctl's `kong_schema` (Kong's field rules plus the declarative uniqueness rules), so
  a bad config really is refused. `busy` makes the next POSTs answer 429 with Retry-After,
  as Kong does while a previous configuration is loading.
- `GET /config`: the running config exported the way Kong exports it (flat entity lists,
  ids, foreign keys as ids, `_transform: false`).
- `GET /status` with `configuration_hash` (32 zeros before any config), `GET /status/ready`
  (200 once a config is loaded, 503 before), `GET /upstreams/{name}/health`.
- Entity writes (`POST /services`...) are refused, as in DB-less mode.

It keeps a log of requests (method, path, query) and never of bodies, which hold keys.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from hostctl.gateway import kong_schema as ks

EMPTY_HASH = "0" * 32


@dataclass
class StandInState:
    config: dict[str, Any] | None = None
    config_hash: str = EMPTY_HASH
    busy: int = 0  # answer this many POST /config with 429 before accepting again
    retry_after: str = "1"
    report_hash: str | None = None  # misreport the hash (to test the client's verification)
    health: dict[tuple[str, str], str] = field(default_factory=dict)  # (upstream, target)
    log: list[tuple[str, str, str]] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)
    # Target weights of every config loaded, in order: what a rolling deploy asked of Kong.
    weights: list[dict[str, int]] = field(default_factory=list)


class KongAdminStandIn:
    """Start with `with KongAdminStandIn() as kong:`; `kong.url` is its base URL."""

    def __init__(self, port: int = 0) -> None:
        self.state = StandInState()
        self.lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"standin": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> KongAdminStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def posts(self) -> int:
        return sum(1 for m, p, _ in self.state.log if (m, p) == ("POST", "/config"))

    # -- behaviour ------------------------------------------------------------------------

    def post_config(self, query: dict[str, str], body: bytes, content_type: str
                    ) -> tuple[int, Any, dict[str, str]]:
        text, parsed = _config_from(body, content_type)
        st = self.state
        if text is None and parsed is None:
            return 400, {"message": "expected a declarative configuration"}, {}
        new_hash = (hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()
                    if text is not None else _table_hash(parsed))
        if query.get("check_hash") == "1" and new_hash == st.config_hash:
            return 304, None, {}
        if parsed is None:
            try:
                parsed = yaml.safe_load(text or "")
            except yaml.YAMLError as exc:
                return 400, _invalid({"error": f"failed parsing declarative configuration: "
                                               f"{exc}"}, [], query), {}
        top, entities = ks.validate(parsed)
        if top or entities:
            fields = {e.field or "@entity": e.message for e in top}
            return 400, _invalid(fields, entities, query), {}
        if st.busy > 0:
            st.busy -= 1
            return 429, {"message": "Currently loading previous configuration"}, {
                "Retry-After": st.retry_after}
        st.config, st.config_hash = parsed, new_hash
        st.weights.append({f"{u['name']} {t['target']}": int(t.get("weight", 100))
                           for u in parsed.get("upstreams") or []
                           for t in u.get("targets") or []})
        return 201, self.export(), {}

    def export(self) -> dict[str, Any]:
        """The running config as Kong exports it: flat lists with ids."""
        out: dict[str, Any] = {"_format_version": "3.0", "_transform": False}
        if not self.state.config:
            return out
        ids: dict[int, str] = {}
        for entity, item, parent in ks.iter_entities(self.state.config):
            flat = {k: v for k, v in item.items() if k not in entity.nested}
            flat["id"] = self._id(entity.name, item)
            ids[id(item)] = flat["id"]
            if parent is not None:
                key = entity.parent_key.get(parent[0])
                if key:
                    flat[key] = ids[id(parent[1])]
            out.setdefault(entity.name, []).append(flat)
        return out

    def _id(self, dao: str, item: dict[str, Any]) -> str:
        who = item.get("name") or item.get("username") or item.get("target") or item.get("tags")
        key = f"{dao}:{json.dumps(who, sort_keys=True)}"
        return self.state.ids.setdefault(key, str(uuid.uuid5(uuid.NAMESPACE_URL, key)))

    def upstream_health(self, name: str) -> dict[str, Any] | None:
        for up in (self.state.config or {}).get("upstreams") or []:
            if up.get("name") == name:
                data = [{"target": t["target"], "weight": t.get("weight", 100),
                         "health": self.state.health.get((name, t["target"]), "HEALTHY"),
                         "upstream": {"id": self._id("upstreams", up)}}
                        for t in up.get("targets") or []]
                return {"data": data, "total": len(data), "next": None, "node_id": "standin"}
        return None


def _table_hash(parsed: Any) -> str:
    # Kong hashes a document posted as a table its own way; a stable stand-in suffices.
    text = json.dumps(parsed, sort_keys=True, default=str)
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _config_from(body: bytes, content_type: str) -> tuple[str | None, Any]:
    """(text, parsed document) from a POST body, the ways Kong's /config accepts it."""
    if not body:
        return None, None
    if content_type.startswith("application/json"):
        try:
            data = json.loads(body)
        except ValueError:
            return body.decode("utf-8", "replace"), None
        if isinstance(data, dict) and "_format_version" in data:
            return None, data
        if isinstance(data, dict) and isinstance(data.get("config"), str):
            return data["config"], None
        return None, None
    if content_type.startswith("application/x-www-form-urlencoded"):
        form = parse_qs(body.decode())
        return (form["config"][0], None) if "config" in form else (None, None)
    return body.decode("utf-8", "replace"), None


def _invalid(fields: dict[str, Any], entities: list[ks.EntityErrors], query: dict[str, str]
             ) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": 14, "name": "invalid declarative configuration",
        "message": "declarative config is invalid: " + json.dumps(fields, sort_keys=True),
        "fields": fields,
    }
    if query.get("flatten_errors") == "1":
        body["flattened_errors"] = [e.as_flattened() for e in entities]
    return body


class _Handler(BaseHTTPRequestHandler):
    standin: KongAdminStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: no bodies, no noise
        pass

    def _route(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        kong = self.standin
        with kong.lock:
            kong.state.log.append((method, path, parts.query))
            status, payload, headers = self._answer(method, path, query, body)
        self._send(status, payload, headers)

    def _answer(self, method: str, path: str, query: dict[str, str], body: bytes
                ) -> tuple[int, Any, dict[str, str]]:
        kong, st = self.standin, self.standin.state
        if (method, path) == ("GET", "/"):
            return 200, {"version": "3.9.1-standin", "configuration": {"database": "off"}}, {}
        if (method, path) == ("GET", "/status"):
            return 200, {"configuration_hash": st.report_hash or st.config_hash,
                         "database": {"reachable": True},
                         "server": {"connections_active": 1}}, {}
        if (method, path) == ("GET", "/status/ready"):
            if st.config is None:
                return 503, {"message": "no configuration available (empty configuration "
                                        "present)"}, {}
            return 200, {"message": "ready"}, {}
        if (method, path) == ("GET", "/config"):
            return 200, {"config": yaml.safe_dump(kong.export(), sort_keys=True)}, {}
        if (method, path) == ("POST", "/config"):
            return kong.post_config(query, body, self.headers.get("Content-Type") or "")
        if method == "GET" and path.startswith("/upstreams/") and path.endswith("/health"):
            found = kong.upstream_health(path[len("/upstreams/"):-len("/health")])
            return (200, found, {}) if found else (404, {"message": "Not found"}, {})
        if (method, path) == ("GET", "/_standin/weights"):  # the stand-in's own, for tests
            return 200, st.weights, {}
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            entity = path.strip("/").split("/")[0]
            return 405, {"message": f"cannot create or update '{entity}' entities when not "
                                    "using a database"}, {}
        return 404, {"message": "Not found"}, {}

    def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if status != 304:
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if status != 304:
            self.wfile.write(data)

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_PATCH(self) -> None:
        self._route("PATCH")

    def do_DELETE(self) -> None:
        self._route("DELETE")


@contextmanager
def running_standin() -> Iterator[KongAdminStandIn]:
    with KongAdminStandIn() as kong:
        yield kong


if __name__ == "__main__":
    # On a sandbox host (tests/rigs/gateway_rig.py ships this file in a zipapp): serve on the
    # loopback port given, as Kong's Admin API would, until stopped.
    # More ports after the first serve the same node (Kong's status listener, say).
    import sys

    node = KongAdminStandIn(int(sys.argv[1]))
    for extra in sys.argv[2:]:
        handler = node.server.RequestHandlerClass
        listener = ThreadingHTTPServer(("127.0.0.1", int(extra)), handler)
        threading.Thread(target=listener.serve_forever, daemon=True).start()
    node.server.serve_forever(poll_interval=0.2)
