"""Trials' life in the store: queued (enqueue), handed out (claim, propose), reported on while
held (report, heartbeat, attrs) and finished. See :class:`db.store.Store` for the rules."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from db.connections import StoreBase, translate_db_errors, utcnow
from db.errors import StudyNotFoundError, TrialNotHeldError
from db.history import HistoryCache, read_trials, trial_from_row
from db.models import Trial, TrialState
from db.records import STOPPED_TAG, FrozenTrial, NewTrial, json_safe
from db.statements import (
    ALLOCATE,
    ANY_QUEUED,
    CLAIM,
    CLAIM_ATTEMPTS,
    FINISH,
    INSERT_HELD_TRIAL,
    INSERT_TRIAL,
    PG_REPORT,
    SQLITE_REPORT,
    STUDY_TAGS_LOCKED,
    TOUCH,
)

#: Trial attrs the search algorithms write; an objective's own facts may not overwrite them.
ALGORITHM_ATTRS = frozenset({"bracket", "rung", "s", "parent", "kind", "target", "mutant"})


def _storable(value: float | None) -> float | None:
    """SQLite cannot hold NaN: it is stored as NULL (and read back as NaN where it matters)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


class Leases(StoreBase):
    """Queueing trials, handing them to workers, and the held trial's reports and end."""

    @translate_db_errors
    def enqueue(
        self,
        study_id: int,
        params: Sequence[Mapping[str, Any]],
        *,
        budget: float | None = None,
        attrs: Mapping[str, Any] | None = None,
        config_hashes: Sequence[str | None] | None = None,
    ) -> list[int]:
        """Queue configurations for workers to claim; returns their trial numbers."""
        if not params:
            return []
        if config_hashes is not None and len(config_hashes) != len(params):
            raise ValueError("config_hashes must have one entry per configuration")
        now = utcnow()
        with self._write() as conn:
            first = self._allocate_numbers(conn, study_id, len(params))
            conn.execute(
                INSERT_TRIAL,
                [
                    {
                        "study_id": study_id,
                        "number": first + i,
                        "state": TrialState.QUEUED.value,
                        "params": json_safe(p),
                        "config_hash": config_hashes[i] if config_hashes else None,
                        "budget": budget,
                        "attrs": json_safe(dict(attrs or {})),
                        "attempts": 0,
                        "created_at": now,
                    }
                    for i, p in enumerate(params)
                ],
            )
        return list(range(first, first + len(params)))

    @translate_db_errors
    def propose(
        self,
        study_id: int,
        worker_id: str,
        decide: Callable[[list[FrozenTrial]], NewTrial | None],
        history: HistoryCache | None = None,
    ) -> FrozenTrial | None:
        """Hand ``worker_id`` the study's next queued trial, or else the one ``decide`` chooses
        from the study's history, all in one transaction under the study's lock.

        Holding the lock from reading the history to inserting the trial is what makes a
        stateless algorithm safe with many workers: no two asks decide from the same history.
        (SQLite: the write lock; PostgreSQL: the study's row, locked FOR UPDATE.) Claiming in
        the same transaction makes an ask one write, not two: on SQLite every write queues
        for the one lock. A ``history`` cache kept across asks reads only what changed since
        the last one.
        """
        with self._write() as conn:
            tags = conn.execute(STUDY_TAGS_LOCKED, {"study": study_id}).scalar_one()
            if (tags or {}).get(STOPPED_TAG):
                return None
            queued = conn.execute(CLAIM, {"study": study_id, "worker": worker_id, "now": utcnow()}).one_or_none()
            if queued is not None:
                return trial_from_row(queued)
            trials = (
                history.refresh(conn, study_id)
                if history is not None
                else read_trials(conn, study_id, None, with_intermediate=False)
            )
            new = decide(trials)
            if new is None:
                return None
            now = utcnow()
            number = self._allocate_numbers(conn, study_id, 1)
            row = conn.execute(
                INSERT_HELD_TRIAL,
                {
                    "study_id": study_id,
                    "number": number,
                    "state": TrialState.RUNNING.value,
                    "params": json_safe(new.params),
                    "config_hash": new.config_hash,
                    "budget": new.budget,
                    "attrs": json_safe(new.attrs),
                    "worker_id": worker_id,
                    "attempts": 1,
                    "created_at": now,
                    "started_at": now,
                    "heartbeat_at": now,
                },
            ).one()
        return trial_from_row(row)

    def _allocate_numbers(self, conn: Connection, study_id: int, n: int) -> int:
        end = conn.execute(ALLOCATE, {"study": study_id, "n": n}).scalar_one_or_none()
        if end is None:
            raise StudyNotFoundError(f"unknown study id {study_id} in {self.display_url}")
        return int(end) - n

    @translate_db_errors
    def claim(self, study_id: int, worker_id: str) -> FrozenTrial | None:
        """Atomically hand the lowest-numbered queued trial to ``worker_id``; None if none is queued."""
        for _ in range(CLAIM_ATTEMPTS):
            with self._write(single_statement=True) as conn:
                row = conn.execute(
                    CLAIM, {"study": study_id, "worker": worker_id, "now": utcnow()}
                ).one_or_none()
                if row is not None:
                    return trial_from_row(row)
                if conn.execute(ANY_QUEUED, {"study": study_id}).first() is None:
                    return None
        return None

    @translate_db_errors
    def report(self, trial_id: int, worker_id: str, budget: float, value: float) -> None:
        """Record the value at ``budget`` (replacing an earlier one there); also a heartbeat."""
        now = utcnow()
        params = {"trial": trial_id, "worker": worker_id, "at_budget": float(budget), "at_value": _storable(value), "now": now}
        if self.backend == "postgresql":
            with self._write(single_statement=True) as conn:
                if conn.execute(PG_REPORT, params).first() is None:
                    raise self._not_held(conn, trial_id, worker_id)
            return
        with self._write() as conn:
            self._touch(conn, trial_id, worker_id, now)
            conn.execute(SQLITE_REPORT, params)

    @translate_db_errors
    def set_trial_attrs(self, trial_id: int, worker_id: str, attrs: Mapping[str, Any]) -> None:
        """Add facts the objective learned while running (a model's parameter count, the
        tokens it trained on) to a held trial's attrs; also a heartbeat. A key the algorithms
        set (bracket, rung, parent, ...) keeps its value: :class:`ValueError` if asked to change it."""
        with self._write() as conn:
            now = utcnow()
            self._touch(conn, trial_id, worker_id, now)
            current = conn.execute(select(Trial.attrs).where(Trial.id == trial_id)).scalar_one() or {}
            new = json_safe(dict(attrs))
            clash = sorted(k for k in new if k in current and current[k] != new[k] and k in ALGORITHM_ATTRS)
            if clash:
                raise ValueError(f"trial attrs {', '.join(clash)} belong to the search algorithm; use other names")
            conn.execute(update(Trial).where(Trial.id == trial_id).values(attrs={**current, **new}))

    @translate_db_errors
    def heartbeat(self, trial_id: int, worker_id: str) -> None:
        """Tell the store ``worker_id`` is still working on the trial."""
        with self._write(single_statement=True) as conn:
            self._touch(conn, trial_id, worker_id, utcnow())

    def _touch(self, conn: Connection, trial_id: int, worker_id: str, now: datetime) -> None:
        held = conn.execute(TOUCH, {"trial": trial_id, "worker": worker_id, "now": now}).rowcount
        if held != 1:
            raise self._not_held(conn, trial_id, worker_id)

    @translate_db_errors
    def finish(
        self,
        trial_id: int,
        worker_id: str,
        state: TrialState,
        *,
        value: float | None = None,
        error: str | None = None,
    ) -> None:
        """Move a held trial to a finished state, with its final value or the reason it ended."""
        if not state.is_finished:
            raise ValueError(f"finish() needs a finished state, got {state.value!r}")
        with self._write(single_statement=True) as conn:
            done = conn.execute(
                FINISH,
                {
                    "trial": trial_id,
                    "worker": worker_id,
                    "new_state": state.value,
                    "new_value": _storable(value),
                    "new_error": error,
                    "now": utcnow(),
                },
            ).rowcount
            if done != 1:
                raise self._not_held(conn, trial_id, worker_id)

    def _not_held(self, conn: Connection, trial_id: int, worker_id: str) -> TrialNotHeldError:
        row = conn.execute(
            select(Trial.number, Trial.state, Trial.worker_id).where(Trial.id == trial_id)
        ).one_or_none()
        if row is None:
            return TrialNotHeldError(f"trial id {trial_id} does not exist (was its study deleted?)")
        if row.state == TrialState.RUNNING.value:
            why = f"is now held by worker {row.worker_id!r}"
        else:
            why = f"is {row.state}"
        return TrialNotHeldError(
            f"trial {row.number} {why}, not held by {worker_id!r}: it was finished, or re-queued "
            "after this worker's heartbeat stopped; drop this result"
        )
