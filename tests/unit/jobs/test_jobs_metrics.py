"""The queue helper's metrics parser (hostctl-jobs.sh `metrics`), run under every awk this
machine has: mawk (`awk`), busybox awk, gawk. A table of input lines -> the fields the
record gets, the caps, and files a container could use to hang or mislead it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from hostctl.jobs import hostside as H
from hostctl.jobs.records import parse_points, record_from

SCRIPT = Path(H.__file__).with_name("hostctl-jobs.sh")


def _awks() -> list[str]:
    found = []
    for name, argv in (("mawk", ["mawk"]), ("busybox", ["busybox", "awk"]), ("gawk", ["gawk"])):
        if shutil.which(argv[0]) and subprocess.run(
                [*argv, "BEGIN { exit 0 }"], capture_output=True).returncode == 0:
            found.append(name)
    return found


AWKS = _awks()


@pytest.fixture(params=AWKS)
def parse(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    """parse(text_or_bytes) -> the run directory's fields after `metrics RUNDIR`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    awk = {"mawk": "exec mawk \"$@\"", "busybox": "exec busybox awk \"$@\"",
           "gawk": "exec gawk \"$@\""}[request.param]
    (bin_dir / "awk").write_text(f"#!/bin/sh\n{awk}\n")
    (bin_dir / "awk").chmod(0o755)
    run = tmp_path / "state" / "runs" / "r1"
    (run / "out").mkdir(parents=True)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "HOSTCTL_STATE": str(tmp_path / "state")}

    def go(data: str | bytes | None = None, timeout: float = 60) -> dict[str, str]:
        if data is not None:
            (run / "out" / "metrics.jsonl").write_bytes(
                data.encode() if isinstance(data, str) else data)
        res = subprocess.run(["sh", str(SCRIPT), "metrics", str(run)], capture_output=True,
                             text=True, env=env, timeout=timeout)
        assert (res.returncode, res.stderr) == (0, "")
        return {p.name: p.read_text() for p in run.iterdir() if p.is_file()}

    go.run = run  # type: ignore[attr-defined]
    return go


def _summary(name: str, last: str, lo: str, hi: str, n: int, step: str = "null") -> str:
    return f'"{name}": {{"last": {last}, "min": {lo}, "max": {hi}, "n": {n}, "step": {step}}}'


# input lines -> (kept points as metrics.tsv lines, invalid)
CASES = [
    ('{"name": "val_auc", "value": 0.91, "step": 3}', ["val_auc\t3\t0.91"], 0),
    ('{"name":"loss","value":-2.5E-1}', ["loss\t\t-2.5E-1"], 0),
    (' \t{ "step" : 0 , "value" : 1e2 , "name" : "a.b:c/d-e" } \t\r', ["a.b:c/d-e\t0\t1e2"], 0),
    ('{"name": "a\\/b", "value": 1}', ["a/b\t\t1"], 0),
    ('{"name": "v\\u0061l", "value": 1}', ["val\t\t1"], 0),
    ('{"name": "_" , "value": 0}', ["_\t\t0"], 0),
    ('{"name": "' + "x" * 64 + '", "value": 1}', ["x" * 64 + "\t\t1"], 0),
    ('{"n\\u0061me": "k", "value": 1}', ["k\t\t1"], 0),  # an escaped key is still the key
    ('{"name": "a", "value": 1, "step": 12345678901234567890}',
     ["a\t12345678901234567890\t1"], 0),
    ("", [], 0),  # blank lines are passed over
    ("   \t", [], 0),
    # invalid: each counted, none kept
    ('{"name": "' + "x" * 65 + '", "value": 1}', [], 1),
    ('{"name": "1a", "value": 1}', [], 1),
    ('{"name": "a b", "value": 1}', [], 1),
    ('{"name": "a\\nb", "value": 1}', [], 1),
    ('{"name": "a\\u00e9", "value": 1}', [], 1),
    ('{"name": "é", "value": 1}', [], 1),
    ('{"name": "a", "value": 1, "name": "b"}', [], 1),  # a key twice
    ('{"name": "a", "value": 1, "value": 2}', [], 1),
    ('{"name": "a"}', [], 1),
    ('{"value": 1}', [], 1),
    ('{}', [], 1),
    ('{"name": "a", "value": 1, "extra": 2}', [], 1),
    ('{"name": "a", "value": 1,}', [], 1),
    ('{"name": "a" "value": 1}', [], 1),
    ('{"name": "a", "value": 1} x', [], 1),
    ('{"name": "a", "value": 1}{"name": "a", "value": 1}', [], 1),
    ('{"name": "a", "value": 1', [], 1),
    ('[{"name": "a", "value": 1}]', [], 1),
    ('{"name": "a", "value": "1"}', [], 1),
    ('{"name": "a", "value": 01}', [], 1),
    ('{"name": "a", "value": 1.}', [], 1),
    ('{"name": "a", "value": .5}', [], 1),
    ('{"name": "a", "value": +1}', [], 1),
    ('{"name": "a", "value": 0x10}', [], 1),
    ('{"name": "a", "value": NaN}', [], 1),
    ('{"name": "a", "value": Infinity}', [], 1),
    ('{"name": "a", "value": 1e999}', [], 1),  # not finite as a double
    ('{"name": "a", "value": -1e400}', [], 1),
    ('{"name": "a", "value": null}', [], 1),
    ('{"name": "a", "value": true}', [], 1),
    ('{"name": "a", "value": {"x": 1}}', [], 1),
    ('{"name": "a", "value": 1, "step": -1}', [], 1),
    ('{"name": "a", "value": 1, "step": 1.0}', [], 1),
    ('{"name": "a", "value": 1, "step": 1e3}', [], 1),
    ('{"name": "a", "value": 1, "step": "3"}', [], 1),
    ('{"name": "a", "value": 1, "step": null}', [], 1),
    ('{"name": "a", "value": 1, "step": 01}', [], 1),
    ('{"name": 5, "value": 1}', [], 1),
    ("{'name': 'a', 'value': 1}", [], 1),
    ('name=a value=1', [], 1),
    ('{"name": "a", "value": 1}\x0b', [], 1),  # not JSON whitespace
]


