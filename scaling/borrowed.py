"""A batch-size law the sweep cannot fit, taken from a published law (``batch_fallback``).

When a sweep cannot support a batch law of its own (the learning rate alone swept, or every
batch optimum flagged, as at the small budgets a CPU affords, where the loss is nearly flat in
the batch), the published law's exponents are kept and its coefficient is calibrated to the
cells that did sweep the batch; the learning-rate law is then read at that law's batch. A
sweep that never varied the batch takes the published law unchanged. Both are said in the
report and with every recommendation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from scaling.laws import Law, PowerLaw, variables_at
from scaling.optimum import CellOptimum
from scaling.regression import HUBER_SCALE, LEVEL, Point, TargetFit, fit_target, leave_largest_out


def lr_at_batch_law(
    lr_fit: TargetFit, variables: Sequence[str], optima: list[CellOptimum], batch_law: PowerLaw,
    excluded: list[dict[str, Any]], bootstrap: int, seed: int,
) -> TargetFit:
    """The learning-rate law refitted to each cell's best rate at the batch the calibrated batch
    law gives it. A cell whose batch optimum could not be found sits in a valley where the best
    rate moves with the batch; its 'optimum' rate is read at an arbitrary point of that valley
    (its best run's batch), while the recommendation will use the batch law's batch. Reading
    every cell at the law's own batch keeps the two laws consistent. Cells whose estimator
    models no valley keep their optimum's rate."""
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


def fallback_batch(
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
            bootstrap=[published.batch_tokens] * max(bootstrap, 1),
            borrowed_from=published.name,
        )
    exponents = dict(published.batch_tokens.exponents)

    def calibrate(points: Sequence[Point]) -> PowerLaw:
        offsets = np.array([math.log(b) - sum(e * math.log(variables_at(n, d)[v]) for v, e in exponents.items())
                            for n, d, b in points])
        start = float(np.median(offsets))
        level = least_squares(lambda c: c - offsets, [start], loss="huber", f_scale=HUBER_SCALE).x[0]
        return PowerLaw(float(math.exp(level)), exponents)

    law = calibrate(evidence)
    rng = np.random.default_rng(seed)
    boot = [calibrate([evidence[i] for i in rng.integers(0, len(evidence), len(evidence))]) for _ in range(bootstrap)]
    q = [50 * (1 - LEVEL), 50 * (1 + LEVEL)]
    lo, hi = np.percentile([b.coefficient for b in boot] or [law.coefficient], q)
    validation = leave_largest_out(evidence, "C" if "C" in exponents else "N", calibrate, "one scale only")
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
