"""The inventory's k3s section: the annotated example, the schema's messages, defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostctl.spec.schema import Context
from hostctl.spec.sections.gateway import GatewayConfig
from hostctl.spec.sections.k3s import (
    K3S,
    K3sConfig,
    ingress_class,
    ingress_namespace,
    kubeconfig_path,
)
from hostctl.spec.yamlsource import load_documents
from hostctl.validate import load_site

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "k8s" / "k3s.example.yml"


def check(text: str) -> tuple[object, list[str]]:
    doc = load_documents(text, "site.yml")[0]
    problems: list = []
    cfg = K3S(doc.data["k3s"], ("k3s",), Context(doc, problems))
    return cfg, [str(p) for p in problems]


def test_annotated_example_validates_in_the_worked_example(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (REPO / "inventories" / "site.yml").read_text()
    text = text.replace("  - specs/*.yml", f"  - {REPO}/inventories/specs/*.yml")
    text = text.replace("env_file: example.secrets.env",
                        f"env_file: {REPO}/inventories/example.secrets.env")
    inv = tmp_path / "site.yml"
    inv.write_text(text + "\n" + EXAMPLE.read_text())
    monkeypatch.chdir(tmp_path)
    site = load_site(str(inv))
    cfg = site.inventory.k3s
    assert (cfg.ingress, cfg.volume_size, cfg.rollout_timeout, cfg.time_zone) == (
        "kong", 10 * 2**30, 300.0, "Europe/Berlin")
    assert cfg.line("volume_size") == len(text.splitlines()) + 1 + next(
        i for i, line in enumerate(EXAMPLE.read_text().splitlines(), 1)
        if line.startswith("  volume_size"))
    assert kubeconfig_path(cfg, site.inventory).endswith("/.kube/k3s-example.yaml")


@pytest.mark.parametrize(("text", "message"), [
    ("k3s: {ingress: nginx}\n",
     "site.yml:1: k3s/ingress: 'nginx' is not one of: traefik, kong"),
    ("k3s: {ingres: kong}\n",
     "site.yml:1: k3s/ingres: unknown key 'ingres'; did you mean 'ingress'? (known: context, "
     "gateway_target, gpu_products, ingress, ingress_namespace, kubeconfig, namespace_prefix, "
     "node_selector, rollout_timeout, storage_class, time_zone, volume_size)"),
    ("k3s:\n  namespace_prefix: Acme_\n",
     "site.yml:2: k3s/namespace_prefix: 'Acme_' is not valid: a prefix is lowercase letters, "
     "digits and '-', e.g. 'acme-'"),
    ("k3s:\n  gateway_target: cluster\n",
     "site.yml:2: k3s/gateway_target: 'cluster' is not valid: give host:port, e.g. "
     "10.20.0.50:80"),
    ("k3s:\n  volume_size: lots\n",
     "site.yml:2: k3s/volume_size: expected a size such as 512Mi, 1Gi or 2G, got 'lots'"),
])
def test_schema_messages(text: str, message: str) -> None:
    _, problems = check(text)
    assert problems == [message]


def test_gpu_products_are_models_and_label_values() -> None:
    hint = ("is not valid: a label value is letters, digits, '-', '_' and '.', starting and "
            "ending with a letter or digit, e.g. NVIDIA-A100-SXM4-80GB")
    cfg, problems = check("k3s:\n  gpu_products: {a100-80g: NVIDIA A100, L4: NVIDIA-L4, "
                          "t4: NVIDIA-T4-, h100: " + "H" * 64 + "}\n")
    assert problems == [
        f"site.yml:2: k3s/gpu_products/a100-80g: 'NVIDIA A100' {hint}",
        "site.yml:2: k3s/gpu_products/L4: 'L4' is not valid: GPU model names are lower-case "
        "letters, digits, '.' and '-', starting with a letter or digit (e.g. a100-80g, l4)",
        f"site.yml:2: k3s/gpu_products/t4: 'NVIDIA-T4-' {hint}",
        "site.yml:2: k3s/gpu_products/h100: is 64 characters long; at most 63"]
    cfg, problems = check("k3s:\n  gpu_products: {l4: NVIDIA-L4}\n")
    assert problems == [] and isinstance(cfg, K3sConfig)
    assert (cfg.gpu_product("l4"), cfg.gpu_product("t4")) == ("NVIDIA-L4", "t4")


def test_defaults_follow_the_gateway() -> None:
    from hostctl.spec import model as m

    inv = m.Inventory(file="site.yml", site="s", hosts={})
    assert (ingress_class(K3sConfig(), inv), ingress_namespace(K3sConfig(), inv)) == (
        "traefik", "kube-system")
    with_gw = m.Inventory(file="site.yml", site="s", hosts={}, gateway=GatewayConfig(hosts=("h",)))
    assert (ingress_class(K3sConfig(), with_gw), ingress_namespace(K3sConfig(), with_gw)) == (
        "kong", "kong")
    assert kubeconfig_path(K3sConfig(), inv, {"KUBECONFIG": "/a:/b", "HOME": "/h"}) == "/a"
    assert kubeconfig_path(K3sConfig(), inv, {"HOME": "/h"}) == "/h/.kube/config"
