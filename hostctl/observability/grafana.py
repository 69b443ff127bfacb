"""A Grafana dashboard per project, from the exporter's series: what runs and whether it is
healthy, restarts, CPU and memory per replica, CPU-/GPU-hours and cost over the chosen range.

Plain JSON for Grafana's dashboard import (or file provisioning); the Prometheus data source
is a dashboard variable, so the file works with whatever the data source is called.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hostctl.observability.pipeline import data_stream_namespace
from hostctl.observability.prometheus import promql_string
from hostctl.spec import model as m
from hostctl.spec.sections.logging import LoggingConfig
from hostctl.spec.sections.metrics import MetricsConfig

SCHEMA_VERSION = 39
DS = {"type": "prometheus", "uid": "${datasource}"}


def dashboard_uid(site: str, project: str) -> str:
    """Stable and at most 40 characters (Grafana's limit)."""
    base = f"{site}-{project}"
    if len(base) <= 32:
        return f"hostctl-{base}"
    return f"hostctl-{base[:23]}-{hashlib.sha256(base.encode()).hexdigest()[:8]}"


def currency_unit(code: str) -> str:
    """Grafana's unit for an amount in `code`: the general `currency:<CODE>` form (the
    fixed ids such as `currencyUSD` exist for some twenty codes only)."""
    return f"currency:{code}"


def _sel(project: str, extra: str = "") -> str:
    return f'{{project={promql_string(project)},host=~"$host"{extra}}}'


class _Layout:
    """Panels left to right, rows of 24 grid units; ids in order."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self.x = self.y = self.row_h = 0

    def add(self, panel: dict[str, Any], w: int, h: int) -> None:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        panel = {"id": len(self.panels) + 1, **panel,
                 "gridPos": {"x": self.x, "y": self.y, "w": w, "h": h}}
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)


def _target(expr: str, legend: str = "", instant: bool = False, table: bool = False
            ) -> dict[str, Any]:
    t: dict[str, Any] = {"datasource": DS, "expr": expr, "refId": "A"}
    if legend:
        t["legendFormat"] = legend
    if instant:
        t["instant"], t["range"] = True, False
    if table:
        t["format"] = "table"
    return t


def _stat(title: str, expr: str, unit: str = "none", description: str = "",
          decimals: int | None = None) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": unit}
    if decimals is not None:
        defaults["decimals"] = decimals
    return {"type": "stat", "title": title, "description": description, "datasource": DS,
            "targets": [_target(expr, instant=True)],
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                          "values": False},
                        "colorMode": "value", "graphMode": "none", "textMode": "auto"}}


def _series(title: str, expr: str, legend: str, unit: str) -> dict[str, Any]:
    return {"type": "timeseries", "title": title, "datasource": DS,
            "targets": [_target(expr, legend)],
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"},
                        "tooltip": {"mode": "multi", "sort": "none"}}}


def _text(title: str, content: str) -> dict[str, Any]:
    return {"type": "text", "title": title, "options": {"mode": "markdown", "content": content}}


def dashboard(site: str, project: str, met: MetricsConfig,
              log: LoggingConfig | None = None) -> dict[str, Any]:
    """The dashboard of one project."""
    p = project
    lay = _Layout()
    lay.add(_stat("Replicas running", f"sum(hostctl_service_up{_sel(p)})",
                  description="Containers of the project's services that run"), 4, 4)
    # A service handed to the k3s cluster is not expected on the hosts any more.
    lay.add(_stat("Replicas expected", f"count(hostctl_service_up{_sel(p)} unless on "
                                       "(job, instance, service) hostctl_service_in_cluster)",
                  description="Replicas the hosts should run (services handed to the k3s "
                              "cluster left out)"), 4, 4)
    lay.add(_stat("Replicas healthy", f"sum(hostctl_service_healthy{_sel(p)})"), 4, 4)
    lay.add(_stat("Restarts in range", f"sum(increase(hostctl_service_restarts_total"
                                       f"{_sel(p)}[$__range]))", decimals=0), 4, 4)
    lay.add(_stat("CPU-hours in range", f"sum(increase(hostctl_project_cpu_seconds_total"
                                        f"{_sel(p)}[$__range])) / 3600", decimals=2), 4, 4)
    lay.add(_stat("GPU-hours in range", f"sum(increase(hostctl_project_gpu_seconds_total"
                                        f"{_sel(p)}[$__range])) / 3600", decimals=2), 4, 4)
    lay.add(_series("Health per replica", f"max by (service, replica, host) "
                                          f"(hostctl_service_healthy{_sel(p)})",
                    "{{service}} #{{replica}} on {{host}}", "bool_yes_no"), 12, 8)
    lay.add(_series("Restarts", f"sum by (service, host, by) (increase("
                                f"hostctl_service_restarts_total{_sel(p)}[$__rate_interval]))",
                    "{{service}} on {{host}} (by {{by}})", "none"), 12, 8)
    lay.add(_series("CPU (cores)", f"sum by (service, replica, host) (rate("
                                   f"hostctl_container_cpu_seconds_total{_sel(p)}"
                                   "[$__rate_interval]))",
                    "{{service}} #{{replica}} on {{host}}", "none"), 12, 8)
    lay.add(_series("Memory", f"sum by (service, replica, host) "
                              f"(hostctl_container_memory_bytes{_sel(p)})",
                    "{{service}} #{{replica}} on {{host}}", "bytes"), 12, 8)
    if met.prices is not None:
        lay.add(_stat(f"Cost in range ({met.prices.currency})",
                      f"sum(increase(hostctl_project_cost_total{_sel(p)}[$__range]))",
                      currency_unit(met.prices.currency), decimals=2), 6, 6)
        lay.add(_series("Cost per hour", f"sum by (resource) (rate(hostctl_project_cost_total"
                                         f"{_sel(p)}[$__rate_interval])) * 3600",
                        "{{resource}}", currency_unit(met.prices.currency)), 18, 6)
    else:
        lay.add(_text("Cost", "No prices in the inventory (`metrics: prices:`): hostctl "
                              "computes no cost for this site."), 24, 3)
    deployed = _target(f"max by (service, replica, host, image, spec_hash) "
                       f"(hostctl_service_info{_sel(p)})", instant=True, table=True)
    lay.add({"type": "table", "title": "What runs", "datasource": DS, "targets": [deployed],
             "transformations": [{"id": "organize", "options": {
                 "excludeByName": {"Time": True, "Value": True}}}]}, 16, 8)
    lay.add(_stat("Last deploy", f"max(hostctl_service_deploy_timestamp_seconds{_sel(p)}) "
                                 "* 1000", "dateTimeFromNow"), 8, 8)
    if log is not None:
        where = (f"data stream `logs-hostctl.{p.replace('-', '_')}-"
                 f"{data_stream_namespace(site)}`" if log.index == "data-stream"
                 else f"indices `hostctl-logs-{p}-*`")
        lay.add(_text("Logs", f"This project's logs are in Elasticsearch, {where}; fields "
                              "`service.name`, `host.name`, `hostctl.instance`, "
                              "`hostctl.spec_hash`."), 24, 3)
    hosts_query = f"label_values(hostctl_service_up{{project={promql_string(p)}}}, host)"
    return {
        "uid": dashboard_uid(site, p), "title": f"hostctl {site}: {p}",
        "tags": ["hostctl", f"site:{site}", f"project:{p}"],
        "timezone": "", "editable": True, "refresh": "30s", "schemaVersion": SCHEMA_VERSION,
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "label": "Prometheus", "type": "datasource",
             "query": "prometheus", "current": {}, "hide": 0},
            {"name": "host", "label": "Host", "type": "query", "datasource": DS,
             "query": {"query": hosts_query, "refId": "hosts"},
             "definition": hosts_query,
             "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
             "current": {"text": "All", "value": "$__all"}, "hide": 0},
        ]},
        "panels": lay.panels,
    }


def dashboards(site: m.Site, met: MetricsConfig, log: LoggingConfig | None = None
               ) -> dict[str, str]:
    """File name -> dashboard JSON, one per project of the site."""
    name = site.inventory.site
    projects = sorted({w.project for w in site.workloads})
    return {f"hostctl-{name}-{p}.json":
            json.dumps(dashboard(name, p, met, log), indent=2) + "\n" for p in projects}
