"""GPU models and really-free GPUs in the host's queue helper (hostctl-jobs.sh), run locally
(conftest's helper: a tmp HOSTCTL_STATE, stub systemctl and docker) with the stand-in
nvidia-smi of tests/rigs first on PATH, printing the documented CSV from files written here."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hostctl.errors import HostctlError
from hostctl.jobs import host_files as HF
from hostctl.jobs import hostside as H
from hostctl.jobs import plan as P
from hostctl.jobs import view as V
from hostctl.ops import status as st
from hostctl.render.site import render_site
from hostctl.spec import model as m
from tests.rigs.site_factory import BASE_INVENTORY, made_site

STANDIN = Path(__file__).parents[2] / "rigs" / "nvidia_smi_standin"
UUIDS = ("GPU-6b9a4c2e-0000-4000-8000-000000000000", "GPU-1f0c7d3a-1111-4111-8111-111111111111",
         "GPU-9e8d7c6b-2222-4222-8222-222222222222")
MIXED = ((0, "a100-80g"), (1, "a100-80g"), (2, "l4"))


class Smi:
    """The stand-in's files: its GPUs (index, uuid) and their compute processes."""

    def __init__(self, tmp_path: Path, gpus: int):
        self.dir = tmp_path / "smi"
        self.dir.mkdir()
        (self.dir / "gpus").write_text("".join(f"{i}, {UUIDS[i]}\n" for i in range(gpus)))
        self.apps("")
        shutil.copy(STANDIN, tmp_path / "bin" / "nvidia-smi")

    def apps(self, text: str) -> None:
        (self.dir / "apps").write_text(text)

    def calls(self) -> list[str]:
        p = self.dir / "calls"
        return p.read_text().splitlines() if p.exists() else []


@pytest.fixture()
def rig(helper: object, tmp_path: Path) -> tuple[Any, Smi]:
    return helper, Smi(tmp_path, 3)


def run(h: Any, smi: Smi, *args: str, **env: str) -> Any:
    res = h(*args, NVIDIA_SMI_STANDIN=str(smi.dir), **env)
    assert res.returncode in (0, 1), res.stderr
    return res


def conf(h: Any, gpu: HF.GpuConfig) -> None:
    (h.root / "gpu" / "host.conf").write_bytes(HF.gpu_conf_text(gpu))
    (h.root / "gpu" / "devices").unlink()  # read again from the conf


APP = "{uuid}, 4242, python, 10240 MiB\n"


def test_a_foreign_process_keeps_its_gpu_out_of_leases(rig: tuple[Any, Smi]) -> None:
    h, smi = rig
    conf(h, HF.GpuConfig(2, "env"))
    smi.apps(APP.format(uuid=UUIDS[0]))
    for run_id in ("r1", "r2"):
        h.prepare(run_id, 1, cpus=100)
    run(h, smi, "submit", "r1", "r2")
    # GPU 0 runs a process hostctl did not start: r1 gets GPU 1, r2 waits.
    assert (h.field("r1", "state"), h.field("r1", "gpus")) == ("starting", "1")
    assert h.field("r2", "state") == "queued"
    assert not (h.root / "gpu" / "lease" / "0").exists()
    assert (h.root / "gpu" / "foreign").read_text() == "0\t4242\tpython\t10240 MiB\n"
    # The documented queries, each once per pass.
    assert smi.calls() == [
        "--query-compute-apps=gpu_uuid,pid,process_name,used_memory --format=csv,noheader",
        "--query-gpu=index,uuid --format=csv,noheader"]
    # r1's own process on its leased GPU 1 is hostctl's; the foreign one ends: r2 gets GPU 0.
    run(h, smi, "admit", "train", "r1")
    smi.apps(APP.format(uuid=UUIDS[1]).replace("python", "train.py"))
    run(h, smi, "tick")
    assert (h.field("r2", "state"), h.field("r2", "gpus")) == ("starting", "0")
    assert (h.root / "gpu" / "foreign").read_text() == ""


