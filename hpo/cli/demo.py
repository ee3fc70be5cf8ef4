"""``hpo demo``: the product's main job on the embedded default, as far as it exists today.

Today that is the study store coordinating several worker processes: a study in SQLite,
random configurations of the multi-fidelity Branin function queued in it, worker processes
draining the queue in parallel with heartbeats and intermediate values, then the results
table, a plot and exports. The search algorithms (issue 3), Ray workers (4), muP proxies (5)
and scaling laws (6) will take their places in this flow as they land.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from db.models import TrialState
from hpo.cli.options import StorageOption, console
from db.errors import StoreError, StudyNotFoundError
from hpo.study import Study, create_study, delete_study, load_study
from workers.queue_worker import Report, drain_queue
from workers.synthetic import BRANIN_BOUNDS, BRANIN_OPTIMUM, branin_cost, branin_mf

FIDELITIES = (1 / 9, 1 / 3, 1.0)
# Seconds of sleep per unit of the benchmark's cost model: makes the workers' parallelism visible.
SECONDS_PER_COST = 0.15


def demo(
    storage: StorageOption = None,
    study_name: Annotated[str, typer.Option("--study", help="Name of the demo study (replaced if it exists).")] = "demo-branin",
    trials: Annotated[int, typer.Option(min=1, help="Configurations to evaluate.")] = 48,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 4,
    output: Annotated[Path, typer.Option(help="Folder for the exports and plots.")] = Path("hpo-demo"),
    seed: Annotated[int, typer.Option(help="Seed of the random configurations.")] = 0,
) -> None:
    """Run a small parallel search end to end on the default SQLite store and show the result."""
    study = _fresh_study(study_name, storage)
    console.print(f"[bold]1.[/] study [bold]{study.name}[/] in {study.store.display_url}")
    rng = np.random.default_rng(seed)
    configs = [{k: float(rng.uniform(lo, hi)) for k, (lo, hi) in BRANIN_BOUNDS.items()} for _ in range(trials)]
    study.enqueue_many(configs, budget=1.0)
    console.print(f"[bold]2.[/] queued {trials} random configurations of multi-fidelity Branin (fidelity 1/9, 1/3, 1)")
    console.print(f"[bold]3.[/] {workers} worker processes drain the queue through the store")
    _run_workers(study, workers, trials)
    _summarise(study, output)


def _fresh_study(name: str, storage: str | None) -> Study:
    try:
        delete_study(name, storage)
    except StudyNotFoundError:
        pass
    return create_study(
        name,
        storage,
        objective="workers.synthetic:branin_mf",
        search_space={"x1": {"type": "float", "low": -5.0, "high": 10.0}, "x2": {"type": "float", "low": 0.0, "high": 15.0}},
        algorithm="random",
        tags={"demo": True},
        heartbeat_timeout=10.0,
    )


def branin_objective(config: Mapping[str, Any], budget: float | None, report: Report) -> float:
    """Branin evaluated at three rising fidelities, sleeping the benchmark's simulated cost."""
    value = float("nan")
    for z in FIDELITIES:
        time.sleep(SECONDS_PER_COST * branin_cost(z))
        value = branin_mf(config["x1"], config["x2"], z)
        report(z, value)
    return value


def _worker(storage_url: str, study_name: str) -> None:
    drain_queue(load_study(study_name, storage_url), branin_objective)


def _run_workers(study: Study, n_workers: int, n_trials: int) -> None:
    url = study.store.url.render_as_string(hide_password=False)
    context = mp.get_context("spawn")
    procs = [context.Process(target=_worker, args=(url, study.name), daemon=True) for _ in range(n_workers)]
    for proc in procs:
        proc.start()
    columns = (TextColumn("    trials"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("trials", total=n_trials, status="")
        while True:
            counts = study.counts()
            done = sum(n for state, n in counts.items() if state.is_finished)
            best = _best(study)
            status = f"running {counts[TrialState.RUNNING]}  failed {counts[TrialState.FAILED]}  best {best}"
            progress.update(task, completed=done, status=status)
            if done >= n_trials or not any(p.is_alive() for p in procs):
                break
            time.sleep(0.25)
    for proc in procs:
        proc.join(timeout=30)


def _best(study: Study) -> str:
    try:
        return f"{study.best_value:.4f}"
    except StoreError:  # no trial completed yet
        return "-"


def _summarise(study: Study, output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = study.trials
    counts = study.counts()
    best = study.best_trial
    workers = sorted({t.worker_id for t in trials if t.worker_id})
    console.print(
        f"[bold]4.[/] {counts[TrialState.COMPLETED]} completed, {counts[TrialState.FAILED]} failed, "
        f"run by {len(workers)} workers; best value {best.value:.4f} (optimum {BRANIN_OPTIMUM}) "
        f"at x1={best.params['x1']:.3f}, x2={best.params['x2']:.3f} (trial {best.number})"
    )
    output.mkdir(parents=True, exist_ok=True)
    study.to_csv(output / "trials.csv")
    study.to_json(output / "study.json")
    finished = sorted((t for t in trials if t.value is not None and t.finished_at), key=lambda t: t.finished_at)  # type: ignore[arg-type, return-value]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(range(1, len(finished) + 1), np.minimum.accumulate([t.value for t in finished]), drawstyle="steps-post")
    ax1.axhline(BRANIN_OPTIMUM, color="grey", linestyle="--", label="optimum")
    ax1.set(xlabel="trials finished", ylabel="best value so far", yscale="log", title="Best value over time")
    ax1.legend()
    for t in trials:
        budgets = sorted(t.intermediate_values)
        ax2.plot(budgets, [t.intermediate_values[b] for b in budgets], color="tab:blue", alpha=0.3, marker=".")
    ax2.set(xlabel="fidelity z", ylabel="value", yscale="log", title="Learning curves (value by fidelity)")
    fig.tight_layout()
    fig.savefig(output / "best_value.png", dpi=110)
    plt.close(fig)
    console.print(f"[bold]5.[/] wrote {output}/trials.csv, {output}/study.json and {output}/best_value.png")
    console.print(f"    inspect it with: hpo study show {study.name} --storage {study.store.display_url}")
