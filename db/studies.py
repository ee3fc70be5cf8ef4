"""Sweeps and studies in the store: create, read, list with their counts, stop and delete."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from db.connections import StoreBase, translate_db_errors, utcnow
from db.errors import DuplicateStudyError, StoreError, StudyNotFoundError
from db.models import Direction, Study, Sweep, Trial, TrialState
from db.records import (
    STOPPED_TAG,
    StudyRecord,
    StudySettings,
    StudySummary,
    SweepRecord,
    json_safe,
)
from db.statements import STUDY_TAGS_LOCKED

_STUDY_ROWS = select(
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


class Studies(StoreBase):
    """The store's sweeps and studies. A study's name is unique in the store, as is a sweep's."""

    # ------------------------------------------------------------------ sweeps

    @translate_db_errors
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
                            tags=json_safe(dict(tags or {})),
                            created_at=utcnow(),
                        )
                    )
            except IntegrityError:
                continue  # another process created it first
        found = self.get_sweep(name)
        assert found is not None
        return found

    @translate_db_errors
    def get_sweep(self, name: str) -> SweepRecord | None:
        with self._read() as conn:
            row = conn.execute(select(Sweep.__table__).where(Sweep.name == name)).one_or_none()
        return None if row is None else SweepRecord(**row._mapping)

    @translate_db_errors
    def list_sweeps(self) -> list[SweepRecord]:
        with self._read() as conn:
            rows = conn.execute(select(Sweep.__table__).order_by(Sweep.id)).all()
        return [SweepRecord(**row._mapping) for row in rows]

    # ----------------------------------------------------------------- studies

    @translate_db_errors
    def create_study(self, name: str, settings: StudySettings) -> StudyRecord:
        """Create a study (and its sweep, if new); :class:`DuplicateStudyError` if the name is taken."""
        _check_study_name(name)
        sweep_id = self.get_or_create_sweep(settings.sweep).id if settings.sweep else None
        try:
            with self._write() as conn:
                conn.execute(
                    insert(Study).values(
                        name=name,
                        direction=settings.direction.value,
                        objective=settings.objective,
                        search_space=settings.search_space,
                        algorithm=settings.algorithm,
                        algorithm_settings=settings.algorithm_settings,
                        tags=settings.tags,
                        sweep_id=sweep_id,
                        heartbeat_timeout=settings.heartbeat_timeout,
                        max_retries=settings.max_retries,
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

    @translate_db_errors
    def get_study(self, name: str) -> StudyRecord:
        """The study of that name; :class:`StudyNotFoundError` if there is none."""
        with self._read() as conn:
            row = conn.execute(_STUDY_ROWS.where(Study.name == name)).one_or_none()
        if row is None:
            raise StudyNotFoundError(
                f"unknown study {name!r} in {self.display_url}; `hpo study list` shows the studies there"
            )
        return _study_record(row)

    @translate_db_errors
    def list_studies(self, *, sweep: str | None = None) -> list[StudySummary]:
        """Every study (or a sweep's studies) with its counts by state and best value."""
        query = _STUDY_ROWS.order_by(Study.id)
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
        per_study: dict[int, list[Sequence[Any]]] = {}
        for row in stats:
            per_study.setdefault(row[0], []).append(row)
        return [_summarise(study, per_study.get(study.id, [])) for study in studies]

    @translate_db_errors
    def stop_study(self, name: str) -> StudyRecord:
        """Stop handing out the study's trials: asks get nothing from now on (queued trials stay
        queued), running trials finish, and sweeps on it end when they have. Kept as the tag
        ``stopped`` (with the time), so ``hpo study show`` and the dashboard say so."""
        study = self.get_study(name)
        with self._write() as conn:
            tags = conn.execute(STUDY_TAGS_LOCKED, {"study": study.id}).scalar_one() or {}
            if not tags.get(STOPPED_TAG):
                tags = {**tags, STOPPED_TAG: utcnow().isoformat(timespec="seconds")}
                conn.execute(update(Study).where(Study.id == study.id).values(tags=tags))
        return self.get_study(name)

    @translate_db_errors
    def delete_study(self, name: str) -> None:
        """Delete a study with all its trials and intermediate values."""
        study = self.get_study(name)
        with self._write() as conn:
            conn.execute(delete(Study).where(Study.id == study.id))


def _check_study_name(name: str) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise StoreError(f"study name {name!r} is invalid; expected 1 to 255 characters")


def _study_record(row: Row[Any]) -> StudyRecord:
    data = dict(row._mapping)
    data["direction"] = Direction(data["direction"])
    return StudyRecord(**data)


def _summarise(study: StudyRecord, rows: Sequence[Sequence[Any]]) -> StudySummary:
    counts = dict.fromkeys(TrialState, 0)
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
