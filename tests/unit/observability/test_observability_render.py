"""What `hostctl render` gets from observability, as golden files: the scrape config, targets,
alerting rules, a dashboard per project, the pipeline and Elasticsearch requests, and each
host's exporter config and unit. Real tools check what they can: promtool, systemd-analyze.

HOSTCTL_UPDATE_GOLDEN=1 rewrites the copies under tests/golden/observability/site/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from io import BytesIO
from pathlib import Path

import pytest

from hostctl.observability.exporter_bundle import BUNDLE_PATH, build_bundle, build_fresh
from hostctl.observability.files import host_files, site_files
from hostctl.observability.grafana import dashboard_uid
from hostctl.spec.model import Site
from tests.rigs.site_factory import OBS_INVENTORY, made_site

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "observability" / "site"
REPO = Path(__file__).resolve().parents[3]

INVENTORY = OBS_INVENTORY + """\
logging:
  host: edge-1
  retention_days: 7
metrics:
  exporter: {port: 9477, sample_interval: 2s}
  prices: {currency: EUR, cpu_hour: 0.04, gpu_hour: 1.2}
  prometheus: {scrape_interval: 5s}
"""

SPECS = {
    "triage.yml": """\
        kind: service
        name: triage-api
        project: triage
        image: example.org/triage/api:1.0
        instances: 2
        ports: {http: {container: 8080, host: 18080}}
        health: {http: {path: /health, port: http}, timeout: 5s}
        placement: {labels: {role: app}}
        ---
        kind: service
        name: triage-cache
        project: triage
        image: example.org/triage/cache:1.0
        ports: {redis: 6379}
        health: {tcp: {port: redis}}
        placement: {hosts: [app-1]}
        """,
    "ml.yml": """\
        kind: job
        name: train
        project: ml
        image: example.org/ml/train:1.0
        resources: {gpus: 1}
        placement: {labels: {role: gpu}}
        """,
}


@pytest.fixture()
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    monkeypatch.chdir(tmp_path)
    return made_site(tmp_path, SPECS, INVENTORY, environ={})


def rendered_tree(site: Site) -> dict[str, bytes]:
    tree = {f"site/{k}": v for k, v in site_files(site).items()}
    for name, host in site.inventory.hosts.items():
        for f in host_files(site, host):
            if f.path != BUNDLE_PATH:  # a zip of this checkout: tested on its own below
                tree[f"{name}{f.path}"] = f.content
    return tree


def test_rendered_files_match_the_golden_copies(site: Site) -> None:
    tree = rendered_tree(site)
    if os.environ.get("HOSTCTL_UPDATE_GOLDEN") == "1":
        shutil.rmtree(GOLDEN, ignore_errors=True)
        for rel, content in tree.items():
            (GOLDEN / rel).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / rel).write_bytes(content)
    on_disk = {p.relative_to(GOLDEN).as_posix(): p.read_bytes()
               for p in sorted(GOLDEN.rglob("*")) if p.is_file()}
    assert sorted(on_disk) == sorted(tree)
    for rel, content in tree.items():
        assert on_disk[rel] == content, f"{rel} differs; HOSTCTL_UPDATE_GOLDEN=1 rewrites it"


def test_rendering_twice_gives_the_same_bytes(site: Site) -> None:
    assert rendered_tree(site) == rendered_tree(site)
    assert build_bundle() == build_bundle.__wrapped__() == build_fresh()


def test_without_sections_observability_adds_nothing(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    bare = INVENTORY.split("logging:")[0]
    site = made_site(tmp_path, SPECS, bare, environ={})
    assert site_files(site) == {}
    assert all(host_files(site, h) == [] for h in site.inventory.hosts.values())


def test_logging_without_metrics_still_ships_the_audit_records(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    logging_only = INVENTORY.split("metrics:")[0]
    site = made_site(tmp_path, SPECS, logging_only, environ={})
    tree = rendered_tree(site)
    assert not [rel for rel in site_files(site) if rel.startswith(("prometheus", "grafana"))]
    for host in site.inventory.hosts:
        conf = json.loads(tree[f"{host}/etc/hostctl/exporter/config.json"])
        assert conf == {"site": "obs-site", "host": host, "metrics": False,
                        "state_dir": "/var/lib/hostctl", "sample_interval": 5.0,
                        "audit": {"address": "udp://10.0.0.9:12201",
                                  "file": "/var/lib/hostctl/audit.log"}}
        unit = tree[f"{host}/etc/systemd/system/hostctl-exporter.service"].decode()
        assert "Description=hostctl audit shipper" in unit and "9477" not in unit


def test_the_exporter_config_lists_what_runs_on_each_host(site: Site) -> None:
    tree = rendered_tree(site)
    app = json.loads(tree["app-1/etc/hostctl/exporter/config.json"])
    assert {k: v["replicas"] for k, v in app["services"].items()} == {
        "triage-api": [1, 2], "triage-cache": [1]}
    gpu = json.loads(tree["gpu-1/etc/hostctl/exporter/config.json"])
    assert (gpu["gpus"], gpu["services"], gpu["jobs"]) == (2, {}, {"train": {
        "project": "ml", "gpus": 1}})
    assert gpu["audit"] == {"address": "udp://10.0.0.9:12201",
                            "file": "/var/lib/hostctl/audit.log"}
    assert "edge-1/etc/hostctl/logging/pipeline/hostctl.conf" in tree
    assert "app-1/etc/hostctl/logging/pipeline/hostctl.conf" not in tree


def test_dashboard_uids_stay_within_grafanas_limit() -> None:
    assert dashboard_uid("obs-site", "triage") == "hostctl-obs-site-triage"
    long = dashboard_uid("s" * 40, "p" * 40)
    assert len(long) <= 40 and long == dashboard_uid("s" * 40, "p" * 40)
    assert long != dashboard_uid("s" * 40, "p" * 39 + "q")


def test_the_bundle_holds_the_exporter_and_prometheus_client() -> None:
    names = zipfile.ZipFile(BytesIO(build_bundle())).namelist()
    assert {"__main__.py", "hostctl/observability/exporter.py",
            "prometheus_client/__init__.py", "BUNDLE.txt"} <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.startswith("prometheus_client/twi")]
    assert build_bundle().startswith(b"#!/usr/bin/env python3\n")


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed "
                    "(Debian's prometheus package has it; scripts/ci-setup.sh installs it)")
def test_promtool_accepts_the_config_and_rules(site: Site, tmp_path: Path) -> None:
    for rel, content in site_files(site).items():
        (tmp_path / "out" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "out" / rel).write_bytes(content)
    prom = tmp_path / "out" / "prometheus"
    res = subprocess.run(["promtool", "check", "config", str(prom / "prometheus.yml")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS: 6 rules found" in res.stdout + res.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_systemd_accepts_the_exporter_unit(site: Site, tmp_path: Path) -> None:
    unit = tmp_path / "hostctl-exporter.service"
    unit.write_bytes(rendered_tree(site)["app-1/etc/systemd/system/hostctl-exporter.service"])
    res = subprocess.run(["systemd-analyze", "verify", "--recursive-errors=no", str(unit)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "hostctl-exporter" not in res.stderr, res.stderr


def test_a_host_naming_its_gpu_models_tells_its_exporter(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The prices reach the exporter as Prices.table() builds them, and a host whose GPUs
    have models gets its device -> model map; the other hosts' configs gain nothing."""
    monkeypatch.chdir(tmp_path)
    inventory = INVENTORY.replace("gpus: 2", "gpus: [{model: a100-80g, devices: [0]}, "
                                  "{model: l4, devices: [3]}]").replace(
        "gpu_hour: 1.2}", "gpu_hour: 1.2, gpu_hour_by_model: {a100-80g: 3.2}}")
    tree = rendered_tree(made_site(tmp_path, SPECS, inventory, environ={}))
    gpu = json.loads(tree["gpu-1/etc/hostctl/exporter/config.json"])
    assert (gpu["gpus"], gpu["gpu_models"], gpu["prices"]) == (
        2, {"0": "a100-80g", "3": "l4"},
        {"currency": "EUR", "cpu_hour": 0.04, "gpu_hour": 1.2,
         "gpu_hour_by_model": {"a100-80g": 3.2}})
    app = json.loads(tree["app-1/etc/hostctl/exporter/config.json"])
    assert "gpu_models" not in app and app["prices"] == gpu["prices"]


