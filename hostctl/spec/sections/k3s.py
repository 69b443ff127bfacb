"""The inventory's `k3s:` section: the cluster a site hands its workloads to, typed.

Everything has a default, so a site without the section can still render manifests (for
k3s's defaults: Traefik, the `local-path` storage class, no namespace prefix). `k8s/k3s.example.yml`
documents every key and is validated by the tests.

The loader types the section (`Inventory.k3s`); a site without one gets the defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hostctl.errors import Problem
from hostctl.gateway import kong_typedefs as kt
from hostctl.spec.rules import GPU_MODEL, address_problem
from hostctl.spec.schema import (
    INVALID,
    Bool,
    Check,
    Context,
    Duration,
    MapOf,
    Record,
    Section,
    Size,
    Str,
    describe,
    failed,
)
from hostctl.spec.yamlsource import Path

if TYPE_CHECKING:
    from hostctl.spec import model as m

TRAEFIK = "traefik"
KONG = "kong"
# Where each ingress controller's proxy pods run on a stock install: k3s puts Traefik in
# kube-system; Kong's Helm chart and manifests use the `kong` namespace.
INGRESS_NAMESPACES = {TRAEFIK: "kube-system", KONG: "kong"}
DEFAULT_VOLUME_SIZE = 2**30  # Docker volumes have no size; claims must ask for one
DNS_LABEL = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?"


@dataclass(frozen=True)
class K3sConfig:
    kubeconfig: str | None = None  # None: $KUBECONFIG, else ~/.kube/config
    context: str | None = None  # None: the kubeconfig's current-context
    ingress: str | None = None  # None: kong when the site runs the gateway, else traefik
    ingress_namespace: str | None = None  # None: INGRESS_NAMESPACES[ingress]
    storage_class: str | None = None  # None: the cluster's default class
    volume_size: int = DEFAULT_VOLUME_SIZE
    namespace_prefix: str = ""
    time_zone: str | None = None  # CronJob timeZone for schedules in local time
    node_selector: bool = False  # carry placement labels over as nodeSelector
    gateway_target: str | None = None  # host:port where gateway hosts reach the cluster
    rollout_timeout: float = 300.0
    # GPU model (as the hosts' gpus: name it) -> the value of its nodes' nvidia.com/gpu.product
    # label (NVIDIA's GPU feature discovery sets it, e.g. NVIDIA-A100-SXM4-80GB); a model not
    # listed is its own value
    gpu_products: dict[str, str] = field(default_factory=dict)
    file: str = ""
    lines: dict[str, int] = field(default_factory=dict)

    def gpu_product(self, model: str) -> str:
        """The nvidia.com/gpu.product label value of the nodes with GPUs of `model`."""
        return self.gpu_products.get(model, model)

    def line(self, key: str) -> int:
        return self.lines.get(f"k3s/{key}", self.lines.get("k3s", 0))

    def problem(self, key: str, message: str) -> Problem:
        return Problem(self.file, self.line(key), f"k3s/{key}" if key else "k3s", message)


def ingress_class(cfg: K3sConfig, inv: m.Inventory) -> str:
    """The Ingress class: as configured, else Kong's when the site runs Kong, else Traefik."""
    if cfg.ingress is not None:
        return cfg.ingress
    return KONG if inv.gateway is not None else TRAEFIK


def ingress_namespace(cfg: K3sConfig, inv: m.Inventory) -> str:
    return cfg.ingress_namespace or INGRESS_NAMESPACES[ingress_class(cfg, inv)]


def kubeconfig_path(cfg: K3sConfig, inv: m.Inventory,
                    environ: dict[str, str] | None = None) -> str:
    """The kubeconfig to use: k3s/kubeconfig (relative to the inventory), else $KUBECONFIG
    (its first entry), else ~/.kube/config."""
    env = dict(os.environ if environ is None else environ)
    if cfg.kubeconfig:
        base = os.path.dirname(os.path.abspath(inv.file))
        return os.path.normpath(os.path.join(base, os.path.expanduser(cfg.kubeconfig)))
    if env.get("KUBECONFIG"):
        return env["KUBECONFIG"].split(os.pathsep)[0]
    return os.path.join(env.get("HOME", os.path.expanduser("~")), ".kube", "config")


