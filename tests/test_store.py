"""The study store's operations, on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import math
import os
import threading
from datetime import timedelta

import pandas as pd
import pytest

import hpo
from db.store import HistoryCache, open_store, utcnow
from hpo import (
    Direction,
    DuplicateStudyError,
    HeldTrial,
    StoreError,
    StudyNotFoundError,
    TrialNotHeldError,
    TrialState,
    create_study,
    load_study,
)
from search_spaces import get_builtin


def test_create_load_and_duplicate(storage_url: str) -> None:
    study = create_study(
        "s1", storage_url, direction="maximize", search_space=get_builtin("branin"),
        algorithm="dehb", algorithm_settings={"eta": 3}, tags={"width": 256}, sweep="widths",
    )
    loaded = load_study("s1", storage_url)
    assert loaded.id == study.id
    assert loaded.direction is Direction.MAXIMIZE
    assert loaded.record.algorithm_settings == {"eta": 3}
    assert loaded.search_space == get_builtin("branin") and loaded.algorithm.name == "dehb"
    assert loaded.record.tags == {"width": 256} and loaded.record.sweep == "widths"
    with pytest.raises(DuplicateStudyError, match="'s1' already exists"):
        create_study("s1", storage_url)
    assert create_study("s1", storage_url, load_if_exists=True).id == study.id
    with pytest.raises(StudyNotFoundError, match="unknown study 'nope'"):
        load_study("nope", storage_url)
    with pytest.raises(StoreError, match="direction 'up' is invalid"):
        create_study("s2", storage_url, direction="up")


def test_claim_order_and_exclusivity(storage_url: str) -> None:
    study = create_study("q", storage_url)
    assert study.enqueue_many([{"x": i} for i in range(3)], budget=9) == [0, 1, 2]
    first, second = study.claim("a"), study.claim("b")
    assert (first.number, first.worker_id, first.frozen.attempts, first.budget) == (0, "a", 1, 9.0)
    assert second.number == 1 and first.frozen.state is TrialState.RUNNING
    study.claim("c")
    assert study.claim("d") is None
    assert study.counts()[TrialState.RUNNING] == 3


def test_reports_complete_and_values(storage_url: str) -> None:
    study = create_study("r", storage_url)
    study.enqueue({"x": 1})
    trial = study.claim("w")
    trial.report(1, 5.0)
    trial.report(1, 4.0)  # one row per budget: the later value wins
    trial.report(3, float("nan"))
    assert trial.complete(2.5) is TrialState.COMPLETED
    stored = study.trial(trial.number)
    assert stored.value == 2.5 and stored.state is TrialState.COMPLETED
    assert list(stored.intermediate_values) == [1.0, 3.0]
    assert stored.intermediate_values[1.0] == 4.0 and math.isnan(stored.intermediate_values[3.0])
    assert stored.finished_at is not None and stored.duration_s >= 0
    with pytest.raises(TrialNotHeldError, match="trial 0 is completed"):
        trial.complete(1.0)
    with pytest.raises(TrialNotHeldError):
        trial.report(5, 1.0)


def test_non_finite_values_mark_divergence_and_failures_keep_errors(storage_url: str) -> None:
    study = create_study("d", storage_url)
    study.enqueue_many([{"x": 1}, {"x": 2}, {"x": 3}])
    a, b, c = study.claim("w"), study.claim("w"), study.claim("w")
    assert a.complete(float("inf")) is TrialState.DIVERGED
    b.fail("Traceback ...\nRuntimeError: out of memory")
    c.prune(7.0)
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.DIVERGED, TrialState.FAILED, TrialState.PRUNED]
    assert trials[0].value is None and "inf" in trials[0].error
    assert "out of memory" in trials[1].error
    assert trials[2].value == 7.0
    with pytest.raises(StoreError, match="no completed trial"):
        _ = study.best_trial


def test_only_the_holder_may_report(storage_url: str) -> None:
    study = create_study("h", storage_url)
    study.enqueue({"x": 1})
    trial = study.claim("owner")
    impostor = HeldTrial(study, dataclasses.replace(trial.frozen, worker_id="impostor"))
    with pytest.raises(TrialNotHeldError, match="held by worker 'owner'"):
        impostor.report(1, 0.0)
    assert study.trial(0).intermediate_values == {}


@pytest.mark.parametrize("direction,best", [("minimize", 1.0), ("maximize", 3.0)])
def test_best_trial_follows_direction(storage_url: str, direction: str, best: float) -> None:
    study = create_study("b", storage_url, direction=direction)
    study.enqueue_many([{"x": v} for v in (2.0, 1.0, 3.0)])
    while (trial := study.claim("w")) is not None:
        trial.complete(trial.params["x"])
    assert study.best_value == best
    assert study.best_params == {"x": best}


def test_stale_trials_are_requeued_then_failed(storage_url: str) -> None:
    study = create_study("stale", storage_url, heartbeat_timeout=5, max_retries=1)
    study.enqueue({"x": 1})
    store = open_store(storage_url)
    trial = study.claim("w1")
    assert store.recover_stale(study.id).requeued == ()  # fresh heartbeat: left alone
    later = utcnow() + timedelta(seconds=6)
    assert store.recover_stale(study.id, now=later).requeued == (0,)
    requeued = study.trial(0)
    assert requeued.state is TrialState.QUEUED and requeued.worker_id is None
    assert "worker 'w1' sent no heartbeat" in requeued.error
    with pytest.raises(TrialNotHeldError, match="queued"):
        trial.complete(1.0)  # the lost worker's late result is refused

    second = study.claim("w2")
    assert second.number == 0 and second.attempts == 2
    recovery = store.recover_stale(study.id, now=utcnow() + timedelta(seconds=6))
    assert recovery.failed == (0,) and recovery.requeued == ()
    failed = study.trial(0)
    assert failed.state is TrialState.FAILED
    assert "failed after 2 attempts (max_retries=1)" in failed.error


def test_heartbeat_thread_keeps_a_long_trial_alive(storage_url: str) -> None:
    import time

    study = create_study("beat", storage_url, heartbeat_timeout=0.6)
    study.enqueue({"x": 1})
    trial = study.claim("w")
    with hpo.Heartbeat(trial, interval=0.1) as beat:
        time.sleep(1.5)
        assert study.recover_stale().requeued == ()
    assert beat.lost is None
    time.sleep(0.8)
    assert study.recover_stale().requeued == (0,)


def test_delete_removes_trials_and_values(storage_url: str) -> None:
    study = create_study("gone", storage_url)
    study.enqueue({"x": 1})
    trial = study.claim("w")
    trial.report(1, 1.0)
    hpo.delete_study("gone", storage_url)
    with pytest.raises(StudyNotFoundError):
        load_study("gone", storage_url)
    again = create_study("gone", storage_url)
    assert again.trials == []
    with study.store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM intermediate_values").scalar() == 0
        assert conn.exec_driver_sql("SELECT count(*) FROM trials").scalar() == 0


def test_sweeps_group_studies_and_listing_counts(storage_url: str) -> None:
    for width in (64, 128):
        s = create_study(f"w{width}", storage_url, sweep="mup", tags={"width": width})
        s.enqueue_many([{"x": 1.0}, {"x": 2.0}])
        t = s.claim("w")
        t.complete(width / 100)
    create_study("other", storage_url)
    summaries = hpo.list_studies(storage_url, sweep="mup")
    assert [s.study.name for s in summaries] == ["w64", "w128"]
    assert summaries[0].counts[TrialState.COMPLETED] == 1 and summaries[0].counts[TrialState.QUEUED] == 1
    assert summaries[1].best_value == 1.28 and summaries[1].n_trials == 2
    assert summaries[0].last_activity is not None
    assert len(hpo.list_studies(storage_url)) == 3


def test_exports(storage_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    study = create_study("ex", storage_url)
    study.enqueue_many([{"lr": 0.1, "bs": 32}, {"lr": 0.01, "bs": 64}])
    t = study.claim("w")
    t.report(10, 3.0)
    t.complete(2.0)
    frame = study.to_dataframe()
    assert list(frame["number"]) == [0, 1]
    assert list(frame["state"]) == ["completed", "queued"]
    assert list(frame["params_lr"]) == [0.1, 0.01] and "params_bs" in frame
    study.to_csv(tmp_path / "t.csv")
    assert pd.read_csv(tmp_path / "t.csv")["value"].iloc[0] == 2.0
    doc = json.loads(study.to_json(tmp_path / "t.json"))
    assert doc["study"]["name"] == "ex"
    assert doc["trials"][0]["intermediate_values"] == [{"budget": 10.0, "value": 3.0}]
    assert json.loads((tmp_path / "t.json").read_text()) == doc


def test_numpy_params_are_stored_as_plain_numbers(storage_url: str) -> None:
    import numpy as np

    study = create_study("np", storage_url)
    study.enqueue({"lr": np.float64(0.5), "layers": np.int64(4), "dims": (1, 2)})
    assert study.trial(0).params == {"lr": 0.5, "layers": 4, "dims": [1, 2]}


@pytest.mark.parametrize("open_listed", [500, 2], ids=["named", "from-lowest-open"])
def test_history_cache_sees_every_change_another_process_makes(
    storage_url: str, open_listed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ask path reads only new and unfinished trials; what it decides from must equal a
    full read after enqueues, claims, completions, failures and recovery by other workers,
    whether it names the unfinished trials or, past ``OPEN_LISTED`` of them, reads from the
    lowest one up."""
    monkeypatch.setattr(HistoryCache, "OPEN_LISTED", open_listed)
    space = get_builtin("branin")
    mine = create_study("cache", storage_url, search_space=space, heartbeat_timeout=5.0)
    other = load_study("cache", storage_url)
    cache, seen = HistoryCache(), []

    def cached_equals_full() -> None:
        with mine.store.engine.connect() as conn:  # as propose reads it, under its lock
            seen.append(cache.refresh(conn, mine.id))
        full = mine.store.trials(mine.id, with_intermediate=False)
        assert [(t.number, t.state, t.value, t.worker_id) for t in seen[-1]] == [
            (t.number, t.state, t.value, t.worker_id) for t in full
        ]

    other.enqueue_many([{"x1": 0.0, "x2": float(i)} for i in range(6)])
    cached_equals_full()
    held = [other.claim("a") for _ in range(4)]
    cached_equals_full()
    held[0].complete(1.0)
    held[1].fail("boom")
    cached_equals_full()
    store = other.store
    store.recover_stale(other.id, now=utcnow() + timedelta(seconds=60))  # held[2], held[3] go back
    cached_equals_full()
    other.claim("b").complete(2.0)
    other.enqueue({"x1": 1.0, "x2": 1.0})
    cached_equals_full()
    assert [t.state for t in seen[-1]].count(TrialState.COMPLETED) == 2


