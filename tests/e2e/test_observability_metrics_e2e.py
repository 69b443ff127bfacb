"""The exporter on a real sandbox host, scraped by a real Prometheus on this machine.

`hostctl deploy` puts a small site (a service with an http check, a CPU-burning job, the
metrics section) on app-1: its units, the exporter and the health probe. Prometheus' HTTP
API then has to show the expected series and values after the deploy, a forced restart
(container killed, systemd brings it back), a restart by the health probe, a job run, and
`up` 0 once the exporter stops.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from hostctl.cli.sandbox import write_inventory
from hostctl.sandbox import app_image
from hostctl.sandbox.image_transfer import pipe_image
from hostctl.sandbox.models import SandboxHost
from hostctl.spec.hashing import spec_hash
from hostctl.spec.model import Site
from hostctl.validate import load_site
from tests.rigs.deploy_rig import RESET
from tests.rigs.prometheus_server import (
    PrometheusServer,
    needs_prometheus,
    wait_until,
)
from tests.rigs.sandbox_hosts import ssh
from tests.rigs.site_factory import make_site

pytestmark = [pytest.mark.sandbox, needs_prometheus]
IMAGE = "hostctl-demo-app:1.0"
PORT = 9477

INVENTORY = """\
site: obs-e2e
hosts:
  app-1: {{address: {address}, labels: {{role: app}}}}
