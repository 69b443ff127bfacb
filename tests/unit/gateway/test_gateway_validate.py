"""`validate` refuses every route or gateway value Kong 3.9 would refuse (issue 10): input ->
the exact problems, with file, line and key; and, over generated values, the spec rules are
never looser than Kong's (kong_typedefs, PCRE2 itself)."""

from __future__ import annotations

import string
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hostctl.errors import ConfigError
from hostctl.gateway import kong_typedefs as kt
from hostctl.gateway import pcre
from hostctl.gateway.spec_rules import route_path_problem
from hostctl.spec.rules import route as route_schema
from hostctl.spec.schema import Context
from hostctl.spec.yamlsource import Document
from hostctl.validate import kong_accepts
from tests.rigs.gateway_sites import GATEWAY_INVENTORY, ROUTED
from tests.rigs.site_factory import BASE_SECRETS, made_site


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def problems(root: Path, spec: str, inventory: str = GATEWAY_INVENTORY,
             secrets: str = BASE_SECRETS) -> list[str]:
    try:
        made_site(root, {"api.yml": spec}, inventory, secrets, environ={})
    except ConfigError as err:
        return [str(p) for p in err.problems]
    return []


def _route(extra: str, path: str = "/api") -> str:
    return ROUTED.replace("  path: /api\n", f"  path: {path}\n") + extra


def _consumers(section: str) -> str:
    return GATEWAY_INVENTORY.split("  consumers:")[0] + "  consumers:\n" + section


