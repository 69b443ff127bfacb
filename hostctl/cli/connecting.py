"""What the commands that talk to hosts share about connecting to them."""

from __future__ import annotations

from collections.abc import Iterable
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
    click.get_current_context().with_resource(connecting(
        [h for h in site.inventory.hosts.values() if chosen is None or h.name in chosen],
        ssh_runner))
