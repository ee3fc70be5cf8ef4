"""Hyperband and its asynchronous form.

Hyperband (Li, Jamieson, DeSalvo, Rostamizadeh & Talwalkar, "Hyperband: A Novel Bandit-Based
Approach to Hyperparameter Optimization", JMLR 18(185), 2018) runs successive halving in
brackets that trade the number of configurations against the budget each gets. The schedule
is the paper's: with s_max = floor(log_eta(R / r_min)), bracket s starts
n = ceil((s_max + 1) / (s + 1) * eta^s) configurations at r = R * eta^-s, and rung i keeps the
best floor(n * eta^-i) at budget r * eta^i. The synchronous form promotes a rung only once it
is complete; when every open bracket waits for running trials the next bracket opens, so idle
workers are used without changing any bracket's decisions.

ASHA (Li, Jamieson, Rostamizadeh, Gonina, Ben-Tzur, Hardt, Recht & Talwalkar, "A System for
Massively Parallel Hyperparameter Tuning", MLSys 2020) promotes asynchronously: a configuration
moves up from rung k as soon as it is in the top 1/eta of the results recorded at rung k so far,
so no worker waits for a rung to fill. Its ``stopping`` mode gives each trial the full budget
and stops it at a rung where it is not in the top 1/eta (as Ray Tune's ASHA scheduler does).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from db.records import FrozenTrial
from hpo.algorithms.base import Algorithm, AlgorithmError, History, Proposal


@dataclass(frozen=True)
class Rung:
    n: int
    budget: float


def bracket_schedule(min_budget: float, max_budget: float, eta: float) -> list[list[Rung]]:
    """Hyperband's brackets, from the most exploratory (s = s_max) to plain full-budget runs (s = 0)."""
    if not 0 < min_budget < max_budget:
        raise AlgorithmError(f"Hyperband needs 0 < min budget < max budget, got {min_budget} and {max_budget}")
    if eta <= 1:
        raise AlgorithmError(f"Hyperband needs eta > 1, got {eta}")
    s_max = math.floor(math.log(max_budget / min_budget, eta) + 1e-9)
    brackets = []
    for s in range(s_max, -1, -1):
        n = math.ceil((s_max + 1) / (s + 1) * eta**s - 1e-9)
        r = max_budget * eta ** (-s)
        brackets.append([Rung(math.floor(n * eta ** (-i) + 1e-9), r * eta**i) for i in range(s + 1)])
    return brackets


def rung_budgets(min_budget: float, max_budget: float, eta: float) -> list[float]:
    """min_budget * eta^k up to max_budget (the last rung is max_budget itself)."""
    schedule = bracket_schedule(min_budget, max_budget, eta)
    return [rung.budget for rung in schedule[0]]


def trials_by_bracket(history: History) -> dict[int, list[FrozenTrial]]:
    """The trials of each bracket (by the ``bracket`` attr), in trial-number order."""
    by_bracket: dict[int, list[FrozenTrial]] = {}
    for trial in history.trials:
        if "bracket" in trial.attrs:
            by_bracket.setdefault(int(trial.attrs["bracket"]), []).append(trial)
    return by_bracket


class _Waiting:
    """A bracket that cannot move until running trials finish."""


_WAITING = _Waiting()


class Hyperband(Algorithm):
    """Synchronous Hyperband. Subclasses choose the configurations that start a bracket
    (:meth:`new_config`): random here, a model in BOHB, evolution in DEHB."""

    name = "hyperband"
    defaults: ClassVar[Mapping[str, Any]] = {"eta": 3}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        fidelity = self.required_fidelity()
        self.eta = self.setting("eta", float, above=1)
        self.schedule = bracket_schedule(fidelity.min, fidelity.max, self.eta)

    def propose(self, history: History) -> Proposal:
        by_bracket = trials_by_bracket(history)
        bracket = 0
        while True:
            step = self._step(history, bracket, by_bracket.get(bracket, []))
            if isinstance(step, Proposal):
                return step
            bracket += 1  # complete, or waiting on running trials: look at (or open) the next

    def _step(self, history: History, bracket: int, trials: list[FrozenTrial]) -> Proposal | _Waiting | None:
        """The bracket's next proposal, _WAITING, or None when the bracket is complete."""
        rungs = self.schedule[bracket % len(self.schedule)]
        by_rung: dict[int, list[FrozenTrial]] = {}
        for trial in trials:
            by_rung.setdefault(int(trial.attrs["rung"]), []).append(trial)
        for i, rung in enumerate(rungs):
            here = by_rung.get(i, [])
            attrs = {"bracket": bracket, "rung": i, "s": len(rungs) - 1}
            if i == 0:
                if len(here) < rung.n:
                    return Proposal(self.new_config(history, rung.budget, bracket), rung.budget, attrs)
            else:
                below = by_rung.get(i - 1, [])
                if any(not t.state.is_finished for t in below):
                    return _WAITING
                survivors = sorted((t for t in below if math.isfinite(history.score(t))), key=history.score)[: rung.n]
                promoted = {t.attrs.get("parent") for t in here}
                for parent in survivors:
                    if parent.number not in promoted:
                        return Proposal(dict(parent.params), rung.budget, {**attrs, "parent": parent.number})
            if i == len(rungs) - 1 and any(not t.state.is_finished for t in here):
                return _WAITING
        return None

    def new_config(self, history: History, budget: float, bracket: int) -> dict[str, Any]:
        """A configuration to start a bracket with."""
        return self.sample_new(history, self.rng(history))


