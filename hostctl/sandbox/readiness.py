"""Deciding that a sandbox host is ready: systemd up, its dockerd active, SSH with our key works."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import paramiko
from docker.errors import APIError, NotFound
from docker.models.containers import Container

from hostctl.sandbox.errors import SandboxError
from hostctl.sandbox.models import SandboxHost

POLL_SECONDS = 0.25
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
SYSTEM_UP = ("running", "degraded")
SYSTEMD_STATES = (
    "initializing",
    "starting",
    "running",
    "degraded",
    "maintenance",
    "stopping",
    "offline",
)


@dataclass
class Check:
    """One readiness condition and the last thing it saw, for the timeout message."""

    name: str
    probe: Callable[[], tuple[bool, str]]
    last: str = "not tried yet"


def exec_text(container: Container, argv: list[str]) -> tuple[int, str]:
    """Run argv inside the container; its exit code and combined output, stripped."""
    result = container.exec_run(argv)
    return int(result.exit_code), result.output.decode(errors="replace").strip()


def systemd_state(container: Container) -> tuple[bool, str]:
    """Whether systemd has finished booting (running or degraded), and what it said."""
    _, state = exec_text(container, ["systemctl", "is-system-running"])
    return state in SYSTEM_UP, state


def docker_active(container: Container) -> tuple[bool, str]:
    """Whether the host's own docker.service is active, and what systemctl said."""
    _, state = exec_text(container, ["systemctl", "is-active", "docker.service"])
    return state == "active", state


def ssh_works(host: SandboxHost, timeout: float = 5.0) -> tuple[bool, str]:
    """Whether an SSH session with the rig's key can run a command on the host."""
    client = paramiko.SSHClient()
    # Host keys are new at every boot; there is nothing to check them against.
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    try:
        client.connect(
            host.ssh_host,
            port=host.ssh_port,
            username=host.ssh_user,
            key_filename=str(host.key_path),
            look_for_keys=False,
            allow_agent=False,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
        )
        _, stdout, _ = client.exec_command("true", timeout=timeout)
        status = stdout.channel.recv_exit_status()
    except (paramiko.SSHException, OSError, EOFError) as error:
        return False, f"{type(error).__name__}: {error}"
    finally:
        client.close()
    return status == 0, f"`true` exited {status}"


def wait_ready(container: Container, host: SandboxHost, timeout: float) -> None:
    """Block until the host is ready; raise SandboxError with diagnostics after `timeout`."""
    checks = [
        Check("systemd is-system-running", lambda: systemd_state(container)),
        Check("docker.service", lambda: docker_active(container)),
        Check("ssh", lambda: ssh_works(host)),
    ]
    deadline = time.monotonic() + timeout
    pending = list(checks)
    for _ in range(int(timeout / POLL_SECONDS) + 1):
        _fail_if_stopped(container, host.name)
        while pending and _passes(pending[0]):
            pending.pop(0)
        if not pending:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_SECONDS)
    raise SandboxError(_timeout_message(container, host.name, timeout, checks, pending))


def _passes(check: Check) -> bool:
    try:
        ok, check.last = check.probe()
    except APIError as error:
        ok, check.last = False, f"exec failed: {error.explanation or error}"
    return ok


def _fail_if_stopped(container: Container, name: str) -> None:
    try:
        container.reload()
    except NotFound as error:
        raise SandboxError(
            f"sandbox host {name}: its container disappeared while booting"
        ) from error
    if container.status != "running":
        raise SandboxError(
            f"sandbox host {name}: container {container.name} is {container.status} while booting;"
            f" last log lines:\n{log_tail(container)}"
        )


def _timeout_message(
    container: Container, name: str, timeout: float, checks: list[Check], pending: list[Check]
) -> str:
    states = "\n".join(
        f"  {c.name}: {'waiting, last saw: ' if c in pending else 'ok, '}{c.last}" for c in checks
    )
    _, failed = exec_text(container, ["systemctl", "--failed", "--no-legend", "--plain"])
    return (
        f"sandbox host {name} not ready after {timeout:.0f}s:\n{states}\n"
        f"failed units: {failed or '(none)'}\n"
        f"last log lines of container {container.name}:\n{log_tail(container)}"
    )


def log_tail(container: Container, lines: int = 30) -> str:
    """The container's last log lines (systemd's console output), for error messages."""
    try:
        text = container.logs(tail=lines).decode(errors="replace")
    except APIError as error:
        return f"(logs unavailable: {error})"
    # systemd colours its status lines for the terminal it was given; messages are plain text.
    return _ANSI.sub("", text).replace("\r", "").rstrip() or "(no output)"
