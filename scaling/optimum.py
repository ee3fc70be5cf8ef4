"""The optimal learning rate and batch size of one (N, D) cell, from its sweep's runs.

Not the argmin of noisy losses. Three estimators locate the optimum, each its own module:

* ``quadratic`` (:mod:`scaling.quadratic`): a robust quadratic in (log2 lr, log2 batch) over
  the basin; its vertex. Right for symmetric, convex basins (Step Law, section 3).
* ``plateau`` (:mod:`scaling.plateau`): the geometric mean of the settings within ``plateau``
  (0.25%) of the cell's best loss, as Step Law's pipeline reads an optimum. Makes no shape
  assumption, so an asymmetric or plateau-shaped basin does not pull it.
* ``asymmetric`` (:mod:`scaling.asymmetric`): a basin with its own steepness on each side of
  the optimum in log lr (real basins are steep above, flat below) and a free power (plateau
  shapes), tilted along the batch; needs 5+ learning rates in the basin, else the cell falls
  back to the quadratic and says so.

This module holds what they share: the cell's finite runs and grids, the flags (an optimum on
or beyond the edge of the swept range, a batch size not swept), the bootstrap interval (the
cell's runs resampled and the same estimator re-run, so the basin selection is part of the
uncertainty), and the estimator-neutral ranges read off the runs (:mod:`scaling.surface`):
``plateau`` (within 0.25% of the best run) and ``tolerance`` (within 0.1%, the range a
recommendation carries). A flagged dimension is not used by a law fit. Which estimator a fit
uses is chosen on the sweep itself (:mod:`scaling.selection`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scaling.errors import ScalingError
from scaling.runs import Run
from scaling.surface import CellSurface

#: the near-best set: the plateau estimator averages it and a fit to runs keeps it (Step Law's 0.25%)
PLATEAU = 0.0025
#: the range a recommendation reports: settings within 0.1% of the best loss
TOLERANCE = 0.001
#: the basin a curve is fitted to: runs within 5% of the best loss
WINDOW = 0.05
BOOTSTRAP = 200
#: Runs a cell needs for a surface in (lr, batch): a quadratic's 6 coefficients and 4 to spare.
SURFACE_RUNS = 10
ESTIMATORS = ("quadratic", "plateau", "asymmetric")


@dataclass(frozen=True)
class Cell:
    """A cell's finite runs and what was swept, prepared once for every estimator."""

    runs: tuple[Run, ...]
    learning_rates: tuple[float, ...]
    batches: tuple[float, ...]

    @classmethod
    def of(cls, runs: Sequence[Run]) -> Cell:
        finite = tuple(r for r in runs if math.isfinite(r.loss))
        return cls(finite, tuple(sorted({r.learning_rate for r in finite})), tuple(sorted({r.batch_size for r in finite})))

    @property
    def best(self) -> Run:
        return min(self.runs, key=lambda r: r.loss)

    @property
    def y_swept(self) -> tuple[float, float]:
        return math.log2(self.batches[0]), math.log2(self.batches[-1])

    def near_best(self, tolerance: float) -> tuple[Run, ...]:
        """The runs within ``tolerance`` of the best loss."""
        limit = self.best.loss * (1 + tolerance)
        return tuple(r for r in self.runs if r.loss <= limit)


def on_valley(valley: tuple[float, float], y: float) -> float:
    """log2 lr on the valley line log2 lr = a + k log2 batch, at log2 batch ``y``."""
    a, k = valley
    return a + k * y


@dataclass(frozen=True)
class Located:
    """Where an estimator puts a cell's optimum (log2 values).

    ``x`` is None when the estimator finds no optimum inside the data (its reason in
    ``flags``); ``y`` is the batch optimum, beyond the swept range when the basin opens that
    way, and ``batch_found`` False when there is none (the learning rate is then read at the
    best run's batch). ``valley`` is the line log2 lr = a + k log2 batch along which the best
    learning rate moves with the batch, when the estimator models one."""

    x: float | None
    y: float | None
    batch_found: bool
    two_d: bool
    loss: float
    used: int
    flags: dict[str, str] = field(default_factory=dict)
    valley: tuple[float, float] | None = None
    #: the fitted coefficients, where a resample's fit can start from them (:mod:`scaling.asymmetric`)
    params: tuple[float, ...] | None = None


