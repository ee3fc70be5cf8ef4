"""The Ray Tune integration run end to end: real Ray, real Tune, a real SQLite study store.

Tune runs a function trainable on multi-fidelity Branin (``workers.problems``) that reports
one result per step; ``HpoSearcher`` asks the study for every trial and ``HpoScheduler``
stops each at its budget, so the store must end up with exactly the trials and rungs the
algorithm asked for.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray
from ray import tune

import hpo
from db.errors import StudyNotFoundError
from hpo.algorithms import bracket_schedule
from hpo.integrations.ray_tune import HPO_BUDGET_KEY, HpoScheduler, HpoSearcher
from search_spaces import Fidelity, Float, SearchSpace
from workers.problems import PROBLEMS

MAX_STEPS = 9
SPACE = SearchSpace({"x1": Float(-5.0, 10.0), "x2": Float(0.0, 15.0)}, Fidelity("steps", 1, MAX_STEPS))
GOOD = {"x1": math.pi, "x2": 2.275}  # Branin's optimum, 0.398
BAD = {"x1": -5.0, "x2": 0.0}  # about 308
RAISES = {"x1": -5.0, "x2": 15.0}
NAN = {"x1": 10.0, "x2": 15.0}

_RAY_ENV = {
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",  # no CSV/JSON/TensorBoard files per trial
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "100",
}


@pytest.fixture(scope="module", autouse=True)
def ray_cluster() -> Iterator[None]:
    """One small local Ray for the module (2 CPUs, no dashboard), shut down afterwards."""
    saved = {key: os.environ.get(key) for key in _RAY_ENV}
    os.environ.update(_RAY_ENV)
    # Workers cannot import this test module (pytest put tests/ on the driver's path only):
    # ship the trainable by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield
    if started:
        ray.shutdown()
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def branin_steps(config: dict[str, Any]) -> None:
    """Trains to the space's max fidelity, one Tune result per step: only HpoScheduler stops
    it at the trial's budget."""
    rng = np.random.default_rng(0)
    for step in range(1, MAX_STEPS + 1):
        if config["x1"] == RAISES["x1"] and config["x2"] == RAISES["x2"] and step == 2:
            raise RuntimeError("boom at step 2")
        if config["x1"] == NAN["x1"] and config["x2"] == NAN["x2"] and step == 2:
            tune.report({"loss": float("nan"), "steps": step})
            continue
        tune.report({"loss": PROBLEMS["branin"].evaluate(config, step / MAX_STEPS, rng), "steps": step})


def run_tune(searcher: HpoSearcher, tmp_path: Path, num_samples: int, concurrency: int = 2, **tune_config: Any) -> Any:
    tuner = tune.Tuner(
        branin_steps,
        param_space=tune_config.pop("param_space", None),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=HpoScheduler(searcher),
            num_samples=num_samples,
            max_concurrent_trials=concurrency,
            reuse_actors=True,
            **tune_config,
        ),
        run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), verbose=0),
    )
    return tuner.fit()


