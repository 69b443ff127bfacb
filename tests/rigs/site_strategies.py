"""Hypothesis strategies for whole sites on disk: an inventory, spec files and a secrets file,
written as YAML text from the documented keys, mostly valid, with a share of odd values.

The keys come from the same tables the schema has (`hostctl/spec/rules.py`, the gateway,
logging, metrics, k3s and jobs sections); `test_validate_properties.py` checks that every key the
schema knows is one these tables can generate, so a new key cannot go untested.

Values are written as YAML text, not dumped from Python objects, so YAML's own oddities
reach the loader too: unquoted scalars YAML 1.1 reads as something else (`.inf`, `0x1f`,
`12:30`, `2024-02-30`, `yes`), tags, aliases, merge keys and escapes (NUL, control
characters) that only double-quoted scalars can carry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

# -- YAML text ------------------------------------------------------------------------------


class Raw(str):
    """A scalar written into the YAML as is (`.inf`, `!!binary ...`, `*alias`)."""


# PyYAML accepts these characters unescaped in a stream; anything else needs an escape.
_PRINTABLE = re.compile("[\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./@:-]*")
# Words YAML 1.1 reads as booleans or null when unquoted.
_YAML11_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def quote(s: str) -> str:
    """A double-quoted YAML scalar holding exactly `s`."""
    out = []
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif _PRINTABLE.fullmatch(ch) and ch not in "\x85":
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def scalar(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return ".nan"
        if value in (float("inf"), float("-inf")):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    if isinstance(value, str):
        if _PLAIN.fullmatch(value) and value.lower() not in _YAML11_WORDS and \
                not value.endswith(":"):
            return value
        return quote(value)
    raise TypeError(f"not a YAML scalar: {value!r}")


def emit(value: Any, indent: int = 0) -> list[str]:
    """Block-style YAML lines for a mapping or list (one key per line, so lines locate)."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, dict | list) and v:
                lines.append(f"{pad}{scalar(k)}:")
                lines.extend(emit(v, indent + 2))
            else:
                lines.append(f"{pad}{scalar(k)}: {_inline(v)}")
    elif isinstance(value, list):
        for v in value:
            if isinstance(v, dict | list) and v:
                lines.append(f"{pad}-")
                lines.extend(emit(v, indent + 2))
            else:
                lines.append(f"{pad}- {_inline(v)}")
    else:
        lines.append(pad + scalar(value))
    return lines


def _inline(v: Any) -> str:
    if isinstance(v, dict):
        return "{}"
    if isinstance(v, list):
        return "[]"
    return scalar(v)


def dump(value: Any) -> str:
    return "\n".join(emit(value)) + "\n"


# -- odd values -----------------------------------------------------------------------------

# The share of values drawn through `v()` that are odd, in percent: drawn once per site
# (see `sites`), so some sites are all valid and reach render, others are odd throughout.
# Shrinking moves towards 0, towards valid values.
ODD_LEVELS = [0, 1, 1, 2, 5, 12]
_odd_percent = [5]

ODD_NUMBERS: list[Any] = [
    0, -1, 1, 65535, 65536, 2**31, 2**63, 10**30, 1.5, -0.0, 0.0001,
    Raw("1e999"), Raw("-1e999"), Raw(".inf"), Raw("-.inf"), Raw(".nan"), Raw("0x1f"),
    Raw("0o17"), Raw("017"), Raw("1_000"), Raw("+12"), Raw("12:30"), Raw("1e3"),
]
ODD_STRINGS: list[Any] = [
    "", " ", "\x00", "a\x00b", "$HOME", "${X}", "$$", "%n", "%%", "%i", "'", '"', "\\",
    "a\nb", "\t", "\x7f", "\x1b[31m", "\u0085", "\u2028", "\ufeff", "١٢٣", "①", "é", "ﬁ",
    "\U0001f600", "x" * 300, "9abc", "ABC", "_x", "a_b", "-x", "x-", "a:b", "a b", "a;b",
    "a#b", "*", "~", "/a?b", "//x", "/a//b", "/a/../b", "/%zz", "a\\nb", "`id`", "$(id)",
    "{{x}}", "<x>", "a,b", "a=b",
]
ODD_YAML: list[Any] = [
    None, True, False, Raw("yes"), Raw("no"), Raw("on"), Raw("off"), Raw("~"),
    Raw("2024-02-30"), Raw("2024-01-01"), Raw("2001-12-14t21:59:43.10-05:00"), [], {}, [1],
    {"a": 1}, Raw("!!binary aGVsbG8="), Raw("!!str 123"), Raw("!!float 1"), Raw("!!int '12'"),
    Raw("!!set {a, b}"), Raw("!!omap [a: 1]"), Raw("!unknown x"), Raw("!!null ''"),
    Raw('"\\0"'), Raw("'it''s'"), Raw("|\n  two\n  lines"),
]
ODD_ANY: SearchStrategy[Any] = st.sampled_from(ODD_NUMBERS + ODD_STRINGS + ODD_YAML)


def v(valid: SearchStrategy[Any] | Any, *odd: Any) -> SearchStrategy[Any]:
    """Mostly `valid` (a strategy or a constant); sometimes one of `odd` or any odd value."""
    valid_s = valid if isinstance(valid, SearchStrategy) else st.just(valid)
    odd_s = st.one_of(st.sampled_from(list(odd)), ODD_ANY) if odd else ODD_ANY
    return st.integers(0, 99).flatmap(
        lambda n: odd_s if n >= 100 - _odd_percent[0] else valid_s)


