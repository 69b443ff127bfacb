"""hostctl deploy with logging and metrics sections, on sandbox hosts (the integration):
the exporter deployed and answering on every host, services logging through gelf to a
Logstash that is not there (skipped explicitly) and healthy all the same, `hostctl logs`
and `status` still telling the truth; a price change restarts the exporter alone; logging
without metrics still ships every host's audit records; removing both sections removes the
exporter."""

from __future__ import annotations

import re
from typing import Any

import docker
import pytest
import yaml

from hostctl.sandbox.container_spec import NETWORK
from tests.rigs.deploy_rig import Site, example_site, wait_for
from tests.rigs.gelf_listener import GelfListener

pytestmark = pytest.mark.sandbox
__all__ = ["example_site"]


def set_sections(s: Site, **sections: Any) -> None:
    data = yaml.safe_load(s.inventory.read_text())
    for key, value in sections.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    s.inventory.write_text(yaml.safe_dump(data, sort_keys=False))


METRICS = {"exporter": {"port": 9477, "sample_interval": "2s"},
           "prices": {"currency": "EUR", "cpu_hour": 0.04}}


def test_deploy_brings_the_exporter_and_gelf_logging(example_site: Site) -> None:
    s = example_site
    set_sections(s, metrics=METRICS, logging={"host": "edge-1"})
    res = s.deploy("--skip-platform", "logging")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "logging: skipped (--skip-platform logging)" in res.stderr
    for host in s.hosts:
        assert s.ssh(host, "systemctl is-active hostctl-exporter").strip() == "active"
    assert s.ssh("app-1", "docker inspect -f '{{.HostConfig.LogConfig.Type}}' "
                          "hostctl-triage-api-1").strip() == "gelf"
    up = 'hostctl_service_up{project="triage",replica="1",service="triage-api"} 1.0'
    assert wait_for(lambda: up in s.metrics("app-1"), timeout=60), s.metrics("app-1")
    assert 'hostctl_project_cost_total{currency="EUR",project="triage",resource="cpu"}' in \
        s.metrics("app-1")
    logs = s.hostctl("logs", "-i", str(s.inventory), "triage-worker", "-n", "50")
    assert logs.returncode == 0 and "demo-app" in logs.stdout, logs.stdout + logs.stderr
    status = s.hostctl("status", "-i", str(s.inventory))
    assert "logs: not shipping: Logstash on edge-1 is not running" in status.stdout, \
        status.stdout + status.stderr
    assert not re.search(r"hostctl-exporter.*\*", status.stdout), status.stdout


def test_a_price_change_restarts_the_exporter_alone(example_site: Site) -> None:
    s = example_site
    set_sections(s, metrics={**METRICS, "prices": {"currency": "EUR", "cpu_hour": 0.05}})
    plan = s.hostctl("plan", "-i", str(s.inventory), "--skip-platform", "gateway",
                     "--skip-platform", "logging")
    restarts = re.findall(r"restart (\S+) \(([^)]*)\)", plan.stdout)
    assert sorted(set(restarts)) == [("hostctl-exporter.service", "config changed")], \
        plan.stdout
    res = s.deploy("--skip-platform", "logging")
    assert res.returncode == 0, res.stdout + res.stderr
    assert wait_for(lambda: 'resource="cpu"} ' in s.metrics("edge-1"), timeout=60)


def test_logging_without_metrics_ships_each_hosts_audit_records(
        example_site: Site, sandbox_engine: docker.DockerClient) -> None:
    """The audit records reach Logstash's GELF input from every host, metrics or not: here
    a GELF listener on this machine stands in for Logstash (its gelf input's protocol)."""
    s = example_site
    gateway = str(sandbox_engine.networks.get(NETWORK).attrs["IPAM"]["Config"][0]["Gateway"])
    with GelfListener(gateway) as listener:
        set_sections(s, metrics=None, logging={
            "host": "edge-1", "logstash": {"address": gateway, "port": listener.port}})
        res = s.deploy("--skip-platform", "logging")
        assert res.returncode == 0, res.stdout + res.stderr
        for host in s.hosts:
            assert s.ssh(host, "systemctl is-active hostctl-exporter").strip() == "active"
            assert "audit shipper" in s.ssh(host, "systemctl show -p Description "
                                                  "hostctl-exporter")
        assert s.metrics("app-1").startswith("unreachable")  # no /metrics any more
        # this very deploy's record on each host: the one naming the release it made current
        # (a record the old exporter had not sent yet may come too: nothing is lost)
        current = {host: s.ssh(host, "readlink /var/lib/hostctl/current").strip()
                   .rsplit("/", 1)[-1] for host in s.hosts}
        got = listener.wait_for(
            lambda msg: msg.get("_io.hostctl.kind") == "audit"
            and msg.get("_audit_release") == current.get(msg.get("_io.hostctl.host", "")),
            timeout=60, count=len(s.hosts))
    by_host = {msg["_io.hostctl.host"]: msg for msg in got}
    assert sorted(by_host) == sorted(s.hosts), got
    for msg in by_host.values():
        assert msg["_audit_result"] == "deployed" and msg["_audit_command"].startswith(
            "hostctl deploy "), msg
        assert msg["_io.hostctl.project"] == "hostctl-audit"


def test_removing_metrics_removes_the_exporter(example_site: Site) -> None:
    s = example_site
    set_sections(s, metrics=None, logging=None)
    res = s.deploy()
    assert res.returncode == 0, res.stdout + res.stderr
    assert "stop hostctl-exporter.service (left the specs)" in res.stdout
    gone = s.ssh("app-1", "for f in /etc/systemd/system/hostctl-exporter.service "
                          "/etc/hostctl/exporter/config.json "
                          "/usr/local/lib/hostctl/hostctl-exporter.pyz; do "
                          "[ -e $f ] && echo $f; done; systemctl is-active hostctl-exporter; true")
    assert gone.split() == ["inactive"], gone
    assert s.ssh("app-1", "docker inspect -f '{{.HostConfig.LogConfig.Type}}' "
                          "hostctl-triage-api-1").strip() == "none"