class NotApplicable(ScalingError):
    """An estimator that cannot read this cell (too few learning rates for its shape)."""


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
    #: whether the estimator could read the batch size (3+ sizes; a surface also needs 10+
    #: runs); a cell whose batch optimum is flagged still shows where its best runs were
    batch_swept: bool = False
    #: the line log2 lr = a + k log2 batch of the estimator's valley (for :meth:`learning_rate_at`)
    valley: tuple[float, float] | None = field(default=None, repr=False)
    estimator: str = "quadratic"
    #: why this estimator read this cell (a fallback says what it fell back from)
    note: str = ""
    #: the settings within TOLERANCE (0.1%) of the best run, read off the runs
    tolerance: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: the runs within PLATEAU (0.25%) of the best, which a fit to runs uses
    kept: tuple[Run, ...] = field(default=(), repr=False)

    def learning_rate_at(self, batch_size: float) -> float | None:
        """The best learning rate along the estimator's valley at ``batch_size`` (clamped to the
        swept batches): along a valley the best rate moves with the batch, so a law that
        recommends another batch than the cell's optimum needs the rate at that batch. None
        where the estimator models no valley."""
        if self.valley is None:
            return None
        lo, hi = (math.log2(b) for b in self.swept["batch_size"])
        return 2.0 ** on_valley(self.valley, min(max(math.log2(batch_size), lo), hi))

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
            "estimator": self.estimator,
            "note": self.note,
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "loss": self.loss,
            "best_observed": {"learning_rate": self.best_observed.learning_rate, "batch_size": self.best_observed.batch_size, "loss": self.best_observed.loss},
            "learning_rate_interval": self.learning_rate_interval,
            "batch_size_interval": self.batch_size_interval,
            "plateau": self.plateau,
            "tolerance": self.tolerance,
            "swept": self.swept,
            "flags": self.flags,
            "runs_used": self.runs_used,
            "runs_excluded": self.runs_excluded,
            "batch_swept": self.batch_swept,
        }


def _locator(estimator: str) -> Callable[..., Located]:
    from scaling import asymmetric, plateau, quadratic

    locators: dict[str, Callable[..., Located]] = {
        "quadratic": quadratic.locate, "plateau": plateau.locate, "asymmetric": asymmetric.locate}
    try:
        return locators[estimator]
    except KeyError:
        raise ScalingError(f"unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}") from None


def batch_not_swept(cell: Cell) -> str:
    """The flag of a cell whose batch an estimator cannot read: too few sizes, else too few
    runs for a surface."""
    if len(cell.batches) < 3:
        n = len(cell.batches)
        return f"batch size not swept ({n} value{'s' if n > 1 else ''}; 3 needed)"
    return f"too few runs ({len(cell.runs)}) for a surface in learning rate and batch size ({SURFACE_RUNS} needed)"