def _is_key(value: Any) -> bool:
    """Odd values that can be mapping keys (YAML scalars)."""
    return not isinstance(value, dict | list)


def odd(draw: st.DrawFn, percent: int) -> bool:
    """A rare twist (a dropped required key, an unknown key...), only in sites with odd
    values; false shrinks towards the plain site."""
    return _odd_percent[0] > 0 and draw(st.integers(0, 99)) >= 100 - percent


def small_text(alphabet: str | None = None, max_size: int = 12) -> SearchStrategy[str]:
    if alphabet is None:
        return st.text(max_size=max_size)
    return st.text(alphabet, max_size=max_size)


# -- values per kind of key -----------------------------------------------------------------

ODD_PORT = [0, -1, 65536, 70000, 2**63, Raw("8080.0"), Raw("1e999"), Raw(".nan"), "8080",
            Raw("0x1f90"), Raw("١٢٣"), "٨٠٨٠"]
ODD_DURATION = ["0s", "0", 0, "0.0001s", "1e999s", "99999999999999d", "-1s", ".5s", "1.s",
                "1m-1s", "1 s", "1S", "١s", Raw(".inf"), Raw(".nan"), Raw("1e999"), 2**63,
                "1h1h", "500ms", "1ms", "10000000d"]
ODD_SIZE = ["0", 0, "1", "1e3Mi", "99999999999999Ti", "1.5", "0.5Ki", "1 Gi", "1GiB", "1iB",
            Raw(".inf"), Raw(".nan"), Raw("1e999"), 2**63, "１Gi", "6Mi", "256Mi"]
ODD_NAME = ["App", "1api", "a_b", "a.b", "-a", "a-", "x" * 41, "x" * 64, "a--b", "é", "api ",
            "", "9", "a" * 40, "platform", "hostctl", "default", "kube-system", "con", "_"]
ODD_PATH = ["/a?b", "//", "/a//b", "/%zz", "/a%20b", "/a b", "/é", "/$x", "/~x", "/a/../b",
            "/a/./b", "/", "a", "/a#b", "/a;b", "/\x00", "/a\\b", "~/x", "/" + "a" * 300,
            "/a/", "/{x}", "/*", "/a|b"]
ODD_HOSTNAME = ["EXAMPLE.org", "a..b", "-a.org", "a.org.", "*.a.org", "a.*.org", "*", "a_b.org",
                "x" * 300 + ".org", "a.org:99999", "a.org:0", "1.2.3.4", "[::1]", "é.org"]
ODD_ADDRESS = ["300.1.1.1", "1.2.3", "::1", "[::1]", "fe80::1%eth0", "a..b", "-a", "localhost",
               "0.0.0.0", "255.255.255.255", "a.b-", "10.0.0.1:22", "x" * 300]


def port() -> SearchStrategy[Any]:
    return v(st.integers(1024, 30000), *ODD_PORT)


def duration(lo: int = 1, hi: int = 600, subsecond: bool = True) -> SearchStrategy[Any]:
    words = [w for w in ("1m", "1m30s", "2h") if hi >= 60 * 60 or w != "2h"]
    words = [w for w in words if hi >= 90 or w == "1m"] if hi >= 60 else []
    if subsecond and lo == 0:
        words.append("500ms")
    return v(st.one_of(st.integers(lo, hi).map(lambda n: f"{n}s"),
                       st.integers(lo, hi), *([st.sampled_from(words)] if words else [])),
             *ODD_DURATION)


def size(valid: list[str]) -> SearchStrategy[Any]:
    return v(st.sampled_from(valid), *ODD_SIZE)


def a_name(choices: list[str]) -> SearchStrategy[Any]:
    return v(st.sampled_from(choices), *ODD_NAME)


def image() -> SearchStrategy[Any]:
    return v(st.sampled_from(["registry.example.org/shop/api:2.3.1", "busybox:1.36", "app",
                              "localhost:5000/a/b:1", "kong:3.9.1",
                              "a/b@sha256:" + "0" * 64]),
             "A:1", "a:", "a::1", ":1", "a:" + "x" * 129, "a/B:1", "a b", "a:1\n", "-a:1",
             "a@sha256:123", "a:$x", "a:%n")


# -- the site -------------------------------------------------------------------------------

@dataclass
class SiteFiles:
    """A generated site: file name -> text, the inventory's name, the secret values."""

    files: dict[str, str]
    secret_values: dict[str, str] = field(default_factory=dict)
    inventory: str = "site.yml"

    def show(self) -> str:
        return "\n".join(f"--- {name}\n{text}" for name, text in self.files.items())


@dataclass
class Ctx:
    """What the inventory made up, for the specs to refer to (mostly consistently)."""

    hosts: list[str]
    labels: list[tuple[str, str]]
    profiles: list[str]
    secrets: list[str]
    projects: list[str]
    gateway: bool = False


