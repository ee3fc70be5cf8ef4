"""``hpo study``: create (optionally warm-started), list, show, delete, export and import studies."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from db.models import Direction, TrialState
from db.records import StudySettings
from hpo.cli.errors import CLIError
from hpo.cli.options import StorageOption, console, parse_key_values
from hpo.cli.spaces_commands import resolve_space
from hpo.importing import import_file
from hpo.importing import warm_start as hpo_warm_start
from hpo.study import create_study, delete_study, list_studies, load_study
from search_spaces import SearchSpace

study_app = typer.Typer(help="Create, inspect and export studies.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="The study's name.", show_default=False)]


class ExportFormat(str, Enum):
    csv = "csv"
    json = "json"


#: The defaults ``hpo study create`` shows and uses: the settings' own.
DEFAULTS = StudySettings()


@study_app.command("create")
def create_command(
    name: NameArg,
    storage: StorageOption = None,
    direction: Annotated[Direction, typer.Option(help="Whether lower or higher values are better.")] = DEFAULTS.direction,
    objective: Annotated[str | None, typer.Option(help="The objective's name, e.g. proxy:gpt or module:function.")] = None,
    space: Annotated[str | None, typer.Option(help="A search-space file (YAML or JSON), or a built-in space's name (hpo spaces list).")] = None,
    algorithm: Annotated[str, typer.Option(help="The search algorithm's name.")] = DEFAULTS.algorithm,
    setting: Annotated[list[str] | None, typer.Option(help="An algorithm setting KEY=VALUE; repeatable.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A tag KEY=VALUE, e.g. width=256; repeatable.")] = None,
    sweep: Annotated[str | None, typer.Option(help="Group this study into a sweep (created if new).")] = None,
    heartbeat_timeout: Annotated[float, typer.Option(help="Seconds without a heartbeat before a running trial is re-queued.")] = DEFAULTS.heartbeat_timeout,
    max_retries: Annotated[int, typer.Option(help="Times a lost trial is re-queued before it is marked failed.")] = DEFAULTS.max_retries,
    load_if_exists: Annotated[bool, typer.Option("--load-if-exists", help="Succeed quietly if the study exists.")] = False,
    warm_start: Annotated[str | None, typer.Option(help="Run an earlier study's best configurations first (their results stay there).")] = None,
    warm_start_top: Annotated[int, typer.Option(min=1, help="How many of the --warm-start study's best configurations to run first.")] = 3,
) -> None:
    """Create a study."""
    old = load_study(warm_start, storage) if warm_start else None  # an unknown name fails before creating
    study = create_study(
        name,
        storage,
        direction=direction,
        objective=objective,
        search_space=resolve_space(space) if space else None,
        algorithm=algorithm,
        algorithm_settings=parse_key_values(setting, "setting"),
        tags=parse_key_values(tag, "tag"),
        sweep=sweep,
        heartbeat_timeout=heartbeat_timeout,
        max_retries=max_retries,
        load_if_exists=load_if_exists,
    )
    console.print(f"study [bold]{study.name}[/] in {study.store.display_url}")
    if old is not None and not any(study.counts().values()):  # with --load-if-exists, once
        numbers = hpo_warm_start(study, old, top=warm_start_top)
        console.print(f"queued {len(numbers)} best configurations of {old.name!r} to run first")


@study_app.command("list")
def list_command(
    storage: StorageOption = None,
    sweep: Annotated[str | None, typer.Option(help="Only the studies of this sweep.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the studies with their trials by state and best value."""
    summaries = list_studies(storage, sweep=sweep)
    if as_json:
        from hpo.service.records import studies_json

        print(json.dumps(studies_json(summaries), indent=1, allow_nan=False))
        return
    if not summaries:
        console.print("no studies yet: create one with `hpo study create NAME`")
        return
    table = Table(box=None, header_style="bold")
    for column in ("name", "sweep", "algorithm", "direction", "trials", *STATE_COLUMNS, "best", "last activity"):
        table.add_column(column, justify="right" if column in (*STATE_COLUMNS, "trials", "best") else "left")
    for s in summaries:
        table.add_row(
            s.study.name,
            s.study.sweep or "",
            s.study.algorithm,
            s.study.direction.value,
            str(s.n_trials),
            *(str(s.counts[state]) for state in TrialState),
            _fmt(s.best_value),
            _when(s.last_activity),
        )
    console.print(table)


