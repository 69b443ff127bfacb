"""The inventory's gateway section: the annotated example, the schema, the cross-checks.

The helpers the gateway tests share (the worked example with the example gateway section
merged in, a small gateway site) are in tests/rigs/gateway_sites.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from hostctl.errors import ConfigError
from hostctl.spec.inventory import INVENTORY_KEYS
from hostctl.spec.model import Site
from hostctl.spec.schema import Context, Record
from hostctl.spec.sections.gateway import (
    GATEWAY,
    Consumer,
    GatewayConfig,
    JwtCredential,
    ProxyPorts,
    check_gateway,
    kong_environment,
)
from hostctl.spec.yamlsource import load_documents
from tests.rigs.gateway_sites import (
    GATEWAY_EXAMPLE,
    GATEWAY_INVENTORY,
    ROUTED,
    example_site,
)
from tests.rigs.site_factory import made_site


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages name files relative to where the operator stands: stand in the site."""
    monkeypatch.chdir(tmp_path)


def small_site(root: Path, specs: dict[str, str], inventory: str = GATEWAY_INVENTORY) -> Site:
    return made_site(root, specs, inventory, environ={})


def problems_of(site: Site) -> list[str]:
    return [str(p) for p in check_gateway(site.inventory, list(site.workloads), site.secrets)]


def site_problems(root: Path, specs: dict[str, str], inventory: str = GATEWAY_INVENTORY
                  ) -> list[str]:
    """The gateway problems of a site, sorted, whether the loader finds them (once it checks
    the gateway section itself) or `check_gateway` does afterwards."""
    try:
        site = small_site(root, specs, inventory)
    except ConfigError as err:
        return sorted(str(p) for p in err.problems)
    return sorted(problems_of(site))


# -- the annotated example ------------------------------------------------------------------

def test_annotated_example_validates_against_the_worked_example(tmp_path: Path) -> None:
    site = example_site(tmp_path)
    gw = site.inventory.gateway
    assert problems_of(site) == []
    assert gw == GatewayConfig(
        hosts=("edge-1",), image="kong:3.9.1", image_source="push", proxy=ProxyPorts(8000),
        admin_port=8001, status_port=8100, key_names=("apikey",),
        consumers={
            "reports-dashboard": Consumer("reports-dashboard", "reports", jwt=(JwtCredential(
                "REPORTS_DASHBOARD_JWT_SECRET", "reports-dashboard", "HS256"),)),
            "triage-ci": Consumer("triage-ci", "triage", key_auth=("TRIAGE_CI_API_KEY",)),
        },
        file=gw.file if gw else "", lines=gw.lines if gw else {})
    assert gw is not None and gw.source("gateway/consumers/triage-ci/key_auth/0").line > 0


def _schema_keys(record: Any, prefix: str = "") -> set[str]:
    keys = set()
    for key, f in record.fields.items():
        keys.add(f.key or key)
        if isinstance(f.check, Record):
            keys |= _schema_keys(f.check)
    return keys


def test_every_key_of_the_section_is_documented_in_the_example() -> None:
    from hostctl.spec.sections.gateway import _section

    documented = set(re.findall(r"^\s*#?\s*(?:- )?([a-z_]+):", GATEWAY_EXAMPLE.read_text(), re.M))
    keys = _schema_keys(_section()) | {"project", "key_auth", "jwt", "secret", "key",
                                       "algorithm"}
    assert keys <= documented, sorted(keys - documented)


def test_the_section_works_as_the_inventory_schema_entry() -> None:
    """What the proposed spec_schema change does: GATEWAY in place of AnyMapping."""
    text = "site: s\nhosts: {a: {address: 10.0.0.1}}\nspecs: [x]\ngateway:\n" \
           "  hosts: [a]\n  consumers:\n    c1: {project: p, key_auth: K}\n"
    doc = load_documents(text, "inv.yml")[0]
    problems: list[Any] = []
    top = Record(dict, {**INVENTORY_KEYS, "gateway": GATEWAY})(doc.data, (), Context(doc,
                                                                                     problems))
    gw = top["gateway"]
    assert problems == []
    assert gw.consumers["c1"] == Consumer("c1", "p", key_auth=("K",))
    assert gw.file == "inv.yml" and gw.lines["gateway/consumers/c1"] == 7
    empty = load_documents("site: s\nhosts: {a: {address: 10.0.0.1}}\nspecs: [x]\n"
                           "gateway: {}\n", "inv.yml")[0]
    top = Record(dict, {**INVENTORY_KEYS, "gateway": GATEWAY})(empty.data, (), Context(
        empty, problems))
    assert problems == [] and top["gateway"] is None  # an empty section: no gateway