def record(draw: st.DrawFn, keys: Mapping[str, SearchStrategy[Any]],
           required: tuple[str, ...] = (), odd_keys: bool = True) -> dict[str, Any]:
    """A mapping with the required keys (each dropped now and then) and some optional ones,
    now and then an unknown key or a key spelled another way."""
    out: dict[str, Any] = {}
    for k, strat in keys.items():
        if k in required:
            if not odd(draw, 3):
                out[k] = draw(strat)
        elif draw(st.integers(0, 2)) > 0:  # most keys, so nested ones come up often
            out[k] = draw(strat)
    if odd_keys and odd(draw, 3):
        out[draw(st.sampled_from(["Name", "extra", "名前", "", "a b", "<<"]))] = draw(
            st.sampled_from([1, "x", {}, []]))
    return out


# Each table maps the keys of one schema record to a strategy for its value. The tables are
# functions of Ctx so values may refer to what the inventory named.

def ssh_keys(ctx: Ctx) -> dict[str, SearchStrategy[Any]]:
    return {
        "user": v(st.sampled_from(["root", "deploy", "_svc"]), "Root", "a b", "1x", "$USER"),
        "port": port(),
        "key": v(st.sampled_from(["~/.ssh/id_ed25519", "keys/id", "/etc/key"]), *ODD_STRINGS),
        "host": v(st.sampled_from(["bastion.example.org", "10.0.0.254"]), *ODD_ADDRESS),
        "connect_timeout": duration(1, 30, subsecond=False),
        "known_hosts": v(st.sampled_from(["known_hosts", "~/.config/kh"]), *ODD_STRINGS),
        "persist": duration(0, 3600, subsecond=False),
    }


def host_keys(ctx: Ctx, i: int, labels: list[tuple[str, str]]) -> dict[str, SearchStrategy[Any]]:
    return {
        "address": v(f"10.0.0.{i + 11}", *ODD_ADDRESS),
        "ssh": st.builds(dict, st.just({})).flatmap(
            lambda _: st.composite(lambda d: record(d, ssh_keys(ctx)))()),
        "labels": v(st.just(dict(labels[:1])), {"Role": "app"}, {"role": "a b"},
                    {"role": "x" * 64}, {"role": 1}, {"role": True}, {"a/b/c": "x"},
                    {"-a": "b"}),
        "gpus": v(st.integers(0, 2), 65, -1),
        "gpu_mode": v(st.sampled_from(["nvidia", "env"]), "NVIDIA", "cuda"),
        "docker": v(st.sampled_from(["/usr/bin/docker", "/usr/local/bin/docker"]),
                    "/usr/bin/$docker", "/usr/bin/doc ker", "docker", "/a%b", "/a\nb", "/a;b",
                    "/a'b", '/a"b', "/a\\b", "/", "/a\x00"),
    }


def profile_keys(ctx: Ctx) -> dict[str, SearchStrategy[Any]]:
    return {
        "cpus": v(st.sampled_from([0.5, 1, 2, 8]), 0, -1, 0.0001, 1e-9, 10**6, Raw(".inf"),
                  Raw(".nan"), "1", "2 cpus"),
        "memory": size(["128Mi", "1Gi", "16Gi", "512M"]),
        "gpus": v(st.integers(0, 1), -1, 65),
    }


def secrets_config_keys(ctx: Ctx) -> dict[str, SearchStrategy[Any]]:
    return {
        "env_file": v("secrets.env", "missing.env", "specs", "", "/nonexistent/x.env",
                      "secrets.env\x00"),
        "env_prefix": v("HOSTCTL_SECRET_", "", "1X", "A-B", "$X"),
    }


def gateway_keys(ctx: Ctx) -> dict[str, SearchStrategy[Any]]:
    jwt = st.composite(lambda d: record(d, {
        "secret": v(st.sampled_from(ctx.secrets), "MISSING_SECRET", "1x"),
        "key": v(st.sampled_from(["iss-a", "reports-dashboard"]), "a b", "", "ключ"),
        "algorithm": v(st.sampled_from(["HS256", "HS384", "HS512"]), "RS256", "hs256", "none"),
    }, required=("secret",)))()
    consumer = st.composite(lambda d: record(d, {
        "project": a_name(ctx.projects),
        "key_auth": v(st.lists(st.sampled_from(ctx.secrets), min_size=1, max_size=2),
                      ["MISSING"], [], "1X"),
        "jwt": v(st.lists(jwt, min_size=1, max_size=2), [], {}),
    }, required=("project",)))()
    return {
        "hosts": v(st.lists(st.sampled_from(ctx.hosts), min_size=1, max_size=2),
                   ["nope-1"], [], ["App-1"]),
        "image": image(),
        "image_source": v(st.sampled_from(["pull", "push"]), "Pull", "registry"),
        "proxy": st.composite(lambda d: record(d, {"http": port(), "https": port()}))(),
        "admin_port": port(),
        "status_port": port(),
        "key_names": v(st.lists(st.sampled_from(["apikey", "x-api-key", "token"]), min_size=1,
                                max_size=2),
                       [], ["a b"], ["apikey", "apikey"], [""], ["é"]),
        "managed": v(st.booleans(), "yes", 1),
        "drain": duration(0, 10),
        "consumers": v(st.dictionaries(
            st.sampled_from(["ci", "dash-1", "a.b", "x_y"]) | v("ci", *ODD_NAME).filter(_is_key),
            consumer, min_size=1, max_size=3), {}, [], {"ci": None}),
    }


