"""`hostctl compare --plot`: every chosen metric's curve over its steps, one line per run.

`plot_series` pairs each run with its points (a run's metrics.tsv, `records.parse_points`)
and a legend label naming the run and the parameters that differ between the runs;
`plot_png` draws them to a .png or .svg file (matplotlib), `plot_terminal` as text
(plotext). Both libraries are the optional extra `hostctl[plot]`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hostctl.errors import HostctlError, printable
from hostctl.jobs.compare import split_params
from hostctl.jobs.records import RunRecord
from hostctl.jobs.where import params_of

Points = Sequence[tuple[int | None, float]]
SUFFIXES = (".png", ".svg")
LABEL_CHARS = 60
EXTRA = "pip install 'hostctl[plot]'"


@dataclass(frozen=True)
class Series:
    """One run's curves: its legend label and, per metric, its points (step, value)."""

    run: str
    label: str
    points: Mapping[str, Points]


def plot_series(records: Sequence[RunRecord], points: Mapping[str, Mapping[str, Points]],
                metrics: Sequence[str]) -> list[Series]:
    """The runs' curves of `metrics` (points: run id -> metric -> points); each labelled
    with its id and the parameters that differ between the runs."""
    differ, _ = split_params(records)
    out = []
    for r in records:
        params = params_of(r)
        shown = " ".join(f"{n}={params[n]}" for n in differ if n in params)
        label = printable(f"{r.id} {shown}".strip())
        if len(label) > LABEL_CHARS:
            label = label[:LABEL_CHARS - 1] + "…"
        have = points.get(r.id, {})
        out.append(Series(r.id, label, {m: have[m] for m in metrics if have.get(m)}))
    return out


def metrics_of(series: Sequence[Series]) -> list[str]:
    """The metrics to draw, in the order the series name them first."""
    return list(dict.fromkeys(m for s in series for m in s.points))


def xy(points: Points) -> tuple[list[float], list[float]]:
    """x (the step; a point without one: its place among the points) and y, by x. A value
    that is not finite (a hand-edited metrics.tsv) is left out: it has no place on an axis."""
    pairs = sorted(((float(i if step is None else step), value)
                    for i, (step, value) in enumerate(points) if math.isfinite(value)),
                   key=lambda p: p[0])
    return [x for x, _ in pairs], [y for _, y in pairs]


def _drawable(series: Sequence[Series]) -> list[str]:
    metrics = metrics_of(series)
    if not metrics:
        raise HostctlError("--plot: these runs recorded no metric points to draw (a run "
                           "writes them to $HOSTCTL_METRICS)")
    return metrics


def plot_png(path: str | Path, series: Sequence[Series]) -> None:
    """Draw every metric as a subplot, one line per run, into path (.png or .svg)."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise HostctlError(f"--plot {printable(str(path))}: name a .png or .svg file (or - "
                           "to draw in the terminal)")
    metrics = _drawable(series)
    try:  # imported here: keeps start-up fast
        from matplotlib.figure import Figure
    except ImportError:
        raise HostctlError(f"--plot {printable(str(path))} needs matplotlib: {EXTRA}") from None
    # A Figure of its own (no pyplot): no global state, Agg draws the .png, no display needed.
    fig = Figure(figsize=(8, 2.6 * len(metrics) + 0.6), layout="constrained")
    axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    for ax, metric in zip(axes, metrics, strict=True):
        for s in series:
            if metric in s.points:
                x, y = xy(s.points[metric])
                # `$` would start matplotlib's mathtext in a label; `_` first hides it.
                ax.plot(x, y, label=s.label.replace("$", r"\$"), linewidth=1.5,
                        marker="." if len(x) < 30 else None)
        ax.set_title(printable(metric).replace("$", r"\$"))
        stepped = all(step is not None for s in series for step, _ in s.points.get(metric, ()))
        ax.set_xlabel("step" if stepped else "step (a point without one: its number)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    try:
        fig.savefig(path, dpi=100)
    except OSError as e:
        raise HostctlError(f"--plot {printable(str(path))}: cannot write it: "
                           f"{e.strerror or e}") from None


def plot_terminal(series: Sequence[Series], width: int = 80, height: int = 24,
                  color: bool = True) -> str:
    """The same plot as text for a terminal, `width` x `height` cells."""
    metrics = _drawable(series)
    try:  # imported here: keeps start-up fast
        import plotext
    except ImportError:
        raise HostctlError(f"--plot - needs plotext: {EXTRA}") from None
    fig = plotext.figure
    fig.clear()
    plotext.terminal.limit(False, False)  # the size asked for, whatever stdout is
    fig.plot_size(max(width, 40), max(height, 10 * len(metrics)))
    if len(metrics) > 1:  # (subplots(1, 1) on a cleared figure leaves it with no panel)
        fig.subplots(len(metrics), 1)
    for i, metric in enumerate(metrics, 1):
        sub = fig.subplot(i, 1) if len(metrics) > 1 else fig
        sub.title(printable(metric))
        for s in series:
            if metric in s.points:
                x, y = xy(s.points[metric])
                sub.draw(sub.signal(x, y).lines().label(s.label))
    text: str = fig.build().string(colorless=not color)
    fig.clear()
    return text