STATE_COLUMNS = tuple(state.value for state in TrialState)


@study_app.command("show")
def show_command(
    name: NameArg,
    storage: StorageOption = None,
    top: Annotated[int, typer.Option(help="How many of the best trials to list.")] = 10,
) -> None:
    """Show a study's settings, its trials by state and its best trials."""
    study = load_study(name, storage)
    console.print(f"[bold]{study.name}[/]  ({study.store.display_url})")
    facts = {
        "direction": study.direction.value,
        "objective": study.record.objective or "-",
        "algorithm": study.record.algorithm + (f" {json.dumps(study.record.algorithm_settings)}" if study.record.algorithm_settings else ""),
        "sweep": study.record.sweep or "-",
        "tags": json.dumps(study.record.tags) if study.record.tags else "-",
        "search space": _describe_space(study.search_space),
        "faults": f"heartbeat timeout {study.record.heartbeat_timeout:g}s, max retries {study.record.max_retries}",
    }
    for key, value in facts.items():
        console.print(f"  {key:<13} {value}")
    counts = study.counts()
    console.print("  trials        " + "  ".join(f"{state.value} {n}" for state, n in counts.items()))
    trials = study.get_trials([TrialState.COMPLETED], with_intermediate=True)
    if not trials:
        console.print("  no completed trial yet")
        return
    sign = study.direction.sign
    best_first = sorted(trials, key=lambda t: (sign * (t.value or 0.0), t.number))[:top]
    table = Table(title=f"best {len(best_first)} of {len(trials)} completed trials", box=None, header_style="bold")
    param_names = sorted({p for t in best_first for p in t.params})
    for column in ("#", "value", "budget", *param_names, "worker", "s"):
        table.add_column(column, justify="right")
    for t in best_first:
        table.add_row(
            str(t.number),
            _fmt(t.value),
            _fmt(t.budget if t.budget is not None else t.last_budget),
            *(_fmt(t.params.get(p)) for p in param_names),
            t.worker_id or "",
            _fmt(t.duration_s),
        )
    console.print(table)


@study_app.command("delete")
def delete_command(
    name: NameArg,
    storage: StorageOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a study with all its trials."""
    study = load_study(name, storage)
    n = sum(study.counts().values())
    if not yes:
        if not sys.stdin.isatty():
            raise CLIError(f"refusing to delete study {name!r} ({n} trials) without --yes")
        typer.confirm(f"delete study {name!r} and its {n} trials?", abort=True)
    delete_study(name, storage)
    console.print(f"deleted study {name!r} ({n} trials)")


@study_app.command("export")
def export_command(
    name: NameArg,
    storage: StorageOption = None,
    format: Annotated[ExportFormat, typer.Option("--format", "-f", help="csv: one row per trial; json: everything.")] = ExportFormat.csv,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: standard output).")] = None,
) -> None:
    """Export a study's trials as CSV or JSON."""
    study = load_study(name, storage)
    text = study.to_json() if format is ExportFormat.json else study.to_dataframe().to_csv(index=False)
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    try:
        output.write_text(text)
    except OSError as exc:
        raise CLIError(f"cannot write {str(output)!r}: {exc.strerror}") from None
    console.print(f"wrote {len(study.trials)} trials of {name!r} to {output}")


@study_app.command("import")
def import_command(
    name: NameArg,
    file: Annotated[Path, typer.Argument(help="A trials CSV or JSON: hpo study export's, Optuna's trials_dataframe CSV, or a list of {params, value, budget}.", show_default=False)],
    storage: StorageOption = None,
) -> None:
    """Add the finished trials of a file to a study, for its algorithm to learn from."""
    study = load_study(name, storage)
    numbers = import_file(study, file)
    console.print(f"added {len(numbers)} finished trials from {file} to {name!r}")


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _when(stamp: datetime | None) -> str:
    return "-" if stamp is None else stamp.strftime("%m-%d %H:%M:%S")


def _describe_space(space: SearchSpace | None) -> str:
    if space is None:
        return "-"
    fidelity = f" (fidelity {space.fidelity})" if space.fidelity else ""
    return ", ".join(space.names) + fidelity
