"""What every benchmark script shares: where results go, the progress log, JSON-safe values
and their writing, the report's number format and tables, a quiet local Ray, and the
figures' canvas.

Each script writes ``benchmarks/results/<name>.json`` and draws ``<name>.png`` from that
same dict (``figure(results)``), so a committed picture can be redrawn from its committed
JSON without re-running the benchmark (``tests/test_figures.py`` does).
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def log(message: str, *, clock: bool = True) -> None:
    """A progress line on stderr (stdout carries the report), stamped with the time of day."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}" if clock else message, file=sys.stderr, flush=True)


def fmt(x: float | None, spec: str) -> str:
    """``x`` in ``spec``; "-" for a missing or non-finite value (a diverged run, no data)."""
    return "-" if x is None or not math.isfinite(x) else format(x, spec)


def json_safe(x: Any) -> Any:
    """JSON-ready: non-finite floats as null, numpy scalars as Python ones, tuples as lists,
    keys as strings, and no private (``_``) keys: those hold what only the live run draws."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items() if not str(k).startswith("_")}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def write_json(path: Path, payload: dict[str, Any], *, indent: int = 2) -> None:
    """The results file, made JSON-safe, with a final newline; its folder is created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_safe(payload), indent=indent) + "\n")


def machine(**extra: Any) -> dict[str, Any]:
    """The host a result was measured on: Python, cores and platform, then ``extra`` (library
    versions, load averages), in that order."""
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(), **extra}


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]], *, width: int,
                left: Sequence[str], no_wrap: Sequence[str] = ()) -> None:
    """A report table: rich's when it is installed (columns named in ``left`` flush left, the
    rest right), else pipe-separated lines."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover
        print(title)
        print(" | ".join(header))
        for row in rows:
            print(" | ".join(row))
        return
    table = Table(title=title)
    for h in header:
        table.add_column(h, justify="left" if h in left else "right", no_wrap=h in no_wrap)
    for row in rows:
        table.add_row(*row)
    Console(width=width).print(table)


def quiet_ray_env() -> None:
    """Ray and Tune without the new console output, sync warnings or log de-duplication,
    unless the caller's environment says otherwise, set before ``ray.init``: the anchors (the
    Ray Tune runs) are compared with ours, and their console work is not Tune's scheduling.
    Tune's auto callback loggers are each script's choice (``worker_overhead`` measures Tune
    with them on too)."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "100")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")


def new_figure(width: float, height: float) -> Figure:
    """A figure with constrained layout, outside pyplot (nothing to close, no global state)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")
