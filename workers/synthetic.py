"""Synthetic multi-fidelity objectives: cheap functions with known optima, for demos and tests.

Definitions follow the published benchmarks (see each function); the optimum is given so a
search's regret can be computed exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

BRANIN_BOUNDS = {"x1": (-5.0, 10.0), "x2": (0.0, 15.0)}
BRANIN_OPTIMUM = 0.397887


def branin_mf(x1: float, x2: float, z: float, rng: np.random.Generator | None = None) -> float:
    """Multi-fidelity Branin (Kandasamy et al., "Multi-fidelity Bayesian optimisation with
    continuous approximations", ICML 2017): fidelity ``z`` in [0, 1] perturbs the coefficients;
    at z = 1 it is the standard Branin, minimum 0.397887. With ``rng``, adds the benchmark's
    observation noise (sd sqrt(0.05))."""
    if not 0.0 <= z <= 1.0:
        raise ValueError(f"fidelity z must be in [0, 1], got {z}")
    b = 5.1 / (4 * math.pi**2) - 0.01 * (1 - z)
    c = 5 / math.pi - 0.1 * (1 - z)
    t = 1 / (8 * math.pi) + 0.005 * (1 - z)
    value = (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10
    if rng is not None:
        value += rng.normal(0.0, math.sqrt(0.05))
    return value


def branin_cost(z: float) -> float:
    """The benchmark's runtime model: an evaluation at fidelity z costs 0.05 + 0.95 z^1.5."""
    return 0.05 + 0.95 * z**1.5


# --- Multi-fidelity Hartmann (mf-prior-bench) -------------------------------------------------

HARTMANN3_OPTIMUM = -3.86278
HARTMANN6_OPTIMUM = -3.32237

# (bias, noise) per preset: how far the cheapest fidelity's weights are pulled from the true ones
# and how loud its observation noise is. Both fade to zero as z approaches 100.
HARTMANN_PRESETS: dict[str, tuple[float, float]] = {
    "default": (0.5, 0.1),
    "good": (2.5, 2.0),
    "moderate": (3.0, 3.0),
    "bad": (3.5, 4.0),
    "terrible": (4.0, 5.0),
}

_HARTMANN_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
# Standard coefficient tables; P is stored as integers and scaled by 1e-4 as in the literature.
_HARTMANN_TABLES: dict[int, tuple[np.ndarray, np.ndarray]] = {
    3: (
        np.array([
            [3.0, 10.0, 30.0],
            [0.1, 10.0, 35.0],
            [3.0, 10.0, 30.0],
            [0.1, 10.0, 35.0],
        ]),
        1e-4 * np.array([
            [3689, 1170, 2673],
            [4699, 4387, 7470],
            [1091, 8732, 5547],
            [381, 5743, 8828],
        ]),
    ),
    6: (
        np.array([
            [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
            [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
            [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
            [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
        ]),
        1e-4 * np.array([
            [1312, 1696, 5569, 124, 8283, 5886],
            [2329, 4135, 8307, 3736, 1004, 9991],
            [2348, 1451, 3522, 2883, 3047, 6650],
            [4047, 8828, 8732, 5743, 1091, 381],
        ]),
    ),
}
_HARTMANN_Z_MIN, _HARTMANN_Z_MAX = 1.0, 100.0


def hartmann_mf(
    x: Sequence[float],
    z: float,
    *,
    preset: str = "default",
    rng: np.random.Generator | None = None,
) -> float:
    """Multi-fidelity Hartmann-3 / Hartmann-6 as defined in mf-prior-bench (Mallik et al.,
    "PriorBand", NeurIPS 2023; github.com/automl/mf-prior-bench).

    The dimension (3 or 6) is taken from ``len(x)``; ``x`` lies in [0, 1]^d. Fidelity ``z`` in
    [1, 100] is mapped to s = ln z / ln 100, and the weights become alpha_i - bias * (1 - s), so
    cheap fidelities are systematically biased (not just noisy) and a method must actually climb
    to z = 100 to find the true optimum. With ``rng``, adds |N(0, 1)| * noise * (1 - s): the
    noise is one-sided and vanishes at the top fidelity. With ``rng=None`` the result is the
    deterministic fidelity-biased function, and at z = 100 exactly the standard Hartmann
    (minimum ``HARTMANN3_OPTIMUM`` / ``HARTMANN6_OPTIMUM``), which is what regret is computed on.
    """
    if preset not in HARTMANN_PRESETS:
        raise ValueError(f"unknown Hartmann preset {preset!r}; known: {', '.join(HARTMANN_PRESETS)}")
    point = np.asarray(x, dtype=float)
    if point.ndim != 1 or point.size not in _HARTMANN_TABLES:
        raise ValueError(f"Hartmann needs 3 or 6 coordinates, got shape {point.shape}")
    if not np.all((point >= 0.0) & (point <= 1.0)):
        raise ValueError(f"Hartmann coordinates must lie in [0, 1], got {point.tolist()}")
    if not _HARTMANN_Z_MIN <= z <= _HARTMANN_Z_MAX:
        raise ValueError(f"fidelity z must be in [{_HARTMANN_Z_MIN:g}, {_HARTMANN_Z_MAX:g}], got {z}")
    bias, noise = HARTMANN_PRESETS[preset]
    a, p = _HARTMANN_TABLES[point.size]
    s = math.log(z / _HARTMANN_Z_MIN) / math.log(_HARTMANN_Z_MAX / _HARTMANN_Z_MIN)
    gap = 1.0 - s
    alpha = _HARTMANN_ALPHA - bias * gap
    value = -float(np.sum(alpha * np.exp(-np.sum(a * (point - p) ** 2, axis=1))))
    if rng is not None:
        value += abs(float(rng.standard_normal())) * noise * gap
    return value


def hartmann_cost(z: float) -> float:
    """mf-prior-bench's cost model for Hartmann, 0.05 + 0.95 (z / 100)^2: quadratic in fidelity
    so the top fidelity costs 1.0 and the lowest about 5% of it (budgets count in full-fidelity
    equivalents)."""
    if not _HARTMANN_Z_MIN <= z <= _HARTMANN_Z_MAX:
        raise ValueError(f"fidelity z must be in [{_HARTMANN_Z_MIN:g}, {_HARTMANN_Z_MAX:g}], got {z}")
    return 0.05 + 0.95 * (z / _HARTMANN_Z_MAX) ** 2


# --- Counting ones (HPOlib / DEHB) ------------------------------------------------------------

_COUNTING_ONES_MIN_SAMPLES = 576.0
_COUNTING_ONES_MAX_SAMPLES = 93312.0


def counting_ones(
    categorical: Sequence[int],
    continuous: Sequence[float],
    budget: float,
    rng: np.random.Generator | None = None,
) -> float:
    """Counting ones (Falkner et al., BOHB, ICML 2018; used by Awad et al., "DEHB", IJCAI 2021,
    via HPOlib): a mixed binary/continuous toy problem whose fidelity is a sample count.

    Value is -(sum of the binary values + sum over continuous x_j of the mean of
    ``round(budget)`` Bernoulli(x_j) draws), so the optimum is -d at all ones, and a small budget
    gives a noisier (but unbiased) estimate. With ``rng=None`` returns the expectation
    -(sum(categorical) + sum(continuous)), the noise-free objective used to report regret.
    """
    for v in categorical:
        if v not in (0, 1):
            raise ValueError(f"counting ones categorical values must be 0 or 1, got {v!r}")
    cont = np.asarray(continuous, dtype=float).reshape(-1)
    if not np.all((cont >= 0.0) & (cont <= 1.0)):
        raise ValueError(f"counting ones continuous values must lie in [0, 1], got {cont.tolist()}")
    if len(categorical) + cont.size == 0:
        raise ValueError("counting ones needs at least one dimension")
    if not math.isfinite(budget) or round(float(budget)) < 1:
        raise ValueError(f"counting ones budget must round to at least 1 sample, got {budget}")
    total_cat = float(sum(int(v) for v in categorical))
    if rng is None:
        return -(total_cat + float(cont.sum()))
    samples = round(float(budget))
    # The mean of n Bernoulli(p) draws is Binomial(n, p) / n: same distribution, O(d) not O(n d).
    means = rng.binomial(samples, cont) / samples
    return -(total_cat + float(np.sum(means)))


def counting_ones_budgets(d: int) -> tuple[float, float]:
    """DEHB's budget range for counting ones, (576 / d, 93312 / d) samples per continuous
    dimension, where d is the total number of dimensions: higher-dimensional instances get fewer
    samples each so a full evaluation has a comparable total cost."""
    if d < 1:
        raise ValueError(f"counting ones needs d >= 1 dimensions, got {d}")
    return _COUNTING_ONES_MIN_SAMPLES / d, _COUNTING_ONES_MAX_SAMPLES / d


def counting_ones_cost(budget: float, d: int) -> float:
    """Cost of one counting-ones evaluation, linear in the number of samples and normalised so
    the maximum budget (93312 / d) costs 1.0, i.e. budgets count in full-fidelity equivalents."""
    if d < 1:
        raise ValueError(f"counting ones needs d >= 1 dimensions, got {d}")
    if not budget >= 0.0:
        raise ValueError(f"counting ones budget must be non-negative, got {budget}")
    return budget / (_COUNTING_ONES_MAX_SAMPLES / d)
