"""A stand-in for the kube-apiserver, on 127.0.0.1, answering the few endpoints hostctl uses.

Not Kubernetes: it keeps objects in a dict and answers
- PATCH .../{name} with `application/apply-patch+yaml` (server-side apply): requires
  `fieldManager`, honours `dryRun=All` (answers without storing) and refuses an object in a
  namespace that does not exist (404), like the real server; the applied object *replaces*
  the stored one (no field-level merge) and gets uid, resourceVersion and generation (bumped
  when `spec` changes); `stringData` becomes base64 `data`, as the server does for Secrets;
- GET .../{name}, DELETE .../{name}, GET collection?labelSelector=k=v,... (every namespace);
- Deployment status that advances one replica per GET after an apply, so rollout waits have
  something to wait for (`stuck` names never become available; `deadline` names report
  ProgressDeadlineExceeded);
- `reject[path] = (code, message)` answers that path's PATCH with a Status error; `token`
  set means requests without `Authorization: Bearer <token>` get 401.
Every request is recorded (method, path, query, content type, body) for assertions.
"""

from __future__ import annotations

import base64
import json
import re
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

_OBJECT = re.compile(r"^(?P<coll>/(?:api/v1|apis/[^/]+/[^/]+)(?:/namespaces/(?P<ns>[^/]+))?"
                     r"/(?P<plural>[a-z]+))/(?P<name>[^/]+)$")
_COLLECTION = re.compile(r"^/(?:api/v1|apis/[^/]+/[^/]+)/(?P<plural>[a-z]+)$")


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str
    body: bytes
    authorization: str


@dataclass
class StandIn:
    url: str = ""
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)  # object path -> object
    requests: list[Recorded] = field(default_factory=list)
    reject: dict[str, tuple[int, str]] = field(default_factory=dict)
    stuck: set[str] = field(default_factory=set)
    deadline: set[str] = field(default_factory=set)
    token: str | None = None
    serial: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def paths(self, method: str) -> list[str]:
        return [r.path for r in self.requests if r.method == method]

    def write_kubeconfig(self, path: Path, token: str) -> Path:
        """A kubeconfig at `path` whose one context reaches this stand-in with bearer `token`,
        which the stand-in requires from now on."""
        self.token = token
        path.write_text(textwrap.dedent(f"""\
            apiVersion: v1
            kind: Config
            clusters: [{{name: c, cluster: {{server: "{self.url}"}}}}]
            users: [{{name: u, user: {{token: {token}}}}}]
            contexts: [{{name: standin, context: {{cluster: c, user: u}}}}]
            current-context: standin
            """))
        return path


def _status(code: int, message: str, reason: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
            "reason": reason, "code": code}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        st = self.server.state
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        rec = Recorded(method, url.path, parse_qs(url.query),
                       self.headers.get("Content-Type", ""), body,
                       self.headers.get("Authorization", ""))
        with st.lock:
            st.requests.append(rec)
            if st.token is not None and rec.authorization != f"Bearer {st.token}":
                return self._reply(401, _status(401, "Unauthorized", "Unauthorized"))
            code, out = _answer(st, rec)
        self._reply(code, out)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


class _Server(ThreadingHTTPServer):
    state: StandIn


def _answer(st: StandIn, rec: Recorded) -> tuple[int, dict[str, Any]]:
    match = _OBJECT.match(rec.path)
    if rec.method == "GET" and match is None:
        coll = _COLLECTION.match(rec.path)
        if coll is None:
            return 404, _status(404, f"the server could not find {rec.path}", "NotFound")
        return 200, {"kind": "List", "items": _list(st, coll["plural"], rec.query)}
    if match is None:
        return 404, _status(404, f"the server could not find {rec.path}", "NotFound")
    path, name = rec.path, match["name"]
    what = f'{match["plural"]} "{name}"'
    if rec.method == "GET":
        obj = st.objects.get(path)
        if obj is None:
            return 404, _status(404, f"{what} not found", "NotFound")
        return 200, _with_status(st, path, obj)
    if rec.method == "DELETE":
        if st.objects.pop(path, None) is None:
            return 404, _status(404, f"{what} not found", "NotFound")
        return 200, {"kind": "Status", "status": "Success"}
    return _apply(st, rec, match, what)


