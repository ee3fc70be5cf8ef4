"""Ray Tune on a study: our algorithms choose, Tune runs, the study store records every trial.

::

    from ray import tune
    from hpo.integrations.ray_tune import HPO_BUDGET_KEY, HpoScheduler, HpoSearcher

    searcher = HpoSearcher("my-study", "sqlite:///hpo.db", metric="loss")
    tuner = tune.Tuner(train, tune_config=tune.TuneConfig(
        search_alg=searcher, scheduler=HpoScheduler(searcher), num_samples=40))

One Tune trial is one store trial: :class:`HpoSearcher` asks the study for it (the trial is held
by worker ``tune:<Tune trial id>``), hands Tune its parameters plus the budget to train to under
:data:`HPO_BUDGET_KEY`, and records every result as an intermediate value and the end as
completed, pruned, failed or diverged. ``num_samples`` therefore counts store trials, i.e. rung
evaluations for Hyperband or DEHB, not configurations; the searcher never answers
``Searcher.FINISHED``, so Tune's ``num_samples`` (or a stopper or ``time_budget_s``) ends the run.

:class:`HpoScheduler` stops each Tune trial when the budget it reports (``budget_attr``, by
default Tune's ``training_iteration``; in the study's fidelity units) reaches the budget the
algorithm gave it, so Hyperband and DEHB rungs train exactly to their budgets, and asks the
algorithm's ``should_continue`` at every result (ASHA's stopping mode). How a trial ends:

* it reached its budget: completed with its value there (NaN or inf: diverged);
* it reported NaN or inf before that: diverged;
* HpoScheduler stopped it because the algorithm said so: pruned, with its last value;
* it raised: failed, with Tune's error text (HpoScheduler passes it on);
* Tune ended it below its budget for any other reason (a stopper, ``time_budget_s``, Ctrl-C):
  given back: re-queued at once (a retry, as for a dead worker), so the next worker or Tune
  run trains it to its budget. A value from a lower budget recorded as the rung's would
  mislead Hyperband's promotions.

The algorithms keep no state and the store holds every trial, so the searcher's only state is
which Tune trial holds which store trial. When the suggestion is None (the study is waiting on
running trials held elsewhere) Tune simply asks again later. The held trials are heart-beaten
from the Tune driver in a background thread: a driver that dies stops the beats, and the store
re-queues its trials, as for any dead worker.
"""

from __future__ import annotations

import logging
import math
import pickle
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher
from ray.tune.search.sample import Domain

from db.errors import StoreError, TrialNotHeldError
from db.models import Direction
from db.records import FrozenTrial
from db.store import Store
from hpo.study import Study, load_study
from hpo.trial import HeldTrial

if TYPE_CHECKING:
    from ray.tune.execution.tune_controller import TuneController
    from ray.tune.experiment import Trial

__all__ = ["HPO_BUDGET_KEY", "HpoScheduler", "HpoSearcher"]

#: The config key under which a Tune trial receives the budget (fidelity) to train to; None
#: when the study's space has no fidelity.
HPO_BUDGET_KEY = "hpo_budget"

logger = logging.getLogger(__name__)

_MODES = {Direction.MINIMIZE: "min", Direction.MAXIMIZE: "max"}


@dataclass
class _Held:
    """A store trial a Tune trial holds, and what its results said so far. It keeps the
    frozen trial (what the experiment checkpoint pickles), not a :class:`HeldTrial`, which
    holds the study's connection pool."""

    trial: FrozenTrial
    last_budget: float | None = None
    last_value: float | None = None
    #: The value at the first result that reached the trial's budget (the rung's value).
    value_at_budget: float | None = None
    reached: bool = False
    #: HpoScheduler stopped it because the algorithm's should_continue said no.
    stopped: bool = False
    #: Tune's error text, noted by HpoScheduler just before Tune reports the trial as errored.
    error: str | None = None
    #: The store took the trial back (its heartbeat lapsed); nothing more is written for it.
    lost: bool = False


