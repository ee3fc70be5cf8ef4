"""A trial whose worker is lost with its node (spot preemption, a node removed) is re-queued
without spending a retry; one whose worker crashes still spends one.

The store's accounting is tested on SQLite and PostgreSQL; the sweep's on a real Ray cluster
(``ray.cluster_utils.Cluster``, its nodes on this machine) with one node removed under a
running trial, and with a worker that ends its own process."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

import hpo
from db.models import TrialState
from db.store import open_store, utcnow
from workers.sweep import run_sweep

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402 - only once Ray is known to be there

OBJECTIVES = '''
import json, os, time

import ray

LOG = LOG_PATH


def slow(config, budget, report):
    """Three seconds of steps, each reported (and so a heartbeat); the node it runs on logged first."""
    with open(LOG, "a") as out:
        out.write(json.dumps({"node": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}) + "\\n")
    for step in range(1, 16):
        time.sleep(0.2)
        report(step, 1.0 / step)
    return 1.0 / 15


def crash(config, budget, report):
    report(1, 1.0)
    os._exit(3)
'''


def test_a_claim_lost_with_its_node_spends_no_retry_and_other_losses_still_do(storage_url: str) -> None:
    study = hpo.create_study("lost-nodes", storage_url, max_retries=1, heartbeat_timeout=5)
    study.enqueue({"x": 1.0})
    store = open_store(storage_url)

    study.claim("w1")
    assert study.release_worker("w1", "worker 'w1' died: node lost: removed", counted=False).requeued == (0,)
    lost = study.trial(0)
    assert (lost.state, lost.attempts, lost.node_losses) == (TrialState.QUEUED, 1, 1)
    assert lost.error.endswith("re-queued (its node was lost: not counted against max_retries)")

    study.claim("w2")  # a silent worker counts: this is the one retry max_retries=1 allows
    assert store.recover_stale(study.id, now=utcnow() + timedelta(seconds=6)).requeued == (0,)
    assert study.trial(0).error.endswith("sent no heartbeat for 6s (timeout 5s); re-queued")

    study.claim("w3")  # a crash is the second counted claim: out of retries
    assert study.release_worker("w3", "worker 'w3' died: crashed").failed == (0,)
    failed = study.trial(0)
    assert (failed.state, failed.attempts, failed.node_losses) == (TrialState.FAILED, 3, 1)
    assert failed.error.endswith("failed after 3 attempts (max_retries=1, 1 lost with their node and not counted)")


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """A head node with no CPUs (so no worker lands there) and one node with one CPU; the
    objectives module importable as ``preemption_objectives`` here and in Ray's workers."""
    module = OBJECTIVES.replace("LOG_PATH", repr(str(tmp_path / "runs.jsonl")))
    (tmp_path / "preemption_objectives.py").write_text(textwrap.dedent(module))
    monkeypatch.syspath_prepend(str(tmp_path))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
        cluster.wait_for_nodes()
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def _runs(tmp_path: Path) -> list[dict]:
    path = tmp_path / "runs.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
def test_a_trial_on_a_removed_node_is_requeued_without_a_retry_and_completed_elsewhere(
    cluster: Cluster, tmp_path: Path, sqlite_url: str
) -> None:
    study = hpo.create_study("preempted", sqlite_url, max_retries=0, heartbeat_timeout=60)
    study.enqueue({"x": 1.0})
    (doomed,) = cluster.worker_nodes
    spare: list = []

    def remove_the_busy_node(counts: dict, *_: object) -> None:
        if not spare and counts[TrialState.RUNNING] == 1 and _runs(tmp_path):
            cluster.remove_node(doomed)
            spare.append(cluster.add_node(num_cpus=1))  # where the replacement worker goes

    result = run_sweep(study, "preemption_objectives:slow", workers=1, progress=False, heartbeat_interval=0.5,
                       on_progress=remove_the_busy_node)

    assert spare, "the node was never removed"
    (trial,) = study.trials
    # With max_retries=0 a counted loss would have failed it: the node's loss spent nothing.
    assert (trial.state, trial.attempts, trial.node_losses) == (TrialState.COMPLETED, 2, 1)
    assert "died: node lost: ActorDiedError" in trial.error
    assert trial.error.endswith("re-queued (its node was lost: not counted against max_retries)")
    assert [run["node"] for run in _runs(tmp_path)] == [doomed.node_id, spare[0].node_id]
    assert len(result.deaths) == 1 and "node lost: " in result.deaths[0] and result.workers_started == 2
    assert result.wall_s < 60  # given back when Ray reported the death, not at the heartbeat timeout


@pytest.mark.slow
def test_a_worker_that_crashes_with_no_retries_left_fails_its_trial(cluster: Cluster, sqlite_url: str) -> None:
    study = hpo.create_study("crashed", sqlite_url, max_retries=0, heartbeat_timeout=60)
    study.enqueue({"x": 1.0})
    started = time.monotonic()

    result = run_sweep(study, "preemption_objectives:crash", workers=1, progress=False)

    (trial,) = study.trials
    assert (trial.state, trial.attempts, trial.node_losses) == (TrialState.FAILED, 1, 0)
    assert "its worker process has died" in trial.error and "node lost" not in trial.error
    assert trial.error.endswith("failed after 1 attempts (max_retries=0)")
    assert len(result.deaths) == 1 and "node lost" not in result.deaths[0]
    assert time.monotonic() - started < 60
