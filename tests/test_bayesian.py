"""GP-EI, TPE and BOHB: they must beat random search at equal budget, propose only valid
configurations (conditional spaces included), decide alike in any process, never retry a
failed configuration, and hand out distinct trials to concurrent workers."""

from __future__ import annotations

import functools
import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import hpo
from hpo.algorithms import History, make_algorithm
from search_spaces import (
    Categorical,
    Fidelity,
    Fixed,
    Float,
    SearchSpace,
    config_hash,
    get_builtin,
)
from workers.problems import PROBLEMS, run_on_budget

ROOT = Path(__file__).parent.parent
MODELS = ["bo", "tpe", "bohb"]
# Full-fidelity evaluations per search: enough for a model to pay off, few enough to run fast
# (on Hartmann-6 cheap low fidelities give BOHB ~130 trials for 20 evaluations).
BUDGETS = {"branin": 30, "hartmann6": 20, "counting-ones-32-32": 30}
SEEDS = range(10)


def median_regret(url: str, algorithm: str, problem: str) -> float:
    regrets = []
    for seed in SEEDS:
        study = hpo.create_study(
            f"{algorithm}-{problem}-{seed}", url, search_space=get_builtin(problem),
            algorithm=algorithm, algorithm_settings={"seed": seed},
        )
        trace = run_on_budget(study, PROBLEMS[problem], BUDGETS[problem], seed)
        regrets.append(trace.regret[-1])
    return float(np.median(regrets))


@pytest.fixture(scope="module")
def random_median(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], float]:
    """Random search's median regret per problem, computed once for the module."""
    url = f"sqlite:///{tmp_path_factory.mktemp('random') / 'store.db'}"
    return functools.cache(lambda problem: median_regret(url, "random", problem))


@pytest.mark.parametrize("problem", ["branin", "hartmann6"])
@pytest.mark.parametrize("algorithm", MODELS)
def test_model_based_search_beats_random_search(
    sqlite_url: str, random_median: Callable[[str], float], algorithm: str, problem: str
) -> None:
    model = median_regret(sqlite_url, algorithm, problem)
    random = random_median(problem)
    assert model < random, f"{algorithm} median regret {model:.4f} is not below random search's {random:.4f} on {problem}"


def test_gp_search_beats_random_search_with_more_dimensions_than_trials(
    sqlite_url: str, random_median: Callable[[str], float]
) -> None:
    """Counting-ones 32+32: 64 dimensions, half of them binary, 30 evaluations. One random
    point a dimension would leave nothing to model, ARD length scales cannot be fitted from
    fewer points than dimensions, and small steps never flip a bit; GP-EI must still learn."""
    model = median_regret(sqlite_url, "bo", "counting-ones-32-32")
    random = random_median("counting-ones-32-32")
    assert model < 0.85 * random, f"bo median regret {model:.4f} is not 15% below random search's {random:.4f}"


def conditional_space() -> SearchSpace:
    return SearchSpace(
        {
            "kind": Categorical(["flat", "bowl"]),
            "width": Float(0.1, 10.0, log=True, condition={"kind": ["bowl"]}),
            "y": Float(-1.0, 1.0),
            "seq_len": Fixed(128),
        }
    )


def conditional_objective(config: dict) -> float:
    if config["kind"] == "bowl":
        return math.log(config["width"]) ** 2 + config["y"] ** 2
    return 1.0 + config["y"] ** 2


@pytest.mark.parametrize("algorithm", ["bo", "tpe"])
def test_conditional_space_proposals_are_valid(sqlite_url: str, algorithm: str) -> None:
    space = conditional_space()
    settings = {"seed": 2, "n_initial" if algorithm == "bo" else "n_startup_trials": 5}
    study = hpo.create_study("cond", sqlite_url, search_space=space, algorithm=algorithm, algorithm_settings=settings)
    for _ in range(25):
        trial = study.ask("w")
        assert space.validate_config(trial.params) == trial.params
        study.tell(trial, conditional_objective(trial.params))
    kinds = [t.params["kind"] for t in study.trials]
    assert kinds[5:].count("bowl") > kinds[5:].count("flat"), "the model should prefer the branch with the lower optimum"


