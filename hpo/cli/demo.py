"""``hpo demo``: the product's main job on the embedded default, as far as it exists today.

Today that is a multi-fidelity sweep on a local Ray, coordinated by the study store: a study
in SQLite over the multi-fidelity Branin function, Ray workers asking the study's algorithm
(DEHB by default) for trials at rising fidelities and running them in parallel under
heartbeats (:func:`workers.sweep.run_sweep`, as ``hpo sweep run`` does), then the results
table, a plot and exports. muP proxies (issue 5) and scaling laws (6) will take their places
in this flow as they land.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from db.errors import StudyNotFoundError
from db.models import TrialState
from hpo.cli.options import StorageOption, console
from hpo.runner import Report
from hpo.study import Study, create_study, delete_study
from search_spaces import get_builtin
from workers.synthetic import BRANIN_OPTIMUM, branin_cost, branin_mf

# Seconds of sleep per unit of the benchmark's cost model: makes the workers' parallelism visible.
SECONDS_PER_COST = 0.15
#: What the demo's workers run (imported by name in each Ray worker).
OBJECTIVE = "hpo.cli.demo:branin_objective"


def demo(
    storage: StorageOption = None,
    study_name: Annotated[str, typer.Option("--study", help="Name of the demo study (replaced if it exists).")] = "demo-branin",
    algorithm: Annotated[str, typer.Option(help="Search algorithm (see the README's table).")] = "dehb",
    trials: Annotated[int, typer.Option(min=1, help="Trials to run (each at the fidelity the algorithm picks).")] = 80,
    workers: Annotated[int, typer.Option(min=1, help="Ray workers (a local Ray is started).")] = 4,
    output: Annotated[Path, typer.Option(help="Folder for the exports and plots.")] = Path("hpo-demo"),
    seed: Annotated[int, typer.Option(help="Seed of the search algorithm.")] = 0,
) -> None:
    """Run a small parallel multi-fidelity search end to end on the default SQLite store."""
    study = _fresh_study(study_name, storage, algorithm, seed)
    console.print(f"[bold]1.[/] study [bold]{study.name}[/] in {study.store.display_url}")
    fidelity = study.search_space.fidelity
    console.print(
        f"[bold]2.[/] {algorithm} searches multi-fidelity Branin, fidelity {fidelity.name} from "
        f"{fidelity.min:.3g} to {fidelity.max:g}, for {trials} trials"
    )
    console.print(f"[bold]3.[/] {workers} Ray workers (a local Ray) ask the study for trials and run them in parallel")
    from workers.sweep import run_sweep

    result = run_sweep(study, OBJECTIVE, workers=workers, max_trials=trials)
    console.print(f"    {result.wall_s:.1f}s on Ray, {result.workers_started} workers started")
    _summarise(study, output)


def _fresh_study(name: str, storage: str | None, algorithm: str, seed: int) -> Study:
    try:
        delete_study(name, storage)
    except StudyNotFoundError:
        pass
    return create_study(
        name,
        storage,
        objective=OBJECTIVE,
        search_space=get_builtin("branin"),
        algorithm=algorithm,
        algorithm_settings={"seed": seed},
        tags={"demo": True},
        heartbeat_timeout=10.0,
    )


def branin_objective(config: Mapping[str, Any], budget: float | None, report: Report) -> float:
    """Branin at the trial's fidelity, sleeping the benchmark's simulated cost of it."""
    z = 1.0 if budget is None else budget
    time.sleep(SECONDS_PER_COST * branin_cost(z))
    value = branin_mf(config["x1"], config["x2"], z)
    report(z, value)
    return value


def _summarise(study: Study, output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = study.trials
    counts = study.counts()
    workers = sorted({t.worker_id for t in trials if t.worker_id})
    full = [t for t in trials if t.state is TrialState.COMPLETED and t.budget == study.search_space.fidelity.max]
    rungs = Counter(t.budget for t in trials if t.state.is_finished)
    console.print(
        f"[bold]4.[/] {counts[TrialState.COMPLETED]} completed, {counts[TrialState.FAILED]} failed, "
        f"run by {len(workers)} workers; trials per fidelity: "
        + ", ".join(f"{budget:.3g}: {n}" for budget, n in sorted(rungs.items()))
    )
    if full:
        best = min(full, key=lambda t: t.value)  # type: ignore[arg-type, return-value]
        console.print(
            f"    best at full fidelity {best.value:.4f} (optimum {BRANIN_OPTIMUM}) "
            f"at x1={best.params['x1']:.3f}, x2={best.params['x2']:.3f} (trial {best.number})"
        )
    else:
        console.print("    no trial reached full fidelity yet: the first bracket needs about 40 trials; use --trials 80")
    output.mkdir(parents=True, exist_ok=True)
    study.to_csv(output / "trials.csv")
    study.to_json(output / "study.json")
    finished = sorted((t for t in trials if t.value is not None and t.finished_at), key=lambda t: t.finished_at)  # type: ignore[arg-type, return-value]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(range(1, len(finished) + 1), np.minimum.accumulate([t.value for t in finished]), drawstyle="steps-post")
    ax1.axhline(BRANIN_OPTIMUM, color="grey", linestyle="--", label="optimum")
    ax1.set(xlabel="trials finished", ylabel="best value so far", yscale="log", title="Best value over time")
    ax1.legend()
    done = [t for t in trials if t.value is not None and t.budget is not None]
    ax2.scatter([t.budget for t in done], [t.value for t in done], s=12, alpha=0.6)
    ax2.set(xlabel="fidelity z", ylabel="value", xscale="log", yscale="log", title="Trials by the fidelity the algorithm gave them")
    fig.tight_layout()
    fig.savefig(output / "best_value.png", dpi=110)
    plt.close(fig)
    console.print(f"[bold]5.[/] wrote {output}/trials.csv, {output}/study.json and {output}/best_value.png")
    console.print(f"    inspect it with: hpo study show {study.name} --storage {study.store.display_url}")
