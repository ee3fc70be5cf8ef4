"""The runs a scaling fit starts from: (N, D, learning rate, batch size in tokens, loss), read
from a CSV file or from a sweep's trials in the study store, grouped into (N, D) cells.

A CSV has the columns ``n_params, n_tokens, lr, batch_size, loss`` (batch size in tokens; any
other column is kept with the run). A table with its own column names is read through a
``columns`` mapping from each of those five to the table's column, optionally times a number,
or to a number alone: ``batch_size=bs*2048`` for a batch in sequences of 2048, ``batch_size=1048576``
for a batch fixed at 1,048,576 tokens (:func:`parse_columns` reads ``name=spec,...``). A sweep's trials give N and D from what the proxy
objective recorded (``n_params`` in the trial's attrs; D is the trial's budget when the
fidelity is tokens, else the ``tokens`` it recorded) and the batch size as ``batch_size``
sequences times ``seq_len`` (64 when the space does not fix it). Only completed trials count;
diverged ones enter a cell as infinite loss, so an optimum is never placed on them.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaling.errors import ScalingError

CSV_COLUMNS = ("n_params", "n_tokens", "lr", "batch_size", "loss")
DEFAULT_SEQ_LEN = 64


@dataclass(frozen=True)
class Run:
    n_params: float
    tokens: float
    learning_rate: float
    batch_size: float
    loss: float
    extra: Mapping[str, Any] = field(default_factory=dict)


def parse_columns(text: str) -> dict[str, str]:
    """``"n_params=Na,batch_size=bs*2048"`` as a mapping; :class:`ScalingError` for a part that
    is not ``name=spec`` or names no scaling column."""
    mapping = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, spec = part.partition("=")
        if not sep or not spec.strip():
            raise ScalingError(f"--columns: {part!r} is not NAME=COLUMN (e.g. batch_size=bs*2048)")
        if name.strip() not in CSV_COLUMNS:
            raise ScalingError(f"--columns: {name.strip()!r} is not one of {', '.join(CSV_COLUMNS)}")
        mapping[name.strip()] = spec.strip()
    return mapping


def _source(spec: str, header: list[str]) -> tuple[str | None, float]:
    """(the table's column or None for a constant, the factor) of one mapping's spec."""
    try:
        return None, float(spec)
    except ValueError:
        pass
    column, _, factor = spec.rpartition("*") if "*" in spec else (spec, "", "1")
    try:
        scale = float(factor)
    except ValueError:
        raise ScalingError(f"--columns: {spec!r}: {factor!r} after '*' is not a number") from None
    return column.strip(), scale


def read_csv(path: str | Path, columns: Mapping[str, str] | None = None) -> list[Run]:
    """Runs from a CSV file, its columns renamed (and scaled) by ``columns`` (see the module);
    :class:`ScalingError` naming the row and column of a bad value."""
    path = Path(path)
    if not path.is_file():
        raise ScalingError(f"{path}: no such file")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        sources = {c: _source((columns or {}).get(c, c), header) for c in CSV_COLUMNS}
        missing = [f"{c}" if column == c else f"{column} (for {c})" for c, (column, _) in sources.items()
                   if column is not None and column not in header]
        if missing:
            raise ScalingError(
                f"{path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                f"(a scaling CSV has {', '.join(CSV_COLUMNS)}; map a table's own names with --columns)"
            )
        runs = [_row(path, i, row, sources) for i, row in enumerate(reader, start=2)]
    if not runs:
        raise ScalingError(f"{path}: no rows")
    return runs


def _row(path: Path, line: int, row: Mapping[str, str], sources: Mapping[str, tuple[str | None, float]]) -> Run:
    values: dict[str, float] = {}
    for column in CSV_COLUMNS:
        source, scale = sources[column]
        text = str(scale) if source is None else (row.get(source) or "").strip()
        try:
            value = float(text) * (1.0 if source is None else scale)
        except ValueError:
            raise ScalingError(f"{path}, line {line}: {source or column} is {text!r}, not a number") from None
        if math.isnan(value):
            raise ScalingError(f"{path}, line {line}: {column} is NaN; drop the row or give its value")
        if column != "loss" and not (value > 0 and math.isfinite(value)):
            raise ScalingError(f"{path}, line {line}: {column} must be positive, got {text}")
        values[column] = value
    used = {source for source, _ in sources.values()}
    extra = {k: v for k, v in row.items() if k not in CSV_COLUMNS and k not in used and k is not None}
    return Run(values["n_params"], values["n_tokens"], values["lr"], values["batch_size"], values["loss"], extra)


def runs_from_sweep(sweep: str, storage: str | None = None) -> list[Run]:
    """Runs from the completed (and diverged) trials of every study in a sweep."""
    from db.models import TrialState
    from hpo.study import list_studies, load_study

    summaries = list_studies(storage, sweep=sweep)
    if not summaries:
        raise ScalingError(f"sweep {sweep!r} has no studies (hpo study create ... --sweep {sweep})")
    runs: list[Run] = []
    for summary in summaries:
        study = load_study(summary.study.name, storage)
        space = study.search_space
        unit = space.fidelity.name if space is not None and space.fidelity is not None else None
        for trial in study.trials:
            if trial.state not in (TrialState.COMPLETED, TrialState.DIVERGED):
                continue
            params, attrs = trial.params, trial.attrs
            if "n_params" not in attrs or "learning_rate" not in params or "batch_size" not in params:
                continue
            tokens = trial.budget if unit == "tokens" and trial.budget else attrs.get("tokens")
            if not tokens:
                continue
            loss = trial.value if trial.state is TrialState.COMPLETED and trial.value is not None else math.inf
            runs.append(
                Run(
                    float(attrs["n_params"]),
                    float(tokens),
                    float(params["learning_rate"]),
                    float(params["batch_size"]) * float(params.get("seq_len", DEFAULT_SEQ_LEN)),
                    float(loss),
                    {"study": study.name, "trial": trial.number},
                )
            )
    if not runs:
        raise ScalingError(
            f"sweep {sweep!r} has no finished trials with n_params, learning_rate and batch_size "
            "(run its studies with --objective proxy:gpt)"
        )
    return runs


def cells(runs: Iterable[Run]) -> dict[tuple[float, float], list[Run]]:
    """Runs grouped by (N, D)."""
    grouped: dict[tuple[float, float], list[Run]] = defaultdict(list)
    for run in runs:
        grouped[run.n_params, run.tokens].append(run)
    return dict(sorted(grouped.items()))
