"""Turning an objective spec into the callable a worker runs.

A spec is ``module:function`` (any importable module; the function is called as
``objective(config, budget, report) -> float``) or the name of a built-in objective: a
synthetic benchmark problem, or a muP proxy (``proxy:gpt``, ``proxy:llama``, ``proxy:mlp``),
which reads the study it serves (its fidelity's unit and rungs). The driver resolves the spec
once before starting any worker, so a typo is a one-line error and not a cluster of crashed
actors; each worker then resolves it again in its own process, so only the string crosses the
wire and the objective's module is imported where it runs.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from hpo.runner import Objective
from workers.errors import ObjectiveError
from workers.problems import PROBLEMS, Problem

if TYPE_CHECKING:
    from hpo.study import Study

PROXY_MODELS = ("gpt", "llama", "mlp")


def builtin_objectives() -> dict[str, Callable[[Study | None], Objective]]:
    """Built-in objectives by name, each made for the study it will serve: the synthetic
    benchmark problems (evaluated at the trial's budget, with the problem's noise), and the
    muP proxies trained on data that ships with Python and scikit-learn."""
    builtins: dict[str, Callable[[Study | None], Objective]] = {
        name: functools.partial(_problem, problem) for name, problem in PROBLEMS.items()
    }
    for model in PROXY_MODELS:
        builtins[f"proxy:{model}"] = functools.partial(_proxy, model)
    return builtins


def _problem(problem: Problem, study: Study | None) -> Objective:
    return problem.objective()


def _proxy(model: str, study: Study | None) -> Objective:
    from workers.proxies.objective import proxy_objective  # torch loads only when asked for

    return proxy_objective(model, study)


def resolve_objective(spec: str, study: Study | None = None) -> Objective:
    """The objective a spec names, made for ``study``; :class:`ObjectiveError` with the fix
    when it names nothing."""
    builtins = builtin_objectives()
    if spec in builtins:
        return builtins[spec](study)
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
