"""status, logs, exec, restart/stop/start end to end: the real commands against the worked
example deployed into sandbox hosts (real sshd, systemd, Docker, journald).

The tests run in order against one site: deploy first, then read (status, logs), then act
(exec, restart, stop/start). Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.rigs.deploy_rig import Site, example_site, wait_for

pytestmark = pytest.mark.sandbox
__all__ = ["example_site"]

HOSTCTL = [sys.executable, "-m", "hostctl"]


def hostctl(s: Site, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return s.hostctl(*args, timeout=timeout)


def status(s: Site, *extra: str) -> dict[str, Any]:
    res = hostctl(s, "status", "-i", str(s.inventory), "--json", *extra)
    assert res.returncode in (0, 1), res.stdout + res.stderr
    out: dict[str, Any] = json.loads(res.stdout)
    return out


def rows(out: dict[str, Any], host: str) -> dict[str, dict[str, Any]]:
    return {f"{r['service']}/{r['instance']}": r for r in out["hosts"][host]["rows"]}


def test_deploy_the_example(example_site: Site) -> None:
    res = example_site.deploy()
    assert res.returncode == 0, res.stdout + res.stderr


# -- status ------------------------------------------------------------------------------


def test_status_shows_every_instance_healthy_and_no_drift(example_site: Site) -> None:
    s = example_site

    def all_healthy() -> bool:
        out = status(s)
        return all(r["health"] == "healthy" for h in ("app-1", "edge-1")
                   for r in out["hosts"][h]["rows"] if r["container"])

    # The demo image has a Docker HEALTHCHECK (every 2s); right after a deploy it may
    # still say "starting".
    assert wait_for(all_healthy, timeout=60, every=2)
    out = status(s)
    assert (out["ok"], out["reachable"], out["drift"]) == (True, True, False)
    app1 = out["hosts"]["app-1"]
    assert app1["release"] and app1["docker"]["ok"]
    assert [(r["service"], r["instance"], r["state"], r["health"], r["image"])
            for r in app1["rows"]] == [
        ("nightly-validation", "timer", "active/waiting", "-", None),
        ("triage-api", "1", "active/running", "healthy", "hostctl-demo-app:1.0"),
        ("triage-api", "2", "active/running", "healthy", "hostctl-demo-app:1.0"),
        ("triage-worker", "1", "active/running", "healthy", "hostctl-demo-app:1.0"),
    ]
    assert all(r["spec_hash"] == r["want_spec_hash"] for r in app1["rows"])
    assert all(r["since"] and abs(time.time() - r["since"]) < 3600 for r in app1["rows"])
    assert [r["unit"] for r in out["hosts"]["edge-1"]["rows"]] == [
        "hostctl-reports-web-1.service"]
    assert out["hosts"]["gpu-1"]["rows"] == []  # a job template only: nothing runs

    res = hostctl(s, "status", "-i", str(s.inventory))
    assert res.returncode == 0, res.stdout + res.stderr
    text = res.stdout
    assert re.search(r"^app-1  release \d{8}T\d{6}Z-\w+$", text, re.M)
    assert re.search(r"^  triage-api +2 +active/running +healthy +hostctl-demo-app:1\.0 +"
                     r"[0-9a-f]{8} +\d{4}-\d\d-\d\d \d\d:\d\d \(\w+ ago\)$", text, re.M)
    assert "gpu-1  release" in text and "nothing from hostctl on this host" in text
    assert "*" not in text


def test_status_never_shows_secret_values(example_site: Site) -> None:
    s = example_site
    res = hostctl(s, "status", "-i", str(s.inventory), "--json")
    for secret in ("example-not-a-real-password", "example-token-0000"):
        assert secret not in res.stdout + res.stderr


def test_status_marks_drift(example_site: Site) -> None:
    s = example_site
    want_before = rows(status(s), "app-1")["triage-worker/1"]["want_spec_hash"]
    s.edit("specs/triage.yml", "args: [--queue, triage]", "args: [--queue, triage-v9]")
    stray = ("docker run -d --name hostctl-stray-1 --label io.hostctl.managed=true "
             "--label io.hostctl.workload=stray hostctl-demo-app:1.0 >/dev/null")
    s.ssh("edge-1", stray)
    try:
        out = status(s)
        assert out["drift"] and not out["ok"] and out["reachable"]
        worker = rows(out, "app-1")["triage-worker/1"]
        assert worker["spec_hash"] == want_before != worker["want_spec_hash"]
        assert worker["drift"] == [
            f"runs spec {want_before[:8]}, the specs say {worker['want_spec_hash'][:8]} "
            "(`hostctl deploy` updates it)"]
        edge = rows(out, "edge-1")
        assert edge["stray/?"]["state"] == "no unit"
        assert edge["stray/?"]["drift"][0].startswith("container without a unit")
        assert edge["reports-web/1"]["drift"] == []
        text = hostctl(s, "status", "-i", str(s.inventory)).stdout
        assert "  * triage-worker/1: runs spec" in text
        assert "  * stray/?: container without a unit" in text
    finally:
        s.edit("specs/triage.yml", "args: [--queue, triage-v9]", "args: [--queue, triage]")
        s.ssh("edge-1", "docker rm -f hostctl-stray-1 >/dev/null")
    assert not status(s)["drift"]


def test_status_names_an_unreachable_host_and_shows_the_others(example_site: Site,
                                                                 tmp_path: Path) -> None:
    s = example_site
    data = yaml.safe_load(s.inventory.read_text())
    data["hosts"]["gpu-1"]["ssh"] = {"host": "127.0.0.1", "port": 1}  # nothing listens there
    data["hosts"]["gpu-1"]["ssh"]["connect_timeout"] = "3s"
    broken = tmp_path / "site.yml"
    broken.write_text(yaml.safe_dump(data))
    res = hostctl(s, "status", "-i", str(broken), timeout=60)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "app-1  release" in res.stdout and "edge-1  release" in res.stdout
    gpu = [line for line in res.stdout.splitlines() if line.startswith("gpu-1")]
    assert len(gpu) == 1 and gpu[0].startswith("gpu-1 (127.0.0.1:1): "), res.stdout
    out = json.loads(hostctl(s, "status", "-i", str(broken), "--json", timeout=60).stdout)
    assert out["hosts"]["gpu-1"]["reachable"] is False and out["hosts"]["app-1"]["reachable"]


# -- logs --------------------------------------------------------------------------------


def test_logs_of_several_instances_are_prefixed(example_site: Site) -> None:
    s = example_site
    res = hostctl(s, "logs", "-i", str(s.inventory), "triage-api", "-n", "50")
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    for label in ("app-1/1", "app-1/2"):
        assert any(re.fullmatch(rf"{label} \| \S+Z demo-app listening on :8080 healthy=1", ln)
                   for ln in lines), res.stdout
    one = hostctl(s, "logs", "-i", str(s.inventory), "triage-worker", "-n", "50")
    assert one.returncode == 0, one.stdout + one.stderr
    assert any(re.fullmatch(r"\S+Z demo-app listening on :8080 healthy=1", ln)
               for ln in one.stdout.splitlines()), one.stdout
    assert "  --queue" in one.stdout  # the argv the app printed at start


def test_a_containers_output_is_journalled_once_as_its_units(example_site: Site) -> None:
    """The attached `docker run` client's output is the unit's journal; Docker writes no
    second copy of each line (its journald driver would, under docker.service)."""
    s = example_site
    unit = s.ssh("app-1", "journalctl -o cat --no-pager -u hostctl-triage-worker-1")
    assert "listening on :8080" in unit, unit
    docker_copy = s.ssh("app-1", "journalctl -o cat --no-pager "
                                 "CONTAINER_NAME=hostctl-triage-worker-1")
    assert "listening on" not in docker_copy, docker_copy


def test_logs_unknown_service(example_site: Site) -> None:
    s = example_site
    res = hostctl(s, "logs", "-i", str(s.inventory), "triage-apu")
    assert res.returncode == 1
    assert "no service 'triage-apu' in the specs; did you mean 'triage-api'?" in res.stderr


def test_logs_follow_prints_new_lines_until_ctrl_c(example_site: Site) -> None:
    s = example_site
    proc = subprocess.Popen([*HOSTCTL, "logs", "-i", str(s.inventory), "triage-worker", "-f",
                             "-n", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=s.root, env={**os.environ, "NO_COLOR": "1"})
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    try:
        first = lines.get(timeout=60)  # the last existing line: following has begun
        assert first
        s.ssh("app-1", "systemctl restart hostctl-triage-worker-1")
        seen: list[str] = []
        end = time.monotonic() + 60
        while time.monotonic() < end and not any("listening on" in ln for ln in seen):
            try:
                seen.append(lines.get(timeout=max(0.1, end - time.monotonic())))
            except queue.Empty:
                break
        assert any("listening on" in ln for ln in seen), seen
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


# -- exec --------------------------------------------------------------------------------


def test_exec_passes_output_and_exit_status(example_site: Site) -> None:
    s = example_site
    res = hostctl(s, "exec", "-i", str(s.inventory), "triage-api", "--instance", "2", "--",
                  "sh", "-c", 'echo "port $PORT"; echo oops >&2; exit 3')
    assert res.returncode == 3, res.stdout + res.stderr
    assert res.stdout == "port 8080\n" and "oops" in res.stderr


def test_exec_keeps_every_argument_whole(example_site: Site) -> None:
    s = example_site
    hostile = ["a b", "$(id)", "it's", "`x`;y", "--host", ""]
    res = hostctl(s, "exec", "-i", str(s.inventory), "triage-worker", "--", "sh", "-c",
                  'printf "%s|" "$@"', "sh", *hostile)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout == "|".join(hostile) + "|"


def test_exec_needs_one_instance(example_site: Site) -> None:
    s = example_site
    res = hostctl(s, "exec", "-i", str(s.inventory), "triage-api", "--", "true")
    assert res.returncode == 1
    assert ("triage-api has 2 instances (app-1/1, app-1/2); choose one with --instance N"
            in res.stderr)


# -- restart / stop / start ----------------------------------------------------------------


def test_restart_one_instance_leaves_the_other_alone(example_site: Site) -> None:
    s = example_site
    before = s.active_since("app-1")
    time.sleep(1.1)  # ActiveEnterTimestamp has one-second resolution
    res = hostctl(s, "restart", "-i", str(s.inventory), "triage-api", "--instance", "1")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "app-1/1  hostctl-triage-api-1.service  ok  active/running" in res.stdout
    assert res.stdout.rstrip().endswith("triage-api: restarted 1/1 unit(s)")
    after = s.active_since("app-1")
    assert {u for u in after if after[u] != before.get(u)} == {"hostctl-triage-api-1.service"}
    record = s.audit("app-1")[-1]
    assert record["result"] == "restart" and record["failed"] == []
    assert record["units"] == {"hostctl-triage-api-1.service": "active/running"}
    assert str(record["command"]).startswith("hostctl restart")


def test_restart_leaves_a_host_that_a_deploy_has_locked(example_site: Site) -> None:
    s = example_site
    holder = json.dumps({"who": "bob@ci", "command": "hostctl deploy -i site.yml",
                         "started": int(time.time())})
    s.ssh("app-1", f"mkdir /var/lib/hostctl/lock && echo '{holder}' > "
                   "/var/lib/hostctl/lock/holder.json")
    before = s.active_since("app-1")
    time.sleep(1.1)  # ActiveEnterTimestamp has one-second resolution
    try:
        res = hostctl(s, "restart", "-i", str(s.inventory), "triage-api")
    finally:
        held = s.ssh("app-1", "cat /var/lib/hostctl/lock/holder.json").strip()
        s.ssh("app-1", "rm -rf /var/lib/hostctl/lock")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "nothing restarted: locked by bob@ci" in res.stdout + res.stderr
    assert held == holder  # bob's lock was left as it was
    assert s.active_since("app-1") == before
    # unlocked: the restart goes through, and leaves no lock behind
    res = hostctl(s, "restart", "-i", str(s.inventory), "triage-api", "--instance", "2")
    assert res.returncode == 0, res.stdout + res.stderr
    assert s.ssh("app-1", "ls /var/lib/hostctl/lock 2>&1 || true").strip().endswith(
        "No such file or directory")


def test_start_refuses_a_service_handed_to_the_cluster(example_site: Site) -> None:
    s = example_site
    s.ssh("edge-1", "mkdir -p /var/lib/hostctl/cluster && echo '{\"time\": "
                    "\"2026-11-22T09:00:00Z\", \"who\": \"alice@laptop\"}' > "
                    "/var/lib/hostctl/cluster/reports-web")
    try:
        res = hostctl(s, "restart", "-i", str(s.inventory), "reports-web")
    finally:
        s.ssh("edge-1", "rm -rf /var/lib/hostctl/cluster")
    assert res.returncode == 1, res.stdout + res.stderr
    assert ("edge-1: nothing restarted: reports-web lives in the cluster since "
            "2026-11-22T09:00:00Z (handed off by alice@laptop); `hostctl k8s handoff --back "
            "reports-web` brings it back to the hosts") in res.stdout + res.stderr
    assert s.audit("edge-1")[-1]["result"] != "restart"


def test_stop_then_start(example_site: Site) -> None:
    s = example_site
    res = hostctl(s, "stop", "-i", str(s.inventory), "reports-web", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    unit = json.loads(res.stdout)["hosts"]["edge-1"]["units"][0]
    assert unit["ok"] and unit["state"] in ("inactive/dead", "failed/failed")
    assert s.ssh("edge-1", "docker ps -q --filter name=hostctl-reports-web-1").strip() == ""
    assert s.http("edge-1", 18090, "/health", timeout=2)[0] != 200
    assert rows(status(s), "edge-1")["reports-web/1"]["state"] in (
        "inactive/dead", "failed/failed")

    res = hostctl(s, "start", "-i", str(s.inventory), "reports-web")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "edge-1/1  hostctl-reports-web-1.service  ok  active/running" in res.stdout
    assert wait_for(lambda: s.http("edge-1", 18090, "/health", timeout=2) == (200, "ok\n"),
                    timeout=30)
    assert [r["result"] for r in s.audit("edge-1")[-2:]] == ["stop", "start"]


def test_unknown_service_and_host_are_refused_before_any_connection(example_site: Site) -> None:
    s = example_site
    res = hostctl(s, "restart", "-i", str(s.inventory), "triage-wrker")
    assert res.returncode == 1 and "did you mean 'triage-worker'?" in res.stderr
    res = hostctl(s, "stop", "-i", str(s.inventory), "triage-api", "--host", "edge-1")
    assert res.returncode == 1
    assert "triage-api does not run on edge-1; it runs on app-1" in res.stderr
