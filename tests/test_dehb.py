"""DEHB on real stores: its first iteration (Hyperband's brackets and promotions, the smaller
brackets started from mutants), its DE operators and selection, its determinism from the
history alone, asks from many processes, and its quality against random."""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from toy_problem import quadratic, toy_space

import hpo
from hpo.algorithms import History, bracket_schedule, make_algorithm
from hpo.algorithms.dehb import DEHB, crossover, mutate, repair
from search_spaces import SearchSpace, config_hash, get_builtin
from workers.problems import PROBLEMS, run_on_budget

# R = 9, eta = 3: brackets (n, budget) per rung; 22 trials in the first iteration.
FIRST_ITERATION = [[(9, 1), (3, 3), (1, 9)], [(5, 3), (1, 9)], [(3, 9)]]


def space() -> SearchSpace:
    return toy_space(1, 9)


def dehb_study(url: str, name: str = "dehb", algorithm: str = "dehb", seed: int = 1) -> hpo.Study:
    return hpo.create_study(name, url, search_space=space(), algorithm=algorithm, algorithm_settings={"seed": seed})


def test_bad_dehb_settings_are_one_line_errors() -> None:
    with pytest.raises(hpo.AlgorithmError, match="strategy='rand9_bin' of 'dehb' must be one of rand1_bin"):
        make_algorithm("dehb", space(), hpo.Direction.MINIMIZE, {"strategy": "rand9_bin"})
    with pytest.raises(hpo.AlgorithmError, match=r"crossover_prob=1\.5 of 'dehb' must be <= 1"):
        make_algorithm("dehb", space(), hpo.Direction.MINIMIZE, {"crossover_prob": 1.5})
    with pytest.raises(hpo.AlgorithmError, match="mutation_factor=0 of 'dehb-async' must be > 0"):
        make_algorithm("dehb-async", space(), hpo.Direction.MINIMIZE, {"mutation_factor": 0})


