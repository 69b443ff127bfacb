"""Docker's own verdict on every rendered `docker run`: each unit's command line, as systemd
would start it (tests/systemd_exec_parser), goes through `docker create` on this machine's
engine, which parses and checks every flag (durations, sizes, ports, mounts, log options,
GPUs), and is removed again. The worked example and a site of odd-but-valid values."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostctl.render.docker_cmd import ENV_DIR, go_duration
from hostctl.render.site import render_site
from hostctl.sandbox import app_image
from hostctl.spec import model as m
from hostctl.spec.platform import with_platform
from hostctl.spec.secrets import ENV_FILE_LINE_MAX
from hostctl.validate import load_site
from tests.rigs.site_factory import JOB, ODD_BUT_VALID, make_site
from tests.rigs.systemd_exec_parser import DEFAULT_SPECIFIERS, parse_exec_line

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "inventories" / "site.yml"
IMAGE = "hostctl-demo-app:1.0"
DOCKER = shutil.which("docker")
# What the queue (hostctl-jobs.sh) writes for a run or a GPU service before systemd starts it.
# What the queue writes in a run's unit.env (hostctl-jobs.sh write_unit_env), with this
# machine's paths; its image word an image id, as the queue resolves the reference.
UNIT_ENV = {"HOSTCTL_RUN_ARGS": '--env-file /dev/null --gpus "device=0" '
                                "--mount type=bind,src=/tmp,dst=/hostctl/out "
                                "--env HOSTCTL_METRICS=/hostctl/out/metrics.jsonl",
            "HOSTCTL_GPU_ARGS": '--gpus "device=0"',
            "HOSTCTL_RUN_IMAGE": "sha256:" + "0" * 64}

ODD_INVENTORY = """\
site: odd
hosts:
  app-1: {address: app-1.example.org, labels: {role: app}, gpus: 2}
