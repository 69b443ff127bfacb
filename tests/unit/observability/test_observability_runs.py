"""The exporter and the runs that ended on its host: the run history read incrementally
(a run half appended, a history pruned by retention, each run taken once), what it publishes
of them (checked by `promtool check metrics`) and the run records it ships as GELF."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from hostctl.jobs.records import record_from
from hostctl.observability.exporter import ExporterConf, Sampler, State, registry_for
from hostctl.observability.exporter_audit import MAX_DATAGRAM
from hostctl.observability.exporter_run_log import RunShipper, encode, gelf_run_message
from hostctl.observability.exporter_runs import (
    EXPERIMENTS_KEPT,
    Cursor,
    RunTotals,
    history_path,
    read_new,
)
from tests.rigs.exporter_host import FakeHost

T = 1_700_000_000_000  # epoch ms


def run_lines(rid: str, **fields: Any) -> str:
    """A run's record as the queue appends it to the history: `ID/FIELD:VALUE` lines, in
    the order `grep -H '' ID/*` prints them."""
    base = {"job": "train", "project": "ml", "state": "succeeded", "ended": T}
    return "".join(f"{rid}/{k}:{v}\n" for k, v in sorted({**base, **fields}.items()))


def metrics(**last: float) -> str:
    return json.dumps({k: {"last": v, "min": v - 1, "max": v + 1, "n": 3, "step": 2}
                       for k, v in last.items()})


def take(path: Path, cur: Cursor, **kw: Any) -> tuple[list[str], Cursor]:
    batch = read_new(str(path), cur, "gpu-1", **kw)
    return [r.id for r in batch.new], batch.cursor


# -- reading the history -----------------------------------------------------------------------

def test_runs_are_taken_once_and_the_last_one_when_the_file_stands_still(tmp_path: Path
                                                                          ) -> None:
    hist = tmp_path / ".history"
    assert take(hist, Cursor()) == ([], Cursor())  # no history yet
    hist.write_text(run_lines("r1") + run_lines("r2", state="failed"))
    got, cur = take(hist, Cursor())
    assert got == ["r1"]  # r2 ends the file, which changed since the last look
    got, cur = take(hist, cur)
    assert got == ["r2"]  # the file stood still: r2 is whole
    assert take(hist, cur)[0] == []
    assert (cur.offset, cur.ids, cur.before) == (hist.stat().st_size, ["r1", "r2"], [])


def test_a_run_half_appended_is_taken_whole(tmp_path: Path) -> None:
    hist = tmp_path / ".history"
    lines = run_lines("r1", metrics=metrics(loss=0.5), experiment="lr")
    cut = lines.index("r1/metrics:") + 12  # in the middle of a line
    hist.write_text(lines[:cut])
    got, cur = take(hist, Cursor())
    got2, cur = take(hist, cur)
    assert got + got2 == [] and cur.offset == 0  # cut before its state: not yet a run
    with hist.open("a") as fh:
        fh.write(lines[cut:])
    got, cur = take(hist, cur)
    assert got == []  # the file changed: wait one look
    (run,) = read_new(str(hist), cur, "gpu-1").new
    assert (run.experiment, run.metrics["loss"].last, run.host) == ("lr", 0.5, "gpu-1")


def test_a_history_pruned_by_retention_is_read_again_without_taking_a_run_twice(
        tmp_path: Path) -> None:
    hist = tmp_path / ".history"
    hist.write_text(run_lines("r1") + run_lines("r2") + run_lines("r3"))
    cur = Cursor()
    for _ in range(2):
        _, cur = take(hist, cur)
    # retention drops r1 (a new file, renamed into place) and r4 ends meanwhile
    new = tmp_path / ".history.new"
    new.write_text(run_lines("r2") + run_lines("r3") + run_lines("r4"))
    os.replace(new, hist)
    batch = read_new(str(hist), cur, "gpu-1")
    assert ([r.id for r in batch.records], batch.again) == (["r2", "r3"], {"r2", "r3"})
    assert batch.new == [] and batch.cursor.before == ["r1"]
    batch = read_new(str(hist), batch.cursor, "gpu-1")
    assert [r.id for r in batch.new] == ["r4"]
    # the whole file read: r1, pruned, is forgotten; the ids are the file's
    assert (batch.cursor.before, batch.cursor.ids) == ([], ["r2", "r3", "r4"])


def test_a_history_rewritten_in_place_to_a_longer_file_is_recognised(tmp_path: Path) -> None:
    hist = tmp_path / ".history"
    hist.write_text(run_lines("r1") + run_lines("r2"))
    _, cur = take(hist, Cursor())
    _, cur = take(hist, cur)
    inode = hist.stat().st_ino
    with hist.open("r+") as fh:  # same inode, other bytes before the offset, longer
        fh.write(run_lines("r2") + run_lines("r5", job="other") + run_lines("r6"))
    assert hist.stat().st_ino == inode and hist.stat().st_size > cur.offset
    got, cur = take(hist, cur)
    assert got == ["r5"]  # r2 again is not new; r6 waits for the file to stand still
    assert take(hist, cur)[0] == ["r6"]


def test_lines_that_name_no_finished_run_are_passed_over(tmp_path: Path) -> None:
    hist = tmp_path / ".history"
    hist.write_bytes(b"garbage\n\xff\xfe\n./.tmp/state:succeeded\n"
                     + run_lines("r1", state="running").encode()
                     + b"r2/state:succeeded\nno colon here\nr2/job:train\n" + b"r3/state:fai")
    batch = read_new(str(hist), read_new(str(hist), Cursor()).cursor)
    assert [(r.id, r.job, r.state) for r in batch.new] == [("r2", "train", "succeeded")]
    assert batch.cursor.offset == hist.stat().st_size - len(b"r3/state:fai")


def test_at_most_max_runs_a_look(tmp_path: Path) -> None:
    hist = tmp_path / ".history"
    hist.write_text("".join(run_lines(f"r{i}") for i in range(5)))
    got, cur = take(hist, Cursor(), max_runs=2)
    assert got == ["r0", "r1"]
    got, cur = take(hist, cur, max_runs=2)
    assert got == ["r2", "r3"]


def test_a_garbled_cursor_in_the_state_reads_from_the_start() -> None:
    assert Cursor.from_json({"offset": "x"}) == Cursor()
    assert Cursor.from_json(None) == Cursor()
    assert Cursor.from_json({"offset": 5, "tail": "not hex"}) == Cursor()
    assert RunTotals.from_json({"counts": {"ml": {"train": {"failed": "x"}}}}) == RunTotals()
    assert RunTotals.from_json({"latest": {"train": {"e": {"loss": [1]}}}}) == RunTotals()
    assert RunTotals.from_json([]) == RunTotals()
    cur = Cursor(10, 3, "0a", 10, ["a"], ["b"])
    assert Cursor.from_json(json.loads(json.dumps(cur.to_json()))) == cur
    totals = RunTotals(cur, {"ml": {"train": {"failed": 2}}},
                       {"train": {"e": {"loss": [T, "r1", 0.5]}}}, {"train": ["loss"]})
    assert RunTotals.from_json(json.loads(json.dumps(totals.to_json()))) == totals


# -- runs by state and the reported metrics ----------------------------------------------------

def test_totals_count_each_final_state_and_keep_the_newest_reported_values(tmp_path: Path
                                                                           ) -> None:
    hist = tmp_path / ".history"
    hist.write_text(
        run_lines("r1", experiment="lr", metrics=metrics(val_auc=0.8, loss=2.0), ended=T)
        + run_lines("r2", experiment="lr", metrics=metrics(loss=1.0), ended=T + 9)
        + run_lines("r3", experiment="lr", metrics=metrics(val_auc=0.7), ended=T + 5)
        + run_lines("r4", experiment="big", state="timed-out", metrics=metrics(val_auc=0.9))
        + run_lines("r5", job="etl", project="shop", state="cancelled",
                    metrics=metrics(val_auc=0.1)))
    totals = RunTotals()
    report = {"train": ["val_auc", "loss"], "etl": []}
    totals.update(str(hist), report)
    assert totals.update(str(hist), report) == 1  # r5, last in the file, on the second look
    assert totals.counts == {"ml": {"train": {"succeeded": 3, "timed-out": 1}},
                             "shop": {"etl": {"cancelled": 1}}}
    # r3 ended after r1: its val_auc is the newest of lr (r2, newer, has none)
    assert totals.latest == {"train": {
        "lr": {"val_auc": [T + 5, "r3", 0.7], "loss": [T + 9, "r2", 1.0]},
        "big": {"val_auc": [T, "r4", 0.9]}}}
    # another report: the history is read again for it, and no run is counted twice
    totals.update(str(hist), {"train": ["loss"]})
    totals.update(str(hist), {"train": ["loss"]})
    assert totals.counts["ml"] == {"train": {"succeeded": 3, "timed-out": 1}}
    assert totals.latest == {"train": {"lr": {"loss": [T + 9, "r2", 1.0]}}}


def test_only_the_experiments_that_ended_last_are_kept(tmp_path: Path) -> None:
    hist = tmp_path / ".history"
    hist.write_text("".join(run_lines(f"r{i}", experiment=f"e{i}", ended=T + i,
                                      metrics=metrics(loss=i)) for i in range(30))
                    + run_lines("r0b", experiment="e0", ended=T + 100, metrics=metrics(loss=7)))
    totals = RunTotals()
    for _ in range(2):
        totals.update(str(hist), {"train": ["loss"]})
    kept = totals.latest["train"]
    assert len(kept) == EXPERIMENTS_KEPT
    assert set(kept) == {"e0"} | {f"e{i}" for i in range(11, 30)}
    assert kept["e0"] == {"loss": [T + 100, "r0b", 7.0]}


# -- what the exporter publishes ---------------------------------------------------------------

def sampler_with_history(tmp_path: Path, history: str) -> Sampler:
    state = tmp_path / "state"
    hist = Path(history_path(str(state)))
    hist.parent.mkdir(parents=True)
    hist.write_text(history)
    conf = ExporterConf.from_json({
        "site": "s", "host": "gpu-1", "docker": "docker", "state_dir": str(state),
        "jobs": {"train": {"project": "ml", "gpus": 1, "report": ["val_auc", "a/b:c"]},
                 "etl": {"project": "shop", "gpus": 0}}})
    return Sampler(conf, run=FakeHost(), clock=lambda: T / 1000)


HISTORY = (run_lines("r1", experiment="main", metrics=metrics(val_auc=0.91, loss=0.3))
           + run_lines("r2", experiment='odd "exp"\\', state="failed",
                       metrics=metrics(**{"a/b:c": 2.5}))
           + run_lines("r3", job="gone", project="old", state="failed"))


def run_series(text: str) -> dict[str, float]:
    return {line.rpartition(" ")[0]: float(line.rpartition(" ")[2])
            for line in text.splitlines() if line.startswith("hostctl_job_")}


def test_the_exporter_publishes_runs_by_state_and_the_reported_metrics(tmp_path: Path) -> None:
    sampler = sampler_with_history(tmp_path, HISTORY)
    sampler.sample()
    sampler.sample()
    text = generate_latest(registry_for(sampler)).decode()
    counts = {f'hostctl_job_runs_total{{job_name="{j}",project="{p}",state="{s}"}}': 0.0
              for p, j in (("ml", "train"), ("shop", "etl"), ("old", "gone"))
              for s in ("succeeded", "failed", "cancelled", "timed-out")}
    counts.update({'hostctl_job_runs_total{job_name="train",project="ml",state="succeeded"}':
                   1.0,
                   'hostctl_job_runs_total{job_name="train",project="ml",state="failed"}': 1.0,
                   'hostctl_job_runs_total{job_name="gone",project="old",state="failed"}': 1.0})
    assert run_series(text) == {
        **counts,
        'hostctl_job_metric{experiment="main",job_name="train",metric="val_auc"}': 0.91,
        'hostctl_job_metric{experiment="odd \\"exp\\"\\\\",job_name="train",metric="a/b:c"}':
            2.5,
    }
    # and they survive a restart of the exporter, without counting a run again
    again = sampler_with_history(tmp_path / "x", "")
    again.state_path = sampler.state_path
    again.state = State.load(sampler.state_path)
    again.conf = sampler.conf
    again.sample()
    assert run_series(generate_latest(registry_for(again)).decode()) == run_series(text)


def test_the_run_series_carry_no_label_the_scrape_target_has(tmp_path: Path) -> None:
    """`job`, `instance`, `host`, `site` come with the target (prometheus.targets): one of
    ours would be renamed exported_<name>."""
    from prometheus_client.parser import text_string_to_metric_families

    sampler = sampler_with_history(tmp_path, HISTORY)
    sampler.sample()
    families = [f for f in text_string_to_metric_families(
        generate_latest(registry_for(sampler)).decode()) if f.name.startswith("hostctl_job_")]
    assert {f.name for f in families} == {"hostctl_job_runs", "hostctl_job_metric"}
    names = {label for f in families for s in f.samples for label in s.labels}
    assert names == {"project", "job_name", "state", "experiment", "metric"}


promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not "
                              "installed (Debian's prometheus package has it; "
                              "scripts/ci-setup.sh installs it)")


def promtool_check_metrics(text: str) -> str:
    res = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout + res.stderr


@promtool
def test_promtool_checks_the_run_series(tmp_path: Path) -> None:
    sampler = sampler_with_history(tmp_path, HISTORY)
    sampler.sample()
    sampler.sample()
    promtool_check_metrics(generate_latest(registry_for(sampler)).decode())


@promtool
def test_the_bundle_reads_the_history_with_debians_python_and_nothing_else(
        tmp_path: Path) -> None:
    """The bundle ships the records' parser: the host's python3, -I, nothing installed."""
    from hostctl.observability.exporter_bundle import build_bundle

    python = "/usr/bin/python3"
    if not os.path.exists(python):
        pytest.skip("no /usr/bin/python3 on this machine")
    state = tmp_path / "state"
    hist = Path(history_path(str(state)))
    hist.parent.mkdir(parents=True)
    hist.write_text(HISTORY)
    (state / "exporter").mkdir()
    (state / "exporter/state.json").write_text(json.dumps({"runs": {"report": {
        "train": ["val_auc", "a/b:c"]}, "cursor": {"size": hist.stat().st_size,
                                                    "inode": hist.stat().st_ino}}}))
    (tmp_path / "c.json").write_text(json.dumps({
        "site": "s", "host": "gpu-1", "docker": "/nonexistent", "systemctl": "/nonexistent",
        "state_dir": str(state), "port": 0,
        "jobs": {"train": {"project": "ml", "gpus": 1, "report": ["val_auc", "a/b:c"]}}}))
    (tmp_path / "x.pyz").write_bytes(build_bundle())
    res = subprocess.run([python, "-I", str(tmp_path / "x.pyz"), "--config",
                          str(tmp_path / "c.json"), "--once"], capture_output=True, text=True,
                         timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    series = run_series(res.stdout)
    assert series['hostctl_job_metric{experiment="main",job_name="train",metric="val_auc"}'] \
        == 0.91
    assert series['hostctl_job_runs_total{job_name="gone",project="old",state="failed"}'] == 1
    promtool_check_metrics(res.stdout)


# -- run records to Logstash -------------------------------------------------------------------

RECORD = {"job": "train", "project": "ml", "state": "failed", "shard": "0", "shards": "1",
          "attempt": "2", "attempts": "3", "seq": "17", "submitted": str(T - 60_000),
          "started": str(T - 50_000), "ended": str(T), "exit": "1", "gpus": "0,1",
          "need": "2", "by": "ops", "experiment": "lr-sweep", "description": "try 0.01",
          "params": '{"LR": "0.01", "odd name": "x"}', "image": "reg.example.org/train:5",
          "image_id": "sha256:" + "a" * 64, "spec_hash": "0123456789ab", "git_rev": "abc123",
          "git_branch": "lr-sweep", "docker_run": '["docker", "run", "--env", "LR=0.01"]',
          "metrics": json.dumps({"val.auc": {"last": 0.9, "min": 0.5, "max": 0.95, "n": 4,
                                             "step": 3},
                                 "loss": {"last": 1.5, "min": 1.5, "max": 1.5, "n": 1,
                                          "step": None}}),
          "metrics_points": "5", "metrics_invalid": "1", "metrics_dropped": "0"}


def test_a_finished_run_as_a_gelf_message() -> None:
    msg = gelf_run_message(record_from("gpu-1", "r-7", RECORD), "s", "gpu-1")
    assert msg == {
        "version": "1.1", "host": "gpu-1", "level": 4, "timestamp": T / 1000,
        "short_message": "run r-7 of train failed (experiment lr-sweep)",
        "_io.hostctl.site": "s", "_io.hostctl.host": "gpu-1", "_io.hostctl.kind": "run",
        "_io.hostctl.project": "ml", "_io.hostctl.workload": "train",
        "_io.hostctl.run": "r-7", "_io.hostctl.spec-hash": "0123456789ab",
        "_run_id": "r-7", "_run_job": "train", "_run_project": "ml", "_run_state": "failed",
        "_run_gpus": "0,1", "_run_exit": "1", "_run_by": "ops",
        "_run_experiment": "lr-sweep", "_run_description": "try 0.01",
        "_run_image": "reg.example.org/train:5", "_run_image_id": "sha256:" + "a" * 64,
        "_run_spec_hash": "0123456789ab", "_run_git_rev": "abc123",
        "_run_git_branch": "lr-sweep",
        "_run_shard": 0, "_run_shards": 1, "_run_need": 2, "_run_cpus": 0, "_run_memory": 0,
        "_run_attempt": 2, "_run_attempts": 3, "_run_seq": 17,
        "_run_submitted": T - 60_000, "_run_started": T - 50_000, "_run_ended": T,
        "_run_not_before": 0, "_run_metrics_points": 5, "_run_metrics_invalid": 1,
        "_run_metrics_dropped": 0,
        "_run_docker_run": '["docker", "run", "--env", "LR=0.01"]',
        "_run_param_LR": "0.01", "_run_param_odd_name": "x",
        "_run_metric_loss_last": 1.5, "_run_metric_loss_min": 1.5, "_run_metric_loss_max": 1.5,
        "_run_metric_loss_n": 1,
        "_run_metric_val_auc_last": 0.9, "_run_metric_val_auc_min": 0.5,
        "_run_metric_val_auc_max": 0.95, "_run_metric_val_auc_n": 4,
        "_run_metric_val_auc_step": 3,
    }


def test_a_bare_run_from_an_older_queue() -> None:
    msg = gelf_run_message(record_from("h", "r1", {"state": "succeeded",
                                                   "project": "Not A Name"}), "s", "h")
    assert {k: v for k, v in msg.items() if not k.startswith("_run_")} == {
        "version": "1.1", "host": "h", "level": 6, "short_message": "run r1 of a job succeeded",
        "_io.hostctl.site": "s", "_io.hostctl.host": "h", "_io.hostctl.kind": "run",
        "_io.hostctl.run": "r1"}  # a project no index can be named after: left out


def test_a_run_too_big_for_a_datagram_sheds_the_docker_line_then_parameters() -> None:
    big = {**RECORD, "params": json.dumps({f"P{i}": "x" * 100 for i in range(100)}),
           "docker_run": json.dumps(["docker", "run"] + ["y" * 100] * 100)}
    data = encode(gelf_run_message(record_from("h", "r1", big), "s", "h"))
    msg = json.loads(data)
    assert len(data) <= MAX_DATAGRAM
    assert not [k for k in msg if k.startswith(("_run_param_", "_run_docker_run"))]
    assert (msg["_run_cut"], msg["_run_metric_val_auc_last"], msg["_run_state"]) == \
        (1, 0.9, "failed")
    small = gelf_run_message(record_from("h", "r1", RECORD), "s", "h")
    assert json.loads(encode(dict(small))) == small


def test_run_records_are_shipped_once_each(tmp_path: Path, gelf_sock: socket.socket,
                                           gelf_address: str) -> None:
    state_dir = tmp_path / "state"
    hist = Path(history_path(str(state_dir)))
    hist.parent.mkdir(parents=True)
    hist.write_text(run_lines("r1", experiment="a") + run_lines("r2", state="failed"))
    (hist.parent / "r1").mkdir()  # the run's own directory: never read
    (hist.parent / "r1" / "env").write_text("DB_PASSWORD=hunter2\n")
    state = State()
    shipper = RunShipper(str(state_dir), gelf_address, "s", "gpu-1", state)
    assert [shipper.ship(), shipper.ship(), shipper.ship()] == [1, 1, 0]
    got = [json.loads(gelf_sock.recv(9000)) for _ in range(2)]
    # pruned by retention: nothing is sent again
    hist.write_text(run_lines("r2", state="failed"))
    assert [shipper.ship(), shipper.ship()] == [0, 0]
    gelf_sock.settimeout(0.3)
    with pytest.raises(TimeoutError):
        gelf_sock.recv(9000)
    assert [(m["_run_id"], m["_run_state"]) for m in got] == [("r1", "succeeded"),
                                                              ("r2", "failed")]
    assert "hunter2" not in json.dumps(got)
    assert state.runs_shipped.ids == ["r2"]


def test_without_metrics_the_program_ships_the_run_records_too(
        tmp_path: Path, gelf_sock: socket.socket, exporter_once: Callable[[Path], int]) -> None:
    log = tmp_path / "audit.log"
    log.write_text("")
    hist = Path(history_path(str(tmp_path)))
    hist.parent.mkdir(parents=True)
    hist.write_text(run_lines("r1"))
    assert exporter_once(log) == 0  # the file changed: wait
    assert exporter_once(log) == 0
    assert json.loads(gelf_sock.recv(9000))["_run_id"] == "r1"
    assert State.load(str(tmp_path / "exporter/state.json")).runs_shipped.ids == ["r1"]


def test_the_exporters_configuration_lists_each_jobs_report(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    from hostctl.observability.exporter_bundle import exporter_config
    from tests.rigs.site_factory import made_site

    monkeypatch.chdir(tmp_path)
    site = made_site(tmp_path / "site", {"jobs.yml": """\
        kind: job
        name: train
        project: ml
        image: example.org/ml/train:1
        report: [val_auc, loss]
        ---
        kind: job
        name: etl
        project: ml
        image: example.org/ml/etl:1
        """}, "site: s\nhosts:\n  gpu-1: {address: 10.0.0.1}\nspecs: [specs/*.yml]\n"
              "secrets: {env_file: secrets.env}\nmetrics:\n  exporter: {port: 9477}\n",
              environ={})
    met = site.inventory.metrics
    assert met is not None
    conf = exporter_config(site, site.inventory.hosts["gpu-1"], met)
    # a job without report: has no key, so the configuration of a site without any is as
    # it was
    assert conf["jobs"] == {"etl": {"project": "ml", "gpus": 0},
                            "train": {"project": "ml", "gpus": 0,
                                      "report": ["val_auc", "loss"]}}
    assert ExporterConf.from_json(conf).report == {"etl": [], "train": ["val_auc", "loss"]}