def test_kong_environment_keeps_the_admin_api_inside_and_publishes_it_on_loopback() -> None:
    gw = GatewayConfig(hosts=("edge-1",), proxy=ProxyPorts(80, 443), admin_port=9001)
    env = kong_environment(gw)
    assert env["KONG_DATABASE"] == "off"
    assert env["KONG_PROXY_LISTEN"] == "0.0.0.0:8000, 0.0.0.0:8443 ssl"
    assert gw.published_ports() == [("0.0.0.0", 80, 8000), ("0.0.0.0", 443, 8443),
                                    ("127.0.0.1", 9001, 8001), ("127.0.0.1", 8100, 8100)]


# -- located messages: input -> exact text -------------------------------------------------

SCHEMA_ERRORS = [
    ("  hostz: [edge-1]\n", "gateway/hostz: unknown key 'hostz'; did you mean 'hosts'? "
     "(known: admin_port, consumers, drain, hosts, image, image_source, key_names, managed, "
     "proxy, status_port)"),
    ("  hostz: [edge-1]\n", "gateway: missing required key 'hosts'"),
    ("  hosts: [edge-1]\n  admin_port: 70000\n", "gateway/admin_port: must be at most 65535, "
     "got 70000"),
    ("  hosts: [edge-1]\n  consumers:\n    Bad_Name: {project: shop, key_auth: [K]}\n",
     "gateway/consumers/Bad_Name: 'Bad_Name' is not valid: use lowercase letters, digits, "
     "'.', '_' and '-'"),
    ("  hosts: [edge-1]\n  consumers:\n    c: {key_auth: [K]}\n",
     "gateway/consumers/c: missing required key 'project'"),
    ("  hosts: [edge-1]\n  consumers:\n    c: {project: shop, jwt: [{secret: S, "
     "algorithm: RS256}]}\n", "gateway/consumers/c/jwt/0/algorithm: 'RS256' is not one of: "
     "HS256, HS384, HS512; did you mean 'HS256'?"),
]


@pytest.mark.parametrize(("section", "message"), SCHEMA_ERRORS)
def test_schema_errors_name_file_line_and_key(tmp_path: Path, section: str, message: str
                                              ) -> None:
    inventory = GATEWAY_INVENTORY.split("gateway:")[0] + "gateway:\n" + section
    problems = site_problems(tmp_path, {"api.yml": ROUTED.replace("auth: key-auth",
                                                                  "auth: none")}, inventory)
    assert all(p.startswith("site.yml:") for p in problems), problems
    assert message in [p.split(": ", 1)[1] for p in problems]


CROSS_ERRORS = [
    # (gateway section, extra spec text, expected message)
    ("  hosts: [egde-1]\n  consumers:\n    shop-ci: {project: shop, key_auth: [API_TOKEN]}\n",
     "", "site.yml:8: gateway/hosts/0: no host 'egde-1' in site.yml; did you mean 'edge-1'? "
         "(known: edge-1, app-1)"),
    ("  hosts: [edge-1]\n  consumers:\n    shop-ci: {project: shop, key_auth: [NOPE]}\n",
     "", "site.yml:10: gateway/consumers/shop-ci/key_auth/0: secret 'NOPE' is not in "
         "secrets.env; add it there (never in the inventory)"),
    ("  hosts: [edge-1]\n  consumers:\n    shop-ci: {project: shopp, key_auth: [API_TOKEN]}\n",
     "", "site.yml:10: gateway/consumers/shop-ci/project: no spec has project 'shopp'; did "
         "you mean 'shop'? (projects: shop)"),
    ("  hosts: [edge-1]\n  consumers:\n    shop-ci: {project: shop}\n", "",
     "site.yml:10: gateway/consumers/shop-ci: has no credentials: add key_auth: "
     "[SECRET_NAME] or jwt: [{secret: SECRET_NAME}]"),
    ("  hosts: [edge-1]\n  proxy: {http: 8100}\n  consumers:\n    shop-ci: {project: shop, "
     "key_auth: [API_TOKEN]}\n", "",
     "site.yml:9: gateway/proxy/http: port 8100 is also gateway/status_port; give each "
     "listener its own port"),
]


@pytest.mark.parametrize(("section", "spec_extra", "message"), CROSS_ERRORS)
def test_cross_checks_name_file_line_and_key(tmp_path: Path, section: str, spec_extra: str,
                                             message: str) -> None:
    inventory = GATEWAY_INVENTORY.split("gateway:")[0] + "gateway:\n" + section
    problems = site_problems(tmp_path, {"api.yml": ROUTED + spec_extra}, inventory)
    assert message in problems, problems


