"""A worked-example site deployed into sandbox hosts, for end-to-end tests of hostctl itself.

`example_site` copies inventories/ into a temp folder (so tests may edit specs), boots the
sandbox hosts, writes the sandbox inventory and builds the demo app images. It leaves out the
example's logging and metrics sections (these tests are about deploy itself; the ones about
observability add their own); `whole_example_site` keeps them, as `scripts/try.sh` deploys
it. Tests drive the real `hostctl` command in a subprocess and look at the hosts over SSH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from hostctl.sandbox import app_image
from hostctl.sandbox.models import SandboxHost, SandboxHostRequest

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
EXAMPLE_HOSTS = [
    SandboxHostRequest("edge-1", {"role": "edge"}, 0),
    SandboxHostRequest("app-1", {"role": "app"}, 0),
    SandboxHostRequest("gpu-1", {"role": "gpu"}, 1),
]


@dataclass
class Site:
    root: Path  # the copy of inventories/
    inventory: Path  # the sandbox inventory
    hosts: dict[str, SandboxHost]
    skip: str = "gateway"  # the platform services no image of can be had here

    def hostctl(self, *args: str, timeout: float = 300,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
        return subprocess.run([sys.executable, "-m", "hostctl", *args], capture_output=True,
                              text=True, timeout=timeout, env=full_env, cwd=self.root)

    def deploy(self, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
        """`hostctl deploy --yes`, leaving out Kong (no image of it can be had here)."""
        return self.hostctl("deploy", "-i", str(self.inventory), "--yes",  # type: ignore[arg-type]
                            "--skip-platform", self.skip, *args, **kw)

    def plan(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.hostctl("plan", "-i", str(self.inventory), "--skip-platform", self.skip,
                            *args)

    def ssh(self, host: str, command: str, timeout: float = 60) -> str:
        h = self.hosts[host]
        res = subprocess.run(h.ssh_argv(command), capture_output=True, text=True,
                             timeout=timeout)
        if res.returncode != 0:
            raise AssertionError(f"{host}: `{command}` failed ({res.returncode}): "
                                 f"{res.stdout}{res.stderr}")
        return res.stdout

    def ssh_bytes(self, host: str, command: str) -> bytes:
        h = self.hosts[host]
        return subprocess.run(h.ssh_argv(command), capture_output=True, timeout=60,
                              check=True).stdout

    def http(self, host: str, port: int, path: str, timeout: float = 5) -> tuple[int, str]:
        """GET from the host's published port, at its address on the sandbox network."""
        import requests

        url = f"http://{self.hosts[host].address}:{port}{path}"
        try:
            r = requests.get(url, timeout=timeout)
        except requests.RequestException as exc:
            return 0, type(exc).__name__
        return r.status_code, r.text

    def metrics(self, host: str) -> str:
        """The host exporter's /metrics page (port 9477, straight, past any proxy), or
        "unreachable: WHY"."""
        try:
            with _DIRECT.open(f"http://{self.hosts[host].address}:9477/metrics",
                              timeout=5) as r:
                return str(r.read().decode())
        except OSError as exc:
            return f"unreachable: {exc}"

    def active_since(self, host: str) -> dict[str, str]:
        """ActiveEnterTimestamp of every hostctl service unit on the host (but the health
        probe's run unit, which starts anew every few seconds by design)."""
        out = self.ssh(host, "systemctl show -p Id,ActiveEnterTimestamp 'hostctl-*.service'")
        stamps: dict[str, str] = {}
        unit = ""
        for line in out.splitlines():
            key, _, value = line.partition("=")
            if key == "Id":
                unit = value
            elif key == "ActiveEnterTimestamp" and not unit.startswith("hostctl-probe@"):
                stamps[unit] = value
        return stamps

    def edit(self, relpath: str, old: str, new: str) -> None:
        path = self.root / relpath
        text = path.read_text()
        assert old in text, f"{old!r} not in {relpath}"
        path.write_text(text.replace(old, new, 1))

    def deploy_jobs(self, spec_file: str, specs: str, names: tuple[str, ...],
                    **sections: object) -> None:
        """Writes `specs` to specs/SPEC_FILE, has gpu-1 hand its GPU ids out in
        HOSTCTL_GPU_DEVICES (gpu_mode: env; no NVIDIA here), sets the inventory's top-level
        `sections`, and deploys only the jobs and services `names` (it must succeed)."""
        import yaml

        (self.root / "specs" / spec_file).write_text(specs)
        data = yaml.safe_load(self.inventory.read_text())
        data["hosts"]["gpu-1"]["gpu_mode"] = "env"
        data.update(sections)
        self.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
        res = self.deploy("--only", ",".join(names))
        assert res.returncode == 0, res.stdout + res.stderr

    def on(self, command: str, *args: str,
           timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """`hostctl COMMAND -i INVENTORY ARGS...` against the sandbox inventory."""
        return self.hostctl(command, "-i", str(self.inventory), *args, timeout=timeout)

    def run_json(self, *args: str) -> dict[str, Any]:
        """`hostctl run ARGS... --json`, which must succeed, as data."""
        res = self.on("run", *args, "--json")
        assert res.returncode == 0, res.stdout + res.stderr
        out: dict[str, Any] = json.loads(res.stdout)
        return out

    def run_record(self, host: str, run_id: str) -> dict[str, str]:
        """A run's record on the host, file name -> its (one-line) text, read over SSH."""
        out = self.ssh(host, f"cd /var/lib/hostctl/runs/{run_id} && grep -H '' * || true")
        return {line.split(":", 1)[0]: line.split(":", 1)[1] for line in out.splitlines()
                if ":" in line}

    def audit(self, host: str) -> list[dict[str, object]]:
        return [json.loads(line) for line in
                self.ssh(host, "cat /var/lib/hostctl/audit.log").splitlines() if line]


def job_spec(name: str, script: str, project: str = "lab",
             resources: dict[str, object] | None = None, **more: object) -> dict[str, object]:
    """A job spec: `sh -c SCRIPT` in the demo image, in `project`, a tenth of a CPU unless
    `resources` says otherwise; `more` adds the other fields (placement, timeout...)."""
    return {"kind": "job", "name": name, "project": project, "image": "hostctl-demo-app:1.0",
            "command": ["sh", "-c", script], "resources": resources or {"cpus": 0.1}, **more}


def concurrently(n: int, call: Callable[[], T], timeout: float = 240) -> list[T]:
    """`call()` from n threads started together (concurrent operators); what each
    returned, in the order they finished (each thread waited for at most `timeout`)."""
    results: list[T] = []
    threads = [threading.Thread(target=lambda: results.append(call())) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return results


def wait_for(check: object, timeout: float = 30, every: float = 0.5) -> bool:
    """Poll `check()` until true or `timeout` seconds pass (bounded, for assertions)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():  # type: ignore[operator]
            return True
        time.sleep(every)
    return False


def _example(sandbox_hosts: list[SandboxHost], sandbox_state_dir: Path,
             tmp_path_factory: pytest.TempPathFactory, observability: bool) -> Site:
    import yaml

    from hostctl.cli.sandbox import write_inventory

    root = tmp_path_factory.mktemp("site") / "inventories"
    shutil.copytree(REPO / "inventories", root, ignore=shutil.ignore_patterns("images"))
    if not observability:
        data = yaml.safe_load((root / "site.yml").read_text())
        for section in ("logging", "metrics"):
            data.pop(section, None)
        (root / "site.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    for version in ("1.0", "2.0"):
        app_image.build(version)
    booted = {h.name: h for h in sandbox_hosts}
    assert sorted(booted) == sorted(r.name for r in EXAMPLE_HOSTS)
    inventory = write_inventory(str(root / "site.yml"), list(booted.values()), sandbox_state_dir)
    site = Site(root, inventory, booted, "gateway,logging" if observability else "gateway")
    for name in site.hosts:
        site.ssh(name, RESET)
    return site


@pytest.fixture(scope="module")
def example_site(sandbox_hosts: list[SandboxHost], sandbox_state_dir: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    yield _example(sandbox_hosts, sandbox_state_dir, tmp_path_factory, observability=False)


@pytest.fixture(scope="module")
def whole_example_site(sandbox_hosts: list[SandboxHost], sandbox_state_dir: Path,
                       tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    yield _example(sandbox_hosts, sandbox_state_dir, tmp_path_factory, observability=True)


# Leaves a host as if hostctl had never been there (each test module starts from that).
RESET = """
systemctl stop 'hostctl-*' 'hostctl.retry-*' >/dev/null 2>&1
systemctl disable --now hostctl.jobs.timer >/dev/null 2>&1
rm -f /etc/systemd/system/hostctl.jobs.*
rm -f /etc/systemd/system/hostctl-* /etc/systemd/system/*.wants/hostctl-*
rm -rf /etc/hostctl /var/lib/hostctl
ids=$(docker ps -aq --filter label=io.hostctl.managed=true)
[ -n "$ids" ] && docker rm -f $ids >/dev/null
systemctl daemon-reload
systemctl reset-failed >/dev/null 2>&1
true
"""
