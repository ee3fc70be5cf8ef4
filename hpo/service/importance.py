"""Parameter importances through Optuna's fANOVA evaluator on a study's
completed trials, copied into an in-memory Optuna study with the distributions of our space."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

from db.models import TrialState
from db.records import FrozenTrial
from search_spaces import SearchSpace

MIN_TRIALS = 8


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
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if maximize else "minimize")
    for t in done:
        params = {k: t.params[k] for k in dists if k in t.params}
        study.add_trial(optuna.trial.create_trial(params=params, distributions={k: dists[k] for k in params}, value=t.value))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
    at = f" at budget {budget:g}" if budget else ""
    return {k: float(v) for k, v in scores.items()}, f"fANOVA over {len(done)} trials{at}"
