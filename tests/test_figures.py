"""Every picture the project writes is readable: drawn with the Agg canvas after its layout
engine has run, as it is saved, no two texts (titles, axis labels, tick labels, legend
entries, annotations) overlap, every text lies inside the figure, and no legend covers a text
that is not its own (a title, a tick label).

The benchmarks' figures are built from their committed results JSON (never by re-running a
benchmark); the CLI's and the demo's from small inputs made here: a fit of synthetic runs
(``hpo scaling fit``/``plot``), a real coordinate check (``hpo mup coord-check``), and the
demo's muTransfer picture from optima of a synthetic sweep. A deliberately bad figure shows
the checker fails where text collides."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from benchmarks import hpo_quality, mutransfer, scaling_e2e, scaling_real, service_load, store_throughput, worker_overhead
from hpo.cli.demo_plots import mutransfer_figure
from scaling import fit_runs, optima_of
from scaling.laws import Law, PowerLaw
from scaling.plot import fit_figure
from scaling.transfer import check_transfer
from tests.test_scaling import STEP, synthetic_runs
from workers.proxies.coord_check import coord_check

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
#: Pixels two boxes may share before they count as overlapping (antialiased edges touch).
SLACK = 1.0


def layout_problems(fig: Any) -> list[str]:
    """Every overlap and overflow of ``fig``'s texts, one line each; empty when readable."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    texts = [(name, t, t.get_window_extent(renderer)) for name, t in _texts(fig)]
    texts = [(name, t, box) for name, t, box in texts if box.width > 0 and box.height > 0]
    problems = []
    inside = fig.bbox.padded(SLACK)
    for name, _, box in texts:
        if not (inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1)):
            problems.append(f"{name} reaches outside the figure")
    for (a, _, box_a), (b, _, box_b) in combinations(texts, 2):
        if _overlap(box_a, box_b):
            problems.append(f"{a} overlaps {b}")
    for legend in _legends(fig):
        frame = legend.get_window_extent(renderer)
        own = {id(t) for t in (*legend.get_texts(), legend.get_title())}
        problems += [f"a legend covers {name}" for name, t, box in texts if id(t) not in own and _overlap(frame, box)]
    return problems


def _overlap(a: Bbox, b: Bbox) -> bool:
    return min(a.x1, b.x1) - max(a.x0, b.x0) > SLACK and min(a.y1, b.y1) - max(a.y0, b.y0) > SLACK


def _figures(fig: Any) -> list[Any]:
    """The figure and its subfigures, nested."""
    out = [fig]
    for sub in fig.subfigs:
        out += _figures(sub)
    return out


def _legends(fig: Any) -> list[Legend]:
    return [legend for f in _figures(fig) for legend in f.legends] + [
        ax.get_legend() for ax in _axes(fig) if ax.get_legend() is not None
    ]


def _axes(fig: Any) -> list[Any]:
    return [ax for f in _figures(fig) for ax in f.axes if ax.get_visible() and ax.axison]


def _texts(fig: Any) -> list[tuple[str, Text]]:
    """Each visible, non-empty text with a name that says where it is."""
    found: list[tuple[str, Text]] = []
    for f in _figures(fig):
        found += [("suptitle", t) for t in (f._suptitle, f._supxlabel, f._supylabel) if t is not None]
        found += [(f"figure text {t.get_text()!r}", t) for t in f.texts]
    for legend in _legends(fig):
        found += [(f"legend entry {t.get_text()!r}", t) for t in (*legend.get_texts(), legend.get_title())]
    for i, ax in enumerate(_axes(fig)):
        where = f"axes {i} ({(ax.get_title() or ax.get_title('left'))[:40]!r})"
        found += [(f"{where} title", t) for t in (ax.title, ax._left_title, ax._right_title)]
        found += [(f"{where} {axis.axis_name}-label", axis.label) for axis in (ax.xaxis, ax.yaxis)]
        found += [(f"{where} text {t.get_text()!r}", t) for t in ax.texts]
        for axis in (ax.xaxis, ax.yaxis):
            found += [(f"{where} {axis.axis_name}-tick {t.get_text()!r}", t) for t in _tick_labels(axis)]
    unique = {id(t): (name, t) for name, t in reversed(found)}  # a suptitle is a figure text too
    return [(name, t) for name, t in reversed(unique.values()) if t.get_visible() and t.get_text().strip()]


