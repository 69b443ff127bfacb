"""Build small sites on disk for tests: an inventory, spec files and a secrets file."""

from __future__ import annotations

import textwrap
from pathlib import Path

BASE_INVENTORY = """\
site: t
hosts:
  app-1: {address: 10.0.0.1, labels: {role: app}}
  gpu-1: {address: 10.0.0.2, labels: {role: gpu}, gpus: 1}
profiles:
  cpu_small: {cpus: 1, memory: 1Gi}
  gpu_medium: {cpus: 8, memory: 16Gi, gpus: 1}
specs: [specs/*.yml]
secrets: {env_file: secrets.env}
"""

BASE_SECRETS = "DB_PASSWORD=s3cr3t-value\nAPI_TOKEN=tok-123\n"


def make_site(root: Path, specs: dict[str, str], inventory: str = BASE_INVENTORY,
              secrets: str = BASE_SECRETS) -> Path:
    """Write the files and return the inventory path."""
    (root / "specs").mkdir(parents=True, exist_ok=True)
    for name, text in specs.items():
        (root / "specs" / name).write_text(textwrap.dedent(text))
    (root / "secrets.env").write_text(secrets)
    inv = root / "site.yml"
    inv.write_text(textwrap.dedent(inventory))
    return inv


SERVICE = """\
kind: service
name: api
project: shop
image: example.org/shop/api:1.0
ports:
  http: {container: 8080, host: 18080}
health:
  http: {path: /health, port: http}
placement: {hosts: [app-1]}
"""
