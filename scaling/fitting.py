"""Fitting hyperparameter scaling laws to a sweep, and saying how far to trust them.

A fit takes each (N, D) cell's optimum (:mod:`scaling.optimum`), fits a power law for the
learning rate and one for the batch size (:mod:`scaling.regression`: robust, with bootstrap
intervals and a leave-largest-scale-out error), and records what the survey "(Mis)Fitting: A
Survey of Scaling Laws" (Li et al. 2025) asks a report to state: form, loss, optimizer and
initialisation, the points used and excluded (with why), and the fitted range. Three choices,
each made on the sweep's own data when left to ``auto``:

* the optimum estimator and what the laws are fitted to (each cell's optimum, or its
  near-best runs as Step Law's pipeline does): by leave-one-cell-out loss excess
  (:mod:`scaling.selection`);
* the form (``steplaw``, ``nd``, ``compute``): by the laws' leave-largest-scale-out error,
  fewest coefficients on a tie, a fitted batch law before a borrowed one;
* with ``batch_fallback`` (a published law's name), a batch law the sweep cannot support is
  borrowed (:mod:`scaling.borrowed`) instead of failing the fit.

With ``validate``, the whole fit, choices included, is redone without the largest N (and,
where some N has several D, without each N's largest D), and each held-out cell is scored on
its own runs (:mod:`scaling.validate`): the error a user extrapolating from the sweep would see.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from scaling.borrowed import fallback_batch, lr_at_batch_law
from scaling.errors import ScalingError
from scaling.laws import FORMS, Law, PowerLaw, variables_at
from scaling.optimum import BOOTSTRAP as CELL_BOOTSTRAP
from scaling.optimum import ESTIMATORS, CellOptimum, find_optimum
from scaling.published import PUBLISHED_LAWS
from scaling.regression import BOOTSTRAP, HUBER_SCALE, LEVEL, Point, TargetFit, fit_target
from scaling.report import FitReport, TargetReport, law_provenance
from scaling.runs import Run, cells
from scaling.selection import FIT_TO, choose

__all__ = ["BOOTSTRAP", "ScalingFit", "TargetFit", "fit_runs", "optima_of"]

ESTIMATOR_TEXT = {
    "quadratic": "robust quadratic in (log2 lr, log2 batch) over each cell's basin; its vertex",
    "plateau": "geometric mean of each cell's settings within 0.25% of its best loss",
    "asymmetric": "basin with its own steepness below and above the optimum in log2 lr, a free power and a valley tilt",
}


@dataclass(frozen=True)
class ScalingFit:
    """A fitted law for both hyperparameters, and everything a reader needs to judge it."""

    name: str
    form: str
    law: Law
    learning_rate: TargetFit
    batch_size: TargetFit
    optima: list[CellOptimum]
    method: dict[str, Any]
    compared: dict[str, float | None] = field(default_factory=dict)
    #: the whole fit redone without the largest scales, scored on the held-out cells' runs
    held_out: list[dict[str, Any]] = field(default_factory=list)

    def report(self) -> FitReport:
        """The fit's report: what the store keeps (``report().to_dict()``) and ``--json`` prints."""
        return FitReport(
            name=self.name,
            form=self.form,
            learning_rate=TargetReport.of(self.learning_rate),
            batch_size=TargetReport.of(self.batch_size),
            fitted_range=dict(self.law.fitted_range),
            method=self.method,
            tolerance=dict(self.law.tolerance),
            forms_compared=self.compared,
            held_out=self.held_out,
            cells=[o.to_dict() for o in self.optima],
            bootstrap=list(self.law.bootstrap),
        )

    @classmethod
    def from_report(cls, report: FitReport) -> ScalingFit:
        """A stored fit back, for plotting and recommending (its cells' optima stay in the
        report's ``cells``: the plot needs only the points and the laws)."""
        law = report.law()

        def target(key: str, fitted: PowerLaw, boot: list[PowerLaw]) -> TargetFit:
            t = report.target(key)
            return TargetFit(key, fitted, t.intervals, t.points, t.excluded, t.validation, boot,
                             None if t.fitted else t.source, t.calibrated)

        lr = target("learning_rate", law.learning_rate, [b[0] for b in law.bootstrap])
        batch = target("batch_size", law.batch_tokens, [b[1] for b in law.bootstrap])
        return cls(report.name, report.form, law, lr, batch, [], report.method, report.forms_compared, report.held_out)


