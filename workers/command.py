"""A command objective: each trial runs the user's own training command (``torchrun ...
train.py --lr {learning_rate}``) as a process tree, follows what it reports, and stops it
when the study prunes it. ``hpo sweep run STUDY --command "..."``.

The command is split like a shell line (:func:`shlex.split`, no shell runs it) and each
argument formatted with :meth:`str.format` placeholders: every parameter of the study's
search space, and :data:`TRIAL_PLACEHOLDERS`. The trainer's side is :mod:`hpo.client`; the
protocol between the two is files in the trial's output directory, named to the command by
the ``HPO_*`` environment variables (docs/trainers.md). Invariants:

- It is an ordinary objective (``objective(config, budget, report) -> float``) run by
  :func:`hpo.runner.run_trial`, so heartbeats, pruning, divergence and failures are recorded
  as for any other; it is a plain picklable object, sent to Ray's workers as it is.
- :meth:`CommandObjective.validate` checks the placeholders and finds the executable before
  any worker starts (``run_sweep`` calls it), each mistake one line.
- Every line the command appends to its metrics file goes to ``report(budget, value)``; once
  that answers no (pruned, or a non-finite value), the stop file is created, the whole tree
  gets SIGTERM, and SIGKILL after ``grace_s`` seconds. No process of the tree outlives its
  trial: not when the worker is interrupted (``finally``), nor when it is killed outright
  (the guard of :mod:`workers.process_tree`).
- Whatever the outcome, the trial's attrs keep ``exit_code``, ``log_tail``, ``output_dir`` and
  ``command`` (when the trial is still this worker's to record).
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import signal
import string
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo import client
from hpo.runner import Report, TrialReporter
from workers.errors import ObjectiveError
from workers.process_tree import ProcessTree, start_guard

if TYPE_CHECKING:
    from hpo.study import Study

#: Seconds a stopped trial's processes get between SIGTERM and SIGKILL.
DEFAULT_GRACE_S = 10.0
#: Placeholders every command may use besides the search space's parameters.
TRIAL_PLACEHOLDERS = ("budget", "trial", "trial_id", "study", "output_dir")
#: How often a running trial's process and metrics file are looked at.
_POLL_S = 0.1
#: The most of the log's tail kept in the trial's attrs and error.
_TAIL_CHARS = 4000


class CommandFailed(RuntimeError):
    """The trial's command failed: exited non-zero, reported nothing, or wrote a line that is
    not a metrics record. The trial is recorded failed with the message; the sweep goes on."""


class CommandObjective:
    """Run ``command`` for each trial in ``cwd`` (default: the current directory, where a
    relative ``train.py`` is found), with output under
    ``<output_root>/hpo-runs/<study>/trial-<number>`` (default root: ``cwd``)."""

    def __init__(
        self,
        command: str,
        *,
        grace_s: float = DEFAULT_GRACE_S,
        log_tail_lines: int = 50,
        output_root: str | os.PathLike[str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        try:
            self.argv = shlex.split(command)
        except ValueError as exc:
            raise ObjectiveError(f"command {command!r} does not parse: {exc}") from None
        if not self.argv:
            raise ObjectiveError("the command is empty")
        if not grace_s >= 0 or log_tail_lines < 1:
            raise ObjectiveError(f"grace seconds must be >= 0 and log tail lines >= 1, got {grace_s} and {log_tail_lines}")
        self.command = command
        self.grace_s = float(grace_s)
        self.log_tail_lines = log_tail_lines
        self.cwd = Path(cwd if cwd is not None else os.getcwd()).resolve()
        self.output_root = (self.cwd / (output_root if output_root is not None else ".")).resolve()
        self.placeholders = sorted({name for arg in self.argv for name in _placeholders(arg, command)})

    def __repr__(self) -> str:
        return f"CommandObjective({self.command!r})"

    # ----------------------------------------------------------------- checking

    def validate(self, study: Study) -> None:
        """Fail in one line, before any trial runs, on a placeholder the study cannot fill or
        an executable that is not found. Without a search space only the trial's own
        placeholders can be checked here; a parameter is then checked at each trial."""
        space = study.search_space
        if space is not None:
            allowed = [*space.names, *TRIAL_PLACEHOLDERS]
            unknown = [name for name in self.placeholders if name not in allowed]
            if unknown:
                raise ObjectiveError(
                    f"command placeholder {{{unknown[0]}}} is neither a parameter of study {study.name!r} "
                    f"nor a trial placeholder; allowed: {', '.join(allowed)}"
                )
        if "budget" in self.placeholders and (space is None or space.fidelity is None):
            raise ObjectiveError(f"command placeholder {{budget}}: study {study.name!r} has no fidelity, so trials have no budget")
        sample: dict[str, Any] = {"budget": 1, "trial": 0, "trial_id": 0, "study": study.name, "output_dir": "."}
        if space is not None:
            sample.update({name: space[name].midpoint() for name in space.names})
        argv = self._format({name: sample.get(name, "") for name in self.placeholders})
        if self._executable(argv[0]) is None:
            raise ObjectiveError(f"command not found: {argv[0]}")

    def _executable(self, name: str) -> str | None:
        if os.sep not in name:
            return shutil.which(name)
        path = self.cwd / name
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None

    def _format(self, values: Mapping[str, Any]) -> list[str]:
        missing = [name for name in self.placeholders if name not in values]
        if missing:
            raise ObjectiveError(
                f"command placeholder {{{missing[0]}}} has no value in this trial (not a parameter of its configuration)"
            )
        try:
            return [arg.format(**values) for arg in self.argv]
        except (ValueError, TypeError, IndexError, AttributeError, KeyError) as exc:
            raise ObjectiveError(f"command {self.command!r} cannot be formatted: {type(exc).__name__}: {exc}") from None

    # ------------------------------------------------------------------ running

    def output_dir(self, study: str, trial: int) -> Path:
        return self.output_root / "hpo-runs" / study / f"trial-{trial}"

    def __call__(self, config: Mapping[str, Any], budget: float | None, report: Report, /) -> float:
        if not isinstance(report, TrialReporter):
            raise ObjectiveError("a command objective runs under hpo's trial runner (hpo.optimize, hpo sweep run)")
        trial = report.trial
        out = self.output_dir(trial.study.name, trial.number)
        budget_value = _plain(budget)
        argv = self._format({
            **config, "budget": budget_value, "trial": trial.number, "trial_id": trial.id,
            "study": trial.study.name, "output_dir": str(out),
        })
        out.mkdir(parents=True, exist_ok=True)
        files = _Files(out)
        env = {
            **os.environ,
            client.METRICS_FILE: str(files.metrics),
            client.STOP_FILE: str(files.stop),
            client.PARAMS: json.dumps(dict(config), default=str),
            client.BUDGET: "" if budget_value is None else str(budget_value),
            client.TRIAL: str(trial.number),
            client.STUDY: trial.study.name,
            client.OUTPUT_DIR: str(out),
        }
        gpus = _ray_gpu_ids()
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        return self._run(argv, env, files, report)

    def _run(self, argv: list[str], env: dict[str, str], files: _Files, report: TrialReporter) -> float:
        with open(files.log, "wb") as log:
            try:
                process = subprocess.Popen(
                    argv, cwd=self.cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own group: a signal to it is not one to the worker
                )
            except OSError as exc:  # not found, not executable: the command never ran
                raise CommandFailed(f"command not found: {argv[0]} ({exc.strerror})") from None
        tree = ProcessTree(process.pid)
        guard = start_guard(tree)
        bad: CommandFailed | None = None
        try:
            try:
                last, stopped = self._follow(process, tree, files, report)
            except CommandFailed as exc:
                bad, last, stopped = exc, math.nan, False
        finally:
            if process.poll() is None or tree.alive():  # interrupted, or a bad line: no grace
                tree.signal(signal.SIGKILL)
                process.wait()
            assert guard.stdin is not None
            guard.stdin.close()  # the guard kills any straggler and exits
            guard.wait()
        tail = _tail(files.log, self.log_tail_lines)
        code = process.returncode
        report.record(exit_code=code, log_tail=tail, output_dir=str(files.root), command=shlex.join(argv))
        if bad is not None:
            raise bad
        if stopped:
            return last
        if code != 0:
            how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
            raise CommandFailed(f"command {how}; the last lines of {files.log}:\n{tail}")
        if math.isnan(last):  # a reported NaN stops the trial, so this one reported nothing
            raise CommandFailed(
                f"the command reported no value; write JSON lines to ${client.METRICS_FILE} or call hpo.client.report"
            )
        return last

    def _follow(self, process: subprocess.Popen[bytes], tree: ProcessTree, files: _Files, report: TrialReporter) -> tuple[float, bool]:
        """Feed each metrics line to ``report`` until the command exits or ``report`` says
        stop (then stop the tree); the last value reported and whether it was stopped."""
        metrics = _MetricsTail(files.metrics)
        last = math.nan
        while True:
            exited = process.poll() is not None  # before reading: every line written before the exit is read
            for number, line in metrics.lines(final=exited):
                budget, value = _parse(files.metrics, number, line)
                last = value
                if not report(budget, value):
                    self._stop(process, tree, files)
                    return last, True
            if exited:
                return last, False
            time.sleep(_POLL_S)

    def _stop(self, process: subprocess.Popen[bytes], tree: ProcessTree, files: _Files) -> None:
        """The study stopped the trial: the stop file (so the script can tell a prune from a
        preemption), SIGTERM to the whole tree, SIGKILL to what is left after the grace."""
        files.stop.touch()
        tree.signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        while time.monotonic() < deadline:
            process.poll()  # reap the root as soon as it exits
            if not tree.alive():
                break
            time.sleep(_POLL_S / 2)
        else:
            tree.signal(signal.SIGKILL)
        process.wait()


class _Files:
    """The trial's files: its log, the metrics the command appends, the stop file. A trial run
    again (its worker died) starts with no metrics and no stop file; checkpoints stay."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log = root / "log.txt"
        self.metrics = root / "metrics.jsonl"
        self.stop = root / "STOP"
        self.metrics.unlink(missing_ok=True)
        self.stop.unlink(missing_ok=True)


