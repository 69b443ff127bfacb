"""Retention in Elasticsearch: the lifecycle policy and index template hostctl applies, as
request values (printable, diffable, golden-tested), and a small client that applies them.

Elasticsearch's built-in `logs@lifecycle` never deletes anything; hostctl's policy has a
delete phase after the inventory's retention_days, attached through an index template that
covers only hostctl's indices (or data streams), so nothing else in a shared cluster changes.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hostctl.errors import HostctlError
from hostctl.spec.sections.logging import LoggingConfig

if TYPE_CHECKING:
    import requests

POLICY = "hostctl-logs"
TEMPLATE = "hostctl-logs"
INDEX_PATTERN = "hostctl-logs-*"  # per-project mode: hostctl-logs-<project>-<yyyy.MM.dd>
DATA_STREAM_PATTERN = "logs-hostctl.*-*"  # data-stream mode: logs-hostctl.<project>-<site>
PRIORITY = 200  # above the built-in `logs` template (100), which also matches logs-*-*


class ElasticsearchError(HostctlError):
    """Elasticsearch could not be reached, or refused what hostctl asked."""


class ElasticsearchRejected(ElasticsearchError):
    """Elasticsearch answered a request with an error: its type and reason are kept."""

    def __init__(self, what: str, status: int, error_type: str, reason: str):
        self.what, self.status, self.error_type, self.reason = what, status, error_type, reason
        super().__init__(f"Elasticsearch rejected {what} (HTTP {status}): {error_type}: {reason}")


@dataclass(frozen=True)
class EsRequest:
    """One `PUT` hostctl makes, and how to read back what is there now."""

    what: str  # "lifecycle policy hostctl-logs": for messages
    path: str  # PUT here; GET here reads the current one
    body: dict[str, Any]

    @property
    def digest(self) -> str:
        """The hash stored in the body's _meta: the same hash there means "unchanged"."""
        return str(self.body.get("policy", self.body)["_meta"]["hostctl_hash"])

    def to_json(self) -> dict[str, Any]:
        return {"method": "PUT", "path": self.path, "body": self.body}


def content_hash(body: dict[str, Any]) -> str:
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _with_meta(body: dict[str, Any], site: str, retention_days: int) -> dict[str, Any]:
    meta = {"managed_by": "hostctl", "site": site, "retention_days": retention_days}
    meta["hostctl_hash"] = content_hash({**body, "_meta": meta})
    return {**body, "_meta": meta}


def lifecycle_policy(cfg: LoggingConfig, site: str) -> EsRequest:
    """Delete after retention_days. Data streams also roll over daily, since deletion
    works on whole backing indices and counts from their rollover."""
    phases: dict[str, Any] = {}
    if cfg.index == "data-stream":
        phases["hot"] = {"actions": {"rollover": {"max_age": "1d",
                                                  "max_primary_shard_size": "50gb"}}}
    phases["delete"] = {"min_age": f"{cfg.retention_days}d", "actions": {"delete": {}}}
    policy = _with_meta({"phases": phases}, site, cfg.retention_days)
    return EsRequest(f"lifecycle policy {POLICY}", f"/_ilm/policy/{POLICY}",
                     {"policy": policy})


MAPPINGS: dict[str, Any] = {
    "dynamic_templates": [
        {"strings_as_keywords": {"match_mapping_type": "string",
                                 "mapping": {"type": "keyword", "ignore_above": 1024}}},
    ],
    "properties": {
        "@timestamp": {"type": "date"},
        "message": {"type": "text"},
        "log": {"properties": {"level": {"type": "keyword"}}},
        "host": {"properties": {"name": {"type": "keyword"}}},
        "service": {"properties": {"name": {"type": "keyword"}}},
        "container": {"properties": {
            "id": {"type": "keyword"}, "name": {"type": "keyword"},
            "image": {"properties": {"name": {"type": "keyword"}}}}},
        "hostctl": {"properties": {
            key: {"type": "keyword"} for key in (
                "site", "project", "kind", "instance", "run", "spec_hash", "tag", "hostname")}},
    },
}


def index_template(cfg: LoggingConfig, site: str) -> EsRequest:
    """Attaches the policy (and hostctl's field types) to hostctl's indices only."""
    settings: dict[str, Any] = {"index.lifecycle.name": POLICY, "index.number_of_shards": 1}
    if cfg.managed_elasticsearch:
        settings["index.number_of_replicas"] = 0  # one node: replicas would never be placed
    body: dict[str, Any] = {
        "index_patterns": [DATA_STREAM_PATTERN if cfg.index == "data-stream" else INDEX_PATTERN],
        "priority": PRIORITY,
        "template": {"settings": settings, "mappings": MAPPINGS},
    }
    if cfg.index == "data-stream":
        body["data_stream"] = {}
    return EsRequest(f"index template {TEMPLATE}", f"/_index_template/{TEMPLATE}",
                     _with_meta(body, site, cfg.retention_days))