def test_sqlite_writers_queue_on_the_database_writer_lock(sqlite_url: str) -> None:
    """Writers wait on ``<database>-writers.lock`` (an flock, woken on release) rather than in
    SQLite's sleeping busy handler: while another process holds it, no write goes through."""
    study = create_study("locked", sqlite_url)
    lock_path = sqlite_url.removeprefix("sqlite:///") + "-writers.lock"
    assert os.path.exists(lock_path)  # created by the first write
    fd = os.open(lock_path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    writer = threading.Thread(target=study.enqueue, args=({"lr": 0.1},))
    writer.start()
    writer.join(timeout=0.5)
    assert writer.is_alive() and study.counts()[TrialState.QUEUED] == 0  # reads still work
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    writer.join(timeout=5)
    assert not writer.is_alive() and study.counts()[TrialState.QUEUED] == 1


def test_ask_hands_out_a_queued_trial_before_proposing(sqlite_url: str) -> None:
    study = create_study("queued-first", sqlite_url, search_space=get_builtin("branin"), algorithm="random")
    study.enqueue({"x1": 1.0, "x2": 2.0})
    first, second = study.ask("w"), study.ask("w")
    assert (first.number, first.params) == (0, {"x1": 1.0, "x2": 2.0})
    assert second.number == 1 and second.params != first.params


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open descriptors in /proc")
def test_writer_lock_descriptors_close_with_their_threads(sqlite_url: str) -> None:
    """Every trial's heartbeat thread writes; its lock-file descriptor must go with it."""
    study = create_study("fds", sqlite_url)
    study.enqueue({"lr": 0.1})  # this thread's descriptor, opened once
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(100):
        writer = threading.Thread(target=study.enqueue, args=({"lr": 0.2},))
        writer.start()
        writer.join()
    assert len(os.listdir("/proc/self/fd")) <= before + 2


def test_trial_pages_sort_by_value_with_the_valueless_last_across_page_boundaries(storage_url: str) -> None:
    """Pages are read as the trials with a value (by the index), then those without: every
    window, in both directions, must equal slicing the fully sorted list."""
    study = hpo.create_study("pages", storage_url)
    study.enqueue_many([{"i": i} for i in range(23)])
    values = [3.0, 1.0, 2.0, 1.0, 5.0, 4.0, 2.0, 0.5, 6.0, 1.0, 7.0, 2.5, 3.5, 0.1, 8.0, 9.0, 4.5]
    for value in values:  # 17 completed (ties included); 6 left queued without a value
        study.claim("w").complete(value)
    store, study_id = study.store, study.id
    trials = study.trials
    for descending in (False, True):
        valued = sorted((t for t in trials if t.value is not None),
                        key=lambda t: (-t.value, -t.number) if descending else (t.value, t.number))
        valueless = sorted((t for t in trials if t.value is None), key=lambda t: -t.number if descending else t.number)
        expected = [t.number for t in valued + valueless]
        for offset, limit in ((0, 5), (15, 5), (17, 3), (20, 10), (0, 100), (30, 5)):
            total, page = store.trial_page(study_id, sort="value", descending=descending, offset=offset, limit=limit)
            assert total == 23 and [t.number for t in page] == expected[offset : offset + limit], (descending, offset, limit)
    total, page = store.trial_page(study_id, sort="value", states=[TrialState.QUEUED], offset=2, limit=3)
    assert total == 6 and [t.number for t in page] == [19, 20, 21]
    assert [t.number for t in store.trial_page(study_id, sort="number", descending=True, limit=3)[1]] == [22, 21, 20]
