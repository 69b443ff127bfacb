"""One rule, tested on generated sites (issue 10): whatever render, deploy, Kong, Docker,
systemd, Logstash or Kubernetes would refuse for a site, `hostctl validate` refuses first,
with file, line and field.

Sites are written to disk from the documented keys (tests/rigs/site_strategies.py), mostly valid
with a share of odd values, and driven through the command line in-process:

- `validate` exits 0 or 2, never anything else (no traceback, no internal error);
- exit 0: `render` and `k8s render` succeed; the Kong file render writes passes Kong's rules
  (hostctl.gateway.kong_schema), with the values and without; the manifests pass
  Kubernetes' strict schemas (kubernetes-validate, newest version); every unit's Exec lines
  parse as systemd parses them (tests/rigs/systemd_exec_parser.py) and its time spans and the
  `docker run`/`docker stop` options hostctl writes are ones systemd and Docker take;
- exit 2: every problem names its file, a line (> 0) and a path, and prints as one line;
- no output and no rendered file holds a secret value from the secrets file.

The default number of generated sites keeps CI fast; HOSTCTL_PROPERTY_EXAMPLES=3000 runs
more. With CI=true the run is derandomized (the same sites every run), so a CI failure
reproduces; locally each run tries new ones.

Below the property, a table of known-bad inputs goes through the same assertions, so
regressions show without luck.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings

from hostctl.cli.root import main
from hostctl.gateway import kong_schema as ks
from tests.rigs import site_strategies as gen

EXAMPLES = int(os.environ.get("HOSTCTL_PROPERTY_EXAMPLES", "200"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

PROPERTY_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,  # one example runs validate twice, render and k8s render: tens of ms
    derandomize=IN_CI,
    database=None if IN_CI else settings.default.database,
    print_blob=True,
    # Generating a site takes 20-60 ms (dozens of keys, each valid or odd): the ten or so
    # the health check draws take a third of its one-second budget on an idle machine, and
    # a loaded CI runner goes over it. Running the commands costs more than that anyway.
    suppress_health_check=[HealthCheck.too_slow],
)

# Problems that concern a file as a whole, before any key of it exists: they may leave
# the path empty (and, for a file that cannot be read or holds nothing, the line too).
WHOLE_FILE = re.compile(
    r"(invalid YAML: .*"
    r"|an inventory is one YAML mapping .*"
    r"|a workload spec is a YAML mapping .*"
    r"|mapping keys must be plain scalars)")
NO_LINE = re.compile(r"no workload in this file; .*")
# The secrets file is NAME=VALUE lines, not YAML: a bad line has a number but may have no
# name to show (the line is never shown: it may hold a secret).
SECRETS_FILE = "secrets.env"
# Characters that a terminal acts on or that break a line (C0 and C1 controls, NEL, LS, PS):
# a value quoted into a message must show them escaped.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass
class Outcome:
    validate: Result
    problems: list[dict[str, Any]]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("sites")
    old = {k: os.environ.get(k) for k in ("HOME", "NO_COLOR", "COLUMNS", "KUBECONFIG")}
    os.environ.update(HOME=str(base / "home"), NO_COLOR="1", COLUMNS="100")
    os.environ.pop("KUBECONFIG", None)
    try:
        yield base
    finally:
        for k, val in old.items():
            if val is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = val


@contextmanager
def site_on_disk(base: Path, site: gen.SiteFiles) -> Iterator[Path]:
    """The site's files in a fresh folder that is also the working directory (so messages
    name files as `site.yml`, `specs/a.yml`)."""
    root = Path(tempfile.mkdtemp(dir=base))
    cwd = os.getcwd()
    try:
        for name, text in site.files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8", newline="")
        os.chdir(root)
        yield root
    finally:
        os.chdir(cwd)
        shutil.rmtree(root, ignore_errors=True)


def run(*args: str) -> Result:
    # --debug: an internal error raises into the runner, so the failure shows its trace
    # instead of a crash file in /tmp.
    return CliRunner().invoke(main, ["--debug", *args])


def crashed(result: Result) -> str | None:
    """The traceback's last lines when a command raised instead of exiting."""
    if result.exception is None or isinstance(result.exception, SystemExit):
        return None
    import traceback
    return "".join(traceback.format_exception(result.exception)[-6:])


