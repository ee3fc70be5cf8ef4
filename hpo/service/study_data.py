"""What the study page's charts are drawn from: ``GET /api/studies/{name}/dashboard``.

One compact document per study version: the trials as columns (numbers, states, values,
budgets, each parameter's values), the intermediate-value curves, the parameter importances
and the best trial at the largest budget. The browser draws every chart from it (Plotly), so
the server encodes it once per change of the study's trials (:class:`StudyDashboards`, kept by
the identity of :class:`~hpo.service.trial_pages.Snapshot`) and a poll of an unchanged study
is answered by comparing versions. The version is a hash of the document, so every server
process gives the same study state the same version.

Curves are the one part that grows with the reporting, not with the trials: at most
``MAX_CURVES`` trials' curves are sent (the latest by number, so running trials are among
them) and each with at most ``MAX_CURVE_POINTS`` points (evenly spaced, the last kept); the
document says how many of each were left out, and the chart says so.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from db.models import TrialState
from db.records import FrozenTrial, StudyRecord
from hpo.service.importance import importances
from hpo.service.records import number, versioned
from hpo.service.trial_pages import Snapshot, TrialPages
from search_spaces import SearchSpace

MAX_CURVES = 300
MAX_CURVE_POINTS = 100
#: Importances are recomputed once completed trials grew by this fraction (at least one):
#: fANOVA takes a good part of a second on thousands of trials, and a poll must not wait
#: for it at every completion; the method text says how many trials it compared.
IMPORTANCE_STALE = 0.01
#: Studies whose documents are kept (least recently asked dropped first).
STUDIES_KEPT = 32
STATES = [s.value for s in TrialState]


def param_columns(record: StudyRecord, trials: list[FrozenTrial]) -> list[dict[str, Any]]:
    """Each parameter's name, kind (``float``, ``int`` or ``categorical``) and whether its axis
    is logarithmic: the space's parameters first, then any other a trial has (a number is a
    ``float``, anything else ``categorical``)."""
    declared = (record.search_space or {}).get("parameters") or {}
    columns = [
        {"name": name, "kind": spec.get("type", "float"), "log": bool(spec.get("log", False))}
        for name, spec in declared.items()
    ]
    seen = set(declared)
    for trial in trials:
        for name, value in trial.params.items():
            if name not in seen:
                seen.add(name)
                numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
                columns.append({"name": name, "kind": "float" if numeric else "categorical", "log": False})
    return columns


def _param(value: Any) -> Any:
    return number(value) if isinstance(value, float) else value


def _curves(trials: list[FrozenTrial]) -> dict[str, Any]:
    with_curves = [t for t in trials if t.intermediate_values]
    shown = with_curves[-MAX_CURVES:]
    thinned = 0
    numbers, budgets, values = [], [], []
    for t in shown:
        points = sorted(t.intermediate_values.items())
        if len(points) > MAX_CURVE_POINTS:
            thinned += 1
            step = (len(points) - 1) / (MAX_CURVE_POINTS - 1)
            points = [points[round(i * step)] for i in range(MAX_CURVE_POINTS)]
        numbers.append(t.number)
        budgets.append([b for b, _ in points])
        values.append([number(v) for _, v in points])
    return {"number": numbers, "budget": budgets, "value": values, "total": len(with_curves),
            "thinned": thinned, "max_points": MAX_CURVE_POINTS}


def _best(record: StudyRecord, trials: list[FrozenTrial]) -> dict[str, Any] | None:
    """The best completed trial at the largest budget a completed trial has (values at
    different budgets are not comparable)."""
    done = [t for t in trials if t.state is TrialState.COMPLETED and t.value is not None and math.isfinite(t.value)]
    if not done:
        return None
    top = max(t.budget or 0.0 for t in done)
    best = record.direction.best_of([t for t in done if (t.budget or 0.0) == top], key=lambda t: float(t.value or 0.0))
    return {"number": best.number, "value": best.value, "budget": number(best.budget),
            "params": {k: _param(v) for k, v in best.params.items()}}


def build(record: StudyRecord, trials: list[FrozenTrial], importance: dict[str, Any]) -> tuple[str, bytes]:
    """(version, the encoded document): see the module."""
    params = param_columns(record, trials)
    doc = {
        "name": record.name,
        "direction": record.direction.value,
        "sign": record.direction.sign,
        "states": STATES,
        "params": params,
        "counts": {s: sum(1 for t in trials if t.state.value == s) for s in STATES},
        "trials": {
            "number": [t.number for t in trials],
            "state": [STATES.index(t.state.value) for t in trials],
            "value": [number(t.value) for t in trials],
            "budget": [number(t.budget) for t in trials],
            "params": {p["name"]: [_param(t.params.get(p["name"])) for t in trials] for p in params},
        },
        "curves": _curves(trials),
        "importance": importance,
        "best": _best(record, trials),
    }
    return versioned(doc)


def importance_of(record: StudyRecord, trials: list[FrozenTrial]) -> dict[str, Any]:
    space = SearchSpace.from_dict(record.search_space) if record.search_space else None
    scores, method = importances(trials, space, record.direction.maximize)
    return {"scores": scores, "method": method}


@dataclass
class _Kept:
    snapshot: Snapshot
    record: StudyRecord
    version: str
    body: bytes
    #: how many completed trials the importances were computed over (completed ones never change)
    completed: int
    importance: dict[str, Any]


class StudyDashboards:
    """Each study's document, rebuilt only when its trials (or its record) changed."""

    def __init__(self, pages: TrialPages, *, studies_kept: int = STUDIES_KEPT) -> None:
        self.pages = pages
        self.studies_kept = studies_kept
        self._kept: OrderedDict[str, _Kept] = OrderedDict()

    async def document(self, name: str) -> tuple[str, bytes]:
        """(version, encoded document); StudyNotFoundError if there is no study ``name``."""
        snapshot = await self.pages.snapshot(name)
        record = await run_in_threadpool(self.pages.store.get_study, name)
        kept = self._kept.get(name)
        if kept is None or kept.snapshot is not snapshot or kept.record != record:
            kept = await run_in_threadpool(self._build, record, snapshot, kept)
            self._kept[name] = kept
        self._kept.move_to_end(name)
        while len(self._kept) > self.studies_kept:
            self._kept.popitem(last=False)
        return kept.version, kept.body

    @staticmethod
    def _build(record: StudyRecord, snapshot: Snapshot, old: _Kept | None) -> _Kept:
        trials = snapshot.trials
        completed = sum(1 for t in trials if t.state is TrialState.COMPLETED)
        if old is not None and old.record == record and 0 <= completed - old.completed < max(1.0, IMPORTANCE_STALE * old.completed):
            importance, completed = old.importance, old.completed
        else:
            importance = importance_of(record, trials)
        version, body = build(record, trials, importance)
        return _Kept(snapshot, record, version, body, completed, importance)
