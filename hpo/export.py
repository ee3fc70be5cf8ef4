"""Studies as tables and documents: pandas, CSV and JSON.

The CSV is flat (one row per trial, ``params_<name>`` columns, as Optuna's ``trials_dataframe``)
for spreadsheets; the JSON is lossless (settings, every trial, every intermediate value) for
moving a study between stores or into an analysis.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from db.records import FrozenTrial, StudyRecord

if TYPE_CHECKING:
    import pandas as pd

TRIAL_COLUMNS = [
    "number",
    "state",
    "value",
    "budget",
    "last_budget",
    "n_intermediate",
    "worker_id",
    "attempts",
    "created_at",
    "started_at",
    "finished_at",
    "duration_s",
    "error",
]


def trials_dataframe(trials: Sequence[FrozenTrial]) -> pd.DataFrame:
    import pandas as pd  # imported here: the CLI starts faster without it

    param_names = sorted({name for t in trials for name in t.params})
    rows = []
    for t in trials:
        row: dict[str, Any] = {
            "number": t.number,
            "state": t.state.value,
            "value": t.value,
            "budget": t.budget,
            "last_budget": t.last_budget,
            "n_intermediate": len(t.intermediate_values),
            "worker_id": t.worker_id,
            "attempts": t.attempts,
            "created_at": t.created_at,
            "started_at": t.started_at,
            "finished_at": t.finished_at,
            "duration_s": t.duration_s,
            "error": t.error,
        }
        for name in param_names:
            row[f"params_{name}"] = t.params.get(name)
        rows.append(row)
    return pd.DataFrame(rows, columns=TRIAL_COLUMNS + [f"params_{n}" for n in param_names])


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat() + "Z"
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; the trial's state says why
    if hasattr(value, "value") and not isinstance(value, (int, float, str)):  # enums
        return value.value
    return value


def trial_dict(trial: FrozenTrial) -> dict[str, Any]:
    data = {k: _plain(v) for k, v in asdict(trial).items() if k != "intermediate_values"}
    data["intermediate_values"] = [
        {"budget": budget, "value": _plain(value)} for budget, value in sorted(trial.intermediate_values.items())
    ]
    return data


def study_dict(study: StudyRecord) -> dict[str, Any]:
    return {k: _plain(v) for k, v in asdict(study).items()}


def study_json(study: StudyRecord, trials: Sequence[FrozenTrial]) -> str:
    return json.dumps(
        {"study": study_dict(study), "trials": [trial_dict(t) for t in trials]}, indent=1, allow_nan=False
    )
