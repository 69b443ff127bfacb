"""The annotated reference files are also examples: each must validate as it stands."""

from __future__ import annotations

from pathlib import Path

from hostctl.spec.inventory import INVENTORY_KEYS
from hostctl.spec.rules import workload
from hostctl.spec.sections.projects import ProjectQuota
from hostctl.validate import load_site

DOCS = Path(__file__).resolve().parents[3] / "docs"


def test_annotated_inventory_and_specs_validate() -> None:
    site = load_site(str(DOCS / "inventory.yml"), environ={})
    assert [w.name for w in site.workloads] == ["api", "train"]
    assert site.workloads[1].report == ("val_auc", "loss")
    projects = site.inventory.projects
    assert projects.ledger_host == "app-1"
    assert projects.projects == {
        "research": ProjectQuota(gpus=2, cpus=8.0, memory=32 * 2**30, gpu_hours_per_month=200.0,
                                 priority="normal", owners=("alice", "bob")),
        "shop": ProjectQuota(priority="high")}


def _documented_keys(path: Path) -> set[str]:
    keys = set()
    for line in path.read_text().splitlines():
        stripped = line.lstrip("# ").split(":")[0]
        if ":" in line and stripped.isidentifier():
            keys.add(stripped)
    return keys


def test_every_key_is_documented() -> None:
    """A key the schema accepts but the reference never mentions is a doc bug."""
    assert set(INVENTORY_KEYS) <= _documented_keys(DOCS / "inventory.yml")
    spec_keys = _documented_keys(DOCS / "service.yml") | _documented_keys(DOCS / "job.yml")
    assert set(workload.keys) <= spec_keys
