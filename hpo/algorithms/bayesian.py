"""Gaussian-process Bayesian optimisation with expected improvement.

We write this one ourselves rather than wrap a BO library because the algorithm must be a pure
function of the study's history (every worker, in any process, derives the same proposal from
the same trials) and must work on our unit-cube encoding of mixed, conditional spaces. The
pieces are standard and small: scikit-learn's GaussianProcessRegressor for the surrogate,
SciPy's scrambled Sobol sequence for candidates, and the closed form of expected improvement.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from scipy.optimize import minimize
from scipy.stats import norm, qmc
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Kernel, Matern, WhiteKernel
from threadpoolctl import ThreadpoolController

from db.models import TrialState
from db.records import FrozenTrial
from hpo.algorithms.base import Algorithm, AlgorithmError, History, Proposal
from search_spaces import config_hash

#: Of the GP's training points, how many are the best observations (the rest are the most
#: recent): the model must be accurate near the incumbent, where EI looks, and know where the
#: search went lately.
_BEST_POINTS = 48
#: Hyperparameters are fitted on this many of the training points (best first), then the GP is
#: conditioned on all of them with those hyperparameters: fitting is O(n^3) per optimizer step,
#: conditioning is O(n^3) once.
_FIT_POINTS = 40
#: L-BFGS iterations for the marginal likelihood: the optimum's last digits do not change
#: which candidate wins, and each iteration costs a Cholesky factorisation.
_FIT_ITERATIONS = 20
#: Finds the BLAS libraries once (each ``threadpool_limits`` call would search for them again).
_THREADPOOLS = ThreadpoolController()
#: Best points whose neighbourhoods are searched, and candidates drawn around each.
_LOCAL_CENTRES, _LOCAL_PER_CENTRE = 5, 128


class GPBayesOpt(Algorithm):
    """GP-EI (Jones, Schonlau & Welch, "Efficient Global Optimization of Expensive Black-Box
    Functions", J. Global Optim. 1998), with the recipe of Snoek, Larochelle & Adams,
    "Practical Bayesian Optimization of Machine Learning Algorithms", NeurIPS 2012: a Matern
    5/2 kernel with one length scale per dimension (ARD), fitted by marginal likelihood, and
    expected improvement maximised over the unit cube.

    Every trial runs at the full budget (BO here does not use the fidelity). The first
    ``n_initial`` trials are random (default d + 1, clipped to 5-10: one point a dimension
    would spend a 64-dimensional space's whole budget on random points). EI is maximised over
    ``candidates`` Sobol points plus perturbations of the best points, and the best candidate whose
    configuration has not been tried is proposed. ``xi`` is the improvement EI demands, in
    units of the observed scores' standard deviation. ``max_points`` caps the GP's training
    set (the best observations plus the most recent) so an ask stays fast with thousands of
    trials; the kernel's hyperparameters are refitted every ``refit_every`` observations
    (each ask while there are fewer than twice that many) and the GP conditioned on every ask.
    """

    name = "bo"
    defaults: ClassVar[Mapping[str, Any]] = {
        "n_initial": None,
        "candidates": 512,
        "xi": 0.01,
        "max_points": 128,
        "refit_every": 5,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        d = len(self.space.dimensions)
        if self.settings["n_initial"] is None:
            self.n_initial = min(max(5, d + 1), 10)
        else:
            self.n_initial = self.setting("n_initial", int, minimum=1)
        self.candidates = self.setting("candidates", int, minimum=1)
        self.xi = self.setting("xi", float, minimum=0)
        self.max_points = self.setting("max_points", int, minimum=2)
        self.refit_every = self.setting("refit_every", int, minimum=1)
        self._fitted: tuple[tuple[tuple[int, float], ...], Kernel] | None = None
        if self.max_points < self.n_initial:
            raise AlgorithmError(
                f"setting max_points={self.max_points} of 'bo' must be >= n_initial={self.n_initial}"
            )

    def propose(self, history: History) -> Proposal:
        rng = self.rng(history)
        budget = self.max_budget()
        observed = [
            t for t in history.finished
            if t.state is not TrialState.PRUNED and (budget is None or t.budget == budget)
        ]
        scores = [history.score(t) for t in observed]
        finite = [score for score in scores if math.isfinite(score)]
        if len(finite) < self.n_initial or not self.space.dimensions:
            return Proposal(self.sample_new(history, rng), budget)
        # Failures score as the worst finite observation, so the model learns to avoid them.
        worst = max(finite)
        scored = [(t, min(score, worst)) for t, score in zip(observed, scores)]
        x, y = self._arrays(_training_set(scored, self.max_points))
        candidates = self._candidates(x, y, rng)
        # The matrices are small: BLAS threads only add start-up and contention costs.
        with _THREADPOOLS.limit(limits=1, user_api="blas"):
            mean, std = _condition(self._kernel(scored), x, y).predict(candidates, return_std=True)
        ei = expected_improvement(mean, std, float(y.min()), self.xi * float(y.std()))
        for index in np.argsort(-ei, kind="stable"):
            config = self.space.decode(candidates[index])
            if config_hash(config) not in history.seen_hashes:
                return Proposal(config, budget, {"ei": float(ei[index])})
        return Proposal(self.sample_new(history, rng), budget)

    def _arrays(self, train: list[tuple[FrozenTrial, float]]) -> tuple[np.ndarray, np.ndarray]:
        return np.array([self.space.encode(t.params) for t, _ in train]), np.array([y for _, y in train])

    def _kernel(self, scored: list[tuple[FrozenTrial, float]]) -> Kernel:
        """The kernel's hyperparameters, refitted each time ``refit_every`` more observations
        have come in, on the first observations in trial order up to that multiple.

        Fitting them is most of an ask's cost; between refits the GP is only conditioned on
        the new points. The fit depends on the history alone (which trials make the
        snapshot), so a fresh process computes the same kernel the cached one holds.
        """
        n = len(scored)
        size = n if n < 2 * self.refit_every else (n // self.refit_every) * self.refit_every
        snapshot = scored[:size]
        key = tuple((t.number, y) for t, y in snapshot)
        if self._fitted is None or self._fitted[0] != key:
            with _THREADPOOLS.limit(limits=1, user_api="blas"):
                self._fitted = (key, _fit_kernel(*self._arrays(_training_set(snapshot, self.max_points))))
        return self._fitted[1]

    def _candidates(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Sobol points over the cube, Gaussian steps (two scales) around the best points, and
        the best points with 1-8 coordinates drawn anew (at least one, as in SMAC's one-exchange
        neighbourhood):
        EI's maximum is usually near the incumbent, which a global design samples sparsely,
        and a small step never changes a categorical or integer value, which a redrawn
        coordinate does (on counting-ones, 8 of 16 or 32 of 64 dimensions are binary)."""
        d = x.shape[1]
        sobol = qmc.Sobol(d, scramble=True, seed=rng).random_base2(max(0, math.ceil(math.log2(self.candidates))))
        centres = x[np.argsort(y, kind="stable")[:_LOCAL_CENTRES]]
        scales = np.where(np.arange(_LOCAL_PER_CENTRE) % 2 == 0, 0.05, 0.005)[:, None]
        local = centres[:, None, :] + rng.standard_normal((len(centres), _LOCAL_PER_CENTRE, d)) * scales
        exchanged = np.repeat(centres, _LOCAL_PER_CENTRE, axis=0)
        rate = np.minimum(0.5, np.array([1.0, 2.0, 4.0, 8.0])[np.arange(len(exchanged)) % 4] / d)[:, None]
        redraw = rng.random(exchanged.shape) < rate
        redraw[np.arange(len(exchanged)), rng.integers(0, d, len(exchanged))] = True
        exchanged[redraw] = rng.random(int(redraw.sum()))
        return np.vstack([sobol, np.clip(local.reshape(-1, d), 0.0, 1.0), exchanged])


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float, xi: float = 0.0) -> np.ndarray:
    """E[max(best - xi - f, 0)] for f ~ N(mean, std^2): the expected gain over the incumbent
    (minimisation), zero where the model is certain."""
    std = np.maximum(std, 1e-12)
    improvement = best - xi - mean
    z = improvement / std
    return improvement * norm.cdf(z) + std * norm.pdf(z)


def _training_set(scored: list[tuple[Any, float]], limit: int) -> list[tuple[Any, float]]:
    """At most ``limit`` observations: the best ones, then the most recent, in trial order."""
    if len(scored) <= limit:
        return scored
    by_score = sorted(range(len(scored)), key=lambda i: (scored[i][1], scored[i][0].number))
    keep = set(by_score[: min(_BEST_POINTS, limit)])
    for i in range(len(scored) - 1, -1, -1):
        if len(keep) >= limit:
            break
        keep.add(i)
    return [scored[i] for i in sorted(keep)]


def _fit_kernel(x: np.ndarray, y: np.ndarray) -> Kernel:
    """Matern 5/2 + white noise, hyperparameters by maximum likelihood on the best
    ``_FIT_POINTS`` points: one length scale per dimension (ARD) once there are twice as many
    points as dimensions, one shared before (fewer points cannot determine d length scales)."""
    d = x.shape[1]
    scales = np.full(d, 0.3) if len(x) >= 2 * d else 0.3
    kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(scales, (1e-2, 1e2), nu=2.5) + WhiteKernel(
        1e-3, (1e-8, 1e-1)
    )
    subset = np.sort(np.argsort(y, kind="stable")[:_FIT_POINTS])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        regressor = GaussianProcessRegressor(kernel, optimizer=_lbfgs, normalize_y=True)
        return regressor.fit(x[subset], y[subset]).kernel_


def _condition(kernel: Kernel, x: np.ndarray, y: np.ndarray) -> GaussianProcessRegressor:
    """The GP with fixed hyperparameters, conditioned on every training point."""
    return GaussianProcessRegressor(kernel, normalize_y=True, optimizer=None).fit(x, y)


def _lbfgs(objective: Any, theta: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, float]:
    """scikit-learn's default optimizer with at most ``_FIT_ITERATIONS`` iterations."""
    result = minimize(objective, theta, method="L-BFGS-B", jac=True, bounds=bounds, options={"maxiter": _FIT_ITERATIONS})
    return result.x, float(result.fun)