@pytest.mark.parametrize("algorithm", ["hyperband", "dehb"])
def test_tune_runs_synchronous_brackets_into_the_store(tmp_path: Path, algorithm: str) -> None:
    study = hpo.create_study(
        "tune-" + algorithm, f"sqlite:///{tmp_path / 'hpo.db'}", search_space=SPACE,
        algorithm=algorithm, algorithm_settings={"seed": 1},
    )
    searcher = HpoSearcher(study)  # metric and mode come from TuneConfig
    results = run_tune(searcher, tmp_path, num_samples=14, metric="loss", mode="min", param_space={"note": "constant"})

    assert len(results) == 14 and not results.errors
    assert {r.config["note"] for r in results} == {"constant"}
    trials = study.trials
    assert len(trials) == 14
    assert {t.worker_id for t in trials} == {f"tune:{r.metrics['trial_id']}" for r in results}
    schedule = bracket_schedule(SPACE.fidelity.min, SPACE.fidelity.max, 3)
    by_number = {t.number: t for t in trials}
    rungs: dict[tuple[int, int], list[Any]] = {}
    for t in trials:
        assert t.state is hpo.TrialState.COMPLETED, (t.number, t.state, t.error)
        # Trained exactly to its budget, one intermediate value per step, none past it.
        assert sorted(t.intermediate_values) == list(range(1, int(t.budget) + 1))
        assert t.value == t.intermediate_values[t.budget]
        bracket, rung = int(t.attrs["bracket"]), int(t.attrs["rung"])
        assert t.budget == schedule[bracket % len(schedule)][rung].budget
        rungs.setdefault((bracket, rung), []).append(t)
    assert len(rungs[(0, 0)]) == 9, "the first nine asks fill the first bracket's first rung"
    for (bracket, rung), members in rungs.items():
        spec = schedule[bracket % len(schedule)]
        assert len(members) <= spec[rung].n
        if rung == 0:
            continue
        below = rungs[(bracket, rung - 1)]
        assert len(below) == spec[rung - 1].n, "a rung is promoted only once the rung below is complete"
        best = sorted(below, key=lambda t: t.value)[: spec[rung].n]
        parents = [by_number[t.attrs["parent"]] for t in members]
        assert len({p.number for p in parents}) == len(parents)
        for member, parent in zip(members, parents):
            assert parent in best and member.params == parent.params


def test_tune_errors_and_nan_are_recorded_as_failed_and_diverged(tmp_path: Path) -> None:
    study = hpo.create_study(
        "tune-outcomes", f"sqlite:///{tmp_path / 'hpo.db'}", search_space=SPACE, algorithm="random"
    )
    numbers = study.enqueue_many([GOOD, RAISES, NAN], budget=3)
    searcher = HpoSearcher(study, metric="loss", budget_attr="steps")
    results = run_tune(searcher, tmp_path, num_samples=3)

    assert len(results) == 3 and len(results.errors) == 1
    good, raised, nan = (study.trial(n) for n in numbers)
    assert good.state is hpo.TrialState.COMPLETED and sorted(good.intermediate_values) == [1, 2, 3]
    assert raised.state is hpo.TrialState.FAILED
    assert "boom at step 2" in raised.error and list(raised.intermediate_values) == [1]
    assert nan.state is hpo.TrialState.DIVERGED and "nan" in nan.error
    assert math.isnan(nan.intermediate_values[2]) and max(nan.intermediate_values) == 2, "stopped at the NaN"


def test_asha_stopping_mode_prunes_through_the_scheduler(tmp_path: Path) -> None:
    study = hpo.create_study(
        "tune-asha", f"sqlite:///{tmp_path / 'hpo.db'}", search_space=SPACE,
        algorithm="asha", algorithm_settings={"mode": "stopping"},
    )
    numbers = study.enqueue_many([GOOD, BAD, BAD | {"x2": 1.0}])  # each to the full budget, 9 steps
    searcher = HpoSearcher(study, metric="loss", budget_attr="steps")
    run_tune(searcher, tmp_path, num_samples=3, concurrency=1)  # one at a time: a fixed order of rungs

    good, *bad = (study.trial(n) for n in numbers)
    assert good.state is hpo.TrialState.COMPLETED and max(good.intermediate_values) == MAX_STEPS
    for t in bad:  # worse than the good trial at the first rung: stopped there
        assert t.state is hpo.TrialState.PRUNED and list(t.intermediate_values) == [1]
        assert t.value == t.intermediate_values[1]


