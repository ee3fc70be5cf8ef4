"""``proxy:gpt`` and ``proxy:mlp`` as built-in objectives of real Ray sweeps over the built-in
muP spaces, through the ``hpo`` command, recording N and D with every trial."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import hpo
from db.models import TrialState


def _hpo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["hpo", *args], capture_output=True, text=True, timeout=600, check=False, env={**os.environ, "COLUMNS": "200"}
    )


@pytest.mark.parametrize(("model", "space", "unit"), [("gpt", "mup-gpt", "tokens"), ("mlp", "mup-mlp", "steps")])
def test_sweep_over_a_builtin_mup_space_with_the_proxy_objective(tmp_path: Path, model: str, space: str, unit: str) -> None:
    url = f"sqlite:///{tmp_path / 'proxy.db'}"
    created = _hpo("study", "create", model, "--space", space, "--algorithm", "hyperband", "--objective", f"proxy:{model}", "--storage", url)
    assert created.returncode == 0, created.stderr
    done = _hpo("sweep", "run", model, "--workers", "2", "--max-trials", "4", "--storage", url)
    assert done.returncode == 0, done.stderr
    study = hpo.load_study(model, url)
    trials = study.trials
    assert len(trials) == 4 and all(t.state.is_finished for t in trials)
    completed = [t for t in trials if t.state is TrialState.COMPLETED]
    assert completed, [t.error for t in trials]
    for t in completed:
        assert t.budget == study.search_space.fidelity.min and list(t.intermediate_values) == [t.budget]
        assert t.attrs["n_params"] == 2 * (12 * 128 * 128 + 4 * 128) + 2 * 128 if model == "gpt" else 2 * (128 * 128 + 128)
        steps = t.attrs["steps"]
        if unit == "tokens":
            assert t.attrs["tokens"] == steps * t.params["batch_size"] * 64
            assert abs(t.attrs["tokens"] - t.budget) <= t.params["batch_size"] * 64 / 2
        else:
            assert steps == t.budget and t.attrs["tokens"] == steps * t.params["batch_size"]
        assert 0 < t.value < 6
    for t in trials:
        assert t.state in (TrialState.COMPLETED, TrialState.DIVERGED), t.error
