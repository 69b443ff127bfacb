"""Helpers for the deploy fault tests: break sandbox hosts, heal them, and look at them.

Hosts are broken for real (container stopped or paused, sshd sessions killed, Docker
stopped, a lock dir written by hand); nothing of systemctl or docker is stubbed. Every wait
here is bounded. Traffic goes only to 127.0.0.1 ports and sandbox host containers.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import docker
import yaml
from docker.models.containers import Container

from hostctl import layout as L
from hostctl.sandbox import hosts as sandbox_hosts
from hostctl.sandbox import readiness
from hostctl.sandbox.models import SandboxHost
from tests.rigs.deploy_rig import Site

BOOT_TIMEOUT = 90.0
SECRETS = ("example-not-a-real-password", "example-token-0000")
GLOBS = " ".join(L.MANAGED_GLOBS)


def controller_who() -> str:
    """What hostctl records as `who` for runs started by this test process."""
    try:
        user = getpass.getuser()
    except Exception:
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


@dataclass
class Hosts:
    """Stops, starts and repairs the sandbox hosts behind a Site.

    A restarted container gets a new loopback SSH port (and maybe a new address), so the
    Site, the session's host list (used by later test modules) and the inventory are
    rewritten after every restart.
    """

    site: Site
    client: docker.DockerClient
    state_dir: Path
    session_hosts: list[SandboxHost]

    def container(self, host: str) -> Container:
        c = self.client.containers.get(self.site.hosts[host].container_name)
        c.reload()
        return c

    def status(self, host: str) -> str:
        return str(self.container(host).status)

    def stop(self, host: str, timeout: int = 10) -> None:
        self.container(host).stop(timeout=timeout)

    def exec(self, host: str, *argv: str) -> tuple[int, str]:
        res = self.container(host).exec_run(list(argv))
        return int(res.exit_code), res.output.decode(errors="replace")

    def start(self, host: str) -> None:
        """Start a stopped (or unpause a paused) host and wait until it is ready again."""
        c = self.container(host)
        if c.status == "paused":
            c.unpause()
        elif c.status != "running":
            c.start()
        fresh = _describe_when_ready(c)
        self._replace(fresh)

    def heal(self) -> None:
        """Leave every host running, with Docker up, no deploy lock and no paused container."""
        for name in list(self.site.hosts):
            if self.status(name) != "running":
                self.start(name)
            code, out = self.exec(name, "sh", "-c",
                                  "systemctl is-active --quiet docker.service || "
                                  "systemctl start docker.socket docker.service; "
                                  f"rm -rf {L.LOCK_DIR}")
            assert code == 0, f"{name}: could not heal: {out}"

    def _replace(self, fresh: SandboxHost) -> None:
        from hostctl.cli.sandbox import write_inventory

        self.site.hosts[fresh.name] = fresh
        for i, h in enumerate(self.session_hosts):
            if h.name == fresh.name:
                self.session_hosts[i] = fresh
        sandbox_hosts.write_state(self.state_dir, self.session_hosts)
        written = write_inventory(str(self.site.root / "site.yml"),
                                  list(self.site.hosts.values()), self.state_dir)
        assert written == self.site.inventory, (written, self.site.inventory)


def _describe_when_ready(c: Container) -> SandboxHost:
    deadline = time.monotonic() + BOOT_TIMEOUT
    while True:  # the published port is known only once the container runs
        try:
            host = sandbox_hosts.describe(c)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)
    readiness.wait_ready(c, host, timeout=max(5.0, deadline - time.monotonic()))
    return host


# -- what is on a host ------------------------------------------------------------------


def host_state(site: Site, host: str) -> dict[str, object]:
    """Everything a deploy may change on a host, in one SSH call: managed files (hashes and
    modes), the current release, the releases, unit start times, container ids, the lock."""
    script = (
        f"for f in {GLOBS}; do [ -f \"$f\" ] && "
        "echo \"F $(stat -c %a \"$f\") $(sha256sum \"$f\")\"; done\n"
        f"echo \"C $(readlink {L.CURRENT_LINK})\"\n"
        f"ls -1 {L.RELEASES_DIR} 2>/dev/null | sed 's/^/R /'\n"
        "docker ps -q --no-trunc --filter label=io.hostctl.managed=true | sort | sed 's/^/D /'\n"
        f"[ -e {L.LOCK_DIR} ] && echo 'L held'\n"
        "true\n"
    )
    out = site.ssh(host, script)
    return {"lines": sorted(out.splitlines()), "units": site.active_since(host)}


def all_states(site: Site) -> dict[str, dict[str, object]]:
    return {h: host_state(site, h) for h in site.hosts}


def managed_files(site: Site, host: str) -> dict[str, tuple[str, bytes]]:
    """path -> (octal mode, content) of every hostctl-managed file on the host."""
    out = site.ssh(host, f"for f in {GLOBS}; do [ -f \"$f\" ] && "
                         "echo \"$f $(stat -c %a \"$f\") $(base64 -w0 \"$f\")\"; done; true")
    files = {}
    for line in out.splitlines():
        path, mode, *data = line.split(" ")
        files[path] = (mode, base64.b64decode(data[0]) if data else b"")
    return files


def leftovers(site: Site, host: str) -> list[str]:
    """Temp files of an interrupted write next to managed files (there must never be any)."""
    out = site.ssh(host, f"ls -1d {L.UNIT_DIR}/*.hostctl-new {L.ENV_DIR}/*.hostctl-new "
                         "2>/dev/null; true")
    return out.split()


def secret_values(site: Site) -> dict[str, str]:
    values = {}
    for line in (site.root / "example.secrets.env").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key] = value
    return values


def render(site: Site, out_dir: Path) -> None:
    res = site.hostctl("render", "-i", str(site.inventory), "-o", str(out_dir))
    assert res.returncode == 0, res.stdout + res.stderr


def mismatches_with_render(site: Site, host: str, rendered: Path) -> list[str]:
    """How the host's managed files differ from `hostctl render` (secrets never printed).

    Units and timers must be equal byte for byte; an env file must be the rendered one with
    each `NAME=<secret NAME>` line holding the real secret value; env files 600, the
    others in the mode `render` gives them.
    """
    secrets = secret_values(site)
    root = rendered / host
    want = {"/" + str(p.relative_to(root)): p for p in root.rglob("*") if p.is_file()}
    have = managed_files(site, host)
    problems = []
    for path in sorted(set(want) | set(have)):
        if path not in have:
            problems.append(f"{path}: missing on the host")
            continue
        if path not in want:
            problems.append(f"{path}: on the host but not rendered")
            continue
        mode, content = have[path]
        expected = want[path].read_bytes()
        if L.is_secret_path(path):
            expected = re.sub(rb"^(\w+)=<secret \1>$",
                              lambda m: m.group(1) + b"=" + secrets[m.group(1).decode()].encode(),
                              expected, flags=re.M)
            if mode != "600":
                problems.append(f"{path}: mode {mode}, not 600")
            if content != expected:
                problems.append(f"{path}: content differs from the rendered env file "
                                f"({len(content)} bytes, expected {len(expected)})")
        else:
            rendered_mode = f"{want[path].stat().st_mode & 0o777:o}"  # as `render` wrote it
            if mode != rendered_mode:
                problems.append(f"{path}: mode {mode}, not {rendered_mode}")
            if content != expected:
                problems.append(f"{path}: differs from render:\n{content.decode(errors='replace')}"
                                f"\n--- rendered ---\n{expected.decode(errors='replace')}")
    return problems


def write_lock(site: Site, host: str, age: int, who: str = "ops@elsewhere",
               command: str = "hostctl deploy -i old.yml --yes") -> str:
    """Put a deploy lock on the host as another run would have, started `age` seconds ago
    by the host's clock. Returns the holder record."""
    now = int(site.ssh(host, "date +%s").strip())
    record = json.dumps({"who": who, "run": "deadbeef", "pid": 4242, "started": now - age,
                         "command": command}, sort_keys=True)
    site.ssh(host, f"mkdir -p {L.LOCK_DIR} && printf '%s\\n' '{record}' > "
                   f"{L.LOCK_DIR}/holder.json")
    return record


