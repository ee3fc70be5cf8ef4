"""BOHB: Hyperband whose new configurations come from a model of the results so far.

BOHB's model is a TPE-style density ratio of good versus bad configurations, fitted on the
largest budget that has enough observations. We reuse the Optuna TPE engine of
:mod:`hpo.algorithms.tpe` restricted to that budget's trials instead of re-implementing the
paper's multivariate KDE: Optuna's multivariate TPE is the same model family (Parzen estimators
of the best and the rest, candidates drawn from the good density and ranked by the ratio), and
one maintained implementation is better than two. The bracket and rung schedule is
:class:`hpo.algorithms.hyperband.Hyperband`'s, unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from db.models import TrialState
from hpo.algorithms.base import AlgorithmError, History
from hpo.algorithms.hyperband import Hyperband
from hpo.algorithms.tpe import TPEEngine
from search_spaces import config_hash


class BOHB(Hyperband):
    """BOHB (Falkner, Klein & Hutter, "BOHB: Robust and Efficient Hyperparameter Optimization
    at Scale", ICML 2018). A bracket's new configuration is random with probability
    ``random_fraction`` (default 1/3, as in the paper), else TPE's pick fitted on the
    observations at the largest budget with at least ``min_points`` (default d + 2) finished
    trials; random while no budget has that many."""

    name = "bohb"
    defaults: ClassVar[Mapping[str, Any]] = {
        **Hyperband.defaults,
        "random_fraction": 1 / 3,
        "min_points": None,
        "n_ei_candidates": 24,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.random_fraction = self.setting("random_fraction", float, minimum=0)
        if self.random_fraction > 1:
            raise AlgorithmError(f"setting random_fraction={self.settings['random_fraction']!r} of 'bohb' must be <= 1")
        if self.settings["min_points"] is None:
            self.min_points = len(self.space.dimensions) + 2
        else:
            self.min_points = self.setting("min_points", int, minimum=1)
        self.n_ei_candidates = self.setting("n_ei_candidates", int, minimum=1)
        self.engines: dict[float, TPEEngine] = {}  # one replayed study per model budget

    def new_config(self, history: History, budget: float, bracket: int) -> dict[str, Any]:
        rng = self.rng(history)
        model_budget = self.model_budget(history)
        if rng.random() < self.random_fraction or model_budget is None:
            return self.sample_new(history, rng)
        engine = self.engines.setdefault(model_budget, TPEEngine(self.space))
        config = engine.propose(
            [t for t in history.trials if t.budget == model_budget],
            history,
            int(rng.integers(2**31)),
            n_startup_trials=0,
            n_ei_candidates=self.n_ei_candidates,
            multivariate=True,
        )
        if config_hash(config) in history.seen_hashes:
            return self.sample_new(history, rng)
        return config

    def model_budget(self, history: History) -> float | None:
        """The largest budget with at least ``min_points`` finished, unpruned observations."""
        counts: dict[float, int] = {}
        for trial in history.finished:
            if trial.state is not TrialState.PRUNED and trial.budget is not None:
                counts[trial.budget] = counts.get(trial.budget, 0) + 1
        enough = [budget for budget, n in counts.items() if n >= self.min_points]
        return max(enough, default=None)
