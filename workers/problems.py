"""The synthetic benchmarks as problems a search can be scored on: the built-in space, the noisy
multi-fidelity objective, the noise-free value at full fidelity, the optimum and the cost model.

Quality tests and ``benchmarks/hpo_quality.py`` run searches through the real study API
(:func:`run_on_budget`), charging each evaluation its cost in full-fidelity evaluations, as the
benchmark protocol asks: a method that learns from cheap low-fidelity runs gets more of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from search_spaces import SearchSpace, get_builtin
from search_spaces.space import Fidelity
from workers.synthetic import (
    BRANIN_OPTIMUM,
    HARTMANN3_OPTIMUM,
    HARTMANN6_OPTIMUM,
    branin_cost,
    branin_mf,
    counting_ones,
    counting_ones_cost,
    hartmann_cost,
    hartmann_mf,
)

Config = Mapping[str, Any]


@dataclass(frozen=True)
class Problem:
    """One benchmark. ``evaluate`` is what a search sees (noisy, at a budget); ``regret`` is
    how it is scored (noise-free, at full fidelity, minus the optimum; normalised where the
    benchmark defines it so)."""

    name: str
    space_name: str
    evaluate: Callable[[Config, float, np.random.Generator], float]
    true_value: Callable[[Config], float]
    optimum: float
    cost: Callable[[float], float]
    regret_scale: float = 1.0

    @property
    def space(self) -> SearchSpace:
        return get_builtin(self.space_name)

    @property
    def fidelity(self) -> Fidelity:
        """The space's fidelity: every benchmark problem is multi-fidelity."""
        fidelity = self.space.fidelity
        assert fidelity is not None, f"benchmark problem {self.name!r} has no fidelity"
        return fidelity

    def regret(self, config: Config) -> float:
        return (self.true_value(config) - self.optimum) / self.regret_scale

    def objective(self, seed: int = 0) -> Callable[[Config, float | None, Callable[[float, float], bool]], float]:
        """The problem as an :class:`hpo.runner.Objective` (noise drawn from ``seed``)."""
        rng = np.random.default_rng(seed)
        top = self.fidelity.max

        def objective(config: Config, budget: float | None, report: Callable[[float, float], bool]) -> float:
            value = self.evaluate(config, budget if budget is not None else top, rng)
            report(budget if budget is not None else top, value)
            return value

        return objective


def _xs(config: Config, d: int) -> list[float]:
    return [float(config[f"x{i}"]) for i in range(1, d + 1)]


def _hartmann(d: int, optimum: float, preset: str) -> Problem:
    return Problem(
        name=f"hartmann{d}",
        space_name=f"hartmann{d}",
        evaluate=lambda c, z, rng: hartmann_mf(_xs(c, d), z, preset=preset, rng=rng),
        true_value=lambda c: hartmann_mf(_xs(c, d), 100.0),
        optimum=optimum,
        cost=hartmann_cost,
    )


def _counting_ones(d_cat: int, d_cont: int) -> Problem:
    d = d_cat + d_cont

    def split(c: Config) -> tuple[list[int], list[float]]:
        return [int(c[f"c{i}"]) for i in range(1, d_cat + 1)], _xs(c, d_cont)

    return Problem(
        name=f"counting-ones-{d_cat}-{d_cont}",
        space_name=f"counting-ones-{d_cat}-{d_cont}",
        evaluate=lambda c, b, rng: counting_ones(*split(c), b, rng),
        true_value=lambda c: counting_ones(*split(c), 1.0),
        optimum=-float(d),
        cost=lambda b: counting_ones_cost(b, d),
        regret_scale=float(d),
    )


PROBLEMS: dict[str, Problem] = {
    "branin": Problem(
        name="branin",
        space_name="branin",
        evaluate=lambda c, z, rng: branin_mf(c["x1"], c["x2"], z, rng),
        true_value=lambda c: branin_mf(c["x1"], c["x2"], 1.0),
        optimum=BRANIN_OPTIMUM,
        cost=branin_cost,
    ),
    "hartmann3": _hartmann(3, HARTMANN3_OPTIMUM, "default"),
    "hartmann6": _hartmann(6, HARTMANN6_OPTIMUM, "default"),
    "counting-ones-8-8": _counting_ones(8, 8),
    "counting-ones-32-32": _counting_ones(32, 32),
}


@dataclass(frozen=True)
class Trace:
    """A search's progress: after each evaluation, the budget spent so far (in full-fidelity
    evaluations) and the regret of the best full-fidelity result so far (inf before any)."""

    spent: list[float]
    regret: list[float]

    def regret_at(self, budget: float) -> float:
        """The incumbent's regret once ``budget`` had been spent."""
        best = math.inf
        for spent, regret in zip(self.spent, self.regret):
            if spent > budget + 1e-9:
                break
            best = regret
        return best

    def budget_to_reach(self, regret: float) -> float:
        """The budget spent when the incumbent first reached ``regret`` (inf if never)."""
        for spent, value in zip(self.spent, self.regret):
            if value <= regret:
                return spent
        return math.inf


def run_on_budget(study: Any, problem: Problem, budget: float, seed: int = 0, worker_id: str = "bench") -> Trace:
    """Ask and tell ``study`` (an :class:`hpo.study.Study` over ``problem.space``) until
    ``budget`` full-fidelity evaluations are spent. The incumbent is the full-fidelity trial
    with the best observed (noisy) value; its regret is scored noise-free."""
    rng = np.random.default_rng(seed)
    fidelity = problem.fidelity
    full = problem.cost(fidelity.max)
    spent, trace_spent, trace_regret = 0.0, [], []
    best_value, best_regret = math.inf, math.inf
    sign = 1.0 if study.direction.value == "minimize" else -1.0
    while spent < budget:
        trial = study.ask(worker_id)
        if trial is None:
            raise RuntimeError(f"{study.record.algorithm!r} proposed nothing with no trial running")
        z = trial.budget if trial.budget is not None else fidelity.max
        value = problem.evaluate(trial.params, z, rng)
        study.tell(trial, value)
        spent += problem.cost(z) / full
        if math.isclose(z, fidelity.max) and sign * value < best_value:
            best_value, best_regret = sign * value, problem.regret(trial.params)
        trace_spent.append(spent)
        trace_regret.append(best_regret)
    return Trace(trace_spent, trace_regret)
