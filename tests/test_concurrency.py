"""Many processes claiming from one study: every trial completed exactly once, none lost,
and a trial whose worker is killed mid-trial recovered after the heartbeat timeout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from hpo import TrialState, create_study, load_study

WORKER = Path(__file__).with_name("store_worker.py")


def _start_worker(url: str, study: str, log: Path, pause: float = 0.0) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(WORKER), url, study, str(log), str(pause)])


def _claimed(logs: list[Path]) -> list[list[int]]:
    return [[int(line) for line in log.read_text().split()] if log.exists() else [] for log in logs]


@pytest.mark.slow
def test_eight_processes_complete_2000_trials_exactly_once(storage_url: str, tmp_path: Path) -> None:
    study = create_study("stress", storage_url, heartbeat_timeout=60)
    study.enqueue_many([{"x": float(i)} for i in range(2000)])
    logs = [tmp_path / f"worker{i}.log" for i in range(8)]
    procs = [_start_worker(storage_url, "stress", log) for log in logs]
    for proc in procs:
        assert proc.wait(timeout=300) == 0

    per_worker = _claimed(logs)
    runs = Counter(n for claimed in per_worker for n in claimed)
    assert sorted(runs) == list(range(2000)), "every trial was started"
    assert max(runs.values()) == 1, f"trials run twice: {[n for n, c in runs.items() if c > 1][:10]}"
    assert sum(1 for claimed in per_worker if claimed) >= 2, "the work was shared"

    trials = load_study("stress", storage_url).trials
    assert len(trials) == 2000
    assert Counter(t.state for t in trials) == {TrialState.COMPLETED: 2000}
    assert all(t.attempts == 1 for t in trials)
    assert all(t.value == float(t.number) / 3 for t in trials)
    assert all(sorted(t.intermediate_values) == [1.0, 2.0, 3.0] for t in trials)


@pytest.mark.slow
def test_trial_of_a_killed_worker_is_recovered_and_completed(storage_url: str, tmp_path: Path) -> None:
    study = create_study("kill", storage_url, heartbeat_timeout=2.0, max_retries=2)
    study.enqueue_many([{"x": float(i)} for i in range(30)])
    victim_log = tmp_path / "victim.log"
    victim = _start_worker(storage_url, "kill", victim_log, pause=0.3)
    deadline = time.monotonic() + 60
    while not (victim_log.exists() and victim_log.read_text().strip()):
        assert time.monotonic() < deadline, "the victim never claimed a trial"
        time.sleep(0.05)
    time.sleep(0.2)  # mid-trial: after its first intermediate report at the latest
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    killed_trial = _claimed([victim_log])[0][-1]
    assert study.trial(killed_trial).state is TrialState.RUNNING

    logs = [tmp_path / f"survivor{i}.log" for i in range(3)]
    survivors = [_start_worker(storage_url, "kill", log, pause=0.02) for log in logs]
    for proc in survivors:
        assert proc.wait(timeout=120) == 0

    trials = {t.number: t for t in study.trials}
    assert all(t.state is TrialState.COMPLETED for t in trials.values())
    recovered = trials[killed_trial]
    assert recovered.attempts == 2
    assert recovered.worker_id != f"{os.uname().nodename}:{victim.pid}"
    assert "lost" in (recovered.error or "") and "no heartbeat" in (recovered.error or "")
    assert sorted(recovered.intermediate_values) == [1.0, 2.0, 3.0]
    # Only the killed trial was run twice.
    runs = Counter(n for claimed in _claimed([victim_log, *logs]) for n in claimed)
    assert {n for n, c in runs.items() if c > 1} == {killed_trial}
    assert sorted(runs) == list(range(30))
