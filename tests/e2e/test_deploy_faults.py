"""hostctl deploy under faults and bad input, end to end on sandbox hosts.

Hosts are broken for real: a container stopped mid-run or paused, sshd sessions killed
during apply, Docker stopped, a wrong key, a lock left by another run, a missing image.
After each test the hosts are healed (running, Docker up, no lock), the specs restored and
the site deployed back to the baseline, so tests do not depend on each other's leftovers;
the audit test at the end reads the history the others left on the hosts.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from hostctl import layout as L
from hostctl.sandbox.models import SandboxHost
from hostctl.sandbox.ssh_key import ensure_keypair
from tests.rigs.deploy_rig import Site, example_site, wait_for
from tests.rigs.fault_tools import (
    SECRETS,
    Background,
    Hosts,
    all_states,
    controller_who,
    host_state,
    inventory_variant,
    leftovers,
    managed_files,
    mismatches_with_render,
    render,
    secret_values,
    timed,
    without_gateway,
    write_lock,
)

pytestmark = pytest.mark.sandbox
__all__ = ["example_site"]

CONNECT_TIMEOUT = 10.0  # the sandbox inventory's ssh.connect_timeout
MODULE_START = int(time.time())


@pytest.fixture(scope="module")
def site(example_site: Site) -> Site:
    without_gateway(example_site.root / "site.yml")
    without_gateway(example_site.inventory)
    res = example_site.deploy()
    assert res.returncode == 0, res.stdout + res.stderr
    return example_site


@pytest.fixture(scope="module")
def hosts(site: Site, sandbox_engine: docker.DockerClient, sandbox_state_dir: Path,
          sandbox_hosts: list[SandboxHost]) -> Hosts:
    return Hosts(site, sandbox_engine, sandbox_state_dir, sandbox_hosts)


@pytest.fixture(autouse=True)
def baseline(site: Site, hosts: Hosts) -> Iterator[None]:
    """After each test: hosts healed, specs as they were, the site deployed to match them."""
    specs = {p: p.read_text() for p in (site.root / "specs").glob("*.yml")}
    yield
    hosts.heal()
    for p in (site.root / "specs").glob("*.yml"):
        if p not in specs:
            p.unlink()
    for p, text in specs.items():
        p.write_text(text)
    last: list[subprocess.CompletedProcess[str]] = []

    def converged() -> bool:
        last.append(site.deploy("--force-unlock", "--lock-ttl", "0s"))
        return last[-1].returncode == 0

    assert wait_for(converged, timeout=90, every=1), last[-1].stdout + last[-1].stderr


# -- spec edits shared by the tests -------------------------------------------------------


def change_app_1(s: Site) -> None:
    """A change on app-1: both triage-api instances restart."""
    s.edit("specs/triage.yml", "LOG_LEVEL: info", "LOG_LEVEL: debug")


def change_edge_1(s: Site) -> None:
    """A change on edge-1: reports-web restarts."""
    s.edit("specs/reports.yml", "  PORT: 8080", "  PORT: 8080\n  GREETING: hello")


def change_gpu_1(s: Site) -> None:
    """A change on gpu-1: the training job's template unit is rewritten (nothing restarts)."""
    s.edit("specs/jobs.yml", "sleep 0.2; done; echo done", "sleep 0.3; done; echo done")


def add_slow_service(s: Site, hosts: list[str], delay: int = 6) -> None:
    """A service that answers its health check only `delay` seconds after it starts: a
    window in which a deploy is waiting for health on those hosts."""
    (s.root / "specs/slow.yml").write_text(
        "kind: service\nname: slow\nproject: triage\nimage: hostctl-demo-app:1.0\n"
        f"command: [sh, -c, 'trap \"exit 0\" TERM; sleep {delay} & wait; "
        "exec sh /entrypoint.sh']\n"
        "env: {PORT: 8080}\nports: {http: 8080}\n"
        f"placement: {{hosts: [{', '.join(hosts)}]}}\n"
        "health: {http: {port: http, path: /health}, interval: 1s, timeout: 1s, retries: 3,"
        " start_period: 30s}\n")


