"""Kong 3.9.1's own test vectors for the typedefs and entities hostctl writes, as tables.

Each table names the upstream file (Kong/kong at tag 3.9.1) its values come from; the values and
messages are copied as they are there. Where upstream asserts only that a value fails, the
message is the one Kong's validator returns for it (read from the same tag's sources).
"""

from __future__ import annotations

from typing import Any

import pytest

from hostctl.gateway import kong_schema as ks
from hostctl.gateway import kong_typedefs as kt
from hostctl.gateway import pcre

SCHEMA = "spec/01-unit/01-db/01-schema/"

# Paths with a bad %-escape: the same vectors in 05-services_spec.lua (path) and
# 06-routes_spec.lua (paths), with the same message.
BAD_PERCENT_ENCODINGS: list[tuple[str, str | None]] = [
    ("/some%2words", "invalid url-encoded value: '%2w'"),
    ("/some%0Xwords", "invalid url-encoded value: '%0X'"),
    ("/some%2Gwords", "invalid url-encoded value: '%2G'"),
    ("/some%20words%", "invalid url-encoded value: '%'"),
    ("/some%20words%a", "invalid url-encoded value: '%a'"),
    ("/some%20words%ax", "invalid url-encoded value: '%ax'"),
]

# -- 06-routes_spec.lua: paths attribute ---------------------------------------------------

ROUTE_PATHS: list[tuple[str, str | None]] = [
    ("foo", "should start with: / (fixed path) or ~/ (regex path)"),
    ("/foo//bar", "must not have empty segments"),
    ("/foo/bar//", "must not have empty segments"),
    ("//foo/bar", "must not have empty segments"),
    ("~/users/(foo/profile", "invalid regex: '/users/(foo/profile' (PCRE returned: "
     "pcre2_compile() failed: missing closing parenthesis in \"/users/(foo/profile\")"),
    *BAD_PERCENT_ENCODINGS,
    ("/", None),
    ("/abcd~user~2", None),
    ("/ovo/", None),
    # "errors for not-normalized prefix path" (its loop uses ipairs on a map and so never
    # runs upstream; the messages are validate_path_with_regexes' own):
    ("/%c3%A4", "non-normalized path, consider use '/ä' instead"),
    ("/%20", "non-normalized path, consider use '/ ' instead"),
    ("/%25", None),
    # Routes ignore validate_path's RFC 3986 error (only its "percent" one counts):
    ("/a b", None),
    ("/a?b", None),
    ("/a\\b", None),
]


@pytest.mark.parametrize(("value", "message"), ROUTE_PATHS)
def test_route_paths_06_routes_spec(value: str, message: str | None) -> None:
    if value.startswith("~") and pcre.pcre2_error("") is pcre.NOT_AVAILABLE:
        pytest.skip("libpcre2-8 is not loadable here")
    assert kt.router_path(value) == message


# -- 05-services_spec.lua: path attribute (typedefs.path: also healthchecks.active.http_path)

PATHS: list[tuple[str, str | None]] = [
    ("foo", "should start with: /"),
    ("/foo//bar", "must not have empty segments"),
    ("/foo/bar//", "must not have empty segments"),
    ("//foo/bar", "must not have empty segments"),
    ("/users/|foo/profile", "invalid path: '/users/|foo/profile' (characters outside of the "
                            "reserved list of RFC 3986 found)"),
    ("/users/(this|foo/profile)", "invalid path: '/users/(this|foo/profile)' (characters "
                                  "outside of the reserved list of RFC 3986 found)"),
    ("/hello/path$with$!&'()*+,;=stuff", None),
    *BAD_PERCENT_ENCODINGS,
    ("/", None), ("/abcd~user~2", None), ("/abcd%aa%10%ff%AA%FF", None), ("/ovo/", None),
    # issue 10: what a spec's health path may hold and Kong's http_path may not
    ("/health?deep=1", "invalid path: '/health?deep=1' (characters outside of the reserved "
                       "list of RFC 3986 found)"),
    ("/api//health", "must not have empty segments"),
]


