"""The inventory's logging and metrics sections: annotated examples, schema, cross-checks."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from hostctl.errors import ConfigError
from hostctl.spec.model import Site
from hostctl.spec.sections.logging import (
    DEFAULT_ELASTICSEARCH_IMAGE,
    DEFAULT_LOGSTASH_IMAGE,
    URL_HINT,
    ElasticsearchSettings,
    LoggingConfig,
    LoggingImages,
    LogstashSettings,
)
from hostctl.spec.sections.metrics import (
    ExporterSettings,
    MetricsConfig,
    Prices,
    PrometheusSettings,
    device_models,
)
from hostctl.spec.sections.observability import check_observability
from hostctl.validate import load_site
from tests.rigs.site_factory import OBS_INVENTORY, SERVICE, made_site, make_site

REPO = Path(__file__).resolve().parents[3]
LOGGING_EXAMPLE = REPO / "logging" / "logging.example.yml"
METRICS_EXAMPLE = REPO / "logging" / "metrics.example.yml"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # messages name files relative to where the operator stands


def site_with(root: Path, sections: str, specs: dict[str, str] | None = None) -> Site:
    inventory = OBS_INVENTORY + textwrap.dedent(sections)
    return made_site(root, specs or {"api.yml": SERVICE}, inventory,
                     environ={})


def problems(root: Path, sections: str, specs: dict[str, str] | None = None) -> list[str]:
    """The problems of a site, whether the loader finds them (once it checks these sections
    itself: see the proposed integration) or check_observability does afterwards."""
    try:
        site = site_with(root, sections, specs)
    except ConfigError as err:
        return [str(p) for p in err.problems]
    return [str(p) for p in check_observability(site.inventory, list(site.workloads))]


# -- the annotated examples -----------------------------------------------------------------

def test_logging_example_validates_and_means_what_it_says(tmp_path: Path) -> None:
    site = site_with(tmp_path, LOGGING_EXAMPLE.read_text())
    cfg = site.inventory.logging
    assert problems(tmp_path, LOGGING_EXAMPLE.read_text()) == []
    assert cfg is not None
    assert (cfg.file, cfg.lines["logging/host"]) == ("site.yml", 19)
    assert cfg == LoggingConfig(
        host="edge-1", logstash=LogstashSettings(12201, "udp"),
        elasticsearch=ElasticsearchSettings(port=9200, heap=512 * 1024**2),
        images=LoggingImages(DEFAULT_LOGSTASH_IMAGE, DEFAULT_ELASTICSEARCH_IMAGE),
        image_source="push", retention_days=14, index="per-project", buffer_size=1024**2,
        file=cfg.file, lines=cfg.lines)


def test_metrics_example_validates_and_means_what_it_says(tmp_path: Path) -> None:
    site = site_with(tmp_path, METRICS_EXAMPLE.read_text())
    cfg = site.inventory.metrics
    assert problems(tmp_path, METRICS_EXAMPLE.read_text()) == []
    assert cfg is not None
    assert cfg == MetricsConfig(
        exporter=ExporterSettings(9477, "0.0.0.0", 5.0),
        prices=Prices("EUR", 0.04, 1.2),
        prometheus=PrometheusSettings(15.0, 10.0), file=cfg.file, lines=cfg.lines)


def test_absent_or_empty_sections_mean_off(tmp_path: Path) -> None:
    site = site_with(tmp_path, "logging: {}\nmetrics:\n")
    assert site.inventory.logging is None
    assert site.inventory.metrics is None
    assert check_observability(site.inventory, list(site.workloads)) == []


def test_defaults_from_the_smallest_sections(tmp_path: Path) -> None:
    site = site_with(tmp_path, "logging: {host: app-1}\nmetrics: {exporter: {port: 9100}}\n")
    log, met = site.inventory.logging, site.inventory.metrics
    assert log is not None and met is not None
    assert (log.logstash, log.elasticsearch, log.images, log.index, log.retention_days) == (
        LogstashSettings(), ElasticsearchSettings(), LoggingImages(), "per-project", 14)
    assert log.managed_elasticsearch
    assert (met.prices, met.prometheus.timeout) == (None, 10.0)
    short = site_with(tmp_path / "b", "metrics: {prometheus: "
                                      "{scrape_interval: 5s}}\n").inventory.metrics
    assert short is not None and short.prometheus.timeout == 5.0


# -- errors: input -> exact message ---------------------------------------------------------

INJECTED = ('http://es:9200"]}} filter { ruby { code => "system(1)" } } '
            'output { elasticsearch { hosts => ["http://es')

ERRORS = [
    ("logging: {hots: edge-1}",
     ["site.yml:8: logging: missing required key 'host'",
      "site.yml:8: logging/hots: unknown key 'hots'; did you mean 'host'? (known: "
      "buffer_size, elasticsearch, host, image_source, images, index, logstash, "
      "retention_days)"]),
    ("logging: {host: edge-1, index: per-day}",
     ["site.yml:8: logging/index: 'per-day' is not one of: per-project, data-stream"]),
    ("logging: {host: edge-1, retention_days: 0}",
     ["site.yml:8: logging/retention_days: must be at least 1, got 0"]),
    ("logging: {host: edge-1, buffer_size: 1k}",
     ["site.yml:8: logging/buffer_size: must be at least 65536 bytes, got 1k"]),
    ("logging: {host: edge-1, logstash: {protocol: http}}",
     ["site.yml:8: logging/logstash/protocol: 'http' is not one of: udp, tcp"]),
    ("logging: {host: edge-1, elasticsearch: {url: es.example.org}}",
     ["site.yml:8: logging/elasticsearch/url: 'es.example.org' is not valid: " + URL_HINT]),
    # Written into the Logstash pipeline: nothing that could end its string or be
    # substituted there (issue 10 #18: this one added a ruby filter to the pipeline).
    ("logging: {host: edge-1, elasticsearch: {url: '" + INJECTED + "'}}",
     ["site.yml:8: logging/elasticsearch/url: 'http://es:9200\"]}} filter { ruby { code => "
      "\"system(1)\" } ...' is not valid: " + URL_HINT]),
    ("logging: {host: edge-1, elasticsearch: {url: 'http://es:9200/a\\'}}",
     ["site.yml:8: logging/elasticsearch/url: 'http://es:9200/a\\' is not valid: "
      + URL_HINT]),
    ("logging: {host: edge-1, elasticsearch: {url: 'http://es:9200/${ES_PASSWORD}'}}",
     ["site.yml:8: logging/elasticsearch/url: 'http://es:9200/${ES_PASSWORD}' is not valid: "
      + URL_HINT]),
    ("logging: {host: edge-1, elasticsearch: {url: 'http://es:9200/%{[host][name]}'}}",
     ["site.yml:8: logging/elasticsearch/url: 'http://es:9200/%{[host][name]}' is not "
      "valid: " + URL_HINT]),
    ("logging: {host: edge-1, elasticsearch: {url: 'http://elastic:secret@es:9200'}}",
     ["site.yml:8: logging/elasticsearch/url: 'http://elastic:secret@es:9200' is not valid: "
      + URL_HINT]),
    ("logging: {host: edge-1, elasticsearch: {url: 'http://es:9200/?refresh=true'}}",
     ["site.yml:8: logging/elasticsearch/url: 'http://es:9200/?refresh=true' is not valid: "
      + URL_HINT]),
    ("logging: {host: edge-1, elasticsearch: {url: 'http://es:92000'}}",
     ["site.yml:8: logging/elasticsearch/url: 'http://es:92000' is not valid: " + URL_HINT]),
    # The URL's host follows the host address rule.
    ("logging: {host: edge-1, elasticsearch: {url: 'http://[:::1]:9200'}}",
     ["site.yml:8: logging/elasticsearch/url: 'http://[:::1]:9200' is not valid: its host "
      "':::1' is not an IPv6 address"]),
    ("logging: {host: edge-1, elasticsearch: {url: 'https://10.0.0.300:9200/es'}}",
     ["site.yml:8: logging/elasticsearch/url: 'https://10.0.0.300:9200/es' is not valid: its "
      "host '10.0.0.300' is not a valid IPv4 address (four numbers 0..255)"]),
    ("logging: {host: edge-1, elasticsearch: {url: 'http://[fd00::9]:9200'}}", []),
    ("logging: {host: edge-1, images: {logstash: 'Logstash:latest!'}}",
     ["site.yml:8: logging/images/logstash: 'Logstash:latest!' is not valid: give a pinned "
      "image reference such as docker.elastic.co/logstash/logstash:8.15.3"]),
    ("logging: {host: edge-2}",
     ["site.yml:8: logging/host: no host 'edge-2' in site.yml; did you mean 'edge-1'? "
      "(known: edge-1, app-1, gpu-1)"]),
    ("metrics: {prices: {cpu_hour: 0.1}}",
     ["site.yml:8: metrics/prices: missing required key 'currency'"]),
    ("metrics: {prices: {currency: euro, cpu_hour: -1}}",
     ["site.yml:8: metrics/prices/cpu_hour: must be at least 0, got -1",
      "site.yml:8: metrics/prices/currency: 'euro' is not valid: give an ISO 4217 code "
      "such as EUR or USD"]),
    ("metrics: {prices: {currency: EUR}}",
     ["site.yml:8: metrics/prices: names a currency but no price: add cpu_hour and/or "
      "gpu_hour, or remove prices"]),
    ("metrics: {prometheus: {scrape_interval: 5s, scrape_timeout: 10s}}",
     ["site.yml:8: metrics/prometheus/scrape_timeout: 10s is longer than scrape_interval "
      "(5s); Prometheus refuses that: make it shorter"]),
    ("metrics: {exporter: {sample_interval: 100ms}}",
     ["site.yml:8: metrics/exporter/sample_interval: must be at least 1s, got 100ms"]),
    ("logging: {host: edge-1, buffer_size: 2Gi, elasticsearch: {heap: 65Gi}}",
     ["site.yml:8: logging/buffer_size: must be at most 1073741824 bytes, got '2Gi'",
      "site.yml:8: logging/elasticsearch/heap: must be at most 68719476736 bytes, got "
      "'65Gi'"]),
    ("logging: {host: edge-1, images: {logstash: 'Elastic/logstash:8'}}",
     ["site.yml:8: logging/images/logstash: 'Elastic/logstash:8' is not valid: the "
      "repository name must be lowercase (only a registry, such as Registry.example.org, "
      "may have capitals)"]),
    ("metrics: {exporter: {sample_interval: 6m}}",
     ["site.yml:8: metrics/exporter/sample_interval: must be at most 5m, got '6m'"]),
    # One address on every host: a specific one exists on one host at most.
    ("metrics: {exporter: {listen: 10.0.0.1}}",
     ["site.yml:8: metrics/exporter/listen: '10.0.0.1' is one host's address, and the "
      "exporter binds this address on every host, where the others have no such address: "
      "give 0.0.0.0 or :: (every address), or 127.0.0.1 (the host only)"]),
    ("metrics: {exporter: {listen: '-0.0.0.0'}}",
     ["site.yml:8: metrics/exporter/listen: '-0.0.0.0' is not an IP address: give 0.0.0.0 "
      "(every IPv4 address), :: (every address) or 127.0.0.1 (the host only)"]),
    ("metrics: {exporter: {listen: 999.0.0.0}}",
     ["site.yml:8: metrics/exporter/listen: '999.0.0.0' is not an IP address: give 0.0.0.0 "
      "(every IPv4 address), :: (every address) or 127.0.0.1 (the host only)"]),
    ("metrics: {exporter: {listen: localhost}}",
     ["site.yml:8: metrics/exporter/listen: 'localhost' is not an IP address: give 0.0.0.0 "
      "(every IPv4 address), :: (every address) or 127.0.0.1 (the host only)"]),
    ("metrics: {exporter: {listen: '::'}}", []),
    ("metrics: {exporter: {listen: '::1'}}", []),
    ("metrics: {exporter: {listen: 127.0.0.1}}", []),
    ("logging: {host: edge-1, logstash: {address: '-logs.example.org'}}",
     ["site.yml:8: logging/logstash/address: '-logs.example.org' is not an IP address or "
      "DNS name: give an address such as 10.0.0.11 or fd00::11, or a name such as "
      "app-1.example.org (letters, digits, '-' and '.', no leading '-')"]),
    ("logging: {host: edge-1, logstash: {address: 10.0.0.256}}",
     ["site.yml:8: logging/logstash/address: '10.0.0.256' is not a valid IPv4 address "
      "(four numbers 0..255)"]),
    ("logging: {host: edge-1, logstash: {address: 'fd00::9'}}", []),
    ("logging: {host: edge-1, logstash: {address: 'fe80::9%eth0'}}",
     ["site.yml:8: logging/logstash/address: 'fe80::9%eth0' has a zone ('%'), which Docker's "
      "gelf-address URL cannot hold (Docker refuses it when a container is created): give "
      "the address without it, or a DNS name"]),
    # Prometheus's durations are whole units (ms at the finest), and a scrape rarer than
    # its staleness (5m) leaves gaps: at most 1h, documented.
    ("metrics: {prometheus: {scrape_interval: 1.0005s}}",
     ["site.yml:8: metrics/prometheus/scrape_interval: 1.0005s is not a whole number of "
      "milliseconds, the finest unit Prometheus takes: round it, e.g. 1500ms"]),
    ("metrics: {prometheus: {scrape_interval: 2h, scrape_timeout: 90m}}",
     ["site.yml:8: metrics/prometheus/scrape_interval: must be at most 1h, got '2h'",
      "site.yml:8: metrics/prometheus/scrape_timeout: must be at most 1h, got '90m'"]),
    ("metrics: {prometheus: {scrape_interval: 1500ms, scrape_timeout: 1s}}", []),
    # Platform images pushed by digest: docker load brings no digests along.
    ("image_source: push\nlogging: {host: edge-1, images: {logstash: 'logstash@sha256:"
     + "0" * 64 + "'}}",
     ["site.yml:9: logging/images/logstash: 'logstash@sha256:" + "0" * 41 + "...' names "
      "its image by digest, and image_source is push (in site.yml): docker load brings no "
      "digests to the host, so the image could not be found there; push it by tag "
      "(name:tag, without @sha256:...), or set image_source: pull"]),
    ("logging: {host: edge-1, image_source: pull, images: {logstash: 'logstash@sha256:"
     + "0" * 64 + "'}}", []),
]


@pytest.mark.parametrize(("section", "expected"), ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_name_file_line_path_and_fix(tmp_path: Path, section: str,
                                            expected: list[str]) -> None:
    assert sorted(problems(tmp_path, section + "\n")) == sorted(expected)


def test_the_logging_hosts_zoned_address_is_no_gelf_address(tmp_path: Path) -> None:
    """Without logging/logstash/address containers send to the logging host's address, and
    dockerd refuses a zone in gelf-address (`invalid URL escape "%et"`)."""
    inventory = OBS_INVENTORY.replace("10.0.0.9", "'fe80::9%eth0'")
    make_site(tmp_path, {"api.yml": SERVICE}, inventory + "logging: {host: edge-1}\n")
    with pytest.raises(ConfigError) as err:
        load_site(str(tmp_path / "site.yml"), environ={})
    assert [str(p) for p in err.value.problems] == [
        "site.yml:8: logging/host: containers send their logs to edge-1's address "
        "'fe80::9%eth0', which has a zone ('%'), which Docker's gelf-address URL cannot hold "
        "(Docker refuses it when a container is created): set logging/logstash/address to one "
        "without it, or a DNS name"]


def test_a_spec_may_not_take_a_logging_service_name(tmp_path: Path) -> None:
    spec = SERVICE.replace("name: api", "name: logging-logstash")
    assert problems(tmp_path, "logging: {host: edge-1}\n", {"api.yml": spec}) == [
        "specs/api.yml:2: name: 'logging-logstash' is the name of a service hostctl runs for "
        "the logging section of the inventory; give this service another name"]
    external = "logging: {host: edge-1, elasticsearch: {url: 'http://es:9200'}}\n"
    spec = SERVICE.replace("name: api", "name: logging-elasticsearch")
    assert problems(tmp_path / "b", external, {"api.yml": spec}) == []


# -- platform ports: a service may not publish one (issue 10 #19) ----------------------------

METRICS_ON = "metrics: {prometheus: {scrape_interval: 15s}}"  # the exporter on 9477


def _service_on(host: str, port: str) -> dict[str, str]:
    return {"api.yml": SERVICE.replace("{container: 8080, host: 18080}", port)
            .replace("hosts: [app-1]", f"hosts: [{host}]")}


PORT_CLASHES = [
    (METRICS_ON, "app-1", "{container: 8080, host: 9477}",
     ["specs/api.yml:6: ports/http/host: host port 9477/tcp on app-1 is taken by hostctl's "
      "exporter (metrics/exporter/port in site.yml); pick another host port, or change "
      "metrics/exporter/port"]),
    ("metrics: {exporter: {port: 9100}}", "app-1", "{container: 8080, host: 9100}",
     ["specs/api.yml:6: ports/http/host: host port 9100/tcp on app-1 is taken by hostctl's "
      "exporter (metrics/exporter/port in site.yml); pick another host port, or change "
      "metrics/exporter/port"]),
    ("metrics: {exporter: {listen: 127.0.0.1}}", "app-1",
     "{container: 8080, host: 9477, bind: 10.0.0.1}", []),
    ("logging: {host: app-1}", "app-1", "{container: 8080, host: 12201, protocol: udp}",
     ["specs/api.yml:6: ports/http/host: host port 12201/udp on app-1 is taken by Logstash's "
      "GELF input (logging/logstash/port in site.yml); pick another host port, or change "
      "logging/logstash/port"]),
    ("logging: {host: app-1}", "app-1", "{container: 8080, host: 12201}", []),
    ("logging: {host: edge-1}", "app-1", "{container: 8080, host: 12201, protocol: udp}", []),
    ("logging: {host: app-1}", "app-1", "{container: 8080, host: 9200}",
     ["specs/api.yml:6: ports/http/host: host port 9200/tcp on app-1 is taken by hostctl's "
      "Elasticsearch (logging/elasticsearch/port in site.yml); pick another host port, or "
      "change logging/elasticsearch/port"]),
    ("logging: {host: app-1}", "app-1", "{container: 8080, host: 9200, bind: 10.0.0.1}", []),
    ("logging: {host: app-1, elasticsearch: {url: 'http://es:9200'}}", "app-1",
     "{container: 8080, host: 9200}", []),
    # instances count up from the host port: the second one lands on the exporter's
    (METRICS_ON, "app-1", "{container: 8080, host: 9476}\ninstances: 2",
     ["specs/api.yml:6: ports/http/host: host port 9477/tcp on app-1 is taken by hostctl's "
      "exporter (metrics/exporter/port in site.yml); pick another host port, or change "
      "metrics/exporter/port"]),
]


@pytest.mark.parametrize(("sections", "host", "port", "expected"), PORT_CLASHES,
                         ids=[f"{c[0]} {c[2]}" for c in PORT_CLASHES])
def test_a_service_may_not_publish_a_platform_port(tmp_path: Path, sections: str, host: str,
                                                   port: str, expected: list[str]) -> None:
    assert problems(tmp_path, sections + "\n", _service_on(host, port)) == expected


PLATFORM_CLASHES = [
    ("logging: {host: edge-1}\nmetrics: {exporter: {port: 9200}}",
     ["site.yml:9: metrics/exporter/port: port 9200/tcp on edge-1 is also taken by hostctl's "
      "Elasticsearch (logging/elasticsearch/port); give each its own port"]),
    ("logging: {host: edge-1, elasticsearch: {port: 9477}}\n" + METRICS_ON,
     ["site.yml:8: logging/elasticsearch/port: port 9477/tcp on edge-1 is also taken by "
      "hostctl's exporter (metrics/exporter/port); give each its own port"]),
    ("logging: {host: edge-1, logstash: {port: 9477}}\n" + METRICS_ON, []),  # udp and tcp
    ("gateway: {hosts: [edge-1], admin_port: 9477}\n" + METRICS_ON,
     ["site.yml:9: metrics/exporter/port: port 9477/tcp on edge-1 is also taken by Kong's "
      "Admin API (gateway/admin_port); give each its own port"]),
    ("gateway: {hosts: [edge-1], proxy: {http: 9200}}\nlogging: {host: edge-1}",
     ["site.yml:9: logging/elasticsearch/port: port 9200/tcp on edge-1 is also taken by "
      "Kong's HTTP proxy (gateway/proxy/http); give each its own port"]),
]


@pytest.mark.parametrize(("sections", "expected"), PLATFORM_CLASHES,
                         ids=[c[0] for c in PLATFORM_CLASHES])
def test_two_platform_services_may_not_share_a_port(tmp_path: Path, sections: str,
                                                    expected: list[str]) -> None:
    assert problems(tmp_path, sections + "\n") == expected


# -- prices per GPU model -------------------------------------------------------------------

# gpu-1's two GPUs are named by model; app-1 gets a GPU of no model where a case adds it.
MODELLED = OBS_INVENTORY.replace("gpus: 2", "gpus: [{model: a100-80g, count: 1}, "
                                            "{model: l4, count: 1}]")
UNMODELLED_APP = MODELLED.replace("labels: {role: app}", "labels: {role: app}, gpus: 1")


def priced(by_model: str, more: str = "") -> str:
    return ("metrics:\n  prices:\n    currency: EUR\n" + more
            + f"    gpu_hour_by_model: {by_model}\n")


MODEL_PRICE_ERRORS = [
    (MODELLED, priced("{a100-80g: 3.2, l4: 0.8}"), []),
    # models priced, no gpu_hour: fine while every GPU has a priced model
    (MODELLED, priced("{a100-80g: 3.2}", "    gpu_hour: 1.5\n"), []),
    (MODELLED, priced("{a100-80g: 3.2}"),
     ["site.yml:11: metrics/prices/gpu_hour_by_model: the GPUs of model 'l4' on gpu-1 have "
      "no price: set gpu_hour (the price of a GPU of no listed model), or add l4 to "
      "gpu_hour_by_model"]),
    (UNMODELLED_APP, priced("{a100-80g: 3.2, l4: 0.8}"),
     ["site.yml:11: metrics/prices/gpu_hour_by_model: the GPUs of no model on app-1 have no "
      "price: set gpu_hour (the price of a GPU of no listed model), or declare their models "
      "under the hosts' gpus:"]),
    (UNMODELLED_APP, priced("{a100-80g: 3.2, l4: 0.8}", "    gpu_hour: 1.5\n"), []),
    (MODELLED, priced("{a100-80g: 3.2, l4: 0.8, l40: 1}"),
     ["site.yml:11: metrics/prices/gpu_hour_by_model/l40: no host declares GPUs of model "
      "'l40'; did you mean 'l4'? (declared: a100-80g, l4): fix the name, or declare the "
      "model under a host's gpus: in site.yml"]),
    (OBS_INVENTORY, priced("{l4: 0.8}", "    gpu_hour: 1\n"),
     ["site.yml:12: metrics/prices/gpu_hour_by_model/l4: no host declares GPUs of model "
      "'l4' (no host declares a GPU model): fix the name, or declare the model under a "
      "host's gpus: in site.yml"]),
    (MODELLED, priced("{a100-80g: 0, l4: -1}", "    gpu_hour: 1\n"),
     ["site.yml:12: metrics/prices/gpu_hour_by_model/a100-80g: must be more than 0, got 0: "
      "give the price of one GPU of this model for an hour, or leave the model out",
      "site.yml:12: metrics/prices/gpu_hour_by_model/l4: must be more than 0, got -1: give "
      "the price of one GPU of this model for an hour, or leave the model out"]),
    (MODELLED, priced("{A100: 3, l4: cheap}", "    gpu_hour: 1\n"),
     ["site.yml:12: metrics/prices/gpu_hour_by_model/A100: 'A100' is not valid: GPU model "
      "names are lower-case letters, digits, '.' and '-', starting with a letter or digit "
      "(e.g. a100-80g, l4)",
      "site.yml:12: metrics/prices/gpu_hour_by_model/l4: expected a number, got 'cheap'"]),
    (MODELLED, priced("[a100-80g, l4]", "    gpu_hour: 1\n"),
     ["site.yml:12: metrics/prices/gpu_hour_by_model: expected a mapping, got a list"]),
]


@pytest.mark.parametrize(("inventory", "section", "expected"), MODEL_PRICE_ERRORS,
                         ids=[f"{i}-{e[1].splitlines()[-1].strip()}"
                              for i, e in enumerate(MODEL_PRICE_ERRORS)])
def test_prices_per_gpu_model(tmp_path: Path, inventory: str, section: str,
                              expected: list[str]) -> None:
    try:
        site = made_site(tmp_path, {"api.yml": SERVICE}, inventory + section, environ={})
    except ConfigError as err:
        got = [str(p) for p in err.problems]
    else:
        got = [str(p) for p in check_observability(site.inventory, list(site.workloads))]
    assert sorted(got) == sorted(expected)


def test_model_prices_read_back_and_reach_the_exporter_and_runs_alike(tmp_path: Path) -> None:
    site = made_site(tmp_path, {"api.yml": SERVICE}, MODELLED + priced(
        "{l4: 0.8, a100-80g: 3.2}", "    gpu_hour: 1.5\n"), environ={})
    met = site.inventory.metrics
    assert met is not None and met.prices == Prices(
        "EUR", None, 1.5, {"a100-80g": 3.2, "l4": 0.8})
    assert met.prices.table() == {"currency": "EUR", "gpu_hour": 1.5,
                                  "gpu_hour_by_model": {"a100-80g": 3.2, "l4": 0.8}}
    assert Prices("EUR", 0.04).table() == {"currency": "EUR", "cpu_hour": 0.04}
    assert device_models(site.inventory.hosts.values()) == {
        "gpu-1": {"0": "a100-80g", "1": "l4"}}


def test_the_metrics_examples_model_prices_validate_on_a_site_with_those_models(
        tmp_path: Path) -> None:
    """The example leaves gpu_hour_by_model commented out (its site names no models): with
    the line in, on hosts naming those models, it validates and means what it says."""
    text = METRICS_EXAMPLE.read_text()
    line = "    # gpu_hour_by_model: {a100-80g: 3.20, l4: 0.80}\n"
    assert line in text
    site = made_site(tmp_path, {"api.yml": SERVICE},
                     MODELLED + text.replace(line, line.replace("# ", "", 1)), environ={})
    met = site.inventory.metrics
    assert met is not None and met.prices == Prices("EUR", 0.04, 1.2,
                                                    {"a100-80g": 3.2, "l4": 0.8})
    assert check_observability(site.inventory, list(site.workloads)) == []
