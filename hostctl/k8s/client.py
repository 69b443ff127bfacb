"""Talking to the API server: server-side apply with hostctl as field manager, diffs from
server-side dry runs, rollout waits, pruning what the specs no longer name.

Requests are built as plain values (`ApiRequest`) by pure functions, so their method, path,
query and body are tested without a cluster; `Cluster.send` is the one place that talks
HTTP (with `requests`). Secret values leave this process only in apply bodies; every text
shown to a person (errors, diffs) has them replaced by `<secret NAME>`.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import requests
import yaml

from hostctl.errors import HostctlError
from hostctl.k8s.kubeconfig import ClusterAuth
from hostctl.k8s.manifests import KIND_ORDER, materialize
from hostctl.spec.secrets import Secret

FIELD_MANAGER = "hostctl"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
# kind -> (API group/version, plural, namespaced), for every kind hostctl renders.
RESOURCES: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("v1", "namespaces", False),
    "ConfigMap": ("v1", "configmaps", True),
    "Secret": ("v1", "secrets", True),
    "PersistentVolumeClaim": ("v1", "persistentvolumeclaims", True),
    "Service": ("v1", "services", True),
    "Deployment": ("apps/v1", "deployments", True),
    "Job": ("batch/v1", "jobs", True),
    "CronJob": ("batch/v1", "cronjobs", True),
    "Ingress": ("networking.k8s.io/v1", "ingresses", True),
    "NetworkPolicy": ("networking.k8s.io/v1", "networkpolicies", True),
    "KongPlugin": ("configuration.konghq.com/v1", "kongplugins", True),
    "KongConsumer": ("configuration.konghq.com/v1", "kongconsumers", True),
    "Middleware": ("traefik.io/v1alpha1", "middlewares", True),
    "ResourceFlavor": ("kueue.x-k8s.io/v1beta1", "resourceflavors", False),
    "WorkloadPriorityClass": ("kueue.x-k8s.io/v1beta1", "workloadpriorityclasses", False),
    "ClusterQueue": ("kueue.x-k8s.io/v1beta1", "clusterqueues", False),
    "LocalQueue": ("kueue.x-k8s.io/v1beta1", "localqueues", True),
}
# Set by the API server; never part of a diff.
SERVER_FIELDS = ("managedFields", "resourceVersion", "generation", "uid", "creationTimestamp",
                 "selfLink")
SERVER_ANNOTATIONS = ("deployment.kubernetes.io/revision",
                      "kubectl.kubernetes.io/last-applied-configuration")


class ClusterError(HostctlError):
    """The API server refused a request or could not be reached; the message is its own."""

    def __init__(self, message: str, code: int = 0, reason: str = ""):
        super().__init__(message)
        self.code, self.reason = code, reason


class RolloutFailed(HostctlError):
    """A Deployment did not become ready in time, or its progress deadline passed."""


# -- requests as values ---------------------------------------------------------------------

@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    content_type: str | None = None
    body: bytes | None = None

    @property
    def url_path(self) -> str:
        return self.path + (f"?{urlencode(self.params)}" if self.params else "")

    def __str__(self) -> str:  # never the body: it may hold secret values
        return f"{self.method} {self.url_path}"


def collection_path(api_version: str, kind: str, namespace: str | None) -> str:
    if kind not in RESOURCES:
        raise ClusterError(f"hostctl does not know the API resource for kind {kind}")
    group_version, plural, namespaced = RESOURCES[kind]
    root = "/api/v1" if group_version == "v1" else f"/apis/{api_version}"
    if namespaced and namespace:
        return f"{root}/namespaces/{quote(namespace, safe='')}/{plural}"
    return f"{root}/{plural}"


def object_path(doc: Mapping[str, Any]) -> str:
    meta = doc["metadata"]
    base = collection_path(str(doc["apiVersion"]), str(doc["kind"]), meta.get("namespace"))
    return f"{base}/{quote(str(meta['name']), safe='')}"


def apply_request(doc: Mapping[str, Any], *, dry_run: bool = False, force: bool = False
                  ) -> ApiRequest:
    """Server-side apply (PATCH, application/apply-patch+yaml) owned by FIELD_MANAGER. JSON
    is YAML, so the body is the manifest as JSON, secret values revealed."""
    params = [("fieldManager", FIELD_MANAGER)]
    if force:
        params.append(("force", "true"))
    if dry_run:
        params.append(("dryRun", "All"))
    body = json.dumps(materialize(dict(doc), reveal=True), sort_keys=True).encode()
    return ApiRequest("PATCH", object_path(doc), tuple(params), APPLY_CONTENT_TYPE, body)


def get_request(doc: Mapping[str, Any]) -> ApiRequest:
    return ApiRequest("GET", object_path(doc))


def delete_request(doc: Mapping[str, Any]) -> ApiRequest:
    # Background: the server removes a Deployment's ReplicaSets and pods, a Job's pods.
    body = json.dumps({"kind": "DeleteOptions", "apiVersion": "v1",
                       "propagationPolicy": "Background"}).encode()
    return ApiRequest("DELETE", object_path(doc), (), "application/json", body)


def list_request(kind: str, selector: Mapping[str, str]) -> ApiRequest:
    """Every object of `kind` in every namespace carrying all the `selector` labels."""
    group_version = RESOURCES[kind][0]
    labels = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    return ApiRequest("GET", collection_path(group_version, kind, None),
                      (("labelSelector", labels),))


# -- the connection -------------------------------------------------------------------------

Transport = Callable[[ApiRequest], "requests.Response"]


class Cluster:
    """One API server. `with Cluster(auth) as c:` removes the key files it writes for TLS."""

    def __init__(self, auth: ClusterAuth, *, timeout: float = 30.0,
                 secrets: Iterable[Secret] = ()):
        self.auth = auth
        self.timeout = timeout
        self.secrets = tuple(secrets)  # values to scrub from anything shown
        self.session = requests.Session()
        self._dir: str | None = None
        self._configure()

    def _configure(self) -> None:
        a, s = self.auth, self.session
        s.headers["Accept"] = "application/json"
        s.headers["User-Agent"] = "hostctl"
        if a.token is not None:
            s.headers["Authorization"] = f"Bearer {a.token.reveal()}"
        elif a.username and a.password is not None:
            s.auth = (a.username, a.password.reveal())
        s.verify = not a.insecure
        if a.ca_pem and not a.insecure:
            s.verify = self._file("ca.crt", a.ca_pem)
        if a.client_cert_pem and a.client_key is not None:
            s.cert = (self._file("client.crt", a.client_cert_pem),
                      self._file("client.key", a.client_key.reveal().encode()))

    def _file(self, name: str, content: bytes) -> str:
        """requests reads certificates from files: a private folder, removed on close."""
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="hostctl-kube-")
        path = os.path.join(self._dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        return path

    def close(self) -> None:
        self.session.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def scrub(self, text: str) -> str:
        for secret in sorted(self.secrets, key=lambda s: -len(s.reveal())):
            if secret.reveal():
                text = text.replace(secret.reveal(), repr(secret))
        return text

    def send(self, req: ApiRequest, *, missing_ok: bool = False) -> dict[str, Any] | None:
        """The response's JSON; None for 404 when `missing_ok`; ClusterError otherwise,
        with the API server's own message."""
        headers = {"Content-Type": req.content_type} if req.content_type else {}
        try:
            resp = self.session.request(req.method, self.auth.server + req.url_path,
                                        data=req.body, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ClusterError(f"cannot reach the cluster at {self.auth.server} (context "
                               f"{self.auth.context}): {self.scrub(str(exc))}") from None
        if resp.status_code == 404 and missing_ok:
            return None
        try:
            data = resp.json()
        except ValueError:
            data = None
        if resp.status_code >= 400:
            status = data if isinstance(data, dict) else {}
            message = status.get("message") or resp.text.strip()[:300] or resp.reason
            raise ClusterError(self.scrub(str(message)), resp.status_code,
                               str(status.get("reason", "")))
        return data if isinstance(data, dict) else {}

    # -- verbs

    def apply(self, doc: Mapping[str, Any], *, dry_run: bool = False, force: bool = False
              ) -> dict[str, Any]:
        try:
            out = self.send(apply_request(doc, dry_run=dry_run, force=force))
        except ClusterError as exc:
            raise ClusterError(f"{describe(doc)}: {exc}", exc.code, exc.reason) from None
        return out or {}

    def get(self, doc: Mapping[str, Any]) -> dict[str, Any] | None:
        return self.send(get_request(doc), missing_ok=True)

    def delete(self, doc: Mapping[str, Any]) -> None:
        self.send(delete_request(doc), missing_ok=True)

    def list(self, kind: str, selector: Mapping[str, str]) -> list[dict[str, Any]]:
        try:
            data = self.send(list_request(kind, selector))
        except ClusterError as exc:
            if exc.code == 404 and RESOURCES[kind][0] not in ("v1", "apps/v1", "batch/v1",
                                                               "networking.k8s.io/v1"):
                return []  # the CRD is not installed: nothing of that kind can exist
            raise
        return [dict(item, apiVersion=RESOURCES[kind][0], kind=kind)
                for item in (data or {}).get("items", [])]


def describe(doc: Mapping[str, Any]) -> str:
    meta = doc.get("metadata", {})
    ns = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{doc.get('kind')} {ns}{meta.get('name')}"


# -- diff -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Change:
    action: str  # create | update | unchanged | delete | replace
    kind: str
    namespace: str
    name: str
    diff: str = ""  # unified diff of the YAML, secret values redacted

    def __str__(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        mark = {"create": "+", "update": "~", "unchanged": "=", "delete": "-",
                "replace": "!"}[self.action]
        return f"{mark} {self.kind} {ns}{self.name}"


def comparable(obj: Mapping[str, Any]) -> dict[str, Any]:
    """An object without what the server sets (status, uid, versions, managed fields)."""
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in SERVER_FIELDS}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k not in SERVER_ANNOTATIONS}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    out["metadata"] = meta
    return out