SPEC_CASES = [
    pytest.param(_route("", path="'/a\\b'"), [
        "specs/api.yml:11: route/path: '/a\\b' is not a usable path prefix: it has '\\', "
        "which a request path cannot hold: use letters, digits and - . _ ~ ! $ & ' ( ) * + , "
        "; = : @ / (RFC 3986), and %XX escapes for the rest"], id="path-backslash"),
    pytest.param(_route("", path='"/a\\x01b"'), [
        "specs/api.yml:11: route/path: '/a\\x01b' is not a usable path prefix: it has '\\x01', "
        "which a request path cannot hold: use letters, digits and - . _ ~ ! $ & ' ( ) * + , "
        "; = : @ / (RFC 3986), and %XX escapes for the rest"], id="path-control"),
    pytest.param(_route("", path="/a?b"), [
        "specs/api.yml:11: route/path: '/a?b' is not a usable path prefix: it has '?', which "
        "a request path cannot hold: use letters, digits and - . _ ~ ! $ & ' ( ) * + , ; = : "
        "@ / (RFC 3986), and %XX escapes for the rest"], id="path-query"),
    pytest.param(_route("", path="/a//b"), [
        "specs/api.yml:11: route/path: '/a//b' is not a usable path prefix: it has an empty "
        "segment ('//'), which Kong refuses: use single slashes"], id="path-empty-segment"),
    pytest.param(_route("", path="/%7Eapi"), [
        "specs/api.yml:11: route/path: '/%7Eapi' is not a usable path prefix: Kong refuses it "
        "and matches requests against its normalized form '/~api' (no '.' or '..' segments, "
        "no escapes of unreserved characters): write that"], id="path-escaped-unreserved"),
    pytest.param(_route("  hosts: [a..example.org]\n"), [
        "specs/api.yml:13: route/hosts/0: 'a..example.org' is refused by Kong (invalid "
        "hostname: a..example.org): give a DNS name such as api.example.org or "
        "*.example.org, with a port of at most 65535"], id="host-empty-label"),
    pytest.param(_route("  hosts: [a-.example.org]\n"), [
        "specs/api.yml:13: route/hosts/0: 'a-.example.org' is refused by Kong (invalid "
        "hostname: a-.example.org): give a DNS name such as api.example.org or "
        "*.example.org, with a port of at most 65535"], id="host-label-ends-with-dash"),
    pytest.param(_route("  hosts: ['api.example.org:99999']\n"), [
        "specs/api.yml:13: route/hosts/0: 'api.example.org:99999' is refused by Kong (invalid "
        "port number): give a DNS name such as api.example.org or *.example.org, with a port "
        "of at most 65535"], id="host-port-too-large"),
    pytest.param(_route("  rate_limit: {}\n"), [
        "specs/api.yml:13: route/rate_limit: sets no limit: give requests per second, minute, "
        "hour or day, e.g. {minute: 600}, or remove it"], id="rate-limit-empty"),
    pytest.param(_route("  rate_limit: {minute: 100, hour: 50, day: 10}\n"), [
        "specs/api.yml:13: route/rate_limit/hour: allows fewer requests per hour (50) than "
        "per minute (100), which Kong refuses: raise it to at least 100, or lower minute"],
        id="rate-limit-order"),
    pytest.param(_route("  cors: {origins: ['https://(?=x)a.org']}\n"), [
        "specs/api.yml:13: route/cors/origins/0: 'https://(?=x)a.org' has '(?=' at position "
        "8: only plain groups (...) and (?:...) mean the same to Python and Kong's PCRE; Kong "
        "compiles every origin as a PCRE regex"], id="cors-lookahead"),
    pytest.param(_route("  cors: {origins: ['https://a{,3}.org']}\n"), [
        "specs/api.yml:13: route/cors/origins/0: 'https://a{,3}.org' has '{' at position 9 "
        "that is not a count {n}, {n,} or {n,m}: write a literal brace as '\\{'; Kong "
        "compiles every origin as a PCRE regex"], id="cors-brace"),
    pytest.param(_route("  cors: {origins: ['https://(a.org']}\n"), [
        "specs/api.yml:13: route/cors/origins/0: 'https://(a.org' is not a valid regex "
        "(missing ), unterminated subpattern at position 8); Kong compiles every origin as a "
        "PCRE regex"], id="cors-unbalanced"),
    pytest.param(ROUTED.replace("http: {container: 8080, host: 18080}",
                                "http: {container: 8080, host: 18080, protocol: udp}")
                 .replace("health:\n  http: {path: /health, port: http}\n", ""), [
        "specs/api.yml:8: route: 'http' is a udp port, and the gateway proxies HTTP, which "
        "runs over TCP: route a tcp port"], id="udp-port"),
    pytest.param(ROUTED.replace("path: /health", "path: '/health?deep=1'"), [
        "specs/api.yml:8: health/http/path: '/health?deep=1' is also the gateway's active "
        "health check of this routed service, and Kong refuses it (invalid path: "
        "'/health?deep=1' (characters outside of the reserved list of RFC 3986 found)): use a "
        "path without a query string, '//' or characters outside RFC 3986, such as /health"],
        id="health-path-query"),
    # Kong's timeout typedef: whole ms up to 2^31-2 (about 24.8 days).
    pytest.param(_route("  timeouts: {connect: 25d, read: 24d, write: 1ms}\n"), [
        "specs/api.yml:13: route/timeouts/connect: must be at most 24d, got '25d'"],
        id="timeout-past-kongs"),
    # Kong's cors plugin sends tostring(max_age): whole seconds, and browsers cap it at 1d.
    pytest.param(_route("  cors: {origins: ['*'], max_age: 1.5s}\n"), [
        "specs/api.yml:13: route/cors/max_age: 1.5s is not a whole number of seconds, and "
        "Kong sends it as Access-Control-Max-Age, which takes only those: round it"],
        id="cors-max-age-fraction"),
    pytest.param(_route("  cors: {origins: ['*'], max_age: 2d}\n"), [
        "specs/api.yml:13: route/cors/max_age: must be at most 1d, got '2d'"],
        id="cors-max-age-too-long"),
    pytest.param(_route("  cors: {origins: ['*'], max_age: 1d}\n"), [], id="cors-max-age-1d"),
    # Kong reads allowed_payload_size as a Lua number: beyond 2^53-1 it is rounded.
    pytest.param(_route("  max_body: 8000000Ti\n"), [
        "specs/api.yml:13: route/max_body: must be at most 9007199254740991 bytes, got "
        "'8000000Ti'"], id="max-body-past-lua"),
]


@pytest.mark.parametrize(("spec", "expected"), SPEC_CASES)
def test_spec_values_kong_refuses(tmp_path: Path, spec: str, expected: list[str]) -> None:
    assert problems(tmp_path, spec) == expected


def test_a_health_path_kong_never_sees_may_have_a_query(tmp_path: Path) -> None:
    """Unrouted, or checked on another port than the routed one: only hostctl's probe uses it."""
    unrouted = ROUTED.replace("path: /health", "path: '/health?deep=1'").split("route:")[0]
    assert problems(tmp_path, unrouted) == []


