"""The held-out check of a fit: the whole fit, its choices included, redone without the
largest scales, and its recommendation for each held-out cell scored on that cell's runs.

Two splits: ``N`` holds out every cell at the largest model size (what a user extrapolating
from proxies does); ``D`` holds out each model size's largest token budget, for the sizes
swept at several budgets (extrapolating the token horizon). A held-out cell is scored as
:func:`score_cell` says, the same way the benchmark scores every method: the learning rate
and batch size against the cell's best run in log2, and the loss excess over that best run of
the nearest run and of the runs' interpolation at the recommended setting. A held-out cell with
fewer than :data:`MIN_LEARNING_RATES` learning rates is left out of the fit but not scored:
any setting is 'nearest' to its best run, so its excess would say nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from scaling.errors import ScalingError
from scaling.runs import Run, cells
from scaling.surface import CellSurface

SPLITS = ("N", "D")
#: learning rates a held-out cell needs to be scored
MIN_LEARNING_RATES = 3


def split(runs: Sequence[Run], by: str) -> tuple[list[Run], dict[tuple[float, float], list[Run]]]:
    """(the runs to fit, the held-out cells' runs) for a split by ``N`` or ``D``; nothing held
    out where the split does not apply (one model size, or no size with several budgets)."""
    grouped = cells(runs)
    if by == "N":
        sizes = {n for n, _ in grouped}
        held = {k for k in grouped if k[0] == max(sizes)} if len(sizes) > 1 else set()
    elif by == "D":
        budgets: dict[float, list[float]] = {}
        for n, d in grouped:
            budgets.setdefault(n, []).append(d)
        held = {(n, max(ds)) for n, ds in budgets.items() if len(ds) > 1}
    else:
        raise ScalingError(f"unknown split {by!r}; choose N or D")
    return [r for k, rs in grouped.items() if k not in held for r in rs], {k: grouped[k] for k in sorted(held)}


def score_cell(runs: Sequence[Run], learning_rate: float, batch_size: float) -> dict[str, Any]:
    """How good a recommended (learning rate, batch size in tokens) is for a cell, by its runs."""
    surface = CellSurface(runs)
    best, near = surface.best, surface.nearest(learning_rate, batch_size)
    return {
        "n_params": best.n_params,
        "tokens": best.tokens,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "best_run": {"learning_rate": best.learning_rate, "batch_size": best.batch_size, "loss": best.loss},
        "lr_log2_error": math.log2(learning_rate / best.learning_rate),
        "batch_log2_error": math.log2(batch_size / best.batch_size) if surface.two_d else None,
        "nearest_run": {"learning_rate": near.learning_rate, "batch_size": near.batch_size, "loss": near.loss},
        "excess_nearest": surface.excess(learning_rate, batch_size, nearest=True),
        "excess_interpolated": surface.excess(learning_rate, batch_size),
    }


def held_out(runs: Sequence[Run], *, splits: Sequence[str] = SPLITS, **options: Any) -> list[dict[str, Any]]:
    """For each split that applies, the fit without the held-out cells (``options`` go to
    :func:`scaling.fitting.fit_runs`) and each held-out cell's score; a split whose smaller
    scales cannot be fitted says why."""
    from scaling.fitting import fit_runs

    def refit(train: list[Run]) -> tuple[Callable[[float, float], tuple[float, float]], dict[str, Any]]:
        fit = fit_runs(train, bootstrap=0, validate=False, **options)
        return fit.law.predict, {"form": fit.form, "chosen": fit.method["estimator_choice"]["chosen"]}

    return [check for by in splits if (check := check_split(runs, by, refit)) is not None]


def check_split(
    runs: Sequence[Run], by: str, refit: Callable[[list[Run]], tuple[Callable[[float, float], tuple[float, float]], dict[str, Any]]]
) -> dict[str, Any] | None:
    """One split: ``refit`` the kept runs into a predictor (and a note of what it chose), then
    score its prediction at every held-out cell; None where the split holds nothing out."""
    train, held = split(runs, by)
    if not held:
        return None
    label = f"largest N = {max(n for n, _ in held):.3g}" if by == "N" else "each N's largest D"
    try:
        predict, chose = refit(train)
    except ScalingError as exc:
        return {"split": by, "held_out": label, "why": str(exc), "cells": []}
    scorable = {k: g for k, g in held.items() if len({r.learning_rate for r in g if math.isfinite(r.loss)}) >= MIN_LEARNING_RATES}
    if not scorable:
        return {"split": by, "held_out": label, "why": f"no held-out cell has {MIN_LEARNING_RATES} learning rates to score", "cells": []}
    scored = [score_cell(group, *predict(n, d)) for (n, d), group in scorable.items()]
    unscored = len(held) - len(scorable)
    return {
        "split": by,
        "held_out": f"{label} ({len(scored)} cell{'s' if len(scored) > 1 else ''} scored"
                    + (f", {unscored} with too few learning rates not)" if unscored else ")"),
        **chose,
        "cells": scored,
        "median_excess_nearest": float(np.median([c["excess_nearest"] for c in scored])),
        "median_excess_interpolated": float(np.median([c["excess_interpolated"] for c in scored])),
    }
