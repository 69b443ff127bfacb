"""A real Prometheus (Debian's package, started here on 127.0.0.1) scrapes the exporter
bundle run by this machine's python3, with a fake Docker and systemd whose answers the test
changes, and cgroup files in a temp folder. Queries go through Prometheus' HTTP API.

The Prometheus server and the polling are in tests/rigs/prometheus_server.py (the sandbox
end-to-end test uses them too).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hostctl.observability.exporter_bundle import build_bundle
from hostctl.spec import model as m
from hostctl.spec.sections.metrics import MetricsConfig, PrometheusSettings
from tests.rigs.prometheus_server import (
    PrometheusServer,
    free_port,
    needs_prometheus,
    terminate,
    wait_until,
)

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


FAKE_DOCKER = """\
#!{python}
import json, sys
state = json.load(open({state!r}))
if not state.get("docker_up", True):
    sys.exit("Cannot connect to the Docker daemon")
items = state["containers"]
if sys.argv[1] == "ps":
    print("\\n".join(i["Id"] for i in items))
else:
    print(json.dumps([i for i in items if i["Id"] in sys.argv]))
"""

FAKE_SYSTEMCTL = """\
#!/bin/sh
cat {units}
"""


class FakeHost:
    """Docker, systemctl and cgroup files of a host that is not there."""

    def __init__(self, root: Path):
        self.root = root
        self.state = root / "docker.json"
        self.units = root / "units.txt"
        (root / "bin").mkdir(parents=True)
        docker = root / "bin" / "docker"
        docker.write_text(FAKE_DOCKER.format(python=sys.executable, state=str(self.state)))
        systemctl = root / "bin" / "systemctl"
        systemctl.write_text(FAKE_SYSTEMCTL.format(units=self.units))
        for f in (docker, systemctl):
            f.chmod(0o755)
        self.containers: list[dict[str, Any]] = []
        self.restarts: dict[str, int] = {}
        self.docker_up = True
        self.flush()

    def run(self, cid: str, name: str, workload: str, project: str, cpu: float,
            memory: int, pid: int, kind: str = "service") -> None:
        self.containers = [c for c in self.containers if c["Name"] != f"/{name}"]
        self.containers.append({
            "Id": cid, "Name": f"/{name}",
            "State": {"Running": True, "Pid": pid, "StartedAt": "2024-01-01T00:00:00Z"},
            "Config": {"Image": "app:1.0", "Labels": {
                "io.hostctl.managed": "true", "io.hostctl.workload": workload,
                "io.hostctl.project": project, "io.hostctl.kind": kind,
                "io.hostctl.spec-hash": "0123456789ab"}},
            "HostConfig": {}, "NetworkSettings": {"Networks": {}}})
        self.set_usage(pid, cpu, memory)
        self.flush()

    def set_usage(self, pid: int, cpu: float, memory: int) -> None:
        def write(rel: str, text: str) -> None:
            (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.root / rel).write_text(text)
        write(f"proc/{pid}/cgroup", f"3:cpu,cpuacct:/docker/p{pid}\n4:memory:/docker/p{pid}\n")
        write(f"cg/cpu,cpuacct/docker/p{pid}/cpuacct.usage", str(int(cpu * 1e9)))
        write(f"cg/memory/docker/p{pid}/memory.usage_in_bytes", str(memory))

    def flush(self) -> None:
        self.state.write_text(json.dumps({"docker_up": self.docker_up,
                                          "containers": self.containers}))
        self.units.write_text("\n\n".join(
            f"Id={unit}\nNRestarts={n}\nActiveState=active" for unit, n in
            sorted(self.restarts.items())) + "\n")


class ExporterProcess:
    """The bundle, run by a python3 with a config file; stopped with SIGTERM."""

    def __init__(self, workdir: Path, conf: dict[str, Any], python: str = sys.executable):
        workdir.mkdir(parents=True, exist_ok=True)
        self.pyz = workdir / "hostctl-exporter.pyz"
        self.pyz.write_bytes(build_bundle())
        self.config = workdir / "config.json"
        self.config.write_text(json.dumps(conf))
        self.log = open(workdir / "exporter.log", "wb")  # noqa: SIM115 (closed in stop)
        # A clean environment: nothing from this checkout may leak into the bundle's imports.
        self.proc = subprocess.Popen([python, str(self.pyz), "--config", str(self.config)],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     env={"PATH": "/usr/bin:/bin"}, cwd=workdir)
        url = f"http://127.0.0.1:{conf['port']}/metrics"

        def answers() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError("exporter exited: "
                                     + (workdir / "exporter.log").read_text()[-2000:])
            try:
                with _DIRECT.open(url, timeout=2) as r:
                    return int(r.status) == 200
            except OSError:
                return False
        wait_until(answers, 30, what="exporter answers")

    def stop(self) -> None:
        terminate(self.proc, grace=10)
        self.log.close()


# -- the test --------------------------------------------------------------------------------

INV = m.Inventory(file="site.yml", site="promtest", hosts={})
MET = MetricsConfig(prometheus=PrometheusSettings(scrape_interval=1.0))


def exporter_conf(host: FakeHost, port: int, prices: dict[str, Any] | None,
                  name: str) -> dict[str, Any]:
    return {
        "site": "promtest", "host": name, "listen": "127.0.0.1", "port": port,
        "docker": str(host.root / "bin/docker"), "systemctl": str(host.root / "bin/systemctl"),
        "proc": str(host.root / "proc"), "cgroup": str(host.root / "cg"),
        "sample_interval": 1, "state_dir": str(host.root / "state"), "prices": prices,
        "services": {"api": {"project": "shop", "image": "app:1.0", "spec_hash": "0123456789ab",
                             "replicas": [1, 2]}},
        "jobs": {"nightly": {"project": "shop", "gpus": 0}},
    }


@pytest.fixture()
def rig(tmp_path: Path) -> Iterator[tuple[PrometheusServer, FakeHost, dict[str, ExporterProcess]]]:
    priced, unpriced = FakeHost(tmp_path / "priced"), FakeHost(tmp_path / "unpriced")
    priced.run("c1", "hostctl-api-1", "api", "shop", cpu=5.0, memory=1000, pid=101)
    priced.restarts = {"hostctl-api-1.service": 0, "hostctl-api-2.service": 0}
    priced.flush()
    unpriced.run("c9", "hostctl-api-1", "api", "shop", cpu=7.0, memory=2000, pid=109)
    ports = {"priced": free_port(), "unpriced": free_port()}
    exporters: dict[str, ExporterProcess] = {}
    prom = None
    try:
        exporters["priced"] = ExporterProcess(tmp_path / "e1", exporter_conf(
            priced, ports["priced"], {"currency": "EUR", "cpu_hour": 0.36}, "priced"))
        exporters["unpriced"] = ExporterProcess(tmp_path / "e2", exporter_conf(
            unpriced, ports["unpriced"], None, "unpriced"))
        prom = PrometheusServer(tmp_path / "prom", INV, MET, [
            {"targets": [f"127.0.0.1:{port}"], "labels": {"host": name, "site": "promtest"}}
            for name, port in ports.items()])
        yield prom, priced, exporters
    finally:
        if prom is not None:
            prom.stop()
        for e in exporters.values():
            e.stop()


@needs_prometheus
def test_prometheus_scrapes_the_exporter_bundle(
        rig: tuple[PrometheusServer, FakeHost, dict[str, ExporterProcess]]) -> None:
    prom, host, exporters = rig
    p = '{host="priced"}'
    # each target is scraped on its own clock: wait for both before reading either
    prom.wait_value('hostctl_service_up{host="priced",replica="1"}', 1)
    prom.wait_value('hostctl_project_cpu_seconds_total{host="unpriced"}', 7.0)
    assert prom.value('hostctl_service_up{host="priced",replica="2"}') == 0
    assert prom.value(f"hostctl_project_cpu_seconds_total{p}") == 5.0
    assert prom.value('hostctl_project_cost_total{host="priced",resource="cpu"}') == \
        pytest.approx(5 / 3600 * 0.36)
    assert prom.value('hostctl_container_memory_bytes{host="priced",replica="1"}') == 1000
    info = prom.query('hostctl_service_info{host="priced",replica="1"}')[0]["metric"]
    assert (info["image"], info["spec_hash"], info["project"], info["site"], info["job"]) == (
        "app:1.0", "0123456789ab", "shop", "promtest", "hostctl-promtest")
    # the site comes from the target's labels alone: no exported_site (issue 10 #7)
    about = prom.query('hostctl_exporter_info{host="priced"}')[0]["metric"]
    assert {k: v for k, v in about.items() if k not in ("instance",)} == {
        "__name__": "hostctl_exporter_info", "host": "priced", "job": "hostctl-promtest",
        "site": "promtest", "version": "1"}
    # prices missing: the cost series are absent, not zero; usage is still counted
    assert prom.query('hostctl_project_cost_total{host="unpriced"}') == []
    assert prom.query('hostctl_price_per_hour{host="unpriced"}') == []
    assert prom.value('hostctl_project_cpu_seconds_total{host="unpriced"}') == 7.0

    # a forced restart: systemd restarted the unit, its new container starts from zero CPU
    host.restarts["hostctl-api-1.service"] = 1
    host.run("c2", "hostctl-api-1", "api", "shop", cpu=0.5, memory=900, pid=102)
    prom.wait_value('hostctl_service_restarts_total{host="priced",replica="1",by="systemd"}', 1)
    prom.wait_value('hostctl_container_cpu_seconds_total{host="priced",replica="1"}', 0.5)
    prom.wait_value(f"hostctl_project_cpu_seconds_total{p}", 5.5)

    # a job run: its CPU counts for its project, and stays counted after it is gone
    host.run("j1", "hostctl-job-nightly-r1", "nightly", "shop", cpu=2.0, memory=10, pid=103,
             kind="job")
    prom.wait_value(f"hostctl_project_cpu_seconds_total{p}", 7.5)
    host.containers = [c for c in host.containers if c["Id"] != "j1"]
    host.flush()
    time.sleep(3)
    assert prom.value(f"hostctl_project_cpu_seconds_total{p}") == 7.5

    # Docker down: the exporter says so, keeps its totals; exporter down: Prometheus says so
    host.docker_up = False
    host.flush()
    prom.wait_value(f"hostctl_exporter_docker_up{p}", 0)
    assert prom.value(f"hostctl_project_cpu_seconds_total{p}") == 7.5
    exporters["priced"].stop()
    prom.wait_value('up{host="priced"}', 0)
    assert prom.targets_health() == {"priced": "down", "unpriced": "up"}


def test_the_bundle_runs_with_debians_python_and_nothing_else(tmp_path: Path) -> None:
    """The host's python3 without this checkout's packages: /usr/bin/python3 -I."""
    python = "/usr/bin/python3"
    if not os.path.exists(python):
        pytest.skip("no /usr/bin/python3 on this machine")
    host = FakeHost(tmp_path / "h")
    conf = exporter_conf(host, free_port(), None, "h")
    (tmp_path / "c.json").write_text(json.dumps(conf))
    (tmp_path / "x.pyz").write_bytes(build_bundle())
    res = subprocess.run([python, "-I", str(tmp_path / "x.pyz"), "--config",
                          str(tmp_path / "c.json"), "--once"], capture_output=True, text=True,
                         timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    assert 'hostctl_service_up{project="shop",replica="1",service="api"} 0.0' in res.stdout
    bad = subprocess.run([python, "-I", str(tmp_path / "x.pyz"), "--config", "/nonexistent"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.startswith("hostctl-exporter: cannot read /nonexistent: ")


def test_the_bundle_reads_health_with_the_rule_status_uses(tmp_path: Path) -> None:
    """Right after a deploy whose health gate passed, Docker's own check is still starting:
    the bundle (host python3, nothing else) reads the gate's record and says healthy."""
    python = "/usr/bin/python3"
    if not os.path.exists(python):
        pytest.skip("no /usr/bin/python3 on this machine")
    host = FakeHost(tmp_path / "h")
    host.run("c1", "hostctl-api-1", "api", "shop", cpu=1.0, memory=1000, pid=101)
    host.containers[0]["State"]["Health"] = {"Status": "starting"}
    host.restarts = {"hostctl-api-1.service": 0}
    host.flush()
    started = int(time.time()) - 5
    stamp = time.strftime("%a %Y-%m-%d %H:%M:%S UTC", time.gmtime(started))
    host.units.write_text("Id=hostctl-api-1.service\nNRestarts=0\nActiveState=active\n"
                          f"ActiveEnterTimestamp={stamp}\n")
    conf = exporter_conf(host, free_port(), None, "h")
    (tmp_path / "c.json").write_text(json.dumps(conf))
    (tmp_path / "x.pyz").write_bytes(build_bundle())
    health = host.root / "state" / "health"
    health.mkdir(parents=True)
    series = 'hostctl_service_healthy{project="shop",replica="1",service="api"}'

    def once() -> str:
        res = subprocess.run([python, "-I", str(tmp_path / "x.pyz"), "--config",
                              str(tmp_path / "c.json"), "--once"], capture_output=True,
                             text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
        assert res.returncode == 0, res.stderr
        return next(line for line in res.stdout.splitlines() if line.startswith(series))

    assert once() == f"{series} 0.0"  # nobody checked this run yet
    (health / "hostctl-api-1.service.verified").write_text(f"{started - 60}\n")
    assert once() == f"{series} 0.0"  # the gate saw the run before
    (health / "hostctl-api-1.service.verified").write_text(f"{started + 2}\n")
    assert once() == f"{series} 1.0"
    (health / "hostctl-api-1.service.state").write_text(
        f"health=unhealthy\nfailures=1\nlast_check={started + 3}\n")
    assert once() == f"{series} 0.0"  # the probe checked later