def check_site(base: Path, site: gen.SiteFiles) -> None:
    """The rule, for one site: see the module's docstring."""
    markers = [gen.secret_marker(val) for val in site.secret_values.values()]
    with site_on_disk(base, site) as root:
        outputs: list[tuple[str, str]] = []

        def command(*args: str) -> Result:
            result = run(*args)
            trace = crashed(result)
            assert trace is None, f"`hostctl {' '.join(args)}` raised:\n{trace}"
            outputs.append((" ".join(args), result.stdout + result.stderr))
            return result

        text = command("validate", "-i", site.inventory)
        assert text.exit_code in (0, 2), (
            f"validate exited {text.exit_code}, expected 0 or 2:\n{text.output}")
        as_json = command("validate", "-i", site.inventory, "--json")
        assert as_json.exit_code == text.exit_code, as_json.output
        if text.exit_code == 2:
            check_problems(text, json.loads(as_json.stdout)["problems"], site)
        else:
            check_renders(root, site, command)
        for args, out in outputs:
            for marker in markers:
                assert marker not in out, f"`hostctl {args}` printed a secret value"
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.name != SECRETS_FILE:
                body = path.read_text(errors="replace")
                for marker in markers:
                    assert marker not in body, f"{path.relative_to(root)} holds a secret value"


def check_problems(text: Result, problems: list[dict[str, Any]], site: gen.SiteFiles) -> None:
    assert problems, "exit 2 without a problem"
    lines = text.stderr.rstrip("\n").split("\n")
    n = len(problems)
    assert lines[-1] == f"{n} problem{'s' if n != 1 else ''} found; nothing was changed.", (
        text.stderr)
    # One line per problem: a value quoted into a message must not break the line.
    assert len(lines) == n + 1, f"{n} problems printed on {len(lines) - 1} lines:\n" + (
        text.stderr)
    for line, p in zip(lines, problems, strict=False):
        assert line.startswith("error: "), line
        assert not CONTROL.search(line), f"control character in {line!r}"
        where = f"{p['file']}:{p['line']}"
        assert p["file"] in site.files or p["file"].startswith("specs/"), (
            f"names a file the site does not have: {line}")
        if p["file"] == SECRETS_FILE and p["line"] > 0:
            continue
        if NO_LINE.fullmatch(p["message"]):
            continue
        assert p["line"] > 0, f"no line: {line}"
        if WHOLE_FILE.fullmatch(p["message"]):
            continue
        assert p["path"], f"no path: {line}"
        expected = f"error: {where}: {p['path']}: {p['message']}"
        assert line == expected, (
            f"printed {line!r} for {expected!r} (an escape sequence in a quoted value?)")


