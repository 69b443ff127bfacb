"""How a sandbox host container is named, labelled and started. Pure data, no engine calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hostctl.sandbox.models import SandboxHostRequest

NETWORK = "hostctl-sandbox"
LABEL = "io.hostctl.sandbox"
HOST_LABEL = "io.hostctl.sandbox.host"
INVENTORY_LABELS_LABEL = "io.hostctl.sandbox.labels"
GPUS_LABEL = "io.hostctl.sandbox.gpus"
KEY_LABEL = "io.hostctl.sandbox.key"
MODE_LABEL = "io.hostctl.sandbox.mode"
SANDBOX_FILTER = {"label": f"{LABEL}=1"}

# What systemd and an inner dockerd need, found by trial on a machine where --privileged is
# refused (it asks for capabilities, like CAP_SYS_RESOURCE, that the machine itself lacks).
CAPABILITIES = [
    "SYS_ADMIN",
    "NET_ADMIN",
    "SYS_PTRACE",
    "MKNOD",
    "AUDIT_CONTROL",
    "NET_RAW",
    "SYS_CHROOT",
]


def container_name(host: str) -> str:
    """The Docker container that is sandbox host `host`."""
    return f"hostctl-sandbox-{host}"


def volume_name(host: str) -> str:
    """The named volume holding the host's /var/lib/docker (overlay2 needs a real filesystem)."""
    return f"hostctl-sandbox-{host}-docker"


def resource_labels(host: str) -> dict[str, str]:
    """Labels on everything made for `host`, which is how `down` finds what to remove."""
    return {LABEL: "1", HOST_LABEL: host}


def network_labels() -> dict[str, str]:
    """Labels on the shared sandbox network."""
    return {LABEL: "1"}


def container_labels(
    request: SandboxHostRequest, key_path: Path, privileged: bool
) -> dict[str, str]:
    """Container labels: enough to describe the host again from the engine alone."""
    return {
        **resource_labels(request.name),
        INVENTORY_LABELS_LABEL: json.dumps(request.labels, sort_keys=True),
        GPUS_LABEL: str(request.gpus),
        KEY_LABEL: str(key_path),
        MODE_LABEL: "privileged" if privileged else "capabilities",
    }


def create_kwargs(
    request: SandboxHostRequest, image: str, key_path: Path, *, privileged: bool
) -> dict[str, Any]:
    """Keyword arguments for `client.containers.create` that boot systemd as PID 1."""
    kwargs: dict[str, Any] = {
        "image": image,
        "command": ["/lib/systemd/systemd"],
        "name": container_name(request.name),
        "hostname": request.name,
        "labels": container_labels(request, key_path, privileged),
        "network": NETWORK,
        # Published on loopback only; the engine picks a free port, so no race with others.
        "ports": {"22/tcp": ("127.0.0.1", None)},
        "volumes": {
            "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
            volume_name(request.name): {"bind": "/var/lib/docker", "mode": "rw"},
        },
        "tmpfs": {"/run": "", "/run/lock": ""},
        "cgroupns": "host",
        "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
        # systemd shuts down cleanly on SIGRTMIN+3, not on docker's default SIGTERM.
        "stop_signal": "SIGRTMIN+3",
        # With a terminal systemd prints its boot status, so `docker logs` shows how boot went;
        # plain and wide, so those lines read well in error messages.
        "tty": True,
        "environment": {"SYSTEMD_COLORS": "0", "COLUMNS": "200"},
        "detach": True,
    }
    if privileged:
        kwargs["privileged"] = True
    else:
        kwargs["cap_add"] = list(CAPABILITIES)
    return kwargs
