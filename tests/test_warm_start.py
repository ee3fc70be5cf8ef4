"""Finished trials from outside a study (add_trial, ``hpo study import``) and warm starts
(``hpo study create --warm-start``), read back through reloaded studies on real stores."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from test_cli import assert_one_line_error, hpo
from toy_problem import quadratic, toy_space

import hpo as hposcale
from hpo import TrialState, create_study, load_study
from search_spaces import Fidelity, Fixed, Float, SearchSpace

#: Ten configurations and the toy quadratic's values at the full budget.
CONFIGS = [{"x": (3 * i % 10) / 10 + 0.05, "y": (7 * i % 10) / 10 + 0.05} for i in range(10)]


def _value(config: dict[str, float], budget: float = 81) -> float:
    return float(quadratic(config, budget, lambda b, v: None))


def test_add_trial_reads_back_in_another_process(storage_url: str) -> None:
    study = create_study("added", storage_url, search_space=toy_space(), algorithm="tpe")
    study.enqueue({"x": 0.5, "y": 0.5})
    first = study.add_trial({"x": 0.3, "y": 0.7}, 0.25, budget=27, intermediate_values={9: 0.5, 27: 0.25})
    second = study.add_trial({"x": 0.9, "y": 0.1}, None, state=TrialState.FAILED)
    assert (first, second) == (1, 2)  # numbered from the study's counter, after the queued one
    script = (
        "import json, sys, hpo\n"
        "s = hpo.load_study('added', sys.argv[1])\n"
        "print(json.dumps([[t.number, t.state.value, t.params, t.value, t.budget, t.attrs, t.worker_id,"
        " t.attempts, t.finished_at is not None, sorted(t.intermediate_values.items())] for t in s.trials]"
        " + [s.best_trial.number]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script, storage_url], capture_output=True, text=True, check=True)
    *trials, best = json.loads(out.stdout)
    assert trials[1] == [1, "completed", {"x": 0.3, "y": 0.7}, 0.25, 27.0, {"kind": "added"}, None, 0, True, [[9.0, 0.5], [27.0, 0.25]]]
    assert trials[2][:5] == [2, "failed", {"x": 0.9, "y": 0.1}, None, 81.0]  # budget: the space's max
    assert trials[0][1] == "queued"
    assert best == 1
    assert study.trial(1).config_hash is not None
    claimed = study.claim()  # the queued trial is still the one handed out
    assert claimed is not None and claimed.number == 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.add_trial({"x": 0.1, "z": 0.2}, 1.0), "unknown parameter 'z'"),
        (lambda s: s.add_trial({"x": 1.5, "y": 0.2}, 1.0), "outside [0, 1]"),
        (lambda s: s.add_trial({"x": 0.1, "y": 0.2}, 1.0, budget=100), "budget 100 is outside"),
        (lambda s: s.add_trial({"x": 0.1, "y": 0.2}, math.nan), "must be finite"),
        (lambda s: s.add_trial({"x": 0.1, "y": 0.2}, None), "a completed trial needs a value"),
        (lambda s: s.add_trial({"x": 0.1, "y": 0.2}, 1.0, state=TrialState.RUNNING), "must be finished"),
        (lambda s: s.add_trial({"x": 0.1, "y": 0.2}, 1.0, attrs={"bracket": 0}), "algorithms' attrs bracket"),
    ],
)
def test_add_trial_refuses_what_the_study_cannot_learn_from(sqlite_url: str, call, message: str) -> None:  # type: ignore[no-untyped-def]
    study = create_study("checked", sqlite_url, search_space=toy_space())
    with pytest.raises(ValueError, match=message if "[" not in message else None) as error:
        call(study)
    assert message in str(error.value)
    assert study.trials == []


def _proposals(study: hposcale.Study, n: int) -> list[dict[str, float]]:
    out = []
    for _ in range(n):
        trial = study.ask("w")
        assert trial is not None
        out.append(trial.params)
        trial.complete(_value(trial.params))
    return out


def _distance(configs: list[dict[str, float]], to: tuple[float, float]) -> float:
    return sum(math.dist((c["x"], c["y"]), to) for c in configs) / len(configs)


@pytest.mark.parametrize("algorithm", ["tpe", "bo"])
def test_model_based_algorithms_learn_from_added_trials(storage_url: str, algorithm: str) -> None:
    """Two studies get the same ten configurations with values that favour opposite corners:
    the histories have the same length, so their random generators agree, and any difference
    in what they propose is what the model learned from the added values."""
    corners = {"low": (0.1, 0.1), "high": (0.9, 0.9)}
    proposals = {}
    for name, corner in corners.items():
        study = create_study(name, storage_url, search_space=toy_space(), algorithm=algorithm)
        study.add_trials([hposcale.AddedTrial(c, math.dist((c["x"], c["y"]), corner)) for c in CONFIGS])
        reloaded = load_study(name, storage_url)
        trial = reloaded.ask("w")
        assert trial is not None and trial.number == 10
        proposals[name] = trial.params
    fresh = create_study("fresh", storage_url, search_space=toy_space(), algorithm=algorithm).ask("w")
    assert fresh is not None
    assert proposals["low"] != proposals["high"] != fresh.params
    assert _distance([proposals["low"]], corners["low"]) < _distance([proposals["high"]], corners["low"])
    assert _distance([proposals["high"]], corners["high"]) < _distance([proposals["low"]], corners["high"])


@pytest.mark.parametrize("algorithm", ["hyperband", "asha", "bohb", "dehb", "dehb-async", "random"])
def test_added_trials_leave_brackets_alone(storage_url: str, algorithm: str) -> None:
    """With added trials at several budgets (one failed) in its history, each algorithm still
    proposes, and hands out the same brackets, rungs and budgets as a study without them. The
    k-th trial asked gets the same value in both studies (their configurations differ: the
    generator is seeded by the history's length), so only added trials could tell them apart."""
    shapes = {}
    for name in ("plain", "added"):
        study = create_study(name, storage_url, search_space=toy_space(1, 27), algorithm=algorithm)
        if name == "added":
            study.add_trials(
                [hposcale.AddedTrial(c, _value(c, b), budget=b) for c, b in zip(CONFIGS, [1, 3, 9, 27, 27, 27])]
                + [hposcale.AddedTrial(CONFIGS[6], None, budget=27, state=TrialState.FAILED)]
            )
        shape = []
        for k in range(20):
            trial = study.ask("w")
            assert trial is not None
            shape.append((trial.budget, trial.attrs.get("bracket"), trial.attrs.get("rung")))
            trial.complete((7 * k % 11) / (trial.budget or 27))
        shapes[name] = shape
        assert all(t.attrs.get("kind") != "added" for t in load_study(name, storage_url).trials[7 if name == "added" else 0 :])
    assert shapes["added"] == shapes["plain"]


# --------------------------------------------------------------------- hpo study import


def _space_file(tmp_path: Path, name: str, space: SearchSpace) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(space.to_dict()))
    return str(path)