def optima_of(
    runs: Iterable[Run], *, estimator: str = "quadratic", window: float | None = None, seed: int = 0,
    bootstrap: int = CELL_BOOTSTRAP,
) -> tuple[list[CellOptimum], list[dict[str, Any]]]:
    """Each (N, D) cell's optimum by ``estimator``; cells too thin to have one are listed with the reason."""
    found, skipped = [], []
    for (n, d), group in cells(runs).items():
        try:
            kwargs = {} if window is None else {"window": window}
            found.append(find_optimum(group, estimator=estimator, seed=seed, bootstrap=bootstrap, **kwargs))
        except ScalingError as exc:
            skipped.append({"n_params": n, "tokens": d, "why": str(exc)})
    return found, skipped


def fit_runs(
    runs: Iterable[Run],
    *,
    form: str = "auto",
    estimator: str = "auto",
    fit_to: str = "auto",
    name: str = "fit",
    bootstrap: int = BOOTSTRAP,
    seed: int = 0,
    batch_fallback: str | None = None,
    validate: bool = True,
) -> ScalingFit:
    """Fit a law of ``form`` (``steplaw``, ``nd``, ``compute`` or ``auto``) to runs, reading each
    cell's optimum with ``estimator`` (one of :data:`scaling.optimum.ESTIMATORS` or ``auto``) and
    fitting the laws to ``fit_to`` (``optima``, ``runs`` or ``auto``); with ``batch_fallback``
    (a published law's name), a batch law the runs cannot support is taken from that law instead
    of failing the fit; with ``validate``, the fit is redone without the largest scales and
    scored on them (see the module)."""
    for label, value, allowed in (("form", form, FORMS), ("estimator", estimator, ESTIMATORS), ("fit_to", fit_to, FIT_TO)):
        if value != "auto" and value not in allowed:
            raise ScalingError(f"unknown {label} {value!r}; choose auto or one of {', '.join(allowed)}")
    if batch_fallback is not None and batch_fallback not in PUBLISHED_LAWS:
        raise ScalingError(f"unknown batch fallback {batch_fallback!r}; choose one of {', '.join(PUBLISHED_LAWS)}")
    runs = list(runs)
    estimators = ESTIMATORS if estimator == "auto" else (estimator,)
    modes = FIT_TO if fit_to == "auto" else (fit_to,)
    screened = {e: optima_of(runs, estimator=e, seed=seed, bootstrap=0) for e in estimators}
    _check_scales(*screened[estimators[0]])

    def quick(optima: list[CellOptimum], skipped: list[dict[str, Any]], mode: str, form_: str) -> tuple[str, Any]:
        result = _fit_forms(form_, name, optima, skipped, 0, seed, batch_fallback, mode)
        return result.form, result.law.predict

    if len(estimators) * len(modes) == 1:
        (chosen, mode), choice = (estimators[0], modes[0]), {"by": "given", "chosen": f"{estimators[0]} {modes[0]}"}
    else:
        (chosen, mode), choice = choose(cells(runs), screened, modes, form, quick)
    # the screen read every cell without intervals; only a fit with a bootstrap needs them read again
    optima, skipped = (optima_of(runs, estimator=chosen, seed=seed, bootstrap=CELL_BOOTSTRAP) if bootstrap > 0
                       else screened[chosen])
    why = "given" if choice["by"] == "given" else "the sweep's choice (method.estimator_choice)"
    optima = [replace(o, note=o.note or why) for o in optima]
    result = _fit_forms(form, name, optima, skipped, bootstrap, seed, batch_fallback, mode)
    result.method["estimator_choice"] = choice
    if not validate:
        return result
    from scaling.validate import held_out

    checks = held_out(runs, form=form, estimator=estimator, fit_to=fit_to, seed=seed, batch_fallback=batch_fallback)
    return replace(result, held_out=checks)


