"""What the queue helper records for experiments (issue 12), run locally (conftest.helper):
the run's image id and metrics mount in its unit.env, the history of ended runs, keep_runs
retention, and the read, points and show scripts over the state it leaves."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest

from hostctl.jobs import host_files as HF
from hostctl.jobs import hostside as H
from tests.rigs.systemd_exec_parser import parse_exec_line

IMG = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


def _end(h: Any, run_id: str, result: str = "success", code: str = "0") -> None:
    assert h("admit", "train", run_id).returncode == 0
    res = h("finished", "train", run_id, SERVICE_RESULT=result, EXIT_STATUS=code)
    assert res.returncode == 0, res.stderr


def _unit_env(text: str) -> dict[str, str]:
    """unit.env as systemd's EnvironmentFile= reads these lines (NAME="v" or NAME=v; the
    helper writes no backslash in env mode)."""
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition("=")
        assert "\\" not in value
        out[name] = value[1:-1] if value.startswith('"') else value
    return out


def test_a_starting_run_gets_its_image_id_and_metrics_mount(helper: object) -> None:
    h: Any = helper
    (h.stub / "images").write_text(f"lab/app:1 {IMG}\n")
    h.prepare("r1", 1, image="lab/app:1")
    assert h("submit", "r1").returncode == 0
    run = h.root / "runs" / "r1"
    text = (run / "unit.env").read_text()
    assert text == (
        f"HOSTCTL_RUN_ARGS=\"'--env-file' '{run}/env' '--env' 'HOSTCTL_GPU_DEVICES=0' "
        f"'--mount' 'type=bind,src={run}/out,dst=/hostctl/out' "
        "'--env' 'HOSTCTL_METRICS=/hostctl/out/metrics.jsonl'\"\n"
        f"HOSTCTL_RUN_IMAGE={IMG}\n")
    # the unit's ExecStart, as systemd expands it with these values
    argv = parse_exec_line("/usr/bin/docker run $HOSTCTL_RUN_ARGS ${HOSTCTL_RUN_IMAGE} -c x",
                           {"i": "r1"}, _unit_env(text))
    assert argv == ["/usr/bin/docker", "run", "--env-file", f"{run}/env", "--env",
                    "HOSTCTL_GPU_DEVICES=0", "--mount",
                    f"type=bind,src={run}/out,dst=/hostctl/out", "--env",
                    "HOSTCTL_METRICS=/hostctl/out/metrics.jsonl", IMG, "-c", "x"]
    assert h.field("r1", "image_id") == IMG
    assert (run / "out").stat().st_mode & 0o7777 == 0o1777


def test_a_rerun_runs_its_pinned_image_or_fails_saying_it_is_gone(helper: object) -> None:
    h: Any = helper
    (h.stub / "images").write_text(f"lab/app:1 {OTHER}\n{IMG} {IMG}\n")
    h.prepare("r1", 0, image="lab/app:1", pin_image=IMG)
    h("submit", "r1")
    assert h.field("r1", "state") == "starting"
    assert (h.field("r1", "image_id"), h.field("r1", "image")) == (IMG, "lab/app:1")
    assert (h.root / "runs" / "r1" / "unit.env").read_text().endswith(
        f"\nHOSTCTL_RUN_IMAGE={IMG}\n")
    h.prepare("r2", 0, image="lab/app:1", pin_image=OTHER)
    h("submit", "r2")
    assert (h.field("r2", "state"), h.field("r2", "note")) == (
        "failed", f"the image {OTHER} is gone from this host (a rerun runs the image id of the "
                  "run it repeats)")
    assert not (h.root / "runs" / "r2" / "unit.env").exists()


def test_an_unknown_reference_is_pulled_by_docker_and_its_id_recorded_at_the_end(
        helper: object) -> None:
    h: Any = helper
    h.prepare("r1", 0, image="lab/app:2")
    h("submit", "r1")
    assert (h.root / "runs" / "r1" / "unit.env").read_text().endswith(
        "\nHOSTCTL_RUN_IMAGE=lab/app:2\n")
    assert h.field("r1", "image_id") == ""
    (h.stub / "images").write_text(f"lab/app:2 {IMG}\n")  # docker run pulled it
    _end(h, "r1")
    assert h.field("r1", "image_id") == IMG


def test_an_image_word_systemd_or_docker_would_misread_never_reaches_unit_env(
        helper: object) -> None:
    h: Any = helper
    for n, image in enumerate(["app:1 --privileged", "--privileged", "a'b", "a\\b"]):
        h.prepare(f"bad{n}", 0, image=image)
        h("submit", f"bad{n}")
        assert (h.field(f"bad{n}", "state"), h.field(f"bad{n}", "note")) == (
            "failed", "its image reference is not one Docker takes"), image
    h.prepare("bad9", 0, pin_image="-x")
    h("submit", "bad9")
    assert h.field("bad9", "note") == "its image reference is not one Docker takes"
    # no reference anywhere (a run from before hostctl sent one): the unit's default applies
    h.prepare("r2", 0)
    h("submit", "r2")
    assert h.field("r2", "state") == "starting"
    assert "HOSTCTL_RUN_IMAGE" not in (h.root / "runs" / "r2" / "unit.env").read_text()


def test_a_retry_starts_with_an_empty_metrics_directory_and_the_end_parses_it(
        helper: object) -> None:
    h: Any = helper
    h.prepare("r1", 0)
    h("submit", "r1")
    out = h.root / "runs" / "r1" / "out"
    (out / "metrics.jsonl").write_text('{"name": "loss", "value": 9}\n')
    assert h("admit", "train", "r1").returncode == 0
    h("finished", "train", "r1", SERVICE_RESULT="exit-code", EXIT_STATUS="1")
    assert h.field("r1", "state") == "queued"
    assert h.field("r1", "metrics_points") == "1"  # the failed attempt's, for now
    h("dispatch")
    assert h.field("r1", "state") == "queued"  # still in its back-off
    (h.root / "runs" / "r1" / "not_before").write_text("0\n")
    h("dispatch")
    assert h.field("r1", "state") == "starting" and list(out.iterdir()) == []
    assert [h.field("r1", f) for f in ("metrics", "metrics.tsv", "metrics_points")] == [
        "", "", ""]
    (out / "metrics.jsonl").write_text('{"name": "loss", "value": 0.5, "step": 1}\nbad\n')
    _end(h, "r1")
    assert (h.field("r1", "metrics"), h.field("r1", "metrics_points"),
            h.field("r1", "metrics_invalid")) == (
        '{"loss": {"last": 0.5, "min": 0.5, "max": 0.5, "n": 1, "step": 1}}', "1", "1")


def _history(h: Any) -> list[str]:
    return (h.root / "runs" / ".history").read_text().splitlines()


def test_ended_runs_go_to_the_history_without_env_points_or_out(helper: object) -> None:
    h: Any = helper
    h.prepare("r1", 0, image="x:1", experiment="lr-sweep")
    h("submit", "r1")
    (h.root / "runs" / "r1" / "out" / "metrics.jsonl").write_text(
        '{"name": "loss", "value": 1}\n')
    (h.root / "runs" / "r1" / "env").write_text("LR=0.1\n")
    assert _history(h) == []
    _end(h, "r1")
    lines = _history(h)
    fields = {line.split(":", 1)[0].split("/", 1)[1] for line in lines}
    assert all(line.startswith("r1/") for line in lines)
    assert {"state", "ended", "exit", "image", "experiment", "metrics", "metrics_points",
            "metrics_invalid", "metrics_dropped", "started", "seq"} <= fields
    assert not fields & {"env", "unit.env", "cancel", "metrics.tsv", "out"}
    assert "r1/state:succeeded" in lines and "r1/experiment:lr-sweep" in lines


def test_a_host_without_history_builds_it_once_from_its_ended_runs(helper: object) -> None:
    h: Any = helper
    for run_id, state in (("old1", "succeeded"), ("old2", "failed")):
        d = h.root / "runs" / run_id
        d.mkdir(parents=True)
        for k, v in {"job": "train", "state": state, "ended": "5"}.items():
            (d / k).write_text(f"{v}\n")
        (d / "env").write_text("A=1\n")
    h.prepare("q1", 5)  # needs more GPUs than there are: stays queued... and fails
    (h.root / "runs" / ".active").mkdir(parents=True)
    assert h("install-queue").returncode == 0
    assert sorted(_history(h)) == ["old1/ended:5", "old1/job:train", "old1/state:succeeded",
                                   "old2/ended:5", "old2/job:train", "old2/state:failed"]
    h("install-queue")  # not again
    assert len(_history(h)) == 6


def test_tick_keeps_the_last_keep_runs_ended_runs_of_each_job(helper: object) -> None:
    h: Any = helper
    conf = h.root / "gpu" / "host.conf"
    conf.write_bytes(HF.gpu_conf_text(HF.GpuConfig(1, "env", keep_runs=2)))
    ids = ["t1", "t2", "t3", "t4"]
    for run_id in ids:
        h.prepare(run_id, 0)
        h("submit", run_id)
        _end(h, run_id)
    h.prepare("e1", 0, job="etl")
    h("submit", "e1")
    assert h("admit", "etl", "e1").returncode == 0
    h("finished", "etl", "e1", SERVICE_RESULT="success", EXIT_STATUS="0")
    h.prepare("live", 0)
    h("submit", "live")
    h("admit", "train", "live")  # running: never pruned
    (h.stub / "active" / "hostctl-job-train@live.service").write_text("active\n")
    before = _history(h)
    res = h("tick")
    assert res.returncode == 0, res.stderr
    runs = h.root / "runs"
    assert sorted(p.name for p in runs.iterdir() if not p.name.startswith(".")) == [
        "e1", "live", "t3", "t4"]
    assert _history(h) == [line for line in before if not line.startswith(("t1/", "t2/"))]
    assert h.field("live", "state") == "running"
    assert not list(runs.glob(".history*.tmp")) and not (runs / ".history.tmp").exists()
    # nothing more to prune: the history stays as it is
    h("tick")
    assert _history(h) == [line for line in before if not line.startswith(("t1/", "t2/"))]


def _local(h: Any, lines: list[str]) -> str:
    """Run a read script against the helper's state directory instead of the host's."""
    text = H.script(lines).replace(H.STATE_DIR, str(h.root))
    res = subprocess.run(["sh", "-s"], input=text, capture_output=True, text=True, timeout=30)
    return res.stdout


def test_read_lists_the_history_and_the_active_runs(helper: object) -> None:
    h: Any = helper
    for run_id in ("a", "b"):
        h.prepare(run_id, 0, image="x:1")
        h("submit", run_id)
    _end(h, "a")
    (h.root / "runs" / "b" / "out" / "metrics.jsonl").write_text("b/state:forged\n")
    # a directory the history does not name is not listed (a pruned run's leftovers)
    stray = h.root / "runs" / "zz"
    stray.mkdir()
    (stray / "state").write_text("succeeded\n")
    hj = H.parse_read("h", _local(h, H.read_lines()))
    assert [(r.id, r.state, r.image) for r in hj.runs] == [("a", "succeeded", "x:1"),
                                                           ("b", "starting", "x:1")]
    r0, r1 = hj.runs
    selected = H.parse_read("h", _local(h, H.read_lines(select=["b"])))
    assert [(r.id, r.state) for r in selected.runs] == [("b", "starting")]
    # a search asks for the fields it needs: the others stay on the host
    slim = H.parse_read("h", _local(h, H.read_lines(fields=("state", "job"))))
    assert [(r.id, r.state, r.image, r.job) for r in slim.runs] == [
        ("a", "succeeded", "", r0.job), ("b", "starting", "", r1.job)]
    with pytest.raises(ValueError):
        H.read_lines(fields=("state", "job:x|"))
    # before the helper wrote a history: every directory, as before
    (h.root / "runs" / ".history").unlink()
    hj = H.parse_read("h", _local(h, H.read_lines()))
    assert sorted(r.id for r in hj.runs) == ["a", "b", "zz"]


def test_points_and_show_read_back_a_run(helper: object) -> None:
    h: Any = helper
    h.prepare("a", 0, image="x:1")
    h("submit", "a")
    (h.root / "runs" / "a" / "out" / "metrics.jsonl").write_text(
        '{"name": "loss", "value": 0.5, "step": 1}\n{"name": "loss", "value": 0.25, '
        '"step": 2}\n{"name": "acc", "value": 1}\n')
    _end(h, "a")
    points = H.parse_points_read(_local(h, H.points_lines(["a", "nope"])))
    assert points == {"a": {"loss": [(1, 0.5), (2, 0.25)], "acc": [(None, 1.0)]}, "nope": {}}
    shown = H.parse_show("h", "a", _local(h, H.show_lines("a")))
    assert shown.record is not None and shown.record.state == "succeeded"
    assert shown.record.metrics["loss"].last == 0.25
    assert shown.unit_env.startswith("HOSTCTL_RUN_ARGS=")
    assert shown.exec_start == ""  # no unit file here
    # its directory gone, its history lines still tell it
    shutil.rmtree(h.root / "runs" / "a")
    again = H.parse_show("h", "a", _local(h, H.show_lines("a")))
    assert again.record == shown.record and again.unit_env == ""
    missing = H.parse_show("h", "zz", _local(h, H.show_lines("zz")))
    assert (missing.record, missing.unit_env, missing.exec_start) == (None, "", "")
