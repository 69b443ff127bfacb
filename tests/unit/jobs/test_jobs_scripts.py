"""Job runs without hosts: record and read parsers on captured output, script builders,
host choice and shard slots, and the host-side queue helper itself run locally against a
stub systemctl (its FIFO, GPU leases, retries, cancel and reclaim)."""

from __future__ import annotations

import calendar
import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hostctl.jobs import host_files as HF
from hostctl.jobs import hostside as H
from hostctl.jobs import plan as P
from hostctl.jobs.records import RunRecord, latest_per_shard, parse_records, queue_positions
from tests.rigs.refusals import refusal

READ = """@@jobs 1
@@now 1700000010000
@@capacity 4 8589934592
@@devices 0 1
@@mode env
@@leases
0:ab12cd34
@@wants
@@units
train 1a2b3c4d5e6f
@@runs
ab12cd34/state:running
ab12cd34/job:train
ab12cd34/gpus:0
ab12cd34/need:1
ab12cd34/seq:1
ab12cd34/submitted:1700000000000
ab12cd34/started:1700000001000
./ff00ff00/state:queued
./ff00ff00/job:train
./ff00ff00/need:2
./ff00ff00/seq:2
./ff00ff00/submitted:1700000002000
.active/ignored:x
@@timers
NextElapseUSecRealtime=Sun 2026-11-22 07:41:30 UTC
LastTriggerUSec=n/a
Id=hostctl-job-nightly.timer
ActiveState=active

@@runtimes
{"runc":{"path":"runc"}}
@@end
"""


def test_read_output_parses_into_host_jobs() -> None:
    hj = H.parse_read("gpu-1", READ)
    assert (hj.cpus, hj.memory, hj.devices, hj.mode) == (4, 8589934592, ("0", "1"), "env")
    assert hj.leases == {"0": "ab12cd34"} and hj.units == {"train": "1a2b3c4d5e6f"}
    assert [(r.id, r.state, r.need, r.gpus) for r in hj.runs] == [
        ("ab12cd34", "running", 1, "0"), ("ff00ff00", "queued", 2, "")]
    t = hj.timers["hostctl-job-nightly.timer"]
    assert (t.next_ms, t.last_ms) == (calendar.timegm((2026, 11, 22, 7, 41, 30)) * 1000, None)
    assert hj.runtimes == frozenset({"runc"})


def test_an_answer_cut_short_is_an_error() -> None:
    with pytest.raises(H.JobsReadError, match="gpu-1: incomplete answer"):
        H.parse_read("gpu-1", READ.replace("@@end\n", ""))


@pytest.mark.parametrize(("fields", "status"), [
    ({"state": "succeeded", "exit": "0"}, 0),
    ({"state": "failed", "exit": "3"}, 3),
    ({"state": "failed", "exit": "TERM"}, 1),
    ({"state": "failed", "exit": ""}, 1),
    ({"state": "timed-out", "exit": "143"}, 124),
    ({"state": "cancelled", "exit": "143"}, 130),
])
def test_wait_exit_status(fields: dict[str, str], status: int) -> None:
    rec = parse_records("h", [f"r1/{k}:{v}" for k, v in fields.items()])[0]
    assert rec.exit_status() == status


def test_queue_positions_and_latest_shard_attempts() -> None:
    recs = [RunRecord("a", "h1", state="queued", seq=5), RunRecord("b", "h1", state="queued",
            seq=3), RunRecord("c", "h2", state="queued", seq=9),
            RunRecord("d", "h1", state="running", seq=1)]
    assert queue_positions(recs) == {"b": 1, "a": 2, "c": 1}
    first = RunRecord("g-1", "h1", state="failed", shard=1, submitted=10)
    again = RunRecord("g-1-r1", "h2", state="succeeded", shard=1, submitted=20)
    assert latest_per_shard([again, first]) == {1: again}
    assert P.failed_shards([first]) == [first] and P.failed_shards([first, again]) == []
    assert (P.retry_number("g-1"), P.retry_number("g-1-r2")) == (0, 2)
    assert P.shard_id("g", 3, 2) == "g-3-r2"


@pytest.mark.parametrize(("pairs", "message"), [
    (["A"], "--set 'A': give NAME=VALUE, NAME made of letters, digits and _"),
    (["1A=x"], "--set '1A=x': give NAME=VALUE, NAME made of letters, digits and _"),
    (["HOSTCTL_RUN_ID=x"], "--set HOSTCTL_RUN_ID: HOSTCTL_* variables are set by hostctl itself"),
    (["A=x\ny"], "--set A: the value must be one line"),
])
def test_set_values_are_checked(pairs: list[str], message: str) -> None:
    assert refusal(P.parse_sets, pairs) == message


