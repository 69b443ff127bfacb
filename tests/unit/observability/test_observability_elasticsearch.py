"""The Elasticsearch client against a stand-in that answers like Elasticsearch 8 does:
created/updated/unchanged by the hash in _meta, and its errors turned into one clear line."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from hostctl.observability.elasticsearch import (
    Applied,
    ElasticsearchClient,
    ElasticsearchError,
    ElasticsearchRejected,
    error_of,
    retention_requests,
)
from hostctl.spec.sections.logging import LoggingConfig

CFG = LoggingConfig(host="edge-1")


class StandIn:
    """Policies and index templates kept as Elasticsearch returns them; scripted errors."""

    def __init__(self) -> None:
        self.policies: dict[str, Any] = {}
        self.templates: dict[str, Any] = {}
        self.reject: dict[str, tuple[int, Any]] = {}  # path -> (status, body) for PUT
        self.health = ["yellow"]
        self.puts: list[str] = []


def handler(es: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def answer(self, status: int, body: Any) -> None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if not isinstance(body, str)
                             else "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/_cluster/health":
                status = es.health.pop(0) if len(es.health) > 1 else es.health[0]
                code = 200 if status in ("yellow", "green") else 408
                return self.answer(code, {"status": status, "timed_out": code != 200})
            if path.startswith("/_ilm/policy/"):
                name = path.rsplit("/", 1)[1]
                if name not in es.policies:
                    return self.answer(404, {"error": {"type": "resource_not_found_exception",
                                                       "reason": f"Lifecycle policy not found: "
                                                                 f"{name}"}, "status": 404})
                return self.answer(200, {name: {"version": 1, "modified_date": "x",
                                                "policy": es.policies[name]}})
            if path.startswith("/_index_template/"):
                name = path.rsplit("/", 1)[1]
                if name not in es.templates:
                    return self.answer(404, {"error": {"type": "resource_not_found_exception",
                                                       "reason": f"index template matching "
                                                                 f"[{name}] not found"},
                                             "status": 404})
                return self.answer(200, {"index_templates": [
                    {"name": name, "index_template": es.templates[name]}]})
            return self.answer(404, {"error": f"no handler for {path}"})

        def do_PUT(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            es.puts.append(self.path)
            if self.path in es.reject:
                return self.answer(*es.reject[self.path])
            name = self.path.rsplit("/", 1)[1]
            if self.path.startswith("/_ilm/policy/"):
                es.policies[name] = body["policy"]
            else:
                es.templates[name] = body
            return self.answer(200, {"acknowledged": True})

    return Handler


@pytest.fixture()
def es() -> Iterator[tuple[StandIn, str]]:
    stand_in = StandIn()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(stand_in))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stand_in, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_created_then_unchanged_then_updated(es: tuple[StandIn, str]) -> None:
    stand_in, url = es
    client = ElasticsearchClient(url)
    assert client.wait_healthy(timeout=5) == "yellow"
    assert client.apply_all(retention_requests(CFG, "s")) == [
        Applied("lifecycle policy hostctl-logs", "created"),
        Applied("index template hostctl-logs", "created")]
    assert stand_in.policies["hostctl-logs"]["phases"]["delete"]["min_age"] == "14d"
    assert [a.action for a in client.apply_all(retention_requests(CFG, "s"))] == [
        "unchanged", "unchanged"]
    assert len(stand_in.puts) == 2  # nothing was sent again
    longer = replace(CFG, retention_days=30)
    assert [a.action for a in client.apply_all(retention_requests(longer, "s"))] == [
        "updated", "updated"]
    assert stand_in.policies["hostctl-logs"]["phases"]["delete"]["min_age"] == "30d"


REJECTION = {
    "error": {
        "root_cause": [{"type": "illegal_argument_exception",
                        "reason": "unknown setting [index.lifecycle.nme]"}],
        "type": "illegal_argument_exception",
        "reason": "index_template [hostctl-logs] invalid, cause [Validation Failed: 1: unknown "
                  "setting [index.lifecycle.nme];]",
        "caused_by": {"type": "settings_exception", "reason": "unknown setting "
                                                              "[index.lifecycle.nme]"}},
    "status": 400,
}


def test_a_rejected_template_is_one_clear_line_with_elasticsearchs_reason(
        es: tuple[StandIn, str]) -> None:
    stand_in, url = es
    stand_in.reject["/_index_template/hostctl-logs"] = (400, REJECTION)
    client = ElasticsearchClient(url)
    with pytest.raises(ElasticsearchRejected) as caught:
        client.apply_all(retention_requests(CFG, "s"))
    assert str(caught.value) == (
        "Elasticsearch rejected index template hostctl-logs (HTTP 400): "
        "illegal_argument_exception: index_template [hostctl-logs] invalid, cause [Validation "
        "Failed: 1: unknown setting [index.lifecycle.nme];]")
    assert (caught.value.status, caught.value.error_type) == (400, "illegal_argument_exception")
    assert "hostctl-logs" in stand_in.policies  # the policy went in before the template failed


@pytest.mark.parametrize(("answer", "expected"), [
    (REJECTION, ("illegal_argument_exception", REJECTION["error"]["reason"])),  # type: ignore[index]
    ({"error": {"type": "x", "reason": "outer", "caused_by": {"type": "y", "reason": "inner"}}},
     ("x", "outer (caused by y: inner)")),
    ("<html>502 Bad Gateway</html>", ("error", "<html>502 Bad Gateway</html>")),
    ({"error": "a plain string"}, ("error", '{"error": "a plain string"}')),
    ("", ("error", "no details in the answer")),
])
def test_error_of(answer: Any, expected: tuple[str, str]) -> None:
    assert error_of(answer) == expected


def test_a_proxy_error_page_still_says_what_failed(es: tuple[StandIn, str]) -> None:
    stand_in, url = es
    stand_in.reject["/_ilm/policy/hostctl-logs"] = (502, "<html>502 Bad Gateway</html>")
    with pytest.raises(ElasticsearchRejected, match=r"^Elasticsearch rejected lifecycle policy "
                       r"hostctl-logs \(HTTP 502\): error: <html>502 Bad Gateway</html>$"):
        ElasticsearchClient(url).apply_all(retention_requests(CFG, "s"))


def test_unreachable_and_unhealthy_are_said_plainly(es: tuple[StandIn, str]) -> None:
    stand_in, url = es
    stand_in.health = ["red"]
    with pytest.raises(ElasticsearchError, match=r"^Elasticsearch at http://127\.0\.0\.1:\d+ "
                       r"not healthy after 1s: HTTP 408, status red$"):
        ElasticsearchClient(url).wait_healthy(timeout=1, every=0.2)
    stand_in.health = ["red", "green"]
    assert ElasticsearchClient(url).wait_healthy(timeout=5, every=0.1) == "green"
    with pytest.raises(ElasticsearchError, match=r"^cannot reach Elasticsearch at "
                       r"http://127\.0\.0\.1:1 \(lifecycle policy hostctl-logs\): "
                       r"ConnectionError$"):
        ElasticsearchClient("http://127.0.0.1:1", timeout=2).apply_all(
            retention_requests(CFG, "s"))


def test_retention_goes_through_the_logging_hosts_loopback(es: tuple[StandIn, str]) -> None:
    from hostctl.observability.retention import apply_retention
    from hostctl.runner.local import LocalRunner

    _, url = es
    port = int(url.rpartition(":")[2])
    cfg = replace(CFG, elasticsearch=replace(CFG.elasticsearch, port=port))
    assert [a.action for a in apply_retention(cfg, "s", LocalRunner("edge-1"), 5)] == [
        "created", "created"]
    external = replace(CFG, elasticsearch=replace(CFG.elasticsearch, url=url))
    # an external cluster keeps its own replica count: the template differs, the policy not
    assert [a.action for a in apply_retention(external, "s", None, 5)] == [
        "unchanged", "updated"]
