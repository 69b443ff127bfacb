"""Everything observability adds to a render: files for hosts (the exporter, the Logstash
pipeline) and files for people and other tools (scrape config, rules, dashboards, the
pipeline and Elasticsearch requests again, to read before deploying)."""

from __future__ import annotations

import json

from hostctl.observability.elasticsearch import retention_requests
from hostctl.observability.exporter_bundle import exporter_files
from hostctl.observability.grafana import dashboards
from hostctl.observability.platform import pipeline_file
from hostctl.observability.prometheus import (
    alert_rules,
    rules_file,
    scrape_config,
    targets_file,
    targets_json,
)
from hostctl.render.files import MODE_PUBLIC, RenderedFile
from hostctl.spec import model as m
from hostctl.spec.sections.logging import LoggingConfig
from hostctl.spec.sections.metrics import MetricsConfig


def sections(site: m.Site) -> tuple[LoggingConfig | None, MetricsConfig | None]:
    return site.inventory.logging, site.inventory.metrics


def host_files(site: m.Site, host: m.Host) -> list[RenderedFile]:
    """Files observability puts on `host`: the exporter everywhere (with metrics), the
    Logstash pipeline on the logging host (with logging)."""
    log, met = sections(site)
    files = exporter_files(site, host, met, log)
    if log is not None and log.host == host.name:
        path, content, workload = pipeline_file(log, site.inventory.site)
        files.append(RenderedFile(path, content, MODE_PUBLIC, workload=workload))
    return sorted(files, key=lambda f: f.path)


def site_files(site: m.Site) -> dict[str, bytes]:
    """Relative path -> content, for `hostctl render` to write next to the hosts' folders."""
    log, met = sections(site)
    inv = site.inventory
    out: dict[str, bytes] = {}
    if met is not None:
        out["prometheus/prometheus.yml"] = scrape_config(inv, met).encode()
        out[f"prometheus/{targets_file(inv.site)}"] = targets_json(inv, met).encode()
        out[f"prometheus/{rules_file(inv.site)}"] = alert_rules(inv, met).encode()
        for name, text in dashboards(site, met, log).items():
            out[f"grafana/{name}"] = text.encode()
    if log is not None:
        out["logging/pipeline/hostctl.conf"] = pipeline_file(log, inv.site)[1]
        requests = [r.to_json() for r in retention_requests(log, inv.site)]
        out["logging/elasticsearch-requests.json"] = (json.dumps(requests, indent=2)
                                                      + "\n").encode()
    return dict(sorted(out.items()))