def test_run_request_env_and_install_script() -> None:
    r = H.RunRequest("g-2", "train", "lab", "gpu-1", "hostctl-job-train@g-2.service",
                     shard=2, shards=4, env=(("EPOCHS", "3 = three"),))
    assert r.env_text() == ("HOSTCTL_RUN_ID=g-2\nHOSTCTL_SHARD_INDEX=2\nHOSTCTL_SHARD_COUNT=4\n"
                            "EPOCHS=3 = three\n")
    text = H.script(H.submit_lines([r]))
    assert "/var/lib/hostctl/bin/hostctl-jobs submit g-2 && echo '@@submitted'" in text
    install = H.script(H.install_lines(HF.GpuConfig(2, "env")))
    conf = HF.gpu_conf_text(HF.GpuConfig(2, "env"))
    assert conf == (b"# Written by hostctl: this host's GPUs as its inventory declares them, its\n"
                    b"# Docker, and how many ended runs of each job it keeps.\n"
                    b"mode=env\ndeclared=0 1\ndocker=docker\nkeep_runs=500\n")
    # the same files with the same bytes as a deploy renders (render.jobs_files)
    assert HF.helper_hash() in install and hashlib.sha256(conf).hexdigest() in install
    assert install.endswith("\n/var/lib/hostctl/bin/hostctl-jobs install-queue\n")
    with pytest.raises(ValueError):
        H.install_lines(HF.GpuConfig(1, "cuda"))
    with pytest.raises(ValueError):
        H.read_lines(select=["x; rm -rf /"])


def test_runtime_problem_only_for_real_gpus_without_nvidia() -> None:
    assert H.runtime_problem("gpu-1", 1, "nvidia", frozenset({"runc"})) == (
        "gpu-1: the inventory declares 1 GPU(s) but Docker on the host has no nvidia runtime "
        "(install the NVIDIA Container Toolkit and restart Docker), so `--gpus` cannot work")
    assert H.runtime_problem("gpu-1", 1, "nvidia", frozenset({"runc", "nvidia"})) is None
    assert H.runtime_problem("gpu-1", 1, "env", frozenset({"runc"})) is None
    assert H.runtime_problem("app-1", 0, "nvidia", frozenset({"runc"})) is None


def _hj(host: str, cpus: int, runs: tuple[RunRecord, ...] = (), devices: int = 0,
        leases: int = 0) -> H.HostJobs:
    return H.HostJobs(host, cpus=cpus, memory=8 << 30, devices=tuple(map(str, range(devices))),
                      leases={str(i): "x" for i in range(leases)}, runs=runs)


def test_room_pick_host_and_shard_slots() -> None:
    from hostctl.spec import model as m

    w = m.Workload("job", "shard", "lab", "img", resources=m.Resources(cpus=0.5))
    busy = (RunRecord("a", "h1", state="running", cpus=1500),)
    rooms = [P.room(_hj("h1", 2, busy), w), P.room(_hj("h2", 2), w)]
    assert [(r.free, r.total) for r in rooms] == [(1, 4), (4, 4)]
    assert P.pick_host(rooms) == "h2"
    slots = P.ShardSlots.from_rooms(rooms)
    assert slots.limits == {"h1": 5, "h2": 8}
    assert slots.assign(20, {}) == {"h1": 5, "h2": 8}
    assert slots.assign(3, {"h2": 7}) == {"h1": 3}  # the emptiest host first
    assert slots.assign(9, {"h2": 7}) == {"h1": 5, "h2": 1}
    capped = P.ShardSlots.from_rooms(rooms, max_parallel=3)
    assert sum(capped.assign(20, {}).values()) == 3
    gpu = m.Workload("job", "train", "lab", "img", resources=m.Resources(gpus=1))
    full = P.room(_hj("g", 8, devices=1, leases=1), gpu)
    assert (full.free, full.total) == (0, 1)


# -- the host-side helper, run locally -----------------------------------------------------