def check_renders(root: Path, site: gen.SiteFiles, command: Any) -> None:
    rendered = command("render", "-i", site.inventory, "-o", "out")
    assert rendered.exit_code == 0, (
        f"validate passed, render exited {rendered.exit_code}:\n{rendered.output}")
    manifests = command("k8s", "render", "-i", site.inventory, "-o", "k8s-out")
    assert manifests.exit_code == 0, (
        f"validate passed, k8s render exited {manifests.exit_code}:\n{manifests.output}")
    from tests.rigs.k8s_validation import newest_versions, strict_problems

    docs = [doc for path in sorted((root / "k8s-out").rglob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc]
    refused = strict_problems(docs, newest_versions(1))
    assert refused == [], "Kubernetes would refuse:\n" + "\n".join(refused)
    problems = [p for unit in sorted((root / "out").glob("*/etc/systemd/system/*.service"))
                for p in unit_problems(unit.relative_to(root / "out"), unit.read_text())]
    assert problems == [], "systemd or Docker would refuse:\n" + "\n".join(problems)
    for kong_file in sorted((root / "out").glob("*/etc/hostctl/gateway/kong.yml")):
        config = yaml.safe_load(kong_file.read_text())
        assert ks.check(config) == [], f"Kong would refuse {kong_file.relative_to(root)}"
    revealed_kong(site)


# -- what systemd and Docker refuse in a rendered unit (a light model of their parsers) ------

# systemd's parse_time(): a number and a unit; more than USEC_INFINITY microseconds is ERANGE.
SYSTEMD_SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*(us|ms|s|sec|min|m|h|d|w)?")
SYSTEMD_UNITS = {None: 1, "us": 1e-6, "ms": 1e-3, "s": 1, "sec": 1, "min": 60, "m": 60,
                 "h": 3600, "d": 86400, "w": 604800}
TIME_KEYS = ("TimeoutStartSec", "TimeoutStopSec", "RuntimeMaxSec", "RestartSec",
             "StartLimitIntervalSec")
# Go's time.ParseDuration (Docker's --health-*): no exponent, at most 2^63-1 ns; Docker
# refuses a health interval, timeout or start period under 1ms (other than 0).
GO_DURATION = re.compile(r"((?:\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+")
GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
INT64 = 2**63 - 1


def _go_seconds(text: str) -> float | None:
    if not GO_DURATION.fullmatch(text):
        return None
    return sum(float(n) * GO_UNITS[u] for n, u in re.findall(
        r"((?:\d+(?:\.\d*)?|\.\d+))(ns|us|µs|ms|s|m|h)", text))


def docker_problems(argv: list[str]) -> list[str]:
    """What `docker run` / `docker stop` would refuse among the options hostctl writes."""
    out: list[str] = []
    words = iter(argv[2:])
    for word in words:
        if word.startswith("--time="):
            n = word.split("=", 1)[1]
            if not re.fullmatch(r"-?\d+", n) or abs(int(n)) > INT64:
                out.append(f"docker stop {word}: not a whole number Docker can take")
            continue
        if not word.startswith("--") or word in ("--rm",) or "=" in word:
            if not word.startswith("--"):
                break  # the image: what follows is the container's command
            continue
        value = next(words, "")
        if word == "--cpus" and not re.fullmatch(r"\d+(\.\d+)?", value):
            out.append(f"--cpus {value}: Docker takes a decimal number")
        elif word == "--memory" and not (re.fullmatch(r"(\d+)b", value)
                                         and int(value[:-1]) <= INT64):
            out.append(f"--memory {value}: not a byte count Docker can take")
        elif word in ("--health-interval", "--health-timeout", "--health-start-period"):
            secs = _go_seconds(value)
            if secs is None or secs * 1e9 > INT64:
                out.append(f"{word} {value}: not a Go duration")
            elif 0 < secs < 0.001:
                out.append(f"{word} {value}: Docker refuses less than 1ms")
        elif word == "--health-retries" and not re.fullmatch(r"\d+", value):
            out.append(f"{word} {value}: not a whole number")
        elif word == "--publish":
            m = re.fullmatch(r"(?:([0-9.]+|\[[0-9a-fA-F:]+\]):)?(\d+):(\d+)(?:/(tcp|udp))?",
                             value)
            if not m or not all(1 <= int(p) <= 65535 for p in m.group(2, 3)):
                out.append(f"--publish {value}: not a port mapping Docker takes")
    return out


def unit_problems(name: Path, text: str) -> list[str]:
    from tests.rigs.systemd_exec_parser import ExecParseError, parse_exec_line

    out: list[str] = []
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep or line.startswith("#"):
            continue
        if key in TIME_KEYS:
            m = SYSTEMD_SPAN.fullmatch(value.strip())
            if value.strip() != "infinity" and (
                    not m or float(m.group(1)) * SYSTEMD_UNITS[m.group(2)] * 1e6 >= 2**64 - 1):
                out.append(f"{name}: {key}={value}: not a time span systemd parses")
        if key.startswith("Exec"):
            try:
                argv = parse_exec_line(value.lstrip("-@:+!"))
            except ExecParseError as exc:
                out.append(f"{name}: {key}: {exc}")
                continue
            if len(argv) > 1 and argv[1] in ("run", "stop"):
                out += [f"{name}: {key}: {p}" for p in docker_problems(argv)]
    return out


def revealed_kong(site: gen.SiteFiles) -> None:
    """The file Kong gets holds the values (keys, JWT secrets): Kong's rules again."""
    from hostctl.errors import ConfigError
    from hostctl.gateway.declarative import render_declarative
    from hostctl.validate import load_site

    try:
        rendered = render_declarative(load_site(site.inventory))
    except ConfigError as exc:
        raise AssertionError("validate and render passed, the gateway file with its values "
                             f"is refused:\n{exc}") from None
    if rendered is None:
        return
    problems = ks.check(yaml.safe_load(rendered.text))
    for val in site.secret_values.values():
        problems = [p.replace(val, "<secret>") for p in problems]
    assert problems == [], "Kong would refuse the gateway file with its values:\n" + (
        "\n".join(problems))


@PROPERTY_SETTINGS
@given(site=gen.sites())
def test_validate_refuses_with_locations_or_everything_renders(workdir: Path,
                                                               site: gen.SiteFiles) -> None:
    check_site(workdir, site)


# -- the generator covers every key the schema knows ----------------------------------------

def _schema_walk(check: Any, data: Any, prefix: str, out: set[str]) -> None:
    """Add to `out` the key paths of `check` (every one, or with `data` the ones present
    in it); map entries and list items are `*`."""
    from hostctl.spec import rules as s
    from hostctl.spec import schema as sc
    from hostctl.spec.sections.gateway import _ConsumerCheck

    every = data is _EVERY
    if isinstance(check, sc.Field):
        check = check.check
    if isinstance(check, sc.Section):
        check = check.build()
    if isinstance(check, s.PortSpec | s.VolumeSpec):
        check = check._long
    if isinstance(check, _ConsumerCheck):
        check = sc.Record(dict, {"project": check.project, "key_auth": sc.ListOf(check.secret),
                                 "jwt": sc.ListOf(check.jwt)})
    if isinstance(check, sc.ByShape):
        for form in check.forms.values():
            _schema_walk(form, data, prefix, out)
    elif isinstance(check, sc.Record):
        if not every and not isinstance(data, dict):
            return
        for key, name in check.keys.items():
            if every or key in data:
                out.add(f"{prefix}{key}")
                _schema_walk(check.fields[name], _EVERY if every else data[key],
                             f"{prefix}{key}/", out)
    elif isinstance(check, sc.ListOf):
        items = [_EVERY] if every else data if isinstance(data, list) else [data]
        for item in items:
            _schema_walk(check.item, item, f"{prefix}*/", out)
    elif isinstance(check, sc.MapOf):
        values = [_EVERY] if every else list(data.values()) if isinstance(data, dict) else []
        for value in values:
            _schema_walk(check.value, value, f"{prefix}*/", out)


_EVERY = object()


def _inventory_paths(data: Any) -> set[str]:
    from hostctl.spec import rules as s
    from hostctl.spec import schema as sc
    from hostctl.spec.inventory import INVENTORY_KEYS

    out: set[str] = set()
    _schema_walk(sc.Record(dict, INVENTORY_KEYS), data, "", out)
    hosts = [_EVERY] if data is _EVERY else list((data.get("hosts") or {}).values()) if (
        isinstance(data, dict) and isinstance(data.get("hosts"), dict)) else []
    for host in hosts:
        _schema_walk(s.host_record("h"), host, "hosts/*/", out)
    return out


def _workload_paths(data: Any) -> set[str]:
    from hostctl.spec import rules as s

    out: set[str] = set()
    _schema_walk(s.workload, data, "", out)
    return out


def test_the_generator_writes_every_key_the_schema_knows() -> None:
    """A key added to the schema (and documented) must be added to site_strategies too."""
    from hypothesis import Phase

    seen: set[str] = set()

    @settings(max_examples=100, derandomize=True, database=None, phases=[Phase.generate],
              deadline=None, suppress_health_check=list(HealthCheck))
    @given(site=gen.sites())
    def collect(site: gen.SiteFiles) -> None:
        for name, text in site.files.items():
            if not name.endswith(".yml"):
                continue
            try:
                docs = list(yaml.safe_load_all(text))
            except (yaml.YAMLError, ValueError, RecursionError):
                continue
            for doc in docs:
                seen.update(_inventory_paths(doc) if name == "site.yml" else
                            _workload_paths(doc))

    collect()
    known = _inventory_paths(_EVERY) | _workload_paths(_EVERY)
    assert len(known) > 150  # the walk found the schema
    assert sorted(known - seen) == []


# -- known-bad inputs, through the same assertions ------------------------------------------

BASE_INVENTORY = """\
site: t
hosts:
  app-1:
    address: 10.0.0.1
    labels: {role: app}
  edge-1:
    address: 10.0.0.2
    labels: {role: edge}
profiles:
  cpu_small: {cpus: 1, memory: 1Gi}
specs: [specs/*.yml]
secrets: {env_file: secrets.env}
gateway:
  hosts: [edge-1]
  consumers:
    ci:
      project: shop
      key_auth: [CI_KEY]
"""
BASE_SPECS = """\
kind: service
name: api
project: shop
image: registry.example.org/shop/api:1.0
secrets: [DB_PASSWORD]
ports:
  http: {container: 8080, host: 18080}
volumes: [data:/var/lib/api]
health:
  http: {path: /health, port: http}
  interval: 10s
placement: {hosts: [app-1]}
stop_timeout: 10s
route:
  path: /api
  auth: key-auth
  rate_limit: {minute: 600}
---
kind: job
name: train
project: shop
image: registry.example.org/shop/train:1
placement: {hosts: [app-1]}
timeout: 1h
schedule: "*-*-* 02:00:00"
"""
BASE_SECRETS = {"CI_KEY": "zqsecret0v111111", "DB_PASSWORD": "zqsecret1v222222",
                "OTHER_KEY": "zqsecret2v333333"}


def base_site(**replacements: tuple[str, str]) -> gen.SiteFiles:
    """The base site with `file=(old, new)` text replacements (file: inventory, specs,
    secrets); each `old` must occur."""
    files = {"site.yml": BASE_INVENTORY, "specs/a.yml": BASE_SPECS,
             "secrets.env": "".join(f"{k}={v}\n" for k, v in BASE_SECRETS.items())}
    names = {"inventory": "site.yml", "specs": "specs/a.yml", "secrets": "secrets.env"}
    for which, (old, new) in replacements.items():
        name = names[which]
        assert old in files[name], (which, old)
        files[name] = files[name].replace(old, new, 1)
    return gen.SiteFiles(files, dict(BASE_SECRETS))


# Each case is one defect class found by the property (or listed in issue 10); the id says
# what the rule catches. The base site itself must pass.
KNOWN_BAD: dict[str, gen.SiteFiles] = {
    "base site": base_site(),
    # values YAML reads as numbers beyond what anything downstream takes
    "huge instances": base_site(specs=("stop_timeout: 10s", "stop_timeout: 10s\ninstances: "
                                       "18446744073709551617")),
    "huge rate limit": base_site(specs=("{minute: 600}", "{minute: 18446744073709551617}")),
    "infinite stop_timeout": base_site(specs=("stop_timeout: 10s", "stop_timeout: .inf")),
    "nan cpus": base_site(specs=("stop_timeout: 10s",
                                 "stop_timeout: 10s\nresources: {cpus: .nan}")),
    "infinite memory": base_site(inventory=("memory: 1Gi", "memory: .inf")),
    "huge duration": base_site(specs=("stop_timeout: 10s", "stop_timeout: 99999999999999d")),
    "workload stop_timeout 0s": base_site(specs=("stop_timeout: 10s", "stop_timeout: 0s")),
    "job timeout 0s": base_site(specs=("timeout: 1h", "timeout: 0s")),
    # characters that other languages read
    "NUL in an env value": base_site(specs=("secrets: [DB_PASSWORD]",
                                            'secrets: [DB_PASSWORD]\nenv: {A: "a\\0b"}')),
    "NUL in a command": base_site(specs=("stop_timeout: 10s",
                                         'stop_timeout: 10s\ncommand: ["a\\0b"]')),
    "$ in the docker path": base_site(inventory=("address: 10.0.0.1", "address: 10.0.0.1\n"
                                                 "    docker: /usr/$bin/docker")),
    "space in the docker path": base_site(inventory=("address: 10.0.0.1", "address: 10.0.0.1\n"
                                                     "    docker: /usr/bin/doc ker")),
    "uppercase volume name": base_site(specs=("data:/var/lib/api", "Data:/var/lib/api")),
    "control character quoted into a message": base_site(specs=("image: registry.example.org/"
                                                                "shop/api:1.0",
                                                                'image: "a\\x01b"')),
    "newline quoted into a message": base_site(specs=("image: registry.example.org/shop/api:1.0",
                                                      'image: "a\\nb"')),
    # dates and schedules
    "impossible schedule date": base_site(specs=('"*-*-* 02:00:00"', '"2024-02-30"')),
    "schedule in the past": base_site(specs=('"*-*-* 02:00:00"', '"2020-01-01 00:00:00"')),
    "unquoted impossible date": base_site(specs=('"*-*-* 02:00:00"', "2024-02-30")),
    # routes Kong refuses
    "route path with ?": base_site(specs=("path: /api", "path: /api?x=1")),
    "route path with //": base_site(specs=("path: /api", "path: /a//b")),
    "UDP route port": base_site(specs=("{container: 8080, host: 18080}",
                                       "{container: 8080, host: 18080, protocol: udp}")),
    "empty rate_limit": base_site(specs=("rate_limit: {minute: 600}", "rate_limit: {}")),
    "empty rate_limit, no gateway, Traefik ingress": base_site(
        specs=("  auth: key-auth\n  rate_limit: {minute: 600}", "  rate_limit: {}"),
        inventory=("gateway:\n  hosts: [edge-1]\n  consumers:\n    ci:\n      project: shop\n"
                   "      key_auth: [CI_KEY]\n", "k3s: {ingress: traefik}\n")),
    "day limit under the hour limit": base_site(specs=("rate_limit: {minute: 600}",
                                                       "rate_limit: {hour: 100, day: 50}")),
    "route host with a port (Ingress refuses)": base_site(
        specs=("path: /api", "path: /api\n  hosts: [a.example.org:8443]")),
    "schedule naming a year (no cron equivalent)": base_site(
        specs=('"*-*-* 02:00:00"', '"2030-01-01 00:00:00"')),
    # consumers
    "consumer name with _ (Kubernetes refuses)": base_site(
        inventory=("    ci:\n", "    ci_x:\n")),
    "two JWT credentials with the default key": base_site(
        inventory=("      key_auth: [CI_KEY]\n", "      key_auth: [CI_KEY]\n      jwt:\n"
                   "        - {secret: DB_PASSWORD}\n        - {secret: OTHER_KEY}\n")),
    "two consumers share a key, unmanaged Kong": base_site(
        inventory=("  hosts: [edge-1]\n  consumers:\n    ci:\n      project: shop\n"
                   "      key_auth: [CI_KEY]\n",
                   "  hosts: [edge-1]\n  managed: false\n  consumers:\n    ci:\n"
                   "      project: shop\n      key_auth: [CI_KEY]\n    ci2:\n"
                   "      project: shop\n      key_auth: [CI_KEY]\n")),
    "two consumers share a key": base_site(inventory=("      key_auth: [CI_KEY]\n",
                                                      "      key_auth: [CI_KEY]\n    ci2:\n"
                                                      "      project: shop\n"
                                                      "      key_auth: [CI_KEY]\n")),
    "two secrets hold the same key": base_site(
        inventory=("key_auth: [CI_KEY]", "key_auth: [CI_KEY, OTHER_KEY]"),
        secrets=("OTHER_KEY=zqsecret2v333333", "OTHER_KEY=zqsecret0v111111")),
    "empty key": base_site(secrets=("CI_KEY=zqsecret0v111111", "CI_KEY=")),
    # platform services and ports
    "platform port clash": base_site(inventory=("  hosts: [edge-1]\n", "  hosts: [edge-1]\n"
                                                "  admin_port: 8000\n")),
    "service port on Kong's proxy port": base_site(specs=(
        "  http: {container: 8080, host: 18080}\nvolumes: [data:/var/lib/api]\nhealth:\n"
        "  http: {path: /health, port: http}\n  interval: 10s\nplacement: {hosts: [app-1]}",
        "  http: {container: 8080, host: 8000}\nvolumes: [data:/var/lib/api]\nhealth:\n"
        "  http: {path: /health, port: http}\n  interval: 10s\nplacement: {hosts: [edge-1]}")),
    "required key missing at the top of a spec": base_site(
        specs=("kind: job\nname: train\n", "kind: job\n")),
    "required key missing at the top of the inventory": base_site(
        inventory=("site: t\n", "")),
    "ANSI escape quoted into a message": base_site(
        inventory=("address: 10.0.0.1", 'address: 10.0.0.1\n    gpu_mode: "\\e[2J"')),
    "NUL in a job's command": base_site(specs=("timeout: 1h", 'timeout: 1h\ncommand: ["a\\0"]')),
    # files
    "missing secrets file": base_site(inventory=("env_file: secrets.env",
                                                 "env_file: missing.env")),
    "NUL in the secrets file name": base_site(inventory=("env_file: secrets.env",
                                                         'env_file: "secrets.env\\0"')),
    "alias into itself": base_site(specs=("secrets: [DB_PASSWORD]",
                                          "secrets: [DB_PASSWORD]\nenv: &r {A: *r}")),
}


@pytest.mark.parametrize("site", list(KNOWN_BAD.values()), ids=list(KNOWN_BAD))
def test_known_bad_inputs_are_refused_with_locations(workdir: Path,
                                                     site: gen.SiteFiles) -> None:
    check_site(workdir, site)


def test_alias_expansion_is_bounded(tmp_path: Path) -> None:
    """YAML aliases of aliases ("billion laughs"): 10 aliases a level, 8 levels, are 10^8
    values once expanded. validate must refuse it with a location, quickly, not expand it
    (hours of CPU, then memory). Run as a process so a hang ends at the timeout."""
    import subprocess
    import sys

    lines = [*BASE_SPECS.split("---")[1].strip().splitlines(),
             'env: {A: &a0 "lol"}', "args: &a1 [" + ", ".join(["*a0"] * 10) + "]"]
    for i in range(2, 9):
        lines.append(f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    site = base_site()
    site.files["specs/a.yml"] = "\n".join(lines) + "\n"
    for name, text in site.files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    try:
        done = subprocess.run([sys.executable, "-m", "hostctl", "validate", "-i", "site.yml"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=20,
                              env={**os.environ,
                                   "PYTHONPATH": str(Path(__file__).resolve().parents[3])})
    except subprocess.TimeoutExpired:
        pytest.fail("validate still expanding aliases after 20 s")
    assert done.returncode == 2, done.stderr
    assert re.match(r"error: specs/a\.yml:\d+: ", done.stderr), done.stderr
