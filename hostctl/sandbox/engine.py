"""Get a Docker engine to talk to, starting one when this machine has none running.

Development and CI machines run no systemd, so nothing starts dockerd for us; the rig does it
itself when it may (root, dockerd installed) and explains how to fix things when it may not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import docker
from docker.errors import DockerException

from hostctl.sandbox.errors import SandboxError
from hostctl.sandbox.locking import file_lock
from hostctl.sandbox.progress import tail

DOCKERD_LOG = Path("/var/log/hostctl-dockerd.log")
_LOCAL_SOCKETS = ("", "unix:///var/run/docker.sock", "unix:///run/docker.sock")
_POLL_SECONDS = 0.25
# Kept so the child is not garbage-collected (and warned about) while we still poll it.
_started: list[subprocess.Popen[bytes]] = []


def connect() -> docker.DockerClient | None:
    """A client for the engine named by the environment, or None when it does not answer."""
    try:
        client = docker.from_env()
        client.ping()
    except DockerException:
        return None
    return client


def start_blocker() -> str | None:
    """What this machine lacks to start a local dockerd (not root, no dockerd), or None."""
    if os.geteuid() != 0:
        return (
            "the Docker engine does not answer and only root may start dockerd; "
            "start it (e.g. `sudo dockerd &`) or run as root"
        )
    if shutil.which("dockerd") is None:
        return (
            "the Docker engine does not answer and dockerd is not installed; "
            "run scripts/ci-setup.sh (apt-get install docker.io)"
        )
    return None


def ensure_engine(timeout: float = 60) -> docker.DockerClient:
    """Return a client for a running Docker engine, starting dockerd in the background if needed."""
    client = connect()
    if client is not None:
        return client
    docker_host = os.environ.get("DOCKER_HOST", "")
    if docker_host not in _LOCAL_SOCKETS:
        raise SandboxError(
            f"DOCKER_HOST={docker_host} does not answer; start that engine or unset DOCKER_HOST"
        )
    blocker = start_blocker()
    if blocker is not None:
        raise SandboxError(blocker)
    # The lock makes the check-then-start atomic across processes: never two dockerds.
    with file_lock("dockerd"):
        client = connect()
        if client is not None:
            return client
        child = None if dockerd_running() else _start_dockerd()
        return _wait_for_engine(timeout, child)


def dockerd_running() -> bool:
    """True when a dockerd process is visible in this PID namespace (it may still be starting)."""
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "dockerd":
                return True
        except OSError:
            continue  # the process exited while we looked
    return False


def _start_dockerd() -> subprocess.Popen[bytes]:
    DOCKERD_LOG.parent.mkdir(parents=True, exist_ok=True)
    with DOCKERD_LOG.open("ab") as log:
        # Own session: the daemon must outlive this process and not get its terminal's signals.
        child = subprocess.Popen(
            ["dockerd"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _started.append(child)
    return child


def _wait_for_engine(timeout: float, child: subprocess.Popen[bytes] | None) -> docker.DockerClient:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / _POLL_SECONDS) + 1):
        client = connect()
        if client is not None:
            return client
        if child is not None and child.poll() is not None:
            raise SandboxError(
                f"dockerd exited with status {child.returncode}; "
                f"last lines of {DOCKERD_LOG}:\n{tail(DOCKERD_LOG)}"
            )
        if time.monotonic() >= deadline:
            break
        time.sleep(_POLL_SECONDS)
    raise SandboxError(
        f"dockerd did not answer within {timeout:.0f}s; see {DOCKERD_LOG}:\n{tail(DOCKERD_LOG)}"
    )