def _check_scales(optima: list[CellOptimum], skipped: list[dict[str, Any]]) -> None:
    if not optima:
        raise ScalingError("no (N, D) cell has an optimum: " + "; ".join(s["why"] for s in skipped[:3]))
    if len({(o.n_params, o.tokens) for o in optima}) < 2:
        raise ScalingError(
            f"all runs are at a single scale (N={optima[0].n_params:.3g}, D={optima[0].tokens:.3g}); "
            "a law needs several model sizes or token budgets"
        )


def _fit_forms(
    form: str, name: str, optima: list[CellOptimum], skipped: list[dict[str, Any]], bootstrap: int, seed: int,
    batch_fallback: str | None, fit_to: str,
) -> ScalingFit:
    """The fit in ``form``, or for ``auto`` the form with the smallest leave-largest-scale-out
    error (a fitted batch law before a borrowed one, fewest coefficients on a tie)."""
    if form != "auto":
        return _fit_form(form, name, optima, skipped, bootstrap, seed, batch_fallback, fit_to)
    fits: dict[str, ScalingFit] = {}
    failures: dict[str, str] = {}
    for candidate in FORMS:
        try:
            fits[candidate] = _fit_form(candidate, name, optima, skipped, bootstrap, seed, batch_fallback, fit_to)
        except ScalingError as exc:
            failures[candidate] = str(exc)
    if not fits:
        raise ScalingError("no form fits these runs: " + "; ".join(f"{f}: {why}" for f, why in failures.items()))
    scores = {f: _held_out_score(s) for f, s in fits.items()}
    ranked = sorted(fits, key=lambda f: (fits[f].batch_size.borrowed_from is not None,
                                         math.inf if scores[f] is None else scores[f], _n_coefficients(f)))
    best = fits[ranked[0]]
    choice = ("auto: smallest leave-largest-scale-out error (lr + batch)" if any(v is not None for v in scores.values())
              else "auto: no form could be checked on a held-out scale, so the one with the fewest coefficients")
    return replace(best, method={**best.method, "form_choice": choice}, compared={**scores, **dict.fromkeys(failures)})


def _n_coefficients(form: str) -> int:
    lr_vars, b_vars = FORMS[form]
    return len(lr_vars) + len(b_vars) + 2


def _held_out_score(fit: ScalingFit) -> float | None:
    errors = [fit.learning_rate.validation.get("error")]
    if fit.batch_size.borrowed_from is None:
        errors.append(fit.batch_size.validation.get("error"))
    return None if any(e is None for e in errors) else float(sum(errors))  # type: ignore[arg-type]


