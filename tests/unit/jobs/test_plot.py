"""`compare --plot`: the series and their labels, a real PNG/SVG with the curves, the terminal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hostctl.errors import HostctlError
from hostctl.jobs.plot import Series, metrics_of, plot_png, plot_series, plot_terminal, xy
from hostctl.jobs.records import parse_points
from tests.unit.jobs.runs_data import record

# matplotlib's first two colours of its default cycle: the two runs' lines.
BLUE, ORANGE = (0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)

A = record("aaaa0001", params={"LR": "0.1", "EPOCHS": "10", "OPT": "adam"})
B = record("bbbb0002", params={"LR": "0.01", "EPOCHS": "10"})
TSV_A = "".join(f"val_auc\t{i}\t{0.5 + 0.008 * i}\nloss\t\t{1 / (i + 1)}\n" for i in range(50))
TSV_B = "".join(f"val_auc\t{i}\t{0.5 + 0.004 * i}\nloss\t\t{2 / (i + 1)}\n" for i in range(50))
POINTS = {"aaaa0001": parse_points(TSV_A), "bbbb0002": parse_points(TSV_B)}


def test_series_and_labels() -> None:
    series = plot_series([A, B], POINTS, ["val_auc", "loss", "nope"])
    assert [(s.run, s.label) for s in series] == [("aaaa0001", "aaaa0001 LR=0.1 OPT=adam"),
                                                   ("bbbb0002", "bbbb0002 LR=0.01")]
    assert list(series[0].points) == ["val_auc", "loss"]
    assert metrics_of(series) == ["val_auc", "loss"]
    only = plot_series([A], {}, ["val_auc"])
    assert only == [Series("aaaa0001", "aaaa0001", {})]
    long = record("cccc0003", params={"NOTE": "x" * 100, "Z": "\x1b[2J"})
    s = plot_series([long, A], {}, [])[0]
    assert len(s.label) == 60 and s.label.endswith("…") and "\x1b" not in s.label


def test_xy() -> None:
    assert xy([(3, 0.3), (1, 0.1), (2, 0.2)]) == ([1.0, 2.0, 3.0], [0.1, 0.2, 0.3])
    assert xy([(None, 5.0), (None, 6.0)]) == ([0.0, 1.0], [5.0, 6.0])  # no step: its number
    assert xy([]) == ([], [])
    assert xy(list(parse_points("m\t0\tinf\nm\t1\tnan\nm\t2\t1.5\n")["m"])) == ([2.0], [1.5])


def colour_pixels(path: Path, colour: tuple[int, int, int]) -> tuple[int, int]:
    """(pixels of about that colour, columns they span) in the image."""
    import numpy as np
    from matplotlib import image

    rgb = (image.imread(path)[:, :, :3] * 255).astype(int)
    near = (np.abs(rgb - np.array(colour)).sum(axis=2) < 40)
    columns = np.nonzero(near.any(axis=0))[0]
    return int(near.sum()), int(columns.max() - columns.min()) if len(columns) else 0


def test_png_shows_the_curves(tmp_path: Path) -> None:
    out = tmp_path / "compare.png"
    plot_png(out, plot_series([A, B], POINTS, ["val_auc", "loss"]))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib import image

    height, width = image.imread(out).shape[:2]
    assert (width, height) == (800, 580)  # two subplots, one above the other
    for colour in (BLUE, ORANGE):
        count, span = colour_pixels(out, colour)
        assert count > 1000 and span > width // 2, (colour, count, span)


def test_png_with_values_an_axis_cannot_hold(tmp_path: Path) -> None:
    points = parse_points("m\t0\t1\nm\t1\tinf\nm\t2\t-inf\nm\t3\tnan\nm\t4\t2\n")
    series = plot_series([A], {"aaaa0001": points}, ["m"])
    plot_png(tmp_path / "x.png", series)
    assert colour_pixels(tmp_path / "x.png", BLUE)[0] > 100
    assert "aaaa0001" in plot_terminal(series, 60, 20, color=False)  # plotext fails on inf


def test_png_of_one_run_has_one_colour(tmp_path: Path) -> None:
    out = tmp_path / "one.png"
    plot_png(out, plot_series([A], POINTS, ["val_auc"]))
    assert colour_pixels(out, BLUE)[0] > 500
    assert colour_pixels(out, ORANGE)[0] == 0


def test_svg_has_the_paths_and_legend(tmp_path: Path) -> None:
    out = tmp_path / "compare.SVG"
    plot_png(out, plot_series([A, B], POINTS, ["val_auc", "loss"]))
    text = out.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    assert text.count("stroke: #1f77b4") >= 2 and text.count("stroke: #ff7f0e") >= 2
    assert "aaaa0001 LR=0.1 OPT=adam" in text and "bbbb0002 LR=0.01" in text


def test_mathtext_in_a_label_is_drawn_as_is(tmp_path: Path) -> None:
    odd = record("dddd0004", params={"X": "$\\frac{$"})  # mathtext would fail on this
    plot_png(tmp_path / "odd.svg", [Series("dddd0004", "dddd0004 X=$\\frac{$",
                                           {"$a$": [(0, 1.0), (1, 2.0)]})])
    text = (tmp_path / "odd.svg").read_text()
    assert odd.params["X"] in text and "$a$" in text


@pytest.mark.parametrize(("path", "message"), [
    ("compare.pdf", "--plot {tmp}/compare.pdf: name a .png or .svg file (or - to draw in the "
     "terminal)"),
    ("compare", "--plot {tmp}/compare: name a .png or .svg file (or - to draw in the "
     "terminal)"),
    ("missing/compare.png", "--plot {tmp}/missing/compare.png: cannot write it: No such file "
     "or directory"),
])
def test_png_errors(tmp_path: Path, path: str, message: str) -> None:
    with pytest.raises(HostctlError) as err:
        plot_png(tmp_path / path, plot_series([A], POINTS, ["val_auc"]))
    assert str(err.value) == message.format(tmp=tmp_path)


def test_nothing_to_draw(tmp_path: Path) -> None:
    message = "--plot: these runs recorded no metric points to draw (a run writes them to " \
              "$HOSTCTL_METRICS)"
    for draw in (lambda s: plot_png(tmp_path / "x.png", s), plot_terminal):
        with pytest.raises(HostctlError) as err:
            draw(plot_series([A, B], {}, ["val_auc"]))
        assert str(err.value) == message
    assert not (tmp_path / "x.png").exists()


def test_without_the_plot_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails
    monkeypatch.setitem(sys.modules, "plotext", None)
    series = plot_series([A], POINTS, ["val_auc"])
    with pytest.raises(HostctlError) as err:
        plot_png(tmp_path / "x.png", series)
    assert str(err.value) == f"--plot {tmp_path}/x.png needs matplotlib: pip install " \
                             "'hostctl[plot]'"
    with pytest.raises(HostctlError) as err:
        plot_terminal(series)
    assert str(err.value) == "--plot - needs plotext: pip install 'hostctl[plot]'"


def test_terminal() -> None:
    text = plot_terminal(plot_series([A, B], POINTS, ["val_auc", "loss"]), 80, 30, color=False)
    lines = text.splitlines()
    assert len(lines) == 30 and max(len(line) for line in lines) == 80
    assert "\x1b" not in text
    for shown in ("val_auc", "loss", "aaaa0001 LR=0.1 OPT=adam", "bbbb0002 LR=0.01"):
        assert shown in text
    painted = sum(line.count(c) for line in lines for c in "▄▀▖▗▘▝▚▞█▙▛▜▟")
    assert painted > 100
    assert "\x1b[" in plot_terminal(plot_series([A], POINTS, ["val_auc"]), 60, 20)


def test_importing_does_not_load_the_plot_libraries() -> None:
    code = ("import sys, hostctl.jobs.plot, hostctl.jobs.compare, hostctl.jobs.history; "
            "print(sorted(m for m in ('matplotlib', 'plotext', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[3])
    assert out.stdout == "[]\n"
