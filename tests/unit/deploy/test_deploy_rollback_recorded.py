"""deploy's apply and automatic rollback decisions, through the recording runner: what each
host answers is canned, and the exact scripts deploy sends are asserted. The same paths on
real hosts are in tests/e2e/test_deploy_faults.py.

A host answers the four scripts of an apply by what they are: the apply (stage the release
and activate it), the health gate, the rollback, and the finish (audit and unlock).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hostctl.deploy.activate import activate
from hostctl.deploy.plan import Plan, plan_files, target_from_manifest
from hostctl.deploy.release import release_manifest
from hostctl.deploy.run import Deploy, DeployOptions
from hostctl.hosts import scripts as S
from hostctl.hosts.facts import HostFacts, LockState, UnitState
from hostctl.runner.base import Result
from hostctl.runner.recording import Call, RecordingRunner
from hostctl.spec.model import Site
from tests.rigs.site_factory import SERVICE, made_site

UNIT = "hostctl-api-1.service"
NOW = 1_700_000_000  # 2023-11-14 22:13:20 UTC: the new release's name below
RUN_ID = "abcdef12"
NEW_RELEASE = "20231114T221320Z-abcdef"
OLD_RELEASE = "20231101T000000Z-000000"


@pytest.fixture(autouse=True)
def _clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fixed clock, so the new release has a known name."""
    real = time.gmtime
    monkeypatch.setattr(time, "gmtime", lambda secs=None: real(NOW if secs is None else secs))


def _site(root: Path, image: str = "example.org/shop/api:1.0") -> Site:
    spec = SERVICE.replace("example.org/shop/api:1.0", image)
    return made_site(root, {"api.yml": spec}, environ={})


class Host:
    """app-1's answers: the apply prints `apply`, each health check the next of `health`,
    the rollback `rollback`; the finish prints nothing. Every `sh -s` script is kept in
    `scripts`."""

    def __init__(self, apply: str, health: list[str], rollback: str = "@@applied\n") -> None:
        self.answers = {"apply": apply, "rollback": rollback}
        self.health = list(health)
        self.scripts: list[tuple[str, str]] = []  # (kind, script)

    def __call__(self, call: Call) -> Result:
        script = (call.stdin or b"").decode()
        if "@@health" in script:
            kind = "health"
        elif "echo rolled-back >" in script:
            kind = "rollback"
        elif "echo '@@staged'" in script:
            kind = "apply"
        else:
            kind = "finish"
        self.scripts.append((kind, script))
        if kind == "health":
            return Result(0, self.health.pop(0), "")
        return Result(0, self.answers.get(kind, ""), "")


def _deploy(site: Site, facts: HostFacts, host: Host) -> tuple[Deploy, RecordingRunner, Plan]:
    """A deploy of app-1 after its facts were read and its lock taken: plan, then apply."""
    run = Deploy.for_site(site, DeployOptions(hosts=frozenset({"app-1"})))
    run.session.run_id = RUN_ID
    runner = RecordingRunner("app-1", [(["sh", "-s"], host)])
    run.session.runners = {"app-1": runner}
    run.targets = run._build_targets()
    run.facts = {"app-1": facts}
    run.session.locked = {"app-1"}
    plan = Plan({"app-1": run._plan_one(site.inventory.hosts["app-1"], facts, True)})
    run.apply(plan)
    return run, runner, plan


def _fresh_host() -> HostFacts:
    return HostFacts("app-1", docker_ok=True, lock=LockState(acquired=True), now=NOW)


def _host_on_old_release(root: Path) -> tuple[HostFacts, dict[str, Any]]:
    """app-1 running release OLD_RELEASE of the same service with image 0.9, as the deploy
    that made it left it: its manifest, the live files matching it, the unit running."""
    old_site = _site(root / "old", "example.org/shop/api:0.9")
    old_run = Deploy.for_site(old_site, DeployOptions(hosts=frozenset({"app-1"})))
    target = old_run._build_targets()["app-1"]
    empty = _fresh_host()
    old_run.targets = {"app-1": target}
    old_plan = old_run._plan_one(old_site.inventory.hosts["app-1"], empty, True)
    manifest = release_manifest(OLD_RELEASE, empty, target, old_plan, {}, site=old_site,
                                by="alice", run_id="00000000", revision=None)
    facts = HostFacts(
        "app-1", docker_ok=True, lock=LockState(acquired=True), now=NOW,
        files={f["path"]: f["sha256"] for f in manifest["files"]},
        units={UNIT: UnitState(UNIT, load="loaded", active="active", sub="running",
                               file_state="enabled")},
        images={"example.org/shop/api:0.9": "sha256:" + "0" * 64},
        current_release=OLD_RELEASE, manifest=manifest, releases=(OLD_RELEASE,))
    return facts, manifest


