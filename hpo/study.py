"""Studies as users hold them: the Optuna-style facade over the study store.

``create_study(name, storage=..., load_if_exists=True)`` is safe to call from every worker at
once; the objects returned are thin handles (name, id, settings) and every read goes to the
store, so a handle in one process sees what workers in other processes did.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from db.errors import DuplicateStudyError, StoreError
from db.leases import ALGORITHM_ATTRS
from db.models import Direction, TrialState
from db.records import FrozenTrial, StudyRecord, StudySettings
from db.store import STOPPED_TAG, AddedTrial, HistoryCache, NewTrial, Recovery, Store, StudySummary, open_store
from hpo.algorithms import Algorithm, History, algorithm_class, make_algorithm
from hpo.trial import HeldTrial
from search_spaces import SearchSpace, config_hash

if TYPE_CHECKING:
    import pandas as pd


def default_worker_id() -> str:
    """``host:pid``: unique per process across a cluster, readable in the dashboard."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Study:
    """A handle on one study in a store."""

    def __init__(self, store: Store, record: StudyRecord) -> None:
        self._store = store
        self._record = record
        self._last_recovery = 0.0
        self._history = HistoryCache()  # this process's copy of the trials its algorithm decides from

    # ------------------------------------------------------------ description

    @property
    def store(self) -> Store:
        return self._store

    @property
    def id(self) -> int:
        return self._record.id

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def direction(self) -> Direction:
        return self._record.direction

    @property
    def search_space(self) -> SearchSpace | None:
        return self._space

    @cached_property
    def _space(self) -> SearchSpace | None:
        stored = self._record.search_space
        return None if stored is None else SearchSpace.from_dict(stored, source=f"study {self.name!r}")

    @cached_property
    def algorithm(self) -> Algorithm:
        """The study's algorithm, rebuilt from its name, settings and space (it keeps nothing but
        caches of what it derived from the history, so any process decides alike). Its name
        and settings as stored are ``record.algorithm`` and ``record.algorithm_settings``."""
        if self.search_space is None:
            raise StoreError(
                f"study {self.name!r} has no search space, so its algorithm cannot propose trials; "
                "enqueue configurations instead, or create the study with a search space"
            )
        record = self._record
        return make_algorithm(record.algorithm, self.search_space, self.direction, record.algorithm_settings)

    @property
    def record(self) -> StudyRecord:
        """The study's settings as stored: objective, algorithm and its settings, tags, sweep,
        heartbeat timeout and retries."""
        return self._record

    def __repr__(self) -> str:
        return f"Study(name={self.name!r}, storage={self._store.display_url!r})"

    # ---------------------------------------------------------------- reading

    @property
    def trials(self) -> list[FrozenTrial]:
        """Every trial, in number order, with its intermediate values."""
        return self._store.trials(self.id)

    def get_trials(
        self, states: Sequence[TrialState] | None = None, *, with_intermediate: bool = True
    ) -> list[FrozenTrial]:
        return self._store.trials(self.id, states=states, with_intermediate=with_intermediate)

    def trial(self, number: int) -> FrozenTrial:
        return self._store.trial(self.id, number)

    @property
    def best_trial(self) -> FrozenTrial:
        """The completed trial with the best value (lowest when minimizing)."""
        best = self._store.best_trial(self.id, self.direction)
        if best is None:
            raise StoreError(f"study {self.name!r} has no completed trial yet")
        return best

    @property
    def best_value(self) -> float:
        value = self.best_trial.value
        assert value is not None
        return value

    @property
    def best_params(self) -> dict[str, Any]:
        return self.best_trial.params

    def counts(self) -> dict[TrialState, int]:
        return self._store.count_by_state(self.id)

    # ---------------------------------------------------------------- queuing

    def enqueue(
        self,
        params: Mapping[str, Any],
        *,
        budget: float | None = None,
        attrs: Mapping[str, Any] | None = None,
    ) -> int:
        """Queue one configuration to be run next; returns its trial number.

        With a search space, the configuration is validated against it and the budget
        defaults to the space's maximum fidelity.
        """
        return self.enqueue_many([params], budget=budget, attrs=attrs)[0]

    def enqueue_many(
        self,
        params: Sequence[Mapping[str, Any]],
        *,
        budget: float | None = None,
        attrs: Mapping[str, Any] | None = None,
    ) -> list[int]:
        """Queue many configurations in one transaction."""
        space = self.search_space
        hashes = None
        if space is not None:
            for config in params:
                space.validate_config(config)
            hashes = [config_hash(config) for config in params]
            if budget is None and space.fidelity is not None:
                budget = space.fidelity.max
        return self._store.enqueue(self.id, params, budget=budget, attrs=attrs, config_hashes=hashes)

    def add_trial(
        self,
        params: Mapping[str, Any],
        value: float | None,
        *,
        budget: float | None = None,
        state: TrialState = TrialState.COMPLETED,
        attrs: Mapping[str, Any] | None = None,
        intermediate_values: Mapping[float, float] | None = None,
    ) -> int:
        """Add a finished trial run elsewhere (Optuna's ``add_trial``); returns its number.

        The study's algorithm learns from it as from any finished trial. ``value`` is in the
        study's direction; a completed trial needs a finite one, a failed or pruned one may
        have None. See :meth:`add_trials` for the checks.
        """
        trial = AddedTrial(params, value, budget, state, dict(attrs or {}), dict(intermediate_values or {}))
        return self.add_trials([trial])[0]

    def add_trials(self, trials: Sequence[AddedTrial]) -> list[int]:
        """Add many finished trials in one transaction; returns their numbers.

        With a search space, each configuration is validated (and normalised) against it and
        its budget must lie in the fidelity's range (default: the maximum). Every added trial
        carries ``attrs["kind"] == "added"`` and none of the algorithms' bracket bookkeeping,
        so multi-fidelity algorithms learn from it without counting it in a bracket.
        """
        return self._store.add_trials(self.id, [self._checked(t) for t in trials])

    def _checked(self, trial: AddedTrial) -> AddedTrial:
        clash = sorted(set(trial.attrs) & ALGORITHM_ATTRS)  # an added trial ran in no bracket
        if clash:
            raise ValueError(f"an added trial may not carry the algorithms' attrs {', '.join(clash)}; use other names")
        attrs = {**trial.attrs, "kind": "added"}
        space = self.search_space
        if space is None:
            return replace(trial, attrs=attrs, config_hash=config_hash(dict(trial.params)))
        params = space.validate_config(trial.params, source=f"study {self.name!r}")
        budget = trial.budget
        if space.fidelity is not None:
            fidelity = space.fidelity
            budget = fidelity.max if budget is None else float(budget)
            if not fidelity.min <= budget <= fidelity.max:
                raise ValueError(
                    f"budget {budget:g} is outside study {self.name!r}'s fidelity {fidelity}; "
                    f"give a {fidelity.name} in [{fidelity.min:g}, {fidelity.max:g}]"
                )
        return replace(trial, params=params, budget=budget, attrs=attrs, config_hash=config_hash(params))

    # --------------------------------------------------- handing out trials

    def ask(self, worker_id: str | None = None, *, max_trials: int | None = None) -> HeldTrial | None:
        """The next trial for this worker, already held by it: a queued configuration if any,
        else the algorithm's proposal. None when the algorithm must wait for running trials,
        or when the study already holds ``max_trials`` trials (a queued one is still handed
        out: it is one of them). The count is taken under the study's lock, so workers
        asking together never overshoot it."""
        worker = worker_id or default_worker_id()
        self._recover_if_due()

        def decide(trials: list[FrozenTrial]) -> NewTrial | None:
            if max_trials is not None and len(trials) >= max_trials:
                return None
            proposal = self.algorithm.propose(History(trials, self.direction))
            if proposal is None:
                return None
            return NewTrial(proposal.config, proposal.budget, proposal.attrs, config_hash(proposal.config))

        return self._held(self._store.propose(self.id, worker, decide, self._history))

    def tell(self, trial: HeldTrial, value: float) -> TrialState:
        """Finish a trial with its value (``trial.complete(value)``): the ask/tell pair's
        second half."""
        return trial.complete(value)

    def claim(self, worker_id: str | None = None) -> HeldTrial | None:
        """Take the next queued trial for this worker; None when the queue is empty.

        Before claiming, stale running trials are recovered (at most once per half heartbeat
        timeout per handle), so a study whose workers died heals as soon as any worker asks.
        """
        self._recover_if_due()
        return self._held(self._store.claim(self.id, worker_id or default_worker_id()))

    def _held(self, frozen: FrozenTrial | None) -> HeldTrial | None:
        return None if frozen is None else HeldTrial(self, frozen)

    def _recover_if_due(self) -> None:
        if time.monotonic() - self._last_recovery > self._record.heartbeat_timeout / 2:
            self.recover_stale()

    def recover_stale(self) -> Recovery:
        """Re-queue (or fail, when out of retries) running trials whose worker went silent."""
        self._last_recovery = time.monotonic()
        return self._store.recover_stale(self.id)

    @property
    def stopped(self) -> bool:
        """Whether the study was stopped (``hpo`` service or :meth:`stop`), read afresh."""
        return STOPPED_TAG in self._store.get_study(self.name).tags

    def stop(self) -> None:
        """Hand out no more trials; running ones finish (see :meth:`Store.stop_study`)."""
        self._record = self._store.stop_study(self.name)

    def release_worker(self, worker_id: str, reason: str, *, retry: bool = True, counted: bool = True) -> Recovery:
        """Re-queue (or, without ``retry`` or retries, fail) the trials of a worker known dead;
        ``counted=False`` when it was lost with its node, which spends no retry
        (see :meth:`db.store.Store.release_worker`)."""
        return self._store.release_worker(self.id, worker_id, reason, retry=retry, counted=counted)

    # ---------------------------------------------------------------- export

    def to_dataframe(self) -> pd.DataFrame:
        """One row per trial: number, state, value, budget, ``params_<name>`` columns, timing."""
        from hpo.export import trials_dataframe

        return trials_dataframe(self.trials)

    def to_csv(self, path: str | Path) -> None:
        self.to_dataframe().to_csv(path, index=False)

    def to_json(self, path: str | Path | None = None) -> str:
        """The study and all its trials (with intermediate values) as one JSON document."""
        from hpo.export import study_json

        text = study_json(self._record, self.trials)
        if path is not None:
            Path(path).write_text(text)
        return text