def test_import_reads_hposcale_optuna_and_plain_files(storage_url: str, tmp_path: Path) -> None:
    space_file = _space_file(tmp_path, "toy", toy_space())
    source = create_study("source", storage_url, search_space=toy_space())
    source.add_trials([hposcale.AddedTrial(c, _value(c)) for c in CONFIGS[:4]])
    source.enqueue(CONFIGS[4])  # unfinished: not imported
    assert hpo("study", "export", "source", "--storage", storage_url, "-o", str(tmp_path / "source.csv")).returncode == 0
    assert hpo("study", "export", "source", "--storage", storage_url, "-f", "json", "-o", str(tmp_path / "source.json")).returncode == 0

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    other = optuna.create_study()
    for config in CONFIGS[4:7]:
        other.enqueue_trial(config)
        other.optimize(lambda t: (t.suggest_float("x", 0, 1) - 0.3) ** 2 + t.suggest_float("y", 0, 1), n_trials=1)
    other.trials_dataframe().to_csv(tmp_path / "optuna.csv", index=False)
    (tmp_path / "plain.json").write_text(json.dumps([{"params": CONFIGS[7], "value": 0.5, "budget": 27}]))

    assert hpo("study", "create", "target", "--storage", storage_url, "--space", space_file).returncode == 0
    for file, added in [("source.csv", 4), ("optuna.csv", 3), ("plain.json", 1), ("source.json", 4)]:
        result = hpo("study", "import", "target", str(tmp_path / file), "--storage", storage_url)
        assert result.returncode == 0, result.stderr
        assert f"added {added} finished trials" in result.stdout
    trials = load_study("target", storage_url).trials
    assert [t.number for t in trials] == list(range(12))
    assert all(t.state is TrialState.COMPLETED and t.attrs == {"kind": "added"} for t in trials)
    assert [t.params for t in trials[:4]] == CONFIGS[:4] == [t.params for t in trials[8:]]
    assert [t.value for t in trials[:4]] == [_value(c) for c in CONFIGS[:4]]
    assert [t.params for t in trials[4:7]] == CONFIGS[4:7]
    assert [t.value for t in trials[4:7]] == [t.value for t in other.trials]
    assert (trials[7].params, trials[7].value, trials[7].budget) == (CONFIGS[7], 0.5, 27.0)
    assert {t.budget for t in trials[:7]} == {81.0}


