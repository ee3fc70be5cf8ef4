"""Trials from elsewhere into a study: result files of hposcale or another tool, and warm
starts from an earlier study.

:func:`read_trials_file` reads, as finished trials to add (:meth:`hpo.Study.add_trials`):

* CSV with ``params_<name>`` columns and ``value`` (optional ``state``, ``budget``): what
  ``hpo study export``/``study.to_csv`` write, and Optuna's ``study.trials_dataframe()``;
* JSON: what ``hpo study export -f json``/``study.to_json`` write (``{"study": ..., "trials":
  [...]}``, intermediate values included), or a list of ``{"params", "value", "budget",
  "state"}`` objects.

Unfinished rows (queued, running; Optuna's WAITING) are skipped: they have no result. Every
problem is an :class:`ImportFileError` naming the file and, where there is one, the line.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from db.errors import StoreError
from db.models import Direction, TrialState
from db.store import AddedTrial
from hpo.study import Study
from search_spaces import Categorical, Fixed, SearchSpace
from search_spaces.errors import SpaceError

#: State names as hposcale and Optuna write them.
_STATES = {state.value: state for state in TrialState} | {
    "complete": TrialState.COMPLETED,
    "fail": TrialState.FAILED,
    "waiting": TrialState.QUEUED,
}


class ImportFileError(StoreError):
    """A trials file that cannot be read into a study: missing, malformed, or not in its space."""


def read_trials_file(path: str | Path, space: SearchSpace | None, direction: Direction) -> list[AddedTrial]:
    """The finished trials a CSV or JSON file holds (by its suffix; ``.json`` or else CSV),
    their configurations checked against ``space`` (an error names the line)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ImportFileError(f"cannot read {str(path)!r}: {exc.strerror}") from None
    rows = _from_json(path, text, space, direction) if path.suffix.lower() == ".json" else _from_csv(path, text, space)
    if space is None:
        return [trial for _, trial in rows]
    try:
        return [replace(trial, params=space.validate_config(trial.params, source=f"{path}: line {line}")) for line, trial in rows]
    except SpaceError as exc:
        raise ImportFileError(str(exc)) from None


def import_file(study: Study, path: str | Path) -> list[int]:
    """Add the finished trials of a file to ``study`` in one transaction; returns their numbers."""
    trials = read_trials_file(path, study.search_space, study.direction)
    try:
        return study.add_trials(trials)
    except ValueError as exc:
        raise ImportFileError(f"{path}: {exc}") from None


def warm_start(new: Study, old: Study, *, top: int = 3) -> list[int]:
    """Enqueue ``old``'s ``top`` best distinct completed configurations into ``new``, so that
    ``new`` runs them first; returns their trial numbers in ``new`` (best first).

    "Best" is among ``old``'s completed trials at its largest completed budget (values at a
    smaller one are not comparable). Each configuration is fitted to ``new``'s space:
    parameters ``new`` lacks are dropped, those it fixes take its fixed value; a value outside
    ``new``'s space is a :class:`SpaceError`. Only the configurations move, not the results:
    ``old``'s values were measured on another problem (another width), not ``new``'s.
    """
    if top < 1:
        raise ValueError(f"top must be >= 1, got {top}")
    done = [t for t in old.get_trials([TrialState.COMPLETED], with_intermediate=False) if t.value is not None]
    if not done:
        raise StoreError(f"study {old.name!r} has no completed trial to warm-start {new.name!r} from")
    budgets = [t.budget for t in done if t.budget is not None]
    if budgets:
        done = [t for t in done if t.budget == max(budgets)]
    sign = old.direction.sign
    done.sort(key=lambda t: (sign * (t.value or 0.0), t.number))
    configs: list[dict[str, Any]] = []
    sources: list[int] = []
    for trial in done:
        config = _fitted(trial.params, new.search_space)
        if config not in configs:
            configs.append(config)
            sources.append(trial.number)
        if len(configs) == top:
            break
    numbers = []
    for config, number in zip(configs, sources):
        numbers += new.enqueue_many([config], attrs={"warm_start": f"{old.name}#{number}"})
    return numbers


def _fitted(params: Mapping[str, Any], space: SearchSpace | None) -> dict[str, Any]:
    if space is None:
        return dict(params)
    config = {name: value for name, value in params.items() if name in space.names}
    for name in space.names:
        param = space[name]
        if isinstance(param, Fixed):
            config[name] = param.value
    for name in list(config):  # a parameter inactive in the new space is left out
        if not space.is_active(name, config):
            del config[name]
    return space.validate_config(config)


# ------------------------------------------------------------------------------ CSV


def _from_csv(path: Path, text: str, space: SearchSpace | None) -> list[tuple[int, AddedTrial]]:
    reader = csv.DictReader(text.splitlines(keepends=True))
    columns = reader.fieldnames or []
    if "value" not in columns or not any(c.startswith("params_") for c in columns):
        raise ImportFileError(f"{path}: line 1: a trials CSV needs a 'value' column and 'params_<name>' columns")
    trials = []
    for row in reader:
        line = reader.line_num
        if None in row:
            raise ImportFileError(f"{path}: line {line}: more cells than the header's {len(columns)} columns")
        state = _state(path, line, row.get("state") or "completed")
        if not state.is_finished:
            continue
        params = {}
        for column, cell in row.items():
            if column.startswith("params_") and cell not in ("", None):
                name = column.removeprefix("params_")
                params[name] = _cell(path, line, column, cell, space, name)
        value = _number(path, line, "value", row.get("value"))
        budget = _number(path, line, "budget", row.get("budget"))
        trials.append((line, _trial(path, line, params, value, budget, state, {})))
    return trials