def test_a_process_name_with_commas_and_odd_bytes_is_kept_on_one_line(
        rig: tuple[Any, Smi]) -> None:
    h, smi = rig
    conf(h, HF.GpuConfig(2, "env"))
    smi.apps(f"{UUIDS[1]}, 77, /opt/my app, v2\t$(x), 512 MiB\r\n")
    h.prepare("r1", 2, cpus=100)
    run(h, smi, "submit", "r1")
    assert h.field("r1", "state") == "queued"  # it needs both GPUs; GPU 1 is busy
    assert (h.root / "gpu" / "foreign").read_text() == "1\t77\t/opt/my app, v2???x?\t512 MiB\n"


def test_without_an_answer_from_nvidia_smi_the_leases_alone_decide(
        rig: tuple[Any, Smi]) -> None:
    h, smi = rig
    conf(h, HF.GpuConfig(2, "env"))
    smi.apps(APP.format(uuid=UUIDS[0]))
    (smi.dir / "fail").write_text("")
    h.prepare("r1", 1, cpus=100)
    res = run(h, smi, "submit", "r1")
    assert (h.field("r1", "state"), h.field("r1", "gpus")) == ("starting", "0")
    assert ("hostctl-jobs: nvidia-smi did not list the GPUs' compute processes: leases alone "
            "decide\n") in res.stderr


def test_mixed_models_are_placed_right(rig: tuple[Any, Smi]) -> None:
    h, smi = rig
    conf(h, HF.GpuConfig(3, "env", devices=MIXED))
    assert (h.root / "gpu" / "host.conf").read_text().splitlines()[4] == (
        "models=0:a100-80g 1:a100-80g 2:l4")
    for run_id, need, models in (("l4a", 1, "l4"), ("l4b", 1, "l4"), ("any", 1, ""),
                                 ("big", 2, "a100-80g"), ("late", 1, ""),
                                 ("huge", 3, "l4,t4"), ("cpu", 0, "")):
        h.prepare(run_id, need, cpus=100, **({"gpu_models": models} if models else {}))
    run(h, smi, "submit", "l4a", "l4b", "any", "big", "late", "huge", "cpu")
    got = {r: (h.field(r, "state"), h.field(r, "gpus"))
           for r in ("l4a", "l4b", "any", "big", "late", "huge", "cpu")}
    assert got == {
        "l4a": ("starting", "2"),   # the one l4
        "l4b": ("queued", ""),      # waits for the l4
        "any": ("starting", "0"),   # any model: the first free device
        "big": ("queued", ""),      # two a100-80g, one free: waits, holding back the a100s
        "late": ("queued", ""),     # would take GPU 1, an a100 that `big` waits for
        "huge": ("failed", ""),     # more l4/t4 than the host has: refused at once
        "cpu": ("starting", ""),    # needs no GPU: not held up
    }
    assert h.field("huge", "note") == "needs 3 GPU(s) of model l4 or t4; this host has 1"
    # `any` ends: `big` gets both a100s before `late`.
    run(h, smi, "admit", "train", "any")
    run(h, smi, "finished", "train", "any", SERVICE_RESULT="success", EXIT_STATUS="0")
    assert (h.field("big", "state"), h.field("big", "gpus")) == ("starting", "0,1")
    assert h.field("late", "state") == "queued"
    env = (h.root / "runs" / "big" / "unit.env").read_text()
    assert "HOSTCTL_GPU_DEVICES=0,1" in env


def test_plain_counts_keep_their_order_and_messages(rig: tuple[Any, Smi]) -> None:
    h, smi = rig
    conf(h, HF.GpuConfig(3, "env"))
    for run_id, need in (("a", 1), ("b", 2), ("c", 1), ("d", 4)):
        h.prepare(run_id, need, cpus=100)
    run(h, smi, "submit", "a", "b", "c", "d")
    assert [h.field(r, "gpus") for r in ("a", "b", "c")] == ["0", "1,2", ""]
    assert h.field("c", "state") == "queued"
    assert h.field("d", "note") == "needs 4 GPU(s); this host has 3"


