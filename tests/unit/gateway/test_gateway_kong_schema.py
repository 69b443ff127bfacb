"""hostctl's schema of Kong: each rule as input -> Kong's exact wording, and the lints."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hostctl.gateway import kong_schema as ks

BASE: dict[str, Any] = {
    "_format_version": "3.0",
    "services": [{
        "name": "api", "host": "hostctl-api", "protocol": "http", "tags": ["hostctl:service:api"],
        "routes": [{"name": "api", "paths": ["/api"], "plugins": [
            {"name": "key-auth", "config": {"key_names": ["apikey"]}},
            {"name": "acl", "config": {"allow": ["shop"]}},
            {"name": "rate-limiting", "config": {"minute": 10, "policy": "local"}},
        ]}],
    }],
    "upstreams": [{
        "name": "hostctl-api",
        "healthchecks": {"active": {"type": "http", "http_path": "/health",
                                    "healthy": {"interval": 2, "successes": 1},
                                    "unhealthy": {"interval": 2, "http_failures": 3}}},
        "targets": [{"target": "10.0.0.1:18080", "weight": 100}],
    }],
    "consumers": [{"username": "ci", "keyauth_credentials": [{"key": "k1"}],
                   "acls": [{"group": "shop"}]}],
}


def test_the_base_document_is_valid() -> None:
    assert ks.check(BASE) == []


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    node: Any = out
    keys = [int(k) if k.isdigit() else k for k in path.split("/")]
    for k in keys[:-1]:
        node = node[k]
    if value is DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return out


DELETE = object()
RT = "services/0/routes/0"
UP = "upstreams/0"

CASES = [
    ("_format_version", "2.0", "_format_version: expected one of: 1.1, 2.1, 3.0"),
    ("_format_version", DELETE, "_format_version: required field missing"),
    ("certificates", [], "certificates: unknown field"),
    ("services/0/hots", "x", "service 'api': hots: unknown field"),
    ("services/0/host", DELETE, "service 'api': host: required field missing"),
    ("services/0/host", "a b", "service 'api': host: invalid value: a b"),
    ("services/0/host", "api:80", "service 'api': host: must not have a port"),
    ("services/0/name", "a b", "service 'a b': name: invalid value 'a b': the only accepted "
                               "ascii characters are alphanumerics or ., -, _, and ~"),
    ("services/0/name", "", "service: name: length must be at least 1"),
    ("services/0/protocol", "ftp", "service 'api': protocol: expected one of: grpc, grpcs, "
                                   "http, https, tcp, tls, tls_passthrough, udp, ws, wss"),
    ("services/0/read_timeout", 0, "service 'api': read_timeout: value should be between 1 "
                                   "and 2147483646"),
    ("services/0/retries", "5", "service 'api': retries: expected an integer"),
    ("services/0/tags/0", "a/b", "service 'api': tags.1: invalid tag 'a/b': expected "
                                 "printable ascii (except `,` and `/`) or valid utf-8 "
                                 "sequences"),
    (f"{RT}/paths/0", "api", "route 'api': paths.1: should start with: / (fixed path) or ~/ "
                             "(regex path)"),
    (f"{RT}/paths/0", "/a//b", "route 'api': paths.1: must not have empty segments"),
    (f"{RT}/paths/0", "/a/./b", "route 'api': paths.1: non-normalized path, consider use "
                                "'/a/b' instead"),
    (f"{RT}/paths", DELETE, "route 'api': must set one of 'methods', 'hosts', 'headers', "
                            "'paths', 'snis' when 'protocols' is 'https'"),
    (f"{RT}/hosts", ["*.a.*"], "route 'api': hosts.1: invalid wildcard: must have at most one "
                               "wildcard"),
    (f"{RT}/hosts", ["a.*.b"], "route 'api': hosts.1: invalid wildcard: must be placed at "
                               "leftmost or rightmost label"),
    (f"{RT}/strip_path", "yes", "route 'api': strip_path: expected a boolean"),
    (f"{RT}/plugins/0/name", "key-auth-x", "plugin 'key-auth-x': name: plugin 'key-auth-x' "
                                           "not enabled; add it to the 'plugins' configuration "
                                           "property"),
    (f"{RT}/plugins/0/config/key_names", ["a b"], "plugin 'key-auth': config.key_names.1: bad "
                                                  "header name 'a b', allowed characters are "
                                                  "A-Z, a-z, 0-9, '_', and '-'"),
    (f"{RT}/plugins/1/config/deny", ["x"], "plugin 'acl': exactly one of these fields must be "
                                           "non-empty: 'config.allow', 'config.deny'"),
    (f"{RT}/plugins/2/config/policy", "cluster", "plugin 'rate-limiting': config.policy: "
                                                 "expected one of: local, redis"),
    (f"{RT}/plugins/2/config/minute", 0, "plugin 'rate-limiting': config.minute: value must "
                                         "be greater than 0"),
    (f"{RT}/plugins/2/config/second", 60, "plugin 'rate-limiting': config: The limit for "
                                          "minute(10.0) cannot be lower than the limit for "
                                          "second(60.0)"),
    (f"{RT}/plugins/2/config", {"policy": "local"},
     "plugin 'rate-limiting': at least one of these fields must be non-empty: "
     "'config.second', 'config.minute', 'config.hour', 'config.day', 'config.month', "
     "'config.year'"),
    (f"{UP}/name", "10.0.0.1", "upstream '10.0.0.1': name: Invalid name ('10.0.0.1'); "
                               "no ip addresses allowed"),
    (f"{UP}/name", "up:80", "upstream 'up:80': name: Invalid name ('up:80'); no port "
                           "allowed"),
    (f"{UP}/healthchecks/active/healthy/interval", -1,
     "upstream 'hostctl-api': healthchecks.active.healthy.interval: value should be between "
     "0 and 65535"),
    (f"{UP}/healthchecks/active/type", "icmp",
     "upstream 'hostctl-api': healthchecks.active.type: expected one of: tcp, http, https, "
     "grpc, grpcs"),
    (f"{UP}/healthchecks/active/concurrency", 0,
     "upstream 'hostctl-api': healthchecks.active.concurrency: value should be between 1 and "
     "2147483648"),
    (f"{UP}/targets/0/target", "host name:80", "target: target: Invalid target ('host "
                                               "name:80'); not a valid hostname or ip address"),
    (f"{UP}/targets/0/weight", 70000, "target: weight: value should be between 0 and 65535"),
    ("consumers/0/username", DELETE, "consumer: at least one of these fields must be "
                                     "non-empty: 'custom_id', 'username'"),
    ("consumers/0/acls/0/group", DELETE, "acl: group: required field missing"),
    ("consumers/0/keyauth_credentials/0/colour", "red", "keyauth_credential: colour: unknown "
                                                        "field"),
]


@pytest.mark.parametrize(("path", "value", "message"), CASES,
                         ids=[f"{c[0]}={c[1]!r}"[:60] for c in CASES])
def test_each_rule_answers_in_kongs_words(path: str, value: Any, message: str) -> None:
    assert ks.check(_set(BASE, path, value)) == [message]


def test_uniqueness_spans_the_whole_file() -> None:
    doc = copy.deepcopy(BASE)
    doc["consumers"].append({"username": "other", "keyauth_credentials": [{"key": "k1"}]})
    doc["upstreams"][0]["targets"].append({"target": "10.0.0.1:18080"})
    doc["services"].append(copy.deepcopy(doc["services"][0]))
    doc["services"][0]["routes"][0]["plugins"].append({"name": "acl", "config": {
        "deny": ["x"]}})
    assert ks.check(doc) == [
        "plugin 'acl': uniqueness violation: 'plugins' entity with name set to 'acl' already "
        "declared",
        "service 'api': uniqueness violation: 'services' entity with name set to 'api' "
        "already declared",
        "route 'api': uniqueness violation: 'routes' entity with name set to 'api' already "
        "declared",
        "target: uniqueness violation: 'targets' entity with target set to '10.0.0.1:18080' "
        "already declared",
        "keyauth_credential: uniqueness violation: 'keyauth_credentials' entity with key set "
        "to 'k1' already declared",
    ]


def test_the_same_plugin_on_two_routes_is_fine() -> None:
    doc = copy.deepcopy(BASE)
    other = copy.deepcopy(doc["services"][0])
    other["name"] = other["routes"][0]["name"] = "web"
    doc["services"].append(other)
    assert ks.check(doc) == []


def test_flattened_errors_have_kongs_shape() -> None:
    _, entities = ks.validate(_set(BASE, f"{RT}/plugins/2/config/minute", -5))
    assert [e.as_flattened() for e in entities] == [{
        "entity_type": "plugin", "entity_name": "rate-limiting",
        "entity": {"name": "rate-limiting", "config": {"minute": -5, "policy": "local"}},
        "errors": [{"field": "config.minute", "message": "value must be greater than 0",
                    "type": "field"}],
    }]


def test_lint_flags_intervals_left_at_zero() -> None:
    doc = _set(BASE, f"{UP}/healthchecks/active/unhealthy/interval", 0)
    assert ks.check(doc) == ["upstream 'hostctl-api': healthchecks.active.unhealthy.interval "
                             "is 0, which turns active probing off"]


@pytest.mark.parametrize(("path", "normal"), [
    ("/a/./b", "/a/b"), ("/a/../b", "/b"), ("/a/b/..", "/a/"), ("/..", "/"),
    ("/%7e%41", "/~A"), ("/%2f", "/%2F"), ("/a//b", "/a/b"), ("/a/b/", "/a/b/"),
])
def test_paths_are_normalized_as_kong_does(path: str, normal: str) -> None:
    assert ks.normalize_path(path) == normal


def test_iter_entities_sees_nested_and_flat_entities() -> None:
    kinds = [(e.name, parent[0] if parent else None) for e, _, parent in
             ks.iter_entities(BASE)]
    assert kinds == [
        ("services", None), ("routes", "services"), ("plugins", "routes"),
        ("plugins", "routes"), ("plugins", "routes"), ("upstreams", None),
        ("targets", "upstreams"), ("consumers", None), ("keyauth_credentials", "consumers"),
        ("acls", "consumers")]
