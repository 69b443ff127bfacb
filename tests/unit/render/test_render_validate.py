"""validate exit 0 implies render succeeds: every spec or host value that render writes into
a unit or a `docker run` line is refused first, with file, line and field, by the rule render
applies. A table of input -> the exact messages, then each accepted odd value rendered."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostctl.render.site import render_site
from hostctl.validate import load_site
from tests.rigs.site_factory import (
    BASE_INVENTORY,
    JOB,
    ODD_BUT_VALID,
    SERVICE,
    make_site,
    refusals,
)
from tests.rigs.systemd_verify import analyze_verify, need_verify

HEALTH_CMD = SERVICE.replace("http: {path: /health, port: http}", 'command: ["true"]')


def _inv(old: str, new: str) -> str:
    assert old in BASE_INVENTORY
    return BASE_INVENTORY.replace(old, new)


SPEC_CASES = [
    pytest.param(
        {"a.yml": SERVICE + 'env: {A: "x\\0y"}\n'},
        ["specs/a.yml:10: env/A: contains a NUL character, which no argv can hold; shorten "
         "the value (NAME=VALUE is one argument)"],
        id="nul-in-env"),
    pytest.param(
        {"a.yml": SERVICE + 'args: [ok, "a\\0"]\ncommand: ["/bin/x\\0"]\n'},
        ["specs/a.yml:10: args/1: contains a NUL character, which no argv can hold; change "
         "this word",
         "specs/a.yml:11: command/0: contains a NUL character, which no argv can hold; "
         "change this word"],
        id="nul-in-args-and-command"),
    pytest.param(
        {"a.yml": HEALTH_CMD.replace('["true"]', '[sh, "-c", "x\\0"]')},
        ["specs/a.yml:8: health/command: contains a NUL character, which no argv can hold; "
         "shorten the command (Docker receives it as one argument)"],
        id="nul-in-health-command"),
    pytest.param(
        {"a.yml": SERVICE + "env: {A: " + "x" * 131070 + "}\n"},
        ["specs/a.yml:10: env/A: is 131072 bytes; the kernel limit for one argument is "
         "131071 bytes; shorten the value (NAME=VALUE is one argument)"],
        id="env-word-over-the-kernel-limit"),
    pytest.param(
        {"a.yml": SERVICE + "args:\n" + "".join(f"  - {'x' * 100_000}\n" for i in range(11))},
        ["specs/a.yml:1: cannot be written into a systemd unit for app-1: the ExecStart= "
         "command line is 1100403 bytes; systemd refuses unit file lines over 1048576 bytes "
         "(at most 1048512 bytes are left for the value); shorten env values, args or "
         "command"],
        id="the-whole-line-too-long"),
    pytest.param(
        {"a.yml": HEALTH_CMD.replace(
            'command: ["true"]', 'command: ["true"]\n  interval: 12d\n  start_period: 0.0001s')},
        ["specs/a.yml:9: health/interval: must be at most 1d, got '12d'",
         "specs/a.yml:10: health/start_period: must be 0 or at least 0.001s, got 0.0001s"],
        id="health-durations"),
    pytest.param(
        {"a.yml": SERVICE + "stop_timeout: 2h\n",
         "j.yml": JOB + "timeout: 400d\n"},
        ["specs/a.yml:10: stop_timeout: must be at most 1h, got '2h'",
         "specs/j.yml:6: timeout: must be at most 365d, got '400d'"],
        id="stop-and-job-timeouts"),
    pytest.param(
        {"a.yml": SERVICE + "stop_timeout: " + "9" * 400 + "s\n"},
        ["specs/a.yml:10: stop_timeout: expected a duration such as 30s, 5m, 1h30m or 500ms, "
         "got '" + "9" * 57 + "...'"],
        id="duration-overflowing-a-float"),
    pytest.param(
        {"a.yml": SERVICE + 'stop_timeout: "١٠s"\nresources: {memory: "١٠Gi"}\n'},
        ["specs/a.yml:10: stop_timeout: expected a duration such as 30s, 5m, 1h30m or 500ms, "
         "got '١٠s'",
         "specs/a.yml:11: resources/memory: expected a size such as 512Mi, 1Gi or 2G, got "
         "'١٠Gi'"],
        id="non-ascii-digits"),
    pytest.param(
        {"a.yml": SERVICE + "resources: {memory: " + "9" * 30 + "Ti, cpus: 0.001}\n"},
        ["specs/a.yml:10: resources/cpus: must be at least 0.01 (Docker's least), got 0.001",
         "specs/a.yml:10: resources/memory: must be at most 9223372036854775807 bytes, got '"
         + "9" * 30 + "Ti'"],
        id="memory-past-int64-and-too-few-cpus"),
    pytest.param(
        {"a.yml": SERVICE + "resources: {cpus: 0.0100000001}\n"},
        ["specs/a.yml:10: resources/cpus: 0.0100000001 is more precise than Docker takes: at "
         "most 9 decimals"],
        id="cpus-too-precise"),
    pytest.param(
        {"a.yml": SERVICE.replace("host: 18080}", "host: 18080, bind: 999.999.999.999}")},
        ["specs/a.yml:6: ports/http/bind: '999.999.999.999' is not valid: give an IP address "
         "such as 127.0.0.1, or an IPv6 address in brackets such as [::1]"],
        id="bind-not-an-ip"),
    pytest.param(
        {"a.yml": SERVICE.replace("host: 18080}", "host: 18080, bind: '::1'}")},
        ["specs/a.yml:6: ports/http/bind: '::1' is not valid: give an IP address such as "
         "127.0.0.1, or an IPv6 address in brackets such as [::1]"],
        id="bind-ipv6-without-brackets"),
    pytest.param(
        {"a.yml": SERVICE + "volumes: ['data:/a:b:ro', {source: data, target: /}, "
                            "{source: '/x:y', target: /z}]\n"},
        ["specs/a.yml:10: volumes/0: 'data:/a:b:ro' is not SOURCE:TARGET or SOURCE:TARGET:ro",
         "specs/a.yml:10: volumes/1/target: '/' is not valid: the path inside the container "
         "must be absolute, not '/', with no ':' or control characters",
         "specs/a.yml:10: volumes/2/source: '/x:y' is not valid: give an absolute host path or "
         "a volume name of two or more characters (no ':' or control characters)"],
        id="volumes-docker-cannot-mount"),
    pytest.param(
        {"j.yml": JOB + 'schedule: "2024-02-30"\n', "k.yml": JOB.replace("etl", "etl2")
         + 'schedule: "2020-01-01 UTC"\n'},
        ["specs/j.yml:6: schedule: '2024-02-30' never fires: no such date lies ahead (a day "
         "that does not exist, such as 02-30, or a time that has passed); give a date to "
         "come, or a repeating schedule such as 'daily'",
         "specs/k.yml:6: schedule: '2020-01-01 UTC' never fires: no such date lies ahead (a "
         "day that does not exist, such as 02-30, or a time that has passed); give a date to "
         "come, or a repeating schedule such as 'daily'"],
        id="schedules-that-never-fire"),
    pytest.param(
        {"a.yml": SERVICE.replace("path: /health", 'path: "/he\\x01"'),
         "b.yml": SERVICE.replace("name: api", "name: b").replace("18080", "18081")
         .replace("path: /health", "path: /grüße")},
        ["specs/a.yml:8: health/http/path: '/he\\x01' is not valid: the path must start with "
         "'/' and have no spaces, control or non-ASCII characters (percent-encode them)",
         "specs/b.yml:8: health/http/path: '/grüße' is not valid: the path must start with "
         "'/' and have no spaces, control or non-ASCII characters (percent-encode them)"],
        id="health-path-outside-a-url"),
    pytest.param(
        {"a.yml": SERVICE.replace("api:1.0", "api:١")},
        ["specs/a.yml:4: image: 'example.org/shop/api:١' is not valid: give an image "
         "reference such as registry.example.org/team/app:1.2.3"],
        id="non-ascii-image-tag"),
    # Docker's reference rules past the grammar: a first component is a registry only with
    # a '.' or ':' (or localhost), and the name it normalizes to is at most 255 characters.
    pytest.param(
        {"a.yml": SERVICE.replace("example.org/shop/api:1.0", "Shop/api:1.0"),
         "b.yml": SERVICE.replace("name: api", "name: b").replace("18080", "18081")
         .replace("example.org/shop/api:1.0", "a" * 238 + ":1"),
         "c.yml": SERVICE.replace("name: api", "name: c").replace("18080", "18082")
         .replace("example.org/shop/api:1.0", "Registry.example.org/shop/" + "a" * 229)},
        ["specs/a.yml:4: image: 'Shop/api:1.0' is not valid: the repository name must be "
         "lowercase (only a registry, such as Registry.example.org, may have capitals)",
         "specs/b.yml:4: image: '" + "a" * 57 + "...' is not valid: the repository name is "
         "256 characters as Docker reads it (docker.io/library/aaaaaaaaaaaa...), and Docker "
         "takes at most 255"],
        id="image-names-docker-refuses"),
    pytest.param(
        {"a.yml": SERVICE + "volumes: ['a:/data']\n"},
        ["specs/a.yml:10: volumes/0/source: 'a' is not valid: give an absolute host path or a "
         "volume name of two or more characters (no ':' or control characters)"],
        id="one-character-volume-name"),
]


@pytest.mark.parametrize(("specs", "expected"), SPEC_CASES)
def test_spec_values_render_refuses_are_refused_by_validate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, specs: dict[str, str],
        expected: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert refusals(tmp_path, specs) == expected


DIGEST = "example.org/shop/api@sha256:" + "ab" * 32
DIGEST_TAGGED = "example.org/shop/api:1.0@sha256:" + "ab" * 32
PUSH_BY_DIGEST = ("names its image by digest, and image_source is push (in {}): docker load "
                  "brings no digests to the host, so the image could not be found there; "
                  "push it by tag (name:tag, without @sha256:...), or set image_source: pull")


@pytest.mark.parametrize(("inventory_source", "spec", "expected"), [
    pytest.param(None, SERVICE.replace("example.org/shop/api:1.0", DIGEST)
                 + "image_source: push\n",
                 [f"specs/a.yml:4: image: '{DIGEST[:57]}...' "
                  + PUSH_BY_DIGEST.format("specs/a.yml")], id="spec-push"),
    pytest.param("push", SERVICE.replace("example.org/shop/api:1.0", DIGEST_TAGGED),
                 [f"specs/a.yml:4: image: '{DIGEST_TAGGED[:57]}...' "
                  + PUSH_BY_DIGEST.format("site.yml")], id="inventory-push"),
    pytest.param("push", SERVICE.replace("example.org/shop/api:1.0", DIGEST)
                 + "image_source: pull\n", [], id="spec-pulls"),
    pytest.param(None, SERVICE.replace("example.org/shop/api:1.0", DIGEST), [],
                 id="default-pull"),
    pytest.param("push", SERVICE, [], id="push-by-tag"),
])
def test_an_image_pushed_by_digest_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inventory_source: str | None,
        spec: str, expected: list[str]) -> None:
    """`docker load` restores tags, never repository digests: a unit running NAME@sha256:...
    would find no such image on a host it was pushed to."""
    monkeypatch.chdir(tmp_path)
    inventory = BASE_INVENTORY + (f"image_source: {inventory_source}\n"
                                  if inventory_source else "")
    assert refusals(tmp_path, {"a.yml": spec}, inventory) == expected


@pytest.mark.parametrize(("secrets", "expected"), [
    ("DB_PASSWORD=" + "s" * (65535 - 12) + "\n", []),
    ("DB_PASSWORD=" + "s" * (65536 - 12) + "\n",
     ["secrets.env:1: DB_PASSWORD: DB_PASSWORD=VALUE is 65536 bytes; Docker reads env-file "
      "lines of at most 65535 bytes: keep large secrets in a file mounted from a volume"]),
    ("DB_PASSWORD=a\0b\n",
     ["secrets.env:1: DB_PASSWORD: the value contains a NUL character, which no environment "
      "variable can hold"]),
])
def test_secrets_docker_cannot_read_from_an_env_file_are_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secrets: str,
        expected: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert refusals(tmp_path, {"a.yml": SERVICE + "secrets: [DB_PASSWORD]\n"},
                    secrets=secrets) == expected


INVENTORY_CASES = [
    pytest.param(_inv("{address: 10.0.0.1,", "{address: --privileged,"),
                 ["site.yml:3: hosts/app-1/address: '--privileged' is not an IP address or DNS "
                  "name: give an address such as 10.0.0.11 or fd00::11, or a name such as "
                  "app-1.example.org (letters, digits, '-' and '.', no leading '-')"],
                 id="address-like-an-option"),
    pytest.param(_inv("{address: 10.0.0.1,", "{address: 999.999.999.999,"),
                 ["site.yml:3: hosts/app-1/address: '999.999.999.999' is not a valid IPv4 "
                  "address (four numbers 0..255)"],
                 id="address-not-an-ip"),
    pytest.param(_inv("{address: 10.0.0.1,", "{address: 10.0.0.1, ssh: {host: -oProxy=x},"),
                 ["site.yml:3: hosts/app-1/ssh/host: '-oProxy=x' is not an IP address or DNS "
                  "name: give an address such as 10.0.0.11 or fd00::11, or a name such as "
                  "app-1.example.org (letters, digits, '-' and '.', no leading '-')"],
                 id="ssh-host-like-an-option"),
    pytest.param(_inv("{address: 10.0.0.1,", "{address: 10.0.0.1, docker: '/opt/$D/docker',"),
                 ["site.yml:3: hosts/app-1/docker: '/opt/$D/docker' contains '$', which "
                  "systemd cannot pass unchanged; give the absolute path of the docker client "
                  "on the host, such as /usr/bin/docker"],
                 id="docker-path-with-dollar"),
    pytest.param(_inv("{address: 10.0.0.1,", "{address: 10.0.0.1, docker: \"/opt/d'x\","),
                 ["site.yml:3: hosts/app-1/docker: '/opt/d'x' contains \"'\", which systemd "
                  "refuses in an executable path; give the absolute path of the docker client "
                  "on the host, such as /usr/bin/docker"],
                 id="docker-path-with-quote"),
    pytest.param(_inv("{address: 10.0.0.1,", "{address: 10.0.0.1, docker: \"/opt/d\\tx\","),
                 ["site.yml:3: hosts/app-1/docker: '/opt/d\\tx' contains '\\t', which systemd "
                  "refuses in an executable path; give the absolute path of the docker client "
                  "on the host, such as /usr/bin/docker"],
                 id="docker-path-with-control-character"),
    pytest.param(_inv("{address: 10.0.0.1,", "{address: 10.0.0.1, docker: \"/opt/d\\0x\","),
                 ["site.yml:3: hosts/app-1/docker: '/opt/d\\x00x' contains a NUL character, "
                  "which no argv can hold; give the absolute path of the docker client on the "
                  "host, such as /usr/bin/docker"],
                 id="docker-path-with-nul"),
    pytest.param(_inv("site: t\n", "site: t\nssh: {connect_timeout: 1h}\n"),
                 ["site.yml:2: ssh/connect_timeout: must be at most 10m, got '1h'"],
                 id="connect-timeout"),
]


@pytest.mark.parametrize(("inventory", "expected"), INVENTORY_CASES)
def test_host_values_render_or_ssh_refuse_are_refused_by_validate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inventory: str,
        expected: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert refusals(tmp_path, {"a.yml": SERVICE}, inventory=inventory) == expected


def test_odd_but_valid_values_validate_and_render(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    inv = make_site(tmp_path, {
        "a.yml": ODD_BUT_VALID,
        "j.yml": JOB + "timeout: 365d\nschedule: '*-12-31 23:00 UTC'\n"})
    rendered = {f.path: f.content.decode() for f in render_site(load_site(str(inv),
                                                                          environ={}))["app-1"]}
    unit = rendered["/etc/systemd/system/hostctl-api-1.service"]
    run = next(ln for ln in unit.splitlines() if ln.startswith("ExecStart="))
    assert (" --health-interval 86400s --health-timeout 1500ms --health-retries 3 "
            "--health-start-period 45000s ") in run
    assert " --cpus 0.01 --memory 6291456b " in run
    assert ' --publish "[::1]:18080:8080/tcp" ' in run
    assert "ExecStop=/usr/bin/docker stop -t 3600 hostctl-api-1" in unit
    assert "TimeoutStopSec=3615s" in unit
    job = rendered["/etc/systemd/system/hostctl-job-etl@.service"]
    assert "RuntimeMaxSec=31536000s" in job


def test_units_of_odd_but_valid_values_pass_systemd_analyze_verify(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need_verify()
    monkeypatch.chdir(tmp_path)
    inv = make_site(tmp_path, {
        "a.yml": ODD_BUT_VALID,
        "j.yml": JOB + "timeout: 365d\nschedule: '*-12-31 23:00 UTC'\nstop_timeout: 1h\n"})
    units = tmp_path / "units"
    units.mkdir()
    for f in render_site(load_site(str(inv), environ={}))["app-1"]:
        if f.path.startswith("/etc/systemd/system/"):
            (units / Path(f.path).name).write_bytes(f.content)
    checked = sorted(units.iterdir())
    assert [p.name for p in checked] == [
        "hostctl-api-1.service", "hostctl-job-etl.timer", "hostctl-job-etl@.service",
        "hostctl-probe.timer", "hostctl-probe@.service"]
    for unit in checked:
        result = analyze_verify(unit)
        assert (result.returncode, result.stdout + result.stderr) == (0, ""), unit.name
