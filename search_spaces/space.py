"""A search space: parameters with their conditions, and the fidelity a sweep trains along.

The declarative form (YAML or JSON, or the same mapping in Python)::

    description: muP GPT proxy
    fidelity: {name: tokens, min: 131072, max: 3538944}
    parameters:
      learning_rate: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
      batch_size: {type: int, low: 8, high: 256, log: true}
      schedule: {type: categorical, choices: [cosine, wsd]}
      decay_fraction: {type: float, low: 0.1, high: 0.5, condition: {schedule: [wsd]}}
      seq_len: {type: fixed, value: 128}

Every error is one line that names where it is (the file or study), the parameter, and what
to change, because the person reading it is about to fix a file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from search_spaces.errors import SpaceError, did_you_mean
from search_spaces.params import PARAM_TYPES, Fixed, Param, number_from

_TOP_LEVEL = ("description", "fidelity", "parameters")
_FIDELITY_KEYS = ("name", "min", "max")


@dataclass(frozen=True)
class Fidelity:
    """The budget a trial trains to (steps, tokens, epochs), between ``min`` and ``max``."""

    name: str
    min: float
    max: float

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SpaceError(f"fidelity name must be a non-empty string, got {self.name!r}")
        for end in ("min", "max"):
            number = number_from(getattr(self, end), f"fidelity {end}")
            object.__setattr__(self, end, int(number) if number.is_integer() else number)
        if self.min < 0:
            raise SpaceError(f"fidelity min {self.min:g} must be >= 0")
        if self.min >= self.max:
            raise SpaceError(f"fidelity min {self.min:g} must be < max {self.max:g}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "min": self.min, "max": self.max}

    def __str__(self) -> str:
        return f"{self.name} {_short(self.min)}..{_short(self.max)}"


class SearchSpace:
    """Parameters (in an order where parents come before the parameters they condition) and
    an optional fidelity. Immutable; equal spaces have equal :meth:`to_dict`."""

    def __init__(
        self,
        params: Mapping[str, Param],
        fidelity: Fidelity | None = None,
        description: str = "",
        *,
        source: str = "search space",
    ) -> None:
        if not isinstance(params, Mapping) or not params:
            raise SpaceError(f"{source}: a search space needs a mapping of parameter names to parameters")
        for name, param in params.items():
            if not isinstance(name, str) or not name:
                raise SpaceError(f"{source}: a parameter name must be a non-empty string, got {name!r}")
            if not isinstance(param, Param):
                raise SpaceError(
                    f"{source}: parameter {name!r}: {param!r} is not a Float, Int, Categorical or Fixed"
                )
        if fidelity is not None and not isinstance(fidelity, Fidelity):
            raise SpaceError(f"{source}: fidelity must be a Fidelity(name, min, max), got {fidelity!r}")
        self._params = _ordered(dict(params), source)
        self.fidelity = fidelity
        self.description = str(description or "")
        self.source = source

    # ------------------------------------------------------------------ structure

    @property
    def params(self) -> list[Param]:
        return list(self._params.values())

    @property
    def names(self) -> list[str]:
        return list(self._params)

    @property
    def dimensions(self) -> list[str]:
        """The searched parameters, in the order of the unit-cube coordinates (fixed ones
        have no coordinate)."""
        return [name for name, param in self._params.items() if not param.is_fixed]

    def with_fixed(self, values: Mapping[str, Any], *, fidelity: Fidelity | None = None) -> SearchSpace:
        """This space with ``values`` fixed (added, or replacing the searched parameter of that
        name) and optionally another fidelity: one space per proxy width in a sweep."""
        params = {**self._params, **{name: Fixed(value) for name, value in values.items()}}
        return SearchSpace(params, fidelity or self.fidelity, self.description, source=self.source)

    def __getitem__(self, name: str) -> Param:
        try:
            return self._params[name]
        except KeyError:
            raise SpaceError(f"{self.source}: no parameter {name!r}{did_you_mean(name, self._params)}") from None

    def __len__(self) -> int:
        return len(self._params)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True, default=str))

    def __repr__(self) -> str:
        fidelity = f", fidelity={self.fidelity.name}[{self.fidelity.min:g}, {self.fidelity.max:g}]" if self.fidelity else ""
        return f"SearchSpace({', '.join(self._params)}{fidelity})"

    def is_active(self, name: str, config: Mapping[str, Any]) -> bool:
        """Whether ``name`` exists in a configuration with these parent values."""
        for parent, values in self[name].condition.items():
            if parent not in config or not self.is_active(parent, config):
                return False
            if not any(_same(config[parent], value) for value in values):
                return False
        return True

    # ------------------------------------------------------------------ values

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """A random configuration: each active parameter from its prior (uniform on the cube)."""
        config: dict[str, Any] = {}
        for name, param in self._params.items():
            if self.is_active(name, config):
                config[name] = param.sample(rng)
        return config

    def default_config(self) -> dict[str, Any]:
        """Each active parameter's declared default, else the middle of its range (of its log
        range for log parameters) or its first choice."""
        config: dict[str, Any] = {}
        for name, param in self._params.items():
            if self.is_active(name, config):
                config[name] = param.default if param.default is not None else param.midpoint()
        return config

    def encode(self, config: Mapping[str, Any]) -> np.ndarray:
        """The configuration as a point of [0, 1]^len(dimensions); inactive parameters sit at 0.5."""
        return np.array(
            [
                self._params[name].encode(config[name]) if name in config else 0.5
                for name in self.dimensions
            ],
            dtype=float,
        )

    def decode(self, point: Sequence[float] | np.ndarray) -> dict[str, Any]:
        """The configuration at a point of the cube (any point, clipped into it), with only
        the parameters active there."""
        point = np.asarray(point, dtype=float)
        if point.shape != (len(self.dimensions),):
            raise SpaceError(
                f"{self.source}: a point of this space has {len(self.dimensions)} coordinates, got shape {point.shape}"
            )
        coordinate = dict(zip(self.dimensions, point.tolist(), strict=True))
        config: dict[str, Any] = {}
        for name, param in self._params.items():
            if self.is_active(name, config):
                config[name] = param.decode(coordinate.get(name, 0.5))
        return config

    def validate_config(self, config: Mapping[str, Any], source: str | None = None) -> dict[str, Any]:
        """The configuration normalised (ints as int), or SpaceError naming the parameter:
        unknown names, missing active parameters, values out of range, inactive ones given."""
        where = source or self.source
        if not isinstance(config, Mapping):
            raise SpaceError(f"{where}: a configuration must be a mapping of parameter to value, got {config!r}")
        for name in config:
            if name not in self._params:
                raise SpaceError(f"{where}: unknown parameter {name!r}{did_you_mean(name, self._params)}")
        normalised: dict[str, Any] = {}
        for name, param in self._params.items():
            active = self.is_active(name, normalised)
            if not active:
                if name in config:
                    raise SpaceError(f"{where}: parameter {name!r} is inactive here ({_describe(param)}); leave it out")
                continue
            if name not in config:
                raise SpaceError(f"{where}: parameter {name!r} is missing")
            try:
                normalised[name] = param.check(config[name])
            except SpaceError as error:
                raise SpaceError(f"{where}: parameter {name!r}: {error}") from None
        return normalised

    # ------------------------------------------------------------------ (de)serialisation

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.description:
            out["description"] = self.description
        if self.fidelity is not None:
            out["fidelity"] = self.fidelity.to_dict()
        out["parameters"] = {name: param.to_dict() for name, param in self._params.items()}
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "search space") -> SearchSpace:
        """Build and validate a space from its declarative form; SpaceError names ``source``."""
        if not isinstance(data, Mapping):
            raise SpaceError(f"{source}: a search space must be a mapping with 'parameters', got {type(data).__name__}")
        for key in data:
            if key not in _TOP_LEVEL:
                raise SpaceError(
                    f"{source}: unknown key {key!r}{did_you_mean(key, _TOP_LEVEL)} "
                    f"(a space has {', '.join(_TOP_LEVEL)})"
                )
        parameters = data.get("parameters")
        if not isinstance(parameters, Mapping) or not parameters:
            raise SpaceError(f"{source}: 'parameters' must map each parameter name to its definition")
        params = {str(name): _param_from_dict(str(name), spec, source) for name, spec in parameters.items()}
        fidelity = _fidelity_from_dict(data.get("fidelity"), source)
        return cls(params, fidelity, data.get("description") or "", source=source)


def load_space(path: str | Path) -> SearchSpace:
    """Read a YAML or JSON space file; SpaceError names the file and line on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpaceError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SpaceError(f"{path}: cannot be read ({error})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "syntax error"
        raise SpaceError(f"{path}: not valid YAML{where}: {problem}") from None
    return SearchSpace.from_dict(data, source=str(path))


def config_hash(config: Mapping[str, Any]) -> str:
    """A stable hash of a configuration (SHA-256 of its canonical JSON): equal configurations
    hash equally in any process, so a search can tell what it has already tried."""
    canonical = json.dumps(_plain(dict(config)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# ---------------------------------------------------------------------- helpers


def _short(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:.4g}"


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _same(a: Any, b: Any) -> bool:
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _describe(param: Param) -> str:
    return "active only when " + " and ".join(
        f"{parent} is one of {list(values)!r}" for parent, values in param.condition.items()
    )


def _param_from_dict(name: str, spec: Any, source: str) -> Param:
    where = f"{source}: parameter {name!r}"
    if not isinstance(spec, Mapping):
        raise SpaceError(f"{where}: must be a mapping with a 'type' ({', '.join(PARAM_TYPES)}), got {spec!r}")
    kind = spec.get("type")
    if kind not in PARAM_TYPES:
        hint = did_you_mean(kind, PARAM_TYPES) if isinstance(kind, str) else ""
        raise SpaceError(f"{where}: unknown type {kind!r}{hint}; expected one of {', '.join(PARAM_TYPES)}")
    cls = PARAM_TYPES[kind]
    allowed = set(cls.__dataclass_fields__)
    fields = {key: value for key, value in spec.items() if key != "type"}
    for key in fields:
        if key not in allowed:
            raise SpaceError(f"{where}: unknown key {key!r}{did_you_mean(key, allowed)} for type {kind!r} "
                             f"(allowed: {', '.join(sorted(allowed))})")
    try:
        return cls(**fields)
    except SpaceError as error:
        raise SpaceError(f"{where}: {error}") from None
    except TypeError as error:
        raise SpaceError(f"{where}: {error}") from None


def _fidelity_from_dict(spec: Any, source: str) -> Fidelity | None:
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise SpaceError(f"{source}: fidelity must be a mapping with name, min and max, got {spec!r}")
    for key in spec:
        if key not in _FIDELITY_KEYS:
            raise SpaceError(f"{source}: fidelity has no key {key!r}{did_you_mean(key, _FIDELITY_KEYS)} "
                             "(it has name, min, max)")
    missing = [key for key in _FIDELITY_KEYS if key not in spec]
    if missing:
        raise SpaceError(f"{source}: fidelity is missing {missing[0]!r} (it needs name, min and max)")
    try:
        return Fidelity(spec["name"], spec["min"], spec["max"])
    except SpaceError as error:
        raise SpaceError(f"{source}: {error}") from None


def _ordered(params: dict[str, Param], source: str) -> dict[str, Param]:
    """Parents before children (keeping the declared order otherwise); conditions on unknown
    parameters, impossible values and cycles are errors."""
    for name, param in params.items():
        for parent, values in param.condition.items():
            if parent not in params:
                raise SpaceError(
                    f"{source}: parameter {name!r}: condition on unknown parameter {parent!r}"
                    f"{did_you_mean(parent, params)}"
                )
            if parent == name:
                raise SpaceError(f"{source}: parameter {name!r}: a condition cannot name the parameter itself")
            for value in values:
                try:
                    params[parent].check(value)
                except SpaceError as error:
                    raise SpaceError(
                        f"{source}: parameter {name!r}: condition value {value!r} can never hold for "
                        f"{parent!r} ({error})"
                    ) from None
    ordered: dict[str, Param] = {}
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in ordered:
            return
        if name in visiting:
            cycle = " -> ".join([*visiting[visiting.index(name):], name])
            raise SpaceError(f"{source}: parameter {name!r}: conditions form a cycle ({cycle})")
        visiting.append(name)
        for parent in params[name].condition:
            visit(parent)
        visiting.pop()
        ordered[name] = params[name]

    for name in params:
        visit(name)
    return ordered
