"""A real Prometheus (Debian's package) on 127.0.0.1 with hostctl's rendered scrape config,
for the metrics tests here and on sandbox hosts; polling with a bound."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hostctl.observability.prometheus import rules_file, scrape_config, targets_file
from hostctl.spec import model as m
from hostctl.spec.sections.metrics import MetricsConfig

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
needs_prometheus = pytest.mark.skipif(
    not os.path.exists(PROMETHEUS),
    reason="no prometheus binary: apt-get install prometheus (scripts/ci-setup.sh does)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout: float, every: float = 0.5,
               what: str = "condition") -> Any:
    """Poll until `check()` is truthy (bounded); its value."""
    end = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < end:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what} not met within {timeout:g}s (last: {last!r})")


def terminate(proc: subprocess.Popen[bytes], grace: float) -> None:
    """Stop a server this test started: SIGTERM, then SIGKILL after `grace` seconds (one that
    has already exited is left as it is)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class PrometheusServer:
    """Prometheus on 127.0.0.1 with hostctl's rendered scrape config and given targets."""

    def __init__(self, workdir: Path, inv: m.Inventory, met: MetricsConfig,
                 targets: list[dict[str, Any]]):
        self.dir = workdir
        self.port = free_port()
        (workdir / "targets").mkdir(parents=True, exist_ok=True)
        (workdir / "rules").mkdir(parents=True, exist_ok=True)
        (workdir / "prometheus.yml").write_text(scrape_config(inv, met))
        (workdir / targets_file(inv.site)).write_text(json.dumps(targets))
        (workdir / rules_file(inv.site)).write_text("groups: []\n")
        self.log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={workdir / 'prometheus.yml'}",
             f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}",
             "--web.enable-lifecycle", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=workdir)
        wait_until(self._ready, 60, what="Prometheus ready")

    def _get(self, path: str) -> tuple[int, str]:
        try:
            with _DIRECT.open(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return int(r.status), r.read().decode()
        except (OSError, ValueError) as exc:
            if self.proc.poll() is not None:
                raise AssertionError("Prometheus exited: "
                                     + (self.dir / "prometheus.log").read_text()[-2000:]) from exc
            return 0, str(exc)

    def _ready(self) -> bool:
        return self._get("/-/ready")[0] == 200

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector `expr` evaluates to now."""
        status, body = self._get("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        assert status == 200, f"query {expr!r}: {status} {body}"
        data = json.loads(body)["data"]
        assert data["resultType"] == "vector", data
        return list(data["result"])

    def value(self, expr: str) -> float | None:
        """The single value of `expr`, or None when it has no series."""
        result = self.query(expr)
        assert len(result) <= 1, f"{expr} has {len(result)} series: {result}"
        return float(result[0]["value"][1]) if result else None

    def wait_value(self, expr: str, expected: float, timeout: float = 30,
                   tolerance: float = 1e-9) -> None:
        def check() -> bool:
            v = self.value(expr)
            return v is not None and abs(v - expected) <= tolerance
        wait_until(check, timeout, what=f"{expr} == {expected} (now {self.value(expr)})")

    def targets_health(self) -> dict[str, str]:
        status, body = self._get("/api/v1/targets")
        assert status == 200, body
        return {t["labels"].get("host", t["scrapeUrl"]): t["health"]
                for t in json.loads(body)["data"]["activeTargets"]}

    def stop(self) -> None:
        terminate(self.proc, grace=20)
        self.log.close()


# -- a fake host for the exporter on this machine --------------------------------------------
