"""Reading what a study's trials did: all of them, one page, one trial, the best, the counts,
and :class:`HistoryCache`, which re-reads only the trials that can have changed.

Every read is one consistent snapshot (one read transaction). Intermediate values are stored
NULL where the objective reported NaN, and read back as NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Row, bindparam, func, or_, select

from db.connections import StoreBase, translate_db_errors
from db.errors import StoreError, TrialNotFoundError
from db.models import (
    SORTABLE_TRIAL_COLUMNS,
    Direction,
    IntermediateValue,
    Trial,
    TrialState,
)
from db.records import FrozenTrial

#: The columns a page of trials can be sorted by.
_SORTABLE = {name: Trial.__table__.c[name] for name in SORTABLE_TRIAL_COLUMNS}
_CURVE_COLUMNS = (IntermediateValue.trial_id, IntermediateValue.budget, IntermediateValue.value)


def trial_from_row(row: Row[Any], curve: dict[float, float] | None = None) -> FrozenTrial:
    """The snapshot of a ``trials`` row, with its intermediate values if read."""
    data = dict(row._mapping)
    data["state"] = TrialState(data["state"])
    return FrozenTrial(**data, intermediate_values=curve or {})


def _curves(rows: Iterable[Sequence[Any]]) -> dict[int, dict[float, float]]:
    """(trial id, budget, value) rows, in trial and budget order, as each trial's curve."""
    curves: dict[int, dict[float, float]] = {}
    for trial_id, budget, value in rows:
        curves.setdefault(trial_id, {})[budget] = math.nan if value is None else value
    return curves


def read_trials(
    conn: Connection, study_id: int, states: Sequence[TrialState] | None, with_intermediate: bool
) -> list[FrozenTrial]:
    """The study's trials (of ``states``, if given) in number order."""
    query = select(Trial.__table__).where(Trial.study_id == study_id).order_by(Trial.number)
    if states is not None:
        query = query.where(Trial.state.in_([s.value for s in states]))
    rows = conn.execute(query).all()
    curves: dict[int, dict[float, float]] = {}
    if with_intermediate and rows:
        curves = _curves(
            conn.execute(
                select(*_CURVE_COLUMNS)
                .join(Trial, Trial.id == IntermediateValue.trial_id)
                .where(Trial.study_id == study_id)
                .order_by(IntermediateValue.trial_id, IntermediateValue.budget)
            )
        )
    return [trial_from_row(row, curves.get(row.id, {})) for row in rows]


#: What a history refresh re-reads, built once: the trials numbered above the last one seen
#: or still unfinished ("listed"), or, past ``HistoryCache.OPEN_LISTED`` unfinished ones,
#: every trial from the lowest unfinished number up ("from").
_CHANGED = {
    "listed": or_(Trial.number > bindparam("last"), Trial.number.in_(bindparam("open", expanding=True))),
    "from": Trial.number >= bindparam("lowest"),
}
_CHANGED_TRIALS = {
    kind: select(Trial.__table__).where(Trial.study_id == bindparam("study"), changed).order_by(Trial.number)
    for kind, changed in _CHANGED.items()
}
_CHANGED_CURVES = {
    kind: select(*_CURVE_COLUMNS)
    .join(Trial, Trial.id == IntermediateValue.trial_id)
    .where(Trial.study_id == bindparam("study"), changed)
    .order_by(IntermediateValue.trial_id, IntermediateValue.budget)
    for kind, changed in _CHANGED.items()
}


class HistoryCache:
    """A study's trials as of the last read, refreshed by reading only what can have changed.

    A finished trial's row never changes again (every update is guarded by state), so each
    refresh reads just the trials numbered above the last one seen and those that were still
    queued or running: a handful of rows instead of the whole study, which keeps an ask fast
    in a study of thousands of trials. Must be refreshed inside the transaction that decides.
    ``with_intermediate`` also reads the re-read trials' intermediate values (the dashboard's
    copy; the algorithms decide from final values only).
    """

    #: Above this many unfinished trials (a large enqueued batch), a refresh re-reads every
    #: trial from the lowest unfinished number up instead of naming each one in the query.
    OPEN_LISTED = 500

    def __init__(self, *, with_intermediate: bool = False) -> None:
        self.with_intermediate = with_intermediate
        self._reset(None)

    def _reset(self, study_id: int | None) -> None:
        self._study_id = study_id
        self._trials: dict[int, FrozenTrial] = {}
        self._open: set[int] = set()
        self._last = -1

    def refresh(self, conn: Connection, study_id: int) -> list[FrozenTrial]:
        if study_id != self._study_id:
            self._reset(study_id)
        params: dict[str, Any]
        if len(self._open) > self.OPEN_LISTED:
            kind, params = "from", {"study": study_id, "lowest": min(self._open)}
        else:
            kind, params = "listed", {"study": study_id, "last": self._last, "open": sorted(self._open)}
        rows = conn.execute(_CHANGED_TRIALS[kind], params).all()
        curves: dict[int, dict[float, float]] = {}
        if self.with_intermediate and rows:
            # after the rows (PostgreSQL reads each statement at its own snapshot): a trial read
            # as finished had reported all its values before, so none is missed and kept
            curves = _curves(conn.execute(_CHANGED_CURVES[kind], params))
        for row in rows:
            trial = trial_from_row(row, curves.get(row.id))
            self._trials[trial.number] = trial  # new numbers only ever grow: dict order is number order
            self._last = max(self._last, trial.number)
            if trial.state.is_finished:
                self._open.discard(trial.number)
            else:
                self._open.add(trial.number)
        return list(self._trials.values())