def test_first_iteration_seeds_the_populations_then_de_takes_over(sqlite_url: str) -> None:
    assert [[(r.n, r.budget) for r in b] for b in bracket_schedule(1, 9, 3)] == FIRST_ITERATION
    study = dehb_study(sqlite_url)
    hpo.optimize(study, quadratic, n_trials=22)
    trials = study.trials
    expected = {(b, i, budget): n for b, rungs in enumerate(FIRST_ITERATION) for i, (n, budget) in enumerate(rungs)}
    assert Counter((t.attrs["bracket"], t.attrs["rung"], t.budget) for t in trials) == expected
    assert all(t.attrs["kind"] == "init" for t in trials)
    by_number = {t.number: t for t in trials}
    for t in trials:
        if "parent" in t.attrs:  # promotions: the top third of the rung below, same configuration
            below = sorted((u for u in trials if u.attrs["bracket"] == t.attrs["bracket"] and u.attrs["rung"] == t.attrs["rung"] - 1), key=lambda u: u.value)
            assert by_number[t.attrs["parent"]] in below[: len(below) // 3]
            assert by_number[t.attrs["parent"]].params == t.params

    # The smaller brackets' first rungs: best/1 mutants of the best n one budget lower, as
    # the reference implementation evolves where no promotion is possible; not random.
    encode = space().encode
    mutants = [t for t in trials if t.attrs.get("mutant")]
    assert [(t.attrs["bracket"], t.budget) for t in mutants] == [(1, 3)] * 5 + [(2, 9)] * 3
    for t in mutants:
        below = sorted((u for u in trials if u.number < t.number and u.budget == t.budget / 3), key=lambda u: u.value)
        pool = [encode(u.params) for u in below[: FIRST_ITERATION[t.attrs["bracket"]][0][0]]]
        point = encode(t.params)
        assert any(
            np.allclose(point, pool[0] + 0.3 * (a - b), atol=1e-9)
            for i, a in enumerate(pool) for j, b in enumerate(pool) if i != j
        ), f"trial {t.number} is no best/1 mutant of the rung below's best"

    hpo.optimize(study, quadratic, n_trials=9)  # the second iteration's first rung: DE at budget 1
    de = study.trials[22:]
    assert all((t.attrs["kind"], t.attrs["bracket"], t.attrs["rung"], t.budget) == ("de", 3, 0, 1) for t in de)
    founders = [t.number for t in trials if t.budget == 1]
    assert [t.attrs["target"] for t in de] == founders  # targets rotate through the slots
    assert all(config_hash(t.params) not in {config_hash(u.params) for u in trials} for t in de)


def test_rand1_mutation_crossover_and_repair() -> None:
    a, b, c = np.array([0.5, 0.5, 0.5]), np.array([0.9, 0.1, 0.6]), np.array([0.1, 0.3, 0.2])
    assert np.allclose(mutate("rand1", 0.5, np.array([a, b, c]), a, a), a + 0.5 * (b - c))
    rng = np.random.default_rng(0)
    target, mutant = np.zeros(8), np.ones(8)
    for _ in range(50):  # probability 0 still takes one mutant dimension, probability 1 takes all
        assert crossover("bin", target, mutant, 0.0, rng).sum() == 1
        assert crossover("exp", target, mutant, 0.0, rng).sum() == 1
        assert crossover("bin", target, mutant, 1.0, rng).sum() == 8
    mixed = [crossover("bin", target, mutant, 0.5, rng).sum() for _ in range(400)]
    assert 4.0 < np.mean(mixed) < 5.0  # 1 + 7 * 0.5 on average (one forced, the rest by coin)
    point = np.array([-0.2, 0.4, 1.3, 1.0, 0.0])
    fixed = repair(point, rng)
    assert fixed[1] == 0.4 and fixed[3] == 1.0 and fixed[4] == 0.0  # inside: untouched
    assert np.all((fixed >= 0) & (fixed <= 1)) and fixed[0] != 0.0 and fixed[2] != 1.0  # resampled, not clipped


def test_selection_replaces_the_target_only_when_no_worse(sqlite_url: str) -> None:
    study = dehb_study(sqlite_url)
    hpo.optimize(study, quadratic, n_trials=22)
    algorithm = study.algorithm
    assert isinstance(algorithm, DEHB)
    first = study.trials
    slot0 = min(t.number for t in first if t.budget == 1)
    before = algorithm.population(History(first, study.direction), 0)
    assert len(before.slots) == 9 and before.occupants[slot0].trial.number == slot0

    worse = study.ask("w")
    assert worse.attrs["target"] == slot0
    study.tell(worse, before.occupants[slot0].score + 1.0)
    better = study.ask("w")
    slot1 = better.attrs["target"]
    study.tell(better, before.occupants[slot1].score - 1.0)
    after = algorithm.population(History(study.trials, study.direction), 0)
    assert after.occupants[slot0].trial.number == slot0  # the worse trial lost to its target
    assert after.occupants[slot1].trial.number == better.number  # the better one took its slot
    assert after.occupants[slot1].score == pytest.approx(before.occupants[slot1].score - 1.0)


def test_reloading_mid_run_proposes_what_the_original_would(sqlite_url: str, tmp_path: Path) -> None:
    reference = dehb_study(f"sqlite:///{tmp_path / 'ref.db'}", "ref", seed=7)
    hpo.optimize(reference, quadratic, n_trials=45)

    study = dehb_study(sqlite_url, "resumed", seed=7)
    hpo.optimize(study, quadratic, n_trials=30)  # stops inside the second iteration
    script = (
        "import sys, hpo\n"
        "from tests.toy_problem import quadratic\n"
        "hpo.optimize(hpo.load_study('resumed', sys.argv[1]), quadratic, n_trials=15)\n"
    )
    subprocess.run([sys.executable, "-c", script, sqlite_url], check=True, cwd=Path(__file__).parent.parent)
    resumed = [(t.params, t.budget, t.attrs) for t in hpo.load_study("resumed", sqlite_url).trials]
    assert resumed == [(t.params, t.budget, t.attrs) for t in reference.trials]
    assert any(t.attrs["kind"] == "de" and t.attrs["rung"] > 0 for t in reference.trials)


def test_async_dehb_fills_a_rung_without_waiting(sqlite_url: str) -> None:
    sync, asynchronous = dehb_study(sqlite_url, "sync"), dehb_study(sqlite_url, "async", "dehb-async")
    for study in (sync, asynchronous):
        first = [study.ask("w") for _ in range(9)]
        for t, value in zip(first[:3], (0.5, 0.1, 0.9)):
            study.tell(t, value)
        nxt = study.ask("w")
        if study is sync:  # the first rung is unfinished: the next bracket opens
            assert (nxt.attrs["bracket"], nxt.attrs["rung"]) == (1, 0)
        else:  # three results at rung 0: the best moves up at once
            assert (nxt.attrs["bracket"], nxt.attrs["rung"], nxt.attrs["parent"]) == (0, 1, first[1].number)


def test_failed_configurations_never_enter_a_population_nor_return(sqlite_url: str) -> None:
    def flaky(config, budget, report):  # type: ignore[no-untyped-def]
        if config["x"] < 0.4:
            return float("nan")
        return quadratic(config, budget, report)

    study = dehb_study(sqlite_url, "flaky")
    hpo.optimize(study, flaky, n_trials=120)
    trials = study.trials
    failed = [t for t in trials if t.state is hpo.TrialState.DIVERGED]
    assert failed and any(t.attrs["kind"] == "de" for t in failed)
    failed_numbers = {t.number for t in failed}
    assert not any(t.attrs.get("parent") in failed_numbers for t in trials)
    seen: set[str] = set()
    for t in trials:  # no configuration is ever proposed twice at one budget, failed ones never again
        key = config_hash(t.params)
        assert (key, t.budget) not in seen
        assert not any(key == config_hash(f.params) for f in failed if f.number < t.number)
        seen.add((key, t.budget))
    algorithm = study.algorithm
    history = History(trials, study.direction)
    for level in range(3):
        members = algorithm.population(history, level).members
        assert members and all(math.isfinite(m.score) and m.trial.number not in failed_numbers for m in members)


def _median_final_regret(problem: str, algorithm: str, budget: float, tmp_path: Path) -> float:
    regrets = []
    for seed in range(10):
        study = hpo.create_study(
            f"{algorithm}-{seed}", f"sqlite:///{tmp_path / f'{problem}-{algorithm}.db'}",
            search_space=get_builtin(PROBLEMS[problem].space_name), algorithm=algorithm, algorithm_settings={"seed": seed},
        )
        regrets.append(run_on_budget(study, PROBLEMS[problem], budget, seed=seed).regret[-1])
    return float(np.median(regrets))


@pytest.mark.parametrize("problem", ["branin", "hartmann6"])
def test_dehb_beats_random_search_at_an_equal_budget(problem: str, tmp_path: Path) -> None:
    budget = 30.0  # full-fidelity evaluations
    dehb = _median_final_regret(problem, "dehb", budget, tmp_path)
    random = _median_final_regret(problem, "random", budget, tmp_path)
    assert dehb < random, f"{problem}: median regret DEHB {dehb:.3f} vs random {random:.3f}"