def test_service_leases_follow_the_model_and_name_foreign_processes(
        rig: tuple[Any, Smi], tmp_path: Path) -> None:
    h, smi = rig
    conf(h, HF.GpuConfig(3, "env", devices=MIXED))
    smi.apps(APP.format(uuid=UUIDS[2]))
    active = tmp_path / "stub" / "active"
    (active / "hostctl-b-1.service").write_text("activating\n")
    res = run(h, smi, "lease-service", "hostctl-b-1.service", "1", "l4")
    assert res.returncode == 1
    assert res.stderr == (
        "hostctl-jobs: hostctl-b-1.service cannot start: it needs 1 GPU(s) of model l4 and 0 "
        "of this host's 1 are free (held by); busy with processes hostctl did not start: 2 "
        "(pid 4242 python, 10240 MiB); it takes the next ones released (systemd retries it)\n")
    res = run(h, smi, "lease-service", "hostctl-c-1.service", "2", "l4")
    assert res.stderr == ("hostctl-jobs: hostctl-c-1.service cannot start: it needs 2 GPU(s) "
                          "of model l4 and this host has 1\n")
    res = run(h, smi, "lease-service", "hostctl-d-1.service", "2", "h100,a100-80g")
    assert res.returncode == 0, res.stderr
    assert (h.root / "svc" / "hostctl-d-1.service.env").read_text() == (
        "HOSTCTL_GPU_ARGS=\" '--env' 'HOSTCTL_GPU_DEVICES=0,1'\"\n")


def test_a_timer_run_carries_its_models(rig: tuple[Any, Smi]) -> None:
    h, smi = rig
    conf(h, HF.GpuConfig(3, "env", devices=MIXED))
    res = run(h, smi, "admit", "train", "scheduled", HOSTCTL_JOB_GPUS="1",
              HOSTCTL_JOB_GPU_MODELS="l4", HOSTCTL_JOB_PROJECT="lab")
    assert res.returncode == 1
    [run_dir] = [p for p in (h.root / "runs").iterdir() if not p.name.startswith(".")]
    assert (run_dir / "gpu_models").read_text() == "l4\n"
    assert (run_dir / "gpus").read_text() == "2\n"


def test_host_conf_names_models_only_when_the_inventory_does() -> None:
    assert HF.gpu_conf_text(HF.GpuConfig(2, "env", devices=((1, "l4"), (3, "t4")))) == (
        b"# Written by hostctl: this host's GPUs as its inventory declares them, its\n"
        b"# Docker, and how many ended runs of each job it keeps.\n"
        b"mode=env\ndeclared=1 3\nmodels=1:l4 3:t4\ndocker=docker\nkeep_runs=500\n")
    plain = m.Host("h", "10.0.0.1", gpus=2, gpu_mode="env", docker="docker")
    assert HF.gpu_conf_text(HF.gpu_config(plain)) == HF.gpu_conf_text(HF.GpuConfig(2, "env"))
    with pytest.raises(ValueError):
        HF.gpu_conf_text(HF.GpuConfig(1, "env", devices=((0, "l4\nmode=x"),)))


READ = """@@jobs 1
@@now 1700000010000
@@capacity 4 8589934592
@@devices 0 1 2
@@mode nvidia
@@models 0:a100-80g 1:a100-80g 2:l4
@@foreign
0\t4242\tpython\t10240 MiB
garbled line
@@leases
@@wants
@@units
@@runs
@@timers
@@end
"""


def test_hostctl_jobs_names_a_foreign_process() -> None:
    hj = H.parse_read("gpu-1", READ)
    assert hj.models == {"0": "a100-80g", "1": "a100-80g", "2": "l4"}
    assert hj.foreign == (H.ForeignProcess("0", 4242, "python", "10240 MiB"),)
    assert V.foreign_lines("gpu-1", hj.foreign) == [
        "gpu-1 GPU 0: busy with a process hostctl did not start (pid 4242 python, 10240 MiB)"]
    assert "@@models" in H.script(H.read_lines()) and "gpu/foreign" in H.script(H.read_lines())
    assert (hj.gpus_of(("l4",)), hj.gpus_free(), hj.gpus_free(("a100-80g",))) == (
        ["2"], ["1", "2"], ["1"])


MODELS_INVENTORY = BASE_INVENTORY.replace(
    "gpu-1: {address: 10.0.0.2, labels: {role: gpu}, gpus: 1}",
    "gpu-1: {address: 10.0.0.2, labels: {role: gpu}, "
    "gpus: [{model: a100-80g, count: 2}, {model: l4, count: 1}]}")
