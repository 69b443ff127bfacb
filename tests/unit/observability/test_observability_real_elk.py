"""End to end through a real Logstash and Elasticsearch, when they can be had: environment
variables HOSTCTL_LOGSTASH_IMAGE and HOSTCTL_ELASTICSEARCH_IMAGE name images the local Docker
engine has (or `docker save` tarballs to load). Skipped, with the reason, otherwise.

On this machine's engine: Elasticsearch as hostctl runs it, hostctl's retention requests
applied by its client, Logstash with the rendered pipeline (checked first with
`logstash -t`), and a container with hostctl's gelf options whose lines must arrive as
documents with normalised fields, in the index (or data stream) of their project, under the
lifecycle policy. A template Elasticsearch refuses gives its reason in one line.
Every port is published on 127.0.0.1 only.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import requests

from hostctl.observability.elasticsearch import (
    ElasticsearchClient,
    ElasticsearchRejected,
    EsRequest,
    retention_requests,
)
from hostctl.observability.logging_args import log_args
from hostctl.observability.pipeline import render_pipeline
from hostctl.observability.platform import elasticsearch_workload
from hostctl.observability.shipping import parse_stats
from hostctl.render.docker_cmd import service_run_argv
from hostctl.sandbox import app_image
from hostctl.spec import model as m
from hostctl.spec.hashing import spec_hash
from hostctl.spec.placement import Instance
from hostctl.spec.sections.logging import ElasticsearchSettings, LoggingConfig, LogstashSettings
from tests.rigs.local_images import image_from_env
from tests.rigs.prometheus_server import wait_until

LOGSTASH_ENV = "HOSTCTL_LOGSTASH_IMAGE"
ELASTICSEARCH_ENV = "HOSTCTL_ELASTICSEARCH_IMAGE"
NETWORK = "hostctl-obs-elk-test"
LABEL = "io.hostctl.test=real-elk"
SITE = "elk-site"
PROJECT = "elkproj"


def _image(env: str, what: str) -> str:
    """The image to run, or skip with the reason."""
    return image_from_env(
        env, f"no {what} image on this machine: set {LOGSTASH_ENV} and {ELASTICSEARCH_ENV} "
        "to run through real Logstash and Elasticsearch (image references the local Docker "
        "engine has, or saved tarballs)", load_timeout=900)


def docker(*args: str, timeout: float = 300, check: bool = True) -> str:
    res = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {res.stdout}{res.stderr}")
    return res.stdout.strip()


def published(container: str, port: str) -> int:
    return int(docker("port", container, port).splitlines()[0].rpartition(":")[2])


@dataclass
class Elk:
    es_url: str
    logstash_image: str
    workdir: Path

    def search(self, index: str, nonce: str) -> list[dict[str, Any]]:
        r = requests.get(f"{self.es_url}/{index}/_search", timeout=10,
                         params={"q": f'message:"{nonce}"', "size": "10"},
                         proxies={"http": "", "https": ""})
        if r.status_code == 404:
            return []
        r.raise_for_status()
        return list(r.json()["hits"]["hits"])


@pytest.fixture(scope="module")
def elk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Elk]:
    ls_image = _image(LOGSTASH_ENV, "Logstash")
    es_image = _image(ELASTICSEARCH_ENV, "Elasticsearch")
    work = tmp_path_factory.mktemp("elk")
    docker("network", "create", "--label", LABEL, NETWORK, check=False)
    inv = m.Inventory(file="site.yml", site=SITE, hosts={"h": m.Host("h", "127.0.0.1")})
    es = elasticsearch_workload(LoggingConfig(host="h"), inv)
    env = [arg for k, v in sorted(es.env.items()) for arg in ("--env", f"{k}={v}")]
    docker("run", "-d", "--name", "hostctl-elk-es", "--label", LABEL, "--network", NETWORK,
           "--network-alias", "es", "--memory", "2g", "-p", "127.0.0.1::9200", *env, es_image)
    try:
        url = f"http://127.0.0.1:{published('hostctl-elk-es', '9200/tcp')}"
        ElasticsearchClient(url).wait_healthy(timeout=240, every=3)
        yield Elk(url, ls_image, work)
    finally:
        for name in ("hostctl-elk-es", "hostctl-elk-logstash", "hostctl-elk-app-1"):
            docker("rm", "-f", name, check=False)
        docker("network", "rm", NETWORK, check=False)


def start_logstash(elk: Elk, cfg: LoggingConfig) -> int:
    """Logstash with the rendered pipeline; its GELF UDP port on 127.0.0.1."""
    pipeline = elk.workdir / cfg.index / "pipeline"
    pipeline.mkdir(parents=True, exist_ok=True)
    (pipeline / "hostctl.conf").write_bytes(render_pipeline(cfg, SITE))
    mount = f"{pipeline}:/usr/share/logstash/pipeline:ro"
    syntax = subprocess.run(["docker", "run", "--rm", "-v", mount, "-e",
                             "XPACK_MONITORING_ENABLED=false", elk.logstash_image, "logstash",
                             "-t", "-f", "/usr/share/logstash/pipeline/hostctl.conf"],
                            capture_output=True, text=True, timeout=300)
    assert syntax.returncode == 0, syntax.stdout[-3000:] + syntax.stderr[-3000:]
    docker("rm", "-f", "hostctl-elk-logstash", check=False)
    docker("run", "-d", "--name", "hostctl-elk-logstash", "--label", LABEL, "--network",
           NETWORK, "-v", mount, "-e", "XPACK_MONITORING_ENABLED=false", "-e",
           "LS_JAVA_OPTS=-Xms256m -Xmx256m", "-p", "127.0.0.1::12201/udp",
           "-p", "127.0.0.1::9600", elk.logstash_image)
    api = f"http://127.0.0.1:{published('hostctl-elk-logstash', '9600/tcp')}"

    def running() -> bool:
        try:
            r = requests.get(f"{api}/_node/pipelines", timeout=5, proxies={"http": ""})
            return r.status_code == 200 and "main" in r.json().get("pipelines", {})
        except requests.RequestException:
            return False
    wait_until(running, 240, every=2.0, what="Logstash pipeline running")
    return published("hostctl-elk-logstash", "12201/udp")


def run_app(port: int, cfg: LoggingConfig, nonce: str) -> m.Workload:
    app_image.build("1.0")
    docker("network", "create", f"hostctl-{PROJECT}", check=False)
    host = m.Host("h", "127.0.0.1")
    inv = m.Inventory(file="site.yml", site=SITE, hosts={"h": host})
    w = m.Workload(kind="service", name="elk-app", project=PROJECT,
                   image="hostctl-demo-app:1.0",
                   command=("sh", "-c", f"echo hello-{nonce}; echo oops-{nonce} >&2; sleep 2"))
    local = replace(cfg, logstash=LogstashSettings(port=port, address="127.0.0.1"))
    argv = service_run_argv(Instance(w, host, 1), SITE)
    at = argv.index("--log-driver")
    argv[at:at + 2] = log_args(local, inv, w)
    docker("rm", "-f", "hostctl-elk-app-1", check=False)
    subprocess.run(["docker", "run", "--detach", *argv[2:]], check=True, timeout=120,
                   capture_output=True)
    return w


@pytest.mark.parametrize("mode", ["per-project", "data-stream"])
def test_container_lines_reach_elasticsearch_with_hostctls_fields(elk: Elk, mode: str) -> None:
    cfg = LoggingConfig(host="h", index=mode, retention_days=3,
                        elasticsearch=ElasticsearchSettings(url="http://es:9200"))
    client = ElasticsearchClient(elk.es_url)
    reqs = retention_requests(cfg, SITE)
    assert {a.action for a in client.apply_all(reqs)} <= {"created", "updated"}
    assert [a.action for a in client.apply_all(reqs)] == ["unchanged", "unchanged"]
    port = start_logstash(elk, cfg)
    nonce = uuid.uuid4().hex[:10]
    w = run_app(port, cfg, nonce)
    index = f"hostctl-logs-{PROJECT}-*" if mode == "per-project" else \
        f"logs-hostctl.{PROJECT}-{SITE.replace('-', '_')}"
    hits = wait_until(lambda: (lambda found: found if len(found) >= 2 else None)(
        elk.search(index, nonce)), 180, every=2.0, what=f"two documents in {index}")
    by_message = {h["_source"]["message"]: h["_source"] for h in hits}
    out = by_message[f"hello-{nonce}"]
    assert (out["host"]["name"], out["service"]["name"], out["log"]["level"]) == (
        "h", "elk-app", "info")
    assert {k: out["hostctl"].get(k) for k in ("site", "project", "kind", "instance",
                                               "spec_hash", "tag")} == {
        "site": SITE, "project": PROJECT, "kind": "service", "instance": "1",
        "spec_hash": spec_hash(w), "tag": "hostctl-elk-app-1"}
    assert by_message[f"oops-{nonce}"]["log"]["level"] == "error"
    # Logstash's counters as `hostctl status` reads them (shipping.parse_stats)
    api = f"http://127.0.0.1:{published('hostctl-elk-logstash', '9600/tcp')}"
    stats = parse_stats(requests.get(f"{api}/_node/stats/pipelines", timeout=10,
                                     proxies={"http": ""}).text)
    assert stats is not None and stats.events_in >= 2 and stats.documents >= 2, stats
    settings = requests.get(f"{elk.es_url}/{index}/_settings", timeout=10,
                            proxies={"http": ""}).json()
    assert {s["settings"]["index"]["lifecycle"]["name"] for s in settings.values()} == {
        "hostctl-logs"}


def test_a_template_elasticsearch_refuses_says_why(elk: Elk) -> None:
    bad = EsRequest("index template hostctl-broken", "/_index_template/hostctl-broken", {
        "index_patterns": ["hostctl-broken-*"],
        "template": {"mappings": {"properties": {"a": {"type": "no_such_type"}}}},
        "_meta": {"hostctl_hash": "x"}})
    with pytest.raises(ElasticsearchRejected) as caught:
        ElasticsearchClient(elk.es_url).apply(bad)
    assert str(caught.value).startswith("Elasticsearch rejected index template hostctl-broken "
                                        "(HTTP 400): mapper_parsing_exception: ")
    assert "no_such_type" in caught.value.reason  # Elasticsearch's own words
