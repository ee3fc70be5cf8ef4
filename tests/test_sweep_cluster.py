"""A sweep on a two-node Ray cluster (both nodes on this machine, ``ray.cluster_utils``) that
loses a node mid-sweep: the trials running there are recovered and the study completes."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

import hpo
from db.models import TrialState
from search_spaces import get_builtin
from workers.sweep import run_sweep

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402 - only once Ray is known to be there

pytestmark = pytest.mark.slow

OBJECTIVE = '''
import math, time


def slow_branin(config, budget, report):
    x1, x2 = config["x1"], config["x2"]
    time.sleep(0.5)
    value = (x2 - 5.1 / (4 * math.pi**2) * x1**2 + 5 / math.pi * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10
    report(budget, value)
    return value
'''


def test_a_node_removed_mid_sweep_loses_no_trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cluster_objective.py").write_text(OBJECTIVE)
    monkeypatch.syspath_prepend(str(tmp_path))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    second = cluster.add_node(num_cpus=2)
    try:
        ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
        cluster.wait_for_nodes()
        study = hpo.create_study(
            "two-nodes", f"sqlite:///{tmp_path / 'hpo.db'}", search_space=get_builtin("branin"),
            algorithm="asha", heartbeat_timeout=60,
        )
        removed_at: dict[str, float] = {}

        def remove_when_busy(counts: dict, *_: object) -> None:
            # Four one-CPU workers on 2 + 2 CPUs: two of them run on the second node.
            if not removed_at and counts[TrialState.COMPLETED] >= 8 and counts[TrialState.RUNNING] == 4:
                removed_at["t"] = time.monotonic()
                cluster.remove_node(second)

        result = run_sweep(study, "cluster_objective:slow_branin", workers=4, max_trials=40, progress=False,
                           on_progress=remove_when_busy)
    finally:
        ray.shutdown()
        cluster.shutdown()

    assert removed_at, "the second node was never removed"
    trials = study.trials
    assert [t.number for t in trials] == list(range(40))
    assert Counter(t.state for t in trials) == {TrialState.COMPLETED: 40}
    recovered = [t for t in trials if t.attempts > 1]
    assert 1 <= len(recovered) <= 2  # the trials the lost node's two workers held
    assert all("died" in t.error and "re-queued" in t.error for t in recovered)
    assert len(result.deaths) == 2 and result.workers_started >= 5
    # Given back by the driver as soon as Ray reported the deaths, not after the 60 s timeout.
    assert result.wall_s < 60