@pytest.mark.parametrize(("line", "points", "invalid"), CASES)
def test_each_line_is_a_point_or_counted_invalid(parse: object, line: str, points: list[str],
                                                 invalid: int) -> None:
    fields = parse(line + "\n")  # type: ignore[operator]
    assert fields["metrics.tsv"] == "".join(p + "\n" for p in points)
    assert (fields["metrics_points"], fields["metrics_invalid"], fields["metrics_dropped"]) == (
        f"{len(points)}\n", f"{invalid}\n", "0\n")
    summary = json.loads(fields["metrics"])
    assert len(summary) == len(points)


def test_the_summary_keeps_values_as_written_and_last_is_the_highest_step(
        parse: object) -> None:
    lines = [
        '{"name": "auc", "value": 0.5, "step": 9}',
        '{"name": "loss", "value": 1E0}',
        '{"name": "auc", "value": 0.91, "step": 10}',
        "not json",
        '{"name": "auc", "value": 0.7, "step": 2}',  # written last, not the latest step
        '{"name": "loss", "value": -0.25}',
        '{"name": "loss", "value": 3.50}',
        '{"name": "auc", "value": 0.8, "step": 10}',  # the same step again: the later wins
    ]
    fields = parse("\n".join(lines))  # type: ignore[operator]  # no newline at the end
    assert fields["metrics"] == "{" + ", ".join([
        _summary("auc", "0.8", "0.5", "0.91", 4, "10"),
        _summary("loss", "3.50", "-0.25", "3.50", 3)]) + "}\n"
    assert (fields["metrics_points"], fields["metrics_invalid"]) == ("7\n", "1\n")
    rec = record_from("h", "r1", {k: v.strip() for k, v in fields.items()})
    assert rec.metrics["auc"].last == 0.8 and rec.metrics["auc"].last_step == 10
    assert (rec.metrics["loss"].min, rec.metrics["loss"].max, rec.metrics["loss"].count,
            rec.metrics["loss"].last_step) == (-0.25, 3.5, 3, None)
    assert parse_points(fields["metrics.tsv"])["auc"] == [(9, 0.5), (10, 0.91), (2, 0.7),
                                                          (10, 0.8)]


def test_no_file_no_metrics_and_an_empty_file_zeros(parse: object) -> None:
    assert parse() == {}  # type: ignore[operator]
    fields = parse("")  # type: ignore[operator]
    assert fields == {"metrics": "{}\n", "metrics.tsv": "", "metrics_points": "0\n",
                      "metrics_invalid": "0\n", "metrics_dropped": "0\n"}


