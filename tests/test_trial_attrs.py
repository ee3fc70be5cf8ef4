"""Facts an objective records about its trial (``report.record``) land in the trial's attrs
beside the algorithm's, on SQLite and PostgreSQL, only while the worker holds the trial."""

from __future__ import annotations

import pytest

import hpo
from db.errors import TrialNotHeldError
from db.models import TrialState
from hpo.runner import TrialReporter


def test_recorded_facts_join_the_algorithms_attrs(storage_url: str) -> None:
    space = {"parameters": {"x": {"type": "float", "low": 0, "high": 1}}, "fidelity": {"name": "steps", "min": 1, "max": 9}}
    study = hpo.create_study("attrs", storage_url, search_space=space, algorithm="hyperband")
    trial = study.ask("w1")
    assert trial is not None and set(trial.attrs) >= {"bracket", "rung"}
    report = TrialReporter(trial)
    assert report(1.0, 0.5) is True
    report.record(n_params=12480, tokens=2048)
    report.record(tokens=4096)  # the objective may update its own facts
    with pytest.raises(ValueError, match="trial attrs rung belong to the search algorithm"):
        report.record(rung=7)
    trial.complete(0.4)
    (stored,) = hpo.load_study("attrs", storage_url).trials
    assert stored.state is TrialState.COMPLETED
    assert stored.attrs == {**trial.attrs, "n_params": 12480, "tokens": 4096}
    with pytest.raises(TrialNotHeldError):
        trial.record({"late": 1})  # finished: the facts of a dropped result stay out