def statuses(res: subprocess.CompletedProcess[str] | str) -> dict[str, str]:
    out = json.loads(res if isinstance(res, str) else res.stdout)
    return {h: v["status"] for h, v in out["hosts"].items()}


def messages(res: subprocess.CompletedProcess[str] | str) -> dict[str, str]:
    text = res if isinstance(res, str) else res.stdout
    return {h: v["message"] for h, v in json.loads(text)["hosts"].items()}


def assert_converged(s: Site) -> None:
    """Every managed file on every host is exactly what `hostctl render` makes; no temp
    file of an interrupted write is left; every service unit is active."""
    out = s.root.parent / "rendered"
    render(s, out)
    for h in s.hosts:
        assert leftovers(s, h) == [], h
        assert mismatches_with_render(s, h, out) == [], h
        units = s.ssh(h, "systemctl list-units --all --plain --no-legend 'hostctl-*.service' "
                         "| grep -v '@' ; true")
        for line in units.splitlines():
            _unit, load, active, *_ = line.split()
            if load != "not-found":  # removed units: test_a_stopped_service_is_not_failed
                assert active == "active", f"{h}: {line}"


def assert_whole_files(s: Site, host: str, before: dict[str, tuple[str, bytes]]) -> None:
    """Every managed file on the host is either its old version or its new rendered one,
    whole: nothing half-written, whatever moment the run was cut at."""
    out = s.root.parent / "rendered-new"
    render(s, out)
    secrets = secret_values(s)
    now = managed_files(s, host)
    assert leftovers(s, host) == []
    for path, (mode, content) in now.items():
        new = out / host / path.lstrip("/")
        expected_new = new.read_bytes() if new.is_file() else None
        if expected_new is not None and path.endswith(".env"):
            for name, value in secrets.items():
                expected_new = expected_new.replace(f"{name}=<secret {name}>".encode(),
                                                    f"{name}={value}".encode())
        old = before.get(path, ("", None))[1]
        assert content in (old, expected_new), f"{host}: {path} is neither old nor new"
        want_mode = "600" if path.endswith(".env") else (
            f"{new.stat().st_mode & 0o777:o}" if new.is_file() else "644")
        assert mode == want_mode, f"{host}: {path} {mode}"


# -- 1. unreachable host ------------------------------------------------------------------


def test_unreachable_host_is_named_the_others_deploy_and_fail_fast_changes_nothing(
        site: Site, hosts: Hosts) -> None:
    s = site
    change_app_1(s)
    change_edge_1(s)
    before = all_states(s)
    hosts.stop("gpu-1")

    res, took = timed(lambda: s.deploy("--fail-fast"))
    assert res.returncode != 0, res.stdout + res.stderr
    assert took < CONNECT_TIMEOUT, took
    assert "--fail-fast: nothing was changed" in res.stderr, res.stderr
    assert "gpu-1 (127.0.0.1:" in res.stderr and "connection refused" in res.stderr
    for h in ("edge-1", "app-1"):
        assert host_state(s, h) == before[h], h

    res, took = timed(lambda: s.deploy("--json"))
    assert res.returncode == 1, res.stdout + res.stderr
    assert statuses(res) == {"edge-1": "deployed", "app-1": "deployed", "gpu-1": "unreachable"}
    msg = messages(res)["gpu-1"]
    assert msg.startswith("gpu-1 (127.0.0.1:") and "connection refused" in msg, msg
    text = s.deploy()  # the text summary names every host's outcome
    assert text.returncode == 1
    for line in ("edge-1  unchanged", "app-1   unchanged", "gpu-1   unreachable  "):
        assert line in text.stdout, text.stdout
    assert "2/3 host(s) ok; failed: gpu-1" in text.stdout

    hosts.start("gpu-1")
    res = s.deploy("--json")
    assert res.returncode == 0, res.stdout + res.stderr
    assert statuses(res) == {"edge-1": "unchanged", "app-1": "unchanged",
                             "gpu-1": "unchanged"}, res.stdout
    assert_converged(s)


