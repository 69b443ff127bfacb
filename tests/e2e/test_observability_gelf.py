"""Docker's real gelf messages, from a sandbox host to a test listener on this machine's
address on the sandbox network: the `docker run` line hostctl builds for a service, with the
gelf options of a logging section in place of the default (`--log-driver none`: the unit's
journal is the copy).

Also: with nothing listening, containers still start, run and finish (non-blocking), and
`docker logs` still shows their output.
"""

from __future__ import annotations

import shlex
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator

import docker
import pytest

from hostctl.observability.logging_args import log_args
from hostctl.render.docker_cmd import service_run_argv
from hostctl.render.site import service_unit
from hostctl.sandbox import app_image
from hostctl.sandbox.container_spec import NETWORK
from hostctl.sandbox.image_transfer import pipe_image
from hostctl.sandbox.models import SandboxHost
from hostctl.spec import model as m
from hostctl.spec.hashing import spec_hash
from hostctl.spec.placement import Instance
from hostctl.spec.sections.logging import LoggingConfig, LogstashSettings
from hostctl.systemd.quoting import exec_line
from tests.rigs.gelf_listener import GelfListener, Message
from tests.rigs.sandbox_hosts import ssh

pytestmark = pytest.mark.sandbox
IMAGE = "hostctl-demo-app:1.0"
SITE = "obs-site"
PROJECT = "obs"


@pytest.fixture(scope="module")
def app_host(sandbox_hosts: list[SandboxHost], sandbox_engine: docker.DockerClient
             ) -> Iterator[SandboxHost]:
    host = next(h for h in sandbox_hosts if h.name == "app-1")
    if ssh(host, f"docker image inspect {IMAGE} >/dev/null 2>&1 && echo yes",
           check=False) != "yes":
        app_image.build("1.0")
        pipe_image(sandbox_engine, IMAGE, sandbox_engine.containers.get(host.container_name))
    ssh(host, f"docker network create hostctl-{PROJECT} >/dev/null 2>&1; true")
    yield host
    ssh(host, "docker rm -f $(docker ps -aq --filter label=io.hostctl.site=obs-site) "
              ">/dev/null 2>&1; true")


@pytest.fixture(scope="module")
def gateway(sandbox_engine: docker.DockerClient) -> str:
    """This machine's address on the sandbox network: where sandbox hosts reach it."""
    network = sandbox_engine.networks.get(NETWORK)
    return str(network.attrs["IPAM"]["Config"][0]["Gateway"])


def run_line(host: SandboxHost, name: str, script: str, cfg: LoggingConfig,
             keep: bool = False) -> list[str]:
    """hostctl's `docker run` for a one-replica service, detached, logging per `cfg`;
    `keep`: without --rm, so the test can look at it after it exits."""
    hosts = {host.name: m.Host(host.name, host.address)}
    inv = m.Inventory(file="site.yml", site=SITE, hosts=hosts)
    w = m.Workload(kind="service", name=name, project=PROJECT, image=IMAGE,
                   command=("sh", "-c", script))
    argv = service_run_argv(Instance(w, hosts[host.name], 1), SITE)
    at = argv.index("--log-driver")
    assert argv[at:at + 2] == ["--log-driver", "none"]  # the default, replaced here
    argv[at:at + 2] = log_args(cfg, inv, w)
    argv = [argv[0], "run", "--detach", *argv[2:]]
    return [word for word in argv if not (keep and word == "--rm")]


def logging_to(address: str, port: int) -> LoggingConfig:
    return LoggingConfig(host="app-1", logstash=LogstashSettings(port=port, address=address))