@pytest.mark.parametrize(("value", "message"), PATHS)
def test_paths_05_services_spec(value: str, message: str | None) -> None:
    assert kt.path(value) == message


# -- 05-services_spec.lua: host attribute --------------------------------------------------

VALID_HOSTS = [
    "hello.com", "hello.fr", "test.hello.com", "1991.io", "hello.COM", "HELLO.com",
    "123helloWORLD.com", "example.123", "example-api.com", "hello.abcd", "example_api.com",
    "localhost", "3B-ww4c5e180e575a65lsy2b", "-with-SUPER-MONKEYS-pc58ag80a8qai00g7n9n",
    "Hello-Another-Way--fc4qua05auwb3674vfr0b", "2-u9tlzr9756bt3uc0v",
    "MajiKoi5-783gue6qz075azm5e", "de-jg4avhby1noc0d", "d9juau41awczczp",
]
INVALID_HOSTS = [
    "/example", ".example", "example:", "mock;bin", "example.com/org", "example-.org",
    "example.org-", "hello..example.com", "hello-.example.com",
]


@pytest.mark.parametrize("value", [*VALID_HOSTS, "example.test."])
def test_service_hosts_accepted_05_services_spec(value: str) -> None:
    assert kt.host(value) is None


@pytest.mark.parametrize("value", [*INVALID_HOSTS, "*example.com", "www.example*",
                                   "mock*bin.com"])
def test_service_hosts_refused_05_services_spec(value: str) -> None:
    assert kt.host(value) == "invalid value: " + value


@pytest.mark.parametrize("value", ["example.com:80", "example.com:1000000"])
def test_service_hosts_with_a_port_05_services_spec(value: str) -> None:
    assert kt.host(value) == "must not have a port"


# -- 06-routes_spec.lua: hosts attribute ---------------------------------------------------

@pytest.mark.parametrize("value", [*VALID_HOSTS, "example.com:80", "example.com:8080",
                                   "example.*", "*.example.org", "*.example.org:321"])
def test_route_hosts_accepted_06_routes_spec(value: str) -> None:
    assert kt.route_host(value) is None


@pytest.mark.parametrize("value", INVALID_HOSTS)
def test_route_hosts_refused_06_routes_spec(value: str) -> None:
    assert kt.route_host(value) == "invalid hostname: " + value


@pytest.mark.parametrize(("value", "message"), [
    ("example.com:1000000", "invalid port number"),
    ("*example.com", "invalid wildcard: must be placed at leftmost or rightmost label"),
    ("www.example*", "invalid wildcard: must be placed at leftmost or rightmost label"),
    ("mock*bin.com", "invalid wildcard: must be placed at leftmost or rightmost label"),
    ("*.example.*", "invalid wildcard: must have at most one wildcard"),
    ("**.example.com", "invalid wildcard: must have at most one wildcard"),
    ("*.example*.*", "invalid wildcard: must have at most one wildcard"),
])
def test_route_host_refusals_06_routes_spec(value: str, message: str) -> None:
    assert kt.route_host(value) == message


# -- 05-services_spec.lua / 14-consumers_spec.lua: names -----------------------------------

@pytest.mark.parametrize("value", ["example", "EXAMPLE", "exa.mp.le", "3x4mp13", "3x4-mp-13",
                                   "3x4_mp_13", "~3x4~mp~13", "~3..x4~.M-p~1__3_", "孔",
                                   "Конг", "🦍"])
def test_names_accepted_05_services_spec(value: str) -> None:
    assert kt.utf8_name(value) is None


@pytest.mark.parametrize("value", ["examp:le", "examp;le", "examp/le", "examp le"])
def test_names_refused_05_services_spec(value: str) -> None:
    assert kt.utf8_name(value) == (f"invalid value '{value}': the only accepted ascii "
                                   "characters are alphanumerics or ., -, _, and ~")


# -- 08-targets_spec.lua, 09-upstreams_spec.lua: targets and upstream names ----------------

@pytest.mark.parametrize("value", ["valid.name", "valid.name:8080", "12.34.56.78",
                                   "1.2.3.4:123", "[::1]:80", "[2001:db8::1]:18080"])
