"""The sandbox hosts a bench runs on: booted for it, taking turns with test sessions through
the rig's session lock, an inventory written for them, removed after (BENCH_KEEP=1 keeps
them, to look at what the bench left)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hostctl.cli.sandbox import write_inventory
from hostctl.sandbox import hosts as sandbox_hosts
from hostctl.sandbox.locking import file_lock
from hostctl.sandbox.models import SandboxHost, SandboxHostRequest


@dataclass(frozen=True)
class Booted:
    inventory: str  # the inventory pointing at the booted hosts
    hosts: dict[str, SandboxHost]
    root: Path  # where write_site wrote the site


@contextmanager
def booted(hosts: Sequence[str | SandboxHostRequest], write_site: Callable[[Path], Path]
           ) -> Iterator[Booted]:
    """Boot `hosts` (names, or requests with labels and GPUs), write the site with
    `write_site(DIR)` (it returns its inventory)."""
    requests = [SandboxHostRequest(h) if isinstance(h, str) else h for h in hosts]
    with tempfile.TemporaryDirectory() as tmp, file_lock("session", timeout=1800,
                                                          on_wait="waiting for the sandbox"):
        root = Path(tmp)
        state = root / "state"
        state.mkdir()
        hosts = sandbox_hosts.up(requests, state)
        try:
            inv = str(write_inventory(str(write_site(root / "site")), hosts, state))
            yield Booted(inv, {h.name: h for h in hosts}, root / "site")
        finally:
            if not os.environ.get("BENCH_KEEP"):
                sandbox_hosts.down(state)
