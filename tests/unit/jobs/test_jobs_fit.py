"""A run that can never fit: `hostctl run` refuses, before anything is queued, a run asking
more CPUs, memory or GPUs than every eligible host has (as the host reported them), and
leaves out the hosts that never can when others can. And the host's queue never retries a
run Docker could not start (exit 125, 126, 127)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from hostctl.cli import jobs as cli_jobs
from hostctl.cli.root import main
from hostctl.jobs import hostside as H
from hostctl.jobs import ops
from hostctl.jobs import plan as P
from hostctl.runner.base import Result
from hostctl.runner.recording import RecordingRunner
from hostctl.spec.hashing import spec_hash
from hostctl.spec.model import Site
from hostctl.validate import load_site
from tests.rigs.site_factory import make_site

GiB = 2**30
INVENTORY = """\
site: t
hosts:
  app-1: {address: 10.0.0.1, labels: {role: app}}
  gpu-1: {address: 10.0.0.2, labels: {role: gpu}, gpus: 1}
  gpu-2: {address: 10.0.0.3, labels: {role: gpu}, gpus: 1}
profiles:
  gpu_medium: {cpus: 8, memory: 16Gi, gpus: 1}
specs: [specs/*.yml]
secrets: {env_file: secrets.env}
"""


def _job(name: str, role: str, **more: object) -> dict[str, object]:
    """A job of project triage in its training image, placed on the hosts with `role`."""
    return {"kind": "job", "name": name, "project": "triage",
            "image": "example.org/triage/train:1.0", **more,
            "placement": {"labels": {"role": role}}}


SPECS = {"jobs.yml": yaml.safe_dump_all([
    _job("train-triage", "gpu", resources="gpu_medium"),
    _job("half", "app", resources={"cpus": 2.5, "memory": "512Mi"}),
    _job("plain", "app"),
])}


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_site(tmp_path_factory.mktemp("fit-site"), SPECS, INVENTORY)


@pytest.fixture(scope="module")
def site(inventory: Path) -> Site:
    return load_site(str(inventory))


def _hj(site: Site, host: str, cpus: int, memory: float, devices: int) -> H.HostJobs:
    """A host's answer: its CPUs, memory in GiB and GPU devices, every job deployed."""
    return H.HostJobs(host, cpus=cpus, memory=round(memory * GiB),
                      devices=tuple(map(str, range(devices))),
                      units={w.name: spec_hash(w) for w in site.jobs})


TOO_FEW_CPUS = ("train-triage asks 8 CPUs, 16 GiB memory, 1 GPU: no eligible host has that "
                "much (gpu-1 has 2 CPUs, 23.4 GiB, 1 GPU: too few CPUs; gpu-2 has 4 CPUs, "
                "23.4 GiB, 1 GPU: too few CPUs)")


@pytest.mark.parametrize(("job", "hosts", "ready", "warnings", "errors"), [
    # Neither GPU host has 8 CPUs: refused, each host with what it has.
    ("train-triage", [("gpu-1", 2, 23.4, 1), ("gpu-2", 4, 23.4, 1)], [], [], [TOO_FEW_CPUS]),
    # One has: the other is left out with a note.
    ("train-triage", [("gpu-1", 2, 23.4, 1), ("gpu-2", 16, 62.8, 1)], ["gpu-2"],
     ["train-triage asks 8 CPUs, 16 GiB memory, 1 GPU; gpu-1 has 2 CPUs, 23.4 GiB, 1 GPU: "
      "too few CPUs: left out"], []),
    # Exactly as much as it asks fits.
    ("train-triage", [("gpu-1", 8, 16, 1), ("gpu-2", 8, 16, 1)], ["gpu-1", "gpu-2"], [], []),
    # Every way short at once; memory under a GiB in MiB.
    ("train-triage", [("gpu-1", 1, 0.5, 0)], [], [],
     ["train-triage asks 8 CPUs, 16 GiB memory, 1 GPU: no eligible host has that much "
      "(gpu-1 has 1 CPU, 512 MiB, no GPUs: too few CPUs, too little memory, too few GPUs)"]),
    ("train-triage", [("gpu-1", 32, 15.9, 1)], [], [],
     ["train-triage asks 8 CPUs, 16 GiB memory, 1 GPU: no eligible host has that much "
      "(gpu-1 has 32 CPUs, 15.9 GiB, 1 GPU: too little memory)"]),
    # Docker takes --cpus up to the host's CPU count: 2.5 on 2 is refused.
    ("half", [("app-1", 2, 4, 0)], [], [],
     ["half asks 2.5 CPUs, 512 MiB memory: no eligible host has that much (app-1 has "
      "2 CPUs, 4 GiB, no GPUs: too few CPUs)"]),
    ("half", [("app-1", 3, 4, 0)], ["app-1"], [], []),
    # A job asking nothing fits anywhere; a host that did not say what it has is not judged.
    ("plain", [("app-1", 1, 0.5, 0)], ["app-1"], [], []),
    ("train-triage", [("gpu-1", 0, 0, 1)], ["gpu-1"], [], []),
])
def test_preflight_leaves_out_or_refuses_hosts_that_can_never_hold_the_run(
        site: Site, job: str, hosts: list[tuple[str, int, float, int]], ready: list[str],
        warnings: list[str], errors: list[str]) -> None:
    seen: dict[str, H.HostJobs | Exception] = {h[0]: _hj(site, *h) for h in hosts}
    got_ready, got_warnings, got_errors = ops.preflight(site, P.find_job(site, job), seen)
    assert (list(got_ready), got_warnings, got_errors) == (ready, warnings, errors)


def test_a_host_that_cannot_be_read_and_one_too_small_are_both_said(site: Site) -> None:
    w = P.find_job(site, "train-triage")
    seen: dict[str, H.HostJobs | Exception] = {
        "gpu-1": _hj(site, "gpu-1", 2, 23.4, 1),
        "gpu-2": ops.HostctlError("gpu-2: reading its runs failed: no output")}
    assert ops.preflight(site, w, seen) == ({}, [], [
        "gpu-2: reading its runs failed: no output",
        "train-triage asks 8 CPUs, 16 GiB memory, 1 GPU: no eligible host has that much "
        "(gpu-1 has 2 CPUs, 23.4 GiB, 1 GPU: too few CPUs)"])


# -- through the CLI, with recording runners ------------------------------------------------

def _answer(site: Site, cpus: int) -> Result:
    """What a host's read round trip prints: `cpus` CPUs, 23.4 GiB, one GPU, the jobs
    deployed, and one ended run of train-triage (what --rerun looks for)."""
    units = "".join(f"{w.name} {spec_hash(w)}\n" for w in site.jobs)
    return Result(0, f"@@jobs 1\n@@now 1700000000000\n@@capacity {cpus} "
                     f"{round(23.4 * GiB)}\n@@devices 0\n@@mode env\n@@leases\n@@wants\n"
                     f"@@units\n{units}@@runs\nold1/state:succeeded\nold1/job:train-triage\n"
                     f"old1/image_id:sha256:{'a' * 64}\n@@end\n", "")


@pytest.fixture
def runners(monkeypatch: pytest.MonkeyPatch, site: Site) -> dict[str, RecordingRunner]:
    hosts = {name: RecordingRunner(name, default=_answer(site, cpus))
             for name, cpus in (("app-1", 2), ("gpu-1", 2), ("gpu-2", 4))}

    @contextmanager
    def connected(_: Any, names: Any) -> Iterator[Any]:
        yield SimpleNamespace(runners={n: hosts[n] for n in names}, who="ops@laptop")

    monkeypatch.setattr(cli_jobs, "_connected", connected)
    return hosts


@pytest.mark.parametrize("args", [
    (), ("--shards", "3"), ("--host", "gpu-1"), ("--rerun", "old1"),
])
def test_run_refuses_before_anything_is_queued(inventory: Path, runners: dict[str, Any],
                                               args: tuple[str, ...]) -> None:
    job = () if "--rerun" in args else ("train-triage",)
    res = CliRunner().invoke(main, ["run", "-i", str(inventory), *job, *args])
    message = TOO_FEW_CPUS
    if "--host" in args:
        message = message.split("; gpu-2")[0] + ")"
    assert (res.exit_code, res.output) == (1, f"error: {message}\n")
    sent = [c.stdin or b"" for r in runners.values() for c in r.calls]
    assert sent and not [s for s in sent if b" submit " in s]


# -- the host's queue: a run Docker could not start is not retried -------------------------

DOCKER_SAID = ("docker: Error response from daemon: pull access denied for ghost, repository "
               "does not exist or may require 'docker login'")


@pytest.mark.parametrize(("result", "status", "state", "attempt", "note"), [
    ("exit-code", "125", "failed", "1",
     f"docker could not start it (exit 125): not retried ({DOCKER_SAID})"),
    ("exit-code", "126", "failed", "1",
     f"its command could not be invoked (exit 126): not retried ({DOCKER_SAID})"),
    ("exit-code", "127", "failed", "1",
     f"its command was not found (exit 127): not retried ({DOCKER_SAID})"),
    # Any other failure is the job's own: retried while it has attempts left.
    ("exit-code", "124", "queued", "2", "attempt 1 failed (exit 124); retried after 5s"),
    ("exit-code", "1", "queued", "2", "attempt 1 failed (exit 1); retried after 5s"),
    # A run killed by a signal is no start error, whatever the number.
    ("signal", "127", "queued", "2", "attempt 1 failed (exit 127); retried after 5s"),
])
def test_the_queue_never_retries_a_run_docker_could_not_start(
        helper: object, result: str, status: str, state: str, attempt: str,
        note: str) -> None:
    h: Any = helper
    # The unit's journal as docker and systemd leave it: the helper's lines and docker's
    # pointer to its help are not what docker said.
    (h.stub / "journal").write_text(
        "hostctl-jobs: run r1 starts\n"
        "Unable to find image 'ghost:1' locally\n"
        f"{DOCKER_SAID}\r\n"
        "\n"
        "Run 'docker run --help' for more information\n")
    h.prepare("r1", 0, attempts=3)
    assert h("submit", "r1").returncode == 0
    assert h("admit", "train", "r1").returncode == 0
    res = h("finished", "train", "r1", SERVICE_RESULT=result, EXIT_STATUS=status)
    assert res.returncode == 0, res.stderr
    got = tuple(h.field("r1", f) for f in ("state", "attempt", "exit", "note"))
    assert got == (state, attempt, status, note)
    retry_timers = [c for c in h.calls() if c.startswith("systemd-run")]
    assert bool(retry_timers) == (state == "queued")
    if state == "failed":
        assert not (h.root / "runs" / ".active" / "r1").exists()
        assert "journalctl _SYSTEMD_UNIT=hostctl-job-train@r1.service -n 10 -o cat " \
               "--no-pager" in h.calls()


def test_a_start_error_with_nothing_in_the_journal_says_so_alone(helper: object) -> None:
    h: Any = helper
    h.prepare("r1", 0, attempts=2)
    h("submit", "r1")
    h("admit", "train", "r1")
    h("finished", "train", "r1", SERVICE_RESULT="exit-code", EXIT_STATUS="125")
    assert (h.field("r1", "state"), h.field("r1", "note")) == (
        "failed", "docker could not start it (exit 125): not retried")


def test_cancel_of_a_waiting_run_ends_it_before_it_ever_starts(helper: object) -> None:
    h: Any = helper
    h.prepare("r1", 1)
    h.prepare("r2", 1)
    h("submit", "r1", "r2")
    assert (h.field("r1", "state"), h.field("r2", "state")) == ("starting", "queued")
    res = h("cancel", "r2")
    assert res.stdout == "@@cancel r2 cancelled\n", res.stderr
    assert (h.field("r2", "state"), h.field("r2", "note")) == (
        "cancelled", "cancelled before it started")
    assert not (h.root / "runs" / ".active" / "r2").exists()
    # Nothing was stopped (nothing ran), and when the GPU frees, r2 does not take it.
    assert not [c for c in h.calls() if c.startswith("systemctl stop")]
    h("admit", "train", "r1")
    h("finished", "train", "r1", SERVICE_RESULT="success", EXIT_STATUS="0")
    assert (h.field("r2", "state"), h.field("r2", "started")) == ("cancelled", "")
    assert not (h.root / "gpu" / "lease" / "0").exists()


def test_cancel_of_a_queued_run_through_the_cli(inventory: Path, site: Site,
                                                runners: dict[str, Any]) -> None:
    read = _answer(site, 2).stdout.replace("old1/state:succeeded", "q1/state:queued").replace(
        "old1/", "q1/")

    def answer(call: Any) -> Result:
        return Result(0, "@@cancel q1 cancelled\n" if b"hostctl-jobs cancel q1" in call.stdin
                      else read, "")

    runners["gpu-1"] = RecordingRunner("gpu-1", default=answer)
    runners["gpu-2"] = RecordingRunner("gpu-2", default=_answer(site, 4))
    res = CliRunner().invoke(main, ["cancel", "-i", str(inventory), "q1"])
    assert (res.exit_code, res.output) == (0, "run q1 on gpu-1: cancelled\n")
    # Found, then cancelled: no wait for a container to stop (none ever ran).
    assert len(runners["gpu-1"].calls) == 2


# -- the host's memory, as the read and the queue see it -----------------------------------

def _mem_total() -> int:
    kb = next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
              if line.startswith("MemTotal:"))
    return int(kb) * 1024


def test_the_read_reports_the_whole_memory_of_a_host_beyond_2_gib() -> None:
    # Debian's awk (mawk) prints at most 2^31 - 1 for %d: every host had "2 GiB".
    line = next(x for x in H.read_lines() if "@@capacity" in x)
    out = subprocess.run(["sh", "-c", line], capture_output=True, text=True, check=True)
    assert out.stdout.split()[2] == str(_mem_total())


def test_the_queue_counts_the_whole_memory_of_a_host_beyond_2_gib(helper: object) -> None:
    if _mem_total() < 7 * GiB:
        pytest.skip("needs a machine with more than 6 GiB of memory")
    h: Any = helper
    h.prepare("r1", 0, memory=3 * GiB)
    h.prepare("r2", 0, memory=3 * GiB)
    h("submit", "r1", "r2")
    assert (h.field("r1", "state"), h.field("r2", "state")) == ("starting", "starting")
