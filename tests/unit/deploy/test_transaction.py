"""The decisions of one host's deploy transaction (deploy.transaction.HostTransaction) and of
the Deploy that runs them, through recording runners that answer scripted outputs: which
commands and scripts go to the host in what order, what a failure returns to, the outcome,
the audit record, the summary and the exit status. The same paths on real hosts are in
tests/e2e/test_deploy_faults.py (sandbox); the exact rollback scripts are asserted in
test_deploy_rollback_recorded.py.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hostctl import layout as L
from hostctl.cli.deploy import _show_outcomes
from hostctl.deploy.health_gate import gate_deadline
from hostctl.deploy.outcome import exit_status
from hostctl.deploy.plan import HostPlan, Plan, plan_host
from hostctl.deploy.release import release_manifest
from hostctl.deploy.rolling import GatewayRolling
from hostctl.deploy.run import Deploy, DeployOptions
from hostctl.deploy.target import build_target
from hostctl.deploy.transaction import HostTransaction
from hostctl.errors import HostctlError
from hostctl.hosts.facts import HostFacts, LockState, UnitState
from hostctl.hosts.images import LocalImages
from hostctl.hosts.session import Session
from hostctl.runner.base import ConnectionLost, Result, Runner, RunnerError, timed_out
from hostctl.runner.recording import Call, RecordingRunner
from hostctl.spec.model import Site
from tests.rigs.gateway_sites import GATEWAY_INVENTORY, ROUTED
from tests.rigs.site_factory import BASE_INVENTORY, SERVICE, made_site

NOW = 1_700_000_000  # 2023-11-14 22:13:20 UTC
RUN_ID = "abcdef12"
NEW = "20231114T221320Z-abcdef"
OLD = "20231101T000000Z-000000"
UNIT = "hostctl-api-1.service"
IMAGE = "example.org/shop/api:1.0"
TWO_APP_HOSTS = BASE_INVENTORY.replace(
    "  gpu-1: {address: 10.0.0.2, labels: {role: gpu}, gpus: 1}\n",
    "  app-2: {address: 10.0.0.3, labels: {role: app}}\n")


@pytest.fixture(autouse=True)
def _clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fixed clock: the new release has a known name, the audit record a known time."""
    real = time.gmtime
    monkeypatch.setattr(time, "gmtime", lambda secs=None: real(NOW if secs is None else secs))
    monkeypatch.setattr(time, "time", lambda: float(NOW))


class Host:
    """A host's scripted answers. Each call is kept in `log` as its kind: `pull`, `restart
    UNIT` (argv), or the `sh -s` script's kind: `apply`, `health`, `rollback` (a failed
    deploy's), `releases` and `restore` (`hostctl rollback`'s), `finish`.
    `answers` maps a kind to the outputs of its calls in turn (the last one repeats; a
    RunnerError is raised, as when the connection drops). The rollback succeeds unless told;
    other unlisted kinds print nothing."""

    def __init__(self, **answers: list[str | RunnerError]) -> None:
        self.answers = {"rollback": ["@@applied\n"], "restore": ["@@applied\n"],
                        **{k.replace("_", " "): list(v) for k, v in answers.items()}}
        self.log: list[str] = []
        self.scripts: dict[str, list[str]] = {}

    def __call__(self, call: Call) -> Result:
        kind = self.kind(call)
        self.log.append(kind)
        self.scripts.setdefault(kind, []).append((call.stdin or b"").decode())
        queue = self.answers.get(kind, [""])
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, RunnerError):
            raise answer
        if kind == "pull" and answer.startswith("!"):
            return Result(1, "", answer[1:])
        return Result(0, answer, "")

    @staticmethod
    def kind(call: Call) -> str:
        if isinstance(call.command, tuple) and call.command[:1] != ("sh",):
            argv = call.command
            return "pull" if "pull" in argv else f"{argv[1]} {argv[-1]}"
        script = (call.stdin or b"").decode()
        if "@@health" in script:
            return "health"
        if "echo rolled-back >" in script:
            return "rollback"
        if "echo '@@staged'" in script:
            return "apply"
        if "echo '@@applied'" in script:  # `hostctl rollback`'s: no release is staged
            return "restore"
        if "@@current" in script:
            return "releases"
        return "finish"

    def runner(self, name: str) -> RecordingRunner:
        return RecordingRunner(name, [(lambda _: True, self)])

    def audit(self) -> dict[str, Any]:
        """The audit record the (last) finish script appends."""
        (line,) = [ln for ln in self.scripts["finish"][-1].splitlines()
                   if ln.endswith(f">> {L.AUDIT_LOG}")]
        record: dict[str, Any] = json.loads(shlex.split(line)[2])
        return record