specs: [specs/*.yml]
secrets: {{env_file: secrets.env}}
metrics:
  exporter: {{port: {port}, sample_interval: 1s}}
  prices: {{currency: EUR, cpu_hour: 3.6}}
  prometheus: {{scrape_interval: 1s}}
"""

SPECS = {
    "obs.yml": f"""\
        kind: service
        name: obs-web
        project: obs
        image: {IMAGE}
        env: {{PORT: 8080}}
        ports: {{http: 8080}}
        health: {{http: {{path: /health, port: http}}, interval: 1s, timeout: 1s}}
        ---
        kind: job
        name: obs-burn
        project: obsjobs
        image: {IMAGE}
        # Burns 4 s of its own CPU (utime + stime in /proc, 100 ticks a second), however long
        # that takes on a loaded machine: a wall-clock loop got too little CPU there.
        command:
          - sh
          - -c
          - >-
            i=0; while :; do i=$((i+1)); if [ $((i % 5000)) -eq 0 ]; then
            set -- $(cat /proc/$$/stat); [ $(( ${{14}} + ${{15}} )) -ge 400 ] && break; fi; done;
            echo '{{"name": "burned", "value": 4, "step": 1}}' > "$HOSTCTL_METRICS"
        report: [burned]
        """,
}
CLEANUP = RESET + "rm -rf /usr/local/lib/hostctl\ndocker network rm hostctl-obs hostctl-obsjobs " \
                  ">/dev/null 2>&1; true\n"


@dataclass
class Rig:
    host: SandboxHost
    site: Site
    prom: PrometheusServer
    deployed: tuple[float, float]  # the deploy ran between these two times


@pytest.fixture(scope="module")
def rig(sandbox_hosts: list[SandboxHost], sandbox_engine: docker.DockerClient,
        sandbox_state_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    host = next(h for h in sandbox_hosts if h.name == "app-1")
    ssh(host, CLEANUP)
    if ssh(host, f"docker image inspect {IMAGE} >/dev/null 2>&1 && echo yes",
           check=False) != "yes":
        app_image.build("1.0")
        pipe_image(sandbox_engine, IMAGE, sandbox_engine.containers.get(host.container_name))
    root = tmp_path_factory.mktemp("obs-site")
    source = make_site(root, SPECS, INVENTORY.format(address=host.address, port=PORT))
    # its own name: the sandbox inventory is written next to the example site's site.yml
    source = source.rename(source.with_name("obs-e2e.yml"))
    inventory = write_inventory(str(source), [host], sandbox_state_dir)
    site = load_site(str(inventory), environ={})
    started = time.time()
    res = subprocess.run([sys.executable, "-m", "hostctl", "deploy", "-i", str(inventory),
                          "--yes"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "NO_COLOR": "1"}, cwd=root)
    assert res.returncode == 0, res.stdout + res.stderr
    met = site.inventory.metrics
    assert met is not None
    prom = PrometheusServer(Path(root) / "prom", site.inventory, met, [
        {"targets": [f"{host.address}:{PORT}"], "labels": {"host": "app-1", "site": "obs-e2e"}}])
    try:
        yield Rig(host, site, prom, (started, time.time()))
    finally:
        prom.stop()
        journal = ssh(host, "journalctl -u hostctl-exporter --no-pager -n 30 2>&1", check=False)
        ssh(host, CLEANUP, check=False)
        print(journal)


WEB = '{host="app-1",service="obs-web",replica="1"}'
WEB_SYSTEMD = '{host="app-1",service="obs-web",replica="1",by="systemd"}'


def test_after_a_deploy_prometheus_sees_the_service(rig: Rig) -> None:
    p = rig.prom
    p.wait_value(f"hostctl_service_up{WEB}", 1, timeout=60)
    p.wait_value(f"hostctl_service_healthy{WEB}", 1, timeout=60)
    web = next(w for w in rig.site.workloads if w.name == "obs-web")
    info = p.query(f"hostctl_service_info{WEB}")[0]["metric"]
    assert (info["image"], info["spec_hash"], info["project"]) == (IMAGE, spec_hash(web), "obs")
    deployed = p.value('hostctl_service_deploy_timestamp_seconds{service="obs-web"}')
    assert deployed is not None and \
        int(rig.deployed[0]) - 1 <= deployed <= rig.deployed[1] + 1, (deployed, rig.deployed)
    # CPU and memory read from the container's cgroup files on the host itself
    wait_until(lambda: (p.value(f"hostctl_container_memory_bytes{WEB}") or 0) > 0, 30,
               what="memory of obs-web")
    assert p.value(f"hostctl_container_cpu_seconds_total{WEB}") is not None
    assert p.value('hostctl_host_gpus{host="app-1"}') == 0
    assert p.value('hostctl_exporter_docker_up{host="app-1"}') == 1
    assert p.value('hostctl_project_cost_total{project="obs",resource="cpu"}') is not None


def test_a_forced_restart_is_counted(rig: Rig) -> None:
    p = rig.prom
    p.wait_value(f"hostctl_service_restarts_total{WEB_SYSTEMD}", 0, timeout=30)
    ssh(rig.host, "docker kill hostctl-obs-web-1 >/dev/null")
    p.wait_value(f"hostctl_service_up{WEB}", 0, timeout=30)
    p.wait_value(f"hostctl_service_restarts_total{WEB_SYSTEMD}", 1, timeout=60)
    p.wait_value(f"hostctl_service_up{WEB}", 1, timeout=60)


def test_a_restart_by_the_health_probe_is_counted_as_such(rig: Rig) -> None:
    """The probe's `systemctl restart` resets systemd's NRestarts: the crash counted before
    must stay counted, and the probe's restart is counted on its own series."""
    p = rig.prom
    web_probe = WEB_SYSTEMD.replace('by="systemd"', 'by="probe"')
    p.wait_value(f"hostctl_service_healthy{WEB}", 1, timeout=60)
    crashes = p.value(f"hostctl_service_restarts_total{WEB_SYSTEMD}")
    assert p.value(f"hostctl_service_restarts_total{web_probe}") == 0
    ssh(rig.host, "systemctl start hostctl-probe.timer && "
                  "docker exec hostctl-obs-web-1 rm /www/health")
    p.wait_value(f"hostctl_service_restarts_total{web_probe}", 1, timeout=90)
    p.wait_value(f"hostctl_service_healthy{WEB}", 1, timeout=60)
    assert p.value(f"hostctl_service_restarts_total{WEB_SYSTEMD}") == crashes


def test_a_job_run_counts_for_its_project(rig: Rig) -> None:
    p = rig.prom
    expr = 'hostctl_project_cpu_seconds_total{project="obsjobs"}'
    p.wait_value(expr, 0, timeout=30)
    ssh(rig.host, "systemctl start --no-block hostctl-job-obs-burn@r1.service")
    wait_until(lambda: (p.value(expr) or 0) >= 2.0, 60, what=f"{expr} >= 2 (now "
               f"{p.value(expr)})")
    wait_until(lambda: ssh(rig.host, "systemctl is-active hostctl-job-obs-burn@r1.service",
                           check=False) != "active", 60, what="job finished")
    time.sleep(3)
    done = p.value(expr)
    assert done is not None and done >= 2.0
    cost = p.value('hostctl_project_cost_total{project="obsjobs",resource="cpu"}')
    assert cost == pytest.approx(done / 3600 * 3.6, rel=0.05)  # scraped at slightly other times
    # The ended run, from the host's run history: counted by its state, and the metric its
    # spec reports, labelled with its experiment (a run started by hand: the job's name).
    p.wait_value('hostctl_job_runs_total{project="obsjobs",job_name="obs-burn",'
                 'state="succeeded"}', 1, timeout=60)
    p.wait_value('hostctl_job_metric{job_name="obs-burn",experiment="obs-burn",'
                 'metric="burned"}', 4, timeout=60)


def test_exporter_down_shows_as_down_and_services_run_on(rig: Rig) -> None:
    ssh(rig.host, "systemctl stop hostctl-exporter.service")
    rig.prom.wait_value('up{host="app-1"}', 0, timeout=30)
    assert ssh(rig.host, "systemctl is-active hostctl-obs-web-1.service") == "active"
