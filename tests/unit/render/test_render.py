"""Rendering: whole files against golden copies, determinism, secrets, systemd's own verdict."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from hostctl.jobs import host_files as HF
from hostctl.observability.exporter_bundle import BUNDLE_PATH
from hostctl.render.output import replace_tree
from hostctl.render.site import render_site
from hostctl.spec.platform import with_platform
from hostctl.validate import load_site
from tests.rigs.site_factory import SERVICE, make_site
from tests.rigs.systemd_verify import analyze_verify, need_verify

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "inventories" / "site.yml"
GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "example"


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under root but the exporter's zipapp (a zip of this checkout, tested in
    test_observability_render): path -> bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not str(p).endswith(BUNDLE_PATH)}


def test_worked_example_matches_golden_files(tmp_path: Path) -> None:
    """The whole rendered tree, byte for byte. HOSTCTL_UPDATE_GOLDEN=1 rewrites the copies."""
    out = tmp_path / "out"
    replace_tree(render_site(with_platform(load_site(str(EXAMPLE)))), str(out))
    if os.environ.get("HOSTCTL_UPDATE_GOLDEN") == "1":
        shutil.rmtree(GOLDEN, ignore_errors=True)
        for rel in _tree(out):
            (GOLDEN / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(out / rel, GOLDEN / rel)  # with its mode
    got, want = _tree(out), _tree(GOLDEN)
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name].decode() == want[name].decode(), name


def test_rendering_is_byte_identical_across_runs_and_working_directories(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = render_site(load_site(str(EXAMPLE)))
    monkeypatch.chdir(tmp_path)
    second = render_site(load_site(os.path.relpath(EXAMPLE)))
    assert first == second


def test_secret_values_stay_out_of_units_and_local_output(tmp_path: Path) -> None:
    site = with_platform(load_site(str(EXAMPLE)))
    rendered = render_site(site)
    values = [s.reveal() for s in site.secrets.values.values()]
    env_files = [f for files in rendered.values() for f in files if f.secret]
    assert env_files, "the example has secrets, so it must render env files"
    for files in rendered.values():
        for f in files:
            for value in values:
                assert value.encode() not in f.shown()
                if not f.secret:
                    assert value.encode() not in f.content
    for f in env_files:
        assert f.mode == 0o600
        assert any(v.encode() in f.content for v in values)  # the host does get the value
    out = tmp_path / "out"
    replace_tree(rendered, str(out))
    for p in out.rglob("*.env"):
        assert p.stat().st_mode & 0o777 == 0o600
        assert not any(v in p.read_text() for v in values)


def test_render_replaces_the_folder_so_removed_workloads_leave_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    inv = make_site(tmp_path, {"a.yml": SERVICE,
                               "b.yml": SERVICE.replace("api", "web").replace("18080", "18090")})
    replace_tree(render_site(load_site(str(inv), environ={})), "out")
    assert (tmp_path / "out/app-1/etc/systemd/system/hostctl-web-1.service").exists()
    (tmp_path / "specs" / "b.yml").unlink()
    replace_tree(render_site(load_site(str(inv), environ={})), "out")
    assert not (tmp_path / "out/app-1/etc/systemd/system/hostctl-web-1.service").exists()
    assert (tmp_path / "out/app-1/etc/systemd/system/hostctl-api-1.service").exists()


def test_rendered_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    need_verify()
    units = tmp_path / "units"
    units.mkdir()
    for files in render_site(with_platform(load_site(str(EXAMPLE)))).values():
        for f in files:
            if f.path.startswith("/etc/systemd/system/"):
                (units / Path(f.path).name).write_bytes(f.content)
    checked = sorted(units.iterdir())
    assert len(checked) == 13  # with the exporter, Logstash and Elasticsearch
    for unit in checked:
        result = analyze_verify(unit)
        assert (result.returncode, result.stdout + result.stderr) == (0, ""), unit.name


def test_systemd_analyze_verify_does_reject_a_broken_unit(tmp_path: Path) -> None:
    """The check above could not fail if verify accepted anything: prove that it does not."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze missing")
    bad = tmp_path / "bad.service"
    bad.write_text("[Service]\nExecStart=/usr/bin/docker run %x\n")
    assert analyze_verify(bad).returncode != 0


