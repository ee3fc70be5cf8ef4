"""Plain, immutable snapshots of rows, handed out by the store.

Callers never hold ORM objects: a snapshot can cross a process boundary (Ray pickles it) and
cannot lazily hit a database that another process is writing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from db.errors import StoreError
from db.models import Direction, TrialState

#: The study tag that marks a stopped study (its value: when it was stopped).
STOPPED_TAG = "stopped"


def json_safe(value: Any) -> Any:
    """Plain JSON types: numpy scalars become Python numbers, tuples become lists."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return value.item()
    return value


@dataclass(frozen=True)
class SweepRecord:
    id: int
    name: str
    description: str
    tags: dict[str, Any]
    created_at: datetime


def _bounded(default: Any, **bounds: float) -> Any:
    """A field whose value must lie within ``bounds``: pydantic's names (gt, ge, le for numbers;
    min_length, max_length for text), so the REST API's body model can publish them as is."""
    return field(default=default, metadata=bounds)


_TEXT_BOUNDS = {"min_length": "at least {} characters", "max_length": "at most {} characters"}
_NUMBER_BOUNDS = {"gt": "> {}", "ge": ">= {}", "le": "<= {}"}


@dataclass(frozen=True)
class StudySettings:
    """Everything a study is created with but its name: the one home of the settings' defaults
    and rules, which ``hpo.create_study``, ``hpo study create`` and ``POST /api/studies`` take.

    Constructing one validates and normalises it (a :class:`~db.errors.StoreError` with a
    one-line message when a value is wrong): ``direction`` may be given as its name; the
    mappings become plain JSON (numpy scalars to numbers, tuples to lists; None to empty);
    numbers and text must lie within their field's bounds (its ``metadata``).
    """

    direction: Direction = Direction.MINIMIZE
    objective: str | None = _bounded(None, max_length=255)
    #: A search space as ``SearchSpace.to_dict()`` writes it; None for a study fed by hand.
    search_space: dict[str, Any] | None = None
    algorithm: str = "random"
    algorithm_settings: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    #: The sweep the study belongs to (created when new); None for none.
    sweep: str | None = _bounded(None, min_length=1, max_length=255)
    #: A running trial whose heartbeat is older than this many seconds is presumed lost. At
    #: most 10**9: recovery subtracts it from the present, which past that nears year 1.
    heartbeat_timeout: float = _bounded(60.0, gt=0, le=10**9)
    #: How many times a lost trial is re-queued before it is marked failed. The column is a
    #: 32-bit integer on PostgreSQL.
    max_retries: int = _bounded(2, ge=0, le=2**31 - 1)

    def __post_init__(self) -> None:
        put = object.__setattr__
        try:
            put(self, "direction", Direction(self.direction))
        except ValueError:
            raise StoreError(f"direction {self.direction!r} is invalid; expected 'minimize' or 'maximize'") from None
        put(self, "heartbeat_timeout", _number("heartbeat_timeout", self.heartbeat_timeout, float))
        put(self, "max_retries", _number("max_retries", self.max_retries, int))
        for name in ("search_space", "algorithm_settings", "tags"):
            value = getattr(self, name)
            if value is None and name == "search_space":
                continue
            if value is not None and not isinstance(value, Mapping):
                raise StoreError(f"{name} must be a mapping, got {type(value).__name__}")
            put(self, name, _json(name, dict(value or {})))
        for f in fields(StudySettings):
            _check_bounds(f.name, getattr(self, f.name), f.metadata)


def _number(name: str, value: Any, kind: type) -> Any:
    if isinstance(value, bool) or (not isinstance(value, (int, float)) and not hasattr(value, "item")):
        raise StoreError(f"{name} must be a number, got {value!r}")
    number = kind(value)
    if kind is int and number != value:
        raise StoreError(f"{name} must be a whole number, got {value!r}")
    return number


def _json(name: str, value: dict[str, Any]) -> dict[str, Any]:
    plain = json_safe(value)
    try:
        json.dumps(plain)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{name} must hold only JSON values (numbers, text, lists, mappings): {exc}") from None
    return plain


def _check_bounds(name: str, value: Any, bounds: Mapping[str, float]) -> None:
    if value is None:
        return
    for bound, limit in bounds.items():
        if bound in _TEXT_BOUNDS:
            ok = len(value) >= limit if bound == "min_length" else len(value) <= limit
            wanted = _TEXT_BOUNDS[bound].format(limit)
        else:
            ok = {"gt": value > limit, "ge": value >= limit, "le": value <= limit}[bound]
            wanted = _NUMBER_BOUNDS[bound].format(limit)
        if not ok:
            raise StoreError(f"{name} must be {wanted}, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class StudyRecord(StudySettings):
    """A stored study: its settings, as written when it was created, with its name and id."""

    id: int
    name: str
    created_at: datetime

    def __post_init__(self) -> None:
        """Nothing to check: the settings were validated when the study was written, and a
        study written under older, looser bounds must stay readable."""

    @property
    def settings(self) -> StudySettings:
        """The study's settings alone: what :meth:`Store.create_study` took."""
        return StudySettings(**{f.name: getattr(self, f.name) for f in fields(StudySettings)})


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
    #: Claims of ``attempts`` lost with their worker's node; they do not count as retries.
    node_losses: int = 0
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
    """A trial an algorithm decided to run: see :meth:`db.store.Store.propose`."""

    params: dict[str, Any]
    budget: float | None
    attrs: dict[str, Any]
    config_hash: str | None = None


@dataclass(frozen=True)
class Recovery:
    """What :meth:`db.store.Store.recover_stale` or :meth:`db.store.Store.release_worker` did
    to lost running trials: their numbers, re-queued or failed."""

    requeued: tuple[int, ...]
    failed: tuple[int, ...]
