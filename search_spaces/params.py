"""The parameter types of a search space, each able to check, sample and unit-encode its values.

Every parameter maps its values onto [0, 1] so that differential evolution and Gaussian
processes can work on one continuous cube whatever the types: floats linearly or in log space,
integers by giving each value an equal slice of the interval (of log space for log integers),
categories by the centre of their slice. Decoding any point of the cube gives a valid value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from search_spaces.errors import SpaceError

Condition = Mapping[str, Sequence[Any]]


def number_from(value: Any, what: str) -> float:
    """A float from a number or a numeric string (YAML 1.1 reads ``1e-4`` as a string)."""
    if isinstance(value, bool):
        raise SpaceError(f"{what} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SpaceError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise SpaceError(f"{what} must be finite, got {value!r}")
    return number


@dataclass(frozen=True)
class Param:
    """What all parameters share: an optional condition and an optional default. A parameter
    has no name of its own: the space maps names to parameters, as the YAML form does.

    ``condition`` maps parent parameters to the values under which this one exists, e.g.
    ``{"schedule": ["wsd"]}``: the parameter is active only when every parent is active and
    takes one of the listed values.
    """

    condition: Condition = field(default_factory=dict, kw_only=True)
    default: Any = field(default=None, kw_only=True)

    kind: ClassVar[str]

    def __post_init__(self) -> None:
        condition = {}
        for parent, values in dict(self.condition or {}).items():
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
                values = [values]
            if not values:
                raise SpaceError(f"condition on {parent!r} lists no values")
            condition[str(parent)] = tuple(values)
        object.__setattr__(self, "condition", condition)
        self._validate()
        if self.default is not None:
            object.__setattr__(self, "default", self.check(self.default))

    def _validate(self) -> None:
        """Raise SpaceError on bad bounds (without the parameter's name: the space adds it)."""

    # Interface each type implements.
    def check(self, value: Any) -> Any:
        """The value, normalised (ints as int, floats as float), or SpaceError saying why not."""
        raise NotImplementedError

    def sample(self, rng: np.random.Generator) -> Any:
        return self.decode(float(rng.random()))

    def encode(self, value: Any) -> float:
        raise NotImplementedError

    def decode(self, u: float) -> Any:
        raise NotImplementedError

    def midpoint(self) -> Any:
        return self.decode(0.5)

    @property
    def is_fixed(self) -> bool:
        return False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.kind, **self._fields()}
        if self.condition:
            out["condition"] = {parent: list(values) for parent, values in self.condition.items()}
        if self.default is not None:
            out["default"] = self.default
        return out

    def _fields(self) -> dict[str, Any]:
        raise NotImplementedError


class _Range(Param):
    """What Float and Int share: [low, high] on a linear or log line, mapped to the unit cube
    through ``_bounds`` (the line's ends, which Int widens by half a step)."""

    low: Any
    high: Any
    log: bool

    def _bounds(self) -> tuple[float, float]:
        raise NotImplementedError

    def encode(self, value: Any) -> float:
        lo, hi = self._bounds()
        x = math.log(value) if self.log else float(value)
        return (x - lo) / (hi - lo)

    def _on_line(self, u: float) -> float:
        """The point a unit-cube coordinate (clipped to [0, 1]) stands for, in the value's units."""
        lo, hi = self._bounds()
        x = lo + min(max(u, 0.0), 1.0) * (hi - lo)
        return math.exp(x) if self.log else x

    def _fields(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, **({"log": True} if self.log else {})}


@dataclass(frozen=True)
class Float(_Range):
    """A real number in [low, high], sampled uniformly or (``log=True``) log-uniformly."""

    low: float = 0.0
    high: float = 1.0
    log: bool = False

    kind = "float"

    def _validate(self) -> None:
        low, high = number_from(self.low, "low"), number_from(self.high, "high")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        if not isinstance(self.log, bool):
            raise SpaceError(f"log must be true or false, got {self.log!r}")
        if low >= high:
            raise SpaceError(f"low {low:g} must be < high {high:g}")
        if self.log and low <= 0:
            raise SpaceError(f"a log range must be > 0, got low {low:g}")

    def _bounds(self) -> tuple[float, float]:
        return (math.log(self.low), math.log(self.high)) if self.log else (self.low, self.high)

    def check(self, value: Any) -> float:
        number = number_from(value, "value")
        if not self.low <= number <= self.high:
            raise SpaceError(f"value {number:g} is outside [{self.low:g}, {self.high:g}]")
        return number

    def decode(self, u: float) -> float:
        return min(max(self._on_line(u), self.low), self.high)