def _fit_form(
    form: str,
    name: str,
    optima: list[CellOptimum],
    skipped: list[dict[str, Any]],
    bootstrap: int,
    seed: int,
    batch_fallback: str | None = None,
    fit_to: str = "optima",
) -> ScalingFit:
    lr_vars, b_vars = FORMS[form]
    lr_points, lr_out = _usable(optima, "learning_rate", skipped, fit_to)
    b_points, b_out = _usable(optima, "batch_size", skipped, fit_to)
    lr_fit = fit_target("learning_rate", lr_points, lr_vars, excluded=lr_out, bootstrap=bootstrap, seed=seed)
    try:
        b_fit = fit_target("batch_size", b_points, b_vars, excluded=b_out, bootstrap=bootstrap, seed=seed + 1)
    except ScalingError as exc:
        if batch_fallback is None:
            raise
        b_fit = fallback_batch(PUBLISHED_LAWS[batch_fallback], str(exc), optima, b_out, bootstrap, seed + 1)
        if b_fit.calibrated and fit_to == "optima":
            lr_fit = lr_at_batch_law(lr_fit, lr_vars, optima, b_fit.law, lr_out, bootstrap, seed)
    used = {(p["n_params"], p["tokens"]) for p in lr_fit.points + b_fit.points}
    span = {v: [variables_at(n, d)[v] for n, d in used] for v in ("N", "D", "C")}
    notes, ranges = law_provenance(lr_fit.points, b_fit.points, b_fit.borrowed_from, b_fit.calibrated)
    law = Law(
        name=name,
        learning_rate=lr_fit.law,
        batch_tokens=b_fit.law,
        source=f"fitted by hposcale ({form} form) to {len(used)} (N, D) cells",
        fitted_range={v: (min(vals), max(vals)) for v, vals in span.items()},
        # degenerate resamples are skipped per target, so the two lists may differ in length
        bootstrap=list(zip(lr_fit.bootstrap, b_fit.bootstrap, strict=False)),
        notes=notes,
        ranges=ranges,
        tolerance=_tolerance(optima, b_fit.borrowed_from is None),
    )
    estimators = sorted({o.estimator for o in optima})
    method = {
        "form": {"steplaw": "eta = a N^alpha D^beta; B = b D^gamma", "nd": "eta = a N^alpha D^beta; B = b N^delta D^gamma",
                 "compute": "eta = a C^alpha; B = b C^gamma; C = 6 N D"}[form],
        "loss": f"Huber (f_scale {HUBER_SCALE}) on natural-log targets",
        "optimizer": "scipy.optimize.least_squares (trf), started from ordinary least squares",
        "bootstrap": f"{bootstrap} resamples of cells, {int(LEVEL * 100)}% percentile intervals, seed {seed}",
        "cell_optimum": "; ".join(f"{e}: {ESTIMATOR_TEXT[e]}" for e in estimators) + "; flagged cells excluded",
        "fit_to": "each cell's optimum" if fit_to == "optima"
                  else "every run within 0.25% of its cell's best loss (Step Law's pipeline; cells resampled as units)",
    }
    return ScalingFit(name, form, law, lr_fit, b_fit, optima, method)


def _tolerance(optima: list[CellOptimum], batch_fitted: bool) -> dict[str, tuple[float, float]]:
    """The recommendation's range: the median, over the usable cells, of where the settings
    within 0.1% of the best run lie relative to the cell's optimum (log2 offsets below and
    above); the batch only where the batch law was fitted."""
    out = {}
    for dim, value in (("learning_rate", lambda o: o.learning_rate), ("batch_size", lambda o: o.batch_size)):
        offsets = [(math.log2(o.tolerance[dim][0] / value(o)), math.log2(o.tolerance[dim][1] / value(o)))
                   for o in optima if dim not in o.flags and dim in o.tolerance]
        if offsets and (dim == "learning_rate" or batch_fitted):
            out[dim] = (float(np.median([a for a, _ in offsets])), float(np.median([b for _, b in offsets])))
    return out


def _usable(
    optima: list[CellOptimum], target: str, skipped: list[dict[str, Any]], fit_to: str = "optima"
) -> tuple[list[Point], list[dict[str, Any]]]:
    """The law's points (a cell's optimum, or each of its near-best runs) from the cells whose
    ``target`` is not flagged; the others, with why."""
    points, excluded = [], list(skipped)
    for o in optima:
        flag = o.flags.get(target)
        if flag:
            excluded.append({"n_params": o.n_params, "tokens": o.tokens, "why": flag})
        elif fit_to == "runs":
            points += [(o.n_params, o.tokens, r.learning_rate if target == "learning_rate" else r.batch_size) for r in o.kept]
        else:
            points.append((o.n_params, o.tokens, o.learning_rate if target == "learning_rate" else o.batch_size))
    return points, excluded
