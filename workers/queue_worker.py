"""The simplest worker: drain a study's queue of enqueued configurations in this process.

It claims a trial, runs the objective under a heartbeat, streams intermediate values to the
store, and records how the trial ended: completed, diverged (a non-finite value), or failed
(the objective raised; the traceback is kept). Many such processes, on any machines, can drain
one study at once; the store guarantees each trial is run by one of them at a time.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from db.errors import TrialNotHeldError
from db.models import TrialState
from db.records import FrozenTrial
from hpo.heartbeat import Heartbeat
from hpo.study import Study, default_worker_id

Report = Callable[[float, float], bool]


class Objective(Protocol):
    """``objective(config, budget, report) -> final value``; ``report(budget, value)`` streams
    an intermediate value and answers whether to go on."""

    def __call__(self, config: Mapping[str, Any], budget: float | None, report: Report) -> float: ...


def run_trial(study: Study, trial: FrozenTrial, objective: Objective, heartbeat_interval: float) -> TrialState:
    """Run one claimed trial to its end and record the outcome in the store."""

    def report(budget: float, value: float) -> bool:
        study.report(trial, budget, value)
        return True

    with Heartbeat(study.store, trial, heartbeat_interval) as beat:
        try:
            value = objective(trial.params, trial.budget, report)
        except TrialNotHeldError:
            raise
        except Exception:
            if beat.lost is None:
                study.fail(trial, traceback.format_exc())
            return TrialState.FAILED
    if beat.lost is not None:
        raise beat.lost
    return study.complete(trial, value)


def drain_queue(
    study: Study,
    objective: Objective,
    *,
    worker_id: str | None = None,
    heartbeat_interval: float | None = None,
    on_claim: Callable[[FrozenTrial], None] | None = None,
    wait_for_running: bool = True,
) -> dict[TrialState, int]:
    """Run queued trials until none is left; returns how many ended in each state.

    With ``wait_for_running`` the worker stays while other workers' trials are running, since
    one whose worker dies comes back to the queue after the heartbeat timeout and someone must
    take it. A trial this worker lost (re-queued after its own heartbeat stopped) is skipped:
    another worker owns it now.
    """
    worker_id = worker_id or default_worker_id()
    interval = heartbeat_interval or study.record.heartbeat_timeout / 4
    outcomes = {state: 0 for state in TrialState if state.is_finished}
    while True:
        trial = study.claim(worker_id)
        if trial is None:
            if wait_for_running and study.counts()[TrialState.RUNNING] > 0:
                time.sleep(min(1.0, interval))
                continue
            return outcomes
        if on_claim is not None:
            on_claim(trial)
        try:
            outcomes[run_trial(study, trial, objective, interval)] += 1
        except TrialNotHeldError:
            continue