def test_targets_accepted_08_targets_spec(value: str) -> None:
    assert kt.target(value) is None


@pytest.mark.parametrize("value", ["\\\\bad\\\\////name////", "[::ffff:1.2.3.4]:80",
                                   "10.0.0.256:80", "host name:80"])
def test_targets_refused_08_targets_spec(value: str) -> None:
    assert kt.target(value) == f"Invalid target ('{value}'); not a valid hostname or ip address"


@pytest.mark.parametrize(("value", "message"), [
    ("123.123.123.123", "Invalid name ('123.123.123.123'); no ip addresses allowed"),
    ("\\\\bad\\\\////name////", "Invalid name ('\\\\bad\\\\////name////'); must be a valid "
                                "hostname"),
    ("name:80", "Invalid name ('name:80'); no port allowed"),
    ("1234", "Invalid name ('1234'); must be a valid hostname"),
    ("fafa fafa", "Invalid name ('fafa fafa'); must be a valid hostname"),
    ("192.168.0.1", "Invalid name ('192.168.0.1'); no ip addresses allowed"),
    ("myserver:8000", "Invalid name ('myserver:8000'); no port allowed"),
    ("valid.host.name", None),
])
def test_upstream_names_09_upstreams_spec(value: str, message: str | None) -> None:
    assert kt.upstream_name(value) == message


# -- 09-upstreams_spec.lua: healthchecks attribute -----------------------------------------

SECONDS = "value should be between 0 and 65535"
POS_INTEGER = "value should be between 1 and 2147483648"
ZERO_INTEGER = "value should be between 0 and 255"
STATUS_CODE = "value should be between 100 and 999"
INTEGER = "expected an integer"
ARRAY = "expected an array"
NUMBER = "expected a number"
THRESHOLD = "value should be between 0 and 100"

HEALTHCHECKS_REFUSED: list[tuple[dict[str, Any], str, str]] = [
    ({"active": {"timeout": -1}}, "active.timeout", SECONDS),
    ({"active": {"timeout": 1e+42}}, "active.timeout", SECONDS),
    ({"active": {"concurrency": 0.5}}, "active.concurrency", INTEGER),
    ({"active": {"concurrency": 0}}, "active.concurrency", POS_INTEGER),
    ({"active": {"concurrency": -10}}, "active.concurrency", POS_INTEGER),
    ({"active": {"http_path": ""}}, "active.http_path", "length must be at least 1"),
    ({"active": {"http_path": "ovo"}}, "active.http_path", "should start with: /"),
    *[({side: {state: {"http_statuses": value}}}, f"{side}.{state}.http_statuses{at}", msg)
      for side in ("active", "passive") for state in ("healthy", "unhealthy")
      for value, at, msg in ((404, "", ARRAY), (["ovo"], ".1", INTEGER),
                             ([-1], ".1", STATUS_CODE), ([99], ".1", STATUS_CODE),
                             ([1000], ".1", STATUS_CODE), ([111.314], ".1", INTEGER))],
    ({"active": {"healthy": {"interval": -1}}}, "active.healthy.interval", SECONDS),
    ({"active": {"healthy": {"interval": 1e+42}}}, "active.healthy.interval", SECONDS),
    ({"active": {"unhealthy": {"interval": -1}}}, "active.unhealthy.interval", SECONDS),
    ({"active": {"unhealthy": {"interval": 1e+42}}}, "active.unhealthy.interval", SECONDS),
    *[({side: {state: {counter: value}}}, f"{side}.{state}.{counter}", msg)
      for side, state, counter in (
          ("active", "healthy", "successes"), ("active", "unhealthy", "tcp_failures"),
          ("active", "unhealthy", "timeouts"), ("active", "unhealthy", "http_failures"),
          ("passive", "healthy", "successes"), ("passive", "unhealthy", "tcp_failures"),
          ("passive", "unhealthy", "timeouts"), ("passive", "unhealthy", "http_failures"))
      for value, msg in ((0.5, INTEGER), (-1, ZERO_INTEGER), (256, ZERO_INTEGER))],
    *[({side: {"unhealthy": {"timeouts": 1}}, "threshold": value}, "threshold", msg)
      for side in ("active", "passive")
      for value, msg in ((-1, THRESHOLD), (101, THRESHOLD), ("50", NUMBER), (True, NUMBER))],
]