def test_a_hung_host_is_given_up_within_the_connect_timeout(
        site: Site, hosts: Hosts, tmp_path: Path) -> None:
    s = site
    inventory = inventory_variant(s, tmp_path / "short-timeout.yml", connect_timeout="3s")
    hosts.container("edge-1").pause()
    try:
        res, took = timed(lambda: s.hostctl("deploy", "-i", str(inventory), "--yes", "--json"))
    finally:
        hosts.container("edge-1").unpause()
    assert res.returncode == 1, res.stdout + res.stderr
    assert statuses(res) == {"edge-1": "unreachable", "app-1": "unchanged", "gpu-1": "unchanged"}
    msg = messages(res)["edge-1"]
    assert msg.startswith("edge-1 (127.0.0.1:") and "within 3s" in msg, msg
    assert took < 3 + 6, took


# -- 2. wrong key -------------------------------------------------------------------------


def test_a_key_the_hosts_refuse_is_named_and_nothing_changes(
        site: Site, tmp_path: Path) -> None:
    s = site
    change_app_1(s)
    other_key = ensure_keypair(tmp_path / "other")
    inventory = inventory_variant(s, tmp_path / "wrong-key.yml", key=str(other_key))
    before = all_states(s)
    res, took = timed(lambda: s.hostctl("deploy", "-i", str(inventory), "--yes", "--json"))
    assert res.returncode == 1, res.stdout + res.stderr
    assert took < CONNECT_TIMEOUT, took
    msgs = messages(res)
    for h in s.hosts:
        assert msgs[h].startswith(f"{h} (127.0.0.1:"), msgs[h]
        assert f"server refused key {other_key} for user 'root'" in msgs[h], msgs[h]
    assert all_states(s) == before


# -- 3. a host stopped mid-run ------------------------------------------------------------


def test_a_host_stopped_while_health_waiting_fails_alone_and_the_next_deploy_converges(
        site: Site, hosts: Hosts) -> None:
    s = site
    add_slow_service(s, ["edge-1", "app-1", "gpu-1"])
    run = Background.start(s, "--json")
    run.wait_for_line(r"\] gpu-1: health", timeout=60)
    hosts.stop("gpu-1")
    rc, output, took = run.finish(timeout=120)
    assert rc == 1, output
    assert took < 90, took
    assert statuses(run.stdout) == {"edge-1": "deployed", "app-1": "deployed",
                                    "gpu-1": "failed"}, output
    msg = messages(run.stdout)["gpu-1"]
    assert msg.startswith("gpu-1 (127.0.0.1:") and "connection lost" in msg, msg
    # Its new release went live and no gate saw it healthy: the run says which one.
    unverified = re.search(r"; release (\S+) is live and unverified \(its health gate did not "
                           r"finish\): the next deploy checks its health again", msg)
    assert unverified, msg
    release = unverified[1]

    hosts.start("gpu-1")
    assert leftovers(s, "gpu-1") == []
    args: tuple[str, ...] = ()
    if "L held" in host_state(s, "gpu-1")["lines"]:  # type: ignore[operator]
        # the dead run could not unlock: refused, naming that run, until broken
        locked = s.deploy("--json")
        assert locked.returncode == 1
        assert statuses(locked)["gpu-1"] == "locked", locked.stdout
        assert "hostctl deploy -i" in messages(locked)["gpu-1"]
        args = ("--force-unlock", "--lock-ttl", "0s")
    res = s.deploy("--json", *args)
    assert res.returncode == 0, res.stdout + res.stderr
    # Nothing to change there, but not "unchanged": the next deploy checked it again.
    assert statuses(res)["gpu-1"] == "deployed", res.stdout
    assert messages(res)["gpu-1"] == (f"release {release} verified (its deploy could not "
                                      "finish its health gate)")
    assert s.ssh("gpu-1", f"test -e {L.RELEASES_DIR}/{release}/status && echo marked "
                          "|| echo verified").strip() == "verified"
    assert_converged(s)
    assert s.ssh("gpu-1", "systemctl is-active hostctl-slow-1.service").strip() == "active"
    assert statuses(s.deploy("--json"))["gpu-1"] == "unchanged"