def redact_pair(kind: str, old: dict[str, Any], new: dict[str, Any]
                ) -> tuple[dict[str, Any], dict[str, Any]]:
    """For Secrets: values become `<redacted>`; a changed one `<redacted: changed>` on the
    new side, so the diff still shows which keys change."""
    if kind != "Secret":
        return old, new
    old_data = dict(old.get("data") or {})
    new_data = dict(new.get("data") or {})
    for key in set(old_data) | set(new_data):
        same = old_data.get(key) == new_data.get(key)
        if key in old_data:
            old_data[key] = "<redacted>"
        if key in new_data:
            new_data[key] = "<redacted>" if same else "<redacted: changed>"
    old = {**old, "data": old_data} if old_data else {k: v for k, v in old.items()
                                                       if k != "data"}
    new = {**new, "data": new_data} if new_data else {k: v for k, v in new.items()
                                                       if k != "data"}
    return old, new


def yaml_diff(kind: str, name: str, old: dict[str, Any], new: dict[str, Any]) -> str:
    old, new = redact_pair(kind, old, new)
    a = yaml.safe_dump(old, sort_keys=True, default_flow_style=False).splitlines(True)
    b = yaml.safe_dump(new, sort_keys=True, default_flow_style=False).splitlines(True)
    return "".join(difflib.unified_diff(a, b, f"live/{name}", f"hostctl/{name}"))