def _site(root: Path, image: str = IMAGE, inventory: str = BASE_INVENTORY,
          spec: str = SERVICE) -> Site:
    return made_site(root, {"api.yml": spec.replace("example.org/shop/api:1.0", image)},
                     inventory, environ={"API_TOKEN": "tok-123"})


def _fresh(name: str = "app-1") -> HostFacts:
    return HostFacts(name, docker_ok=True, lock=LockState(acquired=True), now=NOW)


def _on_old_release(old_site: Site, name: str = "app-1",
                    image: str = "example.org/shop/api:0.9") -> HostFacts:
    """The host as a deploy of `old_site` (with `image`) left it: release OLD, its manifest,
    the live files matching it, its units running, its image pulled, its networks made."""
    host = old_site.inventory.hosts[name]
    target = build_target(old_site, host, None)
    empty = _fresh(name)
    plan = plan_host(empty, target.target, target.images, target.networks)
    manifest = release_manifest(OLD, empty, target, plan, {}, site=old_site, by="alice",
                                run_id="00000000", revision=None)
    units = {u.unit: UnitState(u.unit, load="loaded", active="active", sub="running",
                               file_state="enabled") for u in plan.units}
    return HostFacts(name, docker_ok=True, lock=LockState(acquired=True), now=NOW,
                     files={f["path"]: f["sha256"] for f in manifest["files"]}, units=units,
                     images={image: "sha256:" + "0" * 64}, networks=frozenset(target.networks),
                     current_release=OLD, manifest=manifest, releases=(OLD,))


