"""Run commands on hosts: one interface (`Runner`), SSH, local and recording backends."""

from typing import TYPE_CHECKING, Any

from hostctl.runner.base import (
    AuthenticationFailed,
    Command,
    CommandTimeout,
    ConnectionLost,
    HostKeyRejected,
    HostUnreachable,
    Result,
    Runner,
    RunnerError,
    default_known_hosts,
    shell_line,
)
from hostctl.runner.local import LocalRunner
from hostctl.runner.pool import open_runners, run_parallel
from hostctl.runner.recording import Call, RecordingRunner

if TYPE_CHECKING:
    from hostctl.runner.ssh import SSHRunner


def __getattr__(name: str) -> Any:
    # The SSH backend on first use: paramiko takes ~0.1 s to import, which a command that
    # never connects (and every importer of `hostctl.runner.base`) should not pay.
    if name == "SSHRunner":
        from hostctl.runner import ssh  # start-up: see above

        return getattr(ssh, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AuthenticationFailed",
    "Call",
    "Command",
    "CommandTimeout",
    "ConnectionLost",
    "HostKeyRejected",
    "HostUnreachable",
    "LocalRunner",
    "RecordingRunner",
    "Result",
    "Runner",
    "RunnerError",
    "SSHRunner",
    "default_known_hosts",
    "open_runners",
    "run_parallel",
    "shell_line",
]