def logging_keys(ctx: Ctx) -> dict[str, SearchStrategy[Any]]:
    img = v(st.sampled_from(["docker.elastic.co/logstash/logstash:8.15.3",
                             "docker.elastic.co/elasticsearch/elasticsearch:8.15.3"]),
            "latest", "A:1", "a:$x")
    return {
        "host": a_name(ctx.hosts),
        "logstash": st.composite(lambda d: record(d, {
            "port": port(),
            "protocol": v(st.sampled_from(["udp", "tcp"]), "UDP", "http"),
            "address": v(st.sampled_from(["logs.example.org", "10.0.0.5"]), *ODD_ADDRESS),
        }))(),
        "elasticsearch": st.composite(lambda d: record(d, {
            "url": v(st.sampled_from(["http://es.example.org:9200", "https://10.0.0.9"]),
                     "es:9200", "http://", "http://a b", "ftp://x", "http://x:99999",
                     "http://x/$y", "http://x/%zz"),
            "port": port(),
            "heap": size(["512Mi", "1Gi", "256Mi"]),
        }))(),
        "images": st.composite(lambda d: record(d, {"logstash": img, "elasticsearch": img}))(),
        "image_source": v(st.sampled_from(["pull", "push"])),
        "retention_days": v(st.integers(1, 3650), 0, 3651, -1, 1.5),
        "index": v(st.sampled_from(["per-project", "data-stream"]), "daily"),
        "buffer_size": size(["1Mi", "64Ki", "4Mi"]),
    }


def metrics_keys(ctx: Ctx) -> dict[str, SearchStrategy[Any]]:
    price = v(st.sampled_from([0, 0.04, 1.2, 3]), -1, Raw(".inf"), Raw(".nan"), 10**30,
              "1.2", "1,2", Raw("1e999"))
    return {
        "exporter": st.composite(lambda d: record(d, {
            "port": port(),
            "listen": v(st.sampled_from(["0.0.0.0", "127.0.0.1"]), *ODD_ADDRESS),
            "sample_interval": duration(1, 60),
        }))(),
        "prices": st.composite(lambda d: record(d, {
            "currency": v(st.sampled_from(["EUR", "USD"]), "eur", "EURO", "€", ""),
            "cpu_hour": price,
            "gpu_hour": price,
            # the drawn hosts name no GPU models: any model priced is one no host declares
            "gpu_hour_by_model": v(st.just({}), {"l4": 0.8}, {"L4": 1}, {"l4": 0},
                                   {"l4": "x"}, {"a100-80g": 3.2, "l4": -1}),
        }, required=("currency", "cpu_hour")))(),
        "prometheus": st.composite(lambda d: record(d, {
            "scrape_interval": duration(1, 120),
            "scrape_timeout": duration(1, 120),
        }))(),
    }


def k3s_keys(ctx: Ctx) -> dict[str, SearchStrategy[Any]]:
    return {
        "kubeconfig": v(st.sampled_from(["~/.kube/k3s.yaml", "kubeconfig"]), *ODD_STRINGS),
        "context": v(st.sampled_from(["default", "k3s-prod"]), "a b", "", "\x00"),
        "ingress": v(st.sampled_from(["kong", "traefik"]), "nginx", "Kong"),
        "ingress_namespace": v(st.sampled_from(["kong", "kube-system", "ingress"]), *ODD_NAME),
        "storage_class": v(st.sampled_from(["local-path", "fast.ssd"]), "Local", "a..b", "a_b"),
        "volume_size": size(["1Gi", "10Gi", "500Mi"]),
        "namespace_prefix": v(st.sampled_from(["", "acme-", "t"]), "Acme-", "-a", "x" * 21,
                              "a" * 20, "a_"),
        "time_zone": v(st.sampled_from(["Europe/Berlin", "Etc/UTC", "UTC"]), "Mars/Base",
                       "Europe//Berlin", "../etc/passwd", "+01:00", "CET"),
        "node_selector": v(st.booleans(), "yes", 0),
        "gateway_target": v(st.sampled_from(["10.20.0.50:80", "k3s.example.org:8080"]),
                            "10.0.0.1", "10.0.0.1:0", "10.0.0.1:99999", "[::1]:80", "a:b",
                            "a b:80"),
        "rollout_timeout": duration(1, 600),
        # the drawn hosts name no GPU models: any model mapped is one no host names
        "gpu_products": v(st.just({}), {"l4": "NVIDIA-L4"}, {"L4": "x"}, {"l4": "a b"},
                          {"l4": ""}, {"l4": 1}),
    }


def inventory_keys(ctx: Ctx) -> dict[str, SearchStrategy[Any]]:
    """The top of the inventory, without hosts (drawn apart: the specs refer to them)."""
    return {
        "site": v(st.sampled_from(["example", "site-1", "t"]), *ODD_NAME),
        "ssh": st.composite(lambda d: record(d, ssh_keys(ctx)))(),
        "profiles": v(st.just(None), {"cpu small": {"cpus": 1}}, {"x": None},
                      {"p": {"gpus": 1}}),  # drawn apart, see inventory()
        "specs": v(st.just(["specs/*.yml"]), "specs/*.yml", ["specs/a.yml"],
                   ["specs/none.yml"], [], ["specs/**"], ["specs/[a"], ["/dev/null"],
                   ["specs"], ["specs/*.yml", "specs/a.yml"]),
        # env_prefix required: drawn in most of the few sites with a whole secrets: section
        "secrets": st.composite(lambda d: record(d, secrets_config_keys(ctx),
                                                 required=("env_prefix",)))(),
        "image_source": v(st.sampled_from(["pull", "push"]), "Push", "local"),
        "gateway": st.composite(lambda d: record(d, gateway_keys(ctx), required=("hosts",)))(),
        "logging": st.composite(lambda d: record(d, logging_keys(ctx), required=("host",)))(),
        "metrics": st.composite(lambda d: record(d, metrics_keys(ctx)))(),
        "k3s": st.composite(lambda d: record(d, k3s_keys(ctx)))(),
        "jobs": st.composite(lambda d: record(d, {
            "keep_runs": v(st.integers(1, 100_000), 0, 100_001, -1, "500", True, 1.5),
        }))(),
        "projects": st.composite(lambda d: projects_value(d, ctx))(),
    }


