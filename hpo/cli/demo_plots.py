"""The pictures ``hpo demo`` leaves in its output folder: the muTransfer picture (loss against
learning rate by width, and each width's optimum by token budget) and the scaling fit."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaling import CellOptimum, Run, ScalingFit
from scaling.plot import plot_fit, readable_log_axes

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def write_plots(
    output: Path,
    runs: Sequence[Run],
    optima: Sequence[CellOptimum],
    width_of: dict[float, int],
    mutransfer: dict[str, Any],
    fit: ScalingFit | None,
    target: tuple[float, float],
) -> dict[str, str]:
    """Write the PNGs; returns {what: file name}."""
    path = output / "mutransfer.png"
    mutransfer_figure(runs, optima, width_of, mutransfer).savefig(path, dpi=110)
    written = {"mutransfer": path.name}
    if fit is not None:
        written["scaling_fit"] = Path(plot_fit(fit, output / "scaling_fit.png", target=target)).name
    return written


def mutransfer_figure(
    runs: Sequence[Run], optima: Sequence[CellOptimum], width_of: dict[float, int], mutransfer: dict[str, Any]
) -> Figure:
    """Left: loss against learning rate by width at the budget the verdict read; right: each
    width's optimum by token budget (flat is muTransfer)."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    tokens = mutransfer.get("tokens") or max((r.tokens for r in runs), default=None)
    widths = sorted(set(width_of.values()))
    colors = {w: matplotlib.colormaps["viridis"](i / max(1, len(widths) - 1)) for i, w in enumerate(widths)}
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    for n, w in sorted(width_of.items(), key=lambda item: item[1]):
        cell = [r for r in runs if r.n_params == n and r.tokens == tokens and math.isfinite(r.loss)]
        left.scatter([r.learning_rate for r in cell], [r.loss for r in cell], s=14, color=colors[w], label=f"width {w}")
        best = next((o for o in optima if o.n_params == n and o.tokens == tokens and o.lr_usable), None)
        if best is not None:
            left.axvline(best.learning_rate, color=colors[w], ls="--", lw=1)
    left.set(xscale="log", xlabel="learning rate (muP base)", ylabel="held-out loss (nats/byte)")
    left.set_title(f"loss against learning rate at D = {tokens:,.0f} tokens\ndashed: each width's optimum" if tokens
                   else "no runs", fontsize=10)
    if left.get_legend_handles_labels()[0]:
        left.legend(fontsize=8, loc="best", framealpha=0.8)
    for d in sorted({o.tokens for o in optima}):
        usable = sorted((width_of[o.n_params], o) for o in optima if o.tokens == d and o.lr_usable and o.n_params in width_of)
        if usable:
            xs = [w for w, _ in usable]
            right.plot(xs, [o.learning_rate for _, o in usable], "o-", label=f"D = {d:,.0f}")
            for w, o in usable:
                if o.learning_rate_interval:
                    right.plot([w, w], o.learning_rate_interval, color="0.6", lw=1)
    right.set(xscale="log", yscale="log", xlabel="width", ylabel="optimal learning rate")
    right.set_title("each width's optimum (90% interval) by token budget\nflat = muTransfer", fontsize=10)
    right.set_xticks(widths, [str(w) for w in widths])
    right.xaxis.set_minor_formatter(NullFormatter())  # the widths are the labels
    if right.get_legend_handles_labels()[0]:
        right.legend(fontsize=8, loc="best", framealpha=0.8)
    fig.draw_without_rendering()  # lay out first: the tick density reads the panels' sizes
    readable_log_axes(fig)
    return fig