# -- 3b. a slow host ----------------------------------------------------------------------


def test_a_host_whose_health_gate_outlasts_its_deadline_is_rolled_back(
        site: Site, hosts: Hosts) -> None:
    """app-1's http checks hang (its curl sleeps when a deploy runs it for a check; the
    facts' questions to Docker's socket still get their answer): its gate never answers,
    and past its deadline (derived from the spec: 23 s budget + 30 s) the host is rolled
    back like after any failed gate; the others deploy."""
    s = site
    before = s.ssh("app-1", f"readlink {L.CURRENT_LINK}").strip().rsplit("/", 1)[-1]
    s.ssh("app-1", "mv /usr/bin/curl /usr/bin/curl.real && printf '#!/bin/sh\\n"
                   "case \"$*\" in *--unix-socket*) exec /usr/bin/curl.real \"$@\";; esac\\n"
                   "[ -n \"${HOSTCTL_RUN_ID:-}\" ] && exec sleep 900\\n"
                   "exec /usr/bin/curl.real \"$@\"\\n' > /usr/bin/curl && chmod 755 /usr/bin/curl")
    (s.root / "specs/sluggish.yml").write_text(
        "kind: service\nname: sluggish\nproject: triage\nimage: hostctl-demo-app:1.0\n"
        "env: {PORT: 8080}\nports: {http: 8080}\nplacement: {hosts: [app-1, edge-1]}\n"
        "health: {http: {port: http, path: /health}, interval: 1s, timeout: 1s, retries: 3,"
        " start_period: 10s}\n")
    try:
        res = s.deploy("--json")
        sleeping = s.ssh("app-1", "ps -eo args | grep -c '^sleep 900$'; true").strip()
    finally:
        s.ssh("app-1", "mv -f /usr/bin/curl.real /usr/bin/curl")
    assert res.returncode == 1, res.stdout + res.stderr
    assert statuses(res) == {"edge-1": "deployed", "app-1": "rolled-back",
                             "gpu-1": "unchanged"}, res.stdout
    assert messages(res)["app-1"] == (
        "unhealthy after the change: hostctl-sluggish-1.service; rolled back to release "
        f"{before}; the previous version is healthy")
    # app-1 is back on its release, the new one marked as failed; nothing of the gate runs on
    assert s.ssh("app-1", f"readlink {L.CURRENT_LINK}").strip().endswith(f"/{before}")
    new = s.ssh("app-1", f"ls -1 {L.RELEASES_DIR} | tail -n 1").strip()
    assert new > before
    assert s.ssh("app-1", f"cat {L.RELEASES_DIR}/{new}/status").strip() == "rolled-back"
    assert s.ssh("app-1", "systemctl is-active hostctl-sluggish-1.service; true").strip() \
        == "inactive"
    assert sleeping == "0"


# -- 4. SSH cut mid-apply -----------------------------------------------------------------


def add_stubborn_service(s: Site, revision: int) -> None:
    """A service that ignores SIGTERM: restarting it takes its whole stop_timeout (5s), so
    an apply that restarts it is in the middle of `systemctl restart` for seconds."""
    (s.root / "specs/stubborn.yml").write_text(
        "kind: service\nname: stubborn\nproject: triage\nimage: hostctl-demo-app:1.0\n"
        "command: [sh, -c, 'trap \"\" TERM; sh /entrypoint.sh & wait']\n"
        f"env: {{PORT: 8080, REVISION: {revision}}}\nports: {{http: 8080}}\n"
        "stop_timeout: 5s\nplacement: {hosts: [app-1]}\n"
        "health: {http: {port: http, path: /health}, interval: 1s, timeout: 1s}\n")


