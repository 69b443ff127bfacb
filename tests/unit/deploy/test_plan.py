"""The planner is pure: facts + target -> the exact file, unit, image and network actions."""

from __future__ import annotations

from hostctl.deploy.plan import TargetFile, plan_files, plan_host, target_from_manifest
from hostctl.hosts.facts import HostFacts, UnitState

U = "/etc/systemd/system"
API1 = f"{U}/hostctl-api-1.service"
API2 = f"{U}/hostctl-api-2.service"
ENV = "/etc/hostctl/env/api.env"
JOB = f"{U}/hostctl-job-train@.service"
TIMER = f"{U}/hostctl-job-train.timer"
OLD = f"{U}/hostctl-old-1.service"


def target(**shas: str) -> dict[str, TargetFile]:
    paths = {"api1": API1, "api2": API2, "env": ENV, "job": JOB, "timer": TIMER}
    out = {}
    for key, sha in shas.items():
        path = paths[key]
        workload = "train" if key in ("job", "timer") else "api"
        secret = key == "env"
        out[path] = TargetFile(path, sha, 0o600 if secret else 0o644, workload, secret)
    return out


def active(*units: str) -> dict[str, UnitState]:
    return {u: UnitState(u, active="active", file_state="enabled") for u in units}


def test_first_deploy_writes_everything_and_starts_units() -> None:
    plan = plan_files("h", target(api1="a", env="e", job="j", timer="t"), {}, {})
    assert [(f.action, f.path) for f in plan.files] == [
        ("write", ENV), ("write", API1), ("write", TIMER), ("write", JOB)]
    assert [(u.action, u.unit, u.reason) for u in plan.units] == [
        ("start", "hostctl-api-1.service", "new"),
        ("start", "hostctl-job-train.timer", "new")]
    assert plan.enable == ("hostctl-api-1.service", "hostctl-job-train.timer")


def test_identical_deploy_changes_nothing() -> None:
    t = target(api1="a", env="e", job="j", timer="t")
    live = {API1: "a", ENV: "e", JOB: "j", TIMER: "t"}
    plan = plan_files("h", t, live, active("hostctl-api-1.service", "hostctl-job-train.timer"))
    assert not plan.changed
    assert plan.unchanged == 4


def test_changed_unit_restarts_that_unit_alone() -> None:
    t = target(api1="a2", api2="b", env="e")
    live = {API1: "a", API2: "b", ENV: "e"}
    plan = plan_files("h", t, live, active("hostctl-api-1.service", "hostctl-api-2.service"))
    assert [(u.action, u.unit, u.reason) for u in plan.units] == [
        ("restart", "hostctl-api-1.service", "unit changed")]


def test_changed_secret_restarts_every_unit_of_its_workload() -> None:
    t = target(api1="a", api2="b", env="e2")
    live = {API1: "a", API2: "b", ENV: "e"}
    plan = plan_files("h", t, live, active("hostctl-api-1.service", "hostctl-api-2.service"))
    assert [(u.action, u.unit, u.reason) for u in plan.units] == [
        ("restart", "hostctl-api-1.service", "secrets changed"),
        ("restart", "hostctl-api-2.service", "secrets changed")]


def test_removed_workload_is_stopped_and_its_files_removed() -> None:
    plan = plan_files("h", target(api1="a"), {API1: "a", OLD: "o",
                                              "/etc/hostctl/env/old.env": "x"},
                      active("hostctl-api-1.service", "hostctl-old-1.service"))
    assert [(f.action, f.path, f.workload) for f in plan.files] == [
        ("remove", "/etc/hostctl/env/old.env", "old"), ("remove", OLD, "old")]
    assert [(u.action, u.unit) for u in plan.units] == [("stop", "hostctl-old-1.service")]


def test_failed_unit_with_unchanged_files_is_started_again() -> None:
    units = {"hostctl-api-1.service": UnitState("hostctl-api-1.service", active="failed",
                                                 file_state="enabled")}
    plan = plan_files("h", target(api1="a"), {API1: "a"}, units)
    assert [(u.action, u.reason) for u in plan.units] == [("start", "was failed")]


