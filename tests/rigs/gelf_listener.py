"""A GELF listener for tests: receives the UDP datagrams Docker's gelf driver sends (plain,
gzip or zlib JSON, chunked or not) and keeps the decoded messages.

Bind it to 127.0.0.1 or to this machine's address on the sandbox network only (the rig's
network rule). Waits are bounded.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
import zlib
from collections.abc import Callable
from types import TracebackType
from typing import Any

CHUNK_MAGIC = b"\x1e\x0f"
Message = dict[str, Any]


def decode(payload: bytes) -> Message:
    """One complete GELF payload -> its message."""
    if payload[:2] == b"\x1f\x8b":
        payload = gzip.decompress(payload)
    elif payload[:1] == b"\x78":
        payload = zlib.decompress(payload)
    data = json.loads(payload)
    if not isinstance(data, dict):
        raise ValueError("a GELF message is a JSON object")
    return data


class GelfListener:
    def __init__(self, address: str = "127.0.0.1", port: int = 0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, port))
        self.sock.settimeout(0.2)
        self.address, self.port = self.sock.getsockname()[:2]
        self.messages: list[Message] = []
        self.errors: list[str] = []
        self._chunks: dict[bytes, dict[int, bytes]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gelf-listener", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                datagram = self.sock.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                payload = self._assemble(datagram)
                if payload is not None:
                    message = decode(payload)
                    with self._lock:
                        self.messages.append(message)
            except (ValueError, OSError, zlib.error) as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def _assemble(self, datagram: bytes) -> bytes | None:
        """A whole payload, or None while chunks of it are still missing."""
        if datagram[:2] != CHUNK_MAGIC:
            return datagram
        msg_id, seq, count = datagram[2:10], datagram[10], datagram[11]
        parts = self._chunks.setdefault(msg_id, {})
        parts[seq] = datagram[12:]
        if len(parts) < count:
            return None
        del self._chunks[msg_id]
        return b"".join(parts[i] for i in range(count))

    def received(self) -> list[Message]:
        with self._lock:
            return list(self.messages)

    def wait_for(self, match: Callable[[Message], bool], count: int = 1,
                 timeout: float = 20) -> list[Message]:
        """The first `count` messages that match, waiting at most `timeout` seconds."""
        end = time.monotonic() + timeout
        while True:
            found = [msg for msg in self.received() if match(msg)]
            if len(found) >= count or time.monotonic() >= end:
                if len(found) < count:
                    raise AssertionError(
                        f"{len(found)} of {count} matching GELF messages within {timeout:g}s; "
                        f"got {len(self.received())} in all, errors: {self.errors[:3]}")
                return found[:count]
            time.sleep(0.1)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def __enter__(self) -> GelfListener:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
