"""Choosing how a sweep's cells become a law, on the sweep itself.

Two choices: the optimum estimator (:data:`scaling.optimum.ESTIMATORS`) and what the law is
fitted to (``optima``: one point per cell, its estimated optimum; ``runs``: every run within
0.25% of the cell's best, as Step Law's pipeline fits). Each candidate is judged by
leave-one-cell-out: refit the law without a cell (its form fixed to the one the candidate
chose on all cells), predict that cell's learning rate and batch size, and score the
prediction on the held-out cell's own runs through :class:`scaling.surface.CellSurface` (the
interpolated loss excess over its best run). The yardstick is the runs, not any estimator's
curve, so no candidate is judged by its own model; and it is the sweep's own data, never a
benchmark's answer. Candidates are compared on the cells every one of them could predict. The
earliest candidate in :data:`CANDIDATES` whose mean excess is within :data:`TIE` (5%) of the
smallest wins: a handful of cells cannot tell apart scores closer than that, and the earlier
candidates assume less or vary less (the quadratic is the most efficient on a symmetric bowl).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from scaling.errors import ScalingError
from scaling.optimum import ESTIMATORS, CellOptimum
from scaling.runs import Run
from scaling.surface import CellSurface

FIT_TO = ("optima", "runs")
#: the order ties are broken in: the estimators as listed, a cell's optimum before its runs
CANDIDATES = tuple((e, m) for e in ESTIMATORS for m in FIT_TO)

#: relative margin within which two candidates' scores count as a tie
TIE = 0.05

Key = tuple[float, float]
#: fit(optima, skipped, fit_to, form) -> (form chosen, law's predict function)
Fitter = Callable[[list[CellOptimum], list[dict[str, Any]], str, str], tuple[str, Callable[[float, float], tuple[float, float]]]]


def choose(
    by_cell: Mapping[Key, Sequence[Run]],
    screened: Mapping[str, tuple[list[CellOptimum], list[dict[str, Any]]]],
    modes: Sequence[str],
    form: str,
    fit: Fitter,
) -> tuple[tuple[str, str], dict[str, Any]]:
    """The (estimator, fit_to) candidate with the smallest leave-one-cell-out loss excess, and
    the record of the comparison (each candidate's score, the cells compared, why)."""
    surfaces = {k: CellSurface(runs) for k, runs in by_cell.items() if any(math.isfinite(r.loss) for r in runs)}
    excess: dict[tuple[str, str], dict[Key, float]] = {}
    failed: dict[str, str] = {}
    for candidate in (c for c in CANDIDATES if c[0] in screened and c[1] in modes):
        optima, skipped = screened[candidate[0]]
        try:
            chosen_form, _ = fit(optima, skipped, candidate[1], form)
        except ScalingError as exc:
            failed[_label(candidate)] = str(exc)
            continue
        scores = {}
        for key, surface in surfaces.items():
            rest = [o for o in optima if (o.n_params, o.tokens) != key]
            try:
                _, predict = fit(rest, skipped, candidate[1], chosen_form)
            except ScalingError:
                continue
            lr, batch = predict(*key)
            if 0 < lr < math.inf and 0 < batch < math.inf:
                scores[key] = surface.excess(lr, batch)
        excess[candidate] = scores
    common = set.intersection(*(set(s) for s in excess.values())) if excess else set()
    if not common:
        first = next((c for c in CANDIDATES if c[0] in screened and c[1] in modes and c in excess), None)
        if first is None:
            label, why = next(iter(failed.items()))
            raise ScalingError(f"no way of fitting these cells works ({label}: {why})")
        return first, {"by": "no cell could be predicted from the others by every candidate: the first candidate",
                       "chosen": _label(first), "scores": {}, "failed": failed}
    means = {c: float(np.mean([s[k] for k in common])) for c, s in excess.items()}
    smallest = min(means.values())
    best = min((c for c in means if means[c] <= smallest * (1 + TIE) + 1e-12), key=CANDIDATES.index)
    return best, {
        "by": f"leave-one-cell-out: mean loss excess of the held-out cell's interpolated runs at the law's "
              f"prediction, over the {len(common)} cells every candidate could predict; the first within "
              f"{100 * TIE:g}% of the smallest",
        "chosen": _label(best),
        "scores": {_label(c): m for c, m in means.items()},
        "failed": failed,
    }


def _label(candidate: tuple[str, str]) -> str:
    return f"{candidate[0]} {candidate[1]}"