def fresh_proposal_in_subprocess(name: str, url: str) -> dict:
    script = (
        "import json, sys, hpo\n"
        "from hpo.algorithms import History\n"
        "study = hpo.load_study(sys.argv[1], sys.argv[2])\n"
        "proposal = study.algorithm.propose(History(study.trials, study.direction))\n"
        "print(json.dumps({'config': proposal.config, 'budget': proposal.budget, 'attrs': proposal.attrs}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script, name, url], check=True, cwd=ROOT, capture_output=True, text=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("algorithm", MODELS)
def test_the_same_history_gives_the_same_proposal_in_any_process(sqlite_url: str, algorithm: str) -> None:
    """Three workers finish out of order; at every step the study's cached algorithm instance
    proposes what a fresh one does, and at the end so does a fresh process."""
    problem = PROBLEMS["branin"]
    settings = {"seed": 5}
    study = hpo.create_study("det", sqlite_url, search_space=problem.space, algorithm=algorithm, algorithm_settings=settings)
    rng = np.random.default_rng(0)
    held = [study.ask(f"w{i}") for i in range(3)]
    for step in range(12):
        history = History(study.trials, study.direction)
        fresh = make_algorithm(algorithm, problem.space, study.direction, settings)
        assert study.algorithm.propose(history) == fresh.propose(history), f"step {step}"
        done = held.pop(step % len(held))
        study.tell(done, problem.evaluate(done.params, done.budget, rng))
        held.append(study.ask(done.worker_id))
    history = History(study.trials, study.direction)
    mine = study.algorithm.propose(history)
    assert fresh_proposal_in_subprocess("det", sqlite_url) == json.loads(
        json.dumps({"config": mine.config, "budget": mine.budget, "attrs": mine.attrs})
    )


def fidelity_space() -> SearchSpace:
    return SearchSpace({"x": Float(0.0, 1.0), "y": Float(0.0, 1.0)}, fidelity=Fidelity("steps", 1, 9))


@pytest.mark.parametrize("algorithm", MODELS)
def test_failed_configurations_are_never_proposed_again(sqlite_url: str, algorithm: str) -> None:
    study = hpo.create_study("fail", sqlite_url, search_space=fidelity_space(), algorithm=algorithm, algorithm_settings={"seed": 1})
    for _ in range(30):
        trial = study.ask("w")
        if trial.params["x"] < 0.5:
            trial.fail("out of memory")
        else:
            study.tell(trial, (trial.params["x"] - 0.7) ** 2 + trial.params["y"] + 1.0 / trial.budget)
    failed: set[str] = set()
    for trial in study.trials:
        assert config_hash(trial.params) not in failed, f"trial {trial.number} retries a failed configuration"
        if trial.state is hpo.TrialState.FAILED:
            failed.add(config_hash(trial.params))
    assert failed


@pytest.mark.parametrize("algorithm", MODELS)
def test_a_study_whose_trials_all_failed_still_gets_proposals(sqlite_url: str, algorithm: str) -> None:
    space = fidelity_space()
    study = hpo.create_study("allfail", sqlite_url, search_space=space, algorithm=algorithm, algorithm_settings={"seed": 3})
    for _ in range(20):
        trial = study.ask("w")
        assert trial is not None and space.validate_config(trial.params) == trial.params
        trial.fail("boom")
    first_rung = [t for t in study.trials if t.attrs.get("rung", 0) == 0]
    assert len({config_hash(t.params) for t in first_rung}) == len(first_rung)


@pytest.mark.parametrize(
    ("algorithm", "settings", "message"),
    [
        ("bo", {"n_initial": 0}, "setting n_initial=0 of 'bo' must be >= 1"),
        ("bo", {"xi": "much"}, "setting xi='much' of 'bo' must be float"),
        ("bo", {"n_initial": 10, "max_points": 5}, "setting max_points=5 of 'bo' must be >= n_initial=10"),
        ("tpe", {"multivariate": "perhaps"}, "setting multivariate='perhaps' of 'tpe' must be boolean"),
        ("tpe", {"n_startup": 3}, "'tpe' has no setting 'n_startup'"),
        ("bohb", {"random_fraction": 2}, "setting random_fraction=2 of 'bohb' must be <= 1"),
        ("bohb", {"min_points": 0}, "setting min_points=0 of 'bohb' must be >= 1"),
    ],
)
def test_bad_settings_are_one_line_errors(algorithm: str, settings: dict, message: str) -> None:
    with pytest.raises(hpo.AlgorithmError, match=message) as error:
        make_algorithm(algorithm, fidelity_space(), hpo.Direction.MINIMIZE, settings)
    assert "\n" not in str(error.value)


def test_bohb_needs_a_fidelity() -> None:
    with pytest.raises(hpo.AlgorithmError, match="'bohb' needs a search space with a fidelity"):
        make_algorithm("bohb", SearchSpace({"x": Float(0.0, 1.0)}), hpo.Direction.MINIMIZE)


def test_bohb_models_the_largest_budget_with_enough_points(sqlite_url: str) -> None:
    study = hpo.create_study("bohb", sqlite_url, search_space=fidelity_space(), algorithm="bohb", algorithm_settings={"min_points": 4})
    bohb = study.algorithm
    assert bohb.model_budget(History(study.trials, study.direction)) is None
    for _ in range(12):  # the first bracket's first rung: 9 at budget 1, then 3 at budget 3
        trial = study.ask("w")
        study.tell(trial, trial.params["x"])
    history = History(study.trials, study.direction)
    assert sorted({t.budget for t in history.finished}) == [1, 3]
    assert bohb.model_budget(history) == 1


def test_tpe_incremental_replay_decides_as_a_fresh_one_through_every_state_change(sqlite_url: str) -> None:
    """The TPE engine re-reads only new and unfinished trials; each of these changes must still
    leave it proposing what an engine replaying everything from scratch proposes: a queued
    trial started, running ones completed, pruned, failed, re-queued after a lost heartbeat."""
    space = get_builtin("branin")
    study = hpo.create_study("replay", sqlite_url, search_space=space, algorithm="tpe",
                             algorithm_settings={"seed": 1, "n_startup_trials": 3}, heartbeat_timeout=60)
    rng = np.random.default_rng(0)

    def check(step: str) -> None:
        history = History(study.trials, study.direction)
        fresh = make_algorithm("tpe", space, study.direction, {"seed": 1, "n_startup_trials": 3})
        assert study.algorithm.propose(history) == fresh.propose(history), step

    study.enqueue({"x1": 1.0, "x2": 2.0})
    for _ in range(5):
        trial = study.ask("a")
        study.tell(trial, PROBLEMS["branin"].evaluate(trial.params, 1.0, rng))
        check("completed")
    running = [study.ask(w) for w in ("b", "c", "d", "e")]
    check("four running")
    study.tell(running[1], 3.0)
    check("a running one completed out of order")
    running[2].prune(9.0)
    check("a running one pruned")
    running[3].fail("boom")
    check("a running one failed")
    study.release_worker("b", "worker b died")
    check("a running one re-queued")
    requeued = study.ask("f")
    assert requeued.number == running[0].number
    check("the re-queued one running again")
    study.tell(requeued, 4.0)
    check("and completed")
    for _ in range(110):  # past the point where the engine drops its own asked trials and replays afresh
        trial = study.ask("a")
        study.tell(trial, PROBLEMS["branin"].evaluate(trial.params, 1.0, rng))
    check("after a fresh replay")
