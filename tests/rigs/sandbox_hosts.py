"""Helpers for tests that use sandbox hosts: the standard trio, SSH, HTTP, test ordering.

Kept apart from the pytest plugin (tests/rigs/sandbox_rig.py) so test modules can import them
without importing the plugin before pytest registers it.
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TypeVar

from hostctl.sandbox.models import SandboxHost, SandboxHostRequest

STANDARD_HOSTS = (
    SandboxHostRequest("edge-1", {"role": "edge"}),
    SandboxHostRequest("app-1", {"role": "app"}),
    SandboxHostRequest("gpu-1", {"role": "gpu"}, gpus=1),
)
RUNS_LAST = "sandbox_runs_last"
_F = TypeVar("_F", bound=Callable[..., object])
# No proxy, whatever the environment says: requests go straight to loopback or sandbox hosts.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def runs_last(test: _F) -> _F:
    """Mark a test to run after every other one in the session (for tests that end the rig)."""
    setattr(test, RUNS_LAST, True)
    return test


def ssh(host: SandboxHost, command: str, *, timeout: float = 60, check: bool = True) -> str:
    """Run a shell command on the host with plain OpenSSH; its stdout, stripped."""
    result = subprocess.run(
        host.ssh_argv(command), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"ssh {host.name} {command!r} exited {result.returncode}:\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}"
        )
    return result.stdout.strip()


def http_get(url: str, *, attempts: int = 40, interval: float = 0.25) -> tuple[int, str]:
    """GET url, retrying (bounded) while nothing answers yet; the status and body.

    Only for 127.0.0.1 or sandbox host addresses: the rig's network rule.
    """
    error: Exception | None = None
    for _ in range(attempts):
        try:
            with _DIRECT.open(url, timeout=2) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as answer:
            return answer.code, answer.read().decode()
        except (urllib.error.URLError, ConnectionError, TimeoutError) as failure:
            error = failure
            time.sleep(interval)
    raise AssertionError(f"nothing answered {url} after {attempts} tries: {error}")
