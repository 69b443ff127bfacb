"""The metrics exporter without a host: its parsers on captured-style output, and whole
samples through a fake Docker/systemd and a cgroup tree in a temp folder."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from hostctl.observability import exporter_sources as src
from hostctl.observability.exporter import (
    ExporterConf,
    Sampler,
    State,
    registry_for,
)
from hostctl.observability.exporter_audit import AuditShipper, gelf_message
from tests.rigs.exporter_host import FakeHost, inspect_item, labels

T0 = 1_700_000_000.0


# -- parsers ---------------------------------------------------------------------------------

def test_parse_inspect() -> None:
    items = [inspect_item("a" * 64, "hostctl-api-1", labels("api", "shop", instance="1"),
                          pid=42, health="healthy", gpus=-1),
             inspect_item("b" * 64, "hostctl-api-2", labels("api", "shop"), running=False,
                          started="0001-01-01T00:00:00Z")]
    a, b = src.parse_inspect(json.dumps(items), host_gpus=4)
    assert (a.name, a.running, a.pid, a.health, a.gpus, a.addresses) == (
        "hostctl-api-1", True, 42, "healthy", 4, ("10.214.0.5",))
    assert a.started_at == pytest.approx(1_700_000_000.123456)
    assert (a.label("workload"), a.label("instance"), a.label("nope")) == ("api", "1", "")
    assert (b.running, b.pid, b.started_at, b.health, b.gpus) == (False, 0, None, None, None)


def test_parse_time() -> None:
    assert src.parse_time("2023-11-14T22:13:20Z") == T0
    assert src.parse_time("2023-11-14T23:13:20.5+01:00") == T0 + 0.5
    assert src.parse_time("0001-01-01T00:00:00Z") is None
    assert src.parse_time("yesterday") is None


def test_the_exporter_reads_systemctl_show_with_the_one_parser() -> None:
    text = ("Id=hostctl-api-1.service\nNRestarts=3\nActiveState=active\n"
            "ActiveEnterTimestamp=Tue 2023-11-14 22:13:20 UTC\n\n"
            "Id=hostctl-api-2.service\nNRestarts=\nActiveState=failed\n"
            "ActiveEnterTimestamp=n/a\n")
    units = src.read_units(lambda argv: (0, text))
    assert units is not None
    assert {u: (s.active, s.restarts, s.started) for u, s in units.items()} == {
        "hostctl-api-1.service": ("active", 3, int(T0)),
        "hostctl-api-2.service": ("failed", 0, None)}
    assert src.read_units(lambda argv: (1, text)) is None


def test_systemctl_runs_in_utc_so_its_times_are_read() -> None:
    code, out = src.run_command(["sh", "-c", "echo $TZ $LC_ALL"])
    assert (code, out) == (0, "UTC C\n")
    assert src.show_argv() == ["systemctl", "show", "--property=Id,NRestarts,ActiveState,"
                               "ActiveEnterTimestamp", "hostctl-*.service"]


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v1_and_v2(tmp_path: Path) -> None:
    proc, root = tmp_path / "proc", tmp_path / "cg"
    _write(proc / "10/cgroup", "4:memory:/docker/aaa\n3:cpu,cpuacct:/docker/aaa\n0::/\n")
    _write(root / "cpu,cpuacct/docker/aaa/cpuacct.usage", "2500000000\n")
    _write(root / "memory/docker/aaa/memory.usage_in_bytes", "1000000\n")
    _write(root / "memory/docker/aaa/memory.stat", "cache 5\ntotal_inactive_file 200000\n")
    _write(proc / "20/cgroup", "0::/system.slice/docker-bbb.scope\n")
    _write(root / "system.slice/docker-bbb.scope/cpu.stat", "usage_usec 1500000\nuser_usec 1\n")
    _write(root / "system.slice/docker-bbb.scope/memory.current", "3000000\n")
    _write(root / "system.slice/docker-bbb.scope/memory.stat", "inactive_file 1000000\n")
    reader = src.CgroupReader(str(proc), str(root))
    v1, v2 = reader.paths(10), reader.paths(20)
    assert (reader.cpu_seconds(v1), reader.memory_bytes(v1)) == (2.5, 800000.0)
    assert (reader.cpu_seconds(v2), reader.memory_bytes(v2)) == (1.5, 2000000.0)
    assert reader.paths(99) == {} and reader.cpu_seconds({}) is None


def test_deploy_time_is_when_the_running_spec_first_went_out(tmp_path: Path) -> None:
    chain = [("r1", None, 100, "h1"), ("r2", "r1", 200, "h2"), ("r3", "r2", 300, "h2")]
    for name, previous, created, hash_ in chain:
        _write(tmp_path / f"releases/{name}/manifest.json", json.dumps(
            {"release": name, "previous": previous, "created": created,
             "workloads": {"api": hash_, "web": "w"}}))
    (tmp_path / "current").symlink_to(tmp_path / "releases/r3")
    releases = src.Releases.read(str(tmp_path))
    assert (releases.deployed_at("api"), releases.deployed_at("web"),
            releases.deployed_at("gone")) == (200.0, 100.0, None)
    assert src.Releases.read(str(tmp_path / "nothing")).deployed_at("api") is None


# -- whole samples ---------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def conf(prices: dict[str, Any] | None, tmp_path: Path) -> ExporterConf:
    return ExporterConf.from_json({
        "site": "s", "host": "gpu-1", "docker": "docker", "gpus": 2,
        "state_dir": str(tmp_path / "state"), "prices": prices,
        "services": {"api": {"project": "shop", "image": "app:1.0", "spec_hash": "0123456789ab",
                             "replicas": [1, 2]}},
        "jobs": {"train": {"project": "ml", "gpus": 1}},
    })


def cgroup_tree(tmp_path: Path, usage: dict[int, float]) -> src.CgroupReader:
    for pid, seconds in usage.items():
        _write(tmp_path / f"proc/{pid}/cgroup", f"3:cpu,cpuacct:/docker/c{pid}\n"
                                                f"4:memory:/docker/c{pid}\n")
        _write(tmp_path / f"cg/cpu,cpuacct/docker/c{pid}/cpuacct.usage", f"{int(seconds * 1e9)}")
        _write(tmp_path / f"cg/memory/docker/c{pid}/memory.usage_in_bytes", f"{pid * 1000}")
    return src.CgroupReader(str(tmp_path / "proc"), str(tmp_path / "cg"))


def series(sampler: Sampler) -> dict[str, float]:
    """`name{labels}` -> value of every sample line."""
    text = generate_latest(registry_for(sampler)).decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def run_site(tmp_path: Path, prices: dict[str, Any] | None) -> tuple[Sampler, dict[str, float]]:
    host, clock = FakeHost(), Clock()
    host.units = ("Id=hostctl-api-1.service\nNRestarts=2\nActiveState=active\n\n"
                  "Id=hostctl-api-2.service\nNRestarts=0\nActiveState=activating\n")
    host.items = [
        inspect_item("c1", "hostctl-api-1", labels("api", "shop", instance="1"), pid=11),
        inspect_item("c2", "hostctl-api-2", labels("api", "shop", instance="2"), running=False),
        inspect_item("j1", "hostctl-job-train-7", labels("train", "ml", "job", run="7"), pid=12,
                     started="2023-11-14T22:13:10Z", gpus=1),
    ]
    sampler = Sampler(conf(prices, tmp_path), run=host,
                      cgroups=cgroup_tree(tmp_path, {11: 3.0, 12: 100.0}), clock=clock)
    sampler.sample()  # the job started 10 s before: 10 GPU-seconds, all its 100 CPU-seconds
    clock.now += 60
    cgroup_tree(tmp_path, {11: 9.0, 12: 160.0})
    sampler.sample()
    return sampler, series(sampler)


def test_a_sample_of_services_and_a_job_with_prices(tmp_path: Path) -> None:
    _, s = run_site(tmp_path, {"currency": "EUR", "cpu_hour": 0.36, "gpu_hour": 3.6})
    api1, api2 = ('{project="shop",replica="1",service="api"}',
                  '{project="shop",replica="2",service="api"}')
    assert {k: v for k, v in s.items() if k.startswith("hostctl_service_")
            and "deploy" not in k} == {
        f"hostctl_service_up{api1}": 1.0, f"hostctl_service_up{api2}": 0.0,
        f"hostctl_service_healthy{api1}": 1.0, f"hostctl_service_healthy{api2}": 0.0,
        'hostctl_service_restarts_total{by="systemd",project="shop",replica="1",'
        'service="api"}': 2.0,
        'hostctl_service_restarts_total{by="probe",project="shop",replica="1",'
        'service="api"}': 0.0,
        'hostctl_service_restarts_total{by="systemd",project="shop",replica="2",'
        'service="api"}': 0.0,
        'hostctl_service_restarts_total{by="probe",project="shop",replica="2",'
        'service="api"}': 0.0,
        'hostctl_service_info{image="app:1.0",project="shop",replica="1",service="api",'
        'spec_hash="0123456789ab"}': 1.0,
        'hostctl_service_info{image="app:1.0",project="shop",replica="2",service="api",'
        'spec_hash="0123456789ab"}': 1.0,
    }
    assert s[f"hostctl_container_cpu_seconds_total{api1}"] == 9.0
    assert s[f"hostctl_container_memory_bytes{api1}"] == 11000.0
    assert f"hostctl_container_cpu_seconds_total{api2}" not in s  # nothing runs: no value
    assert (s["hostctl_host_gpus"], s["hostctl_host_gpus_allocated"]) == (2.0, 1.0)
    assert s['hostctl_project_cpu_seconds_total{project="shop"}'] == 9.0
    assert s['hostctl_project_cpu_seconds_total{project="ml"}'] == 160.0
    assert s['hostctl_project_gpu_seconds_total{project="ml"}'] == 70.0
    assert s['hostctl_project_gpu_seconds_total{project="shop"}'] == 0.0
    # 160 CPU-seconds at 0.36/h = 0.016; 70 GPU-seconds at 3.6/h = 0.07
    assert s['hostctl_project_cost_total{currency="EUR",project="ml",resource="cpu"}'] == \
        pytest.approx(0.016)
    assert s['hostctl_project_cost_total{currency="EUR",project="ml",resource="gpu"}'] == \
        pytest.approx(0.07)
    assert s['hostctl_price_per_hour{currency="EUR",resource="gpu"}'] == 3.6
    assert (s["hostctl_exporter_docker_up"], s["hostctl_exporter_systemd_up"]) == (1.0, 1.0)
    assert s["hostctl_exporter_last_sample_timestamp_seconds"] == T0 + 60


def test_without_prices_there_are_no_cost_series_at_all(tmp_path: Path) -> None:
    _, s = run_site(tmp_path, None)
    assert not [k for k in s if "cost" in k or "price" in k]
    assert s['hostctl_project_cpu_seconds_total{project="ml"}'] == 160.0


def test_only_the_priced_resource_has_a_cost(tmp_path: Path) -> None:
    _, s = run_site(tmp_path, {"currency": "USD", "gpu_hour": 1.0})
    assert sorted(k for k in s if "cost" in k) == [
        'hostctl_project_cost_total{currency="USD",project="ml",resource="gpu"}',
        'hostctl_project_cost_total{currency="USD",project="shop",resource="gpu"}']


def test_totals_survive_an_exporter_restart(tmp_path: Path) -> None:
    sampler, _ = run_site(tmp_path, None)
    again = Sampler(sampler.conf, run=sampler.run, cgroups=sampler.cgroups,
                    clock=lambda: T0 + 60)
    again.sample()  # same containers, same readings: nothing new is counted
    assert series(again)['hostctl_project_cpu_seconds_total{project="ml"}'] == 160.0


def restarts(sampler: Sampler, replica: int = 1) -> dict[str, float]:
    s = series(sampler)
    return {by: s[f'hostctl_service_restarts_total{{by="{by}",project="shop",'
                  f'replica="{replica}",service="api"}}'] for by in ("systemd", "probe")}


def probe_state(tmp_path: Path, unit: str, restarts: int) -> None:
    """What hostctl's probe keeps per unit (hostctl.render.probe: key=value lines)."""
    _write(tmp_path / f"state/health/{unit}.state",
           f"health=healthy\nfailures=0\nrestarts={restarts}\nbackoff=0\n")


