"""Search algorithms behind one ask/tell interface (:class:`hpo.algorithms.base.Algorithm`),
selected by name in a study (``algorithm: dehb`` with its settings).

The registry imports an algorithm's module when the algorithm is first used: the model-based
ones pull in scikit-learn, SciPy and Optuna (seconds of start-up), which a sweep worker
running Hyperband, the CLI and ``import hpo`` should not pay for.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from db.models import Direction
from hpo.algorithms.base import Algorithm, AlgorithmError, History, Proposal
from hpo.algorithms.dehb import DEHB, AsyncDEHB
from hpo.algorithms.hyperband import ASHA, Hyperband, bracket_schedule
from hpo.algorithms.random_search import RandomSearch
from search_spaces import SearchSpace
from search_spaces.errors import did_you_mean

#: Where each algorithm lives: name -> (module, class).
_LOCATIONS: dict[str, tuple[str, str]] = {
    "random": ("hpo.algorithms.random_search", "RandomSearch"),
    "hyperband": ("hpo.algorithms.hyperband", "Hyperband"),
    "asha": ("hpo.algorithms.hyperband", "ASHA"),
    "dehb": ("hpo.algorithms.dehb", "DEHB"),
    "dehb-async": ("hpo.algorithms.dehb", "AsyncDEHB"),
    "bo": ("hpo.algorithms.bayesian", "GPBayesOpt"),
    "tpe": ("hpo.algorithms.tpe", "TPE"),
    "bohb": ("hpo.algorithms.bohb", "BOHB"),
}
_LAZY_CLASSES = {cls: module for module, cls in _LOCATIONS.values()}


class _Registry(Mapping[str, type[Algorithm]]):
    """Algorithm classes by name, each imported on first lookup."""

    def __getitem__(self, name: str) -> type[Algorithm]:
        module, cls = _LOCATIONS[name]
        algorithm: type[Algorithm] = getattr(importlib.import_module(module), cls)
        return algorithm

    def __iter__(self) -> Iterator[str]:
        return iter(_LOCATIONS)

    def __len__(self) -> int:
        return len(_LOCATIONS)


ALGORITHMS: Mapping[str, type[Algorithm]] = _Registry()


def algorithm_class(name: str) -> type[Algorithm]:
    """The algorithm registered under ``name``; AlgorithmError suggests the closest name."""
    if name not in _LOCATIONS:
        raise AlgorithmError(
            f"unknown algorithm {name!r}{did_you_mean(name, _LOCATIONS)}; "
            f"expected one of {', '.join(sorted(_LOCATIONS))}"
        )
    return ALGORITHMS[name]


def make_algorithm(
    name: str, space: SearchSpace, direction: Direction, settings: Mapping[str, Any] | None = None
) -> Algorithm:
    """The algorithm of that name over ``space``; AlgorithmError names what is wrong."""
    return algorithm_class(name)(space, direction, settings)


def __getattr__(name: str) -> Any:
    """``from hpo.algorithms import GPBayesOpt`` (or TPE, BOHB) imports its module then."""
    if name in _LAZY_CLASSES:
        return getattr(importlib.import_module(_LAZY_CLASSES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
