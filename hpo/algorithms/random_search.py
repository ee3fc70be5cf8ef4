"""Random search (Bergstra & Bengio, "Random Search for Hyper-Parameter Optimization",
JMLR 2012): the baseline every other algorithm must beat. Each trial gets the full budget."""

from __future__ import annotations

from hpo.algorithms.base import Algorithm, History, Proposal


class RandomSearch(Algorithm):
    name = "random"

    def propose(self, history: History) -> Proposal:
        return Proposal(self.sample_new(history, self.rng(history)), self.max_budget())
