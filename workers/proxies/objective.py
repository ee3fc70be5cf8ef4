"""The proxies as sweep objectives: ``proxy:gpt``, ``proxy:llama`` and ``proxy:mlp``.

The objective reads the study it serves once, when the worker resolves it: the space's
fidelity says whether the budget is in tokens or steps, and the Hyperband rungs of that
fidelity (with the study's eta, 3 by default) are where held-out loss is reported, so an
early-stopping algorithm sees a value at every rung it judges. After training it records
the model's non-embedding parameter count N and the tokens D it trained on in the trial's
attrs (``n_params``, ``tokens``, ``steps``), which is what the scaling module fits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hpo.algorithms.hyperband import rung_budgets
from hpo.runner import Objective, Report
from workers.errors import ObjectiveError
from workers.proxies.trainer import BUDGET_UNITS, LANGUAGE_MODELS, train

if TYPE_CHECKING:
    from hpo.study import Study

DEFAULT_ETA = 3.0


def proxy_objective(model: str, study: Study | None = None) -> Objective:
    """The ``model`` proxy (``gpt``, ``llama`` or ``mlp``) as an objective for ``study``'s trials."""
    space = None if study is None else study.search_space
    fidelity = None if space is None else space.fidelity
    if fidelity is not None and fidelity.name not in BUDGET_UNITS:
        raise ObjectiveError(
            f"proxy:{model} trains to a budget in {' or '.join(BUDGET_UNITS)}; study "
            f"{study.name!r} declares its fidelity as {fidelity.name!r}"  # type: ignore[union-attr]
        )
    unit = fidelity.name if fidelity is not None else ("tokens" if model in LANGUAGE_MODELS else "steps")
    rungs: list[float] = []
    if fidelity is not None:
        eta = float((study.record.algorithm_settings if study is not None else {}).get("eta", DEFAULT_ETA))
        rungs = rung_budgets(fidelity.min, fidelity.max, eta)

    def objective(config: Mapping[str, Any], budget: float | None, report: Report) -> float:
        if budget is None:
            raise ObjectiveError(
                f"proxy:{model} needs a budget: give the study's space a fidelity in tokens or steps"
            )
        result = train(model, config, budget, unit=unit, report_at=rungs, report=report)
        record = getattr(report, "record", None)
        if record is not None:
            record(n_params=result.non_embedding_params, tokens=result.tokens, steps=result.steps)
        return result.final_loss

    return objective
