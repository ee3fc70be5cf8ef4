"""The picture of a fit: each cell's optimum, the fitted law with its bootstrap band, and the
extrapolation to a target (dashed beyond the fitted range)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from scaling.fitting import ScalingFit
from scaling.laws import PowerLaw, variables_at


def readable_log_axes(fig: Any) -> None:
    """Matplotlib labels the minor ticks of a log axis spanning a decade or two (2x10^-3,
    3x10^-3, ...), and at dashboard size they run into each other. Label 1, 2 and 5 of each
    decade as plain numbers where the axis has room for two labels an inch, else the
    decades alone; an axis too short for two of either, or with ticks set by hand, keeps its
    labels. Every picture of the package, the CLI's and the benchmarks', goes through this;
    ``fig`` may be a SubFigure (its own axes only)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    dpi = fig.get_figure(root=True).dpi
    for ax in fig.axes:
        box = ax.get_window_extent()  # in pixels, so that an axes of a SubFigure measures right
        for axis, scale, inches in ((ax.xaxis, ax.get_xscale(), box.width / dpi),
                                    (ax.yaxis, ax.get_yscale(), box.height / dpi)):
            lo, hi = sorted(axis.get_view_interval())
            if scale != "log" or lo <= 0 or isinstance(axis.get_major_locator(), FixedLocator):
                continue
            decades = math.log10(hi / lo)
            locator = LogLocator(base=10, subs=(1.0, 2.0, 5.0) if 3 * decades <= 2 * inches else (1.0,))
            if sum(lo <= t <= hi for t in locator.tick_values(lo, hi)) < 2:
                continue
            axis.set_major_locator(locator)
            axis.set_minor_formatter(NullFormatter())
            if decades <= 4:
                axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))


def _axis(law: PowerLaw) -> str:
    """The variable to plot against: C for compute laws, N if the law uses it, else D."""
    return "C" if "C" in law.exponents else ("N" if "N" in law.exponents else "D")


def plot_fit(fit: ScalingFit, path: str | Path | None, target: tuple[float, float] | None = None) -> Path | str:
    """Write :func:`fit_figure` to ``path`` (PNG, or by its suffix) and return the path; with
    no path, return it as inline SVG (the dashboard's)."""
    import io

    fig = fit_figure(fit, target)
    if path is None:
        buf = io.StringIO()
        fig.savefig(buf, format="svg")
        svg = buf.getvalue()
        return svg[svg.index("<svg") :]
    out = Path(path)
    fig.savefig(out, dpi=120)
    return out


def fit_figure(fit: ScalingFit, target: tuple[float, float] | None = None) -> Any:
    """The fit's picture as a matplotlib Figure (constrained layout, no pyplot state)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.6), layout="constrained")
    draw_fit(fig, fit, target)
    return fig


def draw_fit(fig: Any, fit: ScalingFit, target: tuple[float, float] | None = None) -> None:
    """Draw the two panels (learning rate, batch) into ``fig``, a Figure or a SubFigure of a
    larger picture (``benchmarks/scaling_e2e.py``'s)."""
    import matplotlib

    axes = fig.subplots(1, 2)
    panels = (
        ("learning_rate", fit.learning_rate, fit.law.learning_rate, "optimal learning rate", 0),
        ("batch_size", fit.batch_size, fit.law.batch_tokens, "optimal batch size (tokens)", 1),
    )
    colors = matplotlib.colormaps["viridis"]
    for key, target_fit, law, label, i in panels:
        ax = axes[i]
        x_var = _axis(law)
        other = "D" if x_var == "N" else "N"
        # a borrowed (published) batch law has no points of its own: draw it over the sweep's cells
        span = target_fit.points or fit.learning_rate.points
        groups = sorted({p[_key(other)] for p in span}) if x_var != "C" else [None]
        xs_data = [variables_at(p["n_params"], p["tokens"])[x_var] for p in span]
        lo = min(xs_data)
        hi = max(xs_data)
        if target is not None:
            hi_ext = max(hi, variables_at(*target)[x_var])
            lo = min(lo, variables_at(*target)[x_var])
        else:
            hi_ext = hi
        grid = np.geomspace(lo, hi_ext, 100)
        for j, g in enumerate(groups):
            color = colors(j / max(1, len(groups) - 1)) if len(groups) > 1 else "C0"
            pts = [p for p in target_fit.points if g is None or p[_key(other)] == g]
            ax.scatter([variables_at(p["n_params"], p["tokens"])[x_var] for p in pts], [p[key] for p in pts],
                       color=color, zorder=3, label=None if g is None else f"{other} = {g:.3g}")
            n_d = [_nd(x_var, x, g, target) for x in grid]
            line = np.array([law(n, d) for n, d in n_d])
            inside = grid <= hi
            ax.plot(grid[inside], line[inside], color=color)
            ax.plot(grid[~inside], line[~inside], color=color, ls="--")
            if target_fit.bootstrap and (target_fit.borrowed_from is None or target_fit.calibrated):
                band = np.array([[b(n, d) for n, d in n_d] for b in target_fit.bootstrap])
                ax.fill_between(grid, *np.percentile(band, [5, 95], axis=0), color=color, alpha=0.15, lw=0)
        for ex in target_fit.excluded:
            if "n_params" in ex:
                ax.axvline(variables_at(ex["n_params"], ex["tokens"])[x_var], color="0.8", lw=0.8, zorder=0)
        if target is not None and x_var != "C":
            at_target = [_nd(x_var, x, target[1] if x_var == "N" else target[0], target) for x in grid]
            ax.plot(grid, [law(n, d) for n, d in at_target], color="C3", ls=":", lw=1)
        if target is not None:
            ax.scatter([variables_at(*target)[x_var]], [law(*target)], marker="*", s=180, color="C3", zorder=4,
                       label=f"target N={target[0]:.3g}, D={target[1]:.3g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel({"N": "N (non-embedding parameters)", "D": "D (tokens)", "C": "C = 6ND (FLOPs)"}[x_var])
        ax.set_ylabel(label)
        borrowed = ("" if target_fit.borrowed_from is None
                    else f" ({target_fit.borrowed_from} exponent, calibrated)" if target_fit.calibrated
                    else f" (from {target_fit.borrowed_from}, not fitted)")
        # the formula on a line of its own: with a borrowed note it is wider than the panel
        ax.set_title(f"{label}{borrowed}\n{law.formula()}", fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best", framealpha=0.8)
    band_note = "band: 90% bootstrap; " if fit.learning_rate.bootstrap or fit.batch_size.bootstrap else ""
    fig.suptitle(f"scaling fit {fit.name!r} ({fit.form} form); {band_note}dashed: extrapolation", fontsize=10)
    fig.get_figure(root=True).draw_without_rendering()  # lay out first: the tick density reads the panels' sizes
    readable_log_axes(fig)


def _key(var: str) -> str:
    return "n_params" if var == "N" else "tokens"


def _nd(x_var: str, x: float, other: float | None, target: tuple[float, float] | None) -> tuple[float, float]:
    """(N, D) at position x of the axis, holding the group's other variable."""
    if x_var == "N":
        return x, float(other if other is not None else (target[1] if target else 1.0))
    if x_var == "D":
        return float(other if other is not None else (target[0] if target else 1.0)), x
    return x / 6.0, 1.0  # C = 6 N D: any split gives the same C