def _apply(st: StandIn, rec: Recorded, match: re.Match[str], what: str
           ) -> tuple[int, dict[str, Any]]:
    if rec.content_type != "application/apply-patch+yaml":
        return 415, _status(415, f"unsupported media type {rec.content_type}",
                            "UnsupportedMediaType")
    if not rec.query.get("fieldManager"):
        return 400, _status(400, "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: "
                            "Required value: is required for apply patch", "BadRequest")
    if rec.path in st.reject:
        code, message = st.reject[rec.path]
        return code, _status(code, message, "Invalid")
    ns = match["ns"]
    if ns is not None and f"/api/v1/namespaces/{ns}" not in st.objects:
        return 404, _status(404, f'namespaces "{ns}" not found', "NotFound")
    obj = yaml.safe_load(rec.body)
    old = st.objects.get(rec.path)
    meta = obj.setdefault("metadata", {})
    st.serial += 1
    meta["uid"] = (old or {}).get("metadata", {}).get("uid", f"uid-{st.serial}")
    meta["resourceVersion"] = str(st.serial)
    generation = (old or {}).get("metadata", {}).get("generation", 0)
    meta["generation"] = generation + 1 if old is None or old.get("spec") != obj.get(
        "spec") else generation
    meta["managedFields"] = [{"manager": rec.query["fieldManager"][0],
                              "operation": "Apply"}]
    if obj.get("kind") == "Secret" and "stringData" in obj:
        data = obj.setdefault("data", {})
        for k, v in obj.pop("stringData").items():
            data[k] = base64.b64encode(str(v).encode()).decode()
    if obj.get("kind") == "Deployment":
        obj["_progress"] = 0
    if rec.query.get("dryRun") != ["All"]:
        st.objects[rec.path] = obj
    return 200, _with_status(st, rec.path, obj, advance=False)


def _with_status(st: StandIn, path: str, obj: dict[str, Any], advance: bool = True
                 ) -> dict[str, Any]:
    out = {k: v for k, v in obj.items() if k != "_progress"}
    if obj.get("kind") != "Deployment":
        return out
    want = int(obj.get("spec", {}).get("replicas", 1))
    name = obj["metadata"]["name"]
    if advance and name not in st.stuck:
        obj["_progress"] = min(want, obj.get("_progress", 0) + 1)
    ready = obj.get("_progress", 0)
    status: dict[str, Any] = {"observedGeneration": obj["metadata"]["generation"],
                              "replicas": want, "updatedReplicas": want,
                              "availableReplicas": ready, "readyReplicas": ready}
    if name in st.deadline:
        status["conditions"] = [{"type": "Progressing", "status": "False",
                                 "reason": "ProgressDeadlineExceeded",
                                 "message": f'ReplicaSet "{name}-abc" has timed out '
                                            "progressing."}]
    out["status"] = status
    return out


def _list(st: StandIn, plural: str, query: dict[str, list[str]]) -> list[dict[str, Any]]:
    selector = dict(part.split("=", 1) for part in
                    (query.get("labelSelector") or [""])[0].split(",") if "=" in part)
    out = []
    for path, obj in sorted(st.objects.items()):
        m = _OBJECT.match(path)
        if m is None or m["plural"] != plural:
            continue
        labels = obj.get("metadata", {}).get("labels") or {}
        if all(labels.get(k) == v for k, v in selector.items()):
            out.append({k: v for k, v in obj.items() if k != "_progress"})
    return out


@contextmanager
def running() -> Iterator[StandIn]:
    """A stand-in API server on 127.0.0.1 (a free port) for the duration of the block."""
    state = StandIn()
    server = _Server(("127.0.0.1", 0), _Handler)
    server.state = state
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
