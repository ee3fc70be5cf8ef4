"""Fitting hyperparameter scaling laws to per-cell optima, and saying how far to trust them.

For each law (learning rate, batch size) the fit is linear in log space,
``log y = log a + sum(e_v log v)``, solved robustly: scipy's ``least_squares`` with a Huber
loss (``f_scale`` 0.1, about 10% in the target) started from ordinary least squares. Then:

* a bootstrap over cells (1,000 resamples by default) gives an interval for every coefficient
  and, through :meth:`scaling.laws.Law.interval`, for every prediction;
* leave-largest-scale-out validation: refit without the cells at the largest N (or C for the
  compute form) and report the error predicting them, the honest estimate of extrapolation;
* ``form="auto"`` fits every form the data can support and keeps the one with the smallest
  held-out error (fewest coefficients on a tie);
* ``batch_fallback="steplaw"`` (or another published law): when the sweep cannot support a
  batch-size law (a sweep of the learning rate alone, or batch optima all flagged, as at the
  small budgets a CPU affords, where loss is nearly flat in the batch), the batch law is that
  published law's, said so in the report and in every recommendation, and the learning-rate
  law is still fitted. Without it such a sweep gives an error, not half a law.

What the survey "(Mis)Fitting: A Survey of Scaling Laws" (Li et al. 2025) asks a report to
state is kept with the fit: form, loss, optimizer and initialisation, the points used and
excluded (with why), and the fitted range.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from scaling.errors import ScalingError
from scaling.laws import FORMS, Law, PowerLaw, law_ranges, variables_at
from scaling.optimum import CellOptimum, find_optimum
from scaling.published import PUBLISHED_LAWS, borrowed_batch_note
from scaling.runs import Run, cells

HUBER_SCALE = 0.1
BOOTSTRAP = 1000
LEVEL = 0.95


@dataclass(frozen=True)
class TargetFit:
    """One fitted power law (learning rate or batch size) with its evidence."""

    target: str
    law: PowerLaw
    intervals: dict[str, tuple[float, float]]
    points: list[dict[str, float]]
    excluded: list[dict[str, Any]]
    validation: dict[str, Any]
    bootstrap: list[PowerLaw] = field(default_factory=list, repr=False)
    borrowed_from: str | None = None
    #: a borrowed law whose coefficient was refitted to the sweep's cells (its exponents kept)
    calibrated: bool = False


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

    def report(self) -> dict[str, Any]:
        """A JSON-ready record of the fit (what the store keeps and ``--json`` prints)."""
        return {
            "name": self.name,
            "form": self.form,
            "learning_rate": _target_report(self.learning_rate),
            "batch_size": _target_report(self.batch_size),
            "fitted_range": {k: list(v) for k, v in self.law.fitted_range.items()},
            "method": self.method,
            "forms_compared": self.compared,
            "cells": [o.to_dict() for o in self.optima],
            "bootstrap": [[lr.to_dict(), b.to_dict()] for lr, b in self.law.bootstrap],
        }


def _target_report(fit: TargetFit) -> dict[str, Any]:
    return {
        "formula": fit.law.formula(),
        "law": fit.law.to_dict(),
        "intervals": {k: list(v) for k, v in fit.intervals.items()},
        "points": fit.points,
        "excluded": fit.excluded,
        "validation": fit.validation,
        "source": "fitted" if fit.borrowed_from is None else fit.borrowed_from,
        "calibrated": fit.calibrated,
    }


def origin_note(part: dict[str, Any]) -> str:
    """Where a reported law came from, for display after its formula: nothing when fitted,
    else the published law it borrowed (whole, or its exponents with a calibrated coefficient)."""
    source = part.get("source", "fitted")
    if source == "fitted":
        return ""
    return f" ({source} exponent, calibrated)" if part.get("calibrated") else f" (from {source})"


def _solve(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Huber regression of log targets on [1, log variables...]."""
    a = np.column_stack([np.ones(len(xs)), xs])
    start, *_ = np.linalg.lstsq(a, ys, rcond=None)
    return least_squares(lambda c: a @ c - ys, start, loss="huber", f_scale=HUBER_SCALE).x


