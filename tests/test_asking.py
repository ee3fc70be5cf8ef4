"""Every algorithm, asked by two processes at once on one study, on both backends: no trial
is handed out twice, because each ask decides and inserts under the study's lock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import hpo
from search_spaces import Fidelity, Float, SearchSpace

ROOT = Path(__file__).parent.parent

ASK_IN_PROCESS = """
import sys, hpo
study = hpo.load_study(sys.argv[1], sys.argv[2])
for _ in range(int(sys.argv[3])):
    trial = study.ask()
    print(trial.number, flush=True)
    study.tell(trial, trial.params["x"])
"""


@pytest.mark.parametrize("algorithm", sorted(hpo.ALGORITHMS))
def test_two_processes_asking_never_get_the_same_trial(storage_url: str, algorithm: str) -> None:
    space = SearchSpace({"x": Float(0.0, 1.0), "y": Float(0.0, 1.0)}, Fidelity("steps", 1, 9))
    hpo.create_study("two", storage_url, search_space=space, algorithm=algorithm)
    asks = 40 if algorithm != "bo" else 20  # the GP's fit is the slow part; 40 concurrent asks prove no more
    procs = [
        subprocess.Popen([sys.executable, "-c", ASK_IN_PROCESS, "two", storage_url, str(asks)],
                         stdout=subprocess.PIPE, text=True, cwd=ROOT)
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=300)[0].split() for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    numbers = [int(n) for out in outputs for n in out]
    assert len(numbers) == 2 * asks and len(set(numbers)) == 2 * asks
    trials = hpo.load_study("two", storage_url).trials
    assert len(trials) == 2 * asks and all(t.attempts == 1 for t in trials)
    if algorithm.startswith("dehb"):
        assert any(t.attrs["kind"] == "de" for t in trials), "past the first iteration, DE fills the rungs"
