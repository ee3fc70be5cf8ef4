"""``hpo sweep run``: a study's search on Ray workers, with live progress and a summary."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from db.models import TrialState
from hpo.cli.errors import CLIError
from hpo.cli.options import StorageOption, console
from workers.command import DEFAULT_GRACE_S, CommandObjective

#: The shell's convention for a command ended by Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130

sweep_app = typer.Typer(help="Run a study's search on Ray workers.", no_args_is_help=True)


@sweep_app.command("run")
def run_command(
    study: Annotated[str, typer.Argument(help="The study to run (hpo study create).", show_default=False)],
    storage: StorageOption = None,
    objective: Annotated[
        str | None,
        typer.Option(help="module:function, or a built-in (branin, hartmann6, ...); default: the study's.", show_default=False),
    ] = None,
    workers: Annotated[int, typer.Option(help="Workers running trials at once.")] = 1,
    address: Annotated[
        str | None,
        typer.Option(help="A Ray cluster to join (auto, ray://host:10001); default: start a local Ray.", show_default=False),
    ] = None,
    gpus_per_trial: Annotated[float, typer.Option(help="GPUs each worker holds (fractions share a GPU).")] = 0.0,
    cpus_per_trial: Annotated[float, typer.Option(help="CPUs each worker holds.")] = 1.0,
    max_trials: Annotated[
        int | None,
        typer.Option(help="Stop once the study holds this many trials (re-running resumes to the same total).", show_default=False),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Start no trial after this many seconds.", show_default=False)
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No live progress; the summary only.")] = False,
    command: Annotated[
        str | None,
        typer.Option(
            help="Run this command for each trial instead of --objective, e.g. \"torchrun --nproc-per-node 8 train.py "
            "--lr {learning_rate} --steps {budget}\" (docs/trainers.md).",
            show_default=False,
        ),
    ] = None,
    grace_seconds: Annotated[
        float | None,
        typer.Option(help=f"With --command: seconds between SIGTERM and SIGKILL for a pruned trial (default {DEFAULT_GRACE_S:g}).", show_default=False),
    ] = None,
    output_root: Annotated[
        str | None,
        typer.Option(help="With --command: where hpo-runs/STUDY/trial-N go (default: the current directory).", show_default=False),
    ] = None,
) -> None:
    """Run the study's algorithm with Ray workers until --max-trials, --timeout or Ctrl-C."""
    from workers.sweep import run_sweep

    result = run_sweep(
        study,
        _objective(objective, command, grace_seconds, output_root),
        storage=storage,
        workers=workers,
        address=address,
        cpus_per_trial=cpus_per_trial,
        gpus_per_trial=gpus_per_trial,
        max_trials=max_trials,
        timeout=timeout,
        progress=not quiet,
    )
    console.print(f"sweep of {result.study}: {result.wall_s:.1f}s, {result.workers_started} workers started")
    table = Table()
    table.add_column("state")
    table.add_column("trials", justify="right")
    for state in TrialState:
        if result.counts.get(state):
            table.add_row(state.value, str(result.counts[state]))
    console.print(table)
    if result.best is not None:
        console.print(f"best value {result.best.value:.6g} (trial {result.best.number}): {result.best.params}")
    for death in result.deaths:
        console.print(f"worker died and was replaced: {death}")
    if result.interrupted:
        console.print("interrupted: running trials were re-queued; run the same command to resume")
        raise typer.Exit(EXIT_INTERRUPTED)


def _objective(spec: str | None, command: str | None, grace_s: float | None, output_root: str | None) -> str | CommandObjective | None:
    """The objective ``hpo sweep run`` passes on: a spec, a command objective, or None (the
    study's own)."""
    if command is None:
        if grace_s is not None or output_root is not None:
            raise CLIError("--grace-seconds and --output-root go with --command")
        return spec
    if spec is not None:
        raise CLIError("--command and --objective exclude each other; give one")
    return CommandObjective(command, grace_s=DEFAULT_GRACE_S if grace_s is None else grace_s, output_root=output_root)