def test_ssh_cut_mid_apply_fails_that_host_leaves_whole_files_and_the_next_deploy_converges(
        site: Site, hosts: Hosts) -> None:
    s = site
    add_stubborn_service(s, 1)
    res = s.deploy()
    assert res.returncode == 0, res.stdout + res.stderr
    before = managed_files(s, "app-1")

    add_stubborn_service(s, 2)
    change_app_1(s)
    run = Background.start(s, "--json")
    run.wait_for_line(r"\] app-1: apply", timeout=60)
    time.sleep(1.0)  # inside the stubborn unit's restart
    code, out = hosts.exec("app-1", "pkill", "-f", "sshd: root@notty")
    assert code == 0, out
    rc, output, _ = run.finish(timeout=90)
    assert rc == 1, output
    status = statuses(run.stdout)
    assert status["app-1"] == "failed", output
    msg = messages(run.stdout)["app-1"]
    assert msg.startswith("app-1 (127.0.0.1:") and "connection lost" in msg, msg
    CUT["orphans"] = s.ssh("app-1", "grep -l HOSTCTL_RUN_ID= /proc/[0-9]*/environ "
                                    "2>/dev/null; true").split()
    CUT["lock_held"] = "L held" in host_state(s, "app-1")["lines"]  # type: ignore[operator]
    CUT["audit"] = s.audit("app-1")[-1]

    # what the cut run started on the host may still be finishing: wait (bounded) for it
    def quiet() -> bool:
        return not s.ssh("app-1", "grep -l HOSTCTL_RUN_ID= /proc/[0-9]*/environ "
                                  "2>/dev/null; true").strip()

    assert wait_for(quiet, timeout=30)
    assert_whole_files(s, "app-1", before)

    res = s.deploy("--json")
    assert res.returncode == 0, res.stdout + res.stderr
    assert_converged(s)
    # the new revision runs: converged means the containers, not only the files
    env = s.ssh("app-1", "docker exec hostctl-stubborn-1 printenv REVISION; "
                         "docker exec hostctl-triage-api-1 printenv LOG_LEVEL")
    assert env.split() == ["2", "debug"]


CUT: dict[str, object] = {}  # what the cut run left, for the two tests below


def cut_run() -> dict[str, object]:
    if not CUT:
        pytest.skip("needs the SSH cut of the test above")
    return CUT


def test_a_cut_run_keeps_the_lock_while_its_apply_still_runs_on_the_host() -> None:
    cut = cut_run()
    # when the run ended, its apply had either finished on the host or still held the lock
    assert not cut["orphans"] or cut["lock_held"], \
        f"lock released while the cut apply still runs: {cut['orphans']}"


def test_a_cut_run_audit_record_says_how_long_it_ran() -> None:
    cut = cut_run()
    record = cut["audit"]
    assert isinstance(record, dict) and record["result"] == "failed"
    assert "connection lost" in str(record["message"])
    assert record["seconds"] >= 1.0, record  # the cut came 1 s into the apply


# -- 5. Docker not running ----------------------------------------------------------------


def test_docker_down_on_a_host_is_a_plan_error_naming_docker_and_the_others_deploy(
        site: Site, hosts: Hosts) -> None:
    s = site
    change_app_1(s)
    change_gpu_1(s)
    code, out = hosts.exec("gpu-1", "systemctl", "stop", "docker.socket", "docker.service")
    assert code == 0, out
    before = host_state(s, "gpu-1")

    plan = s.hostctl("plan", "-i", str(s.inventory))
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert "gpu-1: ERROR Docker is not running on the host (" in plan.stdout, plan.stdout

    res = s.deploy("--json")
    assert res.returncode == 1, res.stdout + res.stderr
    assert statuses(res) == {"edge-1": "unchanged", "app-1": "deployed", "gpu-1": "failed"}
    msg = messages(res)["gpu-1"]
    assert msg.startswith("gpu-1: Docker is not running on the host (") and \
        "systemctl start docker" in msg, msg
    assert host_state(s, "gpu-1") == before

    code, out = hosts.exec("gpu-1", "systemctl", "start", "docker.socket", "docker.service")
    assert code == 0, out
    res = s.deploy("--json")
    assert res.returncode == 0, res.stdout + res.stderr
    assert statuses(res)["gpu-1"] == "deployed"
    assert_converged(s)