def test_key_auth_route_without_a_consumer_of_its_project(tmp_path: Path) -> None:
    inventory = GATEWAY_INVENTORY.replace("project: shop", "project: shop").replace(
        "shop-ci: {project: shop, key_auth: [API_TOKEN]}",
        "ops: {project: ops, key_auth: [API_TOKEN]}")
    ops = ROUTED.replace("name: api", "name: ops").replace("project: shop", "project: ops") \
        .replace("/api", "/ops").replace("18080", "18090").replace("auth: key-auth",
                                                                     "auth: none")
    assert site_problems(tmp_path, {"api.yml": ROUTED, "ops.yml": ops}, inventory) == [
        "specs/api.yml:12: route/auth: no consumer can call this route: add one under "
        "gateway/consumers in site.yml with project: shop and key_auth: [SECRET_NAME]"]


def test_allow_projects_lets_another_projects_consumer_in(tmp_path: Path) -> None:
    inventory = GATEWAY_INVENTORY.replace("shop-ci: {project: shop",
                                          "ops-ci: {project: ops")
    ops = ROUTED.replace("name: api", "name: ops").replace("project: shop", "project: ops") \
        .replace("/api", "/ops").replace("18080", "18090")
    spec = ROUTED + "  allow_projects: [ops]\n"
    assert site_problems(tmp_path, {"api.yml": spec, "ops.yml": ops}, inventory) == []


def test_allow_projects_must_exist_and_needs_auth(tmp_path: Path) -> None:
    spec = ROUTED.replace("auth: key-auth", "auth: none") + "  allow_projects: [opss]\n"
    assert site_problems(tmp_path, {"api.yml": spec}) == [
        "specs/api.yml:13: route/allow_projects/0: no spec has project 'opss'",
        "specs/api.yml:13: route/allow_projects: has no effect on a route without auth; set "
        "route/auth or remove it",
    ]


def test_two_routes_with_the_same_path_and_hosts(tmp_path: Path) -> None:
    other = ROUTED.replace("name: api", "name: web").replace("18080", "18090")
    assert site_problems(tmp_path, {"api.yml": ROUTED, "web.yml": other}) == [
        "specs/web.yml:11: route/path: '/api' is also routed to api (specs/api.yml:10); give "
        "one of them another path, hosts or methods"]


def test_same_path_on_different_hosts_or_methods_is_fine(tmp_path: Path) -> None:
    a = ROUTED + "  hosts: [a.example.org]\n"
    b = ROUTED.replace("name: api", "name: b").replace("18080", "18090") + \
        "  hosts: [b.example.org]\n"
    c = ROUTED.replace("name: api", "name: c").replace("18080", "18100") + \
        "  hosts: [a.example.org]\n  methods: [POST]\n"
    d = ROUTED.replace("name: api", "name: d").replace("18080", "18110") + \
        "  hosts: [a.example.org]\n  methods: [GET]\n"
    # a matches every method, so c and d overlap it; c and d do not overlap each other.
    problems = site_problems(tmp_path, {"a.yml": a, "b.yml": b, "c.yml": c, "d.yml": d})
    assert [p.split(": ", 1)[1] for p in problems] == [
        "route/path: '/api' on a.example.org is also routed to api (specs/a.yml:10); give one "
        "of them another path, hosts or methods"] * 2


def test_a_service_port_on_the_gateway_host_may_not_take_kongs_port(tmp_path: Path) -> None:
    spec = ROUTED.replace("placement: {hosts: [app-1]}", "placement: {hosts: [edge-1]}") \
        .replace("18080", "8000")
    assert site_problems(tmp_path, {"api.yml": spec}) == [
        "site.yml:7: gateway/proxy/http: host port 8000 on edge-1 is also published by api "
        "(specs/api.yml); pick another port"]


def test_no_gateway_section_means_no_gateway_checks(tmp_path: Path) -> None:
    inventory = GATEWAY_INVENTORY.split("gateway:")[0]
    site = small_site(tmp_path, {"api.yml": ROUTED}, inventory)
    assert problems_of(site) == []
    assert site.inventory.gateway is None


def test_render_raises_every_problem_at_once(tmp_path: Path) -> None:
    from hostctl.gateway.declarative import render_declarative

    inventory = GATEWAY_INVENTORY.replace("hosts: [edge-1]", "hosts: [edge-2]").replace(
        "API_TOKEN]", "MISSING]")
    with pytest.raises(ConfigError) as err:  # from the loader once it checks the section
        render_declarative(small_site(tmp_path, {"api.yml": ROUTED}, inventory))
    assert len(err.value.problems) == 2
