"""Turning an objective spec into the callable a worker runs.

A spec is ``module:function`` (any importable module; the function is called as
``objective(config, budget, report) -> float``) or the name of a built-in objective. The
driver resolves the spec once before starting any worker, so a typo is a one-line error and
not a cluster of crashed actors; each worker then resolves it again in its own process, so
only the string crosses the wire and the objective's module is imported where it runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from hpo.runner import Objective
from workers.errors import ObjectiveError
from workers.problems import PROBLEMS


def builtin_objectives() -> dict[str, Callable[[], Objective]]:
    """Built-in objectives by name: the synthetic benchmark problems (each evaluated at the
    trial's budget, with the problem's noise), for trying a sweep without writing one."""
    return {name: problem.objective for name, problem in PROBLEMS.items()}


def resolve_objective(spec: str) -> Objective:
    """The objective a spec names; :class:`ObjectiveError` with the fix when it names nothing."""
    builtins = builtin_objectives()
    if spec in builtins:
        return builtins[spec]()
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ObjectiveError(
            f"objective {spec!r} is neither module:function nor a built-in; built-ins: {', '.join(sorted(builtins))}"
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - an import can fail in any way; each gets one line
        raise ObjectiveError(
            f"cannot import module {module_name!r} of objective {spec!r}: {type(exc).__name__}: {exc}"
        ) from None
    function = getattr(module, attr, None)
    if function is None:
        raise ObjectiveError(f"module {module_name!r} has no attribute {attr!r} (objective {spec!r})")
    if not callable(function):
        raise ObjectiveError(f"{spec!r} is a {type(function).__name__}, not a function")
    return function
