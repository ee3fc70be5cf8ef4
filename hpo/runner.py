"""Running trials: one claimed trial under a heartbeat (:func:`run_trial`), and a sweep in
the current process (:func:`optimize`), the same loop every Ray worker runs.

An objective is ``objective(config, budget, report) -> float``. ``report(budget, value)``
streams an intermediate value to the store and answers whether to go on; when the algorithm
says stop, the objective should return, and the trial is recorded as pruned. An objective
that raises is recorded as failed with its traceback (out of memory, host or GPU, is named as
such); a non-finite value, returned or reported, or a raised :class:`Diverged`, as diverged.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from db.errors import TrialNotHeldError
from db.models import TrialState
from hpo.heartbeat import Heartbeat
from hpo.study import Study, default_worker_id
from hpo.trial import HeldTrial

Report = Callable[[float, float], bool]

#: How long an idle sweep worker waits before asking again (the algorithm waits on a rung,
#: or the study is full and other workers' trials are still running).
_IDLE_WAIT = 0.2


class Diverged(Exception):
    """Raised by an objective whose training blew up: the trial is recorded as diverged with
    the message, not as failed, and the algorithm treats the configuration as the worst."""


def failure_reason(exc: BaseException) -> str:
    """The stored error of a failed trial: the traceback, led by "out of memory" when the
    objective ran out of host or GPU memory (so the dashboard and ``study show`` say why)."""
    text = "".join(traceback.format_exception(exc))
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":  # torch's CUDA OOM
        return f"out of memory: {type(exc).__name__}: {exc}\n{text}"
    return text


class TrialReporter:
    """The ``report`` an objective receives: ``report(budget, value)`` streams an intermediate
    value and answers whether to go on; ``report.record(**facts)`` keeps facts about the run
    (a model's parameter count, the tokens it saw) in the trial's attrs, where the scaling
    module reads them. Plain functions that only call ``report(budget, value)`` need nothing else."""

    def __init__(self, trial: HeldTrial) -> None:
        self._trial = trial
        self.stopped = False
        self.last_value = math.nan
        self.last_budget = math.nan

    def __call__(self, budget: float, value: float) -> bool:
        self._trial.report(budget, value)
        self.last_value, self.last_budget = value, budget
        if not math.isfinite(value):
            self.stopped = True
        elif not self.stopped:
            self.stopped = not self._trial.should_continue(budget, value)
        return not self.stopped

    @property
    def trial(self) -> HeldTrial:
        """The trial being run (its number, id and study name name a command's output)."""
        return self._trial

    def record(self, **facts: Any) -> None:
        self._trial.record(facts)


class Objective(Protocol):
    def __call__(self, config: Mapping[str, Any], budget: float | None, report: Report, /) -> float: ...


def run_trial(trial: HeldTrial, objective: Objective, heartbeat_interval: float) -> TrialState:
    """Run one trial this worker holds to its end and record the outcome.

    Raises :class:`TrialNotHeldError` if the trial was taken away meanwhile (its heartbeat
    stopped long enough for it to be re-queued): its result belongs to the new holder.
    """
    report = TrialReporter(trial)

    with Heartbeat(trial, heartbeat_interval) as beat:
        try:
            value = objective(trial.params, trial.budget, report)
        except TrialNotHeldError:
            raise
        except Diverged as exc:
            if beat.lost is None:
                trial.diverge(f"diverged: {exc}")
            return TrialState.DIVERGED
        except Exception as exc:  # noqa: BLE001 - any error of the user's objective fails only its trial
            if beat.lost is None:
                trial.fail(failure_reason(exc))
            return TrialState.FAILED
    if beat.lost is not None:
        raise beat.lost
    if report.stopped and not math.isfinite(report.last_value):
        trial.diverge(f"diverged: reported {report.last_value} at budget {report.last_budget:g}")
        return TrialState.DIVERGED
    if report.stopped:
        trial.prune(report.last_value)
        return TrialState.PRUNED
    return trial.complete(value)


def run_counted(trial: HeldTrial, objective: Objective, interval: float, outcomes: dict[TrialState, int]) -> None:
    """Run a held trial and count how it ended; one taken away meanwhile (re-queued after this
    worker's heartbeat stopped) counts nothing: its new holder reports it."""
    try:
        outcomes[run_trial(trial, objective, interval)] += 1
    except TrialNotHeldError:
        pass


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
        run_counted(trial, objective, interval, outcomes)
    return outcomes


def sweep_done(
    counts: Mapping[TrialState, int], max_trials: int | None, *, has_space: bool, stopped: bool = False
) -> bool:
    """Whether a sweep has nothing left to run: the study is stopped and none of its trials
    runs, or it is full (``max_trials`` reached, or it has no search space, so only queued
    trials run) and no trial is queued or running (a running one may still come back to the
    queue if its worker dies)."""
    if stopped:
        return counts[TrialState.RUNNING] == 0
    full = not has_space or (max_trials is not None and sum(counts.values()) >= max_trials)
    return full and counts[TrialState.RUNNING] == 0 and counts[TrialState.QUEUED] == 0


def work(
    study: Study,
    objective: Objective,
    *,
    worker_id: str,
    max_trials: int | None = None,
    deadline: float | None = None,
    heartbeat_interval: float | None = None,
) -> dict[TrialState, int]:
    """A sweep worker's loop: ask, run, record, until the sweep is over for this worker.

    Unlike :func:`optimize`, the stopping rule is the study's, shared by every worker: no
    new trial once the study holds ``max_trials`` (counted under the study's lock), none
    after ``deadline`` (``time.time()``, so it means the same in every process). A worker
    with nothing to start stays while other trials run, because a trial whose worker dies
    comes back to the queue and someone must take it; it leaves when nothing is queued or
    running. Returns how many trials this worker ended in each state.
    """
    interval = heartbeat_interval or study.record.heartbeat_timeout / 4
    has_space = study.search_space is not None
    outcomes = {state: 0 for state in TrialState if state.is_finished}
    while deadline is None or time.time() < deadline:
        trial = study.ask(worker_id, max_trials=max_trials) if has_space else study.claim(worker_id)
        if trial is None:
            if sweep_done(study.counts(), max_trials, has_space=has_space, stopped=study.stopped):
                break
            time.sleep(_IDLE_WAIT)
            continue
        run_counted(trial, objective, interval, outcomes)
    return outcomes
