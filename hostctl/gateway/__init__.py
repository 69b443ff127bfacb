"""Kong in front of the services: the inventory's gateway section, the declarative config
derived from the specs, Kong's schema as hostctl knows it, the Admin API client and diffs.

    rendered = render_declarative(site)                # None when the site has no gateway
    rendered.text / rendered.redacted                  # for the gateway host / for people
    admin = KongAdmin(f"http://127.0.0.1:{local_port}")   # through Runner.forward_port
    diff_configs(admin.running_config(), yaml.safe_load(rendered.text), rendered.provenance)
    admin.sync(rendered.text, rendered.provenance)     # 201/304, hash verified; 400 -> spec lines
"""

from hostctl.gateway.admin import (
    ConfigRejected,
    GatewayBusy,
    GatewayError,
    KongAdmin,
    SyncResult,
    TargetHealth,
    config_hash,
    ready,
)
from hostctl.gateway.config import (
    GATEWAY,
    Consumer,
    GatewayConfig,
    check_gateway,
    gateway_config,
    kong_environment,
)
from hostctl.gateway.declarative import (
    Provenance,
    RenderedGateway,
    build_declarative,
    gateway_files,
    render_declarative,
)
from hostctl.gateway.diff import ConfigDiff, diff_configs, hash_summary

__all__ = [
    "GATEWAY",
    "ConfigDiff",
    "ConfigRejected",
    "Consumer",
    "GatewayBusy",
    "GatewayConfig",
    "GatewayError",
    "KongAdmin",
    "Provenance",
    "RenderedGateway",
    "SyncResult",
    "TargetHealth",
    "build_declarative",
    "check_gateway",
    "config_hash",
    "diff_configs",
    "gateway_config",
    "gateway_files",
    "hash_summary",
    "kong_environment",
    "ready",
    "render_declarative",
]
