"""Ships hostctl's audit records (/var/lib/hostctl/audit.log, one JSON object a line) to
Logstash as GELF, from the exporter on each host: the same path the containers' logs take,
so `deploy`, `rollback` and `restart` records land next to the logs they explain.

Standard library only (it runs in the exporter bundle). Fire and forget over UDP like the
gelf driver; the position in the file is kept in the exporter's state so nothing is sent
twice, and a truncated (rotated) file is read from its start again.
"""

from __future__ import annotations

import json
import socket
from typing import Any

MAX_LINES = 500  # per sample: a huge backlog drains over several samples
MAX_DATAGRAM = 8000  # unchunked GELF over UDP must fit one datagram; longer ones are cut


def gelf_message(record: dict[str, Any], site: str, host: str) -> dict[str, Any]:
    """One audit record as a GELF message carrying the same labels as a container's."""
    summary = " ".join(str(record.get(k, "")) for k in ("command", "result", "message")).strip()
    msg: dict[str, Any] = {
        "version": "1.1", "host": host, "short_message": summary or "hostctl audit record",
        "level": 6,
        "_io.hostctl.site": site, "_io.hostctl.host": host,
        "_io.hostctl.project": "hostctl-audit", "_io.hostctl.kind": "audit",
    }
    if isinstance(record.get("time"), (int, float)):
        msg["timestamp"] = float(record["time"])
    for key, value in sorted(record.items()):
        if key not in ("time", "site", "host"):
            msg[f"_audit_{key}"] = value if isinstance(value, (int, float, str)) else \
                json.dumps(value, sort_keys=True)
    return msg


def encode(msg: dict[str, Any]) -> bytes:
    data = json.dumps(msg, sort_keys=True, separators=(",", ":")).encode()
    if len(data) > MAX_DATAGRAM:
        msg = {k: v for k, v in msg.items() if not k.startswith("_audit_")}
        msg["short_message"] = str(msg["short_message"])[:2000]
        data = json.dumps(msg, sort_keys=True, separators=(",", ":")).encode()
    return data


def parse_address(address: str) -> tuple[str, str, int]:
    """`udp://host:port` -> ("udp", host, port); IPv6 hosts in brackets."""
    proto, _, rest = address.partition("://")
    host, _, port = rest.rpartition(":")
    return proto, host.strip("[]"), int(port)


def send(proto: str, host: str, port: int, datagrams: list[bytes]) -> None:
    """GELF messages to Logstash: UDP datagrams, or over TCP each ended by a NUL byte."""
    if proto == "tcp":
        with socket.create_connection((host, port), 3) as conn:
            conn.sendall(b"".join(d + b"\0" for d in datagrams))
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        for data in datagrams:
            sock.sendto(data, (host, port))


class AuditShipper:
    def __init__(self, path: str, address: str, site: str, host: str, state: Any):
        self.path, self.site, self.host, self.state = path, site, host, state
        self.proto, self.target_host, self.target_port = parse_address(address)

    @classmethod
    def from_conf(cls, conf: Any, state: Any) -> AuditShipper | None:
        audit = conf.audit
        if not audit:
            return None
        return cls(audit["file"], audit["address"], conf.site, conf.host, state)

    def _send(self, datagrams: list[bytes]) -> None:
        send(self.proto, self.target_host, self.target_port, datagrams)

    def ship(self) -> int:
        """Send the records added since last time; how many were sent."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(0, 2)
                if fh.tell() < self.state.audit_offset:
                    self.state.audit_offset = 0  # the file was truncated or replaced
                fh.seek(self.state.audit_offset)
                lines = [fh.readline() for _ in range(MAX_LINES)]
        except OSError:
            return 0
        complete = [line for line in lines if line.endswith(b"\n")]
        datagrams = []
        for line in complete:
            try:
                record = json.loads(line)
            except ValueError:
                record = {"message": line.decode(errors="replace").strip()}
            if isinstance(record, dict):
                datagrams.append(encode(gelf_message(record, self.site, self.host)))
        if datagrams:
            try:
                self._send(datagrams)
            except OSError:
                return 0  # Logstash unreachable (tcp): try again next time
        self.state.audit_offset += sum(len(line) for line in complete)
        return len(datagrams)