@dataclass(frozen=True)
class Int(_Range):
    """An integer in [low, high]; with ``log=True`` small values are as likely as large ones
    per factor (batch sizes 8..512), and the low end must be >= 1."""

    low: int = 0
    high: int = 1
    log: bool = False

    kind = "int"

    def _validate(self) -> None:
        for end in ("low", "high"):
            number = number_from(getattr(self, end), end)
            if number != int(number):
                raise SpaceError(f"{end} {number:g} of an int parameter must be a whole number")
            object.__setattr__(self, end, int(number))
        if not isinstance(self.log, bool):
            raise SpaceError(f"log must be true or false, got {self.log!r}")
        if self.low >= self.high:
            raise SpaceError(f"low {self.low} must be < high {self.high}")
        if self.log and self.low < 1:
            raise SpaceError(f"a log range of integers must start at >= 1, got low {self.low}")

    def _bounds(self) -> tuple[float, float]:
        """Each integer owns the slice [v - 0.5, v + 0.5] of the (log) line."""
        lo, hi = self.low - 0.5, self.high + 0.5
        return (math.log(lo), math.log(hi)) if self.log else (lo, hi)

    def check(self, value: Any) -> int:
        number = number_from(value, "value")
        if number != int(number):
            raise SpaceError(f"value {value!r} must be a whole number")
        if not self.low <= number <= self.high:
            raise SpaceError(f"value {int(number)} is outside [{self.low}, {self.high}]")
        return int(number)

    def decode(self, u: float) -> int:
        return min(max(round(self._on_line(u)), self.low), self.high)


@dataclass(frozen=True)
class Categorical(Param):
    """One of a list of choices (strings, numbers or booleans), without order."""

    choices: Sequence[Any] = ()

    kind = "categorical"

    def _validate(self) -> None:
        if isinstance(self.choices, (str, bytes)) or not isinstance(self.choices, Sequence):
            raise SpaceError(f"choices must be a list, got {self.choices!r}")
        choices = tuple(self.choices)
        if not choices:
            raise SpaceError("choices must list at least one value")
        if len(set(map(repr, choices))) != len(choices):
            raise SpaceError(f"choices {list(choices)!r} repeat a value")
        for choice in choices:
            if not isinstance(choice, (str, int, float, bool)) and choice is not None:
                raise SpaceError(f"choice {choice!r} must be a string, number or boolean")
        object.__setattr__(self, "choices", choices)

    def _index(self, value: Any) -> int | None:
        for i, choice in enumerate(self.choices):
            if type(choice) is type(value) and choice == value:
                return i
        for i, choice in enumerate(self.choices):  # 1 and 1.0 from JSON; never True and 1
            if not isinstance(value, bool) and not isinstance(choice, bool) and choice == value:
                return i
        return None

    def check(self, value: Any) -> Any:
        index = self._index(value)
        if index is None:
            raise SpaceError(f"value {value!r} is not one of {list(self.choices)!r}")
        return self.choices[index]

    def encode(self, value: Any) -> float:
        index = self._index(value)
        if index is None:
            raise SpaceError(f"value {value!r} is not one of {list(self.choices)!r}")
        return (index + 0.5) / len(self.choices)

    def decode(self, u: float) -> Any:
        return self.choices[min(int(max(u, 0.0) * len(self.choices)), len(self.choices) - 1)]

    def midpoint(self) -> Any:
        return self.choices[0]

    def _fields(self) -> dict[str, Any]:
        return {"choices": list(self.choices)}


@dataclass(frozen=True)
class Fixed(Param):
    """A constant carried in every configuration (sequence length, vocabulary size): part of
    the config the objective receives, never searched, no dimension in the cube."""

    value: Any = None

    kind = "fixed"

    def _validate(self) -> None:
        if self.value is None:
            raise SpaceError("a fixed parameter needs a value")

    def check(self, value: Any) -> Any:
        if value != self.value:
            raise SpaceError(f"value {value!r} must be the fixed value {self.value!r}")
        return self.value

    def sample(self, rng: np.random.Generator) -> Any:
        return self.value

    def encode(self, value: Any) -> float:
        return 0.5

    def decode(self, u: float) -> Any:
        return self.value

    @property
    def is_fixed(self) -> bool:
        return True

    def _fields(self) -> dict[str, Any]:
        return {"value": self.value}


PARAM_TYPES: dict[str, type[Param]] = {cls.kind: cls for cls in (Float, Int, Categorical, Fixed)}
