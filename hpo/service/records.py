"""Store records as JSON: NaN and infinity become null (JSON has neither), times ISO 8601."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from db.records import FitRecord, FrozenTrial, StudyRecord
from db.store import STOPPED_TAG, Store, StudySummary
from scaling.report import FitReport


def number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def when(stamp: datetime | None) -> str | None:
    return None if stamp is None else stamp.isoformat(timespec="seconds") + "Z"


def encode(doc: Any) -> bytes:
    """JSON as the API sends it: compact, UTF-8, and an error rather than a NaN."""
    return json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def versioned(doc: dict[str, Any]) -> tuple[str, bytes]:
    """(version, ``doc`` encoded with ``"version"`` first): the version is a hash of the rest,
    so every server process gives the same content the same version."""
    body = encode(doc)
    version = hashlib.blake2b(body, digest_size=8).hexdigest()
    return version, b'{"version":"%s",' % version.encode() + body[1:]


def study_summary(store: Store, name: str) -> StudySummary:
    """One study with its counts and best value (StudyNotFoundError if there is none): the
    listing of its sweep, filtered, since the store summarises studies only in listings."""
    record = store.get_study(name)
    return next(s for s in store.list_studies(sweep=record.sweep) if s.study.id == record.id)


def study_json(record: StudyRecord, summary: StudySummary | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": record.name,
        "direction": record.direction.value,
        "objective": record.objective,
        "algorithm": record.algorithm,
        "algorithm_settings": record.algorithm_settings,
        "search_space": record.search_space,
        "sweep": record.sweep,
        "tags": record.tags,
        "stopped": STOPPED_TAG in record.tags,
        "heartbeat_timeout": record.heartbeat_timeout,
        "max_retries": record.max_retries,
        "created_at": when(record.created_at),
    }
    if summary is not None:
        out["counts"] = {state.value: n for state, n in summary.counts.items()}
        out["n_trials"] = summary.n_trials
        out["best_value"] = number(summary.best_value)
        out["last_activity"] = when(summary.last_activity)
    return out


def studies_json(summaries: Sequence[StudySummary]) -> list[dict[str, Any]]:
    """The study listing of ``GET /api/studies`` and ``hpo study list --json`` alike."""
    return [study_json(s.study, s) for s in summaries]


def trial_json(trial: FrozenTrial, *, curve: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "number": trial.number,
        "state": trial.state.value,
        "params": trial.params,
        "budget": number(trial.budget),
        "value": number(trial.value),
        "attrs": trial.attrs,
        "worker": trial.worker_id,
        "attempts": trial.attempts,
        "error": trial.error,
        "created_at": when(trial.created_at),
        "started_at": when(trial.started_at),
        "finished_at": when(trial.finished_at),
        "duration_s": trial.duration_s,
    }
    if curve:
        out["intermediate_values"] = [{"budget": b, "value": number(v)} for b, v in sorted(trial.intermediate_values.items())]
    return out


def fit_json(record: FitRecord, *, full: bool = False) -> dict[str, Any]:
    report = record.report
    parsed = FitReport.from_dict(report)
    out = {
        "name": record.name,
        "sweep": record.sweep,
        "source": record.source,
        "form": record.form,
        "created_at": when(record.created_at),
        "learning_rate": parsed.learning_rate.formula,
        "batch_size": parsed.batch_size.formula,
        "fitted_range": report.get("fitted_range"),
    }
    if full:
        out["report"] = parsed.to_dict(bootstrap=False)
    return out
