"""What the commands that talk to hosts share about connecting to them."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from functools import partial
from typing import Any

import click


def connect_early(site: Any, hosts: Iterable[str] | None) -> None:
    """Start the SSH handshakes with the hosts a command will use (hosts.early), once
    everything it checks before contacting a host has passed: they go on while the command
    imports the rest of what it needs and works out what to ask. Closed with the command."""
    # imported here: keeps hostctl --help and start-up fast
    from hostctl.hosts.early import connecting
    from hostctl.hosts.session import ssh_runner

    chosen = None if hosts is None else set(hosts)
    targets = [h for h in site.inventory.hosts.values() if chosen is None or h.name in chosen]
    if any(h.ssh.persist <= 0 for h in targets):
        # Paramiko is imported before the handshakes start, here: imported by their
        # threads it shared the CPU with the rest of start-up, and every handshake waited.
        import hostctl.runner.ssh  # noqa: F401
    # The handshakes' threads wake at each message from a host; while the main thread
    # works (imports, rendering), each wake-up waited for it to yield, up to Python's
    # switch interval: 5 ms by default, 0.5 ms while this command runs.
    ctx = click.get_current_context()
    ctx.call_on_close(partial(sys.setswitchinterval, sys.getswitchinterval()))
    sys.setswitchinterval(0.0005)
    ctx.with_resource(connecting(targets, ssh_runner))
