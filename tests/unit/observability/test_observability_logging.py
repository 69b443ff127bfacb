"""Log shipping, rendered: the gelf options of `docker run`, the Logstash pipeline and the
Elasticsearch requests (golden files), and the Logstash/Elasticsearch platform services.

HOSTCTL_UPDATE_GOLDEN=1 rewrites the golden copies under tests/golden/observability/.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path

import pytest

from hostctl.observability.elasticsearch import retention_requests
from hostctl.observability.logging_args import gelf_address, log_args
from hostctl.observability.pipeline import (
    UnsafeLogstashValue,
    logstash_string,
    render_pipeline,
)
from hostctl.observability.platform import logging_workloads
from hostctl.spec import model as m
from hostctl.spec.sections.logging import ElasticsearchSettings, LoggingConfig, LogstashSettings

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "observability"

INV = m.Inventory(file="site.yml", site="example-site", hosts={
    "edge-1": m.Host("edge-1", "10.20.0.10"),
    "app-1": m.Host("app-1", "10.20.0.11"),
    "v6-1": m.Host("v6-1", "fd00::5"),
}, image_source="push", lines={"logging": 30})
CFG = LoggingConfig(host="edge-1")
API = m.Workload(kind="service", name="triage-api", project="triage", image="app:1.0")


def golden(name: str, content: str) -> None:
    """Compare `content` with the golden file `name`, byte for byte."""
    path = GOLDEN / name
    if os.environ.get("HOSTCTL_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    assert path.read_text() == content, f"{name} differs; HOSTCTL_UPDATE_GOLDEN=1 rewrites it"


# -- docker run's logging options ----------------------------------------------------------

def test_without_a_logging_section_docker_keeps_no_log_the_units_journal_is_the_copy() -> None:
    # The attached `docker run` client's output is journalled as the unit's: Docker's
    # journald driver would store each line a second time.
    assert log_args(None, INV, API) == ["--log-driver", "none"]


def test_gelf_options_whole() -> None:
    assert log_args(CFG, INV, API) == [
        "--log-driver", "gelf",
        "--log-opt", "gelf-address=udp://10.20.0.10:12201",
        "--log-opt", "mode=non-blocking",
        "--log-opt", "max-buffer-size=1048576",
        "--log-opt", "tag={{.Name}}",
        "--log-opt", "labels=io.hostctl.site,io.hostctl.host,io.hostctl.project,"
                     "io.hostctl.workload,io.hostctl.kind,io.hostctl.instance,io.hostctl.run,"
                     "io.hostctl.spec-hash",
    ]


@pytest.mark.parametrize(("cfg", "address"), [
    (LoggingConfig(host="app-1", logstash=LogstashSettings(5000, "tcp")), "tcp://10.20.0.11:5000"),
    (LoggingConfig(host="v6-1"), "udp://[fd00::5]:12201"),
    (LoggingConfig(host="edge-1", logstash=LogstashSettings(address="logs.example.org")),
     "udp://logs.example.org:12201"),
])
def test_gelf_address(cfg: LoggingConfig, address: str) -> None:
    assert gelf_address(cfg, INV) == address


def test_logstash_and_elasticsearch_do_not_ship_their_own_logs_to_themselves() -> None:
    for w in logging_workloads(CFG, INV):
        assert log_args(CFG, INV, w) == ["--log-driver", "none"]


# -- the pipeline ----------------------------------------------------------------------------

def test_pipeline_per_project_index() -> None:
    golden("pipeline-per-project.conf", render_pipeline(CFG, INV.site).decode())


def test_pipeline_data_stream_to_an_external_elasticsearch() -> None:
    cfg = replace(CFG, index="data-stream", logstash=LogstashSettings(protocol="tcp"),
                  elasticsearch=ElasticsearchSettings(url="https://es.example.org:9200/"))
    golden("pipeline-data-stream.conf", render_pipeline(cfg, INV.site).decode())


def test_pipeline_is_the_same_bytes_every_time() -> None:
    assert render_pipeline(CFG, "s") == render_pipeline(LoggingConfig(host="edge-1"), "s")


# Logstash's `double_quoted_string` (logstash-core/lib/logstash/config/grammar.treetop):
#   '"' ( '\"' / !'"' . )* '"'
DOUBLE_QUOTED = re.compile(r'"((?:\\"|(?!").)*)"', re.DOTALL)
# What config.support_escapes=true then does to the text between the quotes
# (org.logstash.common.StringEscapeHelper MINIMAL): \" \' \\ \n \r \t \0
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "0": "\0"}


def unescaped(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), text, flags=re.S)


@pytest.mark.parametrize("value", [
    "http://es:9200", "https://[fd00::1]:9200/es%20x/", "example_site", "a'b", "x y%20z"])
def test_a_logstash_string_means_its_value_with_and_without_support_escapes(value: str) -> None:
    text = logstash_string(value)
    m_ = DOUBLE_QUOTED.match(text)
    assert m_ is not None and m_.end() == len(text)
    assert m_.group(1) == value and unescaped(m_.group(1)) == value


@pytest.mark.parametrize(("value", "held"), [
    ('http://es:9200"]}} filter { ruby { code => "system(1)" } }', '"'),
    ("http://es/a\\", "\\"), ("a\nb", "\n"), ("a\x7f", "\x7f"),
    ("http://es/${ES_PASSWORD}", "${"), ("logs-%{[host][name]}", "%{")])
def test_what_no_logstash_string_holds_safely_is_refused(value: str, held: str) -> None:
    with pytest.raises(UnsafeLogstashValue) as err:
        logstash_string(value)
    assert str(err.value) == (f"{value!r} cannot be written into a Logstash pipeline "
                              f"(it holds {held!r})")


def test_the_pipeline_refuses_an_unvalidated_url_instead_of_pasting_it() -> None:
    bad = replace(CFG, elasticsearch=ElasticsearchSettings(
        url='http://es:9200"]}} filter { ruby { code => "system(1)" } } output { x { y => ["'))
    with pytest.raises(UnsafeLogstashValue):
        render_pipeline(bad, INV.site)


def test_every_string_of_the_pipeline_is_one_grammar_string() -> None:
    """The external URL is the whole value of `hosts`, as Logstash's grammar reads it."""
    url = "https://es.example.org:9200/prefix%2Fx"
    cfg = replace(CFG, elasticsearch=ElasticsearchSettings(url=url))
    text = render_pipeline(cfg, INV.site).decode()
    line = next(li for li in text.splitlines() if "hosts =>" in li)
    assert [m_.group(1) for m_ in DOUBLE_QUOTED.finditer(line)] == [url]


