"""The study store's schema: sweeps, studies, trials and their intermediate results.

Designed for multi-fidelity sweeps across model sizes: a *sweep* groups the studies run at
several proxy sizes; a *study* holds one search (space, objective, algorithm); a *trial* is one
configuration trained up to a budget, with one *intermediate value* row per budget it reached.
Timestamps are naive UTC so SQLite and PostgreSQL compare them the same way.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class TrialState(str, enum.Enum):
    """Life cycle of a trial. Only QUEUED and RUNNING are unfinished."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    PRUNED = "pruned"
    FAILED = "failed"
    DIVERGED = "diverged"

    @property
    def is_finished(self) -> bool:
        return self not in (TrialState.QUEUED, TrialState.RUNNING)


class Direction(str, enum.Enum):
    """Which way a study's objective improves; the one home of "which value is better".

    Every comparison of objective values (best trial, best-so-far curves, algorithms' internal
    minimisation, the store's ORDER BY) goes through these methods, so a maximising study can
    never be read the wrong way round in one place only.
    """

    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"

    @property
    def sign(self) -> float:
        """+1 for minimise, -1 for maximise: ``sign * value`` is a loss (lower is better)."""
        return 1.0 if self is Direction.MINIMIZE else -1.0

    @property
    def maximize(self) -> bool:
        return self is Direction.MAXIMIZE

    def better(self, a: float, b: float) -> bool:
        """Whether value ``a`` is strictly better than value ``b``."""
        return self.sign * a < self.sign * b

    def best(self, values: Iterable[float]) -> float:
        """The best of ``values`` (raises ValueError when empty, like ``min``)."""
        return min(values, key=lambda v: self.sign * v)

    def best_of(self, items: Iterable[T], key: Callable[[T], float]) -> T:
        """The item whose ``key`` is best (raises ValueError when empty)."""
        return min(items, key=lambda item: self.sign * key(item))


T = TypeVar("T")

# Stable constraint names, so Alembic migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Sweep(Base):
    """A group of studies that search the same space at several proxy sizes."""

    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]

    studies: Mapped[list[Study]] = relationship(back_populates="sweep")


class Study(Base):
    """One search: a space, an objective and its direction, an algorithm and its settings."""

    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    direction: Mapped[str] = mapped_column(String(16), default=Direction.MINIMIZE.value)
    objective: Mapped[str | None] = mapped_column(String(255))
    search_space: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    algorithm: Mapped[str] = mapped_column(String(64), default="random")
    algorithm_settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Free-form facts about the study, e.g. {"width": 256, "n_params": 3.1e6}.
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    sweep_id: Mapped[int | None] = mapped_column(
        ForeignKey("sweeps.id", ondelete="SET NULL"), index=True
    )
    # A running trial whose heartbeat is older than this is presumed lost and re-queued ...
    heartbeat_timeout: Mapped[float] = mapped_column(Double, default=60.0)
    # ... at most this many times; after that it is marked failed.
    max_retries: Mapped[int] = mapped_column(Integer, default=2)
    # Allocates trial numbers: one UPDATE ... RETURNING hands out a block atomically.
    next_trial_number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]

    sweep: Mapped[Sweep | None] = relationship(back_populates="studies")
    trials: Mapped[list[Trial]] = relationship(
        back_populates="study", cascade="all, delete-orphan", passive_deletes=True
    )


class Trial(Base):
    """One configuration, trained up to ``budget`` by at most one worker at a time."""

    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("study_id", "number"),
        # The claim query: the lowest-numbered queued trial of a study.
        Index("ix_trials_study_id_state_number", "study_id", "state", "number"),
        # De-duplication of configurations within a study.
        Index("ix_trials_study_id_config_hash", "study_id", "config_hash"),
        # A page of trials sorted by value (the dashboard's table, GET /api/studies/{name}/trials).
        Index("ix_trials_study_id_value_number", "study_id", "value", "number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default=TrialState.QUEUED.value)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    config_hash: Mapped[str | None] = mapped_column(String(64))
    # The budget (steps, tokens, epochs: the search space names it) to train to.
    budget: Mapped[float | None] = mapped_column(Double)
    value: Mapped[float | None] = mapped_column(Double)
    # Algorithm bookkeeping, e.g. {"bracket": 2, "rung": 1, "parent": 17}.
    attrs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    worker_id: Mapped[str | None] = mapped_column(String(255))
    # How many times a worker claimed this trial; more than one means it was recovered.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # How many of those claims ended with their worker's node (preempted, removed): the trial's
    # fault in none of them, so ``attempts - node_losses`` is what counts against max_retries.
    node_losses: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    study: Mapped[Study] = relationship(back_populates="trials")
    intermediate_values: Mapped[list[IntermediateValue]] = relationship(
        back_populates="trial", cascade="all, delete-orphan", passive_deletes=True
    )


#: The trial columns a page of trials can be sorted by: the one list the store, the API's
#: ``sort`` parameter, the CLI and the dashboard's table accept.
SORTABLE_TRIAL_COLUMNS: tuple[str, ...] = ("number", "value", "budget", "state", "created_at", "finished_at")


class IntermediateValue(Base):
    """The objective's value when a trial reached ``budget``: one row per trial and budget."""

    __tablename__ = "intermediate_values"
    __table_args__ = (UniqueConstraint("trial_id", "budget"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    budget: Mapped[float] = mapped_column(Double)
    # NULL when the objective reported NaN (SQLite cannot store NaN).
    value: Mapped[float | None] = mapped_column(Double)
    reported_at: Mapped[datetime]

    trial: Mapped[Trial] = relationship(back_populates="intermediate_values")


class ScalingFit(Base):
    """A scaling law fitted to a sweep's (or a CSV's) runs, kept with everything its report
    states (form, loss, optimizer, points used and excluded, range, validation, bootstrap)."""

    __tablename__ = "scaling_fits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    sweep_id: Mapped[int | None] = mapped_column(ForeignKey("sweeps.id", ondelete="SET NULL"), index=True)
    # Where the runs came from: "sweep:NAME" or "csv:PATH".
    source: Mapped[str] = mapped_column(Text)
    form: Mapped[str] = mapped_column(String(32))
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