def _as_law(coef: np.ndarray, variables: Sequence[str]) -> PowerLaw:
    return PowerLaw(float(math.exp(coef[0])), {v: float(e) for v, e in zip(variables, coef[1:], strict=True)})


def _columns(points: Sequence[tuple[float, float, float]], variables: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    xs = np.array([[math.log(variables_at(n, d)[v]) for v in variables] for n, d, _ in points]).reshape(len(points), len(variables))
    return xs, np.log([y for _, _, y in points])


def _identifiable(xs: np.ndarray) -> bool:
    a = np.column_stack([np.ones(len(xs)), xs])
    return len(xs) > a.shape[1] and np.linalg.matrix_rank(a) == a.shape[1]


def fit_target(
    target: str,
    points: Sequence[tuple[float, float, float]],
    variables: Sequence[str],
    *,
    excluded: list[dict[str, Any]],
    bootstrap: int = BOOTSTRAP,
    seed: int = 0,
) -> TargetFit:
    """Fit ``target = a * prod(v ** e_v)`` to (N, D, target) points."""
    xs, ys = _columns(points, variables)
    if not _identifiable(xs):
        distinct = {v: len({variables_at(n, d)[v] for n, d, _ in points}) for v in variables}
        raise ScalingError(
            f"cannot fit {target} ~ {' * '.join(variables)}: {len(points)} usable cell optima with "
            + ", ".join(f"{k} taking {c} distinct value{'s' if c != 1 else ''}" for k, c in distinct.items())
            + f"; it needs more cells than its {len(variables) + 1} coefficients and at least 2 values of each variable"
        )
    coef = _solve(xs, ys)
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(bootstrap):
        idx = rng.integers(0, len(points), len(points))
        if _identifiable(xs[idx]):
            coef_i = _solve(xs[idx], ys[idx])
            if abs(coef_i[0]) < 700:  # a near-degenerate resample's coefficient overflows exp: drop it
                samples.append(coef_i)
    boot = np.array(samples) if samples else coef[None, :]
    q = [50 * (1 - LEVEL), 50 * (1 + LEVEL)]
    names = ["coefficient", *variables]
    intervals = {}
    for i, name in enumerate(names):
        lo, hi = np.percentile(boot[:, i], q)
        intervals[name] = (float(math.exp(lo)), float(math.exp(hi))) if i == 0 else (float(lo), float(hi))
    return TargetFit(
        target=target,
        law=_as_law(coef, variables),
        intervals=intervals,
        points=[{"n_params": n, "tokens": d, target: y} for n, d, y in points],
        excluded=excluded,
        validation=_leave_largest_out(points, "C" if "C" in variables else "N", lambda kept: _regress(kept, variables),
                                      f"the smaller scales alone cannot fit {len(variables) + 1} coefficients"),
        bootstrap=[_as_law(c, variables) for c in samples],
    )


def _regress(points: Sequence[tuple[float, float, float]], variables: Sequence[str]) -> PowerLaw | None:
    """The robust fit of a law in ``variables`` to points; None when they cannot identify it."""
    xs, ys = _columns(points, variables)
    return _as_law(_solve(xs, ys), variables) if _identifiable(xs) else None


def _leave_largest_out(
    points: Sequence[tuple[float, float, float]],
    key: str,
    fit: Callable[[list[tuple[float, float, float]]], PowerLaw | None],
    why_not: str,
) -> dict[str, Any]:
    """Fit without the cells at the largest ``key`` (N; C for compute laws) and predict them;
    ``why_not`` says why when the smaller scales cannot be fitted."""
    largest = max(variables_at(n, d)[key] for n, d, _ in points)
    held = [p for p in points if variables_at(p[0], p[1])[key] == largest]
    kept = [p for p in points if variables_at(p[0], p[1])[key] != largest]
    law = fit(kept) if kept else None
    if law is None:
        return {"held_out": f"largest {key} = {largest:.3g}", "error": None, "why": why_not}
    errors = [abs(math.log(law(n, d) / y)) for n, d, y in held]
    return {
        "held_out": f"largest {key} = {largest:.3g} ({len(held)} cell{'s' if len(held) > 1 else ''})",
        "error": math.exp(float(np.mean(errors))) - 1,  # mean relative error, multiplicative
        "predictions": [{"n_params": n, "tokens": d, "actual": y, "predicted": law(n, d)} for n, d, y in held],
    }


def optima_of(runs: Iterable[Run], *, window: float | None = None, seed: int = 0) -> tuple[list[CellOptimum], list[dict[str, Any]]]:
    """Each (N, D) cell's optimum; cells too thin to have one are listed with the reason."""
    found, skipped = [], []
    for (n, d), group in cells(runs).items():
        try:
            kwargs = {} if window is None else {"window": window}
            found.append(find_optimum(group, seed=seed, **kwargs))
        except ScalingError as exc:
            skipped.append({"n_params": n, "tokens": d, "why": str(exc)})
    return found, skipped


def fit_runs(
    runs: Iterable[Run],
    *,
    form: str = "auto",
    name: str = "fit",
    bootstrap: int = BOOTSTRAP,
    seed: int = 0,
    batch_fallback: str | None = None,
) -> ScalingFit:
    """Fit a law of ``form`` (``steplaw``, ``nd``, ``compute`` or ``auto``) to runs; with
    ``batch_fallback`` (a published law's name), a batch law the runs cannot support is taken
    from that law instead of failing the fit."""
    if form != "auto" and form not in FORMS:
        raise ScalingError(f"unknown form {form!r}; choose auto or one of {', '.join(FORMS)}")
    if batch_fallback is not None and batch_fallback not in PUBLISHED_LAWS:
        raise ScalingError(f"unknown batch fallback {batch_fallback!r}; choose one of {', '.join(PUBLISHED_LAWS)}")
    runs = list(runs)
    optima, skipped = optima_of(runs, seed=seed)
    if not optima:
        raise ScalingError(
            "no (N, D) cell has an optimum: " + "; ".join(s["why"] for s in skipped[:3])
        )
    if len({(o.n_params, o.tokens) for o in optima}) < 2:
        raise ScalingError(
            f"all runs are at a single scale (N={optima[0].n_params:.3g}, D={optima[0].tokens:.3g}); "
            "a law needs several model sizes or token budgets"
        )
    if form != "auto":
        return _fit_form(form, name, optima, skipped, bootstrap, seed, batch_fallback)
    fits: dict[str, ScalingFit] = {}
    failures: dict[str, str] = {}
    for candidate in FORMS:
        try:
            fits[candidate] = _fit_form(candidate, name, optima, skipped, bootstrap, seed, batch_fallback)
        except ScalingError as exc:
            failures[candidate] = str(exc)
    if not fits:
        raise ScalingError("no form fits these runs: " + "; ".join(f"{f}: {why}" for f, why in failures.items()))
    scores = {f: _held_out_score(s) for f, s in fits.items()}
    # a form whose batch law was fitted beats one that borrowed it, whatever the scores
    ranked = sorted(fits, key=lambda f: (fits[f].batch_size.borrowed_from is not None,
                                         math.inf if scores[f] is None else scores[f], _n_coefficients(f)))
    best = fits[ranked[0]]
    choice = ("auto: smallest leave-largest-scale-out error (lr + batch)" if any(v is not None for v in scores.values())
              else "auto: no form could be checked on a held-out scale, so the one with the fewest coefficients")
    return ScalingFit(
        best.name, best.form, best.law, best.learning_rate, best.batch_size, best.optima,
        {**best.method, "form_choice": choice},
        compared={**scores, **{f: None for f in failures}},
    )


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
) -> ScalingFit:
    lr_vars, b_vars = FORMS[form]
    lr_points, lr_out = _usable(optima, "learning_rate", skipped)
    b_points, b_out = _usable(optima, "batch_size", skipped)
    lr_fit = fit_target("learning_rate", lr_points, lr_vars, excluded=lr_out, bootstrap=bootstrap, seed=seed)
    try:
        b_fit = fit_target("batch_size", b_points, b_vars, excluded=b_out, bootstrap=bootstrap, seed=seed + 1)
    except ScalingError as exc:
        if batch_fallback is None:
            raise
        b_fit = _fallback_batch(PUBLISHED_LAWS[batch_fallback], str(exc), optima, b_out, bootstrap, seed + 1)
        if b_fit.calibrated:
            lr_fit = _lr_at_batch_law(lr_fit, lr_vars, optima, b_fit.law, lr_out, bootstrap, seed)
    used = {(p["n_params"], p["tokens"]) for p in lr_fit.points + b_fit.points}
    span = {v: [variables_at(n, d)[v] for n, d in used] for v in ("N", "D", "C")}
    law = Law(
        name=name,
        learning_rate=lr_fit.law,
        batch_tokens=b_fit.law,
        source=f"fitted by hposcale ({form} form) to {len(used)} (N, D) cells",
        fitted_range={v: (min(vals), max(vals)) for v, vals in span.items()},
        # degenerate resamples are skipped per target, so the two lists may differ in length
        bootstrap=list(zip(lr_fit.bootstrap, b_fit.bootstrap, strict=False)),
        notes="" if b_fit.borrowed_from is None else borrowed_batch_note(b_fit.borrowed_from, b_fit.calibrated),
        ranges=law_ranges(lr_fit.points, b_fit.points,
                          None if b_fit.borrowed_from is None or b_fit.calibrated
                          else PUBLISHED_LAWS[b_fit.borrowed_from].fitted_range),
    )
    method = {
        "form": {"steplaw": "eta = a N^alpha D^beta; B = b D^gamma", "nd": "eta = a N^alpha D^beta; B = b N^delta D^gamma",
                 "compute": "eta = a C^alpha; B = b C^gamma; C = 6 N D"}[form],
        "loss": f"Huber (f_scale {HUBER_SCALE}) on natural-log targets",
        "optimizer": "scipy.optimize.least_squares (trf), started from ordinary least squares",
        "bootstrap": f"{bootstrap} resamples of cells, {int(LEVEL * 100)}% percentile intervals, seed {seed}",
        "cell_optimum": "robust quadratic in (log2 lr, log2 batch) over each cell's basin; flagged cells excluded",
    }
    return ScalingFit(name, form, law, lr_fit, b_fit, optima, method)


