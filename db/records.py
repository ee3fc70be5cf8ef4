"""Plain, immutable snapshots of rows, handed out by the store.

Callers never hold ORM objects: a snapshot can cross a process boundary (Ray pickles it) and
cannot lazily hit a database that another process is writing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from db.models import Direction, TrialState


@dataclass(frozen=True)
class SweepRecord:
    id: int
    name: str
    description: str
    tags: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class StudyRecord:
    id: int
    name: str
    direction: Direction
    objective: str | None
    search_space: dict[str, Any] | None
    algorithm: str
    algorithm_settings: dict[str, Any]
    tags: dict[str, Any]
    sweep: str | None
    heartbeat_timeout: float
    max_retries: int
    created_at: datetime


@dataclass(frozen=True)
class FrozenTrial:
    """One trial as it stood when it was read.

    ``intermediate_values`` maps each budget the trial reached to the objective's value there
    (NaN where the objective reported a non-finite value).
    """

    id: int
    study_id: int
    number: int
    state: TrialState
    params: dict[str, Any]
    budget: float | None
    value: float | None
    attrs: dict[str, Any]
    worker_id: str | None
    attempts: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None
    config_hash: str | None = None
    intermediate_values: dict[float, float] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def last_budget(self) -> float | None:
        """The largest budget this trial reported a value at."""
        return max(self.intermediate_values) if self.intermediate_values else None



@dataclass(frozen=True)
class FitRecord:
    """A stored scaling fit: its name, where its runs came from and its full report."""

    id: int
    name: str
    sweep: str | None
    source: str
    form: str
    report: dict[str, Any]
    created_at: datetime