GATEWAY_CASES = [
    pytest.param("    a: {project: shop, key_auth: [API_TOKEN]}\n"
                 "    b: {project: shop, key_auth: [API_TOKEN]}\n", BASE_SECRETS, [
        "site.yml:11: gateway/consumers/b/key_auth/0: secret 'API_TOKEN' is the same secret "
        "as gateway/consumers/a/key_auth/0, and Kong refuses two key-auth credentials with one "
        "key: give each credential its own secret value"], id="two-consumers-one-secret"),
    pytest.param("    a: {project: shop, key_auth: [API_TOKEN]}\n"
                 "    b: {project: shop, key_auth: [OTHER]}\n", BASE_SECRETS + "OTHER=tok-123\n", [
        "site.yml:11: gateway/consumers/b/key_auth/0: secret 'OTHER' holds the same key as "
        "secret 'API_TOKEN' at gateway/consumers/a/key_auth/0, and Kong refuses two key-auth "
        "credentials with one key: give each credential its own secret value"],
        id="two-secrets-one-value"),
    pytest.param("    a: {project: shop, key_auth: [EMPTY]}\n", BASE_SECRETS + "EMPTY=\n", [
        "site.yml:10: gateway/consumers/a/key_auth/0: secret 'EMPTY' is empty, and Kong "
        "refuses an empty API key: give it a value in secrets.env"], id="empty-key"),
    pytest.param("    a: {project: shop, key_auth: [API_TOKEN]}\n"
                 "    b: {project: shop, jwt: [{secret: J1, key: a}, {secret: J2}]}\n"
                 "    c: {project: shop, jwt: [{secret: J1, key: b}]}\n",
                 BASE_SECRETS + "J1=one\nJ2=two\n", [
        "site.yml:12: gateway/consumers/c/jwt/0/key: JWT key 'b' is also the key at "
        "gateway/consumers/b/jwt/1 (a missing key is the consumer's name), and Kong "
        "refuses two JWT credentials with one key: set a different key (the tokens' iss "
        "claim)"], id="jwt-keys-shared"),
]


GATEWAY_SECTION_CASES = [
    pytest.param("  drain: 2h\n", [
        "site.yml:9: gateway/drain: must be at most 1h, got '2h'"], id="drain-too-long"),
    pytest.param("  image_source: push\n  image: kong@sha256:" + "0" * 64 + "\n", [
        "site.yml:10: gateway/image: 'kong@sha256:" + "0" * 45 + "...' names its image by "
        "digest, and image_source is push (in site.yml): docker load brings no digests to the "
        "host, so the image could not be found there; push it by tag (name:tag, without "
        "@sha256:...), or set image_source: pull"], id="image-pushed-by-digest"),
    pytest.param("  image: kong@sha256:" + "0" * 64 + "\n", [], id="image-pulled-by-digest"),
]


@pytest.mark.parametrize(("keys", "expected"), GATEWAY_SECTION_CASES)
def test_gateway_section_values_deploy_would_fail_on(tmp_path: Path, keys: str,
                                                     expected: list[str]) -> None:
    inventory = GATEWAY_INVENTORY.replace("  hosts: [edge-1]\n", "  hosts: [edge-1]\n" + keys)
    assert problems(tmp_path, ROUTED, inventory) == expected


@pytest.mark.parametrize(("consumers", "secrets", "expected"), GATEWAY_CASES)
def test_gateway_values_kong_refuses(tmp_path: Path, consumers: str, secrets: str,
                                     expected: list[str]) -> None:
    assert problems(tmp_path, ROUTED, _consumers(consumers), secrets) == expected


def test_messages_never_show_a_key(tmp_path: Path) -> None:
    found = problems(tmp_path, ROUTED, _consumers(
        "    a: {project: shop, key_auth: [API_TOKEN]}\n"
        "    b: {project: shop, key_auth: [OTHER]}\n"), BASE_SECRETS + "OTHER=tok-123\n")
    assert found and not any("tok-123" in p for p in found)


# -- the spec rules are never looser than Kong ----------------------------------------------

PATH_TEXT = st.text(string.ascii_letters[:6] + string.digits[:3] + "/.%-_~?#\\ \x01é:@!$&'()*+,;=",
                    max_size=14).map(lambda s: "/" + s)


@settings(max_examples=400, deadline=None)
@given(PATH_TEXT)
def test_an_accepted_route_path_is_one_kong_accepts(value: str) -> None:
    if route_path_problem(value) is None:
        assert kt.router_path(value) is None


