"""A service handed to the k3s cluster: Kong on the gateway hosts sends its route to the
cluster's ingress (k3s/gateway_target) with the client's own Host and path, so the cluster's
Ingress (rendered from the same route) matches; route, auth and plugins are kept."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from hostctl.gateway import kong_schema as ks
from hostctl.gateway.declarative import build_declarative, render_declarative
from hostctl.k8s.manifests import render_manifests
from hostctl.spec.sections.k3s import K3sConfig
from tests.rigs.gateway_sites import EXAMPLE_SECRETS, REPO, example_site

TARGET = "10.20.0.50:80"
GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "kong-cluster" / "kong.yml"


def _by_name(items: list[dict[str, Any]], key: str = "name") -> dict[str, dict[str, Any]]:
    return {i[key]: i for i in items}


def test_only_the_handed_off_service_changes(tmp_path: Path) -> None:
    site = example_site(tmp_path)
    gw = site.inventory.gateway
    assert gw is not None
    hosts, _ = build_declarative(site, gw)
    cluster, _ = build_declarative(site, gw, cluster_targets={"triage-api": TARGET})
    # Everything but triage-api's route and upstream is the same config.
    assert cluster["consumers"] == hosts["consumers"]
    assert _by_name(cluster["services"])["reports-web"] == _by_name(hosts["services"])[
        "reports-web"]
    assert _by_name(cluster["upstreams"])["hostctl-reports-web"] == _by_name(
        hosts["upstreams"])["hostctl-reports-web"]
    before = copy.deepcopy(_by_name(hosts["services"])["triage-api"])
    after = _by_name(cluster["services"])["triage-api"]
    route_before, route_after = before.pop("routes")[0], after["routes"][0]
    assert {k: v for k, v in after.items() if k != "routes"} == before  # timeouts, host
    # The client matches the same route; Kong passes Host and path on unchanged.
    assert route_after["paths"] == route_before["paths"] == ["/triage"]
    assert (route_before["strip_path"], route_after["strip_path"]) == (True, False)
    assert route_after["preserve_host"] is True and "preserve_host" not in route_before
    plugins_before = _by_name(route_before["plugins"])
    plugins_after = _by_name(route_after["plugins"])
    assert sorted(plugins_after) == sorted(plugins_before) == ["acl", "key-auth",
                                                               "rate-limiting"]
    for name in ("acl", "rate-limiting"):
        assert plugins_after[name] == plugins_before[name]
    # The key goes on: the cluster's own key-auth checks it again and hides it from the app.
    assert plugins_before["key-auth"]["config"]["hide_credentials"] is True
    assert plugins_after["key-auth"]["config"] == {"key_names": ["apikey"],
                                                   "hide_credentials": False}
    assert _by_name(cluster["upstreams"])["hostctl-triage-api"] == {
        "name": "hostctl-triage-api",
        "healthchecks": {
            "active": {"type": "tcp", "timeout": 1,
                       "healthy": {"interval": 2, "successes": 1},
                       "unhealthy": {"interval": 2, "tcp_failures": 3, "timeouts": 3}},
            "passive": {"type": "http", "unhealthy": {
                "http_failures": 5, "tcp_failures": 2, "timeouts": 3,
                "http_statuses": [500, 502, 503, 504]}}},
        "tags": ["hostctl:upstream:triage-api"],
        "targets": [{"target": TARGET, "weight": 100,
                     "tags": ["hostctl:target:triage-api:cluster"]}],
    }


def test_cluster_routed_file_matches_golden_and_kongs_schema(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """HOSTCTL_UPDATE_GOLDEN=1 rewrites the golden copy."""
    monkeypatch.chdir(REPO)
    rendered = render_declarative(example_site(tmp_path), cluster_targets={
        "triage-api": TARGET})
    assert rendered is not None
    assert ks.check(yaml.safe_load(rendered.text)) == []
    assert ks.check(yaml.safe_load(rendered.redacted)) == []
    if os.environ.get("HOSTCTL_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_bytes(rendered.redacted)
    assert rendered.redacted.decode() == GOLDEN.read_text()
    for value in EXAMPLE_SECRETS.values():
        assert value not in rendered.redacted.decode()


def test_kong_refuses_a_non_boolean_preserve_host() -> None:
    doc = {"_format_version": "3.0", "services": [{
        "name": "api", "host": "hostctl-api", "routes": [
            {"name": "api", "paths": ["/api"], "preserve_host": "yes"}]}]}
    (entity,) = ks.validate(doc)[1]
    assert entity.as_flattened()["errors"] == [
        {"type": "field", "field": "preserve_host", "message": "expected a boolean"}]


def test_the_clusters_ingress_matches_what_kong_sends(tmp_path: Path) -> None:
    """Host and path as Kong forwards them meet the Ingress rendered for the same route."""
    site = example_site(tmp_path)
    gw = site.inventory.gateway
    assert gw is not None
    config, _ = build_declarative(site, gw, cluster_targets={"triage-api": TARGET})
    route = _by_name(config["services"])["triage-api"]["routes"][0]
    rendering = render_manifests(site, K3sConfig(gateway_target=TARGET))
    (ingress,) = [d for d in rendering.manifests if d["kind"] == "Ingress"
                  and d["metadata"]["name"] == "triage-api"]
    (rule,) = ingress["spec"]["rules"]
    assert "host" not in rule and "hosts" not in route  # any Host matches, on both sides
    assert [p["path"] for p in rule["http"]["paths"]] == route["paths"]
    assert {p["pathType"] for p in rule["http"]["paths"]} == {"Prefix"}
    # the cluster strips the prefix and hides the key, as the hosts' Kong did before
    assert ingress["metadata"]["annotations"]["konghq.com/strip-path"] == "true"
    (key_auth,) = [d for d in rendering.manifests if d["kind"] == "KongPlugin"
                   and d["plugin"] == "key-auth" and d["metadata"]["name"].startswith(
                       "triage-api")]
    assert key_auth["config"]["hide_credentials"] is True
