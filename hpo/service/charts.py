"""The dashboard's charts, drawn by matplotlib as inline SVG: nothing loads from a CDN and the
pictures match the PNGs the CLI and benchmarks write. One style for all of them."""

from __future__ import annotations

import io
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from db.models import TrialState  # noqa: E402
from db.records import FrozenTrial  # noqa: E402
from scaling.plot import readable_log_axes  # noqa: E402

STATE_COLORS = {
    "completed": "#2f7ed8",
    "pruned": "#f0a030",
    "failed": "#d9534f",
    "diverged": "#8e44ad",
    "running": "#5cb85c",
    "queued": "#999999",
}
_STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "svg.fonttype": "none",
}


def _svg(fig: Any) -> str:
    readable_log_axes(fig)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def empty(message: str) -> str:
    return f'<div class="empty">{message}</div>'


def _log_params(space: dict[str, Any] | None) -> set[str]:
    """The parameters a stored space searches on a log scale (their axes are drawn in log)."""
    params = (space or {}).get("parameters") or {}
    return {name for name, spec in params.items() if isinstance(spec, dict) and spec.get("log")}


def _finite(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if t.value is not None and math.isfinite(t.value)]


def best_over_time(trials: Sequence[FrozenTrial], maximize: bool) -> str:
    """Every finished value by trial number, and the running best at the largest budget."""
    done = [t for t in _finite(trials) if t.state is TrialState.COMPLETED]
    if not done:
        return empty("no completed trial yet")
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(5.2, 3.2))
        top = max((t.budget or 0) for t in done)
        full = sorted((t for t in done if (t.budget or 0) == top), key=lambda t: t.number)
        ax.scatter([t.number for t in done], [t.value for t in done], s=8, color="#bbbbbb", label="completed (any budget)")
        if full:
            values = np.array([t.value for t in full], dtype=float)
            best = np.maximum.accumulate(values) if maximize else np.minimum.accumulate(values)
            ax.step([t.number for t in full], best, where="post", color=STATE_COLORS["completed"], lw=2,
                    label=f"best at budget {top:g}" if top else "best so far")
        ax.set_xlabel("trial")
        ax.set_ylabel("value")
        ax.set_title("best value over trials")
        ax.legend(fontsize=7)
        return _svg(fig)


def learning_curves(trials: Sequence[FrozenTrial], limit: int = 300) -> str:
    """Each trial's value against budget; pruned trials end in a cross where they were cut."""
    curves = [t for t in trials if t.intermediate_values][-limit:]
    if not curves:
        return empty("no intermediate values reported yet")
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(5.2, 3.2))
        for t in curves:
            budgets, values = zip(*sorted(t.intermediate_values.items()), strict=True)
            color = STATE_COLORS.get(t.state.value, "#999999")
            ax.plot(budgets, values, color=color, alpha=0.5, lw=1, marker="." if len(budgets) == 1 else None)
            if t.state is TrialState.PRUNED:
                ax.plot(budgets[-1], values[-1], "x", color=color, ms=5)
        for state in ("completed", "pruned", "running"):
            ax.plot([], [], color=STATE_COLORS[state], label=state)
        ax.set_xscale("log")
        ax.set_xlabel("budget")
        ax.set_ylabel("value")
        ax.set_title("learning curves (x: pruned)")
        ax.legend(fontsize=7)
        return _svg(fig)


def rungs(trials: Sequence[FrozenTrial]) -> str:
    """How many trials reached each budget (a Hyperband/DEHB sweep's rungs)."""
    reached = Counter(t.last_budget for t in trials if t.last_budget is not None)
    budgets = sorted(reached)
    if not budgets:
        return empty("no budget reached yet")
    counts = [sum(n for b, n in reached.items() if b >= budget) for budget in budgets]
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(5.2, 3.2))
        bars = ax.bar([f"{b:g}" for b in budgets], counts, color=STATE_COLORS["completed"])
        ax.bar_label(bars, fontsize=7)
        ax.set_xlabel("budget")
        ax.set_ylabel("trials that reached it")
        ax.set_title("rungs")
        return _svg(fig)