def test_docker_sends_gelf_with_hostctls_fields(app_host: SandboxHost, gateway: str) -> None:
    nonce = uuid.uuid4().hex[:8]
    script = f"echo hello-{nonce}; echo trouble-{nonce} >&2; sleep 2"
    with GelfListener(gateway) as listener:
        argv = run_line(app_host, "gelf-probe", script, logging_to(gateway, listener.port))
        ssh(app_host, f"docker rm -f hostctl-gelf-probe-1 >/dev/null 2>&1; {shlex.join(argv)}")
        out = listener.wait_for(lambda msg: msg.get("short_message") == f"hello-{nonce}",
                                timeout=30)[0]
        err = listener.wait_for(lambda msg: msg.get("short_message") == f"trouble-{nonce}",
                                timeout=30)[0]
    w = m.Workload(kind="service", name="gelf-probe", project=PROJECT, image=IMAGE,
                   command=("sh", "-c", script))
    expected: Message = {
        "host": "app-1",  # the sandbox host's hostname, as dockerd sends it
        "_tag": "hostctl-gelf-probe-1",
        "_container_name": "hostctl-gelf-probe-1",
        "_image_name": IMAGE,
        "_io.hostctl.site": SITE,
        "_io.hostctl.host": "app-1",
        "_io.hostctl.project": PROJECT,
        "_io.hostctl.workload": "gelf-probe",
        "_io.hostctl.kind": "service",
        "_io.hostctl.instance": "1",
        "_io.hostctl.spec-hash": spec_hash(w),
    }
    assert {k: out.get(k) for k in expected} == expected
    assert (out["level"], err["level"]) == (6, 3)  # stdout info, stderr error
    assert "_io.hostctl.run" not in out  # a label this container does not have is left out
    assert "_io.hostctl.managed" not in out  # only the labels the pipeline reads are sent


def test_without_logstash_containers_start_run_and_keep_their_logs(
        app_host: SandboxHost, gateway: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((gateway, 0))
        closed = probe.getsockname()[1]  # nothing listens there once this is closed
    cfg = logging_to(gateway, closed)
    flood = "i=0; while [ $i -lt 20000 ]; do echo line $i; i=$((i+1)); done; echo flood-done"
    runs = {"gelf-idle": "echo started; sleep 60", "gelf-flood": flood}
    for name, script in runs.items():
        argv = run_line(app_host, name, script, cfg, keep=True)
        ssh(app_host, f"docker rm -f hostctl-{name}-1 >/dev/null 2>&1; {shlex.join(argv)}")
    start = time.monotonic()
    state = ""
    while time.monotonic() - start < 60:
        state = ssh(app_host, "docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "
                              "hostctl-gelf-flood-1")
        if state.startswith("exited"):
            break
        time.sleep(0.5)
    # 20000 lines into a sink that is not there: the container is never held up by it
    assert state == "exited 0", state
    assert ssh(app_host, "docker inspect -f '{{.State.Running}}' hostctl-gelf-idle-1") == "true"
    assert ssh(app_host, "docker logs hostctl-gelf-idle-1 2>&1") == "started"
    assert ssh(app_host, "docker logs --tail 1 hostctl-gelf-flood-1 2>&1") == "flood-done"


def test_a_service_unit_with_gelf_still_has_its_output_in_its_journal(
        app_host: SandboxHost, gateway: str) -> None:
    """`hostctl logs` reads the unit's journal: the attached `docker run` client keeps
    printing the container's output there, whatever the log driver. The unit is hostctl's
    own rendering, with the gelf options where the integration puts them."""
    nonce = uuid.uuid4().hex[:8]
    hosts = {app_host.name: m.Host(app_host.name, app_host.address)}
    inv = m.Inventory(file="site.yml", site=SITE, hosts=hosts)
    w = m.Workload(kind="service", name="gelf-unit", project=PROJECT, image=IMAGE,
                   command=("sh", "-c", f"echo unit-{nonce}; sleep 300"))
    with GelfListener(gateway) as listener:
        cfg = logging_to(gateway, listener.port)
        unit = service_unit(Instance(w, hosts[app_host.name], 1), SITE)
        gelf = exec_line(["/x", *log_args(cfg, inv, w)])[len("/x "):]
        text = unit.content.decode()
        assert text.count("--log-driver none") == 1
        text = text.replace("--log-driver none", gelf)
        subprocess.run(app_host.ssh_argv(f"cat > {unit.path}"), input=text.encode(),
                       check=True, timeout=60)
        try:
            ssh(app_host, "systemctl daemon-reload && systemctl start hostctl-gelf-unit-1")
            listener.wait_for(lambda msg: msg.get("short_message") == f"unit-{nonce}",
                              timeout=30)
            journal = ""
            for _ in range(40):  # bounded: the journal may lag the datagram a little
                journal = ssh(app_host, "journalctl -u hostctl-gelf-unit-1 -o cat --no-pager")
                if f"unit-{nonce}" in journal:
                    break
                time.sleep(0.5)
            assert f"unit-{nonce}" in journal.splitlines(), journal
        finally:
            ssh(app_host, f"systemctl stop hostctl-gelf-unit-1; rm -f {unit.path}; "
                          "systemctl daemon-reload", check=False)