def test_restarts_by_systemd_and_by_the_probe_add_up_across_resets(tmp_path: Path) -> None:
    sampler, _ = run_site(tmp_path, None)
    host = sampler.run
    assert restarts(sampler) == {"systemd": 2, "probe": 0}

    def units(n1: int) -> str:
        return (f"Id=hostctl-api-1.service\nNRestarts={n1}\nActiveState=active\n\n"
                "Id=hostctl-api-2.service\nNRestarts=0\nActiveState=active\n")

    # The probe restarts the unit (`systemctl restart`): systemd resets NRestarts to 0, the
    # probe's file says 1. The total goes on from 2, it never falls back.
    host.units = units(0)  # type: ignore[attr-defined]
    probe_state(tmp_path, "hostctl-api-1.service", 1)
    sampler.sample()
    assert restarts(sampler) == {"systemd": 2, "probe": 1}
    # then the container crashes twice, and systemd restarts it
    host.units = units(2)  # type: ignore[attr-defined]
    sampler.sample()
    assert restarts(sampler) == {"systemd": 4, "probe": 1}
    # a deploy restarts it (NRestarts back to 0): nothing is counted, nothing is lost
    host.units = units(0)  # type: ignore[attr-defined]
    sampler.sample()
    assert restarts(sampler) == {"systemd": 4, "probe": 1}
    # the totals survive the exporter's own restart
    again = Sampler(sampler.conf, run=host, cgroups=sampler.cgroups, clock=lambda: T0 + 120)
    probe_state(tmp_path, "hostctl-api-1.service", 2)
    again.sample()
    assert restarts(again) == {"systemd": 4, "probe": 2}
    assert restarts(again, 2) == {"systemd": 0, "probe": 0}  # never touched