def numeric_params(trials: Sequence[FrozenTrial]) -> list[str]:
    """Parameters that vary and are numbers, in first-seen order."""
    seen: dict[str, set[Any]] = {}
    for t in trials:
        for k, v in t.params.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                seen.setdefault(k, set()).add(v)
    return [k for k, values in seen.items() if len(values) > 1]


def param_scatter(trials: Sequence[FrozenTrial], space: dict[str, Any] | None) -> str:
    """Value against each numeric parameter (log axis where the space says log)."""
    done = _finite(trials)
    names = numeric_params(done)[:6]
    if not names:
        return empty("no numeric parameter varies yet")
    logs = _log_params(space)
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(1, len(names), figsize=(2.3 * len(names) + 0.6, 2.6), sharey=True, squeeze=False)
        values = [t.value for t in done]
        for ax, name in zip(axes[0], names, strict=True):
            xs = [t.params.get(name) for t in done]
            keep = [(x, v) for x, v in zip(xs, values, strict=True) if isinstance(x, (int, float))]
            ax.scatter([x for x, _ in keep], [v for _, v in keep], s=8, color=STATE_COLORS["completed"], alpha=0.7)
            if name in logs:
                ax.set_xscale("log")
            ax.set_xlabel(name)
        axes[0][0].set_ylabel("value")
        fig.suptitle("parameters against value", fontsize=10)
        return _svg(fig)


def parallel_coordinates(trials: Sequence[FrozenTrial], space: dict[str, Any] | None, maximize: bool) -> str:
    """Each completed trial as a line across its numeric parameters (scaled to [0, 1], log
    ones in log space), coloured by value; the best tenth drawn on top."""
    done = [t for t in _finite(trials) if t.state is TrialState.COMPLETED]
    names = numeric_params(done)[:8]
    if len(names) < 2 or len(done) < 2:
        return empty("needs two numeric parameters and two completed trials")
    logs = _log_params(space)
    matrix = np.array([[float(t.params.get(n, np.nan)) for n in names] for t in done])
    for j, name in enumerate(names):
        col = np.log(matrix[:, j]) if name in logs else matrix[:, j]
        lo, hi = np.nanmin(col), np.nanmax(col)
        matrix[:, j] = (col - lo) / (hi - lo) if hi > lo else 0.5
    values = np.array([t.value for t in done])
    order = np.argsort(values if maximize else -values)  # best last: drawn on top
    norm = matplotlib.colors.Normalize(values.min(), values.max())
    cmap = matplotlib.colormaps["viridis_r" if not maximize else "viridis"]
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(max(5.2, 1.1 * len(names)), 3.2))
        for i in order:
            ax.plot(range(len(names)), matrix[i], color=cmap(norm(values[i])), alpha=0.6, lw=1)
        ax.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
        ax.set_yticks([0, 1], ["low", "high"])
        ax.grid(axis="y", alpha=0)
        fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="value")
        ax.set_title("parallel coordinates")
        return _svg(fig)


def importances(scores: dict[str, float] | None, why: str) -> str:
    if not scores:
        return empty(why)
    names = sorted(scores, key=scores.get)  # type: ignore[arg-type]
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(5.2, 0.35 * len(names) + 1.2))
        bars = ax.barh(names, [scores[n] for n in names], color=STATE_COLORS["completed"])
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
        ax.set_xlabel("importance")
        ax.set_title(f"parameter importance ({why})")
        return _svg(fig)


def mutransfer(curves: dict[str, list[tuple[float, float]]], optima: dict[str, tuple[float, float]]) -> str:
    """Loss against learning rate, one curve per proxy size, each optimum marked."""
    if not curves:
        return empty("no completed trial with a learning_rate in this sweep yet")
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 3.8))
        cmap = matplotlib.colormaps["viridis"]
        for i, (label, points) in enumerate(curves.items()):
            color = cmap(i / max(1, len(curves) - 1))
            xs, ys = zip(*sorted(points), strict=True)
            ax.plot(xs, ys, "o-", color=color, ms=3, lw=1, label=label)
            if label in optima:
                ax.plot(*optima[label], marker="*", color=color, ms=14, mec="black", mew=0.6)
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss at the largest budget")
        ax.set_title("loss against learning rate by proxy size (star: each size's best)")
        ax.legend(fontsize=7)
        return _svg(fig)
