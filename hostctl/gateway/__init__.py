"""Kong in front of the services: the inventory's gateway section, the declarative config
derived from the specs, Kong's schema as hostctl knows it, the Admin API client and diffs.

    rendered = render_declarative(site)                # None when the site has no gateway
    rendered.text / rendered.redacted                  # for the gateway host / for people
    admin = KongAdmin(f"http://127.0.0.1:{local_port}")   # through Runner.forward_port
    diff_configs(admin.running_config(), yaml.safe_load(rendered.text), rendered.provenance)
    admin.sync(rendered.text, rendered.provenance)     # 201/304, hash verified; 400 -> spec lines
"""

# Loaded on first use (hostctl.lazy): importing hostctl.gateway for its inventory section must not
# pull in its heavy modules, which every command would then pay for at start-up.
from __future__ import annotations

from typing import TYPE_CHECKING

from hostctl import lazy

if TYPE_CHECKING:
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
    from hostctl.gateway.declarative import (
        Provenance,
        RenderedGateway,
        build_declarative,
        gateway_files,
        render_declarative,
    )
    from hostctl.gateway.diff import ConfigDiff, diff_configs, hash_summary
    from hostctl.spec.sections.gateway import (
        GATEWAY,
        Consumer,
        GatewayConfig,
        check_gateway,
        kong_environment,
    )

__getattr__ = lazy.exports(__name__, {
    "ConfigDiff": "hostctl.gateway.diff",
    "diff_configs": "hostctl.gateway.diff",
    "hash_summary": "hostctl.gateway.diff",
    "ConfigRejected": "hostctl.gateway.admin",
    "Consumer": "hostctl.spec.sections.gateway",
    "GATEWAY": "hostctl.spec.sections.gateway",
    "GatewayBusy": "hostctl.gateway.admin",
    "GatewayConfig": "hostctl.spec.sections.gateway",
    "GatewayError": "hostctl.gateway.admin",
    "KongAdmin": "hostctl.gateway.admin",
    "Provenance": "hostctl.gateway.declarative",
    "RenderedGateway": "hostctl.gateway.declarative",
    "SyncResult": "hostctl.gateway.admin",
    "TargetHealth": "hostctl.gateway.admin",
    "build_declarative": "hostctl.gateway.declarative",
    "check_gateway": "hostctl.spec.sections.gateway",
    "config_hash": "hostctl.gateway.admin",
    "gateway_files": "hostctl.gateway.declarative",
    "kong_environment": "hostctl.spec.sections.gateway",
    "ready": "hostctl.gateway.admin",
    "render_declarative": "hostctl.gateway.declarative",
})

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
    "gateway_files",
    "hash_summary",
    "kong_environment",
    "ready",
    "render_declarative",
]