def test_mode_against_the_study_direction_is_refused(tmp_path: Path) -> None:
    study = hpo.create_study("tune-dir", f"sqlite:///{tmp_path / 'hpo.db'}", search_space=SPACE, algorithm="random")
    with pytest.raises(ValueError, match="mode='max' contradicts study 'tune-dir', which minimizes"):
        HpoSearcher(study, metric="loss", mode="max")
    with pytest.raises(ValueError, match="mode='max' contradicts"):
        run_tune(HpoSearcher(study), tmp_path, num_samples=1, metric="loss", mode="max")
    with pytest.raises(ValueError, match="HpoSearcher samples only study 'tune-dir'"):
        run_tune(HpoSearcher(study, metric="loss"), tmp_path, num_samples=1, param_space={"x1": tune.uniform(0, 1)})
    assert study.trials == [], "nothing was asked"


def test_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    with pytest.raises(StudyNotFoundError):
        HpoSearcher("missing", url)
    study = hpo.create_study("tune-bad", url, search_space=SPACE, algorithm="random")
    bare = hpo.create_study("tune-bare", url, search_space=SPACE, algorithm="random")
    with pytest.raises(ValueError, match="has no metric"):
        HpoSearcher(bare).suggest("t0")
    searcher = HpoSearcher(study, metric="loss")
    config = searcher.suggest("t1")
    assert config is not None and config[HPO_BUDGET_KEY] == MAX_STEPS
    with pytest.raises(ValueError, match="reported no budget_attr 'training_iteration'"):
        searcher.on_trial_result("t1", {"loss": 1.0})
    (trial,) = study.trials  # failed with the reason; Tune aborts the run on the error
    assert trial.state is hpo.TrialState.FAILED and "reported no budget_attr" in trial.error
    assert searcher.store_trial("t1") is None


def test_a_trial_tune_ends_short_of_its_budget_is_given_back(tmp_path: Path) -> None:
    """A stopper, time_budget_s or Ctrl-C is not the algorithm pruning: the trial is re-queued
    at once (counted as a retry) and runs to its budget later, in this Tune run or another."""
    study = hpo.create_study(
        "tune-short", f"sqlite:///{tmp_path / 'hpo.db'}", search_space=SPACE, algorithm="random"
    )
    searcher = HpoSearcher(study, metric="loss")
    assert searcher.suggest("t1") is not None
    searcher.on_trial_result("t1", {"loss": 3.0, "training_iteration": 1})
    searcher.on_trial_complete("t1", {"loss": 3.0, "training_iteration": 1})
    (trial,) = study.trials
    assert trial.state is hpo.TrialState.QUEUED and trial.intermediate_values == {1.0: 3.0}
    assert "Ray Tune ended trial t1 at training_iteration=1.0, short of its budget" in trial.error
    config = searcher.suggest("t2")
    assert config is not None and searcher.store_trial("t2").number == trial.number
    searcher.on_trial_complete("t2", {"loss": 2.0, "training_iteration": MAX_STEPS})
    finished = study.trial(trial.number)
    assert finished.state is hpo.TrialState.COMPLETED and finished.attempts == 2


def test_searcher_pickles_and_restores_its_held_trials(tmp_path: Path) -> None:
    study = hpo.create_study(
        "tune-restore", f"sqlite:///{tmp_path / 'hpo.db'}", search_space=SPACE, algorithm="hyperband"
    )
    searcher = HpoSearcher(study, metric="loss")
    config = searcher.suggest("t1")
    assert config is not None and config[HPO_BUDGET_KEY] == 1
    searcher.on_trial_result("t1", {"loss": 2.5, "training_iteration": 1})
    searcher.save(str(tmp_path / "searcher.pkl"))

    resumed = pickle.loads(pickle.dumps(HpoSearcher(study.name, study.store, metric="loss")))
    resumed.restore(str(tmp_path / "searcher.pkl"))
    assert resumed.budget_of("t1") == 1
    resumed.on_trial_complete("t1", {"loss": 2.5, "training_iteration": 1})
    (trial,) = study.trials
    assert trial.state is hpo.TrialState.COMPLETED and trial.value == 2.5 and trial.worker_id == "tune:t1"
