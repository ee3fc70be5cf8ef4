"""The tree-structured Parzen estimator, with Optuna's TPESampler as the proposal engine.

We wrap Optuna rather than write TPE because its sampler is the reference implementation
(multivariate and grouped for conditional spaces, constant liar for parallel workers) and is
maintained against the paper. What we add is the translation to our stateless design: the
study's trials are replayed into an in-memory Optuna study, the sampler is seeded from the
history, and one Optuna ``ask`` gives the proposal. The replayed study is kept on the algorithm
instance and brought up to date incrementally (appending new trials, finishing running ones),
and rebuilt from scratch whenever an update could make it differ from a fresh replay, so a
cached and a fresh process decide alike.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState as OptunaState

from db.models import TrialState
from db.records import FrozenTrial
from hpo.algorithms.base import Algorithm, History, Proposal
from search_spaces import Categorical, Float, Int, SearchSpace, SpaceError, config_hash

optuna.logging.set_verbosity(optuna.logging.WARNING)


def distributions(space: SearchSpace) -> dict[str, BaseDistribution]:
    """Each searched parameter as the Optuna distribution with the same range and scale."""
    out: dict[str, BaseDistribution] = {}
    for name in space.dimensions:
        param = space[name]
        if isinstance(param, Float):
            out[name] = FloatDistribution(param.low, param.high, log=param.log)
        elif isinstance(param, Int):
            out[name] = IntDistribution(param.low, param.high, log=param.log)
        elif isinstance(param, Categorical):
            out[name] = CategoricalDistribution(param.choices)
        else:
            raise TypeError(f"parameter {name!r}: no Optuna distribution for {type(param).__name__}")
    return out


@dataclass(frozen=True)
class _Entry:
    """One of our trials as the replayed study holds it: RUNNING (for the constant liar) or
    COMPLETE with its score (+inf for failures: TPE ranks, so that is the worst finite score)."""

    number: int
    state: OptunaState
    value: float | None


class TPEEngine:
    """Our trials replayed into an in-memory Optuna study, and TPE proposals from it.

    Caching the replay is only an optimisation: :meth:`propose` gives what a fresh engine would.
    """

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.distributions = distributions(space)
        self._reset()

    def _reset(self) -> None:
        self._storage = optuna.storages.InMemoryStorage()
        self._study = optuna.create_study(storage=self._storage)
        self._replayed: dict[int, _Entry] = {}  # our trial number -> entry as the study holds it now
        self._trial_ids: dict[int, int] = {}  # our trial number -> Optuna trial id
        # What the last sync saw: its highest trial number and its unfinished trials. A finished
        # trial never changes, so the next sync looks only at newer numbers and these.
        self._last_seen = -1
        self._open: set[int] = set()
        self._asked = 0  # the sampler's own trials, told failed, that the study carries along

    def propose(
        self, trials: Sequence[FrozenTrial], history: History, seed: int, **sampler: Any
    ) -> dict[str, Any]:
        """A configuration from TPE fitted on ``trials`` (finished ones as observations,
        running ones as constant-liar placeholders), the sampler seeded with ``seed``."""
        if self._asked > max(len(self._replayed), 100):
            # Every ask leaves a failed trial behind, invisible to TPE but scanned by it on
            # every later ask: replay afresh once they outnumber our own trials.
            self._reset()
        study = self._sync(trials, history)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if self._conditional:
                study.sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True, group=True, **sampler)
            else:
                study.sampler = _FixedSpaceTPE(self.distributions, seed=seed, constant_liar=True, **sampler)
            trial = study.ask()
            try:
                config: dict[str, Any] = {}
                for name in self.space.names:
                    if self.space.is_active(name, config):
                        param = self.space[name]
                        config[name] = param.midpoint() if param.is_fixed else _suggest(trial, name, self.distributions[name])
            finally:
                # The asked trial is not one of ours: failed trials are invisible to the
                # sampler, so the study stays equivalent to a fresh replay.
                study.tell(trial, state=OptunaState.FAIL)
                self._asked += 1
        return config

    @property
    def _conditional(self) -> bool:
        return any(param.condition for param in self.space.params)

    def _sync(self, trials: Sequence[FrozenTrial], history: History) -> optuna.Study:
        changed = [t for t in trials if t.number > self._last_seen or t.number in self._open]
        wanted = self._wanted(changed, history)
        if not self._can_update(changed, wanted):
            self._reset()
            changed = list(trials)
            wanted = self._wanted(changed, history)
        self._last_seen = max((t.number for t in trials), default=self._last_seen)
        self._open = {t.number for t in changed if not t.state.is_finished}
        study, storage = self._study, self._storage
        study_id = storage.get_study_id_from_name(study.study_name)
        wanted_numbers = {entry.number for _, entry in wanted}
        for trial in changed:
            held = self._replayed.get(trial.number)
            if held is not None and trial.number not in wanted_numbers:  # was running, now pruned or re-queued
                storage.set_trial_state_values(self._trial_ids[trial.number], OptunaState.FAIL)
                del self._replayed[trial.number]
        new = []
        for trial, entry in wanted:
            held = self._replayed.get(entry.number)
            if held is None:
                new.append((trial, entry))
            elif held != entry:  # RUNNING -> COMPLETE, checked by _can_update
                storage.set_trial_state_values(self._trial_ids[entry.number], entry.state, None if entry.value is None else [entry.value])
                self._replayed[entry.number] = entry
        if new:
            first = storage.get_n_trials(study_id)
            study.add_trials([self._frozen(trial, entry) for trial, entry in new])
            for optuna_number, (_, entry) in enumerate(new, start=first):
                self._replayed[entry.number] = entry
                self._trial_ids[entry.number] = storage.get_trial_id_from_study_id_trial_number(study_id, optuna_number)
        return study

    def _wanted(self, trials: Sequence[FrozenTrial], history: History) -> list[tuple[FrozenTrial, _Entry]]:
        """The trials the sampler sees, with their entries, in number order."""
        return [(t, entry) for t in sorted(trials, key=lambda t: t.number) if (entry := self._entry(t, history))]

    def _can_update(self, changed: Sequence[FrozenTrial], wanted: list[tuple[FrozenTrial, _Entry]]) -> bool:
        """Whether updating the held study in place leaves it equal (for the sampler) to a
        fresh replay: new trials only after every held one, and held ones only finishing or
        dropping out while running. ``changed`` are the trials newer than the last sync or
        unfinished then (a finished trial never changes), ``wanted`` their entries."""
        last = max(self._replayed, default=-1)
        numbers = {entry.number for _, entry in wanted}
        for trial in changed:
            held = self._replayed.get(trial.number)
            if held is not None and trial.number not in numbers and held.state is not OptunaState.RUNNING:
                return False
        for _, entry in wanted:
            held = self._replayed.get(entry.number)
            if held is None:
                if entry.number < last:
                    return False
            elif held != entry and held.state is not OptunaState.RUNNING:
                return False
        return True

    def _entry(self, trial: FrozenTrial, history: History) -> _Entry | None:
        if trial.state is TrialState.RUNNING:
            return _Entry(trial.number, OptunaState.RUNNING, None)
        if trial.state in (TrialState.COMPLETED, TrialState.FAILED, TrialState.DIVERGED):
            return _Entry(trial.number, OptunaState.COMPLETE, history.score(trial))
        return None  # queued (not yet started) or pruned (stopped early: no comparable value)

    def _frozen(self, trial: FrozenTrial, entry: _Entry) -> optuna.trial.FrozenTrial:
        params, dists = {}, {}
        for name, value in trial.params.items():
            if name in self.distributions:
                try:
                    params[name] = self.space[name].check(value)
                except SpaceError:
                    continue  # a value outside today's range: the sampler cannot hold it
                dists[name] = self.distributions[name]
        values = None if entry.value is None else [entry.value]
        return optuna.trial.create_trial(state=entry.state, params=params, distributions=dists, values=values)


class TPE(Algorithm):
    """TPE (Bergstra, Bardenet, Bengio & Kegl, "Algorithms for Hyper-Parameter Optimization",
    NeurIPS 2011; Watanabe, "Tree-Structured Parzen Estimator: Understanding Its Algorithm
    Components and Their Roles for Better Empirical Performance", 2023) through Optuna's
    TPESampler. The first ``n_startup_trials`` are random; ``multivariate`` models the
    parameters jointly. Every trial runs at the full budget."""

    name = "tpe"
    defaults: ClassVar[Mapping[str, Any]] = {"n_startup_trials": 10, "multivariate": True, "n_ei_candidates": 24}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.n_startup_trials = self.setting("n_startup_trials", int, minimum=0)
        self.n_ei_candidates = self.setting("n_ei_candidates", int, minimum=1)
        self.multivariate = self.setting("multivariate", boolean)
        self.engine = TPEEngine(self.space)

    def propose(self, history: History) -> Proposal:
        rng = self.rng(history)
        budget = self.max_budget()
        trials = [t for t in history.trials if budget is None or t.budget == budget]
        config = self.engine.propose(
            trials,
            history,
            int(rng.integers(2**31)),
            n_startup_trials=self.n_startup_trials,
            n_ei_candidates=self.n_ei_candidates,
            multivariate=self.multivariate,
        )
        if config_hash(config) in history.seen_hashes:
            config = self.sample_new(history, rng)
        return Proposal(config, budget)


class _FixedSpaceTPE(optuna.samplers.TPESampler):
    """TPE over a space without conditions, where every trial has every parameter: the joint
    search space is known, so it is not re-derived from all trials on each ask (Optuna caches
    that derivation in the sampler, and ours is new on every ask)."""

    def __init__(self, space: dict[str, BaseDistribution], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._joint = {name: dist for name, dist in space.items() if not dist.single()}
        self._is_joint = bool(kwargs.get("multivariate"))

    def infer_relative_search_space(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return dict(self._joint) if self._is_joint else {}


def _suggest(trial: optuna.Trial, name: str, dist: BaseDistribution) -> Any:
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, log=dist.log)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log)
    assert isinstance(dist, CategoricalDistribution)
    return trial.suggest_categorical(name, dist.choices)


def boolean(value: Any) -> bool:
    """True or false, also as the strings a YAML or CLI setting may carry."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.lower() in ("true", "yes", "1")
    raise ValueError(value)
