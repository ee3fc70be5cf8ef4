"""The study store: the one place where studies and trials are created, claimed and reported.

Every worker, on every machine, coordinates through these calls and nothing else. Each call is
one short transaction. The hot path (create, claim, report, finish) is written as single Core
statements against the ORM tables: one round trip each, no ORM identity map to fill, so the
time per trial stays flat as a study grows (the index on (study_id, state, number) finds the
next queued trial without scanning the study).

Claiming is atomic on both backends: on PostgreSQL the candidate row is locked with
``FOR UPDATE SKIP LOCKED`` so concurrent claimers take different rows without waiting; on
SQLite the claim runs under ``BEGIN IMMEDIATE``, which serialises writers. A worker must hold a
trial (state running, its worker id) to report on it or finish it, so a trial that was
re-queued after its worker went silent can never be finished twice.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import (
    Connection,
    Row,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError

from db.engine import (
    WriterLock,
    create_autocommit_engine,
    create_store_engine,
    display_url,
    resolve_url,
    storage_errors,
)
from db.errors import (
    DuplicateStudyError,
    FitNotFoundError,
    StoreError,
    StudyNotFoundError,
    TrialNotFoundError,
    TrialNotHeldError,
)
from db.migrate import ensure_schema
from db.models import (
    SORTABLE_TRIAL_COLUMNS,
    Direction,
    IntermediateValue,
    ScalingFit,
    Study,
    Sweep,
    Trial,
    TrialState,
)
from db.records import FitRecord, FrozenTrial, StudyRecord, SweepRecord

P = ParamSpec("P")
R = TypeVar("R")



# The hot path's statements, built once: constructing a statement costs more than running it.
_TRIAL_COLUMNS = tuple(Trial.__table__.columns)
_ALLOCATE = (
    update(Study)
    .where(Study.id == bindparam("study"))
    .values(next_trial_number=Study.next_trial_number + bindparam("n"))
    .returning(Study.next_trial_number)
)
_INSERT_TRIAL = insert(Trial)
_INSERT_HELD_TRIAL = _INSERT_TRIAL.returning(*_TRIAL_COLUMNS)
_STUDY_TAGS_LOCKED = select(Study.tags).where(Study.id == bindparam("study")).with_for_update()
_CLAIM = (
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
    .returning(*_TRIAL_COLUMNS)
)
_ANY_QUEUED = (
    select(Trial.id)
    .where(Trial.study_id == bindparam("study"), Trial.state == TrialState.QUEUED.value)
    .limit(1)
)
# PostgreSQL's FOR UPDATE with LIMIT may return no row while queued rows remain (the row it
# picked was claimed under it); a claim then looks again, this many times at most.
_CLAIM_ATTEMPTS = 20
#: The columns a page of trials can be sorted by.
_SORTABLE = {name: Trial.__table__.c[name] for name in SORTABLE_TRIAL_COLUMNS}

#: The study tag that marks a stopped study (its value: when it was stopped).
STOPPED_TAG = "stopped"

#: Trial attrs the search algorithms write; an objective's own facts may not overwrite them.
_ALGORITHM_ATTRS = frozenset({"bracket", "rung", "s", "parent", "kind", "target", "mutant"})

_HELD = (
    Trial.id == bindparam("trial"),
    Trial.state == TrialState.RUNNING.value,
    Trial.worker_id == bindparam("worker"),
)
_FIT_ROWS = select(
    ScalingFit.id,
    ScalingFit.name,
    Sweep.name.label("sweep"),
    ScalingFit.source,
    ScalingFit.form,
    ScalingFit.report,
    ScalingFit.created_at,
).outerjoin(Sweep, Sweep.id == ScalingFit.sweep_id)
_TOUCH = update(Trial).where(*_HELD).values(heartbeat_at=bindparam("now"))
_FINISH = (
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


# SQLite: run after _TOUCH in the same (locked) transaction.
_SQLITE_REPORT = _upsert_value(
    sqlite.insert(IntermediateValue).values(
        trial_id=bindparam("trial"),
        budget=bindparam("at_budget"),
        value=bindparam("at_value"),
        reported_at=bindparam("now"),
    )
)
# PostgreSQL: heartbeat and upsert in one statement (one round trip); it returns no row when
# the worker does not hold the trial, and then writes nothing.
_PG_HELD = _TOUCH.returning(Trial.id).cte("held")
_PG_REPORT = (
    _upsert_value(
        postgresql.insert(IntermediateValue).from_select(
            ["trial_id", "budget", "value", "reported_at"],
            select(_PG_HELD.c.id, bindparam("at_budget"), bindparam("at_value"), bindparam("now")),
        )
    )
    .returning(IntermediateValue.trial_id)
    .add_cte(_PG_HELD)
)


def utcnow() -> datetime:
    """Naive UTC: how every timestamp in the store is written and compared."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class StudySummary:
    """A study with its trial counts, for listings."""

    study: StudyRecord
    counts: dict[TrialState, int]
    best_value: float | None
    last_activity: datetime | None

    @property
    def n_trials(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class NewTrial:
    """A trial an algorithm decided to run: see :meth:`Store.propose`."""

    params: dict[str, Any]
    budget: float | None
    attrs: dict[str, Any]
    config_hash: str | None = None


@dataclass(frozen=True)
class Recovery:
    """What :meth:`Store.recover_stale` or :meth:`Store.release_worker` did to lost running
    trials: their numbers, re-queued or failed."""

    requeued: tuple[int, ...]
    failed: tuple[int, ...]


def _translate_db_errors(method: Callable[P, R]) -> Callable[P, R]:
    """Turn a lost or refused database connection into a one-line StoreError."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        store = args[0]
        assert isinstance(store, Store)
        with storage_errors(store.url):
            return method(*args, **kwargs)

    return wrapper


def _json_safe(value: Any) -> Any:
    """Plain JSON types: numpy scalars become Python numbers, tuples become lists."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return value.item()
    return value


def _storable(value: float | None) -> float | None:
    """SQLite cannot hold NaN: it is stored as NULL (and read back as NaN where it matters)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


class Store:
    """The study store on the database named by one URL.

    Opening a store checks the schema revision and upgrades a database that has none.
    Use :func:`open_store` to share one store (and its connection pool) per URL and process.
    """

    def __init__(self, url: str | URL | None = None, *, auto_upgrade: bool = True) -> None:
        self.url = resolve_url(url) if not isinstance(url, URL) else url
        self.display_url = display_url(self.url)
        self.engine = create_store_engine(self.url)
        self._writer_lock = WriterLock(self.url)
        self._autocommit_engine = create_autocommit_engine(self.url, self.engine)
        try:
            with storage_errors(self.url, "cannot open storage"):
                ensure_schema(self.engine, auto_upgrade_empty=auto_upgrade)
        except StoreError:
            self.close()
            raise

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.url.get_backend_name()

    def close(self) -> None:
        self.engine.dispose()
        self._autocommit_engine.dispose()

    @contextmanager
    def _write(self, *, single_statement: bool = False) -> Iterator[Connection]:
        """A write transaction; ``single_statement`` lets PostgreSQL skip BEGIN/COMMIT round trips.

        One statement is atomic on its own, so in autocommit mode it costs one round trip
        instead of three. SQLite always takes the write lock up front (no round trips there).
        """
        engine = self._autocommit_engine if single_statement else self.engine
        with engine.connect() as conn:
            conn.execution_options(hpo_write=True)
            with self._writer_lock(), conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    # ------------------------------------------------------------------ scaling fits

    @_translate_db_errors
    def save_fit(
        self, name: str, *, source: str, form: str, report: Mapping[str, Any], sweep: str | None = None
    ) -> FitRecord:
        """Keep a fitted law under ``name``, replacing an earlier fit of that name (a refit
        after more trials finished is the same law, better informed)."""
        sweep_id = None
        if sweep is not None:
            found = self.get_sweep(sweep)
            sweep_id = None if found is None else found.id
        values = {"source": source, "form": form, "report": _json_safe(dict(report)), "sweep_id": sweep_id, "created_at": utcnow()}
        with self._write() as conn:
            updated = conn.execute(update(ScalingFit).where(ScalingFit.name == name).values(**values)).rowcount
            if not updated:
                conn.execute(insert(ScalingFit).values(name=name, **values))
        return self.get_fit(name)

    @_translate_db_errors
    def get_fit(self, name: str) -> FitRecord:
        with self._read() as conn:
            row = conn.execute(_FIT_ROWS.where(ScalingFit.name == name)).one_or_none()
        if row is None:
            known = [f.name for f in self.list_fits()]
            hint = f"; stored fits: {', '.join(known)}" if known else "; none is stored yet (hpo scaling fit)"
            raise FitNotFoundError(f"no scaling fit named {name!r}{hint}")
        return FitRecord(**row._mapping)

    @_translate_db_errors
    def fit_versions(self) -> list[tuple[str, datetime]]:
        """(name, saved at) of every fit, by name: enough to tell a cache what changed without
        reading the reports (each holds its bootstrap, so it is the large part)."""
        with self._read() as conn:
            return [(r.name, r.created_at) for r in conn.execute(select(ScalingFit.name, ScalingFit.created_at).order_by(ScalingFit.name))]

    @_translate_db_errors
    def list_fits(self) -> list[FitRecord]:
        with self._read() as conn:
            rows = conn.execute(_FIT_ROWS.order_by(ScalingFit.name)).all()
        return [FitRecord(**row._mapping) for row in rows]

    # ------------------------------------------------------------------ sweeps

    @_translate_db_errors
    def get_or_create_sweep(
        self, name: str, *, description: str = "", tags: Mapping[str, Any] | None = None
    ) -> SweepRecord:
        """The sweep of that name, created if it does not exist yet (safe to race)."""
        for _ in range(2):
            found = self.get_sweep(name)
            if found is not None:
                return found
            try:
                with self._write() as conn:
                    conn.execute(
                        insert(Sweep).values(
                            name=name,
                            description=description,
                            tags=_json_safe(dict(tags or {})),
                            created_at=utcnow(),
                        )
                    )
            except IntegrityError:
                continue  # another process created it first
        found = self.get_sweep(name)
        assert found is not None
        return found

    @_translate_db_errors
    def get_sweep(self, name: str) -> SweepRecord | None:
        with self._read() as conn:
            row = conn.execute(select(Sweep.__table__).where(Sweep.name == name)).one_or_none()
        return None if row is None else SweepRecord(**row._mapping)

    @_translate_db_errors
    def list_sweeps(self) -> list[SweepRecord]:
        with self._read() as conn:
            rows = conn.execute(select(Sweep.__table__).order_by(Sweep.id)).all()
        return [SweepRecord(**row._mapping) for row in rows]

    # ----------------------------------------------------------------- studies

    @_translate_db_errors
    def create_study(
        self,
        name: str,
        *,
        direction: Direction | str = Direction.MINIMIZE,
        objective: str | None = None,
        search_space: Mapping[str, Any] | None = None,
        algorithm: str = "random",
        algorithm_settings: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        sweep: str | None = None,
        heartbeat_timeout: float = 60.0,
        max_retries: int = 2,
    ) -> StudyRecord:
        """Create a study; :class:`DuplicateStudyError` if the name is taken."""
        _check_study_name(name)
        direction = _parse_direction(direction)
        if not heartbeat_timeout > 0:
            raise StoreError(f"heartbeat_timeout must be > 0 seconds, got {heartbeat_timeout!r}")
        if max_retries < 0:
            raise StoreError(f"max_retries must be >= 0, got {max_retries!r}")
        sweep_id = self.get_or_create_sweep(sweep).id if sweep else None
        try:
            with self._write() as conn:
                conn.execute(
                    insert(Study).values(
                        name=name,
                        direction=direction.value,
                        objective=objective,
                        search_space=_json_safe(search_space) if search_space is not None else None,
                        algorithm=algorithm,
                        algorithm_settings=_json_safe(dict(algorithm_settings or {})),
                        tags=_json_safe(dict(tags or {})),
                        sweep_id=sweep_id,
                        heartbeat_timeout=float(heartbeat_timeout),
                        max_retries=int(max_retries),
                        next_trial_number=0,
                        created_at=utcnow(),
                    )
                )
        except IntegrityError:
            raise DuplicateStudyError(
                f"a study named {name!r} already exists in {self.display_url}; "
                "choose another name, or load it (load_if_exists=True)"
            ) from None
        return self.get_study(name)

    @_translate_db_errors
    def get_study(self, name: str) -> StudyRecord:
        """The study of that name; :class:`StudyNotFoundError` if there is none."""
        with self._read() as conn:
            row = conn.execute(_study_select().where(Study.name == name)).one_or_none()
        if row is None:
            raise StudyNotFoundError(
                f"unknown study {name!r} in {self.display_url}; `hpo study list` shows the studies there"
            )
        return _study_record(row)

    @_translate_db_errors
    def list_studies(self, *, sweep: str | None = None) -> list[StudySummary]:
        """Every study (or a sweep's studies) with its counts by state and best value."""
        query = _study_select().order_by(Study.id)
        if sweep is not None:
            query = query.where(Sweep.name == sweep)
        with self._read() as conn:
            studies = [_study_record(row) for row in conn.execute(query)]
            stats = conn.execute(
                select(
                    Trial.study_id,
                    Trial.state,
                    func.count(),
                    func.min(Trial.value),
                    func.max(Trial.value),
                    func.max(Trial.created_at),
                    func.max(Trial.heartbeat_at),
                    func.max(Trial.finished_at),
                ).group_by(Trial.study_id, Trial.state)
            ).all()
        per_study: dict[int, list[Row[Any]]] = {}
        for row in stats:
            per_study.setdefault(row[0], []).append(row)
        return [_summarise(study, per_study.get(study.id, [])) for study in studies]

    @_translate_db_errors
    def stop_study(self, name: str) -> StudyRecord:
        """Stop handing out the study's trials: asks get nothing from now on (queued trials stay
        queued), running trials finish, and sweeps on it end when they have. Kept as the tag
        ``stopped`` (with the time), so ``hpo study show`` and the dashboard say so."""
        study = self.get_study(name)
        with self._write() as conn:
            tags = conn.execute(_STUDY_TAGS_LOCKED, {"study": study.id}).scalar_one() or {}
            if not tags.get(STOPPED_TAG):
                tags = {**tags, STOPPED_TAG: utcnow().isoformat(timespec="seconds")}
                conn.execute(update(Study).where(Study.id == study.id).values(tags=tags))
        return self.get_study(name)

    @_translate_db_errors
    def delete_study(self, name: str) -> None:
        """Delete a study with all its trials and intermediate values."""
        study = self.get_study(name)
        with self._write() as conn:
            conn.execute(delete(Study).where(Study.id == study.id))

    # ------------------------------------------------------------------ trials

    @_translate_db_errors
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
                _INSERT_TRIAL,
                [
                    {
                        "study_id": study_id,
                        "number": first + i,
                        "state": TrialState.QUEUED.value,
                        "params": _json_safe(p),
                        "config_hash": config_hashes[i] if config_hashes else None,
                        "budget": budget,
                        "attrs": _json_safe(dict(attrs or {})),
                        "attempts": 0,
                        "created_at": now,
                    }
                    for i, p in enumerate(params)
                ],
            )
        return list(range(first, first + len(params)))

    @_translate_db_errors
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
            tags = conn.execute(_STUDY_TAGS_LOCKED, {"study": study_id}).scalar_one()
            if (tags or {}).get(STOPPED_TAG):
                return None
            queued = conn.execute(_CLAIM, {"study": study_id, "worker": worker_id, "now": utcnow()}).one_or_none()
            if queued is not None:
                return _trial(queued)
            trials = (
                history.refresh(conn, study_id)
                if history is not None
                else _read_trials(conn, study_id, None, with_intermediate=False)
            )
            new = decide(trials)
            if new is None:
                return None
            now = utcnow()
            number = self._allocate_numbers(conn, study_id, 1)
            row = conn.execute(
                _INSERT_HELD_TRIAL,
                {
                    "study_id": study_id,
                    "number": number,
                    "state": TrialState.RUNNING.value,
                    "params": _json_safe(new.params),
                    "config_hash": new.config_hash,
                    "budget": new.budget,
                    "attrs": _json_safe(new.attrs),
                    "worker_id": worker_id,
                    "attempts": 1,
                    "created_at": now,
                    "started_at": now,
                    "heartbeat_at": now,
                },
            ).one()
        return _trial(row)

    @_translate_db_errors
    def values_at(self, study_id: int, budget: float, *, exclude_trial: int | None = None) -> list[float]:
        """Every value the study's trials reported at ``budget`` (NaN ones left out)."""
        query = (
            select(IntermediateValue.value)
            .join(Trial, Trial.id == IntermediateValue.trial_id)
            .where(Trial.study_id == study_id, IntermediateValue.budget == float(budget), IntermediateValue.value.is_not(None))
        )
        if exclude_trial is not None:
            query = query.where(Trial.id != exclude_trial)
        with self._read() as conn:
            return [v for (v,) in conn.execute(query)]

    def _allocate_numbers(self, conn: Connection, study_id: int, n: int) -> int:
        end = conn.execute(_ALLOCATE, {"study": study_id, "n": n}).scalar_one_or_none()
        if end is None:
            raise StudyNotFoundError(f"unknown study id {study_id} in {self.display_url}")
        return int(end) - n

    @_translate_db_errors
    def claim(self, study_id: int, worker_id: str) -> FrozenTrial | None:
        """Atomically hand the lowest-numbered queued trial to ``worker_id``; None if none is queued."""
        for _ in range(_CLAIM_ATTEMPTS):
            with self._write(single_statement=True) as conn:
                row = conn.execute(
                    _CLAIM, {"study": study_id, "worker": worker_id, "now": utcnow()}
                ).one_or_none()
                if row is not None:
                    return _trial(row)
                if conn.execute(_ANY_QUEUED, {"study": study_id}).first() is None:
                    return None
        return None

    @_translate_db_errors
    def report(self, trial_id: int, worker_id: str, budget: float, value: float) -> None:
        """Record the value at ``budget`` (replacing an earlier one there); also a heartbeat."""
        params = {
            "trial": trial_id,
            "worker": worker_id,
            "at_budget": float(budget),
            "at_value": _storable(value),
            "now": utcnow(),
        }
        if self.backend == "postgresql":
            with self._write(single_statement=True) as conn:
                if conn.execute(_PG_REPORT, params).first() is None:
                    raise self._not_held(conn, trial_id, worker_id)
            return
        with self._write() as conn:
            self._touch(conn, trial_id, worker_id, params["now"])
            conn.execute(_SQLITE_REPORT, params)

    @_translate_db_errors
    def set_trial_attrs(self, trial_id: int, worker_id: str, attrs: Mapping[str, Any]) -> None:
        """Add facts the objective learned while running (a model's parameter count, the
        tokens it trained on) to a held trial's attrs; also a heartbeat. A key the algorithms
        set (bracket, rung, parent, ...) keeps its value: :class:`ValueError` if asked to change it."""
        with self._write() as conn:
            now = utcnow()
            self._touch(conn, trial_id, worker_id, now)
            current = conn.execute(select(Trial.attrs).where(Trial.id == trial_id)).scalar_one() or {}
            new = _json_safe(dict(attrs))
            clash = sorted(k for k in new if k in current and current[k] != new[k] and k in _ALGORITHM_ATTRS)
            if clash:
                raise ValueError(f"trial attrs {', '.join(clash)} belong to the search algorithm; use other names")
            conn.execute(update(Trial).where(Trial.id == trial_id).values(attrs={**current, **new}))

    @_translate_db_errors
    def heartbeat(self, trial_id: int, worker_id: str) -> None:
        """Tell the store ``worker_id`` is still working on the trial."""
        with self._write(single_statement=True) as conn:
            self._touch(conn, trial_id, worker_id, utcnow())

    def _touch(self, conn: Connection, trial_id: int, worker_id: str, now: datetime) -> None:
        held = conn.execute(_TOUCH, {"trial": trial_id, "worker": worker_id, "now": now}).rowcount
        if held != 1:
            raise self._not_held(conn, trial_id, worker_id)

    @_translate_db_errors
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
                _FINISH,
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

    @_translate_db_errors
    def recover_stale(self, study_id: int, *, now: datetime | None = None) -> Recovery:
        """Re-queue running trials whose worker stopped beating; fail those out of retries.

        A trial is stale when its last heartbeat is older than the study's heartbeat timeout.
        It goes back to the queue (keeping its number, so it is claimed next) until it has been
        tried ``1 + max_retries`` times, then it is marked failed with the reason. Safe to run
        from any number of processes at once: each row is moved by one of them only.
        """
        now = now or utcnow()
        with self._write() as conn:
            timeout, max_retries = self._retry_policy(conn, study_id)
            cutoff = now - timedelta(seconds=timeout)
            stale = conn.execute(
                select(Trial.id, Trial.number, Trial.worker_id, Trial.attempts, Trial.heartbeat_at).where(
                    Trial.study_id == study_id,
                    Trial.state == TrialState.RUNNING.value,
                    Trial.heartbeat_at < cutoff,
                )
            ).all()
            reasons = {
                row.id: f"attempt {row.attempts} lost: worker {row.worker_id!r} sent no heartbeat for "
                f"{(now - row.heartbeat_at).total_seconds():.0f}s (timeout {timeout:g}s)"
                for row in stale
            }
            return self._requeue_or_fail(
                conn, stale, reasons, max_retries, now, Trial.heartbeat_at < cutoff, retry=True
            )

    @_translate_db_errors
    def release_worker(self, study_id: int, worker_id: str, reason: str, *, retry: bool = True) -> Recovery:
        """Give back the running trials of a worker known to be dead, without waiting for
        its heartbeat to time out: re-queued while retries last (``retry``), else failed.

        ``retry=False`` fails them at once: for a death that would recur (the worker ran out
        of memory on that configuration). A trial the worker finished meanwhile is untouched.
        """
        now = utcnow()
        with self._write() as conn:
            _, max_retries = self._retry_policy(conn, study_id)
            held = conn.execute(
                select(Trial.id, Trial.number, Trial.worker_id, Trial.attempts).where(
                    Trial.study_id == study_id,
                    Trial.state == TrialState.RUNNING.value,
                    Trial.worker_id == worker_id,
                )
            ).all()
            reasons = {row.id: f"attempt {row.attempts} lost: {reason}" for row in held}
            return self._requeue_or_fail(
                conn, held, reasons, max_retries, now, Trial.worker_id == worker_id, retry=retry
            )

    @staticmethod
    def _retry_policy(conn: Connection, study_id: int) -> tuple[float, int]:
        row = conn.execute(
            select(Study.heartbeat_timeout, Study.max_retries).where(Study.id == study_id)
        ).one_or_none()
        if row is None:
            raise StudyNotFoundError(f"unknown study id {study_id}")
        return float(row.heartbeat_timeout), int(row.max_retries)

    @staticmethod
    def _requeue_or_fail(
        conn: Connection,
        rows: Sequence[Row[Any]],
        reasons: Mapping[int, str],
        max_retries: int,
        now: datetime,
        still: Any,
        *,
        retry: bool,
    ) -> Recovery:
        """Move each lost running trial back to the queue, or to failed when it is out of
        retries (or ``retry`` is off); ``still`` is the condition that must hold for the row
        to move, so a trial another process already moved or finished is left alone."""
        requeued: list[int] = []
        failed: list[int] = []
        for row in rows:
            lost = reasons[row.id]
            give_up = not retry or row.attempts > max_retries
            values: dict[str, Any] = (
                {
                    "state": TrialState.FAILED.value,
                    "finished_at": now,
                    "error": f"{lost}; failed after {row.attempts} attempts"
                    + (f" (max_retries={max_retries})" if retry else " (not retried)"),
                }
                if give_up
                else {
                    "state": TrialState.QUEUED.value,
                    "worker_id": None,
                    "heartbeat_at": None,
                    "error": f"{lost}; re-queued",
                }
            )
            moved = conn.execute(
                update(Trial)
                .where(Trial.id == row.id, Trial.state == TrialState.RUNNING.value, still)
                .values(**values)
            ).rowcount
            if moved == 1:
                (failed if give_up else requeued).append(row.number)
        return Recovery(tuple(requeued), tuple(failed))

    @_translate_db_errors
    def trials(
        self,
        study_id: int,
        *,
        states: Sequence[TrialState] | None = None,
        with_intermediate: bool = True,
    ) -> list[FrozenTrial]:
        """The study's trials in number order, as one consistent snapshot."""
        with self._read() as conn:
            return _read_trials(conn, study_id, states, with_intermediate)

    @_translate_db_errors
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
        ``ORDER BY value IS NULL, ...`` would sort every trial of the study for each page, so
        a page's cost would grow with the study instead of with the page."""
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
                    parts.append((where + [column.is_not(None)], order, offset, limit))
                if offset + limit > with_value:
                    start = max(0, offset - with_value)
                    parts.append((where + [column.is_(None)], [tie], start, offset + limit - max(offset, with_value)))
            rows = [
                row
                for part_where, part_order, part_offset, part_limit in parts
                for row in conn.execute(
                    select(Trial.__table__).where(*part_where).order_by(*part_order).offset(part_offset).limit(part_limit)
                ).all()
            ]
            curves: dict[int, dict[float, float]] = {}
            if rows:
                ivs = select(IntermediateValue.trial_id, IntermediateValue.budget, IntermediateValue.value).where(
                    IntermediateValue.trial_id.in_([row.id for row in rows])
                )
                for trial_id, budget, value in conn.execute(ivs.order_by(IntermediateValue.trial_id, IntermediateValue.budget)):
                    curves.setdefault(trial_id, {})[budget] = math.nan if value is None else value
        return total, [_trial(row, curves.get(row.id, {})) for row in rows]

    @_translate_db_errors
    def read_history(self, history: HistoryCache, study_id: int) -> list[FrozenTrial]:
        """``history`` brought up to date in a read of its own, for a reader that decides
        nothing (the dashboard): every trial of the study, finished ones read only once."""
        with self._read() as conn:
            return history.refresh(conn, study_id)

    @_translate_db_errors
    def trial(self, study_id: int, number: int) -> FrozenTrial:
        """One trial with its intermediate values; :class:`TrialNotFoundError` if absent."""
        with self._read() as conn:
            row = conn.execute(
                select(Trial.__table__).where(Trial.study_id == study_id, Trial.number == number)
            ).one_or_none()
            if row is None:
                raise TrialNotFoundError(f"study has no trial number {number}")
            curve = {
                budget: math.nan if value is None else value
                for budget, value in conn.execute(
                    select(IntermediateValue.budget, IntermediateValue.value)
                    .where(IntermediateValue.trial_id == row.id)
                    .order_by(IntermediateValue.budget)
                )
            }
        return _trial(row, curve)

    @_translate_db_errors
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

    @_translate_db_errors
    def count_by_state(self, study_id: int) -> dict[TrialState, int]:
        with self._read() as conn:
            rows = conn.execute(
                select(Trial.state, func.count()).where(Trial.study_id == study_id).group_by(Trial.state)
            ).all()
        counts = {state: 0 for state in TrialState}
        counts.update({TrialState(state): n for state, n in rows})
        return counts


# ---------------------------------------------------------------------- helpers


def _check_study_name(name: str) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise StoreError(f"study name {name!r} is invalid; expected 1 to 255 characters")


def _parse_direction(direction: Direction | str) -> Direction:
    try:
        return Direction(direction)
    except ValueError:
        raise StoreError(f"direction {direction!r} is invalid; expected 'minimize' or 'maximize'") from None


def _study_select() -> Any:
    return select(
        Study.id,
        Study.name,
        Study.direction,
        Study.objective,
        Study.search_space,
        Study.algorithm,
        Study.algorithm_settings,
        Study.tags,
        Sweep.name.label("sweep"),
        Study.heartbeat_timeout,
        Study.max_retries,
        Study.created_at,
    ).outerjoin(Sweep, Sweep.id == Study.sweep_id)


def _study_record(row: Row[Any]) -> StudyRecord:
    data = dict(row._mapping)
    data["direction"] = Direction(data["direction"])
    return StudyRecord(**data)


def _trial(row: Row[Any], curve: dict[float, float] | None = None) -> FrozenTrial:
    data = dict(row._mapping)
    data["state"] = TrialState(data["state"])
    return FrozenTrial(**data, intermediate_values=curve or {})


def _read_trials(
    conn: Connection, study_id: int, states: Sequence[TrialState] | None, with_intermediate: bool
) -> list[FrozenTrial]:
    query = select(Trial.__table__).where(Trial.study_id == study_id).order_by(Trial.number)
    if states is not None:
        query = query.where(Trial.state.in_([s.value for s in states]))
    rows = conn.execute(query).all()
    curves: dict[int, dict[float, float]] = {}
    if with_intermediate and rows:
        ivs = (
            select(IntermediateValue.trial_id, IntermediateValue.budget, IntermediateValue.value)
            .join(Trial, Trial.id == IntermediateValue.trial_id)
            .where(Trial.study_id == study_id)
            .order_by(IntermediateValue.trial_id, IntermediateValue.budget)
        )
        for trial_id, budget, value in conn.execute(ivs):
            curves.setdefault(trial_id, {})[budget] = math.nan if value is None else value
    return [_trial(row, curves.get(row.id, {})) for row in rows]


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
    kind: select(IntermediateValue.trial_id, IntermediateValue.budget, IntermediateValue.value)
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
        if len(self._open) > self.OPEN_LISTED:
            kind, params = "from", {"study": study_id, "lowest": min(self._open)}
        else:
            kind, params = "listed", {"study": study_id, "last": self._last, "open": sorted(self._open)}
        rows = conn.execute(_CHANGED_TRIALS[kind], params).all()
        curves: dict[int, dict[float, float]] = {}
        if self.with_intermediate and rows:
            # after the rows (PostgreSQL reads each statement at its own snapshot): a trial read
            # as finished had reported all its values before, so none is missed and kept
            for trial_id, budget, value in conn.execute(_CHANGED_CURVES[kind], params):
                curves.setdefault(trial_id, {})[budget] = math.nan if value is None else value
        for row in rows:
            trial = _trial(row, curves.get(row.id))
            self._trials[trial.number] = trial  # new numbers only ever grow: dict order is number order
            self._last = max(self._last, trial.number)
            if trial.state.is_finished:
                self._open.discard(trial.number)
            else:
                self._open.add(trial.number)
        return list(self._trials.values())


def _summarise(study: StudyRecord, rows: list[Row[Any]]) -> StudySummary:
    counts = {state: 0 for state in TrialState}
    best: float | None = None
    last: datetime | None = None
    for _, state, n, vmin, vmax, created, beat, finished in rows:
        counts[TrialState(state)] = n
        if state == TrialState.COMPLETED.value:
            best = vmax if study.direction.maximize else vmin
        for stamp in (created, beat, finished):
            if stamp is not None and (last is None or stamp > last):
                last = stamp
    return StudySummary(study=study, counts=counts, best_value=best, last_activity=last)


_STORES: dict[str, Store] = {}


def open_store(url: str | Store | None = None) -> Store:
    """The process's store for ``url`` (default: ``$HPO_STORAGE``, else ``sqlite:///hpo.db``).

    Stores are shared per URL so that many studies opened in one process share one pool and
    the schema is checked once.
    """
    if isinstance(url, Store):
        return url
    resolved = resolve_url(url)
    key = resolved.render_as_string(hide_password=False)
    store = _STORES.get(key)
    if store is None:
        store = _STORES[key] = Store(resolved)
    return store
