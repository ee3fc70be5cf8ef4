"""The trainer's side of a command objective: report evaluations, read the trial's settings,
learn when to stop. ``from hpo.client import report``.

A command objective (``hpo sweep run STUDY --command "torchrun ... train.py --lr {learning_rate}"``)
launches the user's own training script. The worker that launched it tells the script, through
environment variables, where to write and what it is running:

- ``HPO_METRICS_FILE``: where :func:`report` appends one JSON object per evaluation,
  ``{"budget": ..., "value": ...}`` plus any other metrics. The worker tails the file, records
  each value in the study and asks the study's algorithm whether to go on. A script may write
  these lines itself instead of importing this module.
- ``HPO_STOP_FILE``: created by the worker when the study stops the trial (pruned); the worker
  then sends SIGTERM, and SIGKILL after a grace period. :func:`should_stop` lets a script end
  cleanly first (save, tear down its process group).
- ``HPO_PARAMS`` (the configuration, JSON), ``HPO_BUDGET``, ``HPO_TRIAL``, ``HPO_STUDY``,
  ``HPO_OUTPUT_DIR``: what the command's placeholders also give.

Why files and not a connection to the study store: the script may run where the database is
not reachable (inside a container, on a rank that never should open one), it may be any
language, and a metrics file left behind is a record of the run. Invariants:

- Only global rank 0 (``RANK``, as torchrun, DeepSpeed, Lightning and Accelerate set it)
  writes; every other rank's :func:`report` is a no-op, so a DDP script can call it on all
  ranks. :func:`should_stop` answers the same on every rank (they all see the stop file).
- Outside a command objective (no ``HPO_METRICS_FILE``), :func:`report` does nothing and says
  go on, so the same script runs by hand unchanged.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

METRICS_FILE = "HPO_METRICS_FILE"
STOP_FILE = "HPO_STOP_FILE"
PARAMS = "HPO_PARAMS"
BUDGET = "HPO_BUDGET"
TRIAL = "HPO_TRIAL"
STUDY = "HPO_STUDY"
OUTPUT_DIR = "HPO_OUTPUT_DIR"

__all__ = ["budget", "is_reporting_rank", "output_dir", "params", "rank", "report", "should_stop"]


def rank() -> int:
    """This process's global rank (0 when not distributed)."""
    return int(os.environ.get("RANK", "0"))


def is_reporting_rank() -> bool:
    return rank() == 0


def report(budget: float, value: float, **metrics: Any) -> bool:
    """Record ``value`` (the objective: a validation loss, say) at ``budget`` (steps, tokens:
    the study's fidelity); returns whether to go on. Extra ``metrics`` are kept in the line
    for the record. A non-finite value is written as null: the trial is recorded diverged."""
    path = os.environ.get(METRICS_FILE)
    if path and is_reporting_rank():
        line = {"budget": float(budget), "value": _finite_or_none(value), **metrics}
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(line, default=str) + "\n")
    return not should_stop()


def should_stop() -> bool:
    """Whether the study stopped this trial (answered alike on every rank)."""
    path = os.environ.get(STOP_FILE)
    return path is not None and path != "" and Path(path).exists()


def params() -> dict[str, Any]:
    """The trial's configuration ({} outside a command objective)."""
    return dict(json.loads(os.environ.get(PARAMS, "{}")))


def budget() -> float | None:
    """The budget to train to (None when the study has no fidelity, or outside a trial)."""
    raw = os.environ.get(BUDGET, "")
    return float(raw) if raw else None


def output_dir() -> Path | None:
    """The trial's own directory for checkpoints and logs (None outside a trial)."""
    raw = os.environ.get(OUTPUT_DIR, "")
    return Path(raw) if raw else None


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