def retention_requests(cfg: LoggingConfig, site: str) -> list[EsRequest]:
    """In order: the template names the policy, so the policy goes first."""
    return [lifecycle_policy(cfg, site), index_template(cfg, site)]


# -- applying them ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Applied:
    what: str
    action: str  # "created" | "updated" | "unchanged"


def _current_meta(path: str, answer: Any) -> dict[str, Any] | None:
    """The _meta of what GET returned, for a policy or an index template."""
    if not isinstance(answer, dict):
        return None
    if path.startswith("/_ilm/policy/"):
        entry = answer.get(path.rsplit("/", 1)[1]) or {}
        return (entry.get("policy") or {}).get("_meta")
    for item in answer.get("index_templates") or []:
        return (item.get("index_template") or {}).get("_meta")
    return None


def error_of(answer: Any) -> tuple[str, str]:
    """(type, reason) from Elasticsearch's error body, with the first cause appended."""
    if not isinstance(answer, dict) or not isinstance(answer.get("error"), dict):
        text = answer if isinstance(answer, str) else json.dumps(answer)
        return "error", text.strip()[:300] or "no details in the answer"
    err = answer["error"]
    reason = str(err.get("reason") or "")
    cause = err.get("caused_by")
    if isinstance(cause, dict) and cause.get("reason") and cause["reason"] not in reason:
        reason += f" (caused by {cause.get('type', 'error')}: {cause['reason']})"
    return str(err.get("type") or "error"), reason or "no reason given"


class ElasticsearchClient:
    """Talks to one Elasticsearch (through an SSH tunnel for hostctl's own)."""

    def __init__(self, base_url: str, session: requests.Session | None = None,
                 timeout: float = 10.0):
        # imported here: only a run that talks to Elasticsearch needs requests (start-up)
        import requests

        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        self.session.trust_env = False  # never through a proxy: it is ours, over a tunnel
        self.timeout = timeout

    def _call(self, method: str, path: str, what: str, body: Any = None) -> requests.Response:
        import requests  # start-up: imported by __init__ already

        try:
            return self.session.request(method, self.base_url + path, json=body,
                                        timeout=self.timeout)
        except requests.RequestException as exc:
            raise ElasticsearchError(f"cannot reach Elasticsearch at {self.base_url} "
                                     f"({what}): {type(exc).__name__}") from exc

    @staticmethod
    def _json(response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            return response.text

    def wait_healthy(self, timeout: float = 120.0, every: float = 2.0) -> str:
        """Wait (bounded) until the cluster is yellow or green; its status."""
        end = time.monotonic() + timeout
        last = "no answer"
        while True:
            try:
                r = self._call("GET", "/_cluster/health?wait_for_status=yellow&timeout=1s",
                               "cluster health")
                answer = self._json(r)
                status = answer.get("status") if isinstance(answer, dict) else None
                if r.status_code == 200 and status in ("yellow", "green"):
                    return str(status)
                last = f"HTTP {r.status_code}, status {status or 'unknown'}"
            except ElasticsearchError as exc:
                last = str(exc)
            if time.monotonic() >= end:
                raise ElasticsearchError(f"Elasticsearch at {self.base_url} not healthy after "
                                         f"{timeout:g}s: {last}")
            time.sleep(every)

    def apply(self, req: EsRequest) -> Applied:
        """PUT unless what is there carries the same hash; an error names ES's reason."""
        current = self._call("GET", req.path, req.what)
        if current.status_code == 200:
            meta = _current_meta(req.path, self._json(current)) or {}
            if meta.get("hostctl_hash") == req.digest:
                return Applied(req.what, "unchanged")
        elif current.status_code != 404:
            raise ElasticsearchRejected(req.what, current.status_code,
                                        *error_of(self._json(current)))
        r = self._call("PUT", req.path, req.what, req.body)
        if r.status_code >= 300:
            raise ElasticsearchRejected(req.what, r.status_code, *error_of(self._json(r)))
        return Applied(req.what, "updated" if current.status_code == 200 else "created")

    def apply_all(self, reqs: list[EsRequest]) -> list[Applied]:
        return [self.apply(r) for r in reqs]
