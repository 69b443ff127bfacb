"""Fixtures shared by the exporter's tests: a UDP socket the shippers send GELF to, and the
exporter program run once with a configuration that ships to it."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture()
def gelf_sock() -> Iterator[socket.socket]:
    """A UDP socket bound to 127.0.0.1 (a free port), receives wait at most 5 s."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        yield sock


@pytest.fixture()
def gelf_address(gelf_sock: socket.socket) -> str:
    """gelf_sock's address as the exporter's configuration spells it."""
    return f"udp://127.0.0.1:{gelf_sock.getsockname()[1]}"


@pytest.fixture()
def exporter_once(tmp_path: Path, gelf_address: str) -> Callable[[Path], int]:
    """Runs the exporter program once (`--once`) without metrics, its state in tmp_path,
    shipping the audit file `log` (and the runs ended under tmp_path) to gelf_sock; returns
    its exit status."""
    from hostctl.observability.exporter import main

    config = tmp_path / "config.json"

    def run(log: Path) -> int:
        config.write_text(json.dumps({
            "site": "s", "host": "app-1", "metrics": False, "state_dir": str(tmp_path),
            "audit": {"address": gelf_address, "file": str(log)}}))
        return main(["--config", str(config), "--once"])

    return run
