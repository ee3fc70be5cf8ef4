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

import bisect
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
        self._index = _RungIndex()

    @property
    def stops_early(self) -> bool:
        return self.mode == "stopping"

    def propose(self, history: History) -> Proposal:
        rng = self.rng(history)
        if self.mode == "stopping":
            return Proposal(self.sample_new(history, rng), self.brackets[0][-1], {"bracket": 0})
        index = self._index.update(history)
        for bracket, budgets in enumerate(self.brackets):
            for k in range(len(budgets) - 2, -1, -1):
                parent = index.promotable(bracket, k, self.eta)
                if parent is not None:
                    attrs = {"bracket": bracket, "rung": k + 1, "parent": parent.number}
                    return Proposal(dict(parent.params), budgets[k + 1], attrs)
        bracket = int(np.argmin([index.starts(b) for b in range(len(self.brackets))]))  # round robin
        return Proposal(self.sample_new(history, rng), self.brackets[bracket][0], {"bracket": bracket, "rung": 0})

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


class _RungIndex:
    """ASHA's view of a history, kept between asks: for each (bracket, rung), how many trials
    finished there, their finite scores in order, and which of them were promoted.

    A finished trial never changes, so an ask folds in only the trials it has not seen
    finished (sorting every rung on every ask was most of an ask's cost with thousands of
    trials). A history that is not the last one plus new trials (a finished trial changed or
    missing: another study's, or one made by hand) is indexed from scratch, so a proposal
    is always the one a fresh process would make from the same history.
    """

    def __init__(self) -> None:
        self._reset(None)

    def _reset(self, direction: Any) -> None:
        self._direction = direction
        self._done: dict[int, FrozenTrial] = {}
        self._recorded: dict[tuple[Any, Any], int] = {}
        self._ranked: dict[tuple[Any, Any], list[tuple[float, int, FrozenTrial]]] = {}
        self._promoted: dict[tuple[Any, Any], set[Any]] = {}
        self._started: dict[Any, int] = {}
        self._open_started: dict[Any, int] = {}

    def update(self, history: History) -> _RungIndex:
        if history.direction != self._direction or not self._fold(history):
            self._reset(history.direction)
            self._fold(history)
        return self

    def _fold(self, history: History) -> bool:
        """Fold in what is new; False if the history contradicts what was folded before."""
        known, seen = len(self._done), 0
        self._open_started = {}
        for t in history.trials:
            old = self._done.get(t.number)
            if old is not None:
                if old is not t and (old.state, old.value, old.attrs) != (t.state, t.value, t.attrs):
                    return False
                seen += 1
                continue
            attrs = t.attrs
            key = (attrs.get("bracket"), attrs["rung"]) if "rung" in attrs else None
            if key is not None and "parent" in attrs:
                self._promoted.setdefault(key, set()).add(attrs["parent"])  # a parent stays promoted
            if not t.state.is_finished:
                if key is not None and key[1] == 0:
                    self._open_started[key[0]] = self._open_started.get(key[0], 0) + 1
                continue
            self._done[t.number] = t
            if key is None:
                continue
            if key[1] == 0:
                self._started[key[0]] = self._started.get(key[0], 0) + 1
            self._recorded[key] = self._recorded.get(key, 0) + 1
            score = history.score(t)
            if math.isfinite(score):
                bisect.insort(self._ranked.setdefault(key, []), (score, t.number, t))
        return seen == known

    def promotable(self, bracket: int, rung: int, eta: float) -> FrozenTrial | None:
        """The best trial of the rung's top 1/eta (ties by number) not yet promoted from it."""
        n_top = int(self._recorded.get((bracket, rung), 0) // eta)
        promoted = self._promoted.get((bracket, rung + 1), set())
        for _, number, trial in self._ranked.get((bracket, rung), [])[:n_top]:
            if number not in promoted:
                return trial
        return None

    def starts(self, bracket: int) -> int:
        """Trials started in the bracket's first rung, finished or not."""
        return self._started.get(bracket, 0) + self._open_started.get(bracket, 0)