HEALTHCHECKS_ACCEPTED: list[dict[str, Any]] = [
    {"active": {"timeout": 0.5}}, {"active": {"timeout": 1}}, {"active": {"concurrency": 2}},
    {"active": {"http_path": "/"}}, {"active": {"http_path": "/test"}},
    {"active": {"healthy": {"interval": 0}}},
    {"active": {"healthy": {"http_statuses": [200, 300]}}},
    {"active": {"healthy": {"successes": 2}}}, {"active": {"healthy": {"successes": 255}}},
    {"active": {"unhealthy": {"interval": 0}}},
    {"active": {"unhealthy": {"http_statuses": [404]}}},
    {"active": {"unhealthy": {"tcp_failures": 3}}},
    {"active": {"unhealthy": {"tcp_failures": 255}}},
    {"active": {"unhealthy": {"timeouts": 9}}}, {"active": {"unhealthy": {"timeouts": 255}}},
    {"active": {"unhealthy": {"http_failures": 2}}},
    {"active": {"unhealthy": {"http_failures": 2}}, "threshold": 0},
    {"active": {"unhealthy": {"http_failures": 2}}, "threshold": 50.50},
    {"active": {"unhealthy": {"http_failures": 2}}, "threshold": 100},
    {"passive": {"healthy": {"http_statuses": [200, 201]}}},
    {"passive": {"healthy": {"successes": 2}}}, {"passive": {"healthy": {"successes": 255}}},
    {"passive": {"unhealthy": {"http_statuses": [400, 500]}}},
    {"passive": {"unhealthy": {"tcp_failures": 8}}},
    {"passive": {"unhealthy": {"tcp_failures": 255}}},
    {"passive": {"unhealthy": {"timeouts": 1}}}, {"passive": {"unhealthy": {"timeouts": 255}}},
    {"passive": {"unhealthy": {"http_failures": 2}}},
    {"passive": {"unhealthy": {"http_failures": 255}}},
    # issue 10: every status hostctl's probe counts as up (200..399) and as down (400..599)
    {"active": {"healthy": {"http_statuses": list(range(200, 400))},
                "unhealthy": {"http_statuses": list(range(400, 600))}}},
]


def _upstream_errors(healthchecks: dict[str, Any]) -> list[str]:
    doc = {"_format_version": "3.0", "upstreams": [{"name": "x", "healthchecks": healthchecks}]}
    return [line.removeprefix("upstream 'x': ") for line in ks.check(doc)
            if "turns active probing off" not in line]


@pytest.mark.parametrize(("healthchecks", "field", "message"), HEALTHCHECKS_REFUSED,
                         ids=[f"{c[1]}={c[0]}"[:70] for c in HEALTHCHECKS_REFUSED])
def test_healthchecks_refused_09_upstreams_spec(healthchecks: dict[str, Any], field: str,
                                                message: str) -> None:
    assert _upstream_errors(healthchecks) == [f"healthchecks.{field}: {message}"]


@pytest.mark.parametrize("healthchecks", HEALTHCHECKS_ACCEPTED)
def test_healthchecks_accepted_09_upstreams_spec(healthchecks: dict[str, Any]) -> None:
    assert _upstream_errors(healthchecks) == []


def test_upstream_algorithms_are_kong_39s() -> None:
    """upstreams.lua at 3.9.1 has no sticky-sessions (it came later)."""
    doc = {"_format_version": "3.0", "upstreams": [{"name": "x",
                                                    "algorithm": "sticky-sessions"}]}
    _, (report,) = ks.validate(doc)
    assert [(e.field, e.message) for e in report.errors] == [
        ("algorithm", "expected one of: consistent-hashing, least-connections, round-robin, "
                      "latency")]


# -- 03-typedefs_spec.lua: port, protocol, timeout, http_method -----------------------------

