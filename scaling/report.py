"""A scaling fit's report, typed: what the store keeps, the API serves, the CLI prints and the
dashboard draws.

The stored form is JSON (``FitReport.to_dict``), unchanged from the dict every consumer used
to index by hand; this module is the one place that knows its keys. Reading a stored report
back (``FitReport.from_dict``) and turning it into a :class:`~scaling.laws.Law` to recommend
from (:meth:`FitReport.law`) are each written once, here.

Invariants: a stored report read back and written again is the same JSON
(``from_dict(d).to_dict() == d``, keys a report stored before they existed aside); a part whose ``source`` is
not ``"fitted"`` names the published law its batch law was borrowed from (``calibrated``:
its exponents kept, its coefficient refitted to the sweep's cells).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scaling.laws import Law, PowerLaw, law_ranges
from scaling.published import PUBLISHED_LAWS, borrowed_batch_note

if TYPE_CHECKING:
    from scaling.regression import TargetFit

#: A stored fit's law is named ``fit:<name>`` beside the published laws' names.
FIT_PREFIX = "fit:"

TARGETS = ("learning_rate", "batch_size")


def law_provenance(
    lr_points: list[dict[str, float]], batch_points: list[dict[str, float]], borrowed_from: str | None, calibrated: bool
) -> tuple[str, dict[str, dict[str, tuple[float, float]]]]:
    """A fitted law's ``notes`` and per-law ``ranges``: where its batch law is a published one
    taken whole, that law's range and a note saying so; a calibrated one rests on the cells."""
    if borrowed_from is None:
        return "", law_ranges(lr_points, batch_points)
    published = None if calibrated else PUBLISHED_LAWS[borrowed_from].fitted_range
    return borrowed_batch_note(borrowed_from, calibrated), law_ranges(lr_points, batch_points, published)


def _spans(data: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    return {str(k): (float(v[0]), float(v[1])) for k, v in data.items()}


@dataclass(frozen=True)
class TargetReport:
    """One of a fit's two laws (learning rate or batch size in tokens) with its evidence."""

    law: PowerLaw
    intervals: dict[str, tuple[float, float]]
    points: list[dict[str, float]]
    excluded: list[dict[str, Any]]
    validation: dict[str, Any]
    source: str = "fitted"
    calibrated: bool = False

    @classmethod
    def of(cls, fit: TargetFit) -> TargetReport:
        return cls(fit.law, dict(fit.intervals), fit.points, fit.excluded, fit.validation,
                   "fitted" if fit.borrowed_from is None else fit.borrowed_from, fit.calibrated)

    @property
    def formula(self) -> str:
        return self.law.formula()

    @property
    def fitted(self) -> bool:
        return self.source == "fitted"

    @property
    def held_out_error(self) -> float | None:
        """The law's leave-largest-scale-out relative error, where the sweep allowed one."""
        return self.validation.get("error")

    @property
    def origin_note(self) -> str:
        """Where the law came from, for display after its formula: nothing when fitted, else
        the published law it borrowed (whole, or its exponents with a calibrated coefficient)."""
        if self.fitted:
            return ""
        return f" ({self.source} exponent, calibrated)" if self.calibrated else f" (from {self.source})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "formula": self.formula,
            "law": self.law.to_dict(),
            "intervals": {k: list(v) for k, v in self.intervals.items()},
            "points": self.points,
            "excluded": self.excluded,
            "validation": self.validation,
            "source": self.source,
            "calibrated": self.calibrated,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TargetReport:
        return cls(PowerLaw.from_dict(data["law"]), _spans(data["intervals"]), list(data["points"]),
                   list(data["excluded"]), dict(data["validation"]), str(data.get("source", "fitted")),
                   bool(data.get("calibrated", False)))


@dataclass(frozen=True)
class FitReport:
    """Everything a reader needs to judge a fit (the survey's checklist: form, method, points
    used and excluded, fitted range), the choices made on the sweep's data and their scores,
    the held-out checks, each cell's optimum, and the bootstrap laws behind the intervals."""

    name: str
    form: str
    learning_rate: TargetReport
    batch_size: TargetReport
    fitted_range: dict[str, tuple[float, float]]
    method: dict[str, Any]
    tolerance: dict[str, tuple[float, float]] = field(default_factory=dict)
    forms_compared: dict[str, float | None] = field(default_factory=dict)
    held_out: list[dict[str, Any]] = field(default_factory=list)
    cells: list[dict[str, Any]] = field(default_factory=list)
    bootstrap: list[tuple[PowerLaw, PowerLaw]] = field(default_factory=list, repr=False)

    def target(self, key: str) -> TargetReport:
        """The ``learning_rate`` or ``batch_size`` part."""
        if key not in TARGETS:
            raise KeyError(f"a fit reports {' and '.join(TARGETS)}, not {key!r}")
        return self.learning_rate if key == "learning_rate" else self.batch_size

    def to_dict(self, *, bootstrap: bool = True) -> dict[str, Any]:
        """The JSON the store keeps; without ``bootstrap`` for display (``--json``, the API)."""
        out: dict[str, Any] = {
            "name": self.name,
            "form": self.form,
            "learning_rate": self.learning_rate.to_dict(),
            "batch_size": self.batch_size.to_dict(),
            "fitted_range": {k: list(v) for k, v in self.fitted_range.items()},
            "tolerance": {k: list(v) for k, v in self.tolerance.items()},
            "method": self.method,
            "forms_compared": self.forms_compared,
            "held_out": self.held_out,
            "cells": self.cells,
        }
        if bootstrap:
            out["bootstrap"] = [[lr.to_dict(), b.to_dict()] for lr, b in self.bootstrap]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FitReport:
        """A stored report back; reports stored before a key existed read it as empty."""
        return cls(
            name=str(data["name"]),
            form=str(data["form"]),
            learning_rate=TargetReport.from_dict(data["learning_rate"]),
            batch_size=TargetReport.from_dict(data["batch_size"]),
            fitted_range=_spans(data["fitted_range"]),
            method=dict(data.get("method", {})),
            tolerance=_spans(data.get("tolerance", {})),
            forms_compared=dict(data.get("forms_compared", {})),
            held_out=list(data.get("held_out", [])),
            cells=list(data.get("cells", [])),
            bootstrap=[(PowerLaw.from_dict(lr), PowerLaw.from_dict(b)) for lr, b in data.get("bootstrap", [])],
        )

    def law(self) -> Law:
        """The fit as a :class:`Law` named ``fit:<name>``, with its bootstrap for intervals."""
        batch = self.batch_size
        notes, ranges = law_provenance(self.learning_rate.points, batch.points,
                                       None if batch.fitted else batch.source, batch.calibrated)
        return Law(
            name=f"{FIT_PREFIX}{self.name}",
            learning_rate=self.learning_rate.law,
            batch_tokens=batch.law,
            source=f"fit {self.name!r} ({self.form} form)",
            fitted_range=dict(self.fitted_range),
            bootstrap=list(self.bootstrap),
            notes=notes,
            ranges=ranges,
            tolerance=dict(self.tolerance),
        )
