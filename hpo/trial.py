"""The worker's side of a trial: a :class:`HeldTrial` is what ``Study.ask()``/``claim()`` hand
out, and the only object that can report on the trial or finish it.

Why an object of its own (as Optuna keeps ``Trial`` apart from ``Study``): every call here
needs the same two facts, which trial and which worker holds it, and the study handle should
not grow a method per thing a worker may say. Invariants:

- A held trial speaks for one worker (``worker_id``, fixed at the claim). Every call goes to
  the store with that worker id; once the store has given the trial to another worker (this
  one's heartbeat stopped and the trial was re-queued) every call raises
  :class:`db.errors.TrialNotHeldError`, so a lost worker's late result is never recorded.
- A trial is finished once: after :meth:`complete`, :meth:`prune`, :meth:`fail` or
  :meth:`diverge` the store refuses further reports and finishes.
- ``frozen`` is the trial as it was claimed; the store is the truth for anything later
  (read it back with ``study.trial(number)``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from db.errors import StoreError
from db.models import TrialState
from db.records import FrozenTrial

if TYPE_CHECKING:
    from hpo.study import Study


class HeldTrial:
    """A trial this worker holds: report on it, keep it alive, and finish it."""

    __slots__ = ("_frozen", "_study", "_worker")

    def __init__(self, study: Study, frozen: FrozenTrial) -> None:
        if frozen.worker_id is None:
            raise StoreError(f"trial {frozen.number} is not held by any worker; claim it first")
        self._study, self._frozen, self._worker = study, frozen, frozen.worker_id

    # ------------------------------------------------------------ description

    @property
    def study(self) -> Study:
        return self._study

    @property
    def frozen(self) -> FrozenTrial:
        """The trial as it stood when this worker claimed it."""
        return self._frozen

    @property
    def id(self) -> int:
        return self._frozen.id

    @property
    def number(self) -> int:
        return self._frozen.number

    @property
    def params(self) -> dict[str, Any]:
        return self._frozen.params

    @property
    def budget(self) -> float | None:
        """The budget to train to (None for a study without a fidelity)."""
        return self._frozen.budget

    @property
    def attrs(self) -> dict[str, Any]:
        """The algorithm's bookkeeping at the claim (bracket, rung, parent...)."""
        return self._frozen.attrs

    @property
    def worker_id(self) -> str:
        return self._worker

    @property
    def attempts(self) -> int:
        """How many times a worker claimed this trial, this claim included (more than one:
        a lost worker's trial, re-queued)."""
        return self._frozen.attempts

    def __repr__(self) -> str:
        return f"HeldTrial(study={self._study.name!r}, number={self.number}, worker={self._worker!r})"

    # ---------------------------------------------------------------- progress

    def report(self, budget: float, value: float) -> None:
        """Record the value at ``budget`` (one value per budget; a later one replaces it). Also
        a heartbeat. A non-finite value is stored as NaN: the trial is then to be diverged."""
        self._study.store.report(self.id, self._worker, budget, value)

    def heartbeat(self) -> None:
        """Tell the store this worker is still on the trial (:class:`hpo.Heartbeat` does it
        from a thread while an objective runs)."""
        self._study.store.heartbeat(self.id, self._worker)

    def record(self, attrs: Mapping[str, Any]) -> None:
        """Keep facts the objective learned (the model's parameter count, the tokens it
        trained) in the trial's attrs, beside the algorithm's, which they may not overwrite."""
        self._study.store.set_trial_attrs(self.id, self._worker, attrs)

    def should_continue(self, budget: float, value: float) -> bool:
        """Whether a trial that reported ``value`` at ``budget`` should train on: the study's
        early-stopping rule (ASHA's stopping mode) against every other trial's value at that
        budget; always yes for algorithms that do not stop trials early."""
        study = self._study
        if study.search_space is None or not study.algorithm.stops_early:
            return True
        peers = study.store.values_at(study.id, budget, exclude_trial=self.id)
        return study.algorithm.should_continue(self._frozen, budget, value, peers)

    # --------------------------------------------------------------- outcomes

    def complete(self, value: float) -> TrialState:
        """Finish with the final value; a NaN or infinite value marks the trial diverged.
        Returns the state recorded."""
        value = float(value)
        if not math.isfinite(value):
            self._finish(TrialState.DIVERGED, error=f"objective returned {value}")
            return TrialState.DIVERGED
        self._finish(TrialState.COMPLETED, value=value)
        return TrialState.COMPLETED

    def prune(self, value: float | None = None) -> None:
        """Stop early because the algorithm said so, keeping the last value."""
        self._finish(TrialState.PRUNED, value=value)

    def fail(self, error: str) -> None:
        """The objective crashed; ``error`` (a traceback, say) is kept for the dashboard."""
        self._finish(TrialState.FAILED, error=error)

    def diverge(self, reason: str) -> None:
        """Training blew up (NaN loss): the algorithm treats the configuration as the worst."""
        self._finish(TrialState.DIVERGED, error=reason)

    def _finish(self, state: TrialState, *, value: float | None = None, error: str | None = None) -> None:
        self._study.store.finish(self.id, self._worker, state, value=value, error=error)
