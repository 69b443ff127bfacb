"""Build small sites on disk for tests: an inventory, spec files and a secrets file (make_site),
and load them as validate does (made_site)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

from hostctl.errors import ConfigError
from hostctl.spec.model import Site
from hostctl.validate import load_site

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


# The observability tests' site: an edge host for Logstash and Prometheus, an app host and a
# host with two GPUs; the tests add their logging and metrics sections.
OBS_INVENTORY = """\
site: obs-site
hosts:
  edge-1: {address: 10.0.0.9, labels: {role: edge}}
  app-1: {address: 10.0.0.1, labels: {role: app}}
  gpu-1: {address: 10.0.0.2, labels: {role: gpu}, gpus: 2}
specs: [specs/*.yml]
secrets: {env_file: secrets.env}
"""


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

JOB = "kind: job\nname: etl\nproject: shop\nimage: x:1\nplacement: {hosts: [app-1]}\n"

# A service with odd values that validate accepts and render writes.
ODD_BUT_VALID = SERVICE.replace("http: {path: /health, port: http}", """\
command: [sh, -c, 'echo "$HOME" 100% ok; exit 0']
  interval: 1d
  timeout: 1.5s
  start_period: 12h30m""").replace("host: 18080}", "host: 18080, bind: '[::1]'}") + """\
env: {A: "tab\\there, $HOME; 100%", B: "", C: "ünïcødé \\u00a0", D: "new\\nline"}
args: [";", "", "%i", "$X", "a b"]
command: [/bin/entry, "--flag=x y"]
volumes: [data:/data, {source: "/srv/a b", target: "/mnt/a b", read_only: true}]
resources: {cpus: 0.01, memory: 6Mi}
stop_timeout: 1h
"""


def made_site(root: Path, specs: dict[str, str], inventory: str = BASE_INVENTORY,
              secrets: str = BASE_SECRETS, *, environ: Mapping[str, str] | None = None
              ) -> Site:
    """make_site's files, loaded and checked as `hostctl validate` does (environ: the
    process environment the secrets may come from; None: this process's)."""
    return load_site(str(make_site(root, specs, inventory, secrets)), environ=environ)


def refusals(root: Path, specs: dict[str, str], inventory: str = BASE_INVENTORY,
             secrets: str = BASE_SECRETS) -> list[str]:
    """The problems `hostctl validate` finds in make_site's files (with an empty process
    environment), each as it prints them; [] when it accepts them."""
    try:
        made_site(root, specs, inventory, secrets, environ={})
    except ConfigError as exc:
        return [str(p) for p in exc.problems]
    return []