def project_quota_keys(ctx: Ctx) -> dict[str, SearchStrategy[Any]]:
    return {
        "gpus": v(st.integers(1, 8), 0, -1, 1.5, "2"),
        "cpus": v(st.sampled_from([0.5, 2, 8, 64]), 0, -2, "lots"),
        "memory": size(["1Gi", "16Gi", "64Gi"]),
        "gpu_hours_per_month": v(st.sampled_from([1, 200, 1e4]), 0, -5, "200h"),
        "priority": v(st.sampled_from(["high", "normal", "low"]), "urgent", "High", 1),
        "owners": v(st.lists(st.sampled_from(["alice", "bob", "ci@lab", "j.doe"]),
                             min_size=1, max_size=3), [], "alice", ["-x"], [1]),
    }


def projects_value(draw: st.DrawFn, ctx: Ctx) -> dict[str, Any]:
    """`projects:`: a ledger host and quotas for some of the specs' projects (now and then
    an unknown host or a project no spec has)."""
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out["ledger_host"] = draw(v(st.sampled_from(ctx.hosts), "nowhere-1", "App_1"))
    for name in draw(st.lists(v(st.sampled_from(ctx.projects), "ghost", "Shop", "ledger_hots"
                                ).filter(_is_key), max_size=2, unique_by=str)):
        out[name] = record(draw, project_quota_keys(ctx))
    return out


# -- workloads ------------------------------------------------------------------------------

def port_value(host_port: int) -> SearchStrategy[Any]:
    long = st.composite(lambda d: record(d, {
        "container": v(st.integers(1, 9000), *ODD_PORT),
        "host": v(host_port, *ODD_PORT),
        "protocol": v(st.sampled_from(["tcp", "udp"]), "TCP", "sctp"),
        "bind": v(st.sampled_from(["127.0.0.1", "0.0.0.0", "[::1]"]), "999.1.1.1", "1.2",
                  "[zz]", "::1", "localhost", "1..1"),
    }, required=("container", "host")))()
    return st.one_of(long, long, v(st.integers(1, 9000), *ODD_PORT))


VOLUME_STRINGS = ["data:/var/lib/x", "/srv/models:/models:ro", "cache:/cache:rw",
                  "artifacts:/artifacts"]
ODD_VOLUMES = ["Data:/x", "data:x", "data:/x:rx", "data", "a:b:c:d", "/srv/$x:/x", "/srv/a b:/x",
               "/srv/%n:/x", "data:/x y", "data:/", "data:/x\n", "data:/x,y", "_d:/x", ".d:/x",
               "data:/artifacts", "/:/x", "data:/x:ro:ro", "d\x00:/x", "data:/a/../b"]


def volume_value() -> SearchStrategy[Any]:
    long = st.composite(lambda d: record(d, {
        "source": v(st.sampled_from(["cache", "/srv/data", "data.v1"]), "C", "/a b", "$x",
                    "a:b", "/a,b"),
        "target": v(st.sampled_from(["/long-cache", "/long-data"]), "cache", "/a b", "/a:b",
                    "/a,b", "/"),
        "read_only": v(st.booleans(), "ro", 1),
    }, required=("source", "target")))()
    return st.one_of(v(st.sampled_from(VOLUME_STRINGS), *ODD_VOLUMES), long)


def _volume_target(vol: Any) -> str:
    if isinstance(vol, dict):
        return str(vol.get("target"))
    parts = str(vol).split(":")
    return parts[1] if len(parts) > 1 else str(vol)


def command_value() -> SearchStrategy[Any]:
    return v(st.one_of(st.sampled_from(["/app/server", "python train.py --epochs 3",
                                        "sh -c 'echo $HOME %n'"]),
                       st.lists(st.sampled_from(["/bin/sh", "-c", "echo $X", "%n", "a b", "\\",
                                                 "'", '"', "", "\n", "$$", "ü"]),
                                min_size=1, max_size=4)),
             "", "'unterminated", [], ["a", None], ["a", 1.5], ["a", {}], "a \\", "\x00")


def env_value() -> SearchStrategy[Any]:
    return v(st.dictionaries(st.sampled_from(["LOG_LEVEL", "WORKERS", "_X", "a1"]),
                             st.one_of(small_text(), st.integers(-5, 10**6),
                                       st.sampled_from(ODD_STRINGS)), max_size=3),
             {"1X": "a"}, {"A-B": "x"}, {"A": True}, {"A": None}, {"A": [1]}, {"A": {}},
             {"": "x"}, {"A": Raw(".nan")}, {"A": Raw("1e999")}, {"A": 2**70},
             {"HOSTCTL_X": "y"}, {"PATH": "/x"}, {"A\x00": "x"})


