"""Options and value parsers shared by the ``hpo`` sub-commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
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


def read_mapping_file(path: Path, what: str) -> dict[str, Any]:
    """A YAML or JSON file whose top level is a mapping."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise CLIError(f"cannot read {what} file {str(path)!r}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise CLIError(f"{what} file {str(path)!r} is not valid YAML or JSON{where}") from None
    if not isinstance(data, dict):
        raise CLIError(f"{what} file {str(path)!r} must hold a mapping at the top level, got {type(data).__name__}")
    return data
