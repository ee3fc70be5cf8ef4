"""The benchmark problems and the budgeted ask/tell loop that quality tests and
``benchmarks/hpo_quality.py`` score searches with."""

from __future__ import annotations

import math

import numpy as np
import pytest

import hpo
from workers.problems import PROBLEMS, Trace, run_on_budget


@pytest.mark.parametrize(
    "name,optimizer",
    [
        ("branin", {"x1": math.pi, "x2": 2.275}),
        ("hartmann3", {"x1": 0.114614, "x2": 0.555649, "x3": 0.852547}),
        ("hartmann6", dict(zip([f"x{i}" for i in range(1, 7)], [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]))),
        ("counting-ones-8-8", {**{f"c{i}": 1 for i in range(1, 9)}, **{f"x{i}": 1.0 for i in range(1, 9)}}),
    ],
)
def test_regret_is_zero_at_the_optimum_and_positive_elsewhere(name: str, optimizer: dict) -> None:
    problem = PROBLEMS[name]
    assert problem.space.validate_config(optimizer) == optimizer
    assert problem.regret(optimizer) == pytest.approx(0.0, abs=1e-4)
    assert problem.regret(problem.space.default_config()) > 0.01
    assert problem.cost(problem.space.fidelity.max) == pytest.approx(1.0)
    assert problem.cost(problem.space.fidelity.min) < 0.1


def test_trace_lookups() -> None:
    trace = Trace(spent=[1.0, 2.0, 3.0], regret=[math.inf, 0.5, 0.2])
    assert trace.regret_at(0.5) == math.inf and trace.regret_at(2.5) == 0.5 and trace.regret_at(9) == 0.2
    assert trace.budget_to_reach(0.5) == 2.0 and trace.budget_to_reach(0.1) == math.inf


def test_run_on_budget_charges_full_fidelity_equivalents(sqlite_url: str) -> None:
    problem = PROBLEMS["hartmann3"]
    random = hpo.create_study("random", sqlite_url, search_space=problem.space, algorithm="random")
    trace = run_on_budget(random, problem, 12, seed=0)
    assert trace.spent == [float(i) for i in range(1, 13)]  # every random trial is a full evaluation
    assert all(a >= b for a, b in zip(trace.regret, trace.regret[1:]))  # the incumbent only improves
    assert len(random.trials) == 12
    hyperband = hpo.create_study("hb", sqlite_url, search_space=problem.space, algorithm="hyperband")
    trace = run_on_budget(hyperband, problem, 12, seed=0)
    trials = hyperband.trials
    assert len(trials) > 40  # cheap low-fidelity rungs: many more trials for the same budget
    assert trace.spent[-1] == pytest.approx(sum(problem.cost(t.budget) for t in trials))
    assert 12 <= trace.spent[-1] < 13
    assert np.isfinite(trace.regret[-1])