class ASHA(Algorithm):
    """Asynchronous successive halving; with ``brackets > 1``, asynchronous Hyperband."""

    name = "asha"
    defaults: ClassVar[Mapping[str, Any]] = {"eta": 3, "brackets": 1, "mode": "promotion"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        fidelity = self.required_fidelity()
        self.eta = self.setting("eta", float, above=1)
        self.mode = self.settings["mode"]
        if self.mode not in ("promotion", "stopping"):
            raise AlgorithmError(f"setting mode={self.mode!r} of 'asha' must be 'promotion' or 'stopping'")
        budgets = rung_budgets(fidelity.min, fidelity.max, self.eta)
        n_brackets = min(self.setting("brackets", int, minimum=1), len(budgets))
        # Bracket b starts at rung b: fewer, longer first evaluations.
        self.brackets = [budgets[b:] for b in range(n_brackets)]

    @property
    def stops_early(self) -> bool:
        return self.mode == "stopping"

    def propose(self, history: History) -> Proposal:
        rng = self.rng(history)
        if self.mode == "stopping":
            return Proposal(self.sample_new(history, rng), self.brackets[0][-1], {"bracket": 0})
        by_rung = self._rungs(history)
        for bracket, budgets in enumerate(self.brackets):
            promotion = self._promotion(history, bracket, budgets, by_rung)
            if promotion is not None:
                return promotion
        starts = [len(by_rung.get((b, 0), ())) for b in range(len(self.brackets))]
        bracket = int(np.argmin(starts))  # round robin over brackets
        return Proposal(self.sample_new(history, rng), self.brackets[bracket][0], {"bracket": bracket, "rung": 0})

    @staticmethod
    def _rungs(history: History) -> dict[tuple[Any, Any], list[FrozenTrial]]:
        """The trials of each (bracket, rung), in trial order: one pass over the history per
        ask, which with thousands of trials is most of what an ask costs."""
        by_rung: dict[tuple[Any, Any], list[FrozenTrial]] = {}
        for t in history.trials:
            attrs = t.attrs
            if "rung" in attrs:
                by_rung.setdefault((attrs.get("bracket"), attrs["rung"]), []).append(t)
        return by_rung

    def _promotion(
        self, history: History, bracket: int, budgets: list[float], by_rung: dict[tuple[Any, Any], list[FrozenTrial]]
    ) -> Proposal | None:
        for k in range(len(budgets) - 2, -1, -1):
            recorded = [t for t in by_rung.get((bracket, k), ()) if t.state.is_finished]
            n_top = int(len(recorded) // self.eta)
            if n_top == 0:
                continue
            scored = [(score, t.number, t) for t in recorded if math.isfinite(score := history.score(t))]
            promoted = {t.attrs.get("parent") for t in by_rung.get((bracket, k + 1), ())}
            for _, number, trial in heapq.nsmallest(n_top, scored):  # the top 1/eta, ties by number
                if number not in promoted:
                    attrs = {"bracket": bracket, "rung": k + 1, "parent": number}
                    return Proposal(dict(trial.params), budgets[k + 1], attrs)
        return None

    def should_continue(self, trial: FrozenTrial, budget: float, value: float, peers: Iterable[float]) -> bool:
        """Stopping mode: at a rung budget, go on only while in the top 1/eta of the values
        recorded there so far (this trial's included)."""
        if self.mode != "stopping" or not any(math.isclose(budget, b) for b in self.brackets[0][:-1]):
            return True
        score = self.loss(value)
        if not math.isfinite(score):
            return False
        scores = sorted([s for s in map(self.loss, peers) if math.isfinite(s)] + [score])
        keep = max(1, int(len(scores) // self.eta))
        return score <= scores[keep - 1]