profiles: {}
specs: [specs/*.yml]
secrets: {env_file: secrets.env}
logging: {host: app-1, logstash: {protocol: tcp, port: 12202}}
"""


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    assert DOCKER is not None
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.fixture(scope="module")
def engine() -> Iterator[str]:
    """The demo image (built from busybox-static, no pull) and a tag for what tests make."""
    if DOCKER is None or _docker("info").returncode != 0:
        if os.environ.get("CI"):
            pytest.fail("CI must run a Docker engine")
        pytest.skip("no Docker engine")
    app_image.build("1.0")
    tag = f"hostctl-render-test-{secrets.token_hex(4)}"
    yield tag
    for kind in ("container", "network"):
        listed = _docker(kind, "ls", "-aq" if kind == "container" else "-q",
                         "--filter", f"label={tag}").stdout.split()
        if listed:
            _docker(kind, "rm", "-f" if kind == "container" else "--", *listed)


def _docker_runs(site: m.Site, env_dir: Path) -> list[tuple[str, list[str]]]:
    """(unit, argv) of every `docker run`/`docker create` line in every rendered unit; the
    env files (secrets, a job's env) are written under env_dir as they would be on the host."""
    found = []
    for files in render_site(site).values():
        for f in files:
            if f.path.startswith(ENV_DIR) and f.path.endswith(".env"):
                (env_dir / Path(f.path).name).write_bytes(f.content)
            if not f.path.startswith("/etc/systemd/system/"):
                continue
            for line in f.content.decode().splitlines():
                key, _, value = line.partition("=")
                if key not in ("ExecStart", "ExecStartPre") or value.startswith("-"):
                    continue
                argv = parse_exec_line(value, {**DEFAULT_SPECIFIERS, "i": "run1"}, UNIT_ENV)
                if argv[1:2] in (["run"], ["create"]):
                    found.append((Path(f.path).name, argv))
    return found


def _as_test_container(argv: list[str], site: m.Site, tag: str, env_dir: Path) -> list[str]:
    """The same flags, made creatable here: `create`, a unique name and label, the demo
    image, the env file written here; CPUs within this machine's (Docker checks the host's)."""
    images = {w.image for w in site.workloads}
    out = ["create", "--label", tag]
    words = iter(argv[2:])
    for word in words:
        if word == "--name":
            out += [word, f"{tag}-{next(words)}"]
        elif word == "--env-file":
            path = next(words)
            out += [word, str(env_dir / Path(path).name) if path.startswith(ENV_DIR) else path]
        elif word == "--cpus":
            out += [word, str(min(float(next(words)), os.cpu_count() or 1))]
        elif word in images or word == UNIT_ENV["HOSTCTL_RUN_IMAGE"]:
            out.append(IMAGE)
            out += list(words)
        else:
            out.append(word)
    return out


def _create_all(site: m.Site, tag: str, tmp_path: Path) -> list[list[str]]:
    runs = _docker_runs(site, tmp_path)
    networks = sorted({argv[i + 1] for _, argv in runs for i, w in enumerate(argv)
                       if w == "--network"})
    for net in networks:
        _docker("network", "create", "--label", tag, f"{tag}-{net}")
    refused = []
    for unit, argv in runs:
        args = _as_test_container(argv, site, tag, tmp_path)
        args = [f"{tag}-{a}" if a in networks else a for a in args]
        res = _docker(*args)
        if res.returncode != 0:
            refused.append((unit, res.stderr.strip(), args))
        else:
            _docker("rm", "-f", res.stdout.strip())
    assert refused == []
    return [argv for _, argv in runs]


def test_docker_accepts_every_docker_run_of_the_worked_example(
        engine: str, tmp_path: Path) -> None:
    runs = _create_all(with_platform(load_site(str(EXAMPLE))), engine, tmp_path)
    # 5 services (the gateway among them), Logstash and Elasticsearch, and 2 jobs
    assert len(runs) == 9


def test_docker_accepts_every_docker_run_of_odd_but_valid_values(
        engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    inv = make_site(tmp_path, {
        "a.yml": ODD_BUT_VALID.replace("placement: {hosts: [app-1]}",
                                       "placement: {hosts: [app-1]}\ninstances: 2"),
        "g.yml": "kind: service\nname: infer\nproject: ml\nimage: x:1\n"
                 "resources: {gpus: 2, cpus: 1.5, memory: 1Ti}\nports: {u: {container: 53, "
                 "host: 5353, protocol: udp, bind: 127.0.0.1}}\nreach: [shop]\n",
        "j.yml": JOB + "timeout: 365d\nschedule: '*-12-31 23:00 UTC'\nstop_timeout: 1h\n"
                       "resources: {gpus: 1}\nenv: {LONG: " + "y" * 60_000 + "}\n"
                       "secrets: [BIG, ODD]\n",
    }, inventory=ODD_INVENTORY,
        # the longest line an env file may have (secrets.ENV_FILE_LINE_MAX), and odd bytes
        secrets="BIG=" + "z" * (ENV_FILE_LINE_MAX - 4) + "\nODD= x=y \"'$%#\n")
    runs = _create_all(load_site(str(inv), environ={}), engine, tmp_path)
    assert len(runs) == 4  # api x2, infer (created, then connected and started), etl
    assert all("gelf" in argv for argv in runs)
    # what the odd values were there to exercise
    assert {"--gpus", "--env-file", "--health-start-period", "--publish", "--volume",
            "--entrypoint"} <= {word for argv in runs for word in argv}


def test_docker_create_does_refuse_a_bad_flag(engine: str) -> None:
    """The checks above could not fail if docker create accepted anything."""
    res = _docker("create", "--label", engine, "--health-interval", "1.0368e+06s", IMAGE)
    assert res.returncode != 0 and "invalid argument" in res.stderr


@pytest.mark.parametrize("seconds", [0.001, 0.0015, 0.1, 1.5, 2, 90, 45000.25, 86400,
                                     12 * 86400, 365 * 86400, 1.000000007])
def test_docker_reads_durations_as_hostctl_writes_them(engine: str, seconds: float) -> None:
    """go_duration's text, parsed by Docker (Go's time.ParseDuration), is the same duration
    to the nanosecond."""
    res = _docker("create", "--label", engine, "--health-cmd", "true",
                  "--health-timeout", go_duration(seconds), IMAGE)
    assert res.returncode == 0, res.stderr
    cid = res.stdout.strip()
    got = _docker("inspect", "--format", "{{json .Config.Healthcheck.Timeout}}", cid).stdout.strip()
    _docker("rm", "-f", cid)
    assert int(got) == round(seconds * 1e9)
