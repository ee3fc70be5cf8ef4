"""The store's hot-path statements (allocate, insert, claim, heartbeat, report, finish), built
once at import: constructing a Core statement costs more than running it, and each of these
runs once or more per trial.

Each is a single statement, so it is one round trip and atomic on its own; the parameters are
bound by name (``study``, ``trial``, ``worker``, ``now``, ...) at each call.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from db.models import IntermediateValue, Study, Trial, TrialState

TRIAL_COLUMNS = tuple(Trial.__table__.columns)

#: Hands out a block of ``n`` trial numbers: the study's counter after the block.
ALLOCATE = (
    update(Study)
    .where(Study.id == bindparam("study"))
    .values(next_trial_number=Study.next_trial_number + bindparam("n"))
    .returning(Study.next_trial_number)
)
INSERT_TRIAL = insert(Trial)
INSERT_HELD_TRIAL = INSERT_TRIAL.returning(*TRIAL_COLUMNS)
#: The study's tags, its row locked until the transaction ends (PostgreSQL; SQLite's write
#: lock already excludes every other writer).
STUDY_TAGS_LOCKED = select(Study.tags).where(Study.id == bindparam("study")).with_for_update()

#: The lowest-numbered queued trial, handed to ``worker``. ``SKIP LOCKED`` lets concurrent
#: claimers on PostgreSQL take different rows without waiting; the repeated state test makes a
#: row another claimer took first match nothing instead of being taken twice.
CLAIM = (
    update(Trial)
    .where(
        Trial.id
        == select(Trial.id)
        .where(Trial.study_id == bindparam("study"), Trial.state == TrialState.QUEUED.value)
        .order_by(Trial.number)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery(),
        Trial.state == TrialState.QUEUED.value,
    )
    .values(
        state=TrialState.RUNNING.value,
        worker_id=bindparam("worker"),
        attempts=Trial.attempts + 1,
        started_at=bindparam("now"),
        heartbeat_at=bindparam("now"),
    )
    .returning(*TRIAL_COLUMNS)
)
ANY_QUEUED = (
    select(Trial.id)
    .where(Trial.study_id == bindparam("study"), Trial.state == TrialState.QUEUED.value)
    .limit(1)
)
#: PostgreSQL's FOR UPDATE with LIMIT may return no row while queued rows remain (the row it
#: picked was claimed under it); a claim then looks again, this many times at most.
CLAIM_ATTEMPTS = 20

#: The condition every write on a trial's behalf carries: the worker still holds it.
_HELD = (
    Trial.id == bindparam("trial"),
    Trial.state == TrialState.RUNNING.value,
    Trial.worker_id == bindparam("worker"),
)
TOUCH = update(Trial).where(*_HELD).values(heartbeat_at=bindparam("now"))
FINISH = (
    update(Trial)
    .where(*_HELD)
    .values(
        state=bindparam("new_state"),
        value=bindparam("new_value"),
        finished_at=bindparam("now"),
        error=func.coalesce(bindparam("new_error"), Trial.error),
    )
)


def _upsert_value(stmt: Any) -> Any:
    return stmt.on_conflict_do_update(
        index_elements=["trial_id", "budget"],
        set_={"value": stmt.excluded.value, "reported_at": stmt.excluded.reported_at},
    )


#: SQLite: run after TOUCH in the same (locked) transaction.
SQLITE_REPORT = _upsert_value(
    sqlite.insert(IntermediateValue).values(
        trial_id=bindparam("trial"),
        budget=bindparam("at_budget"),
        value=bindparam("at_value"),
        reported_at=bindparam("now"),
    )
)
# PostgreSQL: heartbeat and upsert in one statement (one round trip); it returns no row when
# the worker does not hold the trial, and then writes nothing.
_PG_HELD = TOUCH.returning(Trial.id).cte("held")
PG_REPORT = (
    _upsert_value(
        postgresql.insert(IntermediateValue).from_select(
            ["trial_id", "budget", "value", "reported_at"],
            select(_PG_HELD.c.id, bindparam("at_budget"), bindparam("at_value"), bindparam("now")),
        )
    )
    .returning(IntermediateValue.trial_id)
    .add_cte(_PG_HELD)
)
