"""Bench: `hostctl runs` and `hostctl compare` on this machine, hosts left out (issue 12).

    python -m bench.runs_compare [--records 10000] [--runs 20] [--steps 1000] [--repeat 5]

- runs: the read output of 3 hosts holding --records finished runs between them (the
  `ID/FIELD:VALUE` lines of their .history, as `grep -H ''` prints them) parsed into
  records (records.parse_records), then selected (filtered and sorted: once with
  --experiment, --since and a --where on a metric and a parameter, once with a --where
  that keeps about half of all runs), and the table and the JSON of every match built.
  Each phase timed, caches cleared between repeats. Target: under 1 s in all (the hosts'
  round trips, in parallel, come on top).
- compare: --runs runs with --steps points of 3 metrics each: their metrics.tsv parsed
  (records.parse_points) and the comparison table, its JSON and the plot series built
  (drawing excluded). Target: under 1 s.

Prints the median of --repeat timings of each.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from hostctl.jobs import compare, history, plot
from hostctl.jobs.records import RunRecord, parse_points, parse_records

HOSTS = ("gpu1", "gpu2", "gpu3")
NOW = 1_760_000_000_000
DAY_MS = 86_400_000
EXPERIMENTS = ("main", "feature-aug", "lr-sweep", "baseline")


def run_lines(i: int, rng: random.Random) -> list[str]:
    """One finished run's fields, as the host's history holds them."""
    rid = f"{i:08x}"
    submitted = NOW - rng.randrange(30 * DAY_MS)
    started = submitted + rng.randrange(60_000)
    auc = rng.uniform(0.5, 0.99)
    loss = rng.uniform(0.05, 2.0)
    fields = {
        "job": f"train-{i % 5}", "project": "ml", "state": rng.choice(
            ("succeeded", "succeeded", "succeeded", "failed")),
        "need": "1", "cpus": "4000", "memory": str(16 << 30), "gpus": str(i % 4),
        "attempt": "1", "attempts": "1", "seq": str(i), "submitted": str(submitted),
        "started": str(started), "ended": str(started + rng.randrange(3_600_000)),
        "exit": "0", "by": "alice", "experiment": EXPERIMENTS[i % len(EXPERIMENTS)],
        "description": f"run {i}", "image": "registry.local/ml/train:1.4",
        "image_id": "sha256:" + f"{i:064x}", "spec_hash": f"{i * 7919:016x}",
        "git_rev": f"{i * 104729:040x}", "git_branch": "main",
        "params": json.dumps({"LR": str(rng.choice((0.1, 0.01, 0.001))),
                              "BATCH": str(rng.choice((32, 64))), "EPOCHS": "10"}),
        "docker_run": json.dumps(["docker", "run", "--rm", "--gpus", "device=0",
                                  "registry.local/ml/train:1.4"]),
        "metrics": json.dumps({
            "val_auc": {"last": auc, "min": auc / 2, "max": auc, "n": 100, "step": 99},
            "loss": {"last": loss, "min": loss, "max": loss * 3, "n": 100, "step": 99},
            "lr": {"last": 0.01, "min": 0.001, "max": 0.1, "n": 100, "step": 99}}),
        "metrics_points": "300", "metrics_invalid": "0", "metrics_dropped": "0",
    }
    return [f"{rid}/{name}:{value}" for name, value in fields.items()]


def host_outputs(records: int) -> dict[str, str]:
    rng = random.Random(12)
    out: dict[str, list[str]] = {h: [] for h in HOSTS}
    for i in range(records):
        out[HOSTS[i % len(HOSTS)]].extend(run_lines(i, rng))
    return {h: "\n".join(lines) + "\n" for h, lines in out.items()}


FILTERED = {"experiment": "main", "since": "14d", "where": "val_auc>0.6 and LR<=0.01",
            "sort": "-val_auc"}
EVERYTHING = {"where": "val_auc>0.6", "sort": "-val_auc"}
PRICES = {"currency": "EUR", "cpu_hour": 0.04, "gpu_hour": 1.2}


def runs_once(outputs: dict[str, str], options: dict[str, str]) -> dict[str, float]:
    """One `hostctl runs` after the hosts answered: seconds per phase (records parsed anew,
    so nothing is cached from an earlier round)."""
    t0 = time.perf_counter()
    records = [r for host, text in outputs.items()
               for r in parse_records(host, text.splitlines())]
    t1 = time.perf_counter()
    found = history.find_runs(records, now_ms=NOW, **options)  # type: ignore[arg-type]
    t2 = time.perf_counter()
    "\n".join(history.runs_lines(found, NOW, history.key_metrics(found, ["val_auc"])))
    t3 = time.perf_counter()
    json.dumps([history.run_json(r, NOW, PRICES) for r in found])
    t4 = time.perf_counter()
    return {"parse": t1 - t0, "select": t2 - t1, "table": t3 - t2, "json": t4 - t3,
            "matched": len(found)}


def runs_figures(outputs: dict[str, str], options: dict[str, str], repeat: int) -> str:
    runs = [runs_once(outputs, options) for _ in range(repeat)]
    med = {k: statistics.median(r[k] for r in runs) for k in ("parse", "select", "table",
                                                               "json")}
    total = statistics.median(r["parse"] + r["select"] + max(r["table"], r["json"])
                              for r in runs)
    return (f"{int(runs[0]['matched'])} matched; parse {med['parse'] * 1000:.0f} ms, "
            f"select+sort {med['select'] * 1000:.0f} ms, table {med['table'] * 1000:.0f} ms, "
            f"JSON {med['json'] * 1000:.0f} ms; parse+select+table (or JSON) "
            f"{total * 1000:.0f} ms")


def compare_inputs(runs: int, steps: int) -> tuple[list[RunRecord], dict[str, str]]:
    rng = random.Random(20)
    records, tsv = [], {}
    for i in range(runs):
        rid = f"{i:08x}"
        lines, summary = [], {}
        for metric in ("val_auc", "loss", "lr"):
            values = [rng.random() for _ in range(steps)]
            lines.extend(f"{metric}\t{s}\t{v!r}" for s, v in enumerate(values))
            summary[metric] = {"last": values[-1], "min": min(values), "max": max(values),
                               "n": steps, "step": steps - 1}
        tsv[rid] = "\n".join(lines) + "\n"
        (rec,) = parse_records(HOSTS[i % 3], [
            f"{rid}/state:succeeded", f"{rid}/job:train", f"{rid}/experiment:main",
            f"{rid}/started:{NOW}", f"{rid}/ended:{NOW + 60_000}",
            f"{rid}/params:" + json.dumps({"LR": str(0.1 / (i + 1)), "EPOCHS": "10"}),
            f"{rid}/metrics:" + json.dumps(summary)])
        records.append(rec)
    return records, tsv


def compare_once(records: list[RunRecord], tsv: dict[str, str]) -> int:
    points = {rid: parse_points(text) for rid, text in tsv.items()}
    metrics = compare.choose_metrics(records)
    lines = compare.compare_lines(records, metrics)
    dumped = json.dumps(compare.compare_json(records, metrics))
    series = plot.plot_series(records, points, metrics)
    return len(lines) + len(dumped) + sum(len(s.points) for s in series)


def median_seconds(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--steps", type=int, default=1_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    outputs = host_outputs(args.records)
    size = sum(len(t) for t in outputs.values()) / 1e6
    print(f"runs: {args.records} records over {len(HOSTS)} hosts ({size:.1f} MB of fields), "
          f"medians of {args.repeat}, target < 1000 ms in all")
    for name, options in (("filtered", FILTERED), ("everything", EVERYTHING)):
        shown = " ".join(f"--{k} {v!r}" for k, v in options.items())
        print(f"  {name} ({shown}): {runs_figures(outputs, options, args.repeat)}")
    records, tsv = compare_inputs(args.runs, args.steps)
    compare_s = median_seconds(lambda: compare_once(records, tsv), args.repeat)
    print(f"compare: {args.runs} runs x {args.steps} steps x 3 metrics, points parsed, table "
          f"+ JSON + plot series (drawing excluded): median {compare_s * 1000:.0f} ms of "
          f"{args.repeat} (target < 1000 ms)")


if __name__ == "__main__":
    main()