def health_value(ports: list[str]) -> SearchStrategy[Any]:
    port_ref = v(st.sampled_from(ports or ["http"]), "nope", 8080, "HTTP")
    return st.composite(lambda d: _one_check(d, record(d, {
        "http": st.composite(lambda d2: record(d2, {
            "port": port_ref, "path": v(st.sampled_from(["/health", "/", "/h?x=1"]),
                                        *ODD_PATH)}, required=("port",)))(),
        "tcp": st.composite(lambda d2: record(d2, {"port": port_ref}, required=("port",)))(),
        "command": command_value(),
        "interval": duration(10, 60),
        "timeout": duration(1, 10),
        "retries": v(st.integers(1, 5), 0, 101, -1, 2**63),
        "start_period": duration(0, 120),
    })))()


def _one_check(draw: st.DrawFn, health: dict[str, Any]) -> dict[str, Any]:
    """Exactly one of http, tcp and command, unless the site is odd and keeps several."""
    kinds = [k for k in ("http", "tcp", "command") if k in health]
    if len(kinds) > 1 and not odd(draw, 20):
        for k in kinds[1:]:
            del health[k]
    return health


def route_value(ctx: Ctx, ports: list[str]) -> SearchStrategy[Any]:
    path = v(st.sampled_from(["/api", "/triage", "/a/b", "/"]), *ODD_PATH)
    return st.composite(lambda d: record(d, {
        "path": st.one_of(path, st.lists(path, min_size=1, max_size=3)),
        "hosts": v(st.lists(st.sampled_from(["shop.example.org", "*.example.org",
                                             "a.example.org:8443"]), max_size=2),
                   *ODD_HOSTNAME),
        "methods": v(st.lists(st.sampled_from(["GET", "POST", "OPTIONS", "DELETE"]),
                              max_size=3), ["get"], ["GET", "GET"], [], ["TRACE"]),
        "port": v(st.sampled_from(ports or ["http"]), "nope", 80),
        "strip_path": v(st.booleans(), "no"),
        "auth": v(st.sampled_from(["none", "key-auth", "jwt"]), "basic-auth", "KEY-AUTH",
                  "oauth2"),
        "rate_limit": v(st.composite(lambda d2: record(d2, {
            "second": v(st.integers(1, 100), 0, 2**63, 10**30),
            "minute": v(st.integers(1, 6000), 0, 2**63),
            "hour": v(st.integers(1, 10**5)), "day": v(st.integers(1, 10**6)),
        }))(), {}, None, {"minute": 0}, {"second": 10, "minute": 5}),
        "allow_projects": v(st.lists(st.sampled_from(ctx.projects), max_size=2), ["ghost"],
                            *([x] for x in ODD_NAME[:5])),
        "max_body": size(["10Mi", "1Ki", "1Gi"]),
        "cors": st.composite(lambda d2: record(d2, {
            "origins": v(st.lists(st.sampled_from(["*", "https://shop.example.org",
                                                   r"https://.*\.example\.org",
                                                   "http://a.org:8080"]),
                                  min_size=1, max_size=2),
                         "*", ["https://a.org/"], ["[unclosed"], ["a b"], ["(?<x>)"], [""],
                         ["https://"], ["*", "https://a.org"]),
            "methods": v(st.lists(st.sampled_from(["GET", "POST", "OPTIONS"]), max_size=2),
                         ["get"], ["CONNECT"]),
            "headers": v(st.lists(st.sampled_from(["Authorization", "X-Req", "a_b"]),
                                  max_size=2), ["a b"], ["é"], [""]),
            "exposed_headers": v(st.lists(st.sampled_from(["X-Total"]), max_size=1), ["a:b"]),
            "credentials": v(st.booleans()),
            "max_age": duration(0, 86400),
        }))(),
        "timeouts": st.composite(lambda d2: record(d2, {
            "connect": duration(1, 60), "read": duration(1, 600), "write": duration(1, 600),
        }))(),
    }, required=("path",)))()


SCHEDULES = ["Mon..Fri *-*-* 02:00:00", "daily", "hourly", "*-*-* 00/6:00", "weekly",
             "2030-01-01 00:00:00", "Sat,Sun 10:00", "*:0/15", "minutely",
             "*-*-01 04:00:00 Europe/Berlin"]
ODD_SCHEDULES = ["2024-02-30", "2020-01-01 00:00:00", "1999-12-31", "Mon..Fri", "25:00",
                 "*-*-* 24:00:00", "*-02-30 00:00", "never", "", "@daily", "0 2 * * *",
                 "*-*-* *:*:60", "Mon 10:00 Mars/Base", "Feb 30", "2024-02-29 00:00",
                 "*-*-31 00:00", "*-*-* 00:00:00.5", "quarterly", "Mon\x00", "%a"]


def workload_value(ctx: Ctx, kind: str, name: str, index: int
                   ) -> SearchStrategy[dict[str, Any]]:
    return st.composite(lambda d: _workload(d, ctx, kind, name, index))()