def test_import_errors_are_one_line_naming_file_and_line(sqlite_url: str, tmp_path: Path) -> None:
    space_file = _space_file(tmp_path, "toy", toy_space())
    assert hpo("study", "create", "target", "--storage", sqlite_url, "--space", space_file).returncode == 0
    bad_value = tmp_path / "bad_value.csv"
    bad_value.write_text("number,value,params_x,params_y\n0,1.5,0.1,0.2\n1,oops,0.1,0.3\n")
    outside = tmp_path / "outside.csv"
    outside.write_text("value,params_x,params_y\n1.0,0.1,0.2\n1.0,0.1,0.2\n2.0,7.0,0.2\n")
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps([{"params": {"x": 0.1, "y": 0.2}, "value": 1}, {"params": {"x": 0.1, "w": 2}, "value": 1}], indent=1))
    broken = tmp_path / "broken.json"
    broken.write_text('[{"params": {"x": 0.1, "y": 0.2}, "value": 1},\n {"params": }]')
    cases = [
        (tmp_path / "missing.csv", ["missing.csv", "No such file"]),
        (bad_value, ["bad_value.csv: line 3: column 'value': 'oops' is not a number"]),
        (outside, ["outside.csv: line 4: parameter 'x'", "outside [0, 1]"]),
        (unknown, ["unknown.json: line 9:", "unknown parameter 'w'"]),
        (broken, ["broken.json: line 2: not JSON"]),
    ]
    for path, fragments in cases:
        assert_one_line_error(hpo("study", "import", "target", str(path), "--storage", sqlite_url), *fragments)
    assert load_study("target", sqlite_url).trials == []  # a bad file adds nothing, not its good rows


# ------------------------------------------------------------------------- warm starts


def _width_space(width: int) -> SearchSpace:
    return SearchSpace(
        {"x": Float(0.0, 1.0), "y": Float(0.0, 1.0), "width": Fixed(width)}, fidelity=Fidelity("steps", 1, 81)
    )


def test_create_with_warm_start_runs_the_old_best_first(storage_url: str, tmp_path: Path) -> None:
    old = create_study("w64", storage_url, search_space=_width_space(64), algorithm="hyperband")
    values = [_value(c) for c in CONFIGS]
    old.add_trials([hposcale.AddedTrial({**c, "width": 64}, v) for c, v in zip(CONFIGS, values)])
    old.add_trial({**CONFIGS[0], "width": 64}, -1.0, budget=3)  # best, but at a smaller budget
    old.add_trial({**CONFIGS[1], "width": 64}, -2.0, budget=81, state=TrialState.PRUNED)
    best_three = [CONFIGS[i] for i in sorted(range(10), key=values.__getitem__)[:3]]

    space_file = _space_file(tmp_path, "w128", _width_space(128))
    result = hpo(
        "study", "create", "w128", "--storage", storage_url, "--space", space_file, "--algorithm", "hyperband",
        "--warm-start", "w64", "--warm-start-top", "3",
    )
    assert result.returncode == 0, result.stderr
    assert "queued 3 best configurations of 'w64'" in result.stdout
    new = load_study("w128", storage_url)
    claimed = [new.ask("w") for _ in range(4)]
    assert [t.params for t in claimed[:3] if t] == [{**c, "width": 128} for c in best_three]
    assert all(t is not None and t.budget == 81 for t in claimed[:3])
    assert claimed[3] is not None and "bracket" in claimed[3].attrs  # then the algorithm's own
    assert [t.value for t in new.trials] == [None] * 4  # configurations moved, not results
    again = hpo("study", "create", "w128", "--storage", storage_url, "--load-if-exists", "--warm-start", "w64")
    assert again.returncode == 0 and "queued" not in again.stdout  # every worker may run it: queued once
    assert len(new.trials) == 4

    assert_one_line_error(
        hpo("study", "create", "w256", "--storage", storage_url, "--warm-start", "nope"), "nope"
    )