def _lr_at_batch_law(
    lr_fit: TargetFit, variables: Sequence[str], optima: list[CellOptimum], batch_law: PowerLaw,
    excluded: list[dict[str, Any]], bootstrap: int, seed: int,
) -> TargetFit:
    """The learning-rate law refitted to each cell's best rate at the batch the calibrated batch
    law gives it. A cell whose batch optimum could not be found sits in a valley where the best
    rate moves with the batch; its 'optimum' rate is read at an arbitrary point of that valley
    (its best run's batch), while the recommendation will use the batch law's batch. Reading
    every cell at the law's own batch keeps the two laws consistent. Cells without a surface
    in the batch keep their optimum's rate."""
    used = {(p["n_params"], p["tokens"]) for p in lr_fit.points}
    points = []
    for o in optima:
        if (o.n_params, o.tokens) not in used:
            continue
        at = o.learning_rate_at(batch_law(o.n_params, o.tokens))
        points.append((o.n_params, o.tokens, o.learning_rate if at is None else at))
    refit = fit_target("learning_rate", points, variables, excluded=excluded, bootstrap=bootstrap, seed=seed)
    return replace(refit, validation={**refit.validation,
                                      "read_at": "each cell's best learning rate at the calibrated batch law's batch"})


def _fallback_batch(
    published: Law, why: str, optima: list[CellOptimum], excluded: list[dict[str, Any]], bootstrap: int, seed: int
) -> TargetFit:
    """The batch-size law when the runs cannot fit one: the published law's exponents, with
    its coefficient calibrated to the cells that swept the batch (each cell's optimum, or the
    batch of its best run where the optimum is flagged). The exponents come from a study far
    larger than any sweep; the level does not carry over (it depends on the data, tokenizer and
    sequence length: Step Law's own level puts the optimum of a byte-level CPU proxy ~20x too
    high), so the sweep sets it with one coefficient, which even cells flat in the batch can
    support. A sweep that never varied the batch gives no level: the published law unchanged."""
    evidence = [(o.n_params, o.tokens, o.best_batch) for o in optima if o.best_batch is not None]
    if not evidence:
        return TargetFit(
            target="batch_size",
            law=published.batch_tokens,
            intervals={},
            points=[],
            excluded=excluded,
            validation={"error": None, "why": f"not fitted ({why}); taken from {published.name}"},
            bootstrap=[published.batch_tokens] * bootstrap,
            borrowed_from=published.name,
        )
    exponents = dict(published.batch_tokens.exponents)

    def calibrate(points: Sequence[tuple[float, float, float]]) -> PowerLaw:
        offsets = np.array([math.log(b) - sum(e * math.log(variables_at(n, d)[v]) for v, e in exponents.items())
                            for n, d, b in points])
        start = float(np.median(offsets))
        level = least_squares(lambda c: c - offsets, [start], loss="huber", f_scale=HUBER_SCALE).x[0]
        return PowerLaw(float(math.exp(level)), exponents)

    law = calibrate(evidence)
    rng = np.random.default_rng(seed)
    boot = [calibrate([evidence[i] for i in rng.integers(0, len(evidence), len(evidence))]) for _ in range(bootstrap)]
    q = [50 * (1 - LEVEL), 50 * (1 + LEVEL)]
    lo, hi = np.percentile([b.coefficient for b in boot], q)
    validation = _leave_largest_out(evidence, "C" if "C" in exponents else "N", calibrate, "one scale only")
    validation["why_calibrated"] = (
        f"no batch law could be fitted ({why}); {published.name}'s exponents with the coefficient fitted to "
        f"{len(evidence)} cells' best batches"
    )
    return TargetFit(
        target="batch_size",
        law=law,
        intervals={"coefficient": (float(lo), float(hi))},
        points=[{"n_params": n, "tokens": d, "batch_size": b} for n, d, b in evidence],
        excluded=[e for e in excluded if (e.get("n_params"), e.get("tokens")) not in {(n, d) for n, d, _ in evidence}],
        validation=validation,
        bootstrap=boot,
        borrowed_from=published.name,
        calibrated=True,
    )


