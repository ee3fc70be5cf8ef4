"""Options and value parsers shared by the ``hpo`` sub-commands."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from hpo.cli.errors import CLIError

# Piped output is not cut to 80 columns: tables stay whole in logs and files.
console = Console(width=None if sys.stdout.isatty() else 200)

StorageOption = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="Storage URL: sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB "
        "(default: $HPO_STORAGE, else sqlite:///hpo.db in the working directory).",
        show_default=False,
    ),
]


def parse_key_values(items: list[str] | None, what: str) -> dict[str, Any]:
    """``["width=256", "family=gpt"]`` -> ``{"width": 256, "family": "gpt"}`` (values read as JSON when they parse)."""
    parsed: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise CLIError(f"{what} {item!r} is malformed; expected KEY=VALUE, e.g. width=256")
        try:
            parsed[key] = json.loads(raw)
        except json.JSONDecodeError:
            parsed[key] = raw
    return parsed
