"""DEHB: differential evolution inside Hyperband's brackets, synchronous and asynchronous.

DEHB (Awad, Mallik & Hutter, "DEHB: Evolutionary Hyperband for Scalable, Robust and Efficient
Hyperparameter Optimization", IJCAI 2021) keeps one population of configurations per budget
and, after a first Hyperband iteration that seeds them, fills every rung of every bracket
with differential-evolution trials instead of random configurations and plain promotions.

We write our own rather than wrap the reference implementation (automl/DEHB): the PyPI
``dehb`` package pins numpy<2 and cannot be installed beside ray[tune]; and its optimizer
keeps its populations in memory, while ours must derive every decision from the store's
trials so that any number of workers in any number of processes can ask one study.

How the populations are rebuilt from a study's trials, at every ask:

* The *founders* of the population at a budget are the trials of the first Hyperband
  iteration (brackets ``0 .. len(schedule) - 1``, whether random, promoted or mutants of the
  budget below: ``attrs["mutant"]``) evaluated at that budget, in trial-number
  order; the population has one slot per founder, named by the founder's trial number
  (the paper's population size per budget: the configurations the first iteration runs there).
  A founder that failed or diverged leaves its slot empty: it is never a parent or a target.
* Every later trial is a DE trial with ``attrs["target"]`` = the slot it competes for. Replaying
  the finished DE trials in trial-number order, one with a finite score replaces its slot's
  occupant when its score is <= the occupant's (a running founder counts as +inf: nothing is
  known of it yet). Failed and diverged trials score +inf and so never enter a population.
* Targets rotate through the slots: the k-th DE trial ever made at a budget targets slot
  ``k mod population size``, as the reference's parent counter does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from db.records import FrozenTrial
from hpo.algorithms.base import AlgorithmError, History, Proposal
from hpo.algorithms.hyperband import Hyperband, Rung, trials_by_bracket
from search_spaces import config_hash

#: Mutation strategies: how many random donors each draws, besides the best and the target.
MUTATIONS: dict[str, int] = {"rand1": 3, "rand2": 5, "best1": 2, "currenttobest1": 2}
CROSSOVERS = ("bin", "exp")
#: DE draws tried before falling back to a random configuration when each lands on a seen one.
_DRAWS = 10


# ---------------------------------------------------------------------- DE operators (pure)


def mutate(
    strategy: str, factor: float, donors: np.ndarray, best: np.ndarray, current: np.ndarray
) -> np.ndarray:
    """The mutant vector of a DE mutation ``strategy`` (Storn & Price 1997) from the rows of
    ``donors`` (as many as :data:`MUTATIONS` says), the pool's ``best`` and the ``current`` target."""
    if strategy == "rand1":
        return donors[0] + factor * (donors[1] - donors[2])
    if strategy == "rand2":
        return donors[0] + factor * (donors[1] - donors[2]) + factor * (donors[3] - donors[4])
    if strategy == "best1":
        return best + factor * (donors[0] - donors[1])
    if strategy == "currenttobest1":
        return current + factor * (best - current) + factor * (donors[0] - donors[1])
    raise AlgorithmError(f"unknown DE mutation {strategy!r}; expected one of {', '.join(MUTATIONS)}")


def crossover(kind: str, target: np.ndarray, mutant: np.ndarray, prob: float, rng: np.random.Generator) -> np.ndarray:
    """Mix target and mutant: binomial (each dimension from the mutant with probability
    ``prob``) or exponential (a run of consecutive dimensions); either way at least one
    dimension comes from the mutant, so the trial differs from its target."""
    d = len(target)
    if kind == "bin":
        take = rng.random(d) < prob
        take[rng.integers(d)] = True
    else:
        take = np.zeros(d, dtype=bool)
        start, length = int(rng.integers(d)), 1
        while length < d and rng.random() < prob:
            length += 1
        take[(start + np.arange(length)) % d] = True
    return np.where(take, mutant, target)


