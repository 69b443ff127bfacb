"""End to end against a real Kong, when one can be had: HOSTCTL_KONG_IMAGE names an image
reference the local Docker engine has (or a `docker save` tarball to load).

Kong runs DB-less on the host network, every listener on 127.0.0.1; two backends are small
Python servers on 127.0.0.1. hostctl renders the gateway config for a site whose service has
two instances, sends it with its Admin API client, and then: routes answer through the proxy,
a wrong or missing key gets 401, the key is not forwarded, Kong's hash is the one hostctl
computed, a refused config maps to spec lines, and draining instances one at a time while
traffic flows loses no request.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from hostctl.gateway.admin import ConfigRejected, KongAdmin, config_hash
from hostctl.gateway.declarative import dump, render_declarative
from hostctl.validate import load_site
from tests.rigs.local_images import image_from_env
from tests.rigs.site_factory import make_site

IMAGE_ENV = "HOSTCTL_KONG_IMAGE"
KEY = "real-kong-test-key-0123456789"


def _kong_image() -> str:
    """The image to run, or skip with the reason."""
    return image_from_env(
        IMAGE_ENV, f"no Kong image on this machine: set {IMAGE_ENV} to run against real Kong "
        "(an image reference the local Docker engine has, or a saved tarball)")


def _free_ports(count: int, consecutive: bool = False) -> list[int]:
    """Ports free on 127.0.0.1 now (consecutive ones for instances at host, host+1)."""
    for _ in range(200):
        with contextlib.ExitStack() as stack:
            first = stack.enter_context(socket.socket())
            first.bind(("127.0.0.1", 0))
            ports = [first.getsockname()[1]]
            try:
                for i in range(1, count):
                    s = stack.enter_context(socket.socket())
                    s.bind(("127.0.0.1", ports[0] + i if consecutive else 0))
                    ports.append(s.getsockname()[1])
            except OSError:
                continue
            return ports
    raise RuntimeError("no free ports on 127.0.0.1")


class Backend:
    """One instance of the routed service: answers which instance it is and what it got."""

    def __init__(self, name: str, port: int):
        self.name, self.port = name, port
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        name = self.name

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                body = json.dumps({"instance": name, "path": self.path,
                                   "apikey": self.headers.get("apikey")}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if check():
                return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


@pytest.fixture
def real_kong(tmp_path: Path) -> Iterator[dict[str, Any]]:
    image = _kong_image()
    proxy, admin, status = _free_ports(3)
    base = _free_ports(2, consecutive=True)[0]
    backends = [Backend("instance-1", base), Backend("instance-2", base + 1)]
    for b in backends:
        b.start()
    name = f"hostctl-test-kong-{uuid.uuid4().hex[:8]}"
    env = {"KONG_DATABASE": "off", "KONG_PROXY_LISTEN": f"127.0.0.1:{proxy}",
           "KONG_ADMIN_LISTEN": f"127.0.0.1:{admin}", "KONG_STATUS_LISTEN":
           f"127.0.0.1:{status}", "KONG_NGINX_WORKER_PROCESSES": "1"}
    argv = ["docker", "run", "-d", "--rm", "--name", name, "--network", "host"]
    for k, v in env.items():
        argv += ["-e", f"{k}={v}"]
    started = subprocess.run([*argv, image], capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr
    try:
        _until(lambda: requests.get(f"http://127.0.0.1:{admin}/status", timeout=2).ok, 90,
               "Kong's Admin API")
        yield {"proxy": proxy, "admin": admin, "status": status, "base": base,
               "backends": backends, "tmp": tmp_path}
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)
        for b in backends:
            b.stop()


def _site(ports: dict[str, Any]) -> Any:
    root: Path = ports["tmp"]
    inventory = f"""\
site: realkong
hosts:
  local: {{address: 127.0.0.1}}
