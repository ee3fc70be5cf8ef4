"""Synthetic multi-fidelity objectives: cheap functions with known optima, for demos and tests.

Definitions follow the published benchmarks (see each function); the optimum is given so a
search's regret can be computed exactly.
"""

from __future__ import annotations

import math

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