class TrialReads(StoreBase):
    """The store's reads of trials and their intermediate values."""

    @translate_db_errors
    def trials(
        self,
        study_id: int,
        *,
        states: Sequence[TrialState] | None = None,
        with_intermediate: bool = True,
    ) -> list[FrozenTrial]:
        """The study's trials in number order, as one consistent snapshot."""
        with self._read() as conn:
            return read_trials(conn, study_id, states, with_intermediate)

    @translate_db_errors
    def trial_page(
        self,
        study_id: int,
        *,
        states: Sequence[TrialState] | None = None,
        sort: str = "number",
        descending: bool = False,
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[int, list[FrozenTrial]]:
        """One page of a study's trials (with their intermediate values) and how many match:
        what a dashboard table shows, read without loading the other trials. Trials without a
        value sort last either way; ties go by number, in the same direction.

        Read as the trials with a value, then those without, each in index order: an
        ``ORDER BY value IS NULL, ...`` would sort every trial of the study for each page."""
        column = _SORTABLE.get(sort)
        if column is None:
            raise StoreError(f"cannot sort trials by {sort!r}; choose one of {', '.join(_SORTABLE)}")
        where = [Trial.study_id == study_id]
        if states:
            where.append(Trial.state.in_([s.value for s in states]))
        order = [column.desc(), Trial.number.desc()] if descending else [column.asc(), Trial.number.asc()]
        tie = Trial.number.desc() if descending else Trial.number.asc()
        with self._read() as conn:
            total = conn.execute(select(func.count()).select_from(Trial).where(*where)).scalar_one()
            parts = [(where, order, offset, limit)]
            if column.expression.nullable:
                with_value = conn.execute(select(func.count()).select_from(Trial).where(*where, column.is_not(None))).scalar_one()
                parts = []
                if offset < with_value:
                    parts.append(([*where, column.is_not(None)], order, offset, limit))
                if offset + limit > with_value:
                    start = max(0, offset - with_value)
                    parts.append(([*where, column.is_(None)], [tie], start, offset + limit - max(offset, with_value)))
            rows = [
                row
                for part_where, part_order, part_offset, part_limit in parts
                for row in conn.execute(
                    select(Trial.__table__).where(*part_where).order_by(*part_order).offset(part_offset).limit(part_limit)
                ).all()
            ]
            curves: dict[int, dict[float, float]] = {}
            if rows:
                curves = _curves(
                    conn.execute(
                        select(*_CURVE_COLUMNS)
                        .where(IntermediateValue.trial_id.in_([row.id for row in rows]))
                        .order_by(IntermediateValue.trial_id, IntermediateValue.budget)
                    )
                )
        return total, [trial_from_row(row, curves.get(row.id, {})) for row in rows]

    @translate_db_errors
    def read_history(self, history: HistoryCache, study_id: int) -> list[FrozenTrial]:
        """``history`` brought up to date in a read of its own, for a reader that decides
        nothing (the dashboard): every trial of the study, finished ones read only once."""
        with self._read() as conn:
            return history.refresh(conn, study_id)

    @translate_db_errors
    def trial(self, study_id: int, number: int) -> FrozenTrial:
        """One trial with its intermediate values; :class:`TrialNotFoundError` if absent."""
        with self._read() as conn:
            row = conn.execute(
                select(Trial.__table__).where(Trial.study_id == study_id, Trial.number == number)
            ).one_or_none()
            if row is None:
                raise TrialNotFoundError(f"study has no trial number {number}")
            curves = _curves(
                conn.execute(
                    select(*_CURVE_COLUMNS)
                    .where(IntermediateValue.trial_id == row.id)
                    .order_by(IntermediateValue.budget)
                )
            )
        return trial_from_row(row, curves.get(row.id, {}))

    @translate_db_errors
    def best_trial(self, study_id: int, direction: Direction) -> FrozenTrial | None:
        """The completed trial with the best value; None before any trial completed."""
        order = Trial.value.desc() if direction.maximize else Trial.value.asc()
        with self._read() as conn:
            number = conn.execute(
                select(Trial.number)
                .where(
                    Trial.study_id == study_id,
                    Trial.state == TrialState.COMPLETED.value,
                    Trial.value.is_not(None),
                )
                .order_by(order, Trial.number)
                .limit(1)
            ).scalar_one_or_none()
        return None if number is None else self.trial(study_id, number)

    @translate_db_errors
    def count_by_state(self, study_id: int) -> dict[TrialState, int]:
        with self._read() as conn:
            rows = conn.execute(
                select(Trial.state, func.count()).where(Trial.study_id == study_id).group_by(Trial.state)
            ).all()
        counts = dict.fromkeys(TrialState, 0)
        counts.update({TrialState(state): n for state, n in rows})
        return counts

    @translate_db_errors
    def values_at(self, study_id: int, budget: float, *, exclude_trial: int | None = None) -> list[float]:
        """Every value the study's trials reported at ``budget`` (NaN ones left out)."""
        query = (
            select(IntermediateValue.value)
            .join(Trial, Trial.id == IntermediateValue.trial_id)
            .where(Trial.study_id == study_id, IntermediateValue.budget == float(budget))
        )
        if exclude_trial is not None:
            query = query.where(Trial.id != exclude_trial)
        with self._read() as conn:
            return [v for (v,) in conn.execute(query) if v is not None]
