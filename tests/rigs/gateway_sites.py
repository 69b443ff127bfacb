"""The worked example with a gateway section merged in, and the small gateway site the
gateway tests build on disk (GATEWAY_INVENTORY with a routed service, ROUTED)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from hostctl.spec.model import Site
from hostctl.validate import load_site
from tests.rigs.site_factory import SERVICE

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_INVENTORY = REPO / "inventories" / "site.yml"
GATEWAY_EXAMPLE = REPO / "kong" / "gateway.example.yml"
EXAMPLE_SECRETS = {
    "HOSTCTL_SECRET_TRIAGE_CI_API_KEY": "triage-ci-key-0123456789",
    "HOSTCTL_SECRET_REPORTS_DASHBOARD_JWT_SECRET": "reports-jwt-secret-abcdef",
}


def without_gateway(inventory_text: str) -> str:
    """An inventory's text without its gateway section (and the comment above it)."""
    return re.sub(r"\n(#[^\n]*\n)*gateway:\n(( .*)?\n)*", "\n", inventory_text)


def example_inventory(tmp_path: Path, gateway: str | None = None) -> Path:
    """The worked example with a gateway section (the annotated one unless given), written
    next to the real specs' absolute paths so their file names and lines stay the same."""
    text = without_gateway(EXAMPLE_INVENTORY.read_text())
    text = text.replace("  - specs/*.yml", f"  - {REPO}/inventories/specs/*.yml")
    text = text.replace("env_file: example.secrets.env",
                        f"env_file: {REPO}/inventories/example.secrets.env")
    section = GATEWAY_EXAMPLE.read_text() if gateway is None else textwrap.dedent(gateway)
    path = tmp_path / "site.yml"
    tmp_path.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n" + section)
    return path


def example_site(tmp_path: Path, gateway: str | None = None,
                 environ: dict[str, str] | None = None) -> Site:
    env = dict(EXAMPLE_SECRETS) if environ is None else environ
    return load_site(str(example_inventory(tmp_path, gateway)), environ=env)


GATEWAY_INVENTORY = """\
site: t
hosts:
  edge-1: {address: 10.0.0.9, labels: {role: edge}}
  app-1: {address: 10.0.0.1, labels: {role: app}}
specs: [specs/*.yml]
secrets: {env_file: secrets.env}
gateway:
  hosts: [edge-1]
  consumers:
    shop-ci: {project: shop, key_auth: [API_TOKEN]}
"""

ROUTED = SERVICE + "route:\n  path: /api\n  auth: key-auth\n"  # the plain service, routed