# -- 6. locks -----------------------------------------------------------------------------


def test_a_second_concurrent_deploy_fails_at_once_naming_the_holder(site: Site) -> None:
    s = site
    add_slow_service(s, ["app-1"])
    first = Background.start(s, "--json")
    first.wait_for_line(r"\] app-1: health", timeout=60)

    second, took = timed(lambda: s.deploy("--json"))
    assert took < 5, took
    assert second.returncode == 1, second.stdout + second.stderr
    assert statuses(second)["app-1"] == "locked"
    msg = messages(second)["app-1"]
    assert msg.startswith(f"app-1: locked by {controller_who()} since 20"), msg
    assert f"running `hostctl deploy -i {s.inventory} --yes --json`" in msg, msg
    assert first.proc.poll() is None  # the first is still waiting for health

    rc, output, _ = first.finish(timeout=90)
    assert rc == 0, output
    assert statuses(first.stdout)["app-1"] == "deployed"


def test_a_stale_lock_is_refused_until_forced_and_a_young_one_is_never_broken(
        site: Site) -> None:
    s = site
    stale = write_lock(s, "edge-1", age=3600)
    res = s.deploy("--json")
    assert res.returncode == 1, res.stdout + res.stderr
    assert statuses(res) == {"edge-1": "locked", "app-1": "unchanged", "gpu-1": "unchanged"}
    msg = messages(res)["edge-1"]
    assert re.search(r"^edge-1: locked by ops@elsewhere since 20\S+ \S+ UTC \(36\d\ds ago\)",
                     msg), msg
    assert "running `hostctl deploy -i old.yml --yes`" in msg
    assert "rerun with --force-unlock to break it" in msg
    assert s.ssh("edge-1", "cat /var/lib/hostctl/lock/holder.json").strip() == stale

    res = s.deploy("--json", "--force-unlock", "--lock-ttl", "1m")
    assert res.returncode == 0, res.stdout + res.stderr
    assert statuses(res)["edge-1"] == "unchanged"
    assert "L held" not in host_state(s, "edge-1")["lines"]  # type: ignore[operator]

    young = write_lock(s, "edge-1", age=5)
    res = s.deploy("--json", "--force-unlock", "--lock-ttl", "1m")
    assert res.returncode == 1, res.stdout + res.stderr
    assert statuses(res)["edge-1"] == "locked"
    assert "--force-unlock can break the lock once it is older than 60s" in \
        messages(res)["edge-1"]
    assert s.ssh("edge-1", "cat /var/lib/hostctl/lock/holder.json").strip() == young


# -- 7. a missing image -------------------------------------------------------------------


def test_a_missing_image_is_a_plan_error_and_nothing_changes_anywhere(site: Site) -> None:
    s = site
    change_app_1(s)
    text = (s.root / "specs/triage.yml").read_text()
    head, sep, worker = text.partition("\n---\n")
    worker = worker.replace("image: hostctl-demo-app:1.0", "image: hostctl-demo-app:9.9")
    (s.root / "specs/triage.yml").write_text(head + sep + worker)
    before = all_states(s)

    plan = s.hostctl("plan", "-i", str(s.inventory))
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert "image hostctl-demo-app:9.9 (for triage-worker) is not on this machine" in \
        plan.stdout + plan.stderr

    res = s.deploy("--json")
    assert res.returncode == 1, res.stdout + res.stderr
    assert statuses(res) == {"edge-1": "unchanged", "app-1": "failed", "gpu-1": "unchanged"}
    msg = messages(res)["app-1"]
    assert msg.startswith("app-1: image hostctl-demo-app:9.9 (for triage-worker) is not on "
                          "this machine"), msg
    assert all_states(s) == before


# -- 8. targeting: --serial, --only, --hosts ----------------------------------------------


