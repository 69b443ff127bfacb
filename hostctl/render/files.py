"""The leaf of rendering: a file for a host, as bytes with a mode. Everything that renders
files for a host (units, the probe, Kong's config, logging and metrics) builds these."""

from __future__ import annotations

from dataclasses import dataclass

MODE_PUBLIC = 0o644
MODE_SECRET = 0o600


@dataclass(frozen=True)
class RenderedFile:
    """A file for a host. `secret` files hold secret values and are written 0600."""

    path: str
    content: bytes
    mode: int = MODE_PUBLIC
    secret: bool = False
    redacted_content: bytes | None = None
    workload: str = ""  # the workload it belongs to: a changed env file restarts its units
    owner: str | None = None  # uid:gid when a container's own user must read it
    restarts: bool = True  # False: the service reloads it itself (Kong's config, via its API)

    def shown(self) -> bytes:
        """What may be displayed or written locally: secret values replaced by their names."""
        return self.redacted_content if self.redacted_content is not None else self.content