def test_the_bundle_is_kept_between_commands_and_rebuilt_when_unusable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hostctl.observability import exporter_bundle as eb

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    eb.build_bundle.cache_clear()
    fresh = eb.build_bundle()
    [kept] = (tmp_path / "cache" / "hostctl" / "bundles").glob("exporter-*.pyz")
    assert kept.read_bytes() == fresh == eb.build_fresh()
    # the next command reads it: a copy with one more entry stands in for it
    buf = BytesIO(fresh[len(b"#!/usr/bin/env python3\n"):])
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr("MARK", b"read from the cache")
    kept.write_bytes(b"#!/usr/bin/env python3\n" + buf.getvalue())
    eb.build_bundle.cache_clear()
    assert b"read from the cache" in eb.build_bundle()
    kept.write_bytes(b"cut sh")  # not a bundle: built again, and kept again
    eb.build_bundle.cache_clear()
    assert eb.build_bundle() == fresh and kept.read_bytes() == fresh
    # a cache folder that cannot be written costs time only
    monkeypatch.setenv("XDG_CACHE_HOME", str(kept))
    eb.build_bundle.cache_clear()
    assert eb.build_bundle() == fresh
    eb.build_bundle.cache_clear()


def test_the_bundles_key_changes_with_any_source(tmp_path: Path) -> None:
    from hostctl.observability.exporter_bundle import sources_key

    files = [tmp_path / "a.py", tmp_path / "b.py"]
    for f in files:
        f.write_text("x = 1\n")
    key = sources_key(files)
    assert sources_key(files) == key
    files[1].write_text("x = 22\n")
    assert sources_key(files) != key
    key = sources_key(files)
    os.utime(files[0], ns=(0, 0))
    assert sources_key(files) != key
    assert sources_key(files[:1]) != sources_key(files)
