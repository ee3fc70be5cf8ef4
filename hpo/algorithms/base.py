"""The one interface every search algorithm speaks, and the view of a study it decides from.

An algorithm keeps no state of its own: each decision is derived from the study's trials in
the store (their configurations, budgets, values and the bookkeeping in ``attrs``). That is
what lets any number of workers in any number of processes ask the same study, and a sweep
restarted after a crash continue where it stopped. Asks are serialised per study by the store,
so two workers never derive the same decision from the same history.

Multi-fidelity algorithms hand out each rung evaluation as its own trial with a fixed budget
(the trial's ``attrs`` say which bracket and rung, and ``parent`` names the trial it was
promoted from). ``should_continue`` lets an algorithm stop a trial while it reports.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from db.models import Direction, TrialState
from db.records import FrozenTrial
from search_spaces import Fidelity, SearchSpace, config_hash
from search_spaces.errors import did_you_mean


class AlgorithmError(ValueError):
    """A study names an unknown algorithm, an unknown setting, or a bad setting value."""


@dataclass(frozen=True)
class Proposal:
    """What an algorithm wants run next: a configuration, the budget to train it to, and
    bookkeeping the algorithm will read back from the trial's ``attrs``."""

    config: dict[str, Any]
    budget: float | None
    attrs: dict[str, Any] = field(default_factory=dict)


class History:
    """The study's trials as an algorithm sees them: scores where lower is better.

    ``score`` turns a value into a loss (negated when maximizing); failed and diverged trials
    score +inf, the worst, so they are never promoted, and their configurations are never
    proposed again.
    """

    def __init__(self, trials: Sequence[FrozenTrial], direction: Direction) -> None:
        self.trials = list(trials)
        self.direction = direction

    def __len__(self) -> int:
        return len(self.trials)

    def score(self, trial: FrozenTrial) -> float:
        if trial.state in (TrialState.FAILED, TrialState.DIVERGED) or trial.value is None:
            return math.inf
        return self.direction.sign * trial.value

    @property
    def finished(self) -> list[FrozenTrial]:
        return [t for t in self.trials if t.state.is_finished]

    @property
    def running(self) -> list[FrozenTrial]:
        return [t for t in self.trials if t.state is TrialState.RUNNING]

    @cached_property
    def bad_hashes(self) -> frozenset[str]:
        """Configurations that failed or diverged: not to be proposed again."""
        return frozenset(
            _hash_of(t) for t in self.trials if t.state in (TrialState.FAILED, TrialState.DIVERGED)
        )

    @cached_property
    def seen_hashes(self) -> frozenset[str]:
        return frozenset(_hash_of(t) for t in self.trials)

    def with_attr(self, key: str, value: Any) -> list[FrozenTrial]:
        return [t for t in self.trials if t.attrs.get(key) == value]

    def observations(self, budget: float | None = None) -> list[tuple[dict[str, Any], float]]:
        """(config, score) of the finished trials (at ``budget`` if given), failures included as +inf."""
        return [
            (t.params, self.score(t))
            for t in self.finished
            if t.state is not TrialState.PRUNED and (budget is None or t.budget == budget)
        ]


def _hash_of(trial: FrozenTrial) -> str:
    return trial.config_hash or config_hash(trial.params)


class Algorithm(ABC):
    """Base class: construct from a space, a direction, a seed and the study's settings."""

    name: ClassVar[str]
    #: Settings this algorithm accepts, with their defaults.
    defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, space: SearchSpace, direction: Direction, settings: Mapping[str, Any] | None = None) -> None:
        settings = dict(settings or {})
        unknown = sorted(set(settings) - set(self.defaults) - {"seed"})
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            hint = did_you_mean(unknown[0], [*self.defaults, "seed"])
            raise AlgorithmError(
                f"algorithm {self.name!r} has no setting {unknown[0]!r}{hint}; known settings: {known}, seed"
            )
        self.space = space
        self.direction = direction
        self.seed = int(settings.pop("seed", 0))
        self.settings = {**self.defaults, **settings}

    def rng(self, history: History) -> np.random.Generator:
        """A generator fixed by the seed and the number of trials so far: the same history
        gives the same proposal in any process."""
        return np.random.default_rng([self.seed, len(history)])

    @abstractmethod
    def propose(self, history: History) -> Proposal | None:
        """The next trial to run, or None when nothing can start until running trials finish."""

    def should_continue(self, trial: FrozenTrial, budget: float, value: float, peers: Iterable[float]) -> bool:
        """Whether a trial that just reported ``value`` at ``budget`` should go on.

        ``peers`` are the values other trials reported at the same budget. By default a trial
        always runs to the budget it was given.
        """
        return True

    @property
    def stops_early(self) -> bool:
        """True if :meth:`should_continue` can say no (the worker then fetches peers)."""
        return False

    # ---------------------------------------------------------------- helpers

    def loss(self, value: float) -> float:
        """A value as a loss: lower is better whatever the study's direction."""
        return self.direction.sign * value

    def required_fidelity(self) -> Fidelity:
        """The space's fidelity, for algorithms that hand out budgets; AlgorithmError without one."""
        if self.space.fidelity is None:
            raise AlgorithmError(
                f"{self.name!r} needs a search space with a fidelity (name, min and max budget)"
            )
        return self.space.fidelity

    def max_budget(self) -> float | None:
        return self.space.fidelity.max if self.space.fidelity else None

    def sample_new(self, history: History, rng: np.random.Generator, tries: int = 100) -> dict[str, Any]:
        """A random configuration not tried before (failed ones never again)."""
        config = self.space.sample(rng)
        for _ in range(tries):
            if config_hash(config) not in history.seen_hashes:
                return config
            config = self.space.sample(rng)
        return config

    def setting(self, key: str, kind: Callable[[Any], Any], *, minimum: float | None = None, above: float | None = None) -> Any:
        """A setting converted to ``kind`` and range-checked (``minimum`` inclusive, ``above``
        exclusive); AlgorithmError names the setting, the value given and the rule."""
        raw = self.settings[key]
        try:
            value = kind(raw)
        except (TypeError, ValueError):
            raise AlgorithmError(f"setting {key}={raw!r} of {self.name!r} must be {getattr(kind, '__name__', kind)}") from None
        if minimum is not None and value < minimum:
            raise AlgorithmError(f"setting {key}={raw!r} of {self.name!r} must be >= {minimum:g}")
        if above is not None and value <= above:
            raise AlgorithmError(f"setting {key}={raw!r} of {self.name!r} must be > {above:g}")
        return value
