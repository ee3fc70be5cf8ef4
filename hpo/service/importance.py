"""Parameter importances through Optuna's fANOVA evaluator on a study's
completed trials, copied into an in-memory Optuna study with the distributions of our space.

Optuna's default forest (64 trees, unbounded depth) grows with the trials compared and takes
seconds on a few hundred, which no page can wait for; so at most ``MAX_TRIALS`` trials are
compared (a seeded sample, so a study's answer is stable) by a smaller forest, and the method
text says both."""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Sequence

from db.models import TrialState
from db.records import FrozenTrial
from search_spaces import SearchSpace

MIN_TRIALS = 8
#: Trials compared at most (a seeded sample of the rest is dropped).
MAX_TRIALS = 2000
N_TREES, MAX_DEPTH = 32, 6


def importances(
    trials: Sequence[FrozenTrial], space: SearchSpace | None, maximize: bool
) -> tuple[dict[str, float] | None, str]:
    """(importance by parameter, the method) or (None, why there is none). Only trials at one
    budget are compared (values at different budgets are not comparable): the largest budget
    that has at least ``MIN_TRIALS`` completed trials."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    if space is None:
        return None, "the study has no search space"
    done = [t for t in trials if t.state is TrialState.COMPLETED and t.value is not None and math.isfinite(t.value)]
    by_budget: dict[float, list[FrozenTrial]] = {}
    for t in done:
        by_budget.setdefault(t.budget or 0.0, []).append(t)
    enough = [b for b, group in by_budget.items() if len(group) >= MIN_TRIALS]
    from hpo.algorithms.tpe import distributions

    dists = distributions(space)
    if not enough or len(dists) < 2:
        return None, f"needs {MIN_TRIALS} completed trials at one budget and 2 searched parameters"
    budget = max(enough)
    done = by_budget[budget]
    sampled = len(done) > MAX_TRIALS
    if sampled:
        done = sorted(random.Random(0).sample(done, MAX_TRIALS), key=lambda t: t.number)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if maximize else "minimize")
    for t in done:
        params = {k: t.params[k] for k in dists if k in t.params}
        study.add_trial(optuna.trial.create_trial(params=params, distributions={k: dists[k] for k in params}, value=t.value))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = get_param_importances(study, evaluator=FanovaImportanceEvaluator(n_trees=N_TREES, max_depth=MAX_DEPTH, seed=0))
    at = f" at budget {budget:g}" if budget else ""
    of = f"a sample of {len(done)} of {len(by_budget[budget])}" if sampled else str(len(done))
    return {k: float(v) for k, v in scores.items()}, f"fANOVA ({N_TREES} trees, depth {MAX_DEPTH}) over {of} trials{at}"
