"""Kong in front of the services: the inventory's gateway section, the declarative config
derived from the specs, Kong's schema as hostctl knows it, the Admin API client and diffs."""

from hostctl.gateway.config import GATEWAY, Consumer, GatewayConfig, check_gateway, gateway_config
from hostctl.gateway.declarative import (
    Provenance,
    RenderedGateway,
    build_declarative,
    gateway_files,
    render_declarative,
)

__all__ = [
    "GATEWAY",
    "Consumer",
    "GatewayConfig",
    "Provenance",
    "RenderedGateway",
    "build_declarative",
    "check_gateway",
    "gateway_config",
    "gateway_files",
    "render_declarative",
]