HOST_TEXT = st.text("ab-.*:019_", min_size=1, max_size=12)


@settings(max_examples=400, deadline=None)
@given(HOST_TEXT)
def test_an_accepted_route_host_is_one_kong_accepts(value: str) -> None:
    ctx = Context(Document("x.yml", {}, {}), [])
    route_schema({"hosts": [value]}, (), ctx)
    if not ctx.problems:
        assert kt.route_host(value) is None


REGEX_TEXT = st.text("ab.*+?{}[]()^$|\\-,0123:/(?:=!<>P", max_size=12)


@pytest.mark.parametrize(("pattern", "first"), [
    ("[::]", ":"), ("[:a:]", ":"), ("a[::]b", ":"), ("[..]", "."), ("[.a.]", "."),
    ("[==]", "="), ("[=a=]", "=")])
def test_a_class_pcre_reads_as_posix_syntax_is_refused(pattern: str, first: str) -> None:
    """PCRE2 refuses these ("POSIX named classes are supported only within a class", "POSIX
    collating elements are not supported"); Python reads a plain class."""
    at = pattern.index("[")
    end = pattern.index("]") + 1
    assert pcre.portable_error(pattern) == (
        f"has '{pattern[at:end]}' at position {at}, which Kong's PCRE reads as a POSIX class "
        f"or collating element: do not start and end a class with '{first}'")


@pytest.mark.parametrize("pattern", ["[.]", "[:]", "[=]", "[^::]", "[:ab]", "[a:]", "[.a-z]"])
def test_classes_pcre_and_python_read_alike_pass(pattern: str) -> None:
    assert pcre.portable_error(pattern) is None


@settings(max_examples=600, deadline=None)
@given(REGEX_TEXT)
def test_an_accepted_cors_origin_is_one_pcre2_compiles(value: str) -> None:
    if pcre.pcre2_error("") is pcre.NOT_AVAILABLE:
        pytest.skip("libpcre2-8 is not loadable here")
    if pcre.portable_error(value) is None:
        assert pcre.pcre2_error(value) is None, value


def test_an_address_kong_refuses_as_a_target_is_refused_at_the_inventory_line(
        tmp_path: Path) -> None:
    """The inventory's own address rule is as strict as Kong's target rule, so the operator
    is pointed at the host, not at a spec that publishes a port on it."""
    inventory = GATEWAY_INVENTORY.replace("address: 10.0.0.1", "address: 10.0.0.256")
    assert problems(tmp_path, ROUTED, inventory) == [
        "site.yml:4: hosts/app-1/address: '10.0.0.256' is not a valid IPv4 address "
        "(four numbers 0..255)"]


def test_whatever_else_kong_refuses_validate_reports_through_kongs_rules(
        tmp_path: Path) -> None:
    """Validate's final Kong check renders the Kong file and runs Kong's rules on it, a backstop
    for whatever the field rules let through: here an address no loader would accept, set on
    an already loaded site, is caught there and located at the spec key behind the target."""
    site = made_site(tmp_path, {"api.yml": ROUTED}, GATEWAY_INVENTORY, BASE_SECRETS,
                     environ={})
    inv = site.inventory
    hosts = {name: replace(h, address="10.0.0.256") if name == "app-1" else h
             for name, h in inv.hosts.items()}
    inv = replace(inv, hosts=hosts)
    found = [str(p) for p in kong_accepts(inv, list(site.workloads), site.secrets, False)]
    assert found == [
        "specs/api.yml:6: ports/http/host: Kong would reject target '10.0.0.256:18080' "
        "(hostctl-api-1 on app-1) of upstream 'hostctl-api': target: Invalid target "
        "('10.0.0.256:18080'); not a valid hostname or ip address"]


def test_a_health_interval_kong_cannot_probe_at_is_refused_where_it_is_written(
        tmp_path: Path) -> None:
    spec = ROUTED.replace("  http: {path: /health, port: http}\n",
                          "  http: {path: /health, port: http}\n  interval: 20h\n")
    assert problems(tmp_path, spec) == [
        "specs/api.yml:9: health/interval: Kong would reject upstream 'hostctl-api': "
        "healthchecks.active.healthy.interval: value should be between 0 and 65535",
        "specs/api.yml:9: health/interval: Kong would reject upstream 'hostctl-api': "
        "healthchecks.active.unhealthy.interval: value should be between 0 and 65535"]
