"""Experiments end to end on sandbox hosts (real sshd, systemd, Docker): runs that record
their parameters and metrics, `hostctl runs` searching them, `compare` picking the best and
drawing the curves, `--rerun` running the same image id, malformed and oversized metrics
files, a shard group's summary and the hosts' retention of run records.

The worked example's train-triage writes loss and val_auc per step from its LR; the jobs
added here write what the other cases need. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.rigs.deploy_rig import Site, example_site, job_spec

pytestmark = pytest.mark.sandbox
__all__ = ["example_site"]

APP = {"placement": {"labels": {"role": "app"}}}
POINT = '{"name": "%s", "value": %s}'
SPECS = yaml.safe_dump_all([
    job_spec("bad-metrics", "printf '%s\\n' " + " ".join(f"'{line}'" for line in (
        '{"name": "acc", "value": 0.5, "step": 1}', "not json", '{"name": "acc", "value": "high"}',
        '{"name": "acc"}', '{"value": 1}', '{"name": "acc", "value": 0.75, "step": 2}',
        '{"name": "acc", "value": 1, "extra": 2}', '{"name": "acc", "value": 0.6, "step": -1}',
    )) + ' > "$HOSTCTL_METRICS"', **APP),
    job_spec("big-metrics", "awk 'BEGIN { for (i = 0; i < 300000; i++) printf "
             "\"{\\\"name\\\": \\\"n\\\", \\\"value\\\": %d, \\\"step\\\": %d}\\n\", i, i }'"
             ' > "$HOSTCTL_METRICS"', **APP),
    job_spec("sharded", "echo '" + POINT % ("score", "'$((HOSTCTL_SHARD_INDEX * 10))'") + "'"
             ' > "$HOSTCTL_METRICS"', shards=3),
    job_spec("tiny", "echo '" + POINT % ("k", 1) + "' > \"$HOSTCTL_METRICS\"", **APP),
])
JOBS = ("train-triage", "bad-metrics", "big-metrics", "sharded", "tiny")
KEEP = 3
BIG_LINES = 300000
HELPER = "/var/lib/hostctl/bin/hostctl-jobs"


@pytest.fixture(scope="module")
def site(example_site: Site) -> Iterator[Site]:
    example_site.deploy_jobs("experiments-test.yml", SPECS, JOBS, jobs={"keep_runs": KEEP})
    yield example_site


def hostctl(s: Site, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "hostctl", args[0], "-i", str(s.inventory), *args[1:]]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=s.root,
                          env={**os.environ, "NO_COLOR": "1"})


def ok(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def run(s: Site, *args: str) -> dict[str, Any]:
    """`hostctl run ... --wait --json`: the ended run's record."""
    out: dict[str, Any] = json.loads(ok(hostctl(s, "run", *args, "--wait", "--json")))
    return out


def runs(s: Site, *args: str) -> list[dict[str, Any]]:
    out = json.loads(ok(hostctl(s, "runs", *args, "--json")))
    assert out["ok"] is True
    return list(out["runs"])


@pytest.fixture(scope="module")
def sweep(site: Site) -> dict[str, dict[str, Any]]:
    """Two runs of the worked example's training with different learning rates."""
    fast = run(site, "train-triage", "--set", "LR=0.1", "--experiment", "lr-sweep")
    slow = run(site, "train-triage", "--set", "LR=0.01", "--experiment", "lr-sweep",
               "--note", "smaller rate")
    return {"fast": fast, "slow": slow}