def test_serial_stops_after_a_failing_first_wave(site: Site) -> None:
    s = site
    # edge-1 (first in the inventory) gets a release that never turns healthy, fast
    s.edit("specs/reports.yml", "  PORT: 8080", "  PORT: 8080\n  APP_HEALTHY: 0")
    s.edit("specs/reports.yml", "interval: 2s", "interval: 1s")
    s.edit("specs/reports.yml", "retries: 3", "retries: 1")
    change_app_1(s)
    change_gpu_1(s)
    before = all_states(s)
    res = s.deploy("--json", "--serial", "1")
    assert res.returncode == 1, res.stdout + res.stderr
    assert statuses(res) == {"edge-1": "rolled-back", "app-1": "skipped", "gpu-1": "skipped"}
    for h in ("app-1", "gpu-1"):
        assert host_state(s, h) == before[h], h
    assert s.http("edge-1", 18090, "/version") == (200, "1.0\n")


def test_only_changes_that_service_and_hosts_only_that_host(site: Site) -> None:
    s = site
    change_app_1(s)  # triage-api
    s.edit("specs/triage.yml", "args: [--queue, triage]", "args: [--queue, triage-v2]")
    change_edge_1(s)
    worker_unit = "/etc/systemd/system/hostctl-triage-worker-1.service"
    before = all_states(s)
    worker_before = managed_files(s, "app-1")[worker_unit]

    res = s.deploy("--json", "--only", "triage-api")
    assert res.returncode == 0, res.stdout + res.stderr
    assert statuses(res) == {"edge-1": "unchanged", "app-1": "deployed", "gpu-1": "unchanged"}
    units = s.active_since("app-1")
    old_units = before["app-1"]["units"]
    assert isinstance(old_units, dict)
    assert {u for u in units if units[u] != old_units.get(u)} == {
        "hostctl-triage-api-1.service", "hostctl-triage-api-2.service"}
    assert managed_files(s, "app-1")[worker_unit] == worker_before
    assert host_state(s, "edge-1") == before["edge-1"]

    audit_lines = {h: len(s.audit(h)) for h in s.hosts}
    res = s.deploy("--json", "--hosts", "edge-1")
    assert res.returncode == 0, res.stdout + res.stderr
    assert statuses(res) == {"edge-1": "deployed"}
    assert host_state(s, "gpu-1") == before["gpu-1"]
    assert s.active_since("app-1") == units
    # the others were not even reached: no audit record
    assert {h: len(s.audit(h)) for h in ("app-1", "gpu-1")} == {
        h: audit_lines[h] for h in ("app-1", "gpu-1")}
    assert len(s.audit("edge-1")) == audit_lines["edge-1"] + 1


def test_a_stopped_service_is_not_left_failed(site: Site) -> None:
    """Removing a service (or stopping it) is a clean stop: its unit must not be left
    `failed`, which puts the whole host in systemd's `degraded` state."""
    s = site
    add_slow_service(s, ["app-1"], delay=1)
    res = s.deploy()
    assert res.returncode == 0, res.stdout + res.stderr
    (s.root / "specs/slow.yml").unlink()
    res = s.deploy()
    assert res.returncode == 0, res.stdout + res.stderr
    assert "stop hostctl-slow-1.service (left the specs)" in res.stdout
    failed = s.ssh("app-1", "systemctl list-units --failed --plain --no-legend 'hostctl-*'")
    assert failed.strip() == "", failed


# -- 9. audit log -------------------------------------------------------------------------