def _usable(
    optima: list[CellOptimum], target: str, skipped: list[dict[str, Any]]
) -> tuple[list[tuple[float, float, float]], list[dict[str, Any]]]:
    points, excluded = [], list(skipped)
    for o in optima:
        flag = o.flags.get(target)
        if flag:
            excluded.append({"n_params": o.n_params, "tokens": o.tokens, "why": flag})
        else:
            points.append((o.n_params, o.tokens, o.learning_rate if target == "learning_rate" else o.batch_size))
    return points, excluded


def fit_from_report(name: str, report: dict[str, Any]) -> ScalingFit:
    """A stored fit back as a :class:`ScalingFit` for plotting and recommending (its cells'
    optima stay in the report: the plot needs only the points and the laws)."""
    from scaling.recommend import law_from_report

    law = law_from_report(name, report)

    def target(key: str, fitted: PowerLaw, boot: list[PowerLaw]) -> TargetFit:
        t = report[key]
        source = t.get("source", "fitted")
        return TargetFit(key, fitted, {k: tuple(v) for k, v in t["intervals"].items()}, t["points"], t["excluded"],
                         t["validation"], boot, None if source == "fitted" else source, bool(t.get("calibrated", False)))

    lr = target("learning_rate", law.learning_rate, [b[0] for b in law.bootstrap])
    batch = target("batch_size", law.batch_tokens, [b[1] for b in law.bootstrap])
    return ScalingFit(name, report["form"], law, lr, batch, [], report.get("method", {}), report.get("forms_compared", {}))
