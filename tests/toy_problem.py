"""The toy multi-fidelity problem the Hyperband and DEHB tests share: a 2-d quadratic whose
value falls with the budget, over a space whose fidelity range each test picks."""

from __future__ import annotations

from search_spaces import Fidelity, Float, SearchSpace


def toy_space(min_budget: float = 1, max_budget: float = 81) -> SearchSpace:
    return SearchSpace({"x": Float(0.0, 1.0), "y": Float(0.0, 1.0)}, fidelity=Fidelity("steps", min_budget, max_budget))


def quadratic(config, budget, report):  # type: ignore[no-untyped-def]
    value = (config["x"] - 0.3) ** 2 + (config["y"] - 0.7) ** 2 + 1.0 / budget
    report(budget, value)
    return value