def test_helper_queue_leases_retries_and_cancel(helper: object) -> None:
    h: Any = helper
    for run_id, need in (("r1", 1), ("r2", 1), ("r3", 0)):
        h.prepare(run_id, need)
    assert h("submit", "r1", "r2", "r3").returncode == 0
    # r1 takes the one GPU, r2 waits for it, r3 needs none and is not held up by r2.
    assert [h.field(r, "state") for r in ("r1", "r2", "r3")] == ["starting", "queued",
                                                                 "starting"]
    assert (h.root / "gpu" / "lease" / "0").read_text() == "r1\n"
    assert "HOSTCTL_GPU_DEVICES=0" in (h.root / "runs" / "r1" / "unit.env").read_text()
    assert h("admit", "train", "r1").returncode == 0 and h.field("r1", "state") == "running"
    # r1 fails: it is queued again for its second attempt after a back-off, and its GPU
    # goes to r2 meanwhile.
    res = h("finished", "train", "r1", SERVICE_RESULT="exit-code", EXIT_STATUS="3")
    assert res.returncode == 0, res.stderr
    assert (h.field("r1", "state"), h.field("r1", "attempt")) == ("queued", "2")
    assert h.field("r2", "state") == "starting"
    assert any("--on-active=5s" in c for c in h.calls())
    # Cancelling the queued retry ends it for good.
    assert "@@cancel r1 cancelled" in h("cancel", "r1").stdout
    assert h.field("r1", "state") == "cancelled"
    h("admit", "train", "r2")
    h("finished", "train", "r2", SERVICE_RESULT="success", EXIT_STATUS="0")
    assert (h.field("r2", "state"), h.field("r2", "exit")) == ("succeeded", "0")
    assert not (h.root / "gpu" / "lease" / "0").exists()


def test_helper_reclaims_a_dead_holder_and_skips_a_timer_instance(helper: object) -> None:
    h: Any = helper
    h.prepare("dead", 1)
    h.prepare("next", 1)
    h("submit", "dead")
    h("admit", "train", "dead")  # running, holding GPU 0; its unit then vanishes
    h("submit", "next")
    h.vanish("dead")
    assert h.field("next", "state") == "queued"
    res = h("tick")
    assert res.returncode == 0, res.stderr
    assert h.field("dead", "state") == "failed" and h.field("dead", "note").startswith("lost:")
    assert h.field("next", "state") == "starting"
    # The timer's instance queues a fresh run and does not run itself (exit 1).
    res = h("admit", "train", "scheduled", HOSTCTL_JOB_GPUS="0", HOSTCTL_JOB_PROJECT="lab")
    assert res.returncode == 1 and "scheduled run queued as run" in res.stderr


def test_helper_reads_the_gpus_from_the_conf_hostctl_writes(helper: object,
                                                             tmp_path: Path) -> None:
    h: Any = helper
    conf = h.root / "gpu" / "host.conf"
    conf.write_bytes(HF.gpu_conf_text(HF.GpuConfig(2, "env")))
    assert h("install-queue").returncode == 0
    assert (h.root / "gpu" / "devices").read_text() == "0 1\n"
    # nvidia mode: the host's own view, when nvidia-smi answers
    smi = tmp_path / "bin" / "nvidia-smi"
    smi.write_text("#!/bin/sh\nprintf '0\\n3\\n'\n")
    smi.chmod(0o755)
    conf.write_bytes(HF.gpu_conf_text(HF.GpuConfig(2, "nvidia")))
    os.utime(conf, (2_000_000_000, 2_000_000_000))  # newer than the devices file
    assert h("install-queue").returncode == 0
    assert (h.root / "gpu" / "devices").read_text() == "0 3\n"
    assert (h.root / "gpu" / "mode").read_text() == "nvidia\n"


