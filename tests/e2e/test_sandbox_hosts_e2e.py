"""The sandbox rig on this machine: the local Docker engine, then real hosts booted, used and
removed. Its pure parts are tested in tests/unit/sandbox/test_sandbox_rig.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

from hostctl.sandbox import app_image, container_spec, hosts, readiness
from hostctl.sandbox.errors import SandboxError
from hostctl.sandbox.models import SandboxHost, SandboxHostRequest
from tests.rigs.sandbox_hosts import STANDARD_HOSTS, http_get, runs_last, ssh

REPO = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------- the local engine


START_ENGINE_SCRIPT = """
set -e
# A private /run, /var/lib/docker and /var/log, and no view of the real dockerd:
# to ensure_engine this machine looks like a fresh CI box with dockerd installed but stopped.
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /var/lib/docker
mount -t tmpfs tmpfs /var/log
"$PYTHON" - <<'PY'
import threading
from pathlib import Path
from hostctl.sandbox import engine
assert engine.connect() is None and not engine.dockerd_running()
clients = []
threads = [threading.Thread(target=lambda: clients.append(engine.ensure_engine(60)))
           for _ in range(3)]
for t in threads: t.start()
for t in threads: t.join()
dockerds = [p for p in Path("/proc").glob("[0-9]*/comm") if p.read_text().strip() == "dockerd"]
print(len(clients), len(dockerds), clients[0].version()["Version"])
print(Path("/var/log/hostctl-dockerd.log").read_text().splitlines()[0])
PY
"""


@pytest.mark.sandbox
def test_ensure_engine_starts_exactly_one_dockerd_when_none_runs(
    sandbox_engine: docker.DockerClient,
) -> None:
    # New mount, PID and network namespaces hide the running engine; everything started in
    # them dies with the namespace when the script ends.
    result = subprocess.run(
        [
            "unshare",
            "--mount",
            "--pid",
            "--net",
            "--fork",
            "--mount-proc",
            "sh",
            "-c",
            START_ENGINE_SCRIPT,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "PYTHON": sys.executable},
        check=False,
    )
    if result.returncode != 0 and "unshare failed" in result.stderr and not os.environ.get("CI"):
        pytest.skip(f"cannot make namespaces here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    counts, log_line = result.stdout.splitlines()
    assert counts.split()[:2] == ["3", "1"]
    assert "Starting up" in log_line


@pytest.mark.sandbox
def test_demo_app_serves_health_version_and_argv_and_can_be_broken(
    sandbox_engine: docker.DockerClient,
) -> None:
    image_id = app_image.build("0.9.1-rig")
    assert app_image.build("0.9.1-rig") == image_id  # reused, not rebuilt
    image = sandbox_engine.images.get("hostctl-demo-app:0.9.1-rig")
    assert image.id == image_id and "APP_VERSION=0.9.1-rig" in image.attrs["Config"]["Env"]
    healthy = _run_local(sandbox_engine, image_id, ["--name=x", "two words"], {})
    broken = _run_local(sandbox_engine, image_id, [], {"APP_HEALTHY": "0", "PORT": "9090"})
    try:
        base = f"http://127.0.0.1:{_published(healthy, '8080/tcp')}"
        assert http_get(f"{base}/health") == (200, "ok\n")
        assert http_get(f"{base}/version") == (200, "0.9.1-rig\n")
        assert http_get(f"{base}/argv") == (200, "--name=x\ntwo words\n")
        assert "argc=2" in healthy.logs().decode()
        printenv = healthy.exec_run(["printenv", "APP_VERSION", "PORT"])
        assert (printenv.exit_code, printenv.output) == (0, b"0.9.1-rig\n8080\n")
        assert healthy.exec_run(["printenv", "NOT_SET"]).exit_code == 1
        broken_base = f"http://127.0.0.1:{_published(broken, '9090/tcp')}"
        assert http_get(f"{broken_base}/version") == (200, "0.9.1-rig\n")
        assert http_get(f"{broken_base}/health")[0] == 404
    finally:
        healthy.remove(force=True)
        broken.remove(force=True)


def _run_local(
    client: docker.DockerClient, image: str, args: list[str], env: dict[str, str]
) -> docker.models.containers.Container:
    port = f"{env.get('PORT', '8080')}/tcp"
    return client.containers.run(
        image, args, environment=env, ports={port: ("127.0.0.1", None)}, detach=True
    )


def _published(container: docker.models.containers.Container, port: str) -> str:
    container.reload()
    return str(container.attrs["NetworkSettings"]["Ports"][port][0]["HostPort"])


# ---------------------------------------------------------------- real sandbox hosts


def _by_name(sandbox_hosts: list[SandboxHost]) -> dict[str, SandboxHost]:
    return {h.name: h for h in sandbox_hosts}


@pytest.mark.sandbox
def test_hosts_are_booted_as_requested_and_recorded(
    sandbox_hosts: list[SandboxHost], sandbox_state_dir: Path
) -> None:
    assert [(h.name, h.labels, h.gpus) for h in sandbox_hosts] == [
        (r.name, r.labels, r.gpus) for r in STANDARD_HOSTS
    ]
    assert hosts.read_state(sandbox_state_dir) == sandbox_hosts
    assert {h.name: h for h in hosts.list_hosts()} == _by_name(sandbox_hosts)
    assert len({h.ssh_port for h in sandbox_hosts}) == 3
    assert len({h.address for h in sandbox_hosts}) == 3
    assert all(h.ssh_host == "127.0.0.1" and h.ssh_user == "root" for h in sandbox_hosts)


@pytest.mark.sandbox
def test_each_host_runs_systemd_as_pid1_and_its_own_docker(
    sandbox_hosts: list[SandboxHost],
) -> None:
    for host in sandbox_hosts:
        facts = ssh(
            host,
            "cat /proc/1/comm; hostname; systemctl is-system-running || true; "
            "systemctl is-active docker.service ssh.service; docker info --format '{{.Driver}}'",
        ).splitlines()
        assert facts[0] == "systemd", host.name
        assert facts[1] == host.name
        assert facts[2] in ("running", "degraded"), (host.name, facts[2])
        assert facts[3:] == ["active", "active", "overlay2"], host.name


@pytest.mark.sandbox
def test_hosts_reach_each_other_on_the_rig_network(sandbox_hosts: list[SandboxHost]) -> None:
    edge, app = _by_name(sandbox_hosts)["edge-1"], _by_name(sandbox_hosts)["app-1"]
    banner = ssh(
        edge,
        f"python3 -c \"import socket; s = socket.create_connection(('{app.address}', 22), 5); "
        'print(s.recv(64).decode().strip())"',
    )
    assert banner.startswith("SSH-2.0-OpenSSH")


@pytest.mark.sandbox
def test_up_again_reuses_the_running_hosts(
    sandbox_hosts: list[SandboxHost], sandbox_state_dir: Path, sandbox_engine: docker.DockerClient
) -> None:
    ids = {h.name: sandbox_engine.containers.get(h.container_name).id for h in sandbox_hosts}
    started = time.monotonic()
    again = hosts.up(STANDARD_HOSTS, sandbox_state_dir)
    assert time.monotonic() - started < 30
    assert again == sandbox_hosts
    assert {h.name: sandbox_engine.containers.get(h.container_name).id for h in again} == ids


@pytest.mark.sandbox
def test_demo_app_loaded_into_a_host_answers_on_the_host_address(
    sandbox_hosts: list[SandboxHost],
) -> None:
    app = _by_name(sandbox_hosts)["app-1"]
    app_image.build("1.4.2")
    assert "Loaded image: hostctl-demo-app:1.4.2" in hosts.load_image(app, "hostctl-demo-app:1.4.2")
    ssh(
        app,
        "docker rm -f demo-app >/dev/null 2>&1; "
        "docker run -d --name demo-app -p 8080:8080 hostctl-demo-app:1.4.2 serve 'a b'",
    )
    try:
        assert http_get(f"http://{app.address}:8080/health") == (200, "ok\n")
        assert http_get(f"http://{app.address}:8080/version") == (200, "1.4.2\n")
        assert http_get(f"http://{app.address}:8080/argv") == (200, "serve\na b\n")
    finally:
        ssh(app, "docker rm -f demo-app", check=False)


@pytest.mark.sandbox
def test_a_host_that_is_not_ready_is_reported_with_what_it_waits_for(
    sandbox_hosts: list[SandboxHost], sandbox_engine: docker.DockerClient
) -> None:
    gpu = _by_name(sandbox_hosts)["gpu-1"]
    container = sandbox_engine.containers.get(gpu.container_name)
    ssh(gpu, "systemctl stop docker.socket docker.service")
    try:
        with pytest.raises(SandboxError) as raised:
            readiness.wait_ready(container, gpu, timeout=1)
        message = str(raised.value)
        assert message.startswith("sandbox host gpu-1 not ready after 1s:\n")
        assert re.search(r"^  systemd is-system-running: ok, (running|degraded)$", message, re.M)
        assert "  docker.service: waiting, last saw: inactive" in message
        assert "  ssh: waiting, last saw: not tried yet" in message
        assert "last log lines of container hostctl-sandbox-gpu-1:\n" in message
        assert "[  OK  ] Started ssh.service - OpenBSD Secure Shell server.\n" in message
        assert "\x1b[" not in message
    finally:
        ssh(gpu, "systemctl start docker.service")
    readiness.wait_ready(container, gpu, timeout=60)


@pytest.mark.sandbox
def test_privileged_is_tried_when_capabilities_cannot_boot(
    sandbox_hosts: list[SandboxHost],
    sandbox_state_dir: Path,
    sandbox_engine: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An unknown capability makes the engine refuse the first attempt, as a machine that
    # lacks a needed capability would.
    monkeypatch.setattr(container_spec, "CAPABILITIES", ["NOT_A_CAP"])
    request = SandboxHostRequest("fallback-1")
    try:
        booted = hosts.up([request], sandbox_state_dir)
    except SandboxError as error:
        # Machines like this one refuse --privileged too; then both reasons are reported.
        lines = str(error).splitlines()
        assert lines[0] == "sandbox host fallback-1 would not boot systemd:"
        assert "unknown capability" in lines[1] and lines[1].startswith("capabilities: ")
        assert lines[2].startswith("--privileged: ")
    else:
        container = sandbox_engine.containers.get(booted[0].container_name)
        assert container.labels["io.hostctl.sandbox.mode"] == "privileged"
        assert ssh(booted[0], "cat /proc/1/comm") == "systemd"
    finally:
        for found in sandbox_engine.containers.list(all=True, filters={"name": "fallback-1"}):
            found.remove(force=True)
        sandbox_engine.volumes.get("hostctl-sandbox-fallback-1-docker").remove(force=True)
        hosts.write_state(sandbox_state_dir, sandbox_hosts)


@pytest.mark.sandbox
def test_a_container_of_the_same_name_not_made_by_the_rig_is_left_alone(
    sandbox_hosts: list[SandboxHost], sandbox_state_dir: Path, sandbox_engine: docker.DockerClient
) -> None:
    stranger = sandbox_engine.containers.create(
        app_image.build("0.9.1-rig"), name="hostctl-sandbox-stranger-1"
    )
    try:
        with pytest.raises(SandboxError) as raised:
            hosts.up([SandboxHostRequest("stranger-1")], sandbox_state_dir)
        assert str(raised.value) == (
            "container hostctl-sandbox-stranger-1 exists but was not made by the rig; "
            "remove it by hand"
        )
        stranger.reload()
        assert hosts.read_state(sandbox_state_dir) == sandbox_hosts
    finally:
        stranger.remove(force=True)


@runs_last
@pytest.mark.sandbox
def test_down_removes_everything_it_made_and_nothing_else(
    sandbox_hosts: list[SandboxHost], sandbox_state_dir: Path, sandbox_engine: docker.DockerClient
) -> None:
    decoy_volume = sandbox_engine.volumes.create("hostctl-rig-test-decoy")
    decoy_network = sandbox_engine.networks.create("hostctl-rig-test-decoy")
    decoy_container = sandbox_engine.containers.create(
        app_image.build("0.9.1-rig"), name="hostctl-rig-test-decoy"
    )
    try:
        started = time.monotonic()
        teardown = hosts.down(sandbox_state_dir)
        assert time.monotonic() - started < 60
        assert teardown == hosts.Teardown(
            containers=sorted(h.container_name for h in sandbox_hosts),
            volumes=sorted(f"{h.container_name}-docker" for h in sandbox_hosts),
            networks=["hostctl-sandbox"],
        )
        sandbox_only = {"label": "io.hostctl.sandbox"}
        assert sandbox_engine.containers.list(all=True, filters=sandbox_only) == []
        assert sandbox_engine.volumes.list(filters=sandbox_only) == []
        assert sandbox_engine.networks.list(filters=sandbox_only) == []
        assert not (sandbox_state_dir / "hosts.json").exists()
        assert hosts.list_hosts() == []
        decoy_volume.reload()
        decoy_network.reload()
        decoy_container.reload()
        assert hosts.down(sandbox_state_dir) == hosts.Teardown([], [], [])
    finally:
        decoy_container.remove(force=True)
        decoy_network.remove()
        decoy_volume.remove(force=True)