def diff_one(cluster: Cluster, doc: Mapping[str, Any]) -> Change:
    """What applying `doc` would change, from the server's own dry run of it."""
    meta = doc["metadata"]
    key = (str(doc["kind"]), str(meta.get("namespace", "")), str(meta["name"]))
    live = cluster.get(doc)
    if live is None:
        shown = comparable(materialize(dict(doc), reveal=False))
        if key[0] == "Secret":
            shown.pop("stringData", None)
            shown["data"] = dict.fromkeys(doc.get("stringData") or {}, "<redacted>")
        text = yaml.safe_dump(shown, sort_keys=True, default_flow_style=False)
        return Change("create", *key, diff="".join(f"+{line}\n"
                                                   for line in text.splitlines()))
    if needs_replace(doc, live):
        return Change("replace", *key, diff=f"spec hash {_hash_label(live)} -> "
                      f"{_hash_label(doc)}: a Job's pod template cannot change, so hostctl "
                      "deletes and recreates it (a new run)")
    dry = cluster.apply(doc, dry_run=True)
    before, after = comparable(live), comparable(dry)
    if before == after:
        return Change("unchanged", *key)
    return Change("update", *key, diff=cluster.scrub(yaml_diff(key[0], key[2], before, after)))


def needs_replace(doc: Mapping[str, Any], live: Mapping[str, Any]) -> bool:
    """A Job whose spec changed: its template is immutable, so apply must recreate it."""
    return doc.get("kind") == "Job" and _hash_label(doc) != _hash_label(live)


