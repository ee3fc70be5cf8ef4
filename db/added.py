"""Finished trials added from outside the study's workers: results of another tool, another
run, or a user's own experiments (Optuna's ``study.add_trial``). See :class:`db.store.Store`.

An added trial is finished from the moment it exists: it was never queued, never held by a
worker (``worker_id`` None, ``attempts`` 0), and its row never changes again, so every reader
(history caches included) treats it as any other finished trial.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select

from db.connections import translate_db_errors, utcnow
from db.leases import Leases
from db.models import IntermediateValue, Trial, TrialState
from db.records import json_safe
from db.statements import INSERT_TRIAL

#: The states an added trial may have: those a finished run can report on its own.
ADDABLE_STATES = (TrialState.COMPLETED, TrialState.PRUNED, TrialState.FAILED, TrialState.DIVERGED)


@dataclass(frozen=True)
class AddedTrial:
    """One finished trial to add. COMPLETED needs a finite ``value``; the other states may
    have one (a pruned trial's last value) or None."""

    params: Mapping[str, Any]
    value: float | None
    budget: float | None = None
    state: TrialState = TrialState.COMPLETED
    attrs: Mapping[str, Any] = field(default_factory=dict)
    intermediate_values: Mapping[float, float] = field(default_factory=dict)
    config_hash: str | None = None
    error: str | None = None

    def __post_init__(self) -> None:
        state = TrialState(self.state)
        object.__setattr__(self, "state", state)
        if state not in ADDABLE_STATES:
            names = ", ".join(s.value for s in ADDABLE_STATES)
            raise ValueError(f"an added trial must be finished ({names}), got state {state.value!r}")
        if self.value is not None:
            value = float(self.value)
            if not math.isfinite(value):
                raise ValueError(f"an added trial's value must be finite, got {self.value!r}; add it as failed with value None")
            object.__setattr__(self, "value", value)
        elif state is TrialState.COMPLETED:
            raise ValueError("a completed trial needs a value; add it as failed or pruned with value None")


class AddedTrials(Leases):
    """Adding finished trials to a study (numbers allocated as :class:`Leases` allocates them)."""

    @translate_db_errors
    def add_trials(self, study_id: int, trials: Sequence[AddedTrial]) -> list[int]:
        """Insert finished trials in one transaction; returns their numbers, allocated from the
        study's counter as :meth:`enqueue` does (dense, in the order given)."""
        if not trials:
            return []
        now = utcnow()
        with self._write() as conn:
            first = self._allocate_numbers(conn, study_id, len(trials))
            conn.execute(
                INSERT_TRIAL,
                [
                    {
                        "study_id": study_id,
                        "number": first + i,
                        "state": t.state.value,
                        "params": json_safe(dict(t.params)),
                        "config_hash": t.config_hash,
                        "budget": t.budget,
                        "value": t.value,
                        "attrs": json_safe(dict(t.attrs)),
                        "worker_id": None,
                        "attempts": 0,
                        "error": t.error,
                        "created_at": now,
                        "finished_at": now,
                    }
                    for i, t in enumerate(trials)
                ],
            )
            if any(t.intermediate_values for t in trials):
                ids: dict[int, int] = dict(
                    conn.execute(
                        select(Trial.number, Trial.id).where(
                            Trial.study_id == study_id, Trial.number >= first, Trial.number < first + len(trials)
                        )
                    ).all()
                )
                conn.execute(
                    insert(IntermediateValue),
                    [
                        {
                            "trial_id": ids[first + i],
                            "budget": float(budget),
                            "value": None if math.isnan(float(value)) else float(value),
                            "reported_at": now,
                        }
                        for i, t in enumerate(trials)
                        for budget, value in t.intermediate_values.items()
                    ],
                )
        return list(range(first, first + len(trials)))
