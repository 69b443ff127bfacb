"""A rig of real test hosts: containers running systemd, sshd and dockerd, reached over SSH.

`up([SandboxHostRequest("app-1", {"role": "app"})], state_dir)` boots them and returns
`SandboxHost` records (SSH port on 127.0.0.1, key, address on the rig's network);
`down(state_dir)` removes everything the rig made.
"""

from hostctl.sandbox.engine import ensure_engine
from hostctl.sandbox.errors import SandboxError
from hostctl.sandbox.host_image import ensure_host_image
from hostctl.sandbox.hosts import Teardown, down, list_hosts, load_image, read_state, up
from hostctl.sandbox.models import SandboxHost, SandboxHostRequest

__all__ = [
    "SandboxError",
    "SandboxHost",
    "SandboxHostRequest",
    "Teardown",
    "down",
    "ensure_engine",
    "ensure_host_image",
    "list_hosts",
    "load_image",
    "read_state",
    "up",
]