def test_helper_service_leases_block_jobs_and_are_released_or_reclaimed(
        helper: object, tmp_path: Path) -> None:
    h: Any = helper
    active = tmp_path / "stub" / "active"
    (active / "hostctl-a-1.service").write_text("activating\n")
    res = h("lease-service", "hostctl-a-1.service", "1")
    assert res.returncode == 0, res.stderr
    assert (h.root / "gpu" / "lease" / "0").read_text() == "svc:hostctl-a-1.service\n"
    env = (h.root / "svc" / "hostctl-a-1.service.env").read_text()
    assert env == "HOSTCTL_GPU_ARGS=\" '--env' 'HOSTCTL_GPU_DEVICES=0'\"\n"
    (active / "hostctl-a-1.service").write_text("active\n")
    # a job queued behind sees the GPU as taken
    h.prepare("r1", 1)
    h("submit", "r1")
    assert h.field("r1", "state") == "queued"
    # a second service cannot start: a clear line for its journal, and the GPU promised to it
    (active / "hostctl-b-1.service").write_text("activating\n")
    res = h("lease-service", "hostctl-b-1.service", "1")
    assert res.returncode == 1
    assert res.stderr == (
        "hostctl-jobs: hostctl-b-1.service cannot start: it needs 1 GPU(s) and 0 of this "
        "host's 1 are free (held by 0=svc:hostctl-a-1.service); it takes the next ones "
        "released (systemd retries it)\n")
    res = h("lease-service", "hostctl-c-1.service", "2")
    assert (res.returncode, res.stderr) == (1, "hostctl-jobs: hostctl-c-1.service cannot "
                                               "start: it needs 2 GPU(s) and this host has 1\n")
    # the first service stops: its GPU goes to the waiting service, not to the queued job
    (active / "hostctl-a-1.service").write_text("deactivating\n")
    assert h("release-service", "hostctl-a-1.service").returncode == 0
    assert not (h.root / "gpu" / "lease" / "0").exists()
    assert h.field("r1", "state") == "queued"
    assert h("lease-service", "hostctl-b-1.service", "1").returncode == 0
    # that service dies without its stop path running: the queue's pass reclaims its GPU
    (active / "hostctl-b-1.service").write_text("failed\n")
    assert h("tick").returncode == 0
    assert (h.root / "gpu" / "lease" / "0").read_text() == "r1\n"
    assert h.field("r1", "state") == "starting"


def test_plan_time_runtime_error_only_for_hosts_running_gpu_workloads() -> None:
    from hostctl.spec import model as m
    from hostctl.spec.secrets import SecretStore

    gpu = m.Host("gpu-1", "10.0.0.2", gpus=1)
    train = m.Workload("job", "train", "lab", "img", resources=m.Resources(gpus=1))
    cpu = m.Workload("job", "etl", "lab", "img")
    site = m.Site(m.Inventory("site.yml", "t", {"gpu-1": gpu}), (train, cpu), SecretStore())
    runc = frozenset({"runc"})
    assert P.gpu_runtime_error(site, gpu, runc) == (
        "gpu-1: the inventory declares 1 GPU(s) but Docker on the host has no nvidia runtime "
        "(install the NVIDIA Container Toolkit and restart Docker), so `--gpus` cannot work; "
        "needed by train (on a test host without GPUs, the test-only `gpu_mode: env` of its "
        "inventory entry hands out device ids instead)")
    assert P.gpu_runtime_error(site, gpu, runc | {"nvidia"}) is None
    assert P.gpu_runtime_error(site, gpu, None) is None  # Docker did not say
    assert P.gpu_runtime_error(site, gpu, runc, only=["etl"]) is None  # deploy --only etl
    env = m.Host("gpu-1", "10.0.0.2", gpus=1, gpu_mode="env")
    assert P.gpu_runtime_error(site, env, runc) is None
    no_gpu_work = m.Site(site.inventory, (cpu,), SecretStore())
    assert P.gpu_runtime_error(no_gpu_work, gpu, runc) is None


def test_facts_script_asks_docker_for_its_runtimes() -> None:
    from hostctl.hosts.facts import facts_script

    assert "( docker info --format '{{json .Runtimes}}' >\"$T/rt\" 2>/dev/null ) &" in \
        facts_script("docker")


def test_retry_failed_takes_failed_and_never_queued_shards_not_running_or_retried_ones(
        ) -> None:
    def run(run_id: str, shard: int, state: str, submitted: int) -> RunRecord:
        return RunRecord(run_id, "h", state=state, group="g", shard=shard, shards=6,
                         submitted=submitted)

    records = [run("g-0", 0, "succeeded", 1), run("g-1", 1, "failed", 1),
               run("g-2", 2, "timed-out", 1), run("g-2-r1", 2, "succeeded", 5),
               run("g-3", 3, "running", 1), run("g-4", 4, "cancelled", 1)]
    # shard 5 never got queued (hostctl was interrupted)
    assert P.shards_to_retry(records) == [1, 4, 5]
    assert P.shards_to_retry([]) == []


