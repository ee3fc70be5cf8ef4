"""Hyperparameter scaling laws: a power law for the optimal learning rate and one for the
optimal batch size (in tokens), in the model's non-embedding parameters N, the training
tokens D, or the compute C = 6 N D.

Published and fitted laws are the same object, so a recommendation treats them alike; a
fitted law also carries its bootstrap coefficients, from which its intervals come.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The variables a law may use: N (non-embedding parameters), D (tokens), C = 6 N D (FLOPs).
VARIABLES = ("N", "D", "C")

#: The forms a fit can take: the variables of the learning-rate law and of the batch-size law.
FORMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "steplaw": (("N", "D"), ("D",)),  # Step Law's: eta(N, D), B(D)
    "nd": (("N", "D"), ("N", "D")),  # batch size in both
    "compute": (("C",), ("C",)),  # DeepSeek LLM's: eta(C), B(C)
}


def variables_at(n_params: float, tokens: float) -> dict[str, float]:
    return {"N": float(n_params), "D": float(tokens), "C": 6.0 * float(n_params) * float(tokens)}


#: The log of the largest float: exp() of more overflows.
_LOG_MAX = math.log(sys.float_info.max)


@dataclass(frozen=True)
class PowerLaw:
    """``coefficient * prod(x ** exponent)`` over the named variables."""

    coefficient: float
    exponents: Mapping[str, float]

    def __call__(self, n_params: float, tokens: float) -> float:
        at = variables_at(n_params, tokens)
        # in logs: a bootstrap resample's wild exponent must give inf, not an OverflowError
        log_value = math.log(self.coefficient) + sum(e * math.log(at[v]) for v, e in self.exponents.items())
        return math.exp(log_value) if log_value < _LOG_MAX else math.inf

    def formula(self) -> str:
        terms = " * ".join(f"{v}^{e:.4g}" for v, e in self.exponents.items())
        return f"{self.coefficient:.4g} * {terms}"

    def to_dict(self) -> dict[str, Any]:
        return {"coefficient": self.coefficient, "exponents": dict(self.exponents)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PowerLaw:
        return cls(float(data["coefficient"]), {str(k): float(v) for k, v in data["exponents"].items()})


def law_ranges(
    lr_points: Sequence[Mapping[str, Any]],
    batch_points: Sequence[Mapping[str, Any]],
    borrowed_range: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, dict[str, tuple[float, float]]]:
    """Each law's own fitted range (``Law.ranges``): the span of the cells it rests on, or, for
    a batch law borrowed from a published one, that law's range."""

    def span(points: Sequence[Mapping[str, Any]]) -> dict[str, tuple[float, float]]:
        values = [variables_at(p["n_params"], p["tokens"]) for p in points]
        return {v: (min(x[v] for x in values), max(x[v] for x in values)) for v in VARIABLES} if values else {}

    return {"learning_rate": span(lr_points), "batch_size": dict(borrowed_range) if borrowed_range is not None else span(batch_points)}


def _beyond(var: str, value: float, span: tuple[float, float]) -> str | None:
    lo, hi = span
    if value > hi:
        return f"{var} = {value:.3g} is {value / hi:.1f}x above the largest fitted {var} ({hi:.3g})"
    if value < lo:
        return f"{var} = {value:.3g} is {lo / value:.1f}x below the smallest fitted {var} ({lo:.3g})"
    return None


@dataclass(frozen=True)
class Law:
    """A learning-rate law and a batch-size law, with where they come from and where they hold.

    ``fitted_range`` maps each variable to the (min, max) it was fitted over; a prediction
    outside it is an extrapolation and says so. ``ranges`` narrows that per law
    (``learning_rate``, ``batch_size``): a fit's two laws often rest on different cells (a
    cell's batch optimum is flagged where its learning rate is not), and the batch law may
    be a published one. ``bootstrap`` holds, for a fitted law, one (learning-rate law,
    batch-size law) pair per bootstrap resample. ``tolerance`` gives, for a fitted law, where
    the settings within 0.1% of the best loss lay around the fitted cells' optima, as log2
    offsets (below, above) per hyperparameter: a recommendation's range, not only its point.
    """

    name: str
    learning_rate: PowerLaw
    batch_tokens: PowerLaw
    source: str
    fitted_range: Mapping[str, tuple[float, float]]
    notes: str = ""
    bootstrap: Sequence[tuple[PowerLaw, PowerLaw]] = field(default=(), repr=False)
    ranges: Mapping[str, Mapping[str, tuple[float, float]]] = field(default_factory=dict)
    tolerance: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def predict(self, n_params: float, tokens: float) -> tuple[float, float]:
        """(learning rate, batch size in tokens)."""
        return self.learning_rate(n_params, tokens), self.batch_tokens(n_params, tokens)

    def interval(self, n_params: float, tokens: float, level: float = 0.9) -> tuple[tuple[float, float], tuple[float, float]] | None:
        """The central ``level`` interval of the bootstrap's predictions; None for a published
        law (papers give no interval for these coefficients)."""
        if not self.bootstrap:
            return None
        at = variables_at(n_params, tokens)
        logs = {v: math.log(at[v]) for v in VARIABLES}
        lrs, bs = (np.exp(c + sum(e[v] * logs[v] for v in e)) for c, e in self._bootstrap_arrays)
        q = [50 * (1 - level), 50 * (1 + level)]
        lo_lr, hi_lr = np.percentile(lrs, q)
        lo_b, hi_b = np.percentile(bs, q)
        return (float(lo_lr), float(hi_lr)), (float(lo_b), float(hi_b))

    @functools.cached_property
    def _bootstrap_arrays(self) -> tuple[tuple[np.ndarray, dict[str, np.ndarray]], ...]:
        """The bootstrap laws as arrays (log coefficient, exponent per variable), so an interval
        is a few vector operations rather than a thousand calls (the service answers many)."""
        out = []
        for i in (0, 1):
            laws = [pair[i] for pair in self.bootstrap]
            names = {v for law in laws for v in law.exponents}
            out.append((
                np.log([law.coefficient for law in laws]),
                {v: np.array([law.exponents.get(v, 0.0) for law in laws]) for v in names},
            ))
        return tuple(out)

    def extrapolation(self, n_params: float, tokens: float) -> list[str]:
        """One line per variable the target lies outside the fitted range of, saying how far;
        where the two laws were fitted over different ranges, one per law, naming it."""
        at = variables_at(n_params, tokens)
        laws = (("learning rate", self.learning_rate, self.ranges.get("learning_rate", self.fitted_range)),
                ("batch size", self.batch_tokens, self.ranges.get("batch_size", self.fitted_range)))
        lines: list[str] = []
        for var in VARIABLES:
            beyond = {label: _beyond(var, at[var], span[var]) for label, law, span in laws if var in law.exponents and var in span}
            texts = set(beyond.values())
            if texts == {None} or not texts:
                continue
            if len(texts) == 1:
                lines.extend(t for t in texts if t is not None)
            else:
                lines.extend(f"{text} for the {label}" for label, text in beyond.items() if text is not None)
        return lines
