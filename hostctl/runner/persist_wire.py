"""How a hostctl command and the connection keeper (`persist_master`) talk over their Unix
socket: one message each way per request.

A message is a 4-byte big-endian length, a JSON header of that length and then the header's
`payload` bytes, raw: a command's stdin one way, its stdout and stderr the other (a deploy's
env files and image tarballs are bytes, not text, and are never re-encoded). A request to
connect or run is answered with one byte first, TAKEN or REFUSED.
"""

from __future__ import annotations

import json
import socket
import struct
from pathlib import Path
from typing import Any

VERSION = 2
"""In the socket's name: a keeper started by a hostctl speaking another version is not
asked (each has its own socket)."""

TAKEN = b"\x01"
"""The keeper's first byte of answer to a command to connect or run: it will be done; the
answer message follows. Sent before anything is done, so a command that sees the socket end
before it knows that nothing was done (and connects directly instead)."""
REFUSED = b"\x00"
"""Instead of TAKEN: the keeper is stopping and did nothing; no message follows."""

MAX_HEADER = 1 << 20
MAX_PAYLOAD = 1 << 31
_LENGTH = struct.Struct(">I")


def socket_path(directory: Path) -> Path:
    """Where the keeper of this VERSION listens in its folder."""
    return directory / f"keeper-v{VERSION}.sock"


class WireError(Exception):
    """The other side closed the socket or sent something that is not a message."""


def encode(header: dict[str, Any], payload: bytes = b"") -> bytes:
    """One message: `header` (JSON) announcing `payload`."""
    head = json.dumps({**header, "payload": len(payload)}, separators=(",", ":")).encode()
    if len(head) > MAX_HEADER:
        raise ValueError("message header too large")
    return _LENGTH.pack(len(head)) + head + payload


def send(sock: socket.socket, header: dict[str, Any], payload: bytes = b"") -> None:
    sock.sendall(encode(header, payload))


def receive(sock: socket.socket) -> tuple[dict[str, Any], bytes]:
    """The next message; `WireError` at EOF or on anything malformed (nothing is trusted
    beyond its length limits)."""
    (size,) = _LENGTH.unpack(_exactly(sock, _LENGTH.size))
    if size > MAX_HEADER:
        raise WireError(f"header of {size} bytes (at most {MAX_HEADER})")
    try:
        header = json.loads(_exactly(sock, size))
    except ValueError as exc:
        raise WireError(f"header is not JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise WireError("header is not an object")
    length = header.get("payload")
    if not isinstance(length, int) or isinstance(length, bool) \
            or not 0 <= length <= MAX_PAYLOAD:
        raise WireError("header announces no valid payload length")
    return header, _exactly(sock, length)


def _exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        block = sock.recv(min(n - len(buf), 1 << 20))
        if not block:
            raise WireError("connection closed" if not buf else "message cut short")
        buf += block
    return bytes(buf)