specs: [specs/*.yml]
secrets: {{env_file: secrets.env}}
gateway:
  hosts: [local]
  proxy: {{http: {ports['proxy']}}}
  admin_port: {ports['admin']}
  status_port: {ports['status']}
  consumers:
    ci: {{project: shop, key_auth: [CI_KEY]}}
"""
    spec = f"""\
kind: service
name: api
project: shop
image: example.org/shop/api:1.0
instances: 2
ports:
  http: {{container: 8080, host: {ports['base']}}}
health:
  http: {{path: /health, port: http}}
  interval: 1s
  timeout: 1s
route:
  path: /api
  auth: key-auth
  rate_limit: {{minute: 100000}}
"""
    inv = make_site(root, {"api.yml": spec}, inventory, secrets=f"CI_KEY={KEY}\n")
    return load_site(str(inv), environ={})


def test_routes_keys_hash_errors_and_draining_on_real_kong(real_kong: dict[str, Any]) -> None:
    site = _site(real_kong)
    rendered = render_declarative(site)
    assert rendered is not None
    admin = KongAdmin(f"http://127.0.0.1:{real_kong['admin']}", timeout=10)
    result = admin.sync(rendered.text, rendered.provenance)
    assert result.changed and result.configuration_hash == config_hash(rendered.text)
    assert not admin.sync(rendered.text, rendered.provenance).changed  # 304

    proxy = f"http://127.0.0.1:{real_kong['proxy']}/api/hello"
    _until(lambda: requests.get(proxy, headers={"apikey": KEY}, timeout=2).status_code == 200,
           30, "the route to answer through the proxy")
    answer = requests.get(proxy, headers={"apikey": KEY}, timeout=5).json()
    assert answer["path"] == "/hello" and answer["apikey"] is None  # stripped, key hidden
    assert requests.get(proxy, headers={"apikey": "wrong"}, timeout=5).status_code == 401
    assert requests.get(proxy, timeout=5).status_code == 401
    _until(lambda: {t.health for t in admin.upstream_health("hostctl-api")} == {"HEALTHY"},
           30, "both targets to be healthy")

    bad = yaml.safe_load(rendered.text)
    bad["services"][0]["routes"][0]["plugins"][-1]["config"]["minute"] = -1
    with pytest.raises(ConfigRejected) as err:
        admin.sync(dump(bad, reveal=True), rendered.provenance)
    assert all(p.file.endswith("api.yml") for p in err.value.problems), err.value.problems
    assert admin.configuration_hash() == config_hash(rendered.text)  # still the good one

    failures = _roll(site, admin, real_kong, proxy)
    assert failures == [], failures[:5]


def _roll(site: Any, admin: KongAdmin, ports: dict[str, Any], proxy: str) -> list[str]:
    """Replace each instance in turn (weight 0, stop, start, weight back) under load."""
    failures: list[str] = []
    done = threading.Event()

    def load() -> None:
        with requests.Session() as s:
            while not done.is_set():
                try:
                    r = s.get(proxy, headers={"apikey": KEY}, timeout=5)
                    if r.status_code != 200:
                        failures.append(f"HTTP {r.status_code}")
                except requests.RequestException as exc:
                    failures.append(type(exc).__name__)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    try:
        for i, backend in enumerate(ports["backends"], start=1):
            drained = render_declarative(site, weights={("local", f"hostctl-api-{i}"): 0})
            assert drained is not None
            admin.sync(drained.text, drained.provenance)
            time.sleep(1.0)  # in-flight requests finish
            backend.stop()
            time.sleep(0.5)
            backend.start()
            health = f"http://127.0.0.1:{backend.port}/health"
            _until(lambda: requests.get(health, timeout=2).ok, 10,  # noqa: B023
                   "the restarted instance to answer")
            back = render_declarative(site)
            assert back is not None
            admin.sync(back.text, back.provenance)
            _until(lambda: {t.health for t in admin.upstream_health("hostctl-api")} == {
                "HEALTHY"}, 30, "Kong to see both instances healthy")
    finally:
        done.set()
        worker.join(timeout=10)
    return failures