def test_runs_record_parameters_metrics_and_the_image_id(
        site: Site, sweep: dict[str, dict[str, Any]]) -> None:
    found = {r["run"]: r for r in runs(site, "--experiment", "lr-sweep")}
    fast, slow = found[sweep["fast"]["run"]], found[sweep["slow"]["run"]]
    assert (fast["params"], slow["params"]) == ({"LR": "0.1"}, {"LR": "0.01"})
    assert slow["description"] == "smaller rate" and fast["description"] is None
    # loss = 1 / (1 + 40 * LR * step), val_auc = 0.95 - 0.45 * loss; ten steps
    assert fast["metrics"]["loss"] == {"last": 0.0244, "min": 0.0244, "max": 0.2, "n": 10,
                                       "step": 10}
    assert slow["metrics"]["loss"]["last"] == 0.2 and slow["metrics"]["loss"]["max"] == 0.7143
    assert slow["metrics"]["val_auc"]["last"] == 0.86
    host_image = site.ssh("gpu-1", "docker image inspect --format '{{.Id}}' "
                                   "hostctl-demo-app:1.0").strip()
    assert fast["image_id"] == slow["image_id"] == host_image
    assert fast["image"] == "hostctl-demo-app:1.0" and fast["spec_hash"]
    # No repository holds the test's copy of the example: no git revision.
    assert fast["git_rev"] is None and fast["experiment"] == "lr-sweep"
    # The docker run its unit ran, with the image id it recorded
    shown = json.loads(ok(hostctl(site, "runs", "show", sweep["slow"]["run"], "--json")))
    assert shown["docker_run"][:2] == ["/usr/bin/docker", "run"]
    assert host_image in shown["docker_run"]
    assert "HOSTCTL_METRICS=/hostctl/out/metrics.jsonl" in shown["docker_run"]


def test_runs_where_and_sort(site: Site, sweep: dict[str, dict[str, Any]]) -> None:
    best = runs(site, "--where", "val_auc>0.9 and job=train-triage")
    assert [r["run"] for r in best] == [sweep["fast"]["run"]]
    ordered = runs(site, "--experiment", "lr-sweep", "--sort", "-loss")
    assert [r["run"] for r in ordered] == [sweep["slow"]["run"], sweep["fast"]["run"]]
    by_param = runs(site, "--where", "params.LR=0.01")
    assert [r["run"] for r in by_param] == [sweep["slow"]["run"]]
    table = ok(hostctl(site, "runs", "--experiment", "lr-sweep"))
    assert table.splitlines()[0].split()[:4] == ["RUN", "JOB", "EXPERIMENT", "STATE"]
    assert table.splitlines()[1].startswith(sweep["slow"]["run"])  # newest first
    bad = hostctl(site, "runs", "--where", "val_auc>>0.9")
    assert (bad.returncode, bad.stderr) == (1, (
        "error: --where 'val_auc>>0.9': '>>0.9' is not a comparison; write NAME OP VALUE "
        "with OP one of = != < <= > >=\n"))