@pytest.mark.parametrize(("value", "message"), [
    (1024, None), (65535, None), (65535.0, None), ("get", "expected an integer"),
    (65536, "value should be between 0 and 65535"), (65536.1, "expected an integer"),
])
def test_port_03_typedefs_spec(value: Any, message: str | None) -> None:
    errors = list(ks.check_value(ks.SERVICE.fields["port"], value, "port"))
    assert [e.message for e in errors] == ([message] if message else [])


@pytest.mark.parametrize(("value", "ok"), [("http", True), ("https", True), ("ftp", False),
                                           ({}, False)])
def test_protocol_03_typedefs_spec(value: Any, ok: bool) -> None:
    assert (not list(ks.check_value(ks.SERVICE.fields["protocol"], value, "protocol"))) == ok


@pytest.mark.parametrize(("value", "ok"), [("GET", True), ("FOOBAR", True), ("CUSTOM", True),
                                           ("get", False), (123, False),
                                           ("HELLO WORLD", False), (" GET", False)])
def test_http_method_03_typedefs_spec_and_06_routes_spec(value: Any, ok: bool) -> None:
    errors = list(ks.check_value(ks.ROUTE.fields["methods"], [value], "methods"))
    assert (not errors) == ok


# -- spec/03-plugins/13-cors/02-schema_spec.lua, 23-rate-limiting/01-schema_spec.lua -------

@pytest.mark.parametrize(("value", "message"), [
    ("*", None), ("example.com", None), (r".*\.example(?:-foo)?\.com", None),
    (".*.example.com", None), ("invalid_**regex", "'invalid_**regex' is not a valid regex"),
])
def test_cors_origins_13_cors_schema_spec(value: str, message: str | None) -> None:
    assert kt.cors_origin(value) == message


def _plugin_errors(name: str, config: dict[str, Any]) -> list[str]:
    doc = {"_format_version": "3.0", "plugins": [{"name": name, "config": config}]}
    return [line.removeprefix(f"plugin '{name}': ") for line in ks.check(doc)]


@pytest.mark.parametrize(("config", "errors"), [
    ({"second": 10}, []),
    ({"second": 10, "minute": 20, "hour": 30, "day": 40, "month": 50, "year": 60}, []),
    ({"second": 20, "hour": 10}, ["config: The limit for hour(10.0) cannot be lower than the "
                                  "limit for second(20.0)"]),
    ({"second": 10, "minute": 20, "hour": 30, "day": 40, "month": 60, "year": 50},
     ["config: The limit for year(50.0) cannot be lower than the limit for month(60.0)"]),
    ({}, ["at least one of these fields must be non-empty: 'config.second', 'config.minute', "
          "'config.hour', 'config.day', 'config.month', 'config.year'"]),
    ({"minute": 10, "limit_by": "consumer-group"},  # not in 3.9.1's rate-limiting
     ["config.limit_by: expected one of: consumer, credential, ip, service, header, path"]),
])
def test_rate_limiting_23_rate_limiting_schema_spec(config: dict[str, Any],
                                                    errors: list[str]) -> None:
    assert _plugin_errors("rate-limiting", config) == errors


@pytest.mark.parametrize(("config", "errors"), [
    ({"allow": ["a"]}, []),
    ({"allow": ["a"], "deny": ["b"]},
     ["exactly one of these fields must be non-empty: 'config.allow', 'config.deny'"]),
    ({}, ["exactly one of these fields must be non-empty: 'config.allow', 'config.deny'",
          "at least one of these fields must be non-empty: 'config.allow', 'config.deny'"]),
])
def test_acl_only_one_of_then_at_least_one_of(config: dict[str, Any],
                                               errors: list[str]) -> None:
    assert _plugin_errors("acl", config) == errors


@pytest.mark.parametrize(("value", "message"), [
    ("hostctl:route:api", None), ("with space", None), ("a,b", "x"), ("a/b", "x"),
    ("tab\there", "x"),
])
def test_tags_typedefs(value: str, message: str | None) -> None:
    expected = None if message is None else (
        f"invalid tag '{value}': expected printable ascii (except `,` and `/`) or valid "
        "utf-8 sequences")
    assert kt.tag(value) == expected