class _MetricsTail:
    """The complete lines appended to a file since the last look, numbered from 1; a line
    still being written waits for its newline, unless the writer has exited."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""
        self.number = 0

    def lines(self, *, final: bool) -> list[tuple[int, str]]:
        try:
            with open(self.path, "rb") as file:
                file.seek(self.offset)
                data = file.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        *complete, self.partial = (self.partial + data).split(b"\n")
        if final and self.partial:
            complete, self.partial = [*complete, self.partial], b""
        found = []
        for raw in complete:
            self.number += 1
            if raw.strip():
                found.append((self.number, raw.decode("utf-8", errors="replace")))
        return found


def _parse(path: Path, number: int, line: str) -> tuple[float, float]:
    """A metrics line as (budget, value); a null value is NaN (the trial diverged)."""
    try:
        record = json.loads(line)
    except ValueError:
        record = None
    if isinstance(record, dict) and _is_number(record.get("budget")) and "value" in record:
        value = record["value"]
        if value is None or _is_number(value):
            return float(record["budget"]), math.nan if value is None else float(value)
    raise CommandFailed(f"metrics file {path} line {number} is not a JSON object with budget and value: {line[:120]}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _plain(budget: float | None) -> int | float | None:
    """A budget as the command sees it: ``9``, not ``9.0``, when it is a whole number."""
    if budget is None:
        return None
    return int(budget) if float(budget).is_integer() else float(budget)


def _placeholders(arg: str, command: str) -> list[str]:
    """The names an argument's ``{...}`` fields start with (``{lr:.3g}`` names lr)."""
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(arg) if field is not None]
    except ValueError as exc:
        raise ObjectiveError(f"command {command!r} has a bad placeholder: {exc} (write {{{{ and }}}} for a literal brace)") from None
    names = [re.split(r"[.\[]", field, maxsplit=1)[0] for field in fields]
    if "" in names or any(name.isdigit() for name in names):
        raise ObjectiveError(f"command {command!r} has a placeholder without a name; name it, e.g. {{learning_rate}}")
    return names


def _tail(path: Path, lines: int) -> str:
    try:
        with open(path, "rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - 64 * 1024))
            text = file.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])[-_TAIL_CHARS:]


def _ray_gpu_ids() -> list[str]:
    """The GPUs Ray gave this worker, when it runs in a Ray worker that holds some."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return []
    return [str(gpu) for gpu in ray.get_gpu_ids()]
