"""The asymmetric estimator of a cell's optimum: a basin with its own steepness on each side.

Real LR basins are steep above the optimum (towards divergence) and flat below, and often
flat-bottomed; a symmetric quadratic fitted across both sides puts its vertex towards the flat
side. Here the loss over the basin (runs within ``window`` of the best) is

    loss = c + a_side * |d|^p + b * (y - y0)^2,    d = x - x0 - k * (y - y0)

with x = log2 lr, y = log2 batch, a_side = a_below for d < 0 and a_above for d >= 0, a free
power p in [1.2, 4] (2 is a quadratic; larger is a flatter bottom), and a valley tilt k (the
best learning rate moving with the batch). One-dimensional cells drop the batch terms. It is
fitted robustly (scipy's ``least_squares``, soft-L1, bounds keeping the optimum within an
octave of the swept range), and its minimum (x0, y0) is the optimum.

No library fits this shape (scikit-learn's regressors are symmetric or shape-free, and a
smoothing spline over 3-9 learning rates cannot be read for a minimum with any stability),
hence this module. It has 5 coefficients in one dimension and 8 in two: a cell needs 5
learning rates in its basin, else :class:`NotApplicable` (the cell falls back to the quadratic).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.optimize import least_squares

from scaling.optimum import SURFACE_RUNS, WINDOW, Cell, Located, NotApplicable, batch_not_swept, on_valley
from scaling.quadratic import basin

#: distinct learning rates the basin needs for one side's steepness to be seen at all
MIN_LEARNING_RATES = 5
_POWER = (1.2, 4.0)
_TILT = 2.0


def _model(p: np.ndarray, x: np.ndarray, y: np.ndarray | None) -> np.ndarray:
    if y is None:
        c, x0, below, above, power = p
        d, extra = x - x0, 0.0
    else:
        c, x0, below, above, power, y0, b, k = p
        d = x - x0 - k * (y - y0)
        extra = math.exp(b) * (y - y0) ** 2
    side = np.where(d < 0, math.exp(below), math.exp(above))
    return c + side * np.abs(d) ** power + extra


def _jacobian(p: np.ndarray, x: np.ndarray, y: np.ndarray | None) -> np.ndarray:
    """The model's derivatives in its coefficients (analytic: the bootstrap refits it hundreds of times)."""
    below, above, power = p[2], p[3], p[4]
    d = x - p[1] if y is None else x - p[1] - p[7] * (y - p[5])
    side = np.where(d < 0, math.exp(below), math.exp(above))
    mag = np.abs(d)
    term = side * mag**power
    slope = side * power * mag ** (power - 1) * np.sign(d)  # d(term)/dd
    cols = [np.ones_like(x), -slope, np.where(d < 0, term, 0.0), np.where(d >= 0, term, 0.0),
            term * np.log(np.where(mag > 0, mag, 1.0))]
    if y is not None:
        dy = y - p[5]
        cols += [slope * p[7] - 2 * math.exp(p[6]) * dy, math.exp(p[6]) * dy**2, -slope * dy]
    return np.column_stack(cols)


def locate(cell: Cell, *, window: float = WINDOW, start: Sequence[float] | None = None) -> Located:
    """The minimum of the asymmetric basin fitted to the cell (see the module); ``start``, a
    previous fit's coefficients (the bootstrap's warm start), replaces the default start."""
    two_d = len(cell.batches) >= 3 and len(cell.runs) >= SURFACE_RUNS
    chosen = basin(cell.runs, window, 9 if two_d else 6)
    x = np.log2([r.learning_rate for r in chosen])
    if len(set(x)) < MIN_LEARNING_RATES:
        raise NotApplicable(f"{len(set(x))} learning rates in the basin; its shape needs {MIN_LEARNING_RATES}")
    y = np.log2([r.batch_size for r in chosen]) if two_d else None
    loss = np.array([r.loss for r in chosen])
    best = cell.best
    level = max(abs(best.loss), 1e-6)
    steep = (math.log(1e-7 * level), math.log(10 * level))
    lo_x, hi_x = math.log2(cell.learning_rates[0]) - 1, math.log2(cell.learning_rates[-1]) + 1
    initial = [best.loss, math.log2(best.learning_rate), math.log(0.01 * level), math.log(0.01 * level), 2.0]
    lower = [-np.inf, lo_x, steep[0], steep[0], _POWER[0]]
    upper = [np.inf, hi_x, steep[1], steep[1], _POWER[1]]
    if two_d:
        lo_y, hi_y = cell.y_swept
        initial += [math.log2(best.batch_size), math.log(0.005 * level), 0.0]
        lower += [lo_y - 1, steep[0], -_TILT]
        upper += [hi_y + 1, steep[1], _TILT]
    scale = max(1e-4, 0.01 * float(np.median(loss)))
    if start is not None and len(start) == len(initial):
        initial = list(start)
    eps = 1e-9  # least_squares needs a start strictly inside the bounds
    p = least_squares(lambda q: _model(q, x, y) - loss, np.clip(initial, np.add(lower, eps), np.subtract(upper, eps)),
                      jac=lambda q: _jacobian(q, x, y), bounds=(lower, upper), loss="soft_l1", f_scale=scale).x
    flags = {} if two_d else {"batch_size": batch_not_swept(cell)}
    if not two_d:
        return Located(float(p[1]), None, False, False, float(p[0]), len(chosen), flags, params=tuple(p))
    x0, y0, k = float(p[1]), float(p[5]), float(p[7])
    valley = (x0 - k * y0, k)
    at = min(max(y0, cell.y_swept[0]), cell.y_swept[1])  # beyond the swept batches, read the rate at the edge
    fitted = float(p[0] + math.exp(p[6]) * (at - y0) ** 2)
    return Located(on_valley(valley, at), y0, True, True, fitted, len(chosen), flags, valley, tuple(p))