GPU_JOB = ("kind: job\nname: train\nproject: lab\nimage: x:1\n"
           "placement: {labels: {role: gpu}}\nresources: {gpus: 1, gpu_model: l4}\n")


def test_a_run_request_carries_the_models_its_spec_accepts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    site = made_site(tmp_path, {"a.yml": GPU_JOB}, MODELS_INVENTORY, environ={})
    w = site.workloads[0]
    [host] = P.job_hosts(site, w)
    req = P.request(w, host, "g-0")
    assert (req.need, req.gpu_models, req.fields()["gpu_models"]) == (1, ("l4",), "l4")
    big = replace(w, resources=replace(w.resources, gpus=2))
    with pytest.raises(HostctlError) as exc:
        P.job_hosts(site, big, only="gpu-1")
    assert str(exc.value) == "train needs 2 GPU(s) of model l4; gpu-1 has 1"
    with pytest.raises(HostctlError) as exc:
        P.job_hosts(site, big)
    assert str(exc.value) == "train: no host matches its placement with 2 GPU(s) of model l4"
    plain = H.RunRequest("r", "train", "lab", "gpu-1", "u", need=1)
    assert "gpu_models" not in plain.fields()


def test_units_and_host_conf_carry_the_models(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    service = GPU_JOB.replace("kind: job", "kind: service").replace("name: train", "name: infer")
    site = made_site(tmp_path, {"a.yml": GPU_JOB, "b.yml": service}, MODELS_INVENTORY,
                     environ={})
    files = {f.path: f.content.decode() for f in render_site(site)["gpu-1"]}
    unit = files["/etc/systemd/system/hostctl-infer-1.service"]
    assert "ExecStartPre=/var/lib/hostctl/bin/hostctl-jobs lease-service " \
           "hostctl-infer-1.service 1 l4\n" in unit
    job = files["/etc/systemd/system/hostctl-job-train@.service"]
    assert " HOSTCTL_JOB_GPU_MODELS=l4" in job
    conf = files["/var/lib/hostctl/gpu/host.conf"]
    assert "declared=0 1 2\nmodels=0:a100-80g 1:a100-80g 2:l4\n" in conf


def test_status_names_a_gpu_busy_with_a_foreign_process(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    site = made_site(tmp_path, {"a.yml": GPU_JOB}, MODELS_INVENTORY, environ={})
    assert "/var/lib/hostctl/gpu/foreign" in st.status_script("/usr/bin/docker")
    text = ("@@now 5\n@@release \n@@docker\nok 27.0\n@@gpu-foreign\n"
            "0\t4242\tpython\t10240 MiB\nnot a process line\n@@end\n")
    report = st.host_report(site, st.parse_status("gpu-1", text))
    assert st.report_lines({"gpu-1": report}) == [
        "gpu-1  release (none)",
        "  ! GPU 0: busy with a process hostctl did not start (pid 4242 python, 10240 MiB); "
        "hostctl leases it to nothing until it ends",
        "  nothing from hostctl on this host"]
    assert st.report_json({"gpu-1": report})["hosts"]["gpu-1"]["foreign_gpu_processes"] == [
        {"gpu": "0", "pid": 4242, "process": "python", "memory": "10240 MiB"}]


def test_the_queue_timer_refreshes_what_it_knows_of_foreign_processes(
        rig: tuple[Any, Smi]) -> None:
    h, smi = rig
    conf(h, HF.GpuConfig(2, "env"))
    smi.apps(APP.format(uuid=UUIDS[1]))
    run(h, smi, "tick")  # nothing queued: still asked, once
    assert (h.root / "gpu" / "foreign").read_text() == "1\t4242\tpython\t10240 MiB\n"
    assert len(smi.calls()) == 2
    smi.apps("")
    run(h, smi, "tick")
    assert (h.root / "gpu" / "foreign").read_text() == ""
    assert len(smi.calls()) == 3  # no process listed: no index query
    h.prepare("r1", 1, cpus=100)
    run(h, smi, "submit", "r1")
    assert len(smi.calls()) == 4 and h.field("r1", "state") == "starting"
    run(h, smi, "tick")  # one scan for the pass, though it dispatches too
    assert len(smi.calls()) == 5