def on_a_terminal(s: Site, args: list[str], answer: str, timeout: float = 60) -> tuple[int, str]:
    """Run hostctl with a pseudo-terminal as stdin/stdout/stderr, answering its question."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "hostctl", *args], stdin=slave, stdout=slave,
                            stderr=slave, cwd=s.root, env={**os.environ, "NO_COLOR": "1"})
    os.close(slave)
    seen, answered = b"", False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the other side closed
                break
            if not chunk:
                break
            seen += chunk
            if not answered and b"Apply these changes?" in seen:
                os.write(master, answer.encode())
                answered = True
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(master)
    return rc, seen.decode(errors="replace")


AUDIT_KEYS = {"time", "who", "command", "run", "revision", "site", "host", "result",
              "message", "release", "plan", "failed", "seconds"}
PLAN_KEYS = {"write", "remove", "start", "restart", "stop", "images", "networks", "unchanged"}


def test_every_run_leaves_an_audit_line_on_each_host_it_reached_and_never_a_secret(
        site: Site) -> None:
    s = site
    counts = {h: len(s.audit(h)) for h in s.hosts}
    change_app_1(s)
    rc, screen = on_a_terminal(s, ["deploy", "-i", str(s.inventory)], "n\n")
    assert rc == 1, screen
    assert "Nothing was changed." in screen, screen
    after = {h: s.audit(h) for h in s.hosts}
    for h in s.hosts:
        assert len(after[h]) == counts[h] + 1, h
        assert after[h][-1]["result"] == "declined", after[h][-1]
    assert len({after[h][-1]["run"] for h in s.hosts}) == 1
    assert s.ssh("app-1", "systemctl is-active hostctl-triage-api-1").strip() == "active"

    res = s.deploy("--json")
    assert res.returncode == 0
    records = {h: s.audit(h) for h in s.hosts}
    assert records["app-1"][-1]["result"] == "deployed"
    plan = records["app-1"][-1]["plan"]
    assert isinstance(plan, dict) and plan["restart"] == 2, plan
    assert records["edge-1"][-1]["result"] == "unchanged"

    who = controller_who()
    results: set[str] = set()
    for h, lines in records.items():
        for r in lines:
            if r["time"] < MODULE_START:  # type: ignore[operator]
                continue
            results.add(str(r["result"]))
            assert set(r) >= AUDIT_KEYS, r
            assert r["who"] == who and r["host"] == h and r["site"] == "example"
            assert str(r["command"]).startswith("hostctl ")
            assert isinstance(r["seconds"], int | float) and r["seconds"] >= 0
            assert r["time"] <= time.time() + 5  # type: ignore[operator]
            if r["result"] in ("deployed", "unchanged", "rolled-back", "failed", "skipped"):
                assert isinstance(r["plan"], dict) and set(r["plan"]) == PLAN_KEYS, r
    # the tests before this one left every kind of ending in the log
    assert results >= {"deployed", "unchanged", "rolled-back", "failed", "declined",
                       "skipped"}, results
    for h in s.hosts:
        raw = s.ssh(h, "cat /var/lib/hostctl/audit.log")
        for secret in SECRETS:
            assert secret not in raw, h
        assert s.ssh(h, "stat -c %a /var/lib/hostctl").strip() == "700"


def test_a_declined_run_records_the_plan_it_declined(site: Site) -> None:
    s = site
    change_app_1(s)
    rc, screen = on_a_terminal(s, ["deploy", "-i", str(s.inventory)], "n\n")
    assert rc == 1, screen
    record = s.audit("app-1")[-1]
    assert record["result"] == "declined"
    plan = record["plan"]
    assert isinstance(plan, dict)
    assert plan.get("restart") == 2 and plan.get("write", 0) >= 1, record


def test_the_audit_records_the_git_revision_of_the_specs(site: Site) -> None:
    s = site
    git = ["git", "-C", str(s.root), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], check=True, timeout=30)
    subprocess.run([*git, "add", "-A"], check=True, timeout=30)
    subprocess.run([*git, "commit", "-qm", "specs"], check=True, timeout=30)
    head = subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], check=True, timeout=30,
                          capture_output=True, text=True).stdout.strip()
    try:
        res = s.deploy()
        assert res.returncode == 0, res.stdout + res.stderr
        assert s.audit("edge-1")[-1]["revision"] == head
        change_app_1(s)
        res = s.deploy()
        assert res.returncode == 0, res.stdout + res.stderr
        assert s.audit("app-1")[-1]["revision"] == head + "+dirty"
    finally:
        import shutil

        shutil.rmtree(s.root / ".git")
