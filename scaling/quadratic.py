"""The quadratic estimator of a cell's optimum: near its optimum the loss is convex in log
learning rate and log batch size (Step Law, section 3), so a quadratic surface in
(log2 lr, log2 batch) is fitted to the runs in the basin (within ``window`` of the best loss,
and at least enough to fit), robustly (scipy's ``least_squares`` with a soft-L1 loss, so one
noisy run does not drag the vertex), and its vertex is the optimum.

With fewer than three batch sizes, or fewer than ten runs, the fit is one-dimensional in the
learning rate. A surface that is not convex in the learning rate has no optimum inside the
data; one convex in the learning rate but open or flat along the batch (the valley small
budgets give, where the best learning rate rises with the batch) still has a learning-rate
optimum, read at the best run's batch. Real basins are often asymmetric, which pulls the
vertex towards their flat side: :mod:`scaling.selection` compares this estimator with the
others on the sweep itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.optimize import least_squares

from scaling.optimum import SURFACE_RUNS, WINDOW, Cell, Located, batch_not_swept, on_valley
from scaling.runs import Run


def _design(x: np.ndarray, y: np.ndarray | None) -> np.ndarray:
    if y is None:
        return np.column_stack([np.ones_like(x), x, x * x])
    return np.column_stack([np.ones_like(x), x, y, x * x, y * y, x * y])


def _fit(x: np.ndarray, y: np.ndarray | None, loss: np.ndarray) -> np.ndarray:
    a = _design(x, y)
    start, *_ = np.linalg.lstsq(a, loss, rcond=None)
    scale = max(1e-4, 0.01 * float(np.median(loss)))
    return least_squares(lambda c: a @ c - loss, start, loss="soft_l1", f_scale=scale).x


def basin(runs: Sequence[Run], window: float, minimum: int) -> list[Run]:
    """The runs within ``window`` of the best loss, or, when they hold fewer than ``minimum``
    distinct settings, the best runs up to ``minimum`` settings. Settings, not runs: seeds and
    bootstrap resamples repeat a setting, and a curve through repeats of two learning rates
    has no vertex to find (its bootstrap interval then ran off the grid)."""
    ordered = sorted(runs, key=lambda r: r.loss)
    best = ordered[0].loss
    near = [r for r in ordered if r.loss <= best * (1 + window)]
    if len({(r.learning_rate, r.batch_size) for r in near}) >= minimum:
        return near
    chosen: list[Run] = []
    settings: set[tuple[float, float]] = set()
    for r in ordered:
        if len(settings) == minimum and (r.learning_rate, r.batch_size) not in settings:
            break
        chosen.append(r)
        settings.add((r.learning_rate, r.batch_size))
    return chosen


def _clamp(y: float, y_swept: tuple[float, float]) -> float:
    return min(max(y, y_swept[0]), y_swept[1])


def locate(cell: Cell, *, window: float = WINDOW) -> Located:
    """The vertex of the robust quadratic over the cell's basin (see the module)."""
    # a quadratic surface has 6 coefficients: with fewer than 10 runs, fit the learning rate alone
    two_d = len(cell.batches) >= 3 and len(cell.runs) >= SURFACE_RUNS
    chosen = basin(cell.runs, window, 7 if two_d else 3)
    x = np.log2([r.learning_rate for r in chosen])
    y = np.log2([r.batch_size for r in chosen]) if two_d else None
    loss = np.array([r.loss for r in chosen])
    c = _fit(x, y, loss)
    best = cell.best
    y_best, y_swept = math.log2(best.batch_size), cell.y_swept
    flags: dict[str, str] = {} if two_d else {"batch_size": batch_not_swept(cell)}
    if not two_d:
        if c[2] <= 0:
            return Located(None, None, False, False, best.loss, len(chosen), {**flags, "learning_rate": _NOT_CONVEX})
        vx = -c[1] / (2 * c[2])
        return Located(float(vx), None, False, False, float((_design(np.array([vx]), None) @ c)[0]), len(chosen), flags)
    # where the surface is convex in the learning rate, its best rate at each batch lies on a line
    valley = (float(-c[1] / (2 * c[3])), float(-c[5] / (2 * c[3]))) if c[3] > 0 else None
    h = np.array([[2 * c[3], c[5]], [c[5], 2 * c[4]]])
    if np.linalg.eigvalsh(h).min() > 0:  # positive definite, so convex in the learning rate: a valley
        vx, vy = (float(v) for v in np.linalg.solve(h, -c[1:3]))
        at = _clamp(vy, y_swept)
        if at != vy:  # the valley leaves the data: its rate at an extrapolated batch is an extrapolation too
            vx = on_valley(valley, at)  # type: ignore[arg-type]
        return Located(vx, vy, True, True, _loss_at(c, vx, at), len(chosen), flags, valley)
    if valley is not None:
        vx = on_valley(valley, y_best)
        flags["batch_size"] = (
            "the fitted surface is not convex in the batch size (a flat or open valley): no batch "
            f"optimum inside the data; the learning rate is the optimum at the best run's batch {best.batch_size:.3g}"
        )
        return Located(vx, y_best, False, True, _loss_at(c, vx, y_best), len(chosen), flags, valley)
    return Located(None, None, False, True, best.loss, len(chosen), {"learning_rate": _NOT_CONVEX, "batch_size": _NOT_CONVEX})


_NOT_CONVEX = "the fitted surface is not convex: no optimum inside the data"


def _loss_at(c: np.ndarray, x: float, y: float) -> float:
    return float((_design(np.array([x]), np.array([y])) @ c)[0])