def test_count_restarts_without_history_takes_what_the_sources_say() -> None:
    from hostctl.observability.exporter import count_restarts

    first = count_restarts(None, 3, 1)
    assert (first["systemd"], first["probe"]) == (3, 1)
    later = count_restarts(first, 1, 1)  # NRestarts was reset, then one crash
    assert (later["systemd"], later["probe"]) == (4, 1)
    gone = count_restarts(later, 1, 0)  # the probe's file was removed: nothing more
    assert (gone["systemd"], gone["probe"]) == (4, 1)


def test_a_unit_systemd_does_not_list_keeps_its_restart_totals(tmp_path: Path) -> None:
    sampler, _ = run_site(tmp_path, None)
    sampler.run.units = ""  # type: ignore[attr-defined]
    sampler.sample()
    assert restarts(sampler) == {"systemd": 2, "probe": 0}


def test_docker_down_keeps_totals_and_says_so(tmp_path: Path) -> None:
    sampler, _ = run_site(tmp_path, None)
    sampler.run.docker_up = False  # type: ignore[attr-defined]
    sampler.sample()
    s = series(sampler)
    assert s["hostctl_exporter_docker_up"] == 0.0
    assert s['hostctl_service_up{project="shop",replica="1",service="api"}'] == 0.0
    assert s['hostctl_project_cpu_seconds_total{project="ml"}'] == 160.0