def workload_keys(ctx: Ctx, kind: str, ports: list[str]) -> dict[str, SearchStrategy[Any]]:
    """Every workload key; the caller drops the ones of the other kind (mostly)."""
    return {
        "kind": v(kind, "Service", "cron", "deployment"),
        "name": st.just("set by _workload"),
        "project": a_name(ctx.projects),
        "image": image(),
        "image_source": v(st.sampled_from(["pull", "push"]), "PULL"),
        "command": command_value(),
        "args": v(st.lists(st.one_of(small_text(), st.integers(), st.sampled_from(ODD_STRINGS)),
                           max_size=3), ["a", None], ["a", True], "--x", [Raw("1e999")]),
        "env": env_value(),
        "secrets": v(st.lists(st.sampled_from(ctx.secrets), max_size=2), ["MISSING_ONE"],
                     ["1X"], ["a-b"], ["HOSTCTL_SECRET_X"], "DB_PASSWORD"),
        "ports": st.just("set by _workload"),
        "volumes": st.lists(volume_value(), max_size=3, unique_by=_volume_target),
        "resources": v(st.one_of(st.just("cpu_small"),
                                 st.composite(lambda d: record(d, profile_keys(ctx)))()
                                 .map(lambda r: {**r, "gpus": 0} if "gpus" in r else r)),
                       "nope", 1, [], "cpu small", "gpu_medium"),
        "health": health_value(ports),
        "placement": st.composite(lambda d: record(d, {
            "hosts": v(st.lists(st.sampled_from(ctx.hosts), min_size=1, max_size=2),
                       ["ghost-1"], [], "app-1", ["App-1"]),
            "labels": v(st.sampled_from([{k: val} for k, val in ctx.labels[:1]] or [{}]),
                        {"role": "none"}, {"role": 1}, {"Role": "app"}),
        }))(),
        "instances": v(st.integers(1, 3), 0, 65, -1, 2**63, 1.5, "2"),
        "restart": v(st.sampled_from(["always", "on-failure", "never"]), "no", "Always"),
        "route": route_value(ctx, ports),
        "reach": v(st.lists(st.sampled_from(ctx.projects), max_size=2), ["ghost"], ["Shop"]),
        "stop_timeout": duration(1, 60),
        "timeout": duration(1, 86400),
        "retries": v(st.integers(0, 3), -1, 101, 2**63),
        "schedule": v(st.sampled_from(SCHEDULES), *ODD_SCHEDULES),
        "shards": v(st.integers(1, 4), 0, 10001, 2**63),
        "report": v(st.lists(st.sampled_from(["val_auc", "loss", "a/b:c.d-e", "_x"]),
                             unique=True, max_size=3),
                    "val_auc", ["1x"], ["loss", "loss"], [f"m{i}" for i in range(21)],
                    ["m" * 65], {"val_auc": "max"}),
    }


SERVICE_ONLY = ("ports", "instances", "restart", "route", "health", "reach")
JOB_ONLY = ("timeout", "retries", "schedule", "shards", "report")


def _workload(draw: st.DrawFn, ctx: Ctx, kind: str, name: str, index: int
              ) -> dict[str, Any]:
    port_names = draw(st.lists(st.sampled_from(["http", "admin", "metrics"]), unique=True,
                               min_size=0 if odd(draw, 10) else 1,
                               max_size=2)) if kind == "service" else []
    keys = workload_keys(ctx, kind, port_names)
    other = JOB_ONLY if kind == "service" else SERVICE_ONLY
    if not odd(draw, 3):
        keys = {k: s for k, s in keys.items() if k not in other}
    keys.pop("ports", None)
    spec = record(draw, keys, required=("kind", "name", "project", "image"))
    if "name" in spec:
        spec["name"] = name
    if port_names:
        spec["ports"] = {p: draw(port_value(18000 + 100 * index + 10 * j))
                         for j, p in enumerate(port_names)}
        if odd(draw, 5):
            spec["ports"][draw(st.sampled_from(ODD_NAME))] = 8080
    if "route" in spec and kind == "service" and not ctx.gateway and draw(st.booleans()):
        del spec["route"]
    if isinstance(spec.get("reach"), list) and not odd(draw, 20):
        spec["reach"] = [p for p in spec["reach"] if p != spec.get("project")]
    # Put kind, name, project, image first, as people write them.
    order = ["kind", "name", "project", "image"]
    return {k: spec[k] for k in order if k in spec} | {
        k: val for k, val in spec.items() if k not in order}


# -- secrets --------------------------------------------------------------------------------

SECRET_NAMES = ["DB_PASSWORD", "API_TOKEN", "CI_KEY", "JWT_SECRET"]
# Secret values carry a marker that no other generated text has, so a leak is found
# whatever escaping it went through; the odd tail tests quoting in what gets the value.
SECRET_TAILS = ["", "$HOME", "%n", "'q'", '"q', "\\x", "#c", " sp", "ü", "a=b", "`id`",
                "$(id)", "%%", "\t"]


def secret_value(i: int) -> SearchStrategy[str]:
    return st.tuples(st.integers(100000, 999999), st.sampled_from(SECRET_TAILS)).map(
        lambda t: f"zqsecret{i}v{t[0]}{t[1]}")


def secret_marker(value: str) -> str:
    """The part of a generated secret value that cannot be escaped differently."""
    m = re.match(r"zqsecret\d+v\d+", value)
    assert m, value
    return m.group(0)


# -- the whole site -------------------------------------------------------------------------

