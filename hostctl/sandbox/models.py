"""What a caller asks for and gets back: plain records that round-trip through JSON."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# A host name becomes a hostname, part of a container name and of a volume name:
# the intersection of what those accept.
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")


@dataclass(frozen=True)
class SandboxHostRequest:
    """One host to boot: its name (also its hostname), inventory labels and GPU count."""

    name: str
    labels: dict[str, str] = field(default_factory=dict)
    gpus: int = 0

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(
                f"sandbox host name {self.name!r}: use 1-32 of a-z, 0-9 and '-', "
                "starting and ending with a letter or digit"
            )
        if self.gpus < 0:
            raise ValueError(f"sandbox host {self.name}: gpus must be >= 0, not {self.gpus}")


@dataclass(frozen=True)
class SandboxHost:
    """A booted sandbox host and how to reach it."""

    name: str
    address: str
    ssh_host: str
    ssh_port: int
    ssh_user: str
    key_path: Path
    container_name: str
    labels: dict[str, str] = field(default_factory=dict)
    gpus: int = 0

    def ssh_argv(self, *remote_command: str) -> list[str]:
        """A plain OpenSSH command reaching this host; the remote command goes last, unquoted.

        Host keys are not checked or remembered: every sandbox host makes new ones at boot.
        """
        return [
            "ssh",
            "-i",
            str(self.key_path),
            "-p",
            str(self.ssh_port),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            f"{self.ssh_user}@{self.ssh_host}",
            *remote_command,
        ]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; `from_json` reads it back."""
        return {
            "name": self.name,
            "address": self.address,
            "ssh_host": self.ssh_host,
            "ssh_port": self.ssh_port,
            "ssh_user": self.ssh_user,
            "key_path": str(self.key_path),
            "container_name": self.container_name,
            "labels": dict(self.labels),
            "gpus": self.gpus,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SandboxHost:
        """The inverse of `to_json`."""
        return cls(
            name=str(data["name"]),
            address=str(data["address"]),
            ssh_host=str(data["ssh_host"]),
            ssh_port=int(data["ssh_port"]),
            ssh_user=str(data["ssh_user"]),
            key_path=Path(data["key_path"]),
            container_name=str(data["container_name"]),
            labels={str(k): str(v) for k, v in data.get("labels", {}).items()},
            gpus=int(data.get("gpus", 0)),
        )
