"""Run commands on hosts: one interface (`Runner`), SSH, local and recording backends."""

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
    shell_line,
)
from hostctl.runner.local import LocalRunner
from hostctl.runner.pool import open_runners, run_parallel
from hostctl.runner.recording import Call, RecordingRunner
from hostctl.runner.ssh import SSHRunner, default_known_hosts

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