# -- Elasticsearch requests ------------------------------------------------------------------

def _requests_json(cfg: LoggingConfig) -> str:
    return json.dumps([r.to_json() for r in retention_requests(cfg, INV.site)], indent=2) + "\n"


def test_elasticsearch_requests_per_project() -> None:
    golden("elasticsearch-per-project.json", _requests_json(replace(CFG, retention_days=30)))


def test_elasticsearch_requests_data_stream() -> None:
    cfg = replace(CFG, index="data-stream",
                  elasticsearch=ElasticsearchSettings(url="http://es:9200"))
    golden("elasticsearch-data-stream.json", _requests_json(cfg))


def test_retention_change_changes_the_hash_and_only_then() -> None:
    a = [r.digest for r in retention_requests(CFG, "s")]
    assert a == [r.digest for r in retention_requests(LoggingConfig(host="edge-1"), "s")]
    b = [r.digest for r in retention_requests(replace(CFG, retention_days=7), "s")]
    assert all(x != y for x, y in zip(a, b, strict=True))


# -- the platform services -------------------------------------------------------------------

def test_platform_services() -> None:
    ls, es = logging_workloads(CFG, INV)
    assert (ls.name, ls.project, ls.image, ls.placement.hosts, ls.image_source) == (
        "logging-logstash", "platform", "docker.elastic.co/logstash/logstash:8.15.3",
        ("edge-1",), "push")
    assert ls.ports["gelf"] == m.Port(12201, 12201, "udp")
    assert ls.volumes == (m.Volume("/etc/hostctl/logging/pipeline",
                                   "/usr/share/logstash/pipeline", read_only=True),)
    assert es.ports["api"] == m.Port(9200, 9200, bind="127.0.0.1")
    assert es.env["ES_JAVA_OPTS"] == "-Xms512m -Xmx512m"
    assert es.resources.memory == 2 * 512 * 1024**2 + 256 * 1024**2
    assert (ls.file, ls.line) == ("site.yml", 30)
    external = replace(CFG, elasticsearch=ElasticsearchSettings(url="http://es:9200"))
    assert [w.name for w in logging_workloads(external, INV)] == ["logging-logstash"]
    assert logging_workloads(None, INV) == []
