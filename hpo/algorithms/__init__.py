"""Search algorithms behind one ask/tell interface (:class:`hpo.algorithms.base.Algorithm`),
selected by name in a study (``algorithm: dehb`` with its settings)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from db.models import Direction
from hpo.algorithms.base import Algorithm, AlgorithmError, History, Proposal
from hpo.algorithms.bayesian import GPBayesOpt
from hpo.algorithms.bohb import BOHB
from hpo.algorithms.dehb import DEHB, AsyncDEHB
from hpo.algorithms.hyperband import ASHA, Hyperband, bracket_schedule
from hpo.algorithms.random_search import RandomSearch
from hpo.algorithms.tpe import TPE
from search_spaces import SearchSpace
from search_spaces.errors import did_you_mean

ALGORITHMS: dict[str, type[Algorithm]] = {
    cls.name: cls for cls in (RandomSearch, Hyperband, ASHA, DEHB, AsyncDEHB, GPBayesOpt, TPE, BOHB)
}


def algorithm_class(name: str) -> type[Algorithm]:
    """The algorithm registered under ``name``; AlgorithmError suggests the closest name."""
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise AlgorithmError(
            f"unknown algorithm {name!r}{did_you_mean(name, ALGORITHMS)}; "
            f"expected one of {', '.join(sorted(ALGORITHMS))}"
        ) from None


def make_algorithm(
    name: str, space: SearchSpace, direction: Direction, settings: Mapping[str, Any] | None = None
) -> Algorithm:
    """The algorithm of that name over ``space``; AlgorithmError names what is wrong."""
    return algorithm_class(name)(space, direction, settings)


__all__ = [
    "ALGORITHMS",
    "ASHA",
    "BOHB",
    "DEHB",
    "TPE",
    "Algorithm",
    "AlgorithmError",
    "AsyncDEHB",
    "GPBayesOpt",
    "History",
    "Hyperband",
    "Proposal",
    "RandomSearch",
    "algorithm_class",
    "bracket_schedule",
    "make_algorithm",
]