def find_optimum(
    runs: Sequence[Run],
    *,
    estimator: str = "quadratic",
    window: float = WINDOW,
    plateau: float = PLATEAU,
    bootstrap: int = BOOTSTRAP,
    seed: int = 0,
) -> CellOptimum:
    """The optimum of the runs of one (N, D) cell by ``estimator`` (see the module). The
    asymmetric estimator falls back to the quadratic on a cell with too few learning rates."""
    locate = _locator(estimator)
    if not runs:
        raise ScalingError("no runs to find an optimum in")
    n_params, tokens = runs[0].n_params, runs[0].tokens
    cell = Cell.of(runs)
    if len(cell.learning_rates) < 3:
        raise ScalingError(
            f"cell N={n_params:.3g}, D={tokens:.3g}: {len(cell.learning_rates)} distinct learning rates with a finite loss; "
            "an optimum needs at least 3"
        )
    options = {"plateau": plateau} if estimator == "plateau" else {"window": window}
    note = ""
    try:
        found = locate(cell, **options)
    except NotApplicable as exc:
        estimator, locate, note = "quadratic", _locator("quadratic"), f"asymmetric not applicable ({exc}): quadratic"
        found = locate(cell, window=window)
    best = cell.best
    flags = dict(found.flags)
    x = found.x if found.x is not None else math.log2(best.learning_rate)
    y = found.y if found.y is not None else math.log2(best.batch_size)
    if found.x is not None:
        flags.update(_edge_flags(cell, x, y, {"learning_rate"} | ({"batch_size"} if found.two_d else set()) - set(flags)))
    warm = {"start": found.params} if found.params is not None else {}
    lr_interval, batch_interval = _intervals(cell, locate, {**options, **warm}, bootstrap, seed)
    surface = CellSurface(cell.runs)
    diverged = len(runs) - len(cell.runs)
    excluded = {"diverged": diverged, "outside the basin": len(cell.runs) - found.used}
    return CellOptimum(
        n_params=n_params,
        tokens=tokens,
        learning_rate=2.0**x,
        batch_size=2.0**y,
        loss=found.loss,
        best_observed=best,
        learning_rate_interval=lr_interval,
        batch_size_interval=batch_interval if found.two_d and found.batch_found else None,
        plateau=surface.within(plateau),
        swept={"learning_rate": (cell.learning_rates[0], cell.learning_rates[-1]), "batch_size": (cell.batches[0], cell.batches[-1])},
        flags=flags,
        runs_used=found.used,
        runs_excluded={k: v for k, v in excluded.items() if v},
        batch_swept=found.two_d,
        valley=found.valley,
        estimator=estimator,
        note=note,
        tolerance=surface.within(TOLERANCE),
        kept=cell.near_best(plateau),
    )


def _edge_flags(cell: Cell, x: float, y: float, dims: set[str]) -> dict[str, str]:
    """An optimum on or beyond the edge of the swept range, or a best run on its edge: the
    optimum may lie outside the data."""
    flags = {}
    best = cell.best
    for dim, v, observed, values in (
        ("learning_rate", x, best.learning_rate, cell.learning_rates),
        ("batch_size", y, best.batch_size, cell.batches),
    ):
        if dim not in dims:
            continue
        lo, hi = math.log2(values[0]), math.log2(values[-1])
        if not lo < v < hi or observed in (values[0], values[-1]):
            flags[dim] = (
                f"optimum on the edge of the swept range ({values[0]:.3g}..{values[-1]:.3g}; fitted "
                f"{2 ** v:.3g}, best run at {observed:.3g}): widen the sweep"
            )
            if dim == "batch_size" and not lo <= v <= hi:
                flags[dim] += f"; the learning rate is the optimum at the edge batch {2 ** min(max(v, lo), hi):.3g}"
    return flags


def _intervals(
    cell: Cell, locate: Callable[..., Located], options: dict[str, Any], bootstrap: int, seed: int, level: float = 0.9
) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
    """Central ``level`` intervals of the estimate over bootstrap resamples of the cell's runs
    (resamples without an optimum in a dimension are dropped for it; None for a dimension
    where most are, or with ``bootstrap`` 0)."""
    if bootstrap <= 0:
        return None, None
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for _ in range(bootstrap):
        sample = Cell.of([cell.runs[i] for i in rng.integers(0, len(cell.runs), len(cell.runs))])
        if len(sample.learning_rates) < 3:
            continue
        try:
            found = locate(sample, **options)
        except NotApplicable:
            continue
        if found.x is not None:
            xs.append(found.x)
            if found.two_d and found.batch_found and found.y is not None:
                ys.append(found.y)
    q = [50 * (1 - level), 50 * (1 + level)]
    lr = tuple(float(2.0**v) for v in np.percentile(xs, q)) if len(xs) >= bootstrap / 2 else None
    batch = tuple(float(2.0**v) for v in np.percentile(ys, q)) if len(ys) >= bootstrap / 2 else None
    return lr, batch  # type: ignore[return-value]