# -- the schema -----------------------------------------------------------------------------

# How long `k8s handoff --wait` and the handoff wait for Deployments to roll out.
ROLLOUT_TIMEOUT_MAX = 86400.0  # 1d
TARGET_HINT = ("give host:port, e.g. 10.20.0.50:80 or [fd00::50]:80 (an IP address or DNS "
               "name, and a port 1..65535)")


class GatewayTarget(Check[str]):
    """host:port where the gateway hosts reach the cluster's ingress: it becomes the target
    of a Kong upstream, so Kong's target rule applies (kong_typedefs.target), and the host
    is an address as every host address is (spec_schema.address_problem: no leading '-')."""

    expected = "host:port"

    def __call__(self, value: Any, path: Path, ctx: Context) -> str:
        text: str = Str()(value, path, ctx)
        if failed(text):
            return INVALID
        host, sep, port = text.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
            bracketed = ":" in host
        else:
            bracketed = ":" not in host
        if not sep or not host or not bracketed:
            return ctx.error(path, f"{describe(text)} is not valid: give host:port, e.g. "
                                   "10.20.0.50:80")
        why = None
        if not (port.isascii() and port.isdigit() and len(port) <= 5
                and 1 <= int(port) <= 65535):
            why = "has no port 1..65535"
        elif address_problem(host) is not None:
            why = "has no IP address or DNS name before the port"
        elif (kong := kt.target(text)) is not None:
            why = f"is refused by Kong as an upstream target ({kong})"
        if why is not None:
            return ctx.error(path, f"{describe(text)} {why}: {TARGET_HINT}")
        return text


_SECTION: Record[K3sConfig] = Record(K3sConfig, {
    # A path: open() refuses a NUL in it (ValueError, not a message) when a k8s command runs.
    "kubeconfig": Str(r"[^\x00]*", "a file name cannot hold a NUL character; remove it"),
    "context": Str(r"\S+", "give the context name as `kubectl config get-contexts` shows it"),
    "ingress": Str(choices=(TRAEFIK, KONG)),
    "ingress_namespace": Str(DNS_LABEL, "namespace names are lowercase letters, digits and "
                                        "'-'", max_len=63),
    # A PersistentVolumeClaim's storageClassName is a DNS subdomain (the API server's
    # ValidateClassName): dot-separated labels, 253 characters in all.
    "storage_class": Str(rf"{DNS_LABEL}(\.{DNS_LABEL})*",
                         "storage class names are lowercase letters, digits, '.' and '-', "
                         "each part between dots starting and ending with a letter or digit",
                         max_len=253),
    "volume_size": Size(minimum=2**20),
    "namespace_prefix": Str(r"([a-z0-9][a-z0-9-]*)?", "a prefix is lowercase letters, digits "
                                                      "and '-', e.g. 'acme-'", max_len=20),
    "time_zone": Str(r"[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*",
                     "give an IANA time zone such as Europe/Berlin or Etc/UTC"),
    "node_selector": Bool(),
    "gateway_target": GatewayTarget(),
    "rollout_timeout": Duration(minimum=1, maximum=ROLLOUT_TIMEOUT_MAX),
    # A label value (k8s.io/apimachinery IsValidLabelValue), non-empty: a node selector.
    "gpu_products": MapOf(GPU_MODEL, Str(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?",
                                         "a label value is letters, digits, '-', '_' and "
                                         "'.', starting and ending with a letter or digit, "
                                         "e.g. NVIDIA-A100-SXM4-80GB", max_len=63)),
})


# The `k3s:` key of an inventory: defaults apply when it is missing or empty.
K3S = Section(lambda: _SECTION, empty_is_off=False)