def create_study(
    name: str,
    storage: str | Store | None = None,
    *,
    load_if_exists: bool = False,
    settings: StudySettings | None = None,
    **fields: Any,
) -> Study:
    """Create a study in ``storage`` (a URL; default ``$HPO_STORAGE``, else ``sqlite:///hpo.db``).

    Its settings are ``settings``, or else the keyword ``fields`` of :class:`StudySettings`
    (``direction``, ``search_space``, ``algorithm``, ...; their defaults where left out);
    ``search_space`` may be a :class:`SearchSpace` or its dict. The space, the algorithm and
    its settings are checked now, not at the first ask. With ``load_if_exists=True`` every
    worker can run the same call: the first creates the study, the others load it.
    """
    if settings is not None and fields:
        raise TypeError(f"create_study takes settings= or keyword settings, not both (got {', '.join(fields)} too)")
    store = open_store(storage)
    space = _as_space(fields.pop("search_space", None) if settings is None else settings.search_space)
    space_dict = None if space is None else space.to_dict()
    settings = StudySettings(**fields, search_space=space_dict) if settings is None else replace(settings, search_space=space_dict)
    if space is not None:  # fail now, not at the first ask, on a bad algorithm or setting
        make_algorithm(settings.algorithm, space, Direction.MINIMIZE, settings.algorithm_settings)
    else:
        algorithm_class(settings.algorithm)  # an unknown name fails here too
    try:
        record = store.create_study(name, settings)
    except DuplicateStudyError:
        if not load_if_exists:
            raise
        record = store.get_study(name)
    return Study(store, record)


def _as_space(space: SearchSpace | Mapping[str, Any] | None) -> SearchSpace | None:
    if space is None or isinstance(space, SearchSpace):
        return space
    return SearchSpace.from_dict(space)


def load_study(name: str, storage: str | Store | None = None) -> Study:
    """The study of that name; :class:`db.errors.StudyNotFoundError` if there is none."""
    store = open_store(storage)
    return Study(store, store.get_study(name))


def delete_study(name: str, storage: str | Store | None = None) -> None:
    open_store(storage).delete_study(name)


def list_studies(storage: str | Store | None = None, *, sweep: str | None = None) -> list[StudySummary]:
    """Every study with its counts by state, best value and last activity."""
    return open_store(storage).list_studies(sweep=sweep)
