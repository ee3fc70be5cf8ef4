"""Stopping a study: asks get nothing, running trials finish, and a sweep worker's loop ends
instead of idling, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import hpo
from db.models import TrialState
from hpo.runner import work


def test_a_stopped_study_hands_out_nothing_and_its_workers_leave(storage_url: str) -> None:
    space = {"parameters": {"x": {"type": "float", "low": 0, "high": 1}}}
    study = hpo.create_study("stop-me", storage_url, search_space=space)
    running = study.ask("w1")
    study.enqueue({"x": 0.5})
    study.stop()
    assert study.stopped and "stopped" in hpo.load_study("stop-me", storage_url).record.tags
    assert study.ask("w2") is None  # not even the queued one

    outcomes: dict = {}
    worker = threading.Thread(target=lambda: outcomes.update(work(study, lambda c, b, r: 1.0, worker_id="w2")))
    worker.start()
    worker.join(timeout=2)
    assert worker.is_alive()  # a trial still runs: it could come back to the queue
    running.complete(0.3)
    worker.join(timeout=10)
    assert not worker.is_alive() and sum(outcomes.values()) == 0
    counts = study.counts()
    assert counts[TrialState.COMPLETED] == 1 and counts[TrialState.QUEUED] == 1
