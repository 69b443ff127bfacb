"""The continuous health probe on sandbox hosts: a service made unhealthy after the deploy
is restarted by the probe and counted; healthy ones and one stopped on purpose are never
touched."""

from __future__ import annotations

import json
import time

import pytest

from hostctl import layout as L
from tests.rigs.deploy_rig import Site, example_site, wait_for

pytestmark = pytest.mark.sandbox
__all__ = ["example_site"]

API1, API2 = "hostctl-triage-api-1.service", "hostctl-triage-api-2.service"
WORKER = "hostctl-triage-worker-1.service"
WEB = "hostctl-reports-web-1.service"


def state(s: Site, host: str, unit: str) -> dict[str, str]:
    text = s.ssh(host, f"cat {L.HEALTH_DIR}/{unit}.state 2>/dev/null || true")
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def health_log(s: Site, host: str) -> list[dict[str, object]]:
    text = s.ssh(host, f"cat {L.HEALTH_LOG} 2>/dev/null || true")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def status(s: Site) -> dict[str, object]:
    res = s.hostctl("status", "-i", str(s.inventory), "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads(res.stdout)  # type: ignore[no-any-return]


def test_probe_restarts_an_unhealthy_service_and_leaves_the_others(example_site: Site) -> None:
    s = example_site
    res = s.deploy()
    assert res.returncode == 0, res.stdout + res.stderr
    for host in ("app-1", "edge-1"):
        assert s.ssh(host, "systemctl is-enabled hostctl-probe.timer; "
                           "systemctl is-active hostctl-probe.timer").split() == [
            "enabled", "active"]
        assert s.ssh(host, "stat -c %a /usr/local/lib/hostctl/probe.sh").strip() == "755"
    assert "probe" not in s.ssh("gpu-1", "ls /etc/systemd/system/")  # no service there

    # The probe has seen every service healthy before anything is broken.
    assert wait_for(lambda: all(state(s, "app-1", u).get("health") == "healthy"
                                for u in (API1, API2, WORKER))
                    and state(s, "edge-1", WEB).get("health") == "healthy", timeout=60)
    before = {h: s.active_since(h) for h in ("app-1", "edge-1")}
    s.ssh("app-1", f"systemctl stop {WORKER}")  # stopped on purpose: the probe leaves it
    broken_at = time.time()
    s.ssh("app-1", "docker exec hostctl-triage-api-1 rm /www/health")

    assert wait_for(lambda: any(e["unit"] == API1 for e in health_log(s, "app-1")),
                    timeout=90, every=1), state(s, "app-1", API1)
    took = time.time() - broken_at
    [entry] = health_log(s, "app-1")
    assert entry["result"] == "restarted" and entry["container"] == "hostctl-triage-api-1"
    assert entry["failures"] == 3 and entry["restarts"] == 1
    assert entry["reason"] == "http check of port 8080 path /health failed"
    # The restarted container serves /health again: healthy, counted once.
    assert wait_for(lambda: s.active_since("app-1")[API1] not in ("", before["app-1"][API1])
                    and state(s, "app-1", API1).get("health") == "healthy", timeout=60)
    st1 = state(s, "app-1", API1)
    assert st1["restarts"] == "1" and st1["last_reason"] == entry["reason"]

    after = {h: s.active_since(h) for h in ("app-1", "edge-1")}
    assert after["app-1"][API2] == before["app-1"][API2]
    assert after["edge-1"][WEB] == before["edge-1"][WEB]
    assert s.ssh("app-1", f"systemctl is-active {WORKER} || true").strip() == "inactive"
    assert state(s, "app-1", WORKER)["health"] == "inactive"
    assert health_log(s, "edge-1") == []
    assert [e["unit"] for e in health_log(s, "app-1")] == [API1]
    assert "restart of hostctl-triage-api-1.service" in s.ssh(
        "app-1", "journalctl -t hostctl-probe --no-pager -o cat")

    out = status(s)
    rows = {(r["service"], r["instance"]): r for r in out["hosts"]["app-1"]["rows"]}
    api1 = rows[("triage-api", "1")]["probe"]
    assert api1["restarts"] == 1 and api1["last_failure"] and api1["last_restart"]
    assert api1["last_reason"] == entry["reason"]
    assert rows[("triage-api", "2")]["probe"]["restarts"] == 0
    assert rows[("triage-api", "2")]["probe"]["last_failure"] is None
    text = s.hostctl("status", "-i", str(s.inventory)).stdout
    assert "1 by health probe" in text
    assert ("! triage-api/1: last health failure" in text
            and "http check of port 8080 path /health failed; restarted 1x" in text), text
    assert "triage-api/2: last health failure" not in text

    # Figures: how long one probe run takes on each host (systemd's own timestamps).
    for host in ("app-1", "edge-1"):
        took_ms: list[float] = []

        def last_run(host: str = host, took_ms: list[float] = took_ms) -> bool:
            show = s.ssh(host, "systemctl show hostctl-probe@tick.service -p "
                               "ExecMainStartTimestampMonotonic -p ExecMainExitTimestampMonotonic")
            v = dict(line.split("=", 1) for line in show.split())
            start, end = (int(v["ExecMainStartTimestampMonotonic"]),
                          int(v["ExecMainExitTimestampMonotonic"]))
            if end >= start:  # else a run is going on: ask again
                took_ms.append((end - start) / 1000)
            return bool(took_ms)
        assert wait_for(last_run, timeout=30, every=0.5)
        print(f"probe run on {host}: {took_ms[0]:.0f} ms")
    print(f"unhealthy -> restarted by the probe: {took:.1f} s")
    s.ssh("app-1", f"systemctl start {WORKER}")


def test_inside_its_start_period_a_service_that_answers_is_healthy(example_site: Site) -> None:
    """Docker's semantics: a success inside the start period counts. triage-api #2 gets a
    10-minute start period in the probe's config, is restarted, and is recorded healthy
    within seconds; `status` (Docker has no check of it, the deploy's record is of the run
    before) says so from the probe's record."""
    s = example_site
    res = s.deploy()
    assert res.returncode == 0, res.stdout + res.stderr
    conf = "/etc/hostctl/probe/services.conf"
    s.ssh("app-1", f"cp {conf} /root/probe-services.conf.saved && "
                   f"awk '$1 == \"{API2}\" {{ $8 = 600 }} 1' /root/probe-services.conf.saved "
                   f"> {conf}")
    try:
        assert f"{API2} " in s.ssh("app-1", f"grep ' 600 ' {conf}")
        # The time after the restart returned (the unit is active by then): a probe check
        # of the second the restart began may predate the new run, which status rightly
        # does not count for it.
        restarted = int(s.ssh("app-1", f"systemctl restart {API2}; date +%s").split()[-1])

        def checked_healthy() -> bool:
            st = state(s, "app-1", API2)
            return st.get("health") == "healthy" and int(st.get("last_check", 0)) >= restarted
        assert wait_for(checked_healthy, timeout=30, every=1), state(s, "app-1", API2)
        out = status(s)
        rows = {(r["service"], r["instance"]): r for r in out["hosts"]["app-1"]["rows"]}
        assert (rows[("triage-api", "2")]["health"], rows[("triage-api", "2")]["ok"]) == \
            ("healthy", True)
    finally:
        s.ssh("app-1", f"mv -f /root/probe-services.conf.saved {conf}")