def _hash_label(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata", {}).get("labels") or {}).get("io.hostctl/spec-hash", "?"))


def site_selector(site: str) -> dict[str, str]:
    return {"app.kubernetes.io/managed-by": "hostctl", "io.hostctl/site": site}


def stale_objects(cluster: Cluster, docs: Sequence[Mapping[str, Any]], site: str
                  ) -> list[dict[str, Any]]:
    """Objects hostctl made for `site` that the specs no longer name (deletion order)."""
    wanted = {describe(d) for d in docs}
    stale: list[dict[str, Any]] = []
    for kind in reversed(KIND_ORDER):
        stale += [o for o in cluster.list(kind, site_selector(site))
                  if describe(o) not in wanted]
    return stale


def plan_changes(cluster: Cluster, docs: Sequence[Mapping[str, Any]], *, prune_site: str = ""
                 ) -> list[Change]:
    changes = [diff_one(cluster, d) for d in docs]
    if prune_site:
        for obj in stale_objects(cluster, docs, prune_site):
            meta = obj["metadata"]
            changes.append(Change("delete", str(obj["kind"]), str(meta.get("namespace", "")),
                                  str(meta["name"])))
    return changes


# -- apply and rollout ----------------------------------------------------------------------

@dataclass
class ApplyResult:
    applied: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def apply_all(cluster: Cluster, docs: Sequence[Mapping[str, Any]], *, force: bool = False,
              prune_site: str = "", progress: Callable[[str], None] = lambda _: None
              ) -> ApplyResult:
    """Apply in order (namespaces first); recreate changed Jobs; then prune. Stops at the
    first refusal, with the server's message naming the object."""
    result = ApplyResult()
    for doc in docs:
        if doc.get("kind") == "Job":
            live = cluster.get(doc)
            if live is not None and needs_replace(doc, live):
                cluster.delete(doc)
                _wait_gone(cluster, doc)
                result.replaced.append(describe(doc))
        cluster.apply(doc, force=force)
        result.applied.append(describe(doc))
        progress(f"applied {describe(doc)}")
    if prune_site:
        for obj in stale_objects(cluster, docs, prune_site):
            cluster.delete(obj)
            result.deleted.append(describe(obj))
            progress(f"deleted {describe(obj)}")
    return result


def _wait_gone(cluster: Cluster, doc: Mapping[str, Any], attempts: int = 60,
               sleep: Callable[[float], None] = time.sleep) -> None:
    for _ in range(attempts):
        if cluster.get(doc) is None:
            return
        sleep(1.0)
    raise ClusterError(f"{describe(doc)} was deleted but is still there after {attempts}s")


def rollout_status(obj: Mapping[str, Any]) -> tuple[bool, str]:
    """(done, what is happening), as `kubectl rollout status` reads a Deployment."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation", 0)
    if status.get("observedGeneration", 0) < generation:
        return False, "waiting for the controller to see the new spec"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            raise RolloutFailed(f"{describe(obj)}: progress deadline exceeded: "
                                f"{cond.get('message', '')}")
    want = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas", 0))
    total = int(status.get("replicas", 0))
    available = int(status.get("availableReplicas", 0))
    if updated < want:
        return False, f"{updated} of {want} updated"
    if total > updated:
        return False, f"{total - updated} old replica(s) terminating"
    if available < updated:
        return False, f"{available} of {updated} available"
    return True, f"{available} of {want} available"


def wait_rollouts(cluster: Cluster, docs: Sequence[Mapping[str, Any]], timeout: float, *,
                  poll: float = 1.0, sleep: Callable[[float], None] = time.sleep,
                  clock: Callable[[], float] = time.monotonic,
                  progress: Callable[[str], None] = lambda _: None) -> None:
    """Wait until every Deployment in `docs` is rolled out; RolloutFailed after `timeout`."""
    pending = [d for d in docs if d.get("kind") == "Deployment"]
    deadline = clock() + timeout
    last: dict[str, str] = {}
    while pending:
        still = []
        for doc in pending:
            live = cluster.get(doc)
            done, what = (False, "not found") if live is None else rollout_status(live)
            if last.get(describe(doc)) != what:
                progress(f"{describe(doc)}: {what}")
                last[describe(doc)] = what
            if not done:
                still.append(doc)
        pending = still
        if not pending:
            return
        if clock() >= deadline:
            names = ", ".join(f"{describe(d)} ({last.get(describe(d), '?')})" for d in pending)
            raise RolloutFailed(f"not rolled out after {timeout:g}s: {names}")
        sleep(poll)
