"""Observability: log shipping (gelf -> Logstash -> Elasticsearch), the per-host metrics
exporter, and the Prometheus/Grafana files rendered from the inventory and specs (the
inventory's sections are hostctl.spec.sections.logging and .metrics). Import each from its
module:

    log, met = inv.logging, inv.metrics      # typed by the loader; None: section absent/empty
    log_args(log, inv, w)                    # docker run's logging words (unit journal w/o log)
    logging_workloads(log, inv)              # Logstash/Elasticsearch as platform services
    host_files(site, host)                   # exporter bundle+config+unit, the pipeline
    site_files(site)                         # prometheus/, grafana/, logging/ for render
    ElasticsearchClient(url).apply_all(retention_requests(log, site_name))
    shipping_state(log, drivers, logstash_running, stats, earlier)   # for status

The exporter itself (exporter.py, exporter_sources.py, exporter_audit.py) runs on hosts
from a zipapp and uses only the standard library, prometheus_client and hostctl.hosts.health_verdict
(the health rule it shares with `hostctl status`).
"""
