"""What the sweep page's chart is drawn from: ``GET /api/sweeps/{name}/dashboard``.

The muTransfer picture: each study of the sweep (a proxy size, e.g. a width) as loss against
learning rate over its completed trials at its largest budget, each with its optimum. The
optimum and its interval are the scaling package's reading of one cell
(:func:`scaling.optimum.find_optimum`, the quadratic vertex in log2 learning rate; the
interval is the cell's ``plateau``, the learning rates within 0.25% of the best loss on its
surface), so the sweep page and a scaling fit read a basin the same way. A study whose trials
cannot be read so (fewer than 3 learning rates, or a maximised objective, which is no loss)
shows its best trial only. Rebuilt only when one of the studies' trials changed.
"""

from __future__ import annotations

import math
from typing import Any

from db.models import TrialState
from db.records import FrozenTrial, StudyRecord
from hpo.service.records import number, versioned
from hpo.service.trial_pages import Snapshot

LR = "learning_rate"


def _size(record: StudyRecord, done: list[FrozenTrial]) -> tuple[str, float | None]:
    """(what the study's size is, the size): its ``width`` tag, else a trial's ``n_params``."""
    if "width" in record.tags:
        return "width", float(record.tags["width"])
    n = next((t.attrs["n_params"] for t in done if "n_params" in t.attrs), None)
    return "N", None if n is None else float(n)


def _optimum(record: StudyRecord, points: list[FrozenTrial]) -> dict[str, Any] | None:
    from scaling.errors import ScalingError
    from scaling.optimum import find_optimum
    from scaling.runs import Run

    if record.direction.maximize:
        return None
    runs = [Run(1.0, 1.0, float(t.params[LR]), 1.0, float(t.value or 0.0)) for t in points]
    try:
        found = find_optimum(runs, estimator="quadratic", bootstrap=0)
    except ScalingError:
        return None
    low, high = found.plateau.get(LR, (found.learning_rate, found.learning_rate))
    return {"learning_rate": found.learning_rate, "loss": found.loss, "interval": [low, high],
            "flag": found.flags.get(LR)}


def study_curve(record: StudyRecord, trials: list[FrozenTrial]) -> dict[str, Any] | None:
    """One study's points, best trial and optimum; None when no completed trial has a
    finite value and a learning rate."""
    done = [t for t in trials if t.state is TrialState.COMPLETED and t.value is not None
            and math.isfinite(t.value) and isinstance(t.params.get(LR), (int, float))]
    if not done:
        return None
    top = max(t.budget or 0.0 for t in done)
    points = sorted((t for t in done if (t.budget or 0.0) == top), key=lambda t: float(t.params[LR]))
    best = record.direction.best_of(points, key=lambda t: float(t.value or 0.0))
    kind, size = _size(record, done)
    return {
        "study": record.name,
        "size_kind": kind,
        "size": size,
        "budget": top or None,
        "trials": {"number": [t.number for t in points], "learning_rate": [float(t.params[LR]) for t in points],
                   "value": [t.value for t in points], "params": [{k: number(v) if isinstance(v, float) else v
                                                                 for k, v in t.params.items()} for t in points]},
        "best": {"number": best.number, "learning_rate": float(best.params[LR]), "value": best.value},
        "optimum": _optimum(record, points),
    }


def build(name: str, studies: list[tuple[StudyRecord, Snapshot]]) -> tuple[str, bytes]:
    """(version, the encoded document): the curves ordered by size, studies without a size
    last."""
    curves = [c for c in (study_curve(record, snapshot.trials) for record, snapshot in studies) if c is not None]
    curves.sort(key=lambda c: (c["size"] is None, c["size"] or 0.0))
    doc = {"name": name, "studies": [record.name for record, _ in studies], "curves": curves}
    return versioned(doc)