class Events:
    """A progress sink that keeps (host, phase) in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, host: str, phase: str, detail: str) -> None:
        self.seen.append((host, phase))


def _transaction(site: Site, facts: HostFacts, runner: Runner, events: Events,
                 rolling: GatewayRolling | None = None) -> HostTransaction:
    """A HostTransaction built from what it needs alone: no Deploy."""
    host = site.inventory.hosts[runner.host]
    session = Session(site, [runner.host], "hostctl deploy -i site.yml", progress=events)
    session.run_id, session.who = RUN_ID, "alice@laptop"
    session.__dict__["revision"] = "0123456789ab+dirty"  # the specs' git revision
    session.runners = {runner.host: runner}
    session.locked = {runner.host}
    target = build_target(site, host, None)
    plan = plan_host(facts, target.target, target.images, target.networks,
                     image_users=target.image_users)
    return HostTransaction(runner, host, plan, facts, target, session,
                           rolling=rolling or GatewayRolling(site, frozenset(), events),
                           cluster_targets={}, local_images=LocalImages(), progress=events)


def _base_record() -> dict[str, Any]:
    return {"who": "alice@laptop", "command": "hostctl deploy -i site.yml", "run": RUN_ID,
            "site": "t", "time": NOW, "host": "app-1", "revision": "0123456789ab+dirty"}


# -- one host's transaction ---------------------------------------------------------------

def test_a_healthy_change_is_deployed_and_audited_with_its_release(tmp_path: Path) -> None:
    site = _site(tmp_path / "new")
    facts = _on_old_release(_site(tmp_path / "old", "example.org/shop/api:0.9"))
    host = Host(apply=["@@staged\n@@applied\n"], health=[f"@@health {UNIT} ok 2\n"])
    events = Events()
    tx = _transaction(site, facts, host.runner("app-1"), events)
    outcome = tx.run()
    assert (outcome.status, outcome.message, outcome.release) == (
        "deployed", f"release {NEW}", NEW)
    assert host.log == ["pull", "apply", "health", "finish"]
    assert [phase for _, phase in events.seen] == ["images", "apply", "health", "deployed"]
    assert (tx.release, tx.previous["release"], tx.outcome) == (NEW, OLD, outcome)
    assert tx.new_manifest["previous"] == OLD
    assert host.audit() == {**_base_record(), "result": "deployed",
                            "message": f"release {NEW}", "release": NEW, "failed": [],
                            "plan": tx.plan.counts(), "seconds": outcome.seconds}
    assert tx.plan.counts()["restart"] == 1  # the image changed: the unit restarts


def test_an_image_that_cannot_be_pulled_changes_nothing(tmp_path: Path) -> None:
    facts = _on_old_release(_site(tmp_path / "old", "example.org/shop/api:0.9"))
    host = Host(pull=["!Error response from daemon: manifest unknown\n"])
    tx = _transaction(_site(tmp_path / "new"), facts, host.runner("app-1"), Events())
    outcome = tx.run()
    assert (outcome.status, outcome.message) == (
        "failed", f"app-1: could not pull {IMAGE}: Error response from daemon: manifest "
                  "unknown; nothing was changed")
    assert host.log == ["pull", "finish"]  # no release staged, nothing to roll back
    assert tx.release is None
    assert host.audit()["result"] == "failed"


def test_a_failed_health_gate_rolls_back_to_the_previous_release(tmp_path: Path) -> None:
    facts = _on_old_release(_site(tmp_path / "old", "example.org/shop/api:0.9"))
    host = Host(apply=["@@staged\n@@applied\n"],
                health=[f"@@health {UNIT} fail failed\n", f"@@health {UNIT} ok 1\n"])
    events = Events()
    tx = _transaction(_site(tmp_path / "new"), facts, host.runner("app-1"), events)
    outcome = tx.run()
    assert (outcome.status, outcome.release) == ("rolled-back", OLD)
    assert outcome.message == (f"unhealthy after the change: {UNIT}; rolled back to release "
                               f"{OLD}; the previous version is healthy")
    assert host.log == ["pull", "apply", "health", "rollback", "health", "finish"]
    assert [phase for _, phase in events.seen] == [
        "images", "apply", "health", "rollback", "health", "rolled-back"]
    assert f"echo rolled-back > /var/lib/hostctl/releases/{NEW}/status" in host.scripts[
        "rollback"][0]
    # The audit says what failed and which release the host is on now.
    assert host.audit() == {**_base_record(), "result": "rolled-back",
                            "message": outcome.message, "release": OLD, "failed": [UNIT],
                            "plan": tx.plan.counts(), "seconds": outcome.seconds}


def test_a_failed_first_deploy_goes_back_to_the_state_before_hostctl(tmp_path: Path) -> None:
    host = Host(apply=["@@staged\n@@applied\n"], health=[f"@@health {UNIT} fail failed\n"])
    tx = _transaction(_site(tmp_path), _fresh(), host.runner("app-1"), Events())
    outcome = tx.run()
    assert tx.previous == {}  # nothing to return to but no files at all
    assert (outcome.status, outcome.release) == ("rolled-back", None)
    assert outcome.message == (f"unhealthy after the change: {UNIT}; rolled back to the state "
                               "before hostctl; the previous version is healthy")
    # Nothing is started again after going back to nothing: no second health check.
    assert host.log == ["pull", "apply", "health", "rollback", "finish"]
    assert "rm -f /var/lib/hostctl/current" in host.scripts["rollback"][0]


def test_an_apply_that_fails_midway_rolls_back_without_a_health_gate(tmp_path: Path) -> None:
    facts = _on_old_release(_site(tmp_path / "old", "example.org/shop/api:0.9"))
    host = Host(apply=["@@staged\n@@failed reload\nFailed to reload daemon\n"],
                health=[f"@@health {UNIT} ok 1\n"])
    tx = _transaction(_site(tmp_path / "new"), facts, host.runner("app-1"), Events())
    outcome = tx.run()
    assert (outcome.status, outcome.release) == ("rolled-back", OLD)
    assert outcome.message == ("applying failed: step reload: Failed to reload daemon; rolled "
                               f"back to release {OLD}; the previous version is healthy")
    assert host.log == ["pull", "apply", "rollback", "health", "finish"]
    assert host.audit()["failed"] == []  # no health gate ran: no unit failed it


def test_a_dropped_connection_mid_apply_still_audits_and_unlocks(tmp_path: Path) -> None:
    facts = _on_old_release(_site(tmp_path / "old", "example.org/shop/api:0.9"))
    lost = RunnerError("app-1", "the connection dropped (timed out after 300 s)")
    host = Host(apply=[lost])
    tx = _transaction(_site(tmp_path / "new"), facts, host.runner("app-1"), Events())
    outcome = tx.run()
    assert (outcome.status, outcome.message) == (
        "failed", "app-1: the connection dropped (timed out after 300 s)")
    assert host.log == ["pull", "apply", "finish"]  # no rollback over a dead connection
    assert host.audit()["result"] == "failed"


def test_an_unchanged_host_sends_only_the_finish(tmp_path: Path) -> None:
    site = _site(tmp_path)
    facts = _on_old_release(site, image=IMAGE)  # already what the specs say
    host = Host()
    outcome = _transaction(site, facts, host.runner("app-1"), Events()).run()
    assert (outcome.status, outcome.message) == ("unchanged", "")
    assert host.log == ["finish"]


# -- slow and lost hosts: deadlines, unverified releases -----------------------------------

UNVERIFIED_MARK = f"echo unverified > /var/lib/hostctl/releases/{NEW}/status"


def _verified_line(release: str) -> str:
    status = f"/var/lib/hostctl/releases/{release}/status"
    return f'[ "$(cat {status} 2>/dev/null)" = unverified ] && rm -f {status}'


def test_a_healthy_deploy_marks_its_release_unverified_until_the_gate_passes(
        tmp_path: Path) -> None:
    facts = _on_old_release(_site(tmp_path / "old", "example.org/shop/api:0.9"))
    host = Host(apply=["@@staged\n@@applied\n"], health=[f"@@health {UNIT} ok 2\n"])
    outcome = _transaction(_site(tmp_path / "new"), facts, host.runner("app-1"), Events()).run()
    assert outcome.status == "deployed"
    apply = host.scripts["apply"][0]
    # marked after staging, before anything live changes
    assert apply.index("echo '@@staged'") < apply.index(UNVERIFIED_MARK) < apply.index(
        "step install put")
    assert _verified_line(NEW) in host.scripts["finish"][0].splitlines()


def test_a_health_gate_past_its_deadline_rolls_the_host_back(tmp_path: Path) -> None:
    """A slow host: the gate's script has not answered by its deadline (the runner stopped
    it). That is a failed gate: back to the previous release, like any other."""
    facts = _on_old_release(_site(tmp_path / "old", "example.org/shop/api:0.9"))
    slow = timed_out("app-1", ["sh", "-s"])
    host = Host(apply=["@@staged\n@@applied\n"], health=[slow, f"@@health {UNIT} ok 1\n"])
    runner = host.runner("app-1")
    tx = _transaction(_site(tmp_path / "new"), facts, runner, Events())
    outcome = tx.run()
    assert (outcome.status, outcome.release) == ("rolled-back", OLD)
    assert outcome.message == (f"unhealthy after the change: {UNIT}; rolled back to release "
                               f"{OLD}; the previous version is healthy")
    assert [(h.unit, h.ok, h.detail) for h in outcome.health] == [
        (UNIT, False, "no verdict before the time ran out")]
    assert host.log == ["pull", "apply", "health", "rollback", "health", "finish"]
    # The deadline comes from what the gate waits for: the spec's budget and a margin.
    gate = next(c for c in runner.calls if "@@health" in (c.stdin or b"").decode())
    assert gate.timeout == gate_deadline([tx.target.probes[UNIT]])
    assert _verified_line(OLD) not in host.scripts["finish"][0]
    assert host.audit()["failed"] == [UNIT]


def test_an_apply_past_its_deadline_rolls_the_host_back(tmp_path: Path) -> None:
    facts = _on_old_release(_site(tmp_path / "old", "example.org/shop/api:0.9"))
    host = Host(apply=[timed_out("app-1", ["sh", "-s"])], health=[f"@@health {UNIT} ok 1\n"])
    outcome = _transaction(_site(tmp_path / "new"), facts, host.runner("app-1"),
                           Events()).run()
    assert (outcome.status, outcome.release) == ("rolled-back", OLD)
    assert outcome.message == ("applying did not finish in 300 s; rolled back to release "
                               f"{OLD}; the previous version is healthy")
    assert host.log == ["pull", "apply", "rollback", "health", "finish"]


def test_the_applys_deadline_covers_the_longest_stop_of_a_unit_it_restarts(
        tmp_path: Path) -> None:
    facts = _on_old_release(_site(tmp_path / "old", "example.org/shop/api:0.9"))
    host = Host(apply=["@@staged\n@@applied\n"], health=[f"@@health {UNIT} ok 1\n"])
    runner = host.runner("app-1")
    slow_stop = _site(tmp_path / "new", spec=SERVICE + "stop_timeout: 1h\n")
    _transaction(slow_stop, facts, runner, Events()).run()
    (apply,) = [c for c in runner.calls if "echo '@@staged'" in (c.stdin or b"").decode()]
    assert apply.timeout == 3600 + 15 + 120  # its TimeoutStopSec= and a margin
    host = Host(apply=["@@staged\n@@applied\n"], health=[f"@@health {UNIT} ok 1\n"])
    runner = host.runner("app-1")
    _transaction(_site(tmp_path / "usual"), facts, runner, Events()).run()
    (apply,) = [c for c in runner.calls if "echo '@@staged'" in (c.stdin or b"").decode()]
    assert apply.timeout == 300


def test_a_host_lost_during_the_gate_names_its_live_unverified_release(tmp_path: Path) -> None:
    facts = _on_old_release(_site(tmp_path / "old", "example.org/shop/api:0.9"))
    lost = ConnectionLost("app-1", "connection lost while running `sh -s` — the host "
                          "rebooted, sshd was restarted or the network dropped; its outcome "
                          "is unknown, re-run to converge", target="10.0.0.1:22")
    host = Host(apply=["@@staged\n@@applied\n"], health=[lost])
    outcome = _transaction(_site(tmp_path / "new"), facts, host.runner("app-1"),
                           Events()).run()
    assert (outcome.status, outcome.message) == (
        "failed", f"{lost}; release {NEW} is live and unverified (its health gate did not "
                  "finish): the next deploy checks its health again")
    assert host.log == ["pull", "apply", "health", "finish"]  # no rollback over a lost host
    assert UNVERIFIED_MARK in host.scripts["apply"][0]  # what tells the next deploy


def _unverified(facts: HostFacts, previous: str | None = None) -> HostFacts:
    """The host as a deploy cut off during its gate left it: its current release (the
    specs' own) marked unverified."""
    return replace(facts, current_status="unverified",
                   manifest={**facts.manifest, "previous": previous})


def test_the_next_deploy_reverifies_an_unverified_release_instead_of_unchanged(
        tmp_path: Path) -> None:
    site = _site(tmp_path)
    facts = _unverified(_on_old_release(site, image=IMAGE))
    host = Host(health=[f"@@health {UNIT} ok 1\n"])
    tx = _transaction(site, facts, host.runner("app-1"), Events())
    assert not tx.plan.changed
    outcome = tx.run()
    assert (outcome.status, outcome.message, outcome.release) == (
        "deployed", f"release {OLD} verified (its deploy could not finish its health gate)",
        OLD)
    assert host.log == ["health", "finish"]
    assert f"@@health {UNIT} ok" in host.scripts["health"][0]  # every service it runs
    assert _verified_line(OLD) in host.scripts["finish"][0].splitlines()


def test_an_unverified_release_found_unhealthy_goes_back_to_the_one_before(
        tmp_path: Path) -> None:
    site = _site(tmp_path / "new")
    before = _on_old_release(_site(tmp_path / "old", "example.org/shop/api:0.9"))
    prev = {**before.manifest, "release": "20231001T000000Z-999999"}
    facts = _unverified(_on_old_release(site, image=IMAGE), previous=prev["release"])
    listing = (f"@@current {OLD}\n@@release {prev['release']} {json.dumps(prev)}\n"
               f"@@release {OLD} {json.dumps(facts.manifest)}\n")
    host = Host(health=[f"@@health {UNIT} fail failed\n", f"@@health {UNIT} ok 1\n"],
                releases=[listing])
    outcome = _transaction(site, facts, host.runner("app-1"), Events()).run()
    assert (outcome.status, outcome.release) == ("rolled-back", prev["release"])
    assert outcome.message == (f"release {OLD} (unverified) is unhealthy: {UNIT}; rolled back "
                               f"to release {prev['release']}; the previous version is healthy")
    assert host.log == ["health", "releases", "rollback", "health", "finish"]
    back = host.scripts["rollback"][0]
    assert f"echo rolled-back > /var/lib/hostctl/releases/{OLD}/status" in back
    assert f"ln -sfn releases/{prev['release']} /var/lib/hostctl/current.new" in back


def test_the_plan_says_an_unverified_release_is_checked_again(tmp_path: Path) -> None:
    site = _site(tmp_path)
    facts = _unverified(_on_old_release(site, image=IMAGE))
    host = Host(health=[f"@@health {UNIT} ok 1\n"])
    run = _deploy(site, {"app-1": facts}, {"app-1": host})
    plan = run._plan_one(site.inventory.hosts["app-1"], facts, True)
    assert not plan.changed and run.outcomes["app-1"].status == "deployed"
    assert plan.notes == (f"release {OLD} is live and unverified (its deploy could not finish "
                          "its health gate): its services' health is checked again",)


# -- rolling through the gateway ----------------------------------------------------------

class Gateway(GatewayRolling):
    """The run's gateway rolling with Kong answered here: every weight set is recorded
    (and refused while `refuse` says so); the rest (which units roll, one at a time, the
    restart and health of each) is GatewayRolling's own."""

    def __init__(self, site: Site, events: Events, refuse: frozenset[int | None] = frozenset()):
        super().__init__(site, frozenset(), events)
        self.weights: list[tuple[str, int | None]] = []
        self.refuse = refuse

    def gateway_runners(self, runners: Mapping[str, Runner | RunnerError]
                        ) -> dict[str, Runner | RunnerError] | None:
        return {"edge-1": RecordingRunner("edge-1")}

    def set_weight(self, host: str, instance: str, weight: int | None,
                   cluster_targets: Mapping[str, str]) -> None:
        self.weights.append((instance, weight))
        if weight in self.refuse:
            raise HostctlError("edge-1: Kong did not answer")


def _routed_pair(root: Path, image: str) -> Site:
    inventory = GATEWAY_INVENTORY.replace("  hosts: [edge-1]\n", "  hosts: [edge-1]\n  drain: 0s\n")
    return _site(root, image, inventory, ROUTED + "instances: 2\n")


UNIT2 = "hostctl-api-2.service"
BOTH_OK = f"@@health {UNIT} ok 1\n@@health {UNIT2} ok 1\n"


def test_rolling_restarts_stop_at_the_first_unhealthy_instance_and_give_it_its_traffic_back(
        tmp_path: Path) -> None:
    facts = _on_old_release(_routed_pair(tmp_path / "old", "example.org/shop/api:0.9"))
    events = Events()
    site = _routed_pair(tmp_path / "new", IMAGE)
    gateway = Gateway(site, events)
    host = Host(apply=["@@staged\n@@applied\n"],
                health=[f"@@health {UNIT} fail failed\n", BOTH_OK])
    tx = _transaction(site, facts, host.runner("app-1"), events, gateway)
    outcome = tx.run()
    assert tx.rolling == {UNIT, UNIT2}
    # Neither unit restarts in the apply; the first rolls and fails; the second never rolls.
    assert f"unit_step restart {UNIT}" not in host.scripts["apply"][0]
    assert host.log == ["pull", "apply", f"restart {UNIT}", "health", "rollback", "health",
                        "finish"]
    # Out of rotation for its restart, back in once the rollback runs the old version.
    assert gateway.weights == [("hostctl-api-1", 0), ("hostctl-api-1", None)]
    assert (outcome.status, outcome.release) == ("rolled-back", OLD)
    assert outcome.message == (f"unhealthy after the change: {UNIT}; rolled back to release "
                               f"{OLD}; the previous version is healthy")


def test_rolling_that_cannot_restore_the_weight_says_so(tmp_path: Path) -> None:
    facts = _on_old_release(_routed_pair(tmp_path / "old", "example.org/shop/api:0.9"))
    events = Events()
    site = _routed_pair(tmp_path / "new", IMAGE)
    gateway = Gateway(site, events, refuse=frozenset({None}))
    host = Host(apply=["@@staged\n@@applied\n"],
                health=[f"@@health {UNIT} fail failed\n", BOTH_OK])
    outcome = _transaction(site, facts, host.runner("app-1"), events, gateway).run()
    assert outcome.message.endswith("; the previous version is healthy; its gateway weight is "
                                    "still 0 (edge-1: Kong did not answer)")
    assert host.audit()["message"] == outcome.message  # the audit says so too


def test_a_gateway_that_refuses_weight_0_restarts_nothing_and_rolls_back(
        tmp_path: Path) -> None:
    facts = _on_old_release(_routed_pair(tmp_path / "old", "example.org/shop/api:0.9"))
    events = Events()
    site = _routed_pair(tmp_path / "new", IMAGE)
    gateway = Gateway(site, events, refuse=frozenset({0}))
    host = Host(apply=["@@staged\n@@applied\n"], health=[BOTH_OK])
    outcome = _transaction(site, facts, host.runner("app-1"), events, gateway).run()
    assert not any(kind.startswith("restart ") for kind in host.log)
    assert outcome.status == "rolled-back"
    assert outcome.message.startswith(f"unhealthy after the change: {UNIT}; rolled back to "
                                      f"release {OLD}")
    assert outcome.health[0].detail == "gateway refused weight 0: edge-1: Kong did not answer"


# -- the Deploy: waves, outcomes, summary, exit status -------------------------------------

def _deploy(site: Site, facts: dict[str, HostFacts], hosts: dict[str, Host],
            serial: int | None = None) -> Deploy:
    deploy = Deploy.for_site(site, DeployOptions(hosts=frozenset(hosts), serial=serial))
    deploy.session.run_id = RUN_ID
    deploy.session.runners = {n: h.runner(n) for n, h in hosts.items()}
    deploy.targets = deploy._build_targets()
    deploy.facts = dict(facts)
    deploy.session.locked = set(hosts)
    plan = Plan({n: deploy._plan_one(site.inventory.hosts[n], facts[n], True) for n in hosts})
    deploy.apply(plan)
    return deploy


def _two_hosts(root: Path) -> tuple[Site, dict[str, HostFacts]]:
    spec = SERVICE.replace("placement: {hosts: [app-1]}", "placement: {labels: {role: app}}")
    old = _site(root / "old", "example.org/shop/api:0.9", TWO_APP_HOSTS, spec)
    new = _site(root / "new", IMAGE, TWO_APP_HOSTS, spec)
    return new, {n: _on_old_release(old, n) for n in ("app-1", "app-2")}


def test_serial_waves_stop_after_the_first_failed_wave(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site, facts = _two_hosts(tmp_path)
    first = Host(apply=["@@staged\n@@applied\n"],
                 health=[f"@@health {UNIT} fail failed\n", f"@@health {UNIT} ok 1\n"])
    second = Host(apply=["@@staged\n@@applied\n"], health=[f"@@health {UNIT} ok 1\n"])
    deploy = _deploy(site, facts, {"app-1": first, "app-2": second}, serial=1)
    assert [(n, o.status) for n, o in deploy.outcomes.items()] == [
        ("app-1", "rolled-back"), ("app-2", "skipped")]
    assert second.log == []  # not started: nothing sent, its lock is released at the end
    assert exit_status(deploy.outcomes) == 1
    _show_outcomes(deploy.outcomes, False)
    assert capsys.readouterr().out == (
        "\n"
        f"app-1  rolled-back  unhealthy after the change: {UNIT}; rolled back to release "
        f"{OLD}; the previous version is healthy\n"
        f"       {UNIT}: unhealthy (failed); last log lines:\n"
        "app-2  skipped  not started: an earlier wave failed\n"
        "0/2 host(s) ok; failed: app-1, app-2\n")


def test_without_serial_a_failed_host_leaves_the_others_deployed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site, facts = _two_hosts(tmp_path)
    first = Host(apply=["@@staged\n@@failed start\ndocker: no such image\n"],
                 health=[f"@@health {UNIT} ok 1\n"])
    second = Host(apply=["@@staged\n@@applied\n"], health=[f"@@health {UNIT} ok 1\n"])
    deploy = _deploy(site, facts, {"app-1": first, "app-2": second})
    assert first.log == ["pull", "apply", "rollback", "health", "finish"]
    assert second.log == ["pull", "apply", "health", "finish"]
    assert exit_status(deploy.outcomes) == 1
    _show_outcomes(deploy.outcomes, False)
    assert capsys.readouterr().out == (
        "\n"
        "app-1  rolled-back  applying failed: step start: docker: no such image; rolled back "
        f"to release {OLD}; the previous version is healthy\n"
        f"app-2  deployed  release {NEW}\n"
        "1/2 host(s) ok; failed: app-1\n")


def test_every_host_healthy_exits_0(tmp_path: Path) -> None:
    site, facts = _two_hosts(tmp_path)
    hosts = {n: Host(apply=["@@staged\n@@applied\n"], health=[f"@@health {UNIT} ok 1\n"])
             for n in ("app-1", "app-2")}
    deploy = _deploy(site, facts, hosts)
    assert {n: o.status for n, o in deploy.outcomes.items()} == {
        "app-1": "deployed", "app-2": "deployed"}
    assert exit_status(deploy.outcomes) == 0


def test_a_host_without_facts_is_not_applied_and_says_why(tmp_path: Path) -> None:
    site, facts = _two_hosts(tmp_path)
    del facts["app-2"]
    ok = Host(apply=["@@staged\n@@applied\n"], health=[f"@@health {UNIT} ok 1\n"])
    deploy = Deploy.for_site(site, DeployOptions(hosts=frozenset({"app-1", "app-2"})))
    deploy.session.run_id = RUN_ID
    deploy.session.runners = {"app-1": ok.runner("app-1"),
                              "app-2": RunnerError("app-2", "ssh: connection refused")}
    deploy.targets = deploy._build_targets()
    deploy.facts = facts
    deploy.session.locked = {"app-1"}
    plan = Plan({"app-1": deploy._plan_one(site.inventory.hosts["app-1"], facts["app-1"], True),
                 "app-2": HostPlan("app-2", error="app-2: ssh: connection refused")})
    outcomes = deploy.apply(plan)
    assert [(n, o.status, o.message) for n, o in outcomes.items()] == [
        ("app-1", "deployed", f"release {NEW}"),
        ("app-2", "failed", "app-2: ssh: connection refused")]


# -- rollback by hand (`hostctl rollback`) --------------------------------------------------

A, B, C = "20231101T000000Z-aaaaaa", "20231105T000000Z-bbbbbb", "20231110T000000Z-cccccc"


def _releases(root: Path) -> tuple[Site, HostFacts, str]:
    """app-1 on release C (image 1.0), after A (image 0.9) and B (a deploy rolled back):
    the site, the facts and what the releases script prints."""
    site = _site(root / "new")
    old = _on_old_release(_site(root / "old", "example.org/shop/api:0.9")).manifest
    facts = _on_old_release(site, image=IMAGE)
    now = facts.manifest
    out = (f"@@current {C}\n@@release {A} {json.dumps({**old, 'release': A})}\n"
           f"@@release {B} {json.dumps({**now, 'release': B})}\n@@status {B} rolled-back\n"
           f"@@release {C} {json.dumps({**now, 'release': C})}\n")
    return site, facts, out


def _rollback(site: Site, facts: HostFacts, host: Host, to: str | None
              ) -> tuple[Deploy, Plan]:
    deploy = Deploy.for_site(site, DeployOptions(hosts=frozenset({"app-1"}),
                                        command="hostctl rollback"))
    deploy.session.run_id = RUN_ID
    deploy.session.runners = {"app-1": host.runner("app-1")}
    deploy.targets = deploy._build_targets()
    deploy.facts = {"app-1": facts}
    deploy.session.locked = {"app-1"}
    plan = deploy.rollback_plan(to)
    deploy.apply_rollback(plan)
    return deploy, plan


def test_rollback_goes_to_the_release_before_the_current_one_that_did_not_fail(
        tmp_path: Path) -> None:
    site, facts, releases = _releases(tmp_path)
    host = Host(releases=[releases], health=[f"@@health {UNIT} ok 1\n"])
    deploy, _ = _rollback(site, facts, host, None)
    assert deploy.rollback_to == {"app-1": A}  # B was itself rolled back: never back to it
    assert host.log == ["releases", "restore", "health", "finish"]
    assert f"ln -sfn releases/{A} /var/lib/hostctl/current.new" in host.scripts["restore"][0]
    assert f"unit_step restart {UNIT}" in host.scripts["restore"][0]
    outcome = deploy.outcomes["app-1"]
    assert (outcome.status, outcome.message, outcome.release) == (
        "deployed", f"rolled back to release {A}", A)
    assert exit_status(deploy.outcomes) == 0
    record = host.audit()
    assert (record["command"], record["result"], record["release"]) == (
        "hostctl rollback", "deployed", A)


def test_rollback_to_an_unknown_release_changes_nothing(tmp_path: Path) -> None:
    site, facts, releases = _releases(tmp_path)
    host = Host(releases=[releases])
    deploy, plan = _rollback(site, facts, host, "20230101T000000Z-nope00")
    assert plan.hosts["app-1"].error == (
        f"app-1: no release 20230101T000000Z-nope00 (known: {A}, {B}, {C})")
    assert host.log == ["releases", "finish"]  # audited and unlocked, nothing else
    assert deploy.outcomes["app-1"].status == "failed"
    assert exit_status(deploy.outcomes) == 1


def test_rollback_with_nothing_before_the_current_release_says_so(tmp_path: Path) -> None:
    site, facts, releases = _releases(tmp_path)
    only_c = "".join(ln + "\n" for ln in releases.splitlines() if C in ln)
    host = Host(releases=[only_c])
    deploy, _ = _rollback(site, facts, host, None)
    assert (deploy.outcomes["app-1"].status, deploy.outcomes["app-1"].message) == (
        "failed", f"app-1: no release before the current one ({C})")
    assert host.log == ["releases", "finish"]


def test_a_rollback_that_fails_or_is_unhealthy_fails(tmp_path: Path) -> None:
    site, facts, releases = _releases(tmp_path)
    host = Host(releases=[releases], restore=["@@failed install\ncp: No space left\n"])
    deploy, _ = _rollback(site, facts, host, A)
    assert deploy.outcomes["app-1"].message == (
        f"app-1: rollback to {A} failed: step install: cp: No space left")
    assert host.log == ["releases", "restore", "finish"]
    host = Host(releases=[releases], health=[f"@@health {UNIT} fail failed\n"])
    deploy, _ = _rollback(site, facts, host, A)
    outcome = deploy.outcomes["app-1"]
    assert (outcome.status, outcome.message, outcome.release) == (
        "failed", f"app-1: rolled back to {A}, but unhealthy: {UNIT}", A)
    assert host.audit()["failed"] == [UNIT]
