"""The simplest worker: drain a study's queue of enqueued configurations in this process.

It claims trials and runs each with :func:`hpo.runner.run_trial` (heartbeat, intermediate
values, outcome recorded). Many such processes, on any machines, can drain one study at once;
the store guarantees each trial is run by one of them at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from db.models import TrialState
from hpo.runner import Objective, Report, run_counted
from hpo.study import Study, default_worker_id
from hpo.trial import HeldTrial

__all__ = ["Objective", "Report", "drain_queue"]


def drain_queue(
    study: Study,
    objective: Objective,
    *,
    worker_id: str | None = None,
    heartbeat_interval: float | None = None,
    on_claim: Callable[[HeldTrial], None] | None = None,
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
        run_counted(trial, objective, interval, outcomes)
