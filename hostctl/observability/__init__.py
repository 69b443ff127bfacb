"""Observability: log shipping (gelf -> Logstash -> Elasticsearch), the per-host metrics
exporter, and the Prometheus/Grafana files rendered from the inventory and specs.

    log, met = inv.logging, inv.metrics      # typed by the loader; None: section absent/empty
    log_args(log, inv, w)                    # docker run's logging words (journald w/o log)
    logging_workloads(log, inv)              # Logstash/Elasticsearch as platform services
    host_files(site, host)                   # exporter bundle+config+unit, the pipeline
    site_files(site)                         # prometheus/, grafana/, logging/ for render
    ElasticsearchClient(url).apply_all(retention_requests(log, site_name))
    shipping_state(log, drivers, logstash_running, stats, earlier)   # for status

The exporter itself (exporter.py, exporter_sources.py, exporter_audit.py) runs on hosts
from a zipapp and uses only the standard library, prometheus_client and hostctl.hosts.health_verdict
(the health rule it shares with `hostctl status`).
"""

# Loaded on first use (hostctl.lazy): importing hostctl.observability for its inventory
# sections must not pull in its heavy modules, which every command would pay for at start-up.
from __future__ import annotations

from typing import TYPE_CHECKING

from hostctl import lazy

if TYPE_CHECKING:
    from hostctl.observability.elasticsearch import (
        ElasticsearchClient,
        ElasticsearchError,
        ElasticsearchRejected,
        EsRequest,
        retention_requests,
    )
    from hostctl.observability.exporter_bundle import build_bundle, exporter_config, exporter_files
    from hostctl.observability.files import host_files, site_files
    from hostctl.observability.logging_args import gelf_address, log_args
    from hostctl.observability.pipeline import render_pipeline
    from hostctl.observability.platform import logging_workloads
    from hostctl.observability.shipping import Shipping, parse_drivers, parse_stats, shipping_state
    from hostctl.spec.sections.logging import LOGGING, LoggingConfig
    from hostctl.spec.sections.metrics import METRICS, MetricsConfig
    from hostctl.spec.sections.observability import check_observability

__getattr__ = lazy.exports(__name__, {
    "ElasticsearchClient": "hostctl.observability.elasticsearch",
    "ElasticsearchError": "hostctl.observability.elasticsearch",
    "ElasticsearchRejected": "hostctl.observability.elasticsearch",
    "EsRequest": "hostctl.observability.elasticsearch",
    "LOGGING": "hostctl.spec.sections.logging",
    "LoggingConfig": "hostctl.spec.sections.logging",
    "METRICS": "hostctl.spec.sections.metrics",
    "MetricsConfig": "hostctl.spec.sections.metrics",
    "Shipping": "hostctl.observability.shipping",
    "build_bundle": "hostctl.observability.exporter_bundle",
    "check_observability": "hostctl.spec.sections.observability",
    "exporter_config": "hostctl.observability.exporter_bundle",
    "exporter_files": "hostctl.observability.exporter_bundle",
    "gelf_address": "hostctl.observability.logging_args",
    "host_files": "hostctl.observability.files",
    "log_args": "hostctl.observability.logging_args",
    "logging_workloads": "hostctl.observability.platform",
    "parse_drivers": "hostctl.observability.shipping",
    "parse_stats": "hostctl.observability.shipping",
    "render_pipeline": "hostctl.observability.pipeline",
    "retention_requests": "hostctl.observability.elasticsearch",
    "shipping_state": "hostctl.observability.shipping",
    "site_files": "hostctl.observability.files",
})

__all__ = [
    "LOGGING",
    "METRICS",
    "ElasticsearchClient",
    "ElasticsearchError",
    "ElasticsearchRejected",
    "EsRequest",
    "LoggingConfig",
    "MetricsConfig",
    "Shipping",
    "build_bundle",
    "check_observability",
    "exporter_config",
    "exporter_files",
    "gelf_address",
    "host_files",
    "log_args",
    "logging_workloads",
    "parse_drivers",
    "parse_stats",
    "render_pipeline",
    "retention_requests",
    "shipping_state",
    "site_files",
]
