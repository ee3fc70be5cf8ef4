"""Running trials: one claimed trial under a heartbeat (:func:`run_trial`), and a sweep in
the current process (:func:`optimize`), the same loop every Ray worker runs.

An objective is ``objective(config, budget, report) -> float``. ``report(budget, value)``
streams an intermediate value to the store and answers whether to go on; when the algorithm
says stop, the objective should return, and the trial is recorded as pruned. An objective
that raises is recorded as failed with its traceback; a non-finite value as diverged.
"""

from __future__ import annotations

import math
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
    def __call__(self, config: Mapping[str, Any], budget: float | None, report: Report) -> float: ...


def run_trial(study: Study, trial: FrozenTrial, objective: Objective, heartbeat_interval: float) -> TrialState:
    """Run one trial this worker holds to its end and record the outcome.

    Raises :class:`TrialNotHeldError` if the trial was taken away meanwhile (its heartbeat
    stopped long enough for it to be re-queued): its result belongs to the new holder.
    """
    algorithm = study.algorithm_instance if study.search_space is not None else None
    last: dict[str, float] = {}
    stopped = False

    def report(budget: float, value: float) -> bool:
        nonlocal stopped
        study.report(trial, budget, value)
        last["value"] = value
        if not math.isfinite(value):
            stopped = True
        elif algorithm is not None and algorithm.stops_early and not stopped:
            peers = study.store.values_at(study.id, budget, exclude_trial=trial.id)
            stopped = not algorithm.should_continue(trial, budget, value, peers)
        return not stopped

    with Heartbeat(study.store, trial, heartbeat_interval) as beat:
        try:
            value = objective(trial.params, trial.budget, report)
        except TrialNotHeldError:
            raise
        except Exception:  # noqa: BLE001 - any error of the user's objective fails only its trial
            if beat.lost is None:
                study.fail(trial, traceback.format_exc())
            return TrialState.FAILED
    if beat.lost is not None:
        raise beat.lost
    if stopped and math.isfinite(last.get("value", math.nan)):
        study.prune(trial, last["value"])
        return TrialState.PRUNED
    return study.complete(trial, value if not stopped else last.get("value", value))


def optimize(
    study: Study,
    objective: Objective,
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    worker_id: str | None = None,
    heartbeat_interval: float | None = None,
) -> dict[TrialState, int]:
    """Ask, run and record trials in this process until ``n_trials`` have finished or
    ``timeout`` seconds have passed; returns how many ended in each state.

    Queued configurations (``study.enqueue``) run first, then the study's algorithm proposes.
    Safe to run in many processes on one study at once.
    """
    if n_trials is None and timeout is None:
        raise ValueError("optimize() needs n_trials or timeout, or it would never stop")
    worker = worker_id or default_worker_id()
    interval = heartbeat_interval or study.record.heartbeat_timeout / 4
    deadline = None if timeout is None else time.monotonic() + timeout
    outcomes = {state: 0 for state in TrialState if state.is_finished}
    while n_trials is None or sum(outcomes.values()) < n_trials:
        if deadline is not None and time.monotonic() >= deadline:
            break
        trial = study.ask(worker)
        if trial is None:  # the algorithm waits on other workers' running trials
            time.sleep(min(1.0, interval))
            continue
        try:
            outcomes[run_trial(study, trial, objective, interval)] += 1
        except TrialNotHeldError:
            continue
    return outcomes