def repair(point: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Resample uniformly the coordinates outside the unit cube (the reference's ``random``
    boundary fix), which keeps diversity where clipping would pile points on the faces."""
    point = point.copy()
    outside = (point < 0) | (point > 1)
    point[outside] = rng.random(int(outside.sum()))
    return point


# ---------------------------------------------------------------------- populations from history


@dataclass(frozen=True)
class Member:
    """A configuration that can serve as a DE parent: its trial, score and point in the cube.
    ``slot`` is its population slot (None for a lower rung's trial in a parent pool)."""

    trial: FrozenTrial
    score: float
    point: np.ndarray
    slot: int | None = None


@dataclass(frozen=True)
class Population:
    """The population at one budget: its slots in order and their current occupants
    (a slot whose founder failed, and that no DE trial has won yet, has none)."""

    slots: list[int]
    occupants: dict[int, Member]
    made: int  # DE trials proposed at this budget so far, running ones included

    @property
    def members(self) -> list[Member]:
        return [self.occupants[slot] for slot in self.slots if slot in self.occupants]

    def next_target(self) -> int | None:
        return self.slots[self.made % len(self.slots)] if self.slots else None


class _Context:
    """What one ``propose`` call derives from the history: trials by budget level, the
    populations (rebuilt lazily, each in one pass over its level's trials) and the generator."""

    def __init__(self, algorithm: DEHB, history: History) -> None:
        self.history = history
        self.rng = algorithm.rng(history)
        self._encode = algorithm.space.encode
        self._founders: dict[int, list[FrozenTrial]] = {}
        self._de: dict[int, list[FrozenTrial]] = {}
        self._populations: dict[int, Population] = {}
        first_iteration = len(algorithm.schedule)
        for trial in sorted(history.trials, key=lambda t: t.number):
            if "bracket" not in trial.attrs:
                continue
            level = algorithm.level(trial)
            if int(trial.attrs["bracket"]) < first_iteration:
                self._founders.setdefault(level, []).append(trial)
            elif "target" in trial.attrs:
                self._de.setdefault(level, []).append(trial)

    def member(self, trial: FrozenTrial, score: float, slot: int | None = None) -> Member:
        return Member(trial, score, self._encode(trial.params), slot)

    def population(self, level: int) -> Population:
        if level not in self._populations:
            self._populations[level] = self._rebuild(level)
        return self._populations[level]

    def _rebuild(self, level: int) -> Population:
        founders = self._founders.get(level, [])
        occupants: dict[int, tuple[FrozenTrial, float]] = {}
        for founder in founders:
            score = self.history.score(founder)
            if founder.state.is_finished and math.isinf(score):
                continue  # failed or diverged: the slot stays empty
            occupants[founder.number] = (founder, score if founder.state.is_finished else math.inf)
        for trial in self._de.get(level, []):
            slot, score = trial.attrs["target"], self.history.score(trial)
            if not trial.state.is_finished or not math.isfinite(score) or slot is None:
                continue
            if slot not in occupants or score <= occupants[slot][1]:
                occupants[slot] = (trial, score)
        return Population(
            slots=[f.number for f in founders],
            occupants={slot: self.member(t, s, slot) for slot, (t, s) in occupants.items()},
            made=len(self._de.get(level, [])),
        )


# ---------------------------------------------------------------------- the algorithms


class DEHB(Hyperband):
    """Synchronous DEHB (Awad et al., IJCAI 2021).

    Brackets follow Hyperband's schedule. The first iteration (one bracket of each size) seeds
    the populations with Hyperband's promotions (the top 1/eta of a rung once it completes),
    started from random configurations in the largest bracket; each smaller bracket starts its
    first rung from DE mutants of the parent pool one budget lower (the mutant whole: its slot
    has no occupant to cross with), as the reference implementation evolves "straight away"
    where no promotion is possible, so the first iteration's higher budgets already learn from
    the lower ones. From then on every slot of every rung is a DE trial: its
    target is the next slot of the population at that rung's budget; its mutant draws donors
    from that population (first rung) or from the *parent pool* (higher rungs): the best n
    members (n = the rung's size) of the population one budget lower, which the rung below
    has just updated by selection, as the reference implementation takes them; topped up from
    the budget's own population when the pool holds fewer donors than the mutation needs. Binomial crossover with ``crossover_prob``
    and random resampling of out-of-bounds coordinates give the trial. A higher rung still
    waits for the rung below to finish, as in Hyperband; selection happens as soon as a DE
    trial finishes (the paper's immediate, asynchronous DE update).

    Defaults: ``best1_bin`` with ``mutation_factor`` 0.3 and ``crossover_prob`` 0.9, not the
    paper's ``rand1_bin``/0.5/0.5. A sweep of proxies affords tens of full-budget evaluations,
    where rand/1 barely starts to converge; best/1 with a short step and a high crossover rate
    searches around the best configuration of each budget. The setting was chosen on seeds 0-9
    of ``benchmarks/hpo_quality.py`` and checked on seeds 10-29, which played no part in
    choosing it (findings in ``benchmarks/README.md``). The paper's setting is one ``strategy``,
    ``mutation_factor``, ``crossover_prob`` away for long sweeps that need DE's diversity.
    """

    name = "dehb"
    defaults: ClassVar[Mapping[str, Any]] = {
        "eta": 3,
        "mutation_factor": 0.3,
        "crossover_prob": 0.9,
        "strategy": "best1_bin",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.factor = self.setting("mutation_factor", float, above=0)
        self.crossover_prob = self.setting("crossover_prob", float, minimum=0)
        if self.crossover_prob > 1:
            raise AlgorithmError(f"setting crossover_prob={self.crossover_prob!r} of {self.name!r} must be <= 1")
        strategy = str(self.settings["strategy"])
        self.mutation, _, self.crossover = strategy.rpartition("_")
        if self.mutation not in MUTATIONS or self.crossover not in CROSSOVERS:
            known = ", ".join(f"{m}_{c}" for m in MUTATIONS for c in CROSSOVERS)
            raise AlgorithmError(f"setting strategy={strategy!r} of {self.name!r} must be one of {known}")

    def population(self, history: History, level: int) -> Population:
        """The population at the ``level``-th budget of the largest bracket, as the history
        leaves it (for inspection; :meth:`propose` rebuilds what it needs itself)."""
        return _Context(self, history).population(level)

    def level(self, trial: FrozenTrial) -> int:
        """The trial's budget as an index into the budgets of the largest bracket."""
        return len(self.schedule) - 1 - int(trial.attrs["s"]) + int(trial.attrs["rung"])

    def propose(self, history: History) -> Proposal:
        context = _Context(self, history)
        by_bracket = trials_by_bracket(history)
        bracket = 0
        while True:
            proposal = self._bracket_step(context, bracket, by_bracket.get(bracket, []))
            if proposal is not None:
                return proposal
            bracket += 1  # complete, or waiting on running trials: look at (or open) the next

    def _bracket_step(self, context: _Context, bracket: int, trials: list[FrozenTrial]) -> Proposal | None:
        """The bracket's next trial, or None when it is complete or must wait."""
        rungs = self.schedule[bracket % len(self.schedule)]
        first_iteration = bracket < len(self.schedule)
        by_rung: dict[int, list[FrozenTrial]] = {}
        for trial in trials:
            by_rung.setdefault(int(trial.attrs["rung"]), []).append(trial)
        settled = True  # no more trials will join the rung below (vacuous for the first rung)
        for i, rung in enumerate(rungs):
            here = by_rung.get(i, [])
            attrs = {"bracket": bracket, "rung": i, "s": len(rungs) - 1, "kind": "init" if first_iteration else "de"}
            level = len(self.schedule[0]) - len(rungs) + i
            pool: list[FrozenTrial] | None = None
            quota = rung.n
            if i > 0:
                below = by_rung.get(i - 1, [])
                allowed = self.quota(rung, below, settled)
                if allowed is None:
                    return None
                quota = allowed
                settled = settled and all(t.state.is_finished for t in below)
                score = context.history.score
                pool = sorted((t for t in below if math.isfinite(score(t))), key=score)[:quota]
            if len(here) >= quota:
                continue
            step = self._init if first_iteration else self._evolve
            proposal = step(context, rung, level, pool, here, attrs)
            if proposal is not None:
                return proposal
        return None

    def quota(self, rung: Rung, below: Sequence[FrozenTrial], settled: bool) -> int | None:
        """How many trials the rung may hold given the rung below (``settled``: no more trials
        will join it); None to wait. Synchronous: all of them once the rung below has
        finished, and until then none."""
        return None if any(not t.state.is_finished for t in below) else rung.n

    def _init(
        self, context: _Context, rung: Rung, level: int, pool: list[FrozenTrial] | None,
        here: list[FrozenTrial], attrs: dict[str, Any],
    ) -> Proposal | None:
        """First iteration: a bracket's first rung starts from random configurations at the
        lowest budget and, in the smaller brackets, from DE mutants of the best results one
        budget lower; the higher rungs promote the best of the rung below not yet promoted."""
        if pool is None:
            below = self._parent_pool(context, level, rung.n) if level > 0 else []
            donors = [m for m in below if math.isfinite(m.score)]
            if not donors:  # the lowest budget, or nothing finished below it yet: nothing to learn from
                return Proposal(self.sample_new(context.history, context.rng), rung.budget, attrs)
            return Proposal(self._trial_config(context, donors, None), rung.budget, {**attrs, "mutant": True})
        promoted = {t.attrs.get("parent") for t in here}
        for parent in pool:
            if parent.number not in promoted:
                return Proposal(dict(parent.params), rung.budget, {**attrs, "parent": parent.number})
        return None

    def _evolve(
        self, context: _Context, rung: Rung, level: int, pool: list[FrozenTrial] | None,
        here: list[FrozenTrial], attrs: dict[str, Any],
    ) -> Proposal:
        """A DE trial for the next target of the population at the rung's budget."""
        population = context.population(level)
        slot = population.next_target()
        target = population.occupants.get(slot) if slot is not None else None
        donors = population.members if pool is None else self._parent_pool(context, level, len(pool))
        config = self._trial_config(context, donors, target)
        return Proposal(config, rung.budget, {**attrs, "target": slot})

    def _parent_pool(self, context: _Context, level: int, n: int) -> list[Member]:
        """The donors of a trial at ``level`` above the lowest rung of its bracket: the best
        ``n`` members of the population one budget lower (as the reference implementation
        takes them), topped up from the level's own population when they are fewer than the
        mutation needs (as the paper does)."""
        lower = sorted(context.population(level - 1).members, key=lambda m: m.score)
        donors = lower[: max(n, 1)]
        if len(donors) < MUTATIONS[self.mutation]:
            donors += context.population(level).members
        return donors

    def _trial_config(self, context: _Context, donors: list[Member], target: Member | None) -> dict[str, Any]:
        """Mutation, crossover and repair, redrawn while the result is a configuration already
        tried (failed ones included); a random new one if every draw was."""
        history, rng = context.history, context.rng
        for _ in range(_DRAWS):
            point = self.trial_point(donors, target, rng)
            config = self.space.decode(point)
            if config_hash(config) not in history.seen_hashes:
                return config
        return self.sample_new(history, rng)

    def trial_point(self, donors: Sequence[Member], target: Member | None, rng: np.random.Generator) -> np.ndarray:
        """One DE trial vector. Donors are drawn without replacement, excluding the target
        when enough remain; missing donors (a tiny or failed population) are random points.
        An empty target slot takes the mutant whole."""
        d = len(self.space.dimensions)
        need = MUTATIONS[self.mutation]
        candidates = [m for m in donors if target is None or m.trial.number != target.trial.number]
        if len(candidates) < need:
            candidates = list(donors)
        points = np.array([m.point for m in candidates]).reshape(len(candidates), d)
        picked = points[rng.choice(len(points), size=min(need, len(points)), replace=False)]
        donor_points = np.vstack([picked, rng.random((need - len(picked), d))])
        best = points[int(np.argmin([m.score for m in candidates]))] if candidates else donor_points[0]
        current = target.point if target is not None else donor_points[0]
        mutant = repair(mutate(self.mutation, self.factor, donor_points, best, current), rng)
        if target is None:
            return mutant
        return repair(crossover(self.crossover, target.point, mutant, self.crossover_prob, rng), rng)


class AsyncDEHB(DEHB):
    """Asynchronous DEHB (Awad et al., IJCAI 2021, run as the reference runs it in parallel): no rung ever waits to fill.

    Same brackets, populations, DE operators and immediate selection as :class:`DEHB`, but a
    higher rung is filled as workers ask, ASHA-style: while the rung below is unfinished the
    rung may hold floor(finished below / eta) trials, and all of its ``n`` once the rung below
    is done. Its promotions (first iteration) are the best of the rung below *so far*, and its
    parent pools and populations are used as they stand, partially updated. When
    no rung of a bracket can take a trial, the next bracket is looked at or opened, so an ask
    always gets a trial.
    """

    name = "dehb-async"

    def quota(self, rung: Rung, below: Sequence[FrozenTrial], settled: bool) -> int:
        finished = sum(1 for t in below if t.state.is_finished)
        if settled and finished == len(below):
            return rung.n
        return min(rung.n, math.floor(finished / self.eta + 1e-9))