def test_helper_installs_the_queue_timer_once_also_from_a_first_lease(
        helper: object, tmp_path: Path) -> None:
    h: Any = helper
    units = tmp_path / "units"
    units.mkdir()
    res = h("install-queue", HOSTCTL_UNIT_DIR=str(units))
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [f"@@changed {units}/hostctl.jobs.service",
                                       f"@@changed {units}/hostctl.jobs.timer"]
    service = (units / "hostctl.jobs.service").read_text()
    assert f"\nExecStart={h.root}/bin/hostctl-jobs tick\n" in service
    assert "\nOnUnitActiveSec=20s\n" in (units / "hostctl.jobs.timer").read_text()
    assert h.calls()[-2:] == ["systemctl daemon-reload",
                              "systemctl enable --now --no-block hostctl.jobs.timer"]
    # unchanged: nothing written, no reload
    assert h("install-queue", HOSTCTL_UNIT_DIR=str(units)).stdout == ""
    assert len(h.calls()) == 2
    # a host only deployed to: the first lease (here a service's) installs it
    (units / "hostctl.jobs.timer").unlink()
    assert h("lease-service", "hostctl-a-1.service", "1",
             HOSTCTL_UNIT_DIR=str(units)).returncode == 0
    assert (units / "hostctl.jobs.timer").exists()
    assert h.calls()[-1] == "systemctl enable --now --no-block hostctl.jobs.timer"
    if shutil.which("systemd-analyze"):
        (h.root / "bin").mkdir()
        shutil.copy(Path(H.__file__).with_name("hostctl-jobs.sh"), h.root / "bin" / "hostctl-jobs")
        (h.root / "bin" / "hostctl-jobs").chmod(0o755)
        for name in ("hostctl.jobs.service", "hostctl.jobs.timer"):
            res = subprocess.run(["systemd-analyze", "verify", "--recursive-errors=no", name],
                                 capture_output=True, text=True, cwd=units, timeout=60)
            assert (res.returncode, res.stdout + res.stderr) == (0, ""), name


def test_a_helper_found_on_a_host_before_any_release_stays_executable_in_the_snapshot() -> None:
    from hostctl import layout as L

    assert [L.live_mode(p) for p in (L.JOBS_HELPER, L.GPU_CONF, "/etc/hostctl/env/a.env")] == [
        "0755", "0644", "0600"]


def _queued_request() -> H.RunRequest:
    return H.RunRequest("g-2", "train", "lab", "gpu-1", "hostctl-job-train@g-2.service")


def test_submit_and_read_queue_and_read_back_in_one_round_trip() -> None:
    from hostctl.jobs import ops
    from hostctl.runner.base import Result
    from hostctl.runner.recording import RecordingRunner

    request = _queued_request()
    runner = RecordingRunner("gpu-1")
    runner.respond(("sh", "-s"), Result(0, "@@submitted\n" + READ, ""))
    hj = ops.submit_and_read(runner, [request], ("ab12cd34",))
    assert [r.id for r in hj.runs] == ["ab12cd34", "ff00ff00"] and runner.round_trips == 1
    script = runner.calls[0].stdin.decode()  # type: ignore[union-attr]
    submit = H.script(H.submit_lines([request]))
    read = H.script(H.read_lines(("ab12cd34",)))
    # the runs' directories, then the queueing, and the read only when queueing succeeded
    assert script == (submit.replace(
        "/var/lib/hostctl/bin/hostctl-jobs submit g-2 && echo '@@submitted'\n",
        "if /var/lib/hostctl/bin/hostctl-jobs submit g-2 && echo '@@submitted'; then\n")
        + read + "fi\n")
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)


@pytest.mark.parametrize(("stderr", "message"), [
    (True, "gpu-1: queueing runs failed: hostctl-jobs: no room"),
    (False, "gpu-1: queueing runs failed: partial"),
])
def test_submit_and_read_says_why_queueing_failed(stderr: bool, message: str) -> None:
    from hostctl.errors import HostctlError
    from hostctl.jobs import ops
    from hostctl.runner.base import Result
    from hostctl.runner.recording import RecordingRunner

    request = _queued_request()
    runner = RecordingRunner("gpu-1")
    runner.respond(("sh", "-s"), Result(1, "partial\n", "hostctl-jobs: no room\n"))
    with pytest.raises(HostctlError) as err:
        ops.submit_and_read(runner, [request], ("g-2",), stderr=stderr)
    assert str(err.value) == message


def test_a_wait_polls_quickly_first_then_every_interval() -> None:
    from hostctl.jobs import ops

    assert [ops.poll_delay(n, 1.0) for n in range(7)] == [0.1, 0.2, 0.3, 0.5, 1.0, 1.0, 1.0]
    assert [ops.poll_delay(n, 0.25) for n in range(5)] == [0.1, 0.2, 0.25, 0.25, 0.25]