def test_only_leaves_other_workloads_alone() -> None:
    t = target(api1="a2", timer="t2")
    live = {API1: "a", TIMER: "t", OLD: "o"}
    plan = plan_files("h", t, live, active("hostctl-api-1.service"), owned={"train"})
    assert [(f.action, f.path) for f in plan.files] == [("write", TIMER)]


def test_unmanaged_files_are_never_removed() -> None:
    plan = plan_files("h", {}, {"/etc/systemd/system/nginx.service": "n"}, {})
    assert not plan.changed


def test_images_networks_and_image_rebuilds() -> None:
    facts = HostFacts("h", docker_ok=True, files={API1: "a"},
                      units=active("hostctl-api-1.service"),
                      images={"app:1": "sha256:old", "base:2": "sha256:b"},
                      networks=frozenset({"hostctl-shop"}))
    plan = plan_host(
        facts, target(api1="a"),
        {"app:1": ("push", "sha256:new"), "base:2": ("push", "sha256:b"),
         "registry.example.org/x:3": ("pull", None)},
        {"hostctl-shop", "hostctl-data"}, image_users={"app:1": {"api"}})
    assert [(i.ref, i.method, i.reason) for i in plan.images] == [
        ("app:1", "push", "newer build here"),
        ("registry.example.org/x:3", "pull", "missing on host")]
    assert plan.networks == ("hostctl-data",)
    assert [(u.action, u.unit, u.reason) for u in plan.units] == [
        ("restart", "hostctl-api-1.service", "image changed")]


def test_rollback_target_comes_from_a_release_manifest() -> None:
    manifest = {"files": [{"path": API1, "sha256": "a", "mode": "0644", "workload": "api"},
                          {"path": ENV, "sha256": "e", "mode": "0600", "workload": "api",
                           "secret": True}]}
    t = target_from_manifest(manifest)
    assert t[ENV].mode == 0o600 and t[ENV].secret
    plan = plan_files("h", t, {API1: "a2", ENV: "e", API2: "b"},
                      active("hostctl-api-1.service", "hostctl-api-2.service"))
    assert [(f.action, f.path) for f in plan.files] == [("write", API1), ("remove", API2)]
    assert [(u.action, u.unit) for u in plan.units] == [
        ("restart", "hostctl-api-1.service"), ("stop", "hostctl-api-2.service")]


def test_every_rendered_file_is_one_hostctl_reads_back() -> None:
    """A rendered file outside MANAGED_GLOBS would never be hashed on the host: every deploy
    would write it again and a no-op deploy would not be one."""
    from pathlib import Path

    from hostctl.layout import is_managed
    from hostctl.render.site import render_site
    from hostctl.spec.platform import with_platform
    from hostctl.validate import load_site

    example = Path(__file__).resolve().parents[3] / "inventories" / "site.yml"
    for files in render_site(with_platform(load_site(str(example)))).values():
        for f in files:
            assert is_managed(f.path), f.path


IMAGE_CASES = [
    # (what the host has, ref -> (method, local id)) -> the image action, or None
    ({"app:1": "sha256:a"}, ("app:1", "push", "sha256:a"), None),
    ({"app:1": "sha256:old"}, ("app:1", "push", "sha256:a"), "newer build here"),
    ({"app:latest": "sha256:a"}, ("app:1", "push", "sha256:a"),
     "on the host under another name only"),
    ({"other:7": "sha256:b"}, ("app:1", "push", "sha256:a"), "missing on host"),
    ({}, ("app:1", "push", "sha256:a"), "missing on host"),
    ({"app:latest": "sha256:a"}, ("docker.io/library/app", "push", "sha256:a"), None),
    ({"app:1": "sha256:a"}, ("docker.io/library/app:1", "push", "sha256:a"), None),
    ({"app:1": "sha256:x"}, ("app:1", "pull", None), None),
    ({"app:2": "sha256:x"}, ("app:1", "pull", None), "missing on host"),
]


def test_a_pushed_image_is_current_only_under_its_own_reference_and_id() -> None:
    for have, (ref, method, local_id), want in IMAGE_CASES:
        facts = HostFacts("h", docker_ok=True, images=have)
        plan = plan_host(facts, {}, {ref: (method, local_id)}, ())
        got = [(i.ref, i.method, i.reason) for i in plan.images]
        assert got == ([] if want is None else [(ref, method, want)]), (have, ref)