def test_points_beyond_50000_are_dropped_and_counted(parse: object) -> None:
    lines = [f'{{"name": "loss", "value": {i}, "step": {i}}}' for i in range(50_003)]
    lines.insert(10, "garbage")
    fields = parse("\n".join(lines) + "\n")  # type: ignore[operator]
    assert (fields["metrics_points"], fields["metrics_invalid"], fields["metrics_dropped"]) == (
        "50000\n", "1\n", "3\n")
    assert fields["metrics.tsv"].count("\n") == 50_000
    assert json.loads(fields["metrics"])["loss"] == {"last": 49999, "min": 0, "max": 49999,
                                                     "n": 50000, "step": 49999}


def test_a_file_beyond_10_mib_is_read_to_the_cap_and_the_rest_counted_dropped(
        parse: object) -> None:
    cap = 10 * 1024 * 1024
    pad = " " * 1000
    line = '{"name": "a", "value": 1}' + pad + "\n"
    n = cap // len(line)  # whole lines within the cap, then one cut by it
    tail = ['{"name": "a", "value": 2}\n'] * 5
    data = (line * (n + 1) + "".join(tail) + '{"name": "a", "value": 3}').encode()
    assert len(data) > cap and cap % len(line) != 0
    start = time.monotonic()
    fields = parse(data)  # type: ignore[operator]
    assert time.monotonic() - start < 50
    # n kept; the cut line, the 5 after it and the last (no newline) dropped; none invalid
    assert (fields["metrics_points"], fields["metrics_invalid"], fields["metrics_dropped"]) == (
        f"{n}\n", "0\n", "7\n")
    assert json.loads(fields["metrics"])["a"]["max"] == 1


def test_a_file_cut_by_the_cap_at_a_line_end_loses_no_line(parse: object) -> None:
    cap = 10 * 1024 * 1024
    line = '{"name": "a", "value": 1}' + " " * 998 + "\n"  # 1024 bytes: the cap is a line end
    assert cap % len(line) == 0
    data = line * (cap // len(line)) + '{"name": "a", "value": 2}\n'
    fields = parse(data)  # type: ignore[operator]
    assert (fields["metrics_points"], fields["metrics_invalid"], fields["metrics_dropped"]) == (
        f"{cap // len(line)}\n", "0\n", "1\n")


def test_symlinks_fifos_and_directories_are_not_read(parse: object, tmp_path: Path) -> None:
    go: object = parse
    run: Path = go.run  # type: ignore[attr-defined]
    target = tmp_path / "secret"
    target.write_text('{"name": "leak", "value": 1}\n')
    (run / "out" / "metrics.jsonl").symlink_to(target)
    assert go() == {}  # type: ignore[operator]
    (run / "out" / "metrics.jsonl").unlink()
    os.mkfifo(run / "out" / "metrics.jsonl")  # nobody writes: reading it would block
    start = time.monotonic()
    assert go(timeout=20) == {}  # type: ignore[operator]
    assert time.monotonic() - start < 10
    (run / "out" / "metrics.jsonl").unlink()
    (run / "out" / "metrics.jsonl").mkdir()
    assert go() == {}  # type: ignore[operator]


def test_some_awk_is_tested() -> None:
    """Hosts run whichever awk their distribution has: mawk (Debian, Ubuntu), gawk (most
    others), busybox (small images); at least one must be here for the table to run."""
    assert AWKS


def test_a_huge_sparse_file_ends_quickly_with_what_it_could_count(parse: object) -> None:
    go: object = parse
    path: Path = go.run / "out" / "metrics.jsonl"  # type: ignore[attr-defined]
    line = b'{"name": "a", "value": 1}\n'
    with path.open("wb") as f:
        f.write(line * 1000)
        f.truncate(64 << 30)  # 64 GiB of holes: reading it all would take minutes
    start = time.monotonic()
    fields = go(timeout=120)  # type: ignore[operator]
    assert time.monotonic() - start < 30
    # the kept points; the rest (no newline in what is counted, no final newline) is one
    # dropped line
    assert (fields["metrics_points"], fields["metrics_invalid"], fields["metrics_dropped"]) == (
        "1000\n", "0\n", "1\n")
