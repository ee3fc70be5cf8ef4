"""The optimal learning rate and batch size of one (N, D) cell, from its sweep's runs.

Not the argmin of noisy losses: near its optimum the loss is convex in log learning rate and
log batch size (Step Law, section 3), so we fit a quadratic surface in (log2 lr, log2 batch)
to the runs in the basin (within ``window`` of the best loss, and at least enough to fit),
robustly (scipy's ``least_squares`` with a soft-L1 loss, so one noisy run does not drag the
vertex), and report:

* the vertex as the optimum, with a bootstrap interval (runs resampled, surface refitted);
* the plateau: the settings whose fitted loss is within ``plateau`` (0.25%) of the optimum's;
* flags: an optimum on or beyond the edge of the swept range, a surface that is not convex,
  a batch size that was not swept. A flagged dimension is not used by a law fit.

With fewer than three batch sizes, or fewer than ten runs, the fit is one-dimensional in
the learning rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from scaling.errors import ScalingError
from scaling.runs import Run

PLATEAU = 0.0025
WINDOW = 0.05
BOOTSTRAP = 200
#: Runs a cell needs for a surface in (lr, batch): its 6 coefficients and 4 to spare.
SURFACE_RUNS = 10


@dataclass(frozen=True)
class CellOptimum:
    """The estimated optimum of one (N, D) cell and how far to trust it."""

    n_params: float
    tokens: float
    learning_rate: float
    batch_size: float
    loss: float
    best_observed: Run
    learning_rate_interval: tuple[float, float] | None
    batch_size_interval: tuple[float, float] | None
    plateau: dict[str, tuple[float, float]]
    swept: dict[str, tuple[float, float]]
    flags: dict[str, str] = field(default_factory=dict)
    runs_used: int = 0
    runs_excluded: dict[str, int] = field(default_factory=dict)
    #: whether the batch size was swept enough for a surface (3+ sizes, 10+ runs); a cell
    #: whose batch optimum is flagged still shows where its best runs were when it was
    batch_swept: bool = False
    #: the fitted quadratic's coefficients in (log2 lr, log2 batch) when it is convex in the
    #: learning rate (for :meth:`learning_rate_at`)
    surface: tuple[float, ...] | None = field(default=None, repr=False)

    def learning_rate_at(self, batch_size: float) -> float | None:
        """The best learning rate of the cell's fitted surface at ``batch_size`` (clamped to the
        swept batches): along a valley the best rate moves with the batch, so a law that
        recommends another batch than the cell's optimum needs the rate at that batch. None
        without a surface convex in the learning rate."""
        if self.surface is None:
            return None
        y_swept = tuple(math.log2(b) for b in self.swept["batch_size"])
        return 2.0 ** _lr_at(np.array(self.surface), _clamp(math.log2(batch_size), y_swept))

    @property
    def best_batch(self) -> float | None:
        """The batch the cell's evidence points to: its optimum when usable, else its best
        run's (at the edge of a valley open to one side, a bound on the optimum); None when
        the batch was not swept."""
        if not self.batch_swept:
            return None
        return self.batch_size if self.batch_usable else self.best_observed.batch_size

    @property
    def lr_usable(self) -> bool:
        return "learning_rate" not in self.flags

    @property
    def batch_usable(self) -> bool:
        return "batch_size" not in self.flags

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_params": self.n_params,
            "tokens": self.tokens,
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "loss": self.loss,
            "best_observed": {"learning_rate": self.best_observed.learning_rate, "batch_size": self.best_observed.batch_size, "loss": self.best_observed.loss},
            "learning_rate_interval": self.learning_rate_interval,
            "batch_size_interval": self.batch_size_interval,
            "plateau": self.plateau,
            "swept": self.swept,
            "flags": self.flags,
            "runs_used": self.runs_used,
            "runs_excluded": self.runs_excluded,
            "batch_swept": self.batch_swept,
        }


def _design(x: np.ndarray, y: np.ndarray | None) -> np.ndarray:
    if y is None:
        return np.column_stack([np.ones_like(x), x, x * x])
    return np.column_stack([np.ones_like(x), x, y, x * x, y * y, x * y])


def _fit(x: np.ndarray, y: np.ndarray | None, loss: np.ndarray) -> np.ndarray:
    a = _design(x, y)
    start, *_ = np.linalg.lstsq(a, loss, rcond=None)
    scale = max(1e-4, 0.01 * float(np.median(loss)))
    return least_squares(lambda c: a @ c - loss, start, loss="soft_l1", f_scale=scale).x


def _vertex(
    c: np.ndarray, two_d: bool, y_best: float, y_swept: tuple[float, float]
) -> tuple[float, float | None, bool] | None:
    """The minimum of the fitted quadratic as (log2 lr, log2 batch, batch found); None when
    it is not convex in the learning rate. A surface convex in the learning rate but open or
    flat along the batch size (the valley small budgets give, where the best learning rate
    rises with the batch) still has a learning-rate optimum: the one at the best run's batch.
    A batch vertex beyond the swept range (``y_swept``, log2) is reported, but its learning
    rate is read where the valley leaves the data, at the nearest swept batch: along the
    valley the best rate moves with the batch, so the rate at an extrapolated batch is an
    extrapolation too."""
    if not two_d:
        return (-c[1] / (2 * c[2]), None, False) if c[2] > 0 else None
    h = np.array([[2 * c[3], c[5]], [c[5], 2 * c[4]]])
    if np.linalg.eigvalsh(h).min() > 0:
        vx, vy = np.linalg.solve(h, -c[1:3])
        if not y_swept[0] <= vy <= y_swept[1]:
            vx = _lr_at(c, _clamp(vy, y_swept))
        return float(vx), float(vy), True
    if c[3] > 0:
        return _lr_at(c, y_best), y_best, False
    return None


def _lr_at(c: np.ndarray, y: float) -> float:
    """The best log2 learning rate of the fitted surface at log2 batch ``y`` (convex in lr)."""
    return float(-(c[1] + c[5] * y) / (2 * c[3]))


def _clamp(y: float, y_swept: tuple[float, float]) -> float:
    return min(max(y, y_swept[0]), y_swept[1])


def _select(runs: Sequence[Run], window: float, minimum: int) -> list[Run]:
    ordered = sorted(runs, key=lambda r: r.loss)
    best = ordered[0].loss
    basin = [r for r in ordered if r.loss <= best * (1 + window)]
    return basin if len(basin) >= minimum else ordered[:minimum]


def find_optimum(
    runs: Sequence[Run],
    *,
    window: float = WINDOW,
    plateau: float = PLATEAU,
    bootstrap: int = BOOTSTRAP,
    seed: int = 0,
) -> CellOptimum:
    """The optimum of the runs of one (N, D) cell (see the module)."""
    if not runs:
        raise ScalingError("no runs to find an optimum in")
    n_params, tokens = runs[0].n_params, runs[0].tokens
    finite = [r for r in runs if math.isfinite(r.loss)]
    excluded = {"diverged": len(runs) - len(finite)} if len(finite) < len(runs) else {}
    lrs = sorted({r.learning_rate for r in finite})
    batches = sorted({r.batch_size for r in finite})
    # a quadratic surface has 6 coefficients: with fewer than 10 runs, fit the learning rate alone
    two_d = len(batches) >= 3 and len(finite) >= SURFACE_RUNS
    minimum = 6 if two_d else 3
    if len(lrs) < 3:
        raise ScalingError(
            f"cell N={n_params:.3g}, D={tokens:.3g}: {len(lrs)} distinct learning rates with a finite loss; "
            "an optimum needs at least 3"
        )
    chosen = _select(finite, window, minimum + (1 if two_d else 0))
    excluded["outside the basin"] = len(finite) - len(chosen)
    x = np.log2([r.learning_rate for r in chosen])
    y = np.log2([r.batch_size for r in chosen]) if two_d else None
    loss = np.array([r.loss for r in chosen])
    best = min(finite, key=lambda r: r.loss)
    swept = {"learning_rate": (lrs[0], lrs[-1]), "batch_size": (batches[0], batches[-1])}
    flags: dict[str, str] = {}
    coef = _fit(x, y, loss)
    y_swept = (math.log2(batches[0]), math.log2(batches[-1]))
    vertex = _vertex(coef, two_d, math.log2(best.batch_size), y_swept)
    if vertex is None:
        reason = "the fitted surface is not convex: no optimum inside the data"
        flags["learning_rate"] = reason
        if two_d:
            flags["batch_size"] = reason
        vx, vy = math.log2(best.learning_rate), math.log2(best.batch_size)
    else:
        vx = vertex[0]
        vy = vertex[1] if vertex[1] is not None else math.log2(best.batch_size)
        if two_d and not vertex[2]:
            flags["batch_size"] = (
                "the fitted surface is not convex in the batch size (a flat or open valley): no batch "
                f"optimum inside the data; the learning rate is the optimum at the best run's batch {best.batch_size:.3g}"
            )
    if not two_d:
        flags["batch_size"] = (
            f"batch size not swept ({len(batches)} value{'s' if len(batches) > 1 else ''}; 3 needed)" if len(batches) < 3
            else f"too few runs ({len(finite)}) for a surface in learning rate and batch size ({SURFACE_RUNS} needed)"
        )
    for dim, v, observed, values in (
        ("learning_rate", vx, best.learning_rate, lrs),
        ("batch_size", vy, best.batch_size, batches),
    ):
        if dim in flags:
            continue
        lo, hi = math.log2(values[0]), math.log2(values[-1])
        if not lo < v < hi or observed in (values[0], values[-1]):
            flags[dim] = (
                f"optimum on the edge of the swept range ({values[0]:.3g}..{values[-1]:.3g}; fitted "
                f"{2 ** v:.3g}, best run at {observed:.3g}): widen the sweep"
            )
            if dim == "batch_size" and not lo <= v <= hi:
                flags[dim] += f"; the learning rate is the optimum at the edge batch {2 ** _clamp(v, y_swept):.3g}"
    at = np.array([_clamp(vy, y_swept)])  # the loss where the learning rate was read
    fitted_loss = float((_design(np.array([vx]), None if y is None else at) @ coef)[0])
    lr_interval, batch_interval = _intervals(chosen, two_d, bootstrap, seed, y_swept)
    return CellOptimum(
        n_params=n_params,
        tokens=tokens,
        learning_rate=2.0**vx,
        batch_size=2.0**vy,
        loss=fitted_loss if vertex is not None else best.loss,
        best_observed=best,
        learning_rate_interval=lr_interval,
        batch_size_interval=batch_interval if two_d and vertex is not None and vertex[2] else None,
        plateau=_plateau(coef, lrs, batches, two_d, plateau) if vertex is not None else {},
        swept=swept,
        flags=flags,
        runs_used=len(chosen),
        runs_excluded={k: v for k, v in excluded.items() if v},
        batch_swept=two_d,
        surface=tuple(float(c) for c in coef) if two_d and coef[3] > 0 else None,
    )


def _intervals(
    runs: Sequence[Run], two_d: bool, bootstrap: int, seed: int, y_swept: tuple[float, float], level: float = 0.9
) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
    """Central ``level`` intervals of the vertex over bootstrap resamples of the runs
    (resamples whose surface has no minimum in a dimension are dropped for it; None for a
    dimension where most are)."""
    rng = np.random.default_rng(seed)
    x = np.log2([r.learning_rate for r in runs])
    y = np.log2([r.batch_size for r in runs]) if two_d else None
    loss = np.array([r.loss for r in runs])
    y_best = math.log2(min(runs, key=lambda r: r.loss).batch_size)
    xs, ys = [], []
    for _ in range(bootstrap):
        idx = rng.integers(0, len(runs), len(runs))
        if len(set(x[idx])) < 3 or (two_d and len(set(y[idx])) < 3):  # type: ignore[index]
            continue
        v = _vertex(_fit(x[idx], None if y is None else y[idx], loss[idx]), two_d, y_best, y_swept)
        if v is not None:
            xs.append(v[0])
            if v[2]:
                ys.append(v[1])
    q = [50 * (1 - level), 50 * (1 + level)]
    lr = tuple(float(2.0**v) for v in np.percentile(xs, q)) if len(xs) >= bootstrap / 2 else None
    batch = tuple(float(2.0**v) for v in np.percentile(ys, q)) if two_d and len(ys) >= bootstrap / 2 else None
    return lr, batch  # type: ignore[return-value]


def _plateau(
    coef: np.ndarray, lrs: Sequence[float], batches: Sequence[float], two_d: bool, tolerance: float
) -> dict[str, tuple[float, float]]:
    """The swept settings whose fitted loss is within ``tolerance`` of the fitted minimum:
    the range of each hyperparameter over that set."""
    gx = np.linspace(math.log2(lrs[0]), math.log2(lrs[-1]), 201)
    if not two_d:
        pred = _design(gx, None) @ coef
        near = pred <= pred.min() * (1 + tolerance)
        return {"learning_rate": (float(2 ** gx[near].min()), float(2 ** gx[near].max()))}
    gy = np.linspace(math.log2(batches[0]), math.log2(batches[-1]), 201)
    mx, my = np.meshgrid(gx, gy)
    pred = (_design(mx.ravel(), my.ravel()) @ coef).reshape(mx.shape)
    near = pred <= pred.min() * (1 + tolerance)
    return {
        "learning_rate": (float(2 ** mx[near].min()), float(2 ** mx[near].max())),
        "batch_size": (float(2 ** my[near].min()), float(2 ** my[near].max())),
    }
