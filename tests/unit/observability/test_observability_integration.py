"""Observability wired into hostctl (the proposed integration): render, plan, platform,
status. Whole lines asserted where they are the interface."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hostctl.cli.root import main
from hostctl.deploy.plan import TargetFile, plan_files, sha256
from hostctl.hosts.facts import UnitState
from hostctl.observability.exporter_bundle import CONFIG_PATH, UNIT_PATH
from hostctl.render.site import render_host
from hostctl.spec.model import Site
from hostctl.spec.platform import check_skip, skipped_workloads, with_platform
from tests.rigs.site_factory import SERVICE, made_site

INVENTORY = """\
site: obs-int
hosts:
  edge-1: {address: 10.0.0.9}
  app-1: {address: 10.0.0.1}
specs: [specs/*.yml]
secrets: {env_file: secrets.env}
logging: {host: edge-1}
metrics: {prices: {currency: EUR, cpu_hour: 0.04}}
"""
JOB = """\
kind: job
name: nightly
project: shop
image: example.org/shop/nightly:1.0
placement: {hosts: [app-1]}
"""


@pytest.fixture()
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    monkeypatch.chdir(tmp_path)
    return with_platform(made_site(
        tmp_path, {"api.yml": SERVICE, "job.yml": JOB}, INVENTORY, environ={}))


def files(site: Site, host: str) -> dict[str, str]:
    return {f.path: f.content.decode(errors="replace")
            for f in render_host(site, site.inventory.hosts[host])}


def test_services_and_jobs_log_through_gelf_the_platform_to_its_units_journal(site: Site) -> None:
    app, edge = files(site, "app-1"), files(site, "edge-1")
    gelf = ("--log-driver gelf --log-opt gelf-address=udp://10.0.0.9:12201 --log-opt "
            "mode=non-blocking --log-opt max-buffer-size=1048576 --log-opt \"tag={{.Name}}\" "
            "--log-opt labels=io.hostctl.site,io.hostctl.host,io.hostctl.project,"
            "io.hostctl.workload,io.hostctl.kind,io.hostctl.instance,io.hostctl.run,"
            "io.hostctl.spec-hash")
    assert gelf in app["/etc/systemd/system/hostctl-api-1.service"]
    assert gelf in app["/etc/systemd/system/hostctl-job-nightly@.service"]
    logstash = edge["/etc/systemd/system/hostctl-logging-logstash-1.service"]
    assert "--log-driver none" in logstash and "gelf" not in logstash.split("ExecStart")[1]
    assert "/etc/hostctl/logging/pipeline/hostctl.conf" in edge
    assert "/etc/hostctl/logging/pipeline/hostctl.conf" not in app
    assert {CONFIG_PATH, UNIT_PATH, "/usr/local/lib/hostctl/hostctl-exporter.pyz"} <= set(app)


def test_a_changed_exporter_config_restarts_the_exporter(site: Site) -> None:
    target = {f.path: TargetFile(f.path, sha256(f.content), f.mode, f.workload, f.secret)
              for f in render_host(site, site.inventory.hosts["app-1"])}
    live = {p: t.sha256 for p, t in target.items()}
    live[CONFIG_PATH] = "0" * 64
    units = {u: UnitState(u, "loaded", "active", "running", "enabled") for u in (
        "hostctl-exporter.service", "hostctl-api-1.service", "hostctl-probe.timer")}
    plan = plan_files("app-1", target, live, units)
    assert [(f.path, f.action) for f in plan.files] == [(CONFIG_PATH, "write")]
    assert [(u.unit, u.action, u.reason) for u in plan.units] == [
        ("hostctl-exporter.service", "restart", "config changed")]


def test_skip_platform_logging() -> None:
    assert check_skip(["logging"]) == frozenset({"logging"})
    assert skipped_workloads(["logging", "gateway"]) == frozenset(
        {"logging-logstash", "logging-elasticsearch", "gateway-kong"})


def test_render_writes_the_site_files(site: Site, tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["render", "-i", "site.yml", "-o", str(tmp_path / "out"),
                                    "--json"])
    assert res.exit_code == 0, res.output
    listing = json.loads(res.output)["hosts"]["_site"]
    assert [f["path"] for f in listing] == [
        "/grafana/hostctl-obs-int-platform.json", "/grafana/hostctl-obs-int-shop.json",
        "/logging/elasticsearch-requests.json", "/logging/pipeline/hostctl.conf",
        "/prometheus/prometheus.yml", "/prometheus/rules/hostctl-obs-int.yml",
        "/prometheus/targets/hostctl-obs-int.json"]
    assert (tmp_path / "out/_site/prometheus/prometheus.yml").is_file()
