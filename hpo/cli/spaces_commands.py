"""``hpo spaces list|show|validate``: the built-in spaces, and a check of a user's file before
a sweep is launched on it (exit 2 with the one-line error when it is wrong)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hpo.cli.options import console
from search_spaces import (
    BUILTIN_SPACES,
    SearchSpace,
    SpaceError,
    builtin_spaces,
    get_builtin,
    load_space,
)
from search_spaces.errors import did_you_mean

spaces_app = typer.Typer(help="List, show and validate search spaces.", no_args_is_help=True)


@spaces_app.command("list")
def list_command() -> None:
    """The built-in spaces: muP proxies and synthetic benchmarks."""
    table = Table(show_edge=False, pad_edge=False)
    for column in ("name", "parameters", "fidelity", "description"):
        table.add_column(column, overflow="fold")
    for name, space in builtin_spaces().items():
        table.add_row(
            name,
            str(len(space)),
            str(space.fidelity) if space.fidelity else "-",
            space.description,
        )
    console.print(table)


@spaces_app.command("show")
def show_command(name: Annotated[str, typer.Argument(help="A built-in space's name or a space file.")]) -> None:
    """Print a space in the file format (a starting point for your own)."""
    typer.echo(resolve_space(name).to_yaml(), nl=False)


@spaces_app.command("validate")
def validate_command(path: Annotated[Path, typer.Argument(help="A search-space file (YAML or JSON).")]) -> None:
    """Check a space file; exit 2 with one line naming the parameter and the problem."""
    space = load_space(path)
    fidelity = f", fidelity {space.fidelity}" if space.fidelity else ""
    console.print(f"{path}: ok, {len(space)} parameters ({len(space.dimensions)} searched){fidelity}")


def resolve_space(spec: str) -> SearchSpace:
    """A file wins over a built-in of the same name: the user pointed at it."""
    if Path(spec).exists():
        return load_space(spec)
    if spec in BUILTIN_SPACES:
        return get_builtin(spec)
    raise SpaceError(
        f"{spec}: no such file, and no built-in space of that name{did_you_mean(spec, BUILTIN_SPACES)}; "
        f"built-ins: {', '.join(BUILTIN_SPACES)}"
    )