@st.composite
def sites(draw: st.DrawFn) -> SiteFiles:
    _odd_percent[0] = draw(st.sampled_from(ODD_LEVELS))
    host_names = draw(st.lists(st.sampled_from(["app-1", "gpu-1", "edge-1"])
                               | a_name(["x-1"]).filter(_is_key),
                               min_size=1, max_size=3, unique_by=str))
    labels = [("role", r) for r in ("app", "gpu", "edge")]
    secret_names = draw(st.lists(st.sampled_from(SECRET_NAMES), min_size=1, max_size=4,
                                 unique=True))
    projects = draw(st.lists(st.sampled_from(["shop", "research", "reports"]), min_size=1,
                             max_size=2, unique=True))
    profiles = {"cpu_small": {"cpus": 1, "memory": "1Gi"},
                "gpu_medium": {"cpus": 8, "memory": "16Gi", "gpus": 1}}
    ctx = Ctx(hosts=[str(h) for h in host_names], labels=labels, profiles=list(profiles),
              secrets=secret_names, projects=[str(p) for p in projects])
    ctx.gateway = draw(st.booleans())

    hosts: dict[Any, Any] = {}
    for i, h in enumerate(host_names):
        hk = host_keys(ctx, i, [labels[i % 3]])
        host = record(draw, hk, required=("address",))
        if "labels" not in host:
            host["labels"] = dict([labels[i % 3]])
        hosts[h] = host
    for name, prof in list(profiles.items()):
        if odd(draw, 15):
            profiles[name] = record(draw, profile_keys(ctx))
        else:
            profiles[name] = prof

    top_keys = inventory_keys(ctx)
    inv: dict[Any, Any] = {}
    inv["site"] = draw(top_keys["site"])
    if draw(st.booleans()):
        inv["ssh"] = draw(top_keys["ssh"])
    inv["hosts"] = hosts
    odd_profiles = draw(top_keys["profiles"])
    inv["profiles"] = profiles if odd_profiles is None else odd_profiles
    inv["specs"] = draw(top_keys["specs"])
    inv["secrets"] = draw(v(st.just({"env_file": "secrets.env"}),
                            {"env_file": "missing.env"}, {}, None))
    # The whole secrets: schema one site in eight, odd or not (env_prefix comes up only here)
    if draw(st.integers(0, 7)) == 0:
        inv["secrets"] = draw(top_keys["secrets"])
    for key in ("image_source", "logging", "metrics", "k3s"):
        if draw(st.booleans()):
            inv[key] = draw(top_keys[key])
    if ctx.gateway:
        inv["gateway"] = draw(top_keys["gateway"])
    if odd(draw, 2):
        inv["Site"] = "x"  # an unknown top-level key

    # Specs: one to four workloads, in one or two files, several documents to a file.
    n = draw(st.integers(1, 4))
    names = draw(st.lists(a_name(["api", "worker", "train", "web", "nightly"]), min_size=n,
                          max_size=n, unique_by=str))
    docs: dict[str, list[str]] = {}
    for i, name in enumerate(names):
        kind = draw(st.sampled_from(["service", "service", "job"]))
        spec = draw(workload_value(ctx, kind, name, i))
        text = dump(spec)
        if odd(draw, 4):
            text = draw(st.sampled_from(YAML_TWISTS))(text)
        docs.setdefault(f"specs/{'a' if i % 2 == 0 or n < 3 else 'b'}.yml", []).append(text)

    secret_values = {name: draw(secret_value(i)) for i, name in enumerate(secret_names)}
    # Now and then a secret the specs need is missing from the file.
    if odd(draw, 5):
        secret_values.pop(secret_names[0])
    env_lines = [f"{k}={val}" for k, val in secret_values.items()]
    if odd(draw, 3):
        env_lines.append(draw(st.sampled_from(["NOEQUALS", "1X=y", "A='open", "export B=1",
                                               "# comment", "", "A B=c"])))

    # Drawn last, so the sections above keep the draws they had before it existed.
    if draw(st.booleans()):
        inv["jobs"] = draw(top_keys["jobs"])
    if draw(st.booleans()):
        inv["projects"] = draw(top_keys["projects"])
    files = {"site.yml": dump(inv), "secrets.env": "\n".join(env_lines) + "\n"}
    for path, texts in docs.items():
        files[path] = "---\n".join(texts)
    return SiteFiles(files, secret_values)


# YAML-level twists applied to a spec's text now and then: each must end in a located
# problem or a site that works, never in a crash or a hang.
YAML_TWISTS: list[Callable[[str], str]] = [
    lambda t: t + "env: &r {A: *r}\n" if "\nenv:" not in t else t,  # an alias into itself
    lambda t: t + "x: &a [1, 2]\ny: *a\n",
    lambda t: t.replace("kind:", "<<: {kind: service}\nkind:", 1),
    lambda t: t + "labels: !!python/object/apply:os.system ['true']\n",
    lambda t: t + "\t\n",
    lambda t: t + "key: [unclosed\n",
    lambda t: "%YAML 1.1\n---\n" + t,
    lambda t: t + "? [complex, key]\n: 1\n",
    lambda t: t.replace("\n", "\r\n"),
    lambda t: "\ufeff" + t,
    lambda t: t + "...\n",
    lambda t: t + "---\n",
    lambda t: t + "---\n- a list\n",
    lambda t: t + "env: {A: &x 1, B: *x}\n" if "\nenv:" not in t else t,
]