def test_a_service_handed_to_the_cluster_is_read_at_every_sample(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The handoff writes /var/lib/hostctl/cluster/SERVICE on the host (its own script, run
    here under sh against the exporter's state folder) and changes no exporter config: the
    exporter reads the records itself, so the alert rules can leave the service's stopped
    replicas alone (issue 10 #4)."""
    from hostctl import layout
    from hostctl.k8s.handoff_records import record_line, remove_record_script, write_record_script

    def sh(script: str) -> None:
        subprocess.run(["sh", "-c", script], capture_output=True, check=True, timeout=30)

    sampler, s = run_site(tmp_path, None)
    assert not [k for k in s if k.startswith("hostctl_service_in_cluster")]
    cluster = Path(sampler.conf.state_dir) / src.CLUSTER_SUBDIR
    monkeypatch.setattr(layout, "CLUSTER_DIR", str(cluster))
    sh(write_record_script("api", record_line("ops", "r1", "k3s", None, now=T0)))
    _write(cluster / "train", "{}\n")  # a job's name: not a service of this host
    _write(cluster / "web.tmp", "{}\n")  # a handoff writing its record elsewhere
    sampler.sample()
    s = series(sampler)
    assert {k: v for k, v in s.items() if k.startswith("hostctl_service_in_cluster")} == {
        'hostctl_service_in_cluster{project="shop",service="api"}': 1.0}
    assert s['hostctl_service_up{project="shop",replica="2",service="api"}'] == 0.0
    (cluster / "api").write_text("not json")  # unreadable still means handed off
    sampler.sample()
    assert series(sampler)['hostctl_service_in_cluster{project="shop",service="api"}'] == 1.0
    sh(remove_record_script("api"))  # handoff --back
    sampler.sample()
    assert not [k for k in series(sampler) if k.startswith("hostctl_service_in_cluster")]


def test_the_exporter_reads_records_where_the_handoff_writes_them() -> None:
    from hostctl import layout
    from hostctl.observability.exporter_bundle import STATE_DIR

    assert f"{STATE_DIR}/{src.CLUSTER_SUBDIR}" == layout.CLUSTER_DIR


# Docker's state, the probe's record, the deploy gate's record -> hostctl_service_healthy.
# The unit started at T0 (its ActiveEnterTimestamp); the sample is taken at T0 + 10.
HEALTH_SAMPLES = [
    ("starting", None, T0 + 3, 1.0),  # right after a deploy whose health gate passed
    ("starting", None, None, 0.0),  # nobody checked this run yet
    ("starting", None, T0 - 30, 0.0),  # the gate saw the run before healthy
    ("starting", ("unhealthy", T0 + 5), T0 + 3, 0.0),  # the probe checked later: unhealthy
    ("starting", ("healthy", T0 + 5), None, 1.0),
    ("starting", ("starting", T0 + 5), None, 0.0),  # failing inside its start period
    ("unhealthy", ("healthy", T0 + 5), T0 + 3, 0.0),  # Docker's own verdict stands
    ("healthy", ("unhealthy", T0 + 5), None, 1.0),
    (None, ("unhealthy", T0 + 5), None, 0.0),  # no Docker check: hostctl's
    (None, ("healthy", T0 + 5), None, 1.0),
    (None, ("unhealthy", T0 - 30), None, 1.0),  # a verdict on the run before: none ("-")
    (None, None, None, 1.0),  # no check at all: running is healthy
]


@pytest.mark.parametrize(("docker", "probe", "verified", "metric"), HEALTH_SAMPLES)
def test_healthy_is_the_rule_status_uses(tmp_path: Path, docker: str | None,
                                         probe: tuple[str, float] | None,
                                         verified: float | None, metric: float) -> None:
    host, clock = FakeHost(), Clock()
    clock.now = T0 + 10
    host.units = ("Id=hostctl-api-1.service\nNRestarts=0\nActiveState=active\n"
                  "ActiveEnterTimestamp=Tue 2023-11-14 22:13:20 UTC\n\n"
                  "Id=hostctl-api-2.service\nNRestarts=0\nActiveState=active\n"
                  "ActiveEnterTimestamp=Tue 2023-11-14 22:13:20 UTC\n")
    host.items = [
        inspect_item("c1", "hostctl-api-1", labels("api", "shop", instance="1"), pid=11,
                     health=docker),
        inspect_item("c2", "hostctl-api-2", labels("api", "shop", instance="2"), pid=12,
                     running=False)]
    health = tmp_path / "state" / "health"
    for unit in ("hostctl-api-1.service", "hostctl-api-2.service"):  # the same records
        if probe is not None:
            _write(health / f"{unit}.state", f"health={probe[0]}\nfailures=0\n"
                                             f"last_check={int(probe[1])}\nrestarts=0\n")
        if verified is not None:
            _write(health / f"{unit}.verified", f"{int(verified)}\n")
    sampler = Sampler(conf(None, tmp_path), run=host, cgroups=cgroup_tree(tmp_path, {}),
                      clock=clock)
    sampler.sample()
    s = series(sampler)
    assert s['hostctl_service_healthy{project="shop",replica="1",service="api"}'] == metric
    # a container that does not run is never healthy, whatever was recorded
    assert s['hostctl_service_healthy{project="shop",replica="2",service="api"}'] == 0.0


# -- audit records to Logstash ---------------------------------------------------------------

def test_audit_records_are_sent_once_each_as_gelf(tmp_path: Path, gelf_sock: socket.socket,
                                                  gelf_address: str) -> None:
    log = tmp_path / "audit.log"
    records = [{"time": 1700000000, "command": "deploy", "result": "deployed", "message": "",
                "host": "app-1", "site": "s", "plan": {"start": 1}, "who": "ops"}]
    log.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"partial": ')
    state = State()
    shipper = AuditShipper(str(log), gelf_address, "s", "app-1", state)
    assert shipper.ship() == 1
    msg = json.loads(gelf_sock.recv(9000))
    assert shipper.ship() == 0  # nothing new; the partial line waits for its end
    assert msg == gelf_message(records[0], "s", "app-1")
    assert (msg["_io.hostctl.kind"], msg["_io.hostctl.project"], msg["_audit_plan"],
            msg["short_message"], msg["timestamp"]) == (
        "audit", "hostctl-audit", '{"start": 1}', "deploy deployed", 1700000000.0)
    assert state.audit_offset == len(json.dumps(records[0])) + 1


def test_without_metrics_the_program_only_ships_the_audit_records(
        tmp_path: Path, gelf_sock: socket.socket, exporter_once: Callable[[Path], int]) -> None:
    log = tmp_path / "audit.log"
    log.write_text(json.dumps({"time": 1700000000, "command": "deploy", "result": "deployed",
                               "host": "app-1", "site": "s"}) + "\n")
    assert exporter_once(log) == 0
    assert json.loads(gelf_sock.recv(9000))["short_message"] == "deploy deployed"
    # the offset is kept where the exporter keeps it: a second run sends nothing again
    assert State.load(str(tmp_path / "exporter/state.json")).audit_offset == \
        log.stat().st_size
    assert exporter_once(log) == 0
    gelf_sock.settimeout(0.5)
    with pytest.raises(TimeoutError):
        gelf_sock.recv(9000)


# -- GPU models ------------------------------------------------------------------------------

def test_a_containers_gpu_devices_from_its_device_request_or_hostctls_env() -> None:
    items = [inspect_item("a", "hostctl-job-a-1", labels("a", "ml", "job"), gpus=2,
                          device_ids=["0", "3"]),
             inspect_item("b", "hostctl-job-b-1", labels("b", "ml", "job"),
                          env=["PATH=/bin", "HOSTCTL_GPU_DEVICES=1,2"]),
             inspect_item("c", "hostctl-job-c-1", labels("c", "ml", "job"), gpus=1),
             inspect_item("d", "hostctl-job-d-1", labels("d", "ml", "job"), env=["X=1"])]
    got = [(c.gpus, c.gpu_devices) for c in src.parse_inspect(json.dumps(items), host_gpus=4)]
    assert got == [(2, ("0", "3")), (None, ("1", "2")), (1, ()), (None, ())]


MODEL_PRICES = {"currency": "EUR", "gpu_hour": 1.8, "gpu_hour_by_model": {"a100-80g": 3.6}}


def run_models_site(tmp_path: Path, prices: dict[str, Any] | None
                    ) -> tuple[Sampler, dict[str, float]]:
    """gpu-1 names its GPUs' models: train holds the a100 (`--gpus device=0`), tune the l4
    (a test host's HOSTCTL_GPU_DEVICES=1), both for 70 s."""
    host, clock = FakeHost(), Clock()
    started = "2023-11-14T22:13:10Z"
    host.items = [
        inspect_item("j1", "hostctl-job-train-7", labels("train", "ml", "job"), pid=12,
                     started=started, gpus=1, device_ids=["0"]),
        inspect_item("j2", "hostctl-job-tune-8", labels("tune", "ml", "job"), pid=13,
                     started=started, env=["HOSTCTL_GPU_DEVICES=1"]),
    ]
    data = {"site": "s", "host": "gpu-1", "docker": "docker", "gpus": 2,
            "state_dir": str(tmp_path / "state"), "prices": prices,
            "gpu_models": {"0": "a100-80g", "1": "l4"},
            "services": {"api": {"project": "shop", "image": "app:1.0",
                                 "spec_hash": "0123456789ab", "replicas": [1]}},
            "jobs": {"train": {"project": "ml", "gpus": 1}, "tune": {"project": "ml", "gpus": 1}}}
    sampler = Sampler(ExporterConf.from_json(data), run=host,
                      cgroups=cgroup_tree(tmp_path, {12: 1.0, 13: 1.0}), clock=clock)
    sampler.sample()
    clock.now += 60
    sampler.sample()
    return sampler, series(sampler)


def test_gpu_time_and_cost_follow_the_model(tmp_path: Path) -> None:
    _, s = run_models_site(tmp_path, MODEL_PRICES)
    assert {k: v for k, v in s.items() if "gpu" in k and not k.startswith("hostctl_host_")} == {
        # unchanged: all of the project's GPU time and cost
        'hostctl_project_gpu_seconds_total{project="ml"}': 140.0,
        'hostctl_project_gpu_seconds_total{project="shop"}': 0.0,
        'hostctl_project_cost_total{currency="EUR",project="ml",resource="gpu"}':
            pytest.approx(0.07 + 0.035),
        'hostctl_project_cost_total{currency="EUR",project="shop",resource="gpu"}': 0.0,
        # by model: the a100 at its price (3.6), the l4 at gpu_hour (1.8)
        'hostctl_project_gpu_model_seconds_total{gpu_model="a100-80g",project="ml"}': 70.0,
        'hostctl_project_gpu_model_seconds_total{gpu_model="l4",project="ml"}': 70.0,
        'hostctl_project_gpu_model_seconds_total{gpu_model="a100-80g",project="shop"}': 0.0,
        'hostctl_project_gpu_model_seconds_total{gpu_model="l4",project="shop"}': 0.0,
        'hostctl_project_gpu_model_cost_total{currency="EUR",gpu_model="a100-80g",'
        'project="ml"}': pytest.approx(0.07),
        'hostctl_project_gpu_model_cost_total{currency="EUR",gpu_model="l4",project="ml"}':
            pytest.approx(0.035),
        'hostctl_project_gpu_model_cost_total{currency="EUR",gpu_model="a100-80g",'
        'project="shop"}': 0.0,
        'hostctl_project_gpu_model_cost_total{currency="EUR",gpu_model="l4",project="shop"}':
            0.0,
        # gpu_model="" is Prometheus's "no such label": the price of a GPU of no listed model
        'hostctl_price_per_hour{currency="EUR",gpu_model="",resource="gpu"}': 1.8,
        'hostctl_price_per_hour{currency="EUR",gpu_model="a100-80g",resource="gpu"}': 3.6,
        'hostctl_price_per_hour{currency="EUR",gpu_model="l4",resource="gpu"}': 1.8,
    }
    assert {k: v for k, v in s.items() if k.startswith("hostctl_host_")} == {
        "hostctl_host_gpus": 2.0, "hostctl_host_gpus_allocated": 2.0,
        'hostctl_host_model_gpus{gpu_model="a100-80g"}': 1.0,
        'hostctl_host_model_gpus{gpu_model="l4"}': 1.0,
        'hostctl_host_model_gpus_allocated{gpu_model="a100-80g"}': 1.0,
        'hostctl_host_model_gpus_allocated{gpu_model="l4"}': 1.0}


def test_hosts_without_models_say_nothing_by_model(tmp_path: Path) -> None:
    _, s = run_site(tmp_path, {"currency": "EUR", "cpu_hour": 0.36, "gpu_hour": 3.6})
    assert not [k for k in s if "model" in k]


def test_models_priced_without_gpu_hour_price_only_their_own(tmp_path: Path) -> None:
    _, s = run_models_site(tmp_path, {"currency": "EUR", "gpu_hour_by_model": {"l4": 0.36}})
    assert {k: v for k, v in s.items() if "price" in k or "cost" in k} == {
        'hostctl_price_per_hour{currency="EUR",gpu_model="l4",resource="gpu"}': 0.36,
        'hostctl_project_cost_total{currency="EUR",project="ml",resource="gpu"}':
            pytest.approx(0.007),
        'hostctl_project_cost_total{currency="EUR",project="shop",resource="gpu"}': 0.0,
        'hostctl_project_gpu_model_cost_total{currency="EUR",gpu_model="l4",project="ml"}':
            pytest.approx(0.007),
        'hostctl_project_gpu_model_cost_total{currency="EUR",gpu_model="l4",project="shop"}':
            0.0,
    }


def test_model_totals_survive_a_restart_and_old_state_files_load(tmp_path: Path) -> None:
    sampler, _ = run_models_site(tmp_path, MODEL_PRICES)
    again = Sampler(sampler.conf, run=sampler.run, cgroups=sampler.cgroups,
                    clock=lambda: T0 + 60)
    again.sample()  # no time passed since the last sample: nothing new
    s = series(again)
    assert s['hostctl_project_gpu_model_seconds_total{gpu_model="l4",project="ml"}'] == 70.0
    # A state file from before models: its totals carry on, the models' start at 0.
    state = tmp_path / "state/exporter/state.json"
    old = json.loads(state.read_text())
    for t in old["projects"].values():
        t.pop("gpu_models", None)
        t.pop("gpu_model_cost", None)
    state.write_text(json.dumps(old))
    later = Sampler(sampler.conf, run=sampler.run, cgroups=sampler.cgroups,
                    clock=lambda: T0 + 120)
    later.sample()
    s = series(later)
    assert s['hostctl_project_gpu_seconds_total{project="ml"}'] == 260.0
    assert s['hostctl_project_gpu_model_seconds_total{gpu_model="l4",project="ml"}'] == 60.0


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_checks_the_model_series(tmp_path: Path) -> None:
    sampler, _ = run_models_site(tmp_path, MODEL_PRICES)
    res = subprocess.run(["promtool", "check", "metrics"], capture_output=True, text=True,
                         input=generate_latest(registry_for(sampler)).decode(), timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_bundle_prices_by_model_with_debians_python(tmp_path: Path) -> None:
    """The real .pyz on the host's python3 (-I, nothing installed) with the pricing rule it
    bundles: a Docker (a script here) reporting a job on device 1, the l4, for a minute."""
    from hostctl.observability.exporter_bundle import build_bundle

    python = "/usr/bin/python3"
    if not os.path.exists(python):
        pytest.skip("no /usr/bin/python3 on this machine")
    now = time.time()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600))
    item = inspect_item("j1", "hostctl-job-tune-8", labels("tune", "ml", "job"), pid=0,
                        started=started, gpus=1, device_ids=["1"])
    (tmp_path / "inspect.json").write_text(json.dumps([item]))
    docker = tmp_path / "docker"
    docker.write_text(f"#!/bin/sh\ncase $1 in ps) echo j1;; inspect) cat "
                      f"{tmp_path}/inspect.json;; esac\n")
    docker.chmod(0o755)
    state = tmp_path / "state"
    (state / "exporter").mkdir(parents=True)
    (state / "exporter/state.json").write_text(json.dumps({"last": now - 60}))
    (tmp_path / "c.json").write_text(json.dumps({
        "site": "s", "host": "gpu-1", "docker": str(docker), "systemctl": "/nonexistent",
        "state_dir": str(state), "port": 0, "gpus": 2,
        "gpu_models": {"0": "a100-80g", "1": "l4"},
        "prices": {"currency": "EUR", "gpu_hour": 1.0, "gpu_hour_by_model": {"l4": 36.0}},
        "jobs": {"tune": {"project": "ml", "gpus": 1}}}))
    (tmp_path / "x.pyz").write_bytes(build_bundle())
    res = subprocess.run([python, "-I", str(tmp_path / "x.pyz"), "--config",
                          str(tmp_path / "c.json"), "--once"], capture_output=True, text=True,
                         timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    s = {}
    for line in res.stdout.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            s[key] = float(value)
    seconds = s['hostctl_project_gpu_model_seconds_total{gpu_model="l4",project="ml"}']
    assert 60 <= seconds < 120  # since the last sample, a minute ago (plus the run's time)
    assert s['hostctl_project_gpu_model_seconds_total{gpu_model="a100-80g",project="ml"}'] == 0
    # 36 an hour: a cent a second
    assert s['hostctl_project_gpu_model_cost_total{currency="EUR",gpu_model="l4",'
             'project="ml"}'] == pytest.approx(seconds / 100)
    assert s['hostctl_host_model_gpus_allocated{gpu_model="l4"}'] == 1