def without_gateway(path: Path) -> None:
    """Drop the inventory's gateway section: Kong's image cannot be had on the sandbox, and
    these tests are about deploy itself, so the site they deploy has no platform services."""
    data = yaml.safe_load(path.read_text())
    if data.pop("gateway", None) is not None:
        path.write_text(yaml.safe_dump(data, sort_keys=False))


def inventory_variant(site: Site, path: Path, **ssh: object) -> Path:
    """A copy of the site's inventory with some `ssh:` defaults changed."""
    data = yaml.safe_load(site.inventory.read_text())
    data["ssh"].update(ssh)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# -- a deploy running in the background -----------------------------------------------


@dataclass
class Background:
    """`hostctl deploy` in a subprocess whose progress lines (stderr) are watched live."""

    proc: subprocess.Popen[str]
    started: float
    lines: list[str] = field(default_factory=list)
    stdout: str = ""
    _new: threading.Condition = field(default_factory=threading.Condition)
    _readers: list[threading.Thread] = field(default_factory=list)

    @classmethod
    def start(cls, site: Site, *args: str) -> Background:
        env = {**os.environ, "NO_COLOR": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "hostctl", "deploy", "-i", str(site.inventory), "--yes",
             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            text=True, env=env, cwd=site.root)
        bg = cls(proc, time.monotonic())
        assert proc.stdout is not None and proc.stderr is not None
        bg._readers = [threading.Thread(target=bg._read_err, args=(proc.stderr,), daemon=True),
                       threading.Thread(target=bg._read_out, args=(proc.stdout,), daemon=True)]
        for t in bg._readers:
            t.start()
        return bg

    def _read_err(self, stream: IO[str]) -> None:
        for line in stream:
            with self._new:
                self.lines.append(line.rstrip("\n"))
                self._new.notify_all()

    def _read_out(self, stream: IO[str]) -> None:
        self.stdout = stream.read()

    def wait_for_line(self, pattern: str, timeout: float) -> str:
        """The first progress line matching `pattern` (regex), waiting at most `timeout`."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._new:
            while True:
                for line in self.lines:
                    if rx.search(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._readers[0].is_alive()):
                    raise AssertionError(f"no progress line like {pattern!r} within {timeout}s "
                                         f"(exit {self.proc.poll()}):\n" + "\n".join(self.lines)
                                         + "\n" + self.stdout)
                self._new.wait(min(left, 0.5))

    def finish(self, timeout: float) -> tuple[int, str, float]:
        """Wait (bounded) for the run to end: exit status, all output, seconds it took."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"deploy still running after {timeout}s:\n"
                                 + "\n".join(self.lines)) from None
        for t in self._readers:
            t.join(10)
        return rc, self.stdout + "\n".join(self.lines), time.monotonic() - self.started


def timed(fn: Callable[[], subprocess.CompletedProcess[str]]
          ) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    res = fn()
    return res, time.monotonic() - start


def sha(data: str) -> str:
    return hashlib.sha256(data.encode()).hexdigest()