def _new_manifest(run: Deploy, plan: Plan, facts: HostFacts,
                  previous: dict[str, Any]) -> dict[str, Any]:
    return release_manifest(NEW_RELEASE, facts, run.targets["app-1"], plan.hosts["app-1"],
                            previous, site=run.site, by=run.session.who, run_id=RUN_ID,
                            revision=run.session.revision)


def _rollback_script(run: Deploy, plan: Plan, facts: HostFacts, previous: dict[str, Any],
                     back_to: str | None) -> str:
    """The script deploy must send to return app-1 to `previous` (HostTransaction.roll_back's rule,
    written out): the live files of the new release against the previous release's files,
    every unit the failed apply started taken as running, nothing newly enabled."""
    new = _new_manifest(run, plan, facts, previous)
    live = {f["path"]: f["sha256"] for f in new["files"]}
    running = {u.unit: UnitState(u.unit, active="active", file_state="enabled")
               for u in plan.hosts["app-1"].units if u.action in ("start", "restart")}
    back = replace(plan_files("app-1", target_from_manifest(previous), live, running),
                   enable=())
    docker = run.site.inventory.hosts["app-1"].docker
    return S.PRELUDE + S.mark_rolled_back(NEW_RELEASE) + activate(back, back_to, docker, {})


def _body(script: str) -> list[str]:
    """A rollback script's lines after the prelude and the apply's pid file."""
    return script.split(" > /var/lib/hostctl/lock/apply.pid\n", 1)[1].splitlines()


BACK_TO_OLD = [  # the rollback to OLD_RELEASE: its unit file back, current, restart
    f"echo rolled-back > /var/lib/hostctl/releases/{NEW_RELEASE}/status",
    f"step install put /var/lib/hostctl/releases/{OLD_RELEASE}/files/etc/systemd/system/{UNIT}"
    f" /etc/systemd/system/{UNIT} 0644",
    "step reload systemctl daemon-reload",
    f"ln -sfn releases/{OLD_RELEASE} /var/lib/hostctl/current.new"
    " && mv -T /var/lib/hostctl/current.new /var/lib/hostctl/current",
    f"unit_step restart {UNIT}",
    "echo '@@applied'",
]


def test_a_failed_health_gate_on_a_first_deploy_sends_the_rollback_to_before_hostctl(
        tmp_path: Path) -> None:
    facts = _fresh_host()
    host = Host(apply="@@staged\n@@applied\n", health=[f"@@health {UNIT} fail failed\n"])
    run, runner, plan = _deploy(_site(tmp_path), facts, host)
    outcome = run.outcomes["app-1"]
    assert (outcome.status, outcome.message) == (
        "rolled-back", f"unhealthy after the change: {UNIT}; rolled back to the state before "
                       "hostctl; the previous version is healthy")
    assert [kind for kind, _ in host.scripts] == ["apply", "health", "rollback", "finish"]
    assert host.scripts[2][1] == _rollback_script(run, plan, facts, {}, None)
    # Back to nothing: the new release is marked rolled back, the units it started stop,
    # its files go and no release is current.
    back = _body(host.scripts[2][1])
    assert f"echo rolled-back > /var/lib/hostctl/releases/{NEW_RELEASE}/status" in back
    assert f"step stop systemctl stop -- {UNIT} hostctl-probe.timer" in back
    assert f"step remove rm -f /etc/systemd/system/{UNIT}" in back
    assert back[-2:] == ["rm -f /var/lib/hostctl/current", "echo '@@applied'"]
    assert runner.commands[0] == ["/usr/bin/docker", "pull", "--quiet",
                                  "example.org/shop/api:1.0"]


