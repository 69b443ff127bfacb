"""The worked example whole, as README's first command deploys it (scripts/try.sh): with its
logging and metrics sections, and Kong, Logstash and Elasticsearch left out explicitly (no
image of them can be had here). Every service is healthy, `status` says so at once, every
host's exporter answers, and services log all the same."""

from __future__ import annotations

import json

import pytest

from tests.rigs.deploy_rig import Site, wait_for, whole_example_site

pytestmark = pytest.mark.sandbox
__all__ = ["whole_example_site"]


def test_the_worked_example_deploys_whole_and_every_exporter_answers(
        whole_example_site: Site) -> None:
    s = whole_example_site
    res = s.deploy()
    status = s.hostctl("status", "-i", str(s.inventory), "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "gateway: skipped (--skip-platform gateway)" in res.stderr
    assert "logging: skipped (--skip-platform logging)" in res.stderr
    report = json.loads(status.stdout)
    assert report["ok"] is True, status.stdout
    assert report["logs"]["state"] == "not shipping", report["logs"]  # Logstash left out
    exporters = {host: [r["state"] for r in h["rows"] if r["service"] == "hostctl-exporter"]
                 for host, h in report["hosts"].items()}
    assert exporters == {h: ["active/running"] for h in ("edge-1", "app-1", "gpu-1")}
    up = {"app-1": 'hostctl_service_up{project="triage",replica="2",service="triage-api"} 1.0',
          "edge-1": 'hostctl_service_up{project="reports",replica="1",service="reports-web"} 1.0',
          "gpu-1": "hostctl_host_gpus 1.0"}
    for host, line in up.items():
        assert wait_for(lambda h=host, want=line: want in s.metrics(h), timeout=60), \
            s.metrics(host)
    logs = s.hostctl("logs", "-i", str(s.inventory), "triage-worker", "-n", "20")
    assert logs.returncode == 0 and "demo-app" in logs.stdout, logs.stdout + logs.stderr
    assert s.ssh("app-1", "docker inspect -f '{{.HostConfig.LogConfig.Type}}' "
                          "hostctl-triage-worker-1").strip() == "gelf"
