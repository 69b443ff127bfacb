"""The handoff as the hosts record it (hostctl.k8s.handoff_records): the record and its scripts (run
under sh against a temporary folder), merging the hosts' records, what deploy's plan keeps
stopped and says, the gateway file re-rendered, and `status` showing "in cluster"."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from hostctl import layout as L
from hostctl.deploy import handoff
from hostctl.deploy.plan import HostPlan, TargetFile, UnitAction, sha256
from hostctl.deploy.plan_output import host_text
from hostctl.deploy.target import HostTarget
from hostctl.hosts.facts import HostFacts
from hostctl.k8s import handoff_records as in_cluster
from hostctl.ops import status as st
from hostctl.render.site import RenderedFile
from tests.rigs.gateway_sites import example_site
from tests.rigs.status_output import NOW, app1_output, hashes

RECORD = {"who": "alice@laptop", "time": "2026-11-22T09:00:00Z", "run": "ab12cd34",
          "context": "prod", "target": "10.20.0.50:80"}


def test_record_line_is_one_line_of_json_without_secrets() -> None:
    line = in_cluster.record_line("alice@laptop", "ab12cd34", "prod", "10.20.0.50:80",
                                  now=1795338000)
    assert "\n" not in line
    assert json.loads(line) == RECORD


def test_scripts_write_atomically_read_and_remove(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(L, "CLUSTER_DIR", str(tmp_path / "cluster"))

    def sh(script: str) -> str:
        return subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                              check=True).stdout

    assert in_cluster.parse_records_output(sh(in_cluster.records_script())) == {}
    line = json.dumps(RECORD, sort_keys=True)
    assert sh(in_cluster.write_record_script("triage-api", line)) == "@@recorded\n"
    assert sorted(p.name for p in (tmp_path / "cluster").iterdir()) == ["triage-api"]  # no tmp
    assert (tmp_path / "cluster" / "triage-api").read_text() == line + "\n"
    assert in_cluster.parse_records_output(sh(in_cluster.records_script())) == {
        "triage-api": RECORD}
    assert sh(in_cluster.remove_record_script("triage-api")) == "@@removed\n"
    assert sh(in_cluster.remove_record_script("triage-api")) == "@@removed\n"  # idempotent
    assert in_cluster.parse_records_output(sh(in_cluster.records_script())) == {}


def test_an_odd_record_is_still_quoted_whole(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(L, "CLUSTER_DIR", str(tmp_path / "cluster"))
    line = json.dumps({"who": "o'brien $(touch pwned) `x`"})
    subprocess.run(["sh", "-c", in_cluster.write_record_script("api", line)], check=True,
                   cwd=tmp_path)
    assert (tmp_path / "cluster" / "api").read_text() == line + "\n"
    assert not (tmp_path / "pwned").exists()


def test_records_of_several_hosts_merge_to_the_earliest() -> None:
    later = {**RECORD, "time": "2026-11-22T10:00:00Z", "run": "later"}
    merged = in_cluster.handed_off({"edge-1": {"api": later}, "app-1": {"api": RECORD},
                                    "app-2": {"web": {}}})
    assert merged == {"api": {**RECORD, "hosts": ["app-1", "edge-1"]},
                      "web": {"hosts": ["app-2"]}}


def _facts(handed: dict[str, dict[str, str]]) -> HostFacts:
    return HostFacts(host="app-1", handed_off=handed)


def test_plan_keeps_a_handed_off_service_stopped_and_says_so(tmp_path: Path) -> None:
    site = example_site(tmp_path)
    units = [UnitAction("hostctl-triage-api-1.service", "start", "was inactive", "triage-api"),
             UnitAction("hostctl-triage-api-2.service", "restart", "unit changed",
                        "triage-api"),
             UnitAction("hostctl-triage-worker-1.service", "start", "was inactive",
                        "triage-worker"),
             UnitAction("hostctl-old-1.service", "stop", "left the specs", "old")]
    plan = HostPlan("app-1", units=tuple(units), enable=(
        "hostctl-triage-api-1.service", "hostctl-triage-worker-1.service"))
    assert handoff.keep_stopped(plan, _facts({}), site) is plan
    kept = handoff.keep_stopped(plan, _facts({"triage-api": RECORD}), site)
    assert [u.unit for u in kept.units] == ["hostctl-triage-worker-1.service",
                                            "hostctl-old-1.service"]
    assert kept.enable == ("hostctl-triage-worker-1.service",)
    note = ("triage-api lives in the cluster since 2026-11-22T09:00:00Z (handed off by "
            "alice@laptop): its units stay stopped; `hostctl k8s handoff --back triage-api` "
            "to bring it back")
    assert kept.notes == (note,)
    # a host with nothing else to do still says it
    quiet = handoff.keep_stopped(HostPlan("app-1", unchanged=4), _facts(
        {"triage-api": RECORD}), site)
    assert host_text(quiet, None, {}, False) == [
        "app-1: no changes (4 file(s) up to date)", f"  note   {note}"]


def test_an_unreadable_record_still_keeps_it_stopped(tmp_path: Path) -> None:
    site = example_site(tmp_path)
    plan = HostPlan("app-1", units=(UnitAction("hostctl-triage-api-1.service", "start", "x",
                                               "triage-api"),))
    kept = handoff.keep_stopped(plan, _facts({"triage-api": {}}), site)
    assert kept.units == ()
    assert kept.notes[0].startswith("triage-api lives in the cluster since an unknown time "
                                    "(unreadable record): ")


def test_a_rollback_keeps_the_gateway_file_that_routes_to_the_cluster() -> None:
    from dataclasses import replace

    from hostctl.deploy.plan import plan_files

    old = {L.GATEWAY_FILE: TargetFile(L.GATEWAY_FILE, "a" * 64, 0o600, "gateway-kong", True),
           "/etc/systemd/system/hostctl-x-1.service": TargetFile(
               "/etc/systemd/system/hostctl-x-1.service", "b" * 64, 0o644, "x")}
    live = {L.GATEWAY_FILE: "c" * 64, "/etc/systemd/system/hostctl-x-1.service": "d" * 64}
    facts = replace(_facts({"triage-api": RECORD}), files=live)
    kept = handoff.keep_gateway_file(old, facts)
    assert [f.path for f in plan_files("edge-1", kept, live, {}).files] == [
        "/etc/systemd/system/hostctl-x-1.service"]  # the live Kong file stays
    # nothing handed off: the rollback puts the earlier Kong file back like any other
    assert handoff.keep_gateway_file(old, replace(facts, handed_off={})) == old


def test_cluster_targets_prefer_the_inventory_then_the_record(tmp_path: Path) -> None:
    site = example_site(tmp_path)
    handed = {"triage-api": RECORD, "triage-worker": RECORD}  # the worker has no route
    assert in_cluster.cluster_targets(site, handed) == {"triage-api": "10.20.0.50:80"}
    assert in_cluster.cluster_targets(site, {"triage-api": {}}) == {}


def test_the_gateway_hosts_file_is_rendered_again_with_the_cluster_route(tmp_path: Path
                                                                         ) -> None:
    site = example_site(tmp_path)
    old = RenderedFile(L.GATEWAY_FILE, b"old", 0o600, secret=True, redacted_content=b"old",
                       workload=L.GATEWAY_WORKLOAD, owner="1000:1000", restarts=False)
    edge = HostTarget(site.inventory.hosts["edge-1"], {old.path: old}, {old.path: TargetFile(
        old.path, sha256(b"old"), 0o600, L.GATEWAY_WORKLOAD, True, "1000:1000", False)},
        {}, {}, {}, {})
    targets = {"edge-1": edge}
    assert handoff.route_gateway(site, targets, {"edge-1": HostFacts("edge-1")}) == {}
    assert targets["edge-1"].files[old.path].content == b"old"
    routes = handoff.route_gateway(site, targets, {
        "edge-1": HostFacts("edge-1", handed_off={"triage-api": RECORD}),
        "app-1": HostFacts("app-1", handed_off={"triage-api": RECORD})})
    assert routes == {"triage-api": "10.20.0.50:80"}
    new = targets["edge-1"].files[old.path]
    config = yaml.safe_load(new.redacted_content or b"")
    (up,) = [u for u in config["upstreams"] if u["name"] == "hostctl-triage-api"]
    assert [t["target"] for t in up["targets"]] == ["10.20.0.50:80"]
    assert targets["edge-1"].target[old.path].sha256 == sha256(new.content)
    assert (new.mode, new.owner, new.restarts, new.secret) == (0o600, "1000:1000", False, True)


def test_status_shows_a_handed_off_service_in_cluster(status_site: object) -> None:
    h = hashes(status_site)  # type: ignore[arg-type]
    text = app1_output(h).replace(
        "ActiveState=activating\nSubState=auto-restart", "ActiveState=inactive\nSubState=dead"
    ).replace("@@end\n", "@@cluster\napi " + json.dumps(RECORD) + "\n@@end\n")
    status = st.parse_status("app-1", text)
    assert status.handed_off == {"api": RECORD}
    rep = st.host_report(status_site, status)  # type: ignore[arg-type]
    api = [(r.instance, r.state, r.result, r.since, r.ok, r.drift) for r in rep.rows
           if r.service == "api"]
    since = 1795338000  # the record's time
    assert api == [
        # still running here although handed off: drift, said how to fix
        ("1", "active/running", "success", NOW - 3600, False, (
            "handed to the cluster since 2026-11-22T09:00:00Z, yet running here too: "
            "`hostctl stop` it, or `hostctl k8s handoff --back api`",)),
        ("2", "in cluster", "", since, True, ()),
    ]
    lines = [ln.split() for ln in st.report_lines({"app-1": rep})]
    assert lines[3][:6] == ["api", "2", "in", "cluster", "-", "-"]
    assert lines[3][7:9] == ["2026-11-22", "09:00"]
    assert st.report_json({"app-1": rep})["hosts"]["app-1"]["rows"][1]["state"] == "in cluster"


def test_the_status_script_reads_the_records() -> None:
    script = st.status_script("docker")
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)
    assert f"for f in {L.CLUSTER_DIR}/*" in script
    assert script.index("@@cluster") < script.index("@@end")


def test_read_records_asks_each_host_and_refuses_to_guess() -> None:
    from hostctl.errors import HostctlError
    from hostctl.runner.base import HostUnreachable, Result
    from hostctl.runner.recording import RecordingRunner

    said = Result(0, "@@cluster\ntriage-api " + json.dumps(RECORD) + "\n", "")
    edge = RecordingRunner("edge-1", default=said)
    app = RecordingRunner("app-1", default=Result(0, "@@cluster\n", ""))
    assert in_cluster.read_records({"edge-1": edge, "app-1": app}) == {
        "edge-1": {"triage-api": RECORD}, "app-1": {}}
    assert edge.commands == [["sh", "-s"]]
    # a host that cannot answer is an error: "none" would route a service in the cluster
    # back to hosts where it is stopped
    cut = RecordingRunner("edge-1", default=Result(0, "", ""))
    with pytest.raises(HostctlError, match="edge-1: could not read the handoff records"):
        in_cluster.read_records({"edge-1": cut, "app-1": app})
    gone = RecordingRunner("edge-1", default=HostUnreachable("edge-1", "connection refused"))
    with pytest.raises(HostctlError, match=r"^edge-1: connection refused$"):
        in_cluster.read_records({"edge-1": gone})