class HpoSearcher(Searcher):
    """A Tune searcher that asks a study for each trial and records what Tune reports.

    ``study`` is a :class:`~hpo.study.Study` or a study name in ``storage`` (a URL or store;
    default ``$HPO_STORAGE``). ``metric`` is the reported key holding the value to optimize, here
    or from ``TuneConfig(metric=...)`` (the study's ``objective`` names the function a sweep
    runs, not a metric, so it is not used). ``mode`` may be left
    out (the study's direction decides); given, it must agree with it. ``budget_attr`` is the
    reported key measuring progress in the study's fidelity units.
    """

    def __init__(
        self,
        study: Study | str,
        storage: str | Store | None = None,
        *,
        metric: str | None = None,
        mode: str | None = None,
        budget_attr: str = "training_iteration",
    ) -> None:
        self._study: Study | None = study if isinstance(study, Study) else load_study(study, storage)
        self._study_name = self._study.name
        self._storage_url = _url_without_password(self._study.store)
        self._check_mode(mode)
        super().__init__(metric=metric, mode=_MODES[self._study.direction])
        self.budget_attr = budget_attr
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()
        self._beater: threading.Thread | None = None

    # ------------------------------------------------------------ description

    @property
    def study(self) -> Study:
        if self._study is None:  # unpickled (Tuner.restore): reconnect on first use
            self._study = load_study(self._study_name, self._storage_url)
        return self._study

    def budget_of(self, trial_id: str) -> float | None:
        """The budget the study gave the store trial Tune trial ``trial_id`` holds."""
        held = self._held.get(trial_id)
        return None if held is None else held.trial.budget

    def store_trial(self, trial_id: str) -> FrozenTrial | None:
        """The store trial Tune trial ``trial_id`` holds (None once it has ended)."""
        held = self._held.get(trial_id)
        return None if held is None else held.trial

    def _check_mode(self, mode: str | None) -> None:
        if mode is None:
            return
        want = _MODES[self.study.direction]
        if mode not in _MODES.values():
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if mode != want:
            raise ValueError(
                f"mode={mode!r} contradicts study {self._study_name!r}, which "
                f"{self.study.direction.value}s; use mode={want!r} or leave mode out"
            )

    def _set_objective(self, metric: str | None, mode: str | None) -> None:
        """Take ``TuneConfig(metric=..., mode=...)``: a metric fills a gap or must agree."""
        self._check_mode(mode)
        if metric is not None and self._metric is not None and metric != self._metric:
            raise ValueError(
                f"TuneConfig(metric={metric!r}) differs from HpoSearcher's metric {self._metric!r} "
                f"for study {self._study_name!r}; use one name"
            )
        if metric is not None:
            self._metric = metric

    # ---------------------------------------------------------- Tune's hooks

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        """Tune passes ``TuneConfig``'s metric and mode and ``param_space`` here (only when a
        param_space is given). The space is the study's: param_space may add constants only."""
        unresolved = sorted(_domain_keys(config))
        if unresolved:
            raise ValueError(
                f"param_space holds Tune search distributions ({', '.join(unresolved)}); HpoSearcher "
                f"samples only study {self._study_name!r}'s search space, so define them there"
            )
        space = self.study.search_space
        taken = sorted(set(config) & ({HPO_BUDGET_KEY} | set(space.names if space is not None else ())))
        if taken:
            raise ValueError(
                f"param_space sets {', '.join(map(repr, taken))}, which HpoSearcher chooses for "
                f"study {self._study_name!r}; remove it from param_space"
            )
        self._set_objective(metric, mode)
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """The study's next trial for Tune trial ``trial_id``, or None while the study waits
        on running trials (Tune asks again at its next step)."""
        if self._metric is None:
            raise ValueError(
                f"HpoSearcher for study {self._study_name!r} has no metric: pass HpoSearcher(metric=...), "
                "or TuneConfig(metric=...) with a param_space or an HpoScheduler"
            )
        trial = self.study.ask(worker_id=f"tune:{trial_id}")
        if trial is None:
            return None
        with self._lock:
            self._held[trial_id] = _Held(trial.frozen)
            self._start_beating()
        return {**trial.params, HPO_BUDGET_KEY: trial.budget}

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self._record(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """Finish the store trial as the module's docstring lists: completed, diverged, pruned,
        failed, or given back when Tune ended it short of its budget."""
        with self._lock:
            held = self._held.pop(trial_id, None)
        if held is None or held.lost:
            return
        study, trial = self.study, held.trial
        holding = HeldTrial(study, trial)
        try:
            if error:
                holding.fail(held.error or f"Ray Tune trial {trial_id} errored (its error.txt has the traceback)")
                return
            if result is not None and self._metric in result:
                self._record_into(held, trial_id, result)
            last = held.last_value
            reached = held.value_at_budget if held.reached else last
            if reached is not None and (held.reached or trial.budget is None):
                holding.complete(reached)
            elif last is not None and not math.isfinite(last):
                holding.complete(last)  # recorded as diverged
            elif held.stopped:
                holding.prune(last)
            else:
                reason = (
                    f"Ray Tune ended trial {trial_id} at {self.budget_attr}={held.last_budget}, "
                    f"short of its budget {trial.budget}"
                )
                study.release_worker(str(trial.worker_id), reason)
                logger.warning("%s; store trial %d of study %r is re-queued", reason, trial.number, self._study_name)
        except TrialNotHeldError as exc:
            logger.warning("store trial %d of Ray Tune trial %s was taken back: %s", trial.number, trial_id, exc)

    def save(self, checkpoint_path: str) -> None:
        """Which Tune trial holds which store trial: all Tune's experiment checkpoint needs
        from us (the algorithm's state is the study's trials, already in the store)."""
        with self._lock:
            held = dict(self._held)
        Path(checkpoint_path).write_bytes(pickle.dumps(held))

    def restore(self, checkpoint_path: str) -> None:
        """Take back the held trials a resumed Tune experiment continues; a trial the store
        gave away meanwhile (heartbeat timeout) is left to its new holder."""
        saved: dict[str, _Held] = pickle.loads(Path(checkpoint_path).read_bytes())
        for trial_id, held in saved.items():
            current = self.study.trial(held.trial.number)
            if current.worker_id != held.trial.worker_id or current.state.is_finished:
                continue
            with self._lock:
                self._held[trial_id] = held
                self._start_beating()

    # -------------------------------------------------------------- internals

    def _record(self, trial_id: str, result: Mapping[str, Any]) -> _Held | None:
        """Report a Tune result to the store (once per result); the trial's progress, or
        None for a Tune trial this searcher did not suggest."""
        held = self._held.get(trial_id)
        if held is None or held.lost:
            return held
        self._record_into(held, trial_id, result)
        return held

    def _record_into(self, held: _Held, trial_id: str, result: Mapping[str, Any]) -> None:
        try:
            budget = _number(result, self.budget_attr, "budget_attr", trial_id)
            value = _number(result, self._metric, "metric", trial_id)
        except ValueError as exc:
            # A misconfigured trainable or searcher: Tune aborts the run on this error. Fail
            # this trial with the reason, and stop beating the others so the store re-queues them.
            with self._lock:
                self._held.clear()
            try:
                HeldTrial(self.study, held.trial).fail(str(exc))
            except TrialNotHeldError:
                pass
            raise
        if budget == held.last_budget and value == held.last_value:
            return  # Tune repeats a trial's last result when its function returns
        try:
            HeldTrial(self.study, held.trial).report(budget, value)
        except TrialNotHeldError as exc:
            held.lost = True
            logger.warning("store trial %d of Ray Tune trial %s was taken back: %s", held.trial.number, trial_id, exc)
            return
        held.last_budget, held.last_value = budget, value
        target = held.trial.budget
        if not held.reached and target is not None and budget >= target * (1 - 1e-9):
            held.reached, held.value_at_budget = True, value

    def _note_error(self, trial_id: str, error: str) -> None:
        held = self._held.get(trial_id)
        if held is not None:
            held.error = error

    def _start_beating(self) -> None:
        """Start the heartbeat thread if trials are held and none runs (call under the lock)."""
        if self._beater is None and self._held:
            self._beater = threading.Thread(target=self._beat, name="hpo-tune-heartbeat", daemon=True)
            self._beater.start()

    def _beat(self) -> None:
        """Heartbeat every held trial while any is held, as a worker's Heartbeat does."""
        interval = self.study.record.heartbeat_timeout / 4
        while True:
            time.sleep(interval)
            with self._lock:
                held = [h for h in self._held.values() if not h.lost]
                if not held:
                    self._beater = None
                    return
            for h in held:
                try:
                    HeldTrial(self.study, h.trial).heartbeat()
                except TrialNotHeldError:
                    h.lost = True
                except StoreError:
                    continue  # a blip in the database: the next beat may get through

    def __getstate__(self) -> dict[str, Any]:
        # Tuner pickles its TuneConfig (tuner.pkl): keep the study's name and URL, not the
        # connection pool, lock or thread; the URL's password is not written to disk.
        state = self.__dict__.copy()
        state.update(_study=None, _lock=None, _beater=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        with self._lock:
            self._start_beating()


class HpoScheduler(FIFOScheduler):
    """Runs trials in order and stops each at the budget its :class:`HpoSearcher` trial was
    given, or earlier when the study's algorithm says so (``should_continue``)."""

    # Judge every result as it arrives, so a rung never trains a step past its budget.
    _supports_buffered_results = False

    def __init__(self, searcher: HpoSearcher) -> None:
        super().__init__()
        self.searcher = searcher

    @property
    def metric(self) -> str | None:
        return self.searcher.metric

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        """Tune always calls this one (the searcher's only with a param_space): pass
        ``TuneConfig``'s metric and mode on to the searcher."""
        self.searcher._set_objective(metric, mode)
        return True

    def on_trial_error(self, tune_controller: TuneController, trial: Trial) -> None:
        # Tune tells the searcher only "error=True"; the text is on the Tune trial.
        self.searcher._note_error(trial.trial_id, _error_text(trial))

    def on_trial_result(self, tune_controller: TuneController, trial: Trial, result: dict[str, Any]) -> str:
        # Record here: when this says STOP, Tune does not pass the result to the searcher.
        held = self.searcher._record(trial.trial_id, result)
        if held is None:
            return TrialScheduler.CONTINUE
        if held.lost or held.reached or held.last_value is None or not math.isfinite(held.last_value):
            return TrialScheduler.STOP
        assert held.last_budget is not None
        if not HeldTrial(self.searcher.study, held.trial).should_continue(held.last_budget, held.last_value):
            held.stopped = True
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def debug_string(self) -> str:
        return f"HpoScheduler: trials stop at the budgets study {self.searcher._study_name!r} gives them."


def _number(result: Mapping[str, Any], key: str | None, what: str, trial_id: str) -> float:
    if key is None or key not in result:
        keys = ", ".join(sorted(k for k in result if not k.startswith("config/")))
        raise ValueError(f"Ray Tune trial {trial_id} reported no {what} {key!r}; its result has: {keys}")
    try:
        return float(result[key])
    except (TypeError, ValueError):
        raise ValueError(f"Ray Tune trial {trial_id} reported {what} {key!r} = {result[key]!r}, not a number") from None


def _domain_keys(config: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in config.items():
        if isinstance(value, Domain):
            keys.append(prefix + str(key))
        elif isinstance(value, Mapping):
            keys += _domain_keys(value, f"{prefix}{key}/")
    return keys


def _error_text(trial: Trial) -> str:
    path = trial.error_file
    try:
        text = Path(path).read_text().strip() if path else ""
    except OSError:
        text = ""
    return text or f"Ray Tune trial {trial.trial_id} errored"


def _url_without_password(store: Store) -> str:
    return store.url.set(password=None).render_as_string(hide_password=False)