def test_compare_marks_the_best_and_plots_the_curves(
        site: Site, sweep: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    fast, slow = sweep["fast"]["run"], sweep["slow"]["run"]
    out = json.loads(ok(hostctl(site, "compare", "--experiment", "lr-sweep", "--json")))
    assert out["metrics"]["loss"]["lower_is_better"] is True
    assert out["metrics"]["loss"]["best"] == [fast]
    assert out["metrics"]["val_auc"]["best"] == [fast]
    assert out["params"]["differ"] == {"LR": {fast: "0.1", slow: "0.01"}}
    png = tmp_path / "compare.png"
    text = ok(hostctl(site, "compare", slow, fast, "--plot", str(png)))
    assert "0.0244 *" in text
    import matplotlib.image as mpimg
    import numpy as np

    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = mpimg.imread(str(png))[:, :, :3]
    # matplotlib's first two line colours (C0 blue, C1 orange): both curves are drawn,
    # across most of the plot's width.
    for rgb in ((0x1f, 0x77, 0xb4), (0xff, 0x7f, 0x0e)):
        hit = np.all(np.abs(pixels - np.array(rgb) / 255) < 0.03, axis=2)
        columns = np.flatnonzero(hit.any(axis=0))
        assert columns.size and columns.max() - columns.min() > pixels.shape[1] * 0.5, rgb


def test_rerun_runs_the_same_image_id_even_when_the_host_lost_it(
        site: Site, sweep: dict[str, dict[str, Any]]) -> None:
    first = json.loads(ok(hostctl(site, "runs", "show", sweep["slow"]["run"], "--json")))
    # The tag now names another image, and the host no longer has the first run's image:
    # the rerun gets it from this machine and runs exactly it.
    site.ssh("gpu-1", f"docker tag hostctl-demo-app:2.0 hostctl-demo-app:1.0 2>/dev/null || "
                      f"true; docker image rm -f {first['image_id']} >/dev/null")
    try:
        res = hostctl(site, "run", "--rerun", first["run"], "--wait", "--json")
    finally:  # the image the spec names back under its name, for the tests after this one
        site.ssh("gpu-1", f"docker tag {first['image_id']} hostctl-demo-app:1.0; true")
    again = json.loads(ok(res))
    assert f"sent image {first['image_id']} to gpu-1" in res.stderr
    shown = json.loads(ok(hostctl(site, "runs", "show", again["run"], "--json")))
    assert shown["rerun_of"] == first["run"] and shown["image_id"] == first["image_id"]
    assert shown["params"] == {"LR": "0.01"} and shown["experiment"] == "lr-sweep"
    assert shown["metrics"]["loss"]["last"] == 0.2
    # An image gone from the host and from this machine: refused before anything runs.
    gone = "sha256:" + "0" * 64
    site.ssh("gpu-1", f"printf '%s\\n' {gone} > /var/lib/hostctl/runs/{again['run']}/image_id")
    refused = hostctl(site, "run", "--rerun", again["run"])
    assert refused.returncode != 0
    assert (f"run {again['run']} ran image {gone}, which is gone from gpu-1 and from this "
            "machine's Docker engine") in refused.stderr, refused.stderr


def test_a_malformed_metrics_file_is_counted_and_never_fails_the_run(site: Site) -> None:
    rec = run(site, "bad-metrics")
    assert rec["state"] == "succeeded"
    shown = json.loads(ok(hostctl(site, "runs", "show", rec["run"], "--json")))
    assert shown["metrics"] == {"acc": {"last": 0.75, "min": 0.5, "max": 0.75, "n": 2,
                                        "step": 2}}
    assert (shown["metrics_points"], shown["metrics_invalid"]) == (2, 6)


def test_an_oversized_metrics_file_is_capped_and_says_how_much_it_dropped(site: Site) -> None:
    rec = run(site, "big-metrics")
    assert rec["state"] == "succeeded"
    shown = json.loads(ok(hostctl(site, "runs", "show", rec["run"], "--json")))
    assert shown["metrics_points"] == 50000 and shown["metrics_invalid"] == 0
    assert shown["metrics_dropped"] == BIG_LINES - 50000
    kept = int(site.ssh("app-1", f"wc -l < /var/lib/hostctl/runs/{rec['run']}/metrics.tsv"))
    assert kept == 50000


def test_a_shard_group_ends_with_one_summary_of_its_metrics(site: Site) -> None:
    res = hostctl(site, "run", "sharded", "--json", timeout=300)
    out = json.loads(ok(res))
    assert out["ok"] is True
    score = out["metrics"]["score"]
    assert (score["shards"], score["mean"]) == (3, 10.0)
    assert (score["min"]["value"], score["min"]["shard"]) == (0.0, 0)
    assert (score["max"]["value"], score["max"]["shard"]) == (20.0, 2)
    text = ok(hostctl(site, "run", "sharded", timeout=300))
    assert [line.split() for line in text.splitlines() if line.startswith("score")] == [
        ["score", "3/3", "10", "0", "(shard", "0)", "20", "(shard", "2)"]]


def test_hosts_keep_the_last_runs_of_each_job_and_prune_the_rest(site: Site) -> None:
    made = [run(site, "tiny")["run"] for _ in range(KEEP + 2)]
    site.ssh("app-1", f"{HELPER} tick")  # what the queue's timer runs every 20 s
    kept = [r["run"] for r in runs(site, "--job", "tiny")]
    assert kept == list(reversed(made))[:KEEP]
    for pruned in made[:2]:
        assert site.ssh("app-1", f"ls -d /var/lib/hostctl/runs/{pruned} 2>/dev/null; true") == ""
    # the artifacts volume is the project's, never touched by retention
    assert site.ssh("app-1", "docker volume ls -q --filter name=hostctl-lab-artifacts").strip()