def _cell(path: Path, line: int, column: str, cell: str, space: SearchSpace | None, name: str) -> Any:
    """A CSV cell as the parameter's value: numbers stay strings for the space to check;
    choices and fixed values are matched by how they print."""
    param = space[name] if space is not None and name in space.names else None
    if isinstance(param, Categorical):
        for choice in param.choices:
            if str(choice) == cell or _same_number(choice, cell):
                return choice
        raise ImportFileError(f"{path}: line {line}: column {column!r}: {cell!r} is not one of {list(param.choices)!r}")
    if isinstance(param, Fixed):
        return param.value if str(param.value) == cell or _same_number(param.value, cell) else cell
    if param is None:
        try:
            return json.loads(cell)
        except ValueError:
            return cell
    return cell


def _same_number(choice: Any, cell: str) -> bool:
    if isinstance(choice, bool) or not isinstance(choice, (int, float)):
        return False
    try:
        return float(cell) == choice
    except ValueError:
        return False


def _number(path: Path, line: int, column: str, cell: Any) -> float | None:
    if cell in ("", None):
        return None
    try:
        number = float(cell)
    except (TypeError, ValueError):
        raise ImportFileError(f"{path}: line {line}: column {column!r}: {cell!r} is not a number") from None
    return None if math.isnan(number) else number


def _state(path: Path, line: int, name: Any) -> TrialState:
    state = _STATES.get(str(name).strip().lower().removeprefix("trialstate."))
    if state is None:
        raise ImportFileError(f"{path}: line {line}: column 'state': unknown state {name!r}")
    return state


def _trial(
    path: Path,
    line: int,
    params: dict[str, Any],
    value: float | None,
    budget: float | None,
    state: TrialState,
    curve: dict[float, float],
) -> AddedTrial:
    if state is TrialState.COMPLETED and value is None:
        raise ImportFileError(f"{path}: line {line}: column 'value': a completed trial needs a value")
    try:
        return AddedTrial(params, value, budget, state, {}, curve)
    except ValueError as exc:
        raise ImportFileError(f"{path}: line {line}: {exc}") from None


# ----------------------------------------------------------------------------- JSON


def _from_json(path: Path, text: str, space: SearchSpace | None, direction: Direction) -> list[tuple[int, AddedTrial]]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFileError(f"{path}: line {exc.lineno}: not JSON: {exc.msg}") from None
    if isinstance(document, Mapping) and isinstance(document.get("trials"), list):
        stated = (document.get("study") or {}).get("direction")
        if stated is not None and stated != direction.value:
            raise ImportFileError(f"{path}: its study was to {stated}, this one is to {direction.value}: the values would be read the wrong way round")
        items = document["trials"]
    elif isinstance(document, list):
        items = document
    else:
        raise ImportFileError(f"{path}: line 1: expected a list of trials or an exported study ({{'study', 'trials'}})")
    lines = _item_lines(text, len(items))
    trials = []
    for i, item in enumerate(items):
        line = lines[i]
        if not isinstance(item, Mapping) or not isinstance(item.get("params"), Mapping):
            raise ImportFileError(f"{path}: line {line}: trial {i} needs a 'params' object")
        state = _state(path, line, item.get("state") or "completed")
        if not state.is_finished:
            continue
        curve = _curve(path, line, item.get("intermediate_values") or [])
        value = _number(path, line, "value", item.get("value"))
        budget = _number(path, line, "budget", item.get("budget"))
        trials.append((line, _trial(path, line, dict(item["params"]), value, budget, state, curve)))
    return trials


def _curve(path: Path, line: int, points: Any) -> dict[float, float]:
    if isinstance(points, Mapping):  # {budget: value}
        points = [{"budget": b, "value": v} for b, v in points.items()]
    if not isinstance(points, Sequence):
        raise ImportFileError(f"{path}: line {line}: 'intermediate_values' must be a list of {{budget, value}}")
    curve = {}
    for point in points:
        budget = _number(path, line, "intermediate_values", point.get("budget") if isinstance(point, Mapping) else None)
        if budget is None:
            raise ImportFileError(f"{path}: line {line}: each intermediate value needs a budget")
        value = _number(path, line, "intermediate_values", point.get("value"))
        curve[budget] = math.nan if value is None else value
    return curve


def _item_lines(text: str, n: int) -> list[int]:
    """The line each top-level trial object starts on, for error messages: found by decoding
    the document's array items one by one from their offsets."""
    decoder = json.JSONDecoder()
    start = text.find("[", text.find('"trials"') + 1 if '"trials"' in text else 0)
    lines, pos = [], start + 1
    for _ in range(n):
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        lines.append(text.count("\n", 0, pos) + 1)
        try:
            _, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            break
    return lines + [lines[-1] if lines else 1] * (n - len(lines))