def test_a_service_that_reaches_another_project_is_created_connected_then_started(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    inv = make_site(tmp_path, {
        "a.yml": SERVICE + "reach: [data]\n",
        "b.yml": SERVICE.replace("name: api", "name: db").replace("project: shop",
                                                                   "project: data")
        .replace("18080", "18090")})
    rendered = {f.path: f for f in render_site(load_site(str(inv), environ={}))["app-1"]}
    unit = rendered["/etc/systemd/system/hostctl-api-1.service"].content.decode()
    lines = [ln for ln in unit.splitlines() if ln.startswith("ExecStart")]
    assert lines[0] == "ExecStartPre=-/usr/bin/docker rm -f hostctl-api-1"
    assert lines[1].startswith("ExecStartPre=/usr/bin/docker create --rm --name hostctl-api-1 ")
    assert " --network hostctl-shop " in lines[1]
    assert lines[2:] == [
        "ExecStartPre=/usr/bin/docker network connect hostctl-data hostctl-api-1",
        "ExecStart=/usr/bin/docker start --attach hostctl-api-1"]
    if shutil.which("systemd-analyze") and Path("/usr/bin/docker").exists():
        path = tmp_path / "hostctl-api-1.service"
        path.write_text(unit)
        result = analyze_verify(path)
        assert (result.returncode, result.stdout + result.stderr) == (0, "")


GPU_SERVICE = SERVICE.replace("name: api", "name: infer").replace(
    "placement: {hosts: [app-1]}", "placement: {hosts: [gpu-1]}\nresources: gpu_medium")


def test_a_gpu_service_leases_its_devices_before_it_starts_and_releases_them_on_every_stop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    inv = make_site(tmp_path, {"a.yml": GPU_SERVICE})
    rendered = {f.path: f for f in render_site(load_site(str(inv), environ={}))["gpu-1"]}
    unit = rendered["/etc/systemd/system/hostctl-infer-1.service"].content.decode()
    lines = [ln for ln in unit.splitlines() if ln.startswith(("Exec", "EnvironmentFile"))]
    assert lines[0] == "EnvironmentFile=-/var/lib/hostctl/svc/hostctl-infer-1.service.env"
    assert lines[1:3] == [
        "ExecStartPre=-/usr/bin/docker rm -f hostctl-infer-1",
        "ExecStartPre=/var/lib/hostctl/bin/hostctl-jobs lease-service hostctl-infer-1.service 1"]
    # the leased devices, never a count, and the variable left for systemd to split
    assert " --cpus 8 --memory 17179869184b $HOSTCTL_GPU_ARGS --publish " in lines[3]
    assert "--gpus" not in unit
    assert lines[-2:] == [
        "ExecStopPost=-/usr/bin/docker rm -f hostctl-infer-1",
        "ExecStopPost=-/var/lib/hostctl/bin/hostctl-jobs release-service "
        "hostctl-infer-1.service"]
    # the host gets the queue's helper and its GPUs with the service, as with a job
    helper = rendered["/var/lib/hostctl/bin/hostctl-jobs"]
    assert (helper.mode, helper.content) == (0o755, HF.helper_text())
    assert rendered["/var/lib/hostctl/gpu/host.conf"].content.endswith(
        b"mode=nvidia\ndeclared=0\ndocker=/usr/bin/docker\nkeep_runs=500\n")
    if shutil.which("systemd-analyze") and Path("/usr/bin/docker").exists():
        path = tmp_path / "hostctl-infer-1.service"
        path.write_text(unit)
        result = analyze_verify(path)
        assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_hosts_without_jobs_or_gpu_services_get_no_queue_helper(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    inv = make_site(tmp_path, {"a.yml": SERVICE})
    rendered = render_site(load_site(str(inv), environ={}))
    assert not [f.path for files in rendered.values() for f in files
                if f.path.startswith("/var/lib/hostctl/")]


def test_every_run_mounts_its_projects_artifacts_volume() -> None:
    site = load_site(str(EXAMPLE))
    unit = {f.path: f for f in render_site(site)["gpu-1"]}[
        "/etc/systemd/system/hostctl-job-train-triage@.service"].content.decode()
    run = next(ln for ln in unit.splitlines() if ln.startswith("ExecStart="))
    assert (" --mount type=volume,src=hostctl-triage-artifacts,dst=/artifacts,"
            "volume-label=io.hostctl.managed=true,volume-label=io.hostctl.project=triage "
            "$HOSTCTL_RUN_ARGS ") in run


def test_a_jobs_own_volume_at_artifacts_is_refused_where_it_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hostctl.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    inv = make_site(tmp_path, {"j.yml": "kind: job\nname: etl\nproject: shop\nimage: x:1\n"
                                        "volumes: [out:/artifacts]\n"})
    with pytest.raises(ConfigError) as info:
        load_site(str(inv), environ={})
    assert [str(p) for p in info.value.problems] == [
        "specs/j.yml:5: volumes/0: every run has its project's artifacts volume at "
        "/artifacts; mount this one elsewhere"]


def test_gpu_services_that_cannot_all_hold_their_devices_are_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hostctl.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    inv = make_site(tmp_path, {"a.yml": GPU_SERVICE + "instances: 2\n"})
    with pytest.raises(ConfigError) as info:
        load_site(str(inv), environ={})
    assert [str(p) for p in info.value.problems] == [
        "specs/a.yml:10: resources: the GPU services on gpu-1 need 2 GPU(s) together "
        "(infer 2x1) and it has 1: some instances would never start; lower instances or "
        "narrow placement"]
    # one instance fits (the unit tests above render it)
    make_site(tmp_path, {"a.yml": GPU_SERVICE})
    assert load_site(str(inv), environ={}).workloads
