"""What the scaling page's charts are drawn from: ``GET /api/fits/{name}/curves``.

For each of a stored fit's two laws (the optimal learning rate and batch size), one panel per
variable the law depends on (against N, lines at each D of the fitted cells; against D, lines
at each N; a compute law against C): the law along the variable over the fitted range
(``extrapolated`` where beyond it, up to a target), its 90% bootstrap band (5th to 95th
percentile of the bootstrap laws, where the fit has them: a borrowed law that was not
calibrated has none), and the fitted cells' optima as points. With a target (N, D), the law's
value there and the law through it along the panel's variable. What is drawn follows
:func:`scaling.plot.plot_fit`, the CLI's picture of the same fit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from db.records import FitRecord
from hpo.service.records import number
from scaling.fitting import ScalingFit, TargetFit
from scaling.laws import PowerLaw, variables_at
from scaling.report import FitReport

GRID = 60
_KEY = {"N": "n_params", "D": "tokens"}


def _nd(var: str, x: float, other: float) -> tuple[float, float]:
    if var == "N":
        return x, other
    if var == "D":
        return other, x
    return x / 6.0, 1.0  # C = 6 N D: any split gives the same C


def _line(law: PowerLaw, boot: list[PowerLaw], var: str, grid: np.ndarray, other: float) -> dict[str, Any]:
    at = [_nd(var, float(x), other) for x in grid]
    out: dict[str, Any] = {"x": grid.tolist(), "y": [number(law(n, d)) for n, d in at]}
    if boot:
        band = np.array([[b(n, d) for n, d in at] for b in boot])
        low, high = np.percentile(band, [5, 95], axis=0)
        out["low"], out["high"] = [number(float(v)) for v in low], [number(float(v)) for v in high]
    return out


def _panel(key: str, fit: TargetFit, span: list[dict[str, Any]], var: str,
           fitted: tuple[float, float], target: tuple[float, float] | None) -> dict[str, Any]:
    other_var = "D" if var == "N" else "N"
    xs = [variables_at(p["n_params"], p["tokens"])[var] for p in span]
    lo, hi = min([*xs, fitted[0]]), max([*xs, fitted[1]])
    if target is not None:
        lo, hi = min(lo, variables_at(*target)[var]), max(hi, variables_at(*target)[var])
    grid = np.geomspace(lo, hi, GRID) if hi > lo else np.array([lo])
    boot = fit.bootstrap if fit.bootstrap and (fit.borrowed_from is None or fit.calibrated) else []
    groups = sorted({p[_KEY[other_var]] for p in span}) if var != "C" else [1.0]
    lines = []
    for g in groups:
        line = _line(fit.law, boot, var, grid, g)
        line["label"] = "" if var == "C" else f"{other_var} = {g:.3g}"
        line["points"] = {"x": [variables_at(p["n_params"], p["tokens"])[var] for p in fit.points
                                if var == "C" or p[_KEY[other_var]] == g],
                          "y": [p[key] for p in fit.points if var == "C" or p[_KEY[other_var]] == g],
                          "cells": [[p["n_params"], p["tokens"]] for p in fit.points if var == "C" or p[_KEY[other_var]] == g]}
        lines.append(line)
    panel: dict[str, Any] = {"target": key, "var": var, "formula": fit.law.formula(), "fitted_range": list(fitted),
                             "borrowed_from": fit.borrowed_from, "calibrated": fit.calibrated, "band": bool(boot),
                             "lines": lines}
    if target is not None:
        other = target[1] if var == "N" else target[0]
        through = _line(fit.law, [], var, grid, other) if var != "C" else None
        panel["at_target"] = {"x": variables_at(*target)[var], "y": number(fit.law(*target)), "through": through}
    return panel


def curves(record: FitRecord, target: tuple[float, float] | None = None) -> dict[str, Any]:
    """The fit's panels (see the module), learning rate first."""
    report = FitReport.from_dict(record.report)
    fit = ScalingFit.from_report(report)
    ranges = report.fitted_range
    panels = []
    for key, part in (("learning_rate", fit.learning_rate), ("batch_size", fit.batch_size)):
        span = part.points or fit.learning_rate.points  # a borrowed law has no cells of its own
        variables = ["C"] if "C" in part.law.exponents else [v for v in ("N", "D") if v in part.law.exponents]
        for var in variables:
            fitted = tuple(ranges.get(var) or (min(variables_at(p["n_params"], p["tokens"])[var] for p in span),
                                              max(variables_at(p["n_params"], p["tokens"])[var] for p in span)))
            panels.append(_panel(key, part, span, var, fitted, target))  # type: ignore[arg-type]
    return {"name": record.name, "form": record.form, "panels": panels,
            "target": None if target is None else {"n_params": target[0], "tokens": target[1]}}