def _tick_labels(axis: Axis) -> list[Text]:
    """The tick labels the axis draws: those of ticks inside the view interval."""
    lo, hi = sorted(axis.get_view_interval())
    ticks = [t for t in (*axis.get_major_ticks(), *axis.get_minor_ticks()) if lo <= t.get_loc() <= hi]
    return [label for t in ticks for label in (t.label1, t.label2) if label.get_visible()]


# ------------------------------------------------------------------ the checker checked


def test_the_checker_finds_overlapping_and_overflowing_text() -> None:
    bad = Figure(figsize=(3, 2), layout="constrained")
    ax = bad.subplots()
    ax.plot(range(20), range(20), label="a line")
    ax.set_xticks(range(20), [f"label {i}" for i in range(20)])
    ax.set_title("a title far too long for a figure three inches wide, running off both sides")
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, 1.25))
    problems = layout_problems(bad)
    assert any("x-tick 'label 0' overlaps" in p and "x-tick 'label 1'" in p for p in problems), problems
    assert any(p.endswith("title reaches outside the figure") for p in problems), problems
    assert any(p.startswith("a legend covers") and p.endswith("title") for p in problems), problems


def test_the_checker_passes_a_plain_readable_figure() -> None:
    good = Figure(figsize=(5, 3.5), layout="constrained")
    ax = good.subplots()
    ax.plot([1, 10, 100], [3, 2, 1], label="loss")
    ax.set(xscale="log", xlabel="steps", ylabel="loss", title="a short title")
    ax.legend(loc="upper right")
    assert layout_problems(good) == []


# ------------------------------------------------------------------ the benchmarks' figures

BENCHMARKS = {
    "hpo_quality": hpo_quality.figure,
    "mutransfer": mutransfer.figure,
    "mutransfer_quick": mutransfer.figure,
    "scaling_e2e": scaling_e2e.figure,
    "scaling_real": scaling_real.figure,
    "service_load": service_load.figure,
    "store_throughput": store_throughput.figure,
    "worker_overhead": worker_overhead.figure,
}


def test_every_committed_benchmark_picture_has_a_figure_here() -> None:
    assert {p.stem for p in RESULTS.glob("*.png")} == set(BENCHMARKS)


@pytest.mark.parametrize("stem", sorted(BENCHMARKS))
def test_a_benchmark_figure_drawn_from_its_committed_results_is_readable(stem: str) -> None:
    fig = BENCHMARKS[stem](json.loads((RESULTS / f"{stem}.json").read_text()))
    assert [ax for ax in _axes(fig) if ax.has_data()], "a figure with nothing drawn"
    assert layout_problems(fig) == []


# ------------------------------------------------------------------ the CLI's and the demo's


def test_the_fit_figure_is_readable_with_a_target_and_with_a_borrowed_batch_law() -> None:
    fitted = fit_runs(synthetic_runs(STEP, [1e7, 3e7, 1e8], [1e9, 3e9], seed=5), form="steplaw", bootstrap=20, validate=False)
    assert layout_problems(fit_figure(fitted, target=(1e9, 1e11))) == []
    # the batch swept at one budget only: the batch law is Step Law's, calibrated, and says so in its title
    small = Law("small", STEP.learning_rate, PowerLaw(0.58 / 30, {"D": 0.571}), "test", STEP.fitted_range)
    runs = synthetic_runs(small, [1e7, 3e7, 1e8], [1e9], seed=8)
    runs += synthetic_runs(small, [1e7, 3e7, 1e8], [3e9], seed=10, batch_offsets=[0.0])
    borrowed = fit_runs(runs, form="steplaw", bootstrap=20, validate=False, batch_fallback="steplaw")
    fig = fit_figure(borrowed)
    assert "calibrated" in fig.axes[1].get_title()
    assert layout_problems(fig) == []


def test_the_coordinate_check_figure_is_readable() -> None:
    check = coord_check("mlp", (32, 64, 128, 256), param="sp", lr=1e-2, steps=3)
    assert layout_problems(check.figure()) == []


def test_the_demos_mutransfer_figure_is_readable() -> None:
    widths = {6_304.0: 16, 24_896.0: 32, 98_944.0: 64}
    law = Law("demo", PowerLaw(0.01, {"N": -0.05}), PowerLaw(512.0, {"D": 0.0}), "test", {})
    runs = synthetic_runs(law, list(widths), [8_192.0, 24_576.0, 73_728.0], seed=3)
    optima, _ = optima_of(runs)
    check = check_transfer(optima, widths)
    assert check is not None
    fig = mutransfer_figure(runs, optima, widths, {"tokens": check.tokens})
    assert layout_problems(fig) == []
