"""Hyperband's schedule, successive halving, ASHA, and asks from many processes, on real stores."""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from toy_problem import quadratic
from toy_problem import toy_space as space

import hpo
from hpo.algorithms import History, bracket_schedule, make_algorithm
from hpo.algorithms.hyperband import rung_budgets
from search_spaces import Float, SearchSpace

# Li et al. (JMLR 2018), Table 1: R = 81, eta = 3. (n_i, r_i) for each bracket s = 4..0.
PAPER_TABLE = [
    [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
    [(34, 3), (11, 9), (3, 27), (1, 81)],
    [(15, 9), (5, 27), (1, 81)],
    [(8, 27), (2, 81)],
    [(5, 81)],
]


def test_schedule_equals_the_paper() -> None:
    schedule = bracket_schedule(1, 81, 3)
    assert [[(r.n, r.budget) for r in bracket] for bracket in schedule] == PAPER_TABLE
    assert rung_budgets(1, 81, 3) == [1, 3, 9, 27, 81]


def test_bad_hyperband_settings_are_one_line_errors() -> None:
    with pytest.raises(hpo.AlgorithmError, match="eta=1 of 'hyperband' must be > 1"):
        make_algorithm("hyperband", space(), hpo.Direction.MINIMIZE, {"eta": 1})
    with pytest.raises(hpo.AlgorithmError, match="has no setting 'etta'"):
        make_algorithm("hyperband", space(), hpo.Direction.MINIMIZE, {"etta": 3})
    with pytest.raises(hpo.AlgorithmError, match="needs a search space with a fidelity"):
        make_algorithm("hyperband", SearchSpace({"x": Float(0.0, 1.0)}), hpo.Direction.MINIMIZE)
    with pytest.raises(hpo.AlgorithmError, match="unknown algorithm 'hyperbnd'"):
        make_algorithm("hyperbnd", space(), hpo.Direction.MINIMIZE)


def test_first_bracket_runs_exactly_the_schedule_and_promotes_the_top_third(sqlite_url: str) -> None:
    study = hpo.create_study("hb", sqlite_url, search_space=space(), algorithm="hyperband", algorithm_settings={"seed": 1})
    hpo.optimize(study, quadratic, n_trials=81 + 27 + 9 + 3 + 1)
    trials = study.trials
    first = [t for t in trials if t.attrs["bracket"] == 0]
    assert Counter((t.attrs["rung"], t.budget) for t in first) == {(0, 1): 81, (1, 3): 27, (2, 9): 9, (3, 27): 3, (4, 81): 1}
    by_number = {t.number: t for t in trials}
    for rung, keep in ((1, 27), (2, 9), (3, 3), (4, 1)):
        below = sorted((t for t in first if t.attrs["rung"] == rung - 1), key=lambda t: t.value)
        promoted = {t.attrs["parent"] for t in first if t.attrs["rung"] == rung}
        assert promoted == {t.number for t in below[:keep]}, f"rung {rung} holds exactly the top 1/eta"
        assert all(by_number[t.attrs["parent"]].params == t.params for t in first if t.attrs["rung"] == rung)


def test_failed_configurations_are_never_promoted(sqlite_url: str) -> None:
    def flaky(config, budget, report):  # type: ignore[no-untyped-def]
        if config["x"] < 0.5:
            return float("nan")
        return quadratic(config, budget, report)

    study = hpo.create_study("hbf", sqlite_url, search_space=space(1, 9), algorithm="hyperband")
    hpo.optimize(study, flaky, n_trials=30)
    diverged = {t.number for t in study.trials if t.state is hpo.TrialState.DIVERGED}
    assert diverged
    assert not any(t.attrs.get("parent") in diverged for t in study.trials)


def test_reloading_mid_bracket_continues_the_same_bracket(sqlite_url: str, tmp_path: Path) -> None:
    settings = {"seed": 7}
    reference = hpo.create_study("ref", f"sqlite:///{tmp_path / 'ref.db'}", search_space=space(1, 27), algorithm="hyperband", algorithm_settings=settings)
    hpo.optimize(reference, quadratic, n_trials=20)

    study = hpo.create_study("resumed", sqlite_url, search_space=space(1, 27), algorithm="hyperband", algorithm_settings=settings)
    hpo.optimize(study, quadratic, n_trials=11)  # stops inside the first bracket's first rung (27 configs)
    script = (
        "import sys, hpo\n"
        "from tests.toy_problem import quadratic\n"
        "hpo.optimize(hpo.load_study('resumed', sys.argv[1]), quadratic, n_trials=9)\n"
    )
    subprocess.run([sys.executable, "-c", script, sqlite_url], check=True, cwd=Path(__file__).parent.parent)
    resumed = [(t.params, t.budget, t.attrs) for t in hpo.load_study("resumed", sqlite_url).trials]
    assert resumed == [(t.params, t.budget, t.attrs) for t in reference.trials]


def test_asha_promotes_asynchronously(sqlite_url: str) -> None:
    study = hpo.create_study("asha", sqlite_url, search_space=space(1, 9), algorithm="asha", algorithm_settings={"seed": 3})
    first = [study.ask("w") for _ in range(3)]
    assert all(t.budget == 1 and t.attrs["rung"] == 0 for t in first)
    for t, value in zip(first, (0.5, 0.1, 0.9)):
        study.tell(t, value)
    promoted = study.ask("w")  # 3 results at rung 0: the best (1/eta of them) moves up at once
    assert (promoted.budget, promoted.attrs["rung"], promoted.attrs["parent"]) == (3, 1, first[1].number)
    fresh = study.ask("w")
    assert fresh.attrs["rung"] == 0  # nothing else promotable: no waiting, a new configuration


def test_asha_stopping_mode_prunes_the_worse_trials(sqlite_url: str) -> None:
    study = hpo.create_study("stop", sqlite_url, search_space=space(1, 9), algorithm="asha", algorithm_settings={"mode": "stopping"})

    def curve(config, budget, report):  # type: ignore[no-untyped-def]
        value = 1.0
        for step in (1, 3, 9):
            value = config["x"] + 1.0 / step
            if not report(step, value):
                return value
        return value

    hpo.optimize(study, curve, n_trials=30)
    states = Counter(t.state for t in study.trials)
    assert states[hpo.TrialState.PRUNED] >= 10 and states[hpo.TrialState.COMPLETED] >= 3
    for t in study.trials:
        last = max(t.intermediate_values)
        assert (last < 9) == (t.state is hpo.TrialState.PRUNED)


def test_history_scores_failures_as_worst(sqlite_url: str) -> None:
    study = hpo.create_study("h", sqlite_url, direction="maximize", search_space=space(1, 9))
    a, b = study.ask("w"), study.ask("w")
    study.tell(a, 2.0)
    b.fail("boom")
    history = History(study.trials, study.direction)
    assert history.score(study.trial(a.number)) == -2.0
    assert math.isinf(history.score(study.trial(b.number)))
    assert len(history.bad_hashes) == 1


@pytest.mark.parametrize("brackets", [1, 3])
def test_asha_decides_as_a_fresh_process_would_through_a_growing_study(sqlite_url: str, brackets: int) -> None:
    """The study's ASHA keeps an index of its rungs between asks; each of its 150 proposals,
    made while trials run, fail, diverge and finish out of order, must equal the one a fresh
    ASHA makes from the same history, and so must a proposal from a history it never saw."""
    settings = {"seed": 5, "brackets": brackets}
    study = hpo.create_study(f"asha-index-{brackets}", sqlite_url, search_space=space(1, 27), algorithm="asha",
                             algorithm_settings=settings)
    running: list = []
    for i in range(150):
        history = History(study.trials, study.direction)
        fresh = make_algorithm("asha", study.search_space, study.direction, settings).propose(history)
        trial = study.ask("w")
        assert (dict(trial.params), trial.budget, {k: trial.attrs.get(k) for k in ("bracket", "rung", "parent")}) == (
            fresh.config, fresh.budget, {k: fresh.attrs.get(k) for k in ("bracket", "rung", "parent")}
        ), i
        running.append(trial)
        if len(running) >= 4:  # finish out of order: the second oldest first
            done = running.pop(1)
            if i % 11 == 0:
                done.fail("boom")
            elif i % 13 == 0:
                done.diverge("nan")
            else:
                study.tell(done, (done.params["x"] - 0.3) ** 2 + (done.params["y"] - 0.7) ** 2 + 1.0 / done.budget)
    kept = study.algorithm
    assert kept.propose(History(study.trials[:40], study.direction)) == make_algorithm(
        "asha", study.search_space, study.direction, settings
    ).propose(History(study.trials[:40], study.direction))