def test_a_failed_health_gate_sends_the_rollback_to_the_previous_release(
        tmp_path: Path) -> None:
    facts, previous = _host_on_old_release(tmp_path)
    host = Host(apply="@@staged\n@@applied\n",
                health=[f"@@health {UNIT} fail failed\n", f"@@health {UNIT} ok 2\n"])
    run, _, plan = _deploy(_site(tmp_path / "new"), facts, host)
    outcome = run.outcomes["app-1"]
    assert (outcome.status, outcome.release) == ("rolled-back", OLD_RELEASE)
    assert outcome.message == (f"unhealthy after the change: {UNIT}; rolled back to release "
                               f"{OLD_RELEASE}; the previous version is healthy")
    assert [kind for kind, _ in host.scripts] == [
        "apply", "health", "rollback", "health", "finish"]
    assert host.scripts[2][1] == _rollback_script(run, plan, facts, previous, OLD_RELEASE)
    assert _body(host.scripts[2][1]) == BACK_TO_OLD


def test_a_failed_apply_restores_the_previous_release_without_a_health_gate_first(
        tmp_path: Path) -> None:
    facts, previous = _host_on_old_release(tmp_path)
    host = Host(apply="@@staged\n@@failed start\ndocker: no such image\n",
                health=[f"@@health {UNIT} fail failed\n"])
    run, _, plan = _deploy(_site(tmp_path / "new"), facts, host)
    outcome = run.outcomes["app-1"]
    assert (outcome.status, outcome.release) == ("rolled-back", OLD_RELEASE)
    assert outcome.message == (f"applying failed: step start: docker: no such image; rolled "
                               f"back to release {OLD_RELEASE}; the previous version is NOT "
                               f"healthy either: {UNIT}")
    # The previous version's unit is health-checked after the rollback, not before.
    assert [kind for kind, _ in host.scripts] == ["apply", "rollback", "health", "finish"]
    assert host.scripts[1][1] == _rollback_script(run, plan, facts, previous, OLD_RELEASE)
    assert _body(host.scripts[1][1]) == BACK_TO_OLD


def test_an_apply_that_did_not_stage_changes_nothing_and_sends_no_rollback(
        tmp_path: Path) -> None:
    facts, _ = _host_on_old_release(tmp_path)
    host = Host(apply="@@failed stage\nNo space left on device\n", health=[])
    run, _, _ = _deploy(_site(tmp_path / "new"), facts, host)
    outcome = run.outcomes["app-1"]
    assert outcome.status == "failed"
    assert outcome.message == ("app-1: could not stage the release: step stage: No space left "
                               "on device; nothing was changed")
    assert [kind for kind, _ in host.scripts] == ["apply", "finish"]


def test_a_failed_rollback_says_so(tmp_path: Path) -> None:
    facts, _ = _host_on_old_release(tmp_path)
    host = Host(apply="@@staged\n@@applied\n", health=[f"@@health {UNIT} fail failed\n"],
                rollback="@@failed install\ncp: read-only file system\n")
    run, _, _ = _deploy(_site(tmp_path / "new"), facts, host)
    outcome = run.outcomes["app-1"]
    assert outcome.status == "failed"
    assert outcome.message == (f"app-1: unhealthy after the change: {UNIT}; ROLLBACK FAILED: "
                               "step install: cp: read-only file system")
    assert [kind for kind, _ in host.scripts] == ["apply", "health", "rollback", "finish"]


def test_a_healthy_deploy_sends_no_rollback(tmp_path: Path) -> None:
    facts, _ = _host_on_old_release(tmp_path)
    host = Host(apply="@@staged\n@@applied\n", health=[f"@@health {UNIT} ok 2\n"])
    run, _, _ = _deploy(_site(tmp_path / "new"), facts, host)
    outcome = run.outcomes["app-1"]
    assert (outcome.status, outcome.message, outcome.release) == (
        "deployed", f"release {NEW_RELEASE}", NEW_RELEASE)
    assert [kind for kind, _ in host.scripts] == ["apply", "health", "finish"]
