"""The runs/compare bench still runs (small sizes) and prints its figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_bench_runs_small() -> None:
    out = subprocess.run([sys.executable, "-m", "bench.runs_compare", "--records", "60",
                          "--runs", "3", "--steps", "20", "--repeat", "1"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120, check=True)
    lines = out.stdout.splitlines()
    assert lines[0].startswith("runs: 60 records over 3 hosts")
    assert lines[1].startswith("  filtered (--experiment 'main' --since '14d' ")
    assert lines[2].startswith("  everything (--where 'val_auc>0.6' --sort '-val_auc'): ")
    assert lines[3].startswith("compare: 3 runs x 20 steps x 3 metrics")
    assert " matched; parse " in lines[1] and "(target < 1000 ms)" in lines[3]
