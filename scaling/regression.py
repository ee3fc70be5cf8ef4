"""One power law fitted to (N, D, value) points: the regression every law of a fit goes through.

The fit is linear in log space, ``log y = log a + sum(e_v log v)``, solved robustly: scipy's
``least_squares`` with a Huber loss (``f_scale`` 0.1, about 10% in the target) started from
ordinary least squares. A bootstrap (1,000 resamples by default) gives an interval for every
coefficient; leave-largest-scale-out (refit without the points at the largest N, or C for a
compute law, and predict them) estimates the error of extrapolating.

Points may come in groups (the several kept runs of one cell, when a law is fitted to runs as
Step Law's pipeline does): a group is one observation, so the bootstrap resamples groups and a
law is identifiable only with more groups than coefficients.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from scaling.errors import ScalingError
from scaling.laws import PowerLaw, variables_at

HUBER_SCALE = 0.1
BOOTSTRAP = 1000
LEVEL = 0.95

Point = tuple[float, float, float]


@dataclass(frozen=True)
class TargetFit:
    """One fitted power law (learning rate or batch size) with its evidence."""

    target: str
    law: PowerLaw
    intervals: dict[str, tuple[float, float]]
    points: list[dict[str, float]]
    excluded: list[dict[str, Any]]
    validation: dict[str, Any]
    bootstrap: list[PowerLaw] = field(default_factory=list, repr=False)
    borrowed_from: str | None = None
    #: a borrowed law whose coefficient was refitted to the sweep's cells (its exponents kept)
    calibrated: bool = False


def _solve(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Huber regression of log targets on [1, log variables...]."""
    a = np.column_stack([np.ones(len(xs)), xs])
    start, *_ = np.linalg.lstsq(a, ys, rcond=None)
    return least_squares(lambda c: a @ c - ys, start, loss="huber", f_scale=HUBER_SCALE).x


def _as_law(coef: np.ndarray, variables: Sequence[str]) -> PowerLaw:
    return PowerLaw(float(math.exp(coef[0])), {v: float(e) for v, e in zip(variables, coef[1:], strict=True)})


def _columns(points: Sequence[Point], variables: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    xs = np.array([[math.log(variables_at(n, d)[v]) for v in variables] for n, d, _ in points]).reshape(len(points), len(variables))
    return xs, np.log([y for _, _, y in points])


def _identifiable(xs: np.ndarray, groups: int | None = None) -> bool:
    a = np.column_stack([np.ones(len(xs)), xs])
    return (len(xs) if groups is None else groups) > a.shape[1] and np.linalg.matrix_rank(a) == a.shape[1]


def _group_ids(points: Sequence[Point]) -> np.ndarray:
    """One id per (N, D) cell: the unit the bootstrap resamples."""
    keys = {k: i for i, k in enumerate(dict.fromkeys((n, d) for n, d, _ in points))}
    return np.array([keys[(n, d)] for n, d, _ in points])


def fit_target(
    target: str,
    points: Sequence[Point],
    variables: Sequence[str],
    *,
    excluded: list[dict[str, Any]],
    bootstrap: int = BOOTSTRAP,
    seed: int = 0,
) -> TargetFit:
    """Fit ``target = a * prod(v ** e_v)`` to (N, D, target) points (several per cell allowed)."""
    xs, ys = _columns(points, variables)
    ids = _group_ids(points)
    n_groups = int(ids.max()) + 1 if len(ids) else 0
    if not _identifiable(xs, n_groups):
        distinct = {v: len({variables_at(n, d)[v] for n, d, _ in points}) for v in variables}
        raise ScalingError(
            f"cannot fit {target} ~ {' * '.join(variables)}: {n_groups} usable cells with "
            + ", ".join(f"{k} taking {c} distinct value{'s' if c != 1 else ''}" for k, c in distinct.items())
            + f"; it needs more cells than its {len(variables) + 1} coefficients and at least 2 values of each variable"
        )
    coef = _solve(xs, ys)
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(ids == g) for g in range(n_groups)]
    samples = []
    for _ in range(bootstrap):
        idx = np.concatenate([members[g] for g in rng.integers(0, n_groups, n_groups)])
        if _identifiable(xs[idx], len(set(ids[idx]))):
            coef_i = _solve(xs[idx], ys[idx])
            if abs(coef_i[0]) < 700:  # a near-degenerate resample's coefficient overflows exp: drop it
                samples.append(coef_i)
    boot = np.array(samples) if samples else coef[None, :]
    q = [50 * (1 - LEVEL), 50 * (1 + LEVEL)]
    intervals = {}
    for i, name in enumerate(["coefficient", *variables]):
        lo, hi = np.percentile(boot[:, i], q)
        intervals[name] = (float(math.exp(lo)), float(math.exp(hi))) if i == 0 else (float(lo), float(hi))
    return TargetFit(
        target=target,
        law=_as_law(coef, variables),
        intervals=intervals,
        points=[{"n_params": n, "tokens": d, target: y} for n, d, y in points],
        excluded=excluded,
        validation=leave_largest_out(points, "C" if "C" in variables else "N", lambda kept: regress(kept, variables),
                                     f"the smaller scales alone cannot fit {len(variables) + 1} coefficients"),
        bootstrap=[_as_law(c, variables) for c in samples],
    )


def regress(points: Sequence[Point], variables: Sequence[str]) -> PowerLaw | None:
    """The robust fit of a law in ``variables`` to points; None when they cannot identify it."""
    xs, ys = _columns(points, variables)
    return _as_law(_solve(xs, ys), variables) if _identifiable(xs, len({(n, d) for n, d, _ in points})) else None


def leave_largest_out(
    points: Sequence[Point], key: str, fit: Callable[[list[Point]], PowerLaw | None], why_not: str
) -> dict[str, Any]:
    """Fit without the points at the largest ``key`` (N; C for compute laws) and predict them;
    ``why_not`` says why when the smaller scales cannot be fitted."""
    largest = max(variables_at(n, d)[key] for n, d, _ in points)
    held = [p for p in points if variables_at(p[0], p[1])[key] == largest]
    kept = [p for p in points if variables_at(p[0], p[1])[key] != largest]
    law = fit(kept) if kept else None
    if law is None:
        return {"held_out": f"largest {key} = {largest:.3g}", "error": None, "why": why_not}
    errors = [abs(math.log(law(n, d) / y)) for n, d, y in held]
    cells = len({(n, d) for n, d, _ in held})
    return {
        "held_out": f"largest {key} = {largest:.3g} ({cells} cell{'s' if cells > 1 else ''})",
        "error": math.exp(float(np.mean(errors))) - 1,  # mean relative error, multiplicative
        "predictions": [{"n_params": n, "tokens": d, "actual": y, "predicted": law(n, d)} for n, d, y in held],
    }
