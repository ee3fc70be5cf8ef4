"""What a cell's runs say about any setting, without a model of the basin: the loss of the
nearest run, a piecewise-linear interpolation of the runs, and the settings within a tolerance
of the best run.

This is the estimator-neutral yardstick. Judging an optimum estimator by its own fitted curve
would favour that estimator, so every comparison (choosing an estimator on the sweep itself,
the held-out check of a fit, the benchmark on real tables) scores a recommended setting on the
held-out cell's runs through this module.

Invariants: all geometry is in (log2 lr, log2 batch); a cell whose runs span one batch (or
whose runs lie on a line) is one-dimensional in the learning rate, several runs at the same
learning rate averaging; a setting outside the runs' hull takes the loss of the nearest run
(the data cannot say more), so an interpolated loss excess is never below the nearest run's
inside the hull's edge and never negative.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cached_property

import numpy as np
from scipy.interpolate import LinearNDInterpolator
from scipy.spatial import QhullError

from scaling.runs import Run

#: points per axis of the grid on which tolerance ranges are read
_GRID = 161


class CellSurface:
    """The finite runs of one (N, D) cell as a function of (learning rate, batch size)."""

    def __init__(self, runs: Sequence[Run]) -> None:
        finite = [r for r in runs if math.isfinite(r.loss)]
        if not finite:
            raise ValueError("a cell surface needs at least one finite run")
        self.runs = finite
        self.best = min(finite, key=lambda r: r.loss)
        self._x = np.log2([r.learning_rate for r in finite])
        self._y = np.log2([r.batch_size for r in finite])
        self._loss = np.array([r.loss for r in finite])

    @cached_property
    def _interpolator(self) -> LinearNDInterpolator | None:
        if len(set(self._y)) < 2 or len(self.runs) < 3:
            return None
        try:
            return LinearNDInterpolator(np.column_stack([self._x, self._y]), self._loss)
        except QhullError:  # collinear runs: no two-dimensional hull
            return None

    @cached_property
    def _line(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean loss per learning rate (the one-dimensional view), sorted by learning rate."""
        xs = np.unique(self._x)
        return xs, np.array([self._loss[self._x == x].mean() for x in xs])

    @cached_property
    def _grid(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The interpolated loss on a grid over the swept (log2 lr, log2 batch), for :meth:`within`."""
        gx = np.linspace(self._x.min(), self._x.max(), _GRID)
        gy = np.linspace(self._y.min(), self._y.max(), _GRID)
        mx, my = np.meshgrid(gx, gy)
        return mx, my, self._interpolator(mx, my)  # type: ignore[misc]

    @property
    def two_d(self) -> bool:
        return self._interpolator is not None

    def nearest(self, learning_rate: float, batch_size: float | None = None) -> Run:
        """The run nearest in log space (the learning rate alone for a one-dimensional cell or
        without a batch)."""
        dx = self._x - math.log2(learning_rate)
        dy = 0 if batch_size is None or not self.two_d else self._y - math.log2(batch_size)
        return self.runs[int(np.argmin(dx * dx + dy * dy))]

    def loss_at(self, learning_rate: float, batch_size: float | None = None) -> float:
        """The interpolated loss at a setting; the nearest run's outside the runs' hull."""
        x = math.log2(learning_rate)
        if self.two_d and batch_size is not None:
            value = float(self._interpolator(x, math.log2(batch_size)))  # type: ignore[misc]
            return value if math.isfinite(value) else self.nearest(learning_rate, batch_size).loss
        xs, losses = self._line
        if not xs[0] <= x <= xs[-1]:
            return self.nearest(learning_rate).loss
        return float(np.interp(x, xs, losses))

    def excess(self, learning_rate: float, batch_size: float | None = None, *, nearest: bool = False) -> float:
        """Relative loss above the cell's best run at a setting: interpolated, or the nearest run's."""
        loss = self.nearest(learning_rate, batch_size).loss if nearest else self.loss_at(learning_rate, batch_size)
        return max(0.0, loss / self.best.loss - 1.0)

    def within(self, tolerance: float) -> dict[str, tuple[float, float]]:
        """The range of each hyperparameter over the settings whose interpolated loss is within
        ``tolerance`` of the best run's (the batch only for a two-dimensional cell); bounded by
        the swept range, since the runs say nothing beyond it."""
        limit = self.best.loss * (1 + tolerance)
        if not self.two_d:
            gx = np.linspace(self._x.min(), self._x.max(), _GRID)
            xs, losses = self._line
            near = gx[np.interp(gx, xs, losses) <= limit] if len(xs) > 1 else xs
            if len(near) == 0:
                near = np.array([math.log2(self.best.learning_rate)])
            return {"learning_rate": (float(2 ** near.min()), float(2 ** near.max()))}
        mx, my, values = self._grid
        near = np.isfinite(values) & (values <= limit)
        if not near.any():
            return {"learning_rate": (self.best.learning_rate,) * 2, "batch_size": (self.best.batch_size,) * 2}
        return {
            "learning_rate": (float(2 ** mx[near].min()), float(2 ** mx[near].max())),
            "batch_size": (float(2 ** my[near].min()), float(2 ** my[near].max())),
        }
