"""Where hostctl keeps things on a host. One place, so scripts and parsers agree."""

from __future__ import annotations

UNIT_DIR = "/etc/systemd/system"
ENV_DIR = "/etc/hostctl/env"
STATE_DIR = "/var/lib/hostctl"
RELEASES_DIR = f"{STATE_DIR}/releases"
CURRENT_LINK = f"{STATE_DIR}/current"
LOCK_DIR = f"{STATE_DIR}/lock"
AUDIT_LOG = f"{STATE_DIR}/audit.log"
MANIFEST = "manifest.json"
KEEP_RELEASES = 5
GATEWAY_FILE = "/etc/hostctl/gateway/kong.yml"  # Kong's declarative config (secrets inside)
GATEWAY_WORKLOAD = "gateway-kong"  # the platform service that runs Kong

# Globs of the files hostctl owns on a host; anything else is never touched or removed.
MANAGED_GLOBS = (
    f"{UNIT_DIR}/hostctl-*.service",
    f"{UNIT_DIR}/hostctl-*.timer",
    f"{ENV_DIR}/*.env",
    GATEWAY_FILE,
)


def is_managed(path: str) -> bool:
    import fnmatch

    return any(fnmatch.fnmatchcase(path, g) for g in MANAGED_GLOBS)


def is_secret_path(path: str) -> bool:
    """Files whose content must never leave the host: their hashes only are read back."""
    return path.startswith(ENV_DIR + "/") or path == GATEWAY_FILE
