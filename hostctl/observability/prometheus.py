"""What Prometheus needs to watch a site: a scrape configuration whose targets come from a
file (one target per host, labelled with host and site), and alerting rules for what wakes
someone at 3 a.m. Written by `hostctl render`, to be read before anything is deployed.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from hostctl.spec import model as m
from hostctl.spec.sections.metrics import MetricsConfig


def promql_string(value: str) -> str:
    """`value` as a PromQL string literal: double-quoted, with Go's escapes for quotes,
    backslashes and control characters (JSON's are a subset PromQL's lexer reads). The
    names hostctl writes are validated names; this keeps a query one query whatever they
    hold."""
    return json.dumps(value, ensure_ascii=False)


def job_name(site: str) -> str:
    return f"hostctl-{site}"


def targets_file(site: str) -> str:
    """Relative to the scrape configuration (Prometheus resolves it from there)."""
    return f"targets/hostctl-{site}.json"


def rules_file(site: str) -> str:
    return f"rules/hostctl-{site}.yml"


def _target(host: m.Host, port: int) -> str:
    address = f"[{host.address}]" if ":" in host.address else host.address
    return f"{address}:{port}"


def targets(inv: m.Inventory, met: MetricsConfig) -> list[dict[str, Any]]:
    """Prometheus file_sd targets: each host's exporter, with its inventory name."""
    return [{"targets": [_target(h, met.exporter.port)],
             "labels": {"host": name, "site": inv.site}}
            for name, h in inv.hosts.items()]


def targets_json(inv: m.Inventory, met: MetricsConfig) -> str:
    return json.dumps(targets(inv, met), indent=2) + "\n"


def _seconds(value: float) -> str:
    """A duration as Prometheus writes one: whole units only (`15s`, `1500ms`; `1.5s` and
    `1e+06s` are refused). validate keeps scrape durations to whole milliseconds."""
    ms = round(value * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def scrape_config(inv: m.Inventory, met: MetricsConfig) -> str:
    """A whole prometheus.yml that scrapes every host's exporter."""
    prom = met.prometheus
    config = {
        "global": {"scrape_interval": _seconds(prom.scrape_interval),
                   "scrape_timeout": _seconds(prom.timeout)},
        "rule_files": [rules_file(inv.site)],
        "scrape_configs": [{
            "job_name": job_name(inv.site),
            "scrape_interval": _seconds(prom.scrape_interval),
            "scrape_timeout": _seconds(prom.timeout),
            "metrics_path": "/metrics",
            "file_sd_configs": [{"files": [targets_file(inv.site)], "refresh_interval": "1m"}],
        }],
    }
    header = (f"# Rendered by hostctl for site {inv.site}: Prometheus scrapes the hostctl\n"
              "# exporter on every host. Targets come from the inventory (edit it, then\n"
              f"# `hostctl render`): {targets_file(inv.site)}; alerting rules:\n"
              f"# {rules_file(inv.site)}.\n")
    return header + yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


def _rule(alert: str, expr: str, for_: str, summary: str, severity: str = "page"
          ) -> dict[str, Any]:
    return {"alert": alert, "expr": expr, "for": for_, "labels": {"severity": severity},
            "annotations": {"summary": summary}}


def alert_rules(inv: m.Inventory, met: MetricsConfig) -> str:
    """Alerting rules for the site: down, unhealthy, restarting, blind spots."""
    job = job_name(inv.site)
    stale = max(60, int(met.exporter.sample_interval * 5))
    rules = [
        _rule("HostctlExporterDown", f"up{{job={promql_string(job)}}} == 0", "2m",
              "hostctl exporter on {{ $labels.host }} does not answer (host down, or "
              "hostctl-exporter.service stopped); its services are not watched"),
        _rule("HostctlDockerDown", "hostctl_exporter_docker_up == 0", "1m",
              "Docker on {{ $labels.host }} does not answer the exporter"),
        _rule("HostctlSampleStale",
              f"time() - hostctl_exporter_last_sample_timestamp_seconds > {stale}", "2m",
              "the exporter on {{ $labels.host }} has not read its containers for "
              f"over {stale}s", "ticket"),
        # A service handed to the k3s cluster is stopped on its hosts on purpose.
        _rule("HostctlServiceDown", "hostctl_service_up == 0 unless on (job, instance, service) "
              "hostctl_service_in_cluster == 1", "2m",
              "{{ $labels.service }} #{{ $labels.replica }} (project {{ $labels.project }}) "
              "is not running on {{ $labels.host }}"),
        _rule("HostctlServiceUnhealthy", "hostctl_service_healthy == 0 and "
              "hostctl_service_up == 1", "5m",
              "{{ $labels.service }} #{{ $labels.replica }} on {{ $labels.host }} runs but "
              "fails its health check"),
        # crashes (by="systemd") and health restarts (by="probe") count together
        _rule("HostctlServiceRestarting",
              "sum without (by) (increase(hostctl_service_restarts_total[15m])) > 3",
              "0m", "{{ $labels.service }} #{{ $labels.replica }} on {{ $labels.host }} "
              "restarted more than 3 times in 15 minutes", "ticket"),
    ]
    doc = {"groups": [{"name": job, "rules": rules}]}
    header = f"# Rendered by hostctl for site {inv.site}: alerting rules for its services.\n"
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=100)
