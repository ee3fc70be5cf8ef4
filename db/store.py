"""The study store: the one place where studies and trials are created, handed out and reported.

Every worker, on every machine, coordinates through :class:`Store` and nothing else. It is
assembled from parts with one job each:

* :mod:`db.studies`: sweeps and studies (create, read, list, stop, delete);
* :mod:`db.leases`: trials queued, handed to a worker, reported on while held, finished;
* :mod:`db.added`: finished trials added from outside (another tool's results, warm starts);
* :mod:`db.recovery`: the trials of silent or dead workers, re-queued or failed;
* :mod:`db.history`: reads of trials, and :class:`HistoryCache` for incremental ones;
* :mod:`db.fits`: stored scaling fits;
* :mod:`db.statements`: the hot path's prebuilt statements; :mod:`db.connections`: the
  engines and transactions all of them share.

This module is the public face: import ``Store``, ``open_store`` and the records from here.
"""

from __future__ import annotations

from db.added import AddedTrial, AddedTrials
from db.connections import utcnow
from db.engine import resolve_url
from db.fits import Fits
from db.history import HistoryCache, TrialReads
from db.leases import Leases
from db.records import STOPPED_TAG, NewTrial, Recovery, StudySettings, StudySummary
from db.recovery import Recoveries
from db.studies import Studies

__all__ = [
    "STOPPED_TAG",
    "AddedTrial",
    "HistoryCache",
    "NewTrial",
    "Recovery",
    "Store",
    "StudySettings",
    "StudySummary",
    "open_store",
    "utcnow",
]


class Store(Studies, AddedTrials, Leases, Recoveries, TrialReads, Fits):
    """The study store on the database named by one URL (SQLite file or PostgreSQL).

    Opening a store checks the schema revision and upgrades a database that has none. Use
    :func:`open_store` to share one store (and its connection pool) per URL and process. Every
    backend and every part of the store keeps these rules; callers may rely on them.

    **Transactions.** Each call is one short transaction (a few run a second one of their own:
    to create a study's sweep first, or to read back the row they wrote); none spans calls,
    and none runs caller code but :meth:`propose`, which runs ``decide``. The hot path (claim,
    heartbeat, report, finish) is one prebuilt statement each where the backend allows, so the
    time per trial stays flat as a study grows.

    **Trial numbers** are dense per study: 0, 1, 2, ... in the order trials were created, with
    no gaps, because a number is allocated from the study's counter in the transaction that
    inserts the trial and is rolled back with it. A trial keeps its number when it is re-queued.

    **Added trials** (:meth:`add_trials`) are finished when inserted: numbered as enqueued
    ones are, never held (``worker_id`` None, ``attempts`` 0), created and finished at once.
    The algorithms read them as any finished trial; they carry no bracket or rung.

    **Claiming is atomic** on both backends: no trial is handed to two workers. On PostgreSQL
    the candidate row is locked ``FOR UPDATE SKIP LOCKED``, so concurrent claimers take
    different rows without waiting, and the update re-checks the state; on SQLite every write
    runs under ``BEGIN IMMEDIATE`` (after the writers' file lock, :mod:`db.engine`), which
    serialises writers. :meth:`propose` decides and inserts under the study's lock (its row
    ``FOR UPDATE``; SQLite's write lock), so no two asks decide from the same history.

    **Holding.** A trial is held by the worker it was handed to while it is running with that
    worker's id. Only the holder may :meth:`heartbeat`, :meth:`report`, :meth:`set_trial_attrs`
    or :meth:`finish` it; anyone else gets :class:`~db.errors.TrialNotHeldError` and nothing is
    written. Hence a trial is finished at most once: finishing ends the hold, and a trial
    re-queued under a silent worker can no longer be finished by it.

    **Recovery.** A running trial whose heartbeat is older than the study's
    ``heartbeat_timeout`` (:meth:`recover_stale`), or whose worker is known dead
    (:meth:`release_worker`), goes back to the queue until it has been tried
    ``1 + max_retries`` times; then it is failed, with the reason in its ``error``. A claim
    lost with its worker's node (``release_worker(..., counted=False)``: preempted, removed)
    is no try: it is counted in the trial's ``node_losses``, not against ``max_retries``, and
    ``attempts`` still counts every claim. Each lost trial is moved by one caller only,
    however many recover at once.

    **Stopping** (:meth:`stop_study`) marks the study with the tag :data:`STOPPED_TAG`: from
    then on :meth:`propose` hands out nothing, not even a queued trial. Running trials go on
    and may still report and finish; :meth:`claim`, a worker taking queued work by hand, is
    not refused.

    **Errors** are :mod:`db.errors` exceptions with one-line messages a user can act on: an
    unknown name (:class:`~db.errors.StudyNotFoundError`, ...), a taken one
    (:class:`~db.errors.DuplicateStudyError`), a bad setting (:class:`~db.errors.StoreError`,
    from :class:`~db.records.StudySettings`), and a refused or lost database connection
    (:class:`~db.errors.StorageUnreachableError`, never a raw driver error).
    """


_STORES: dict[str, Store] = {}


def open_store(url: str | Store | None = None) -> Store:
    """The process's store for ``url`` (default: ``$HPO_STORAGE``, else ``sqlite:///hpo.db``).

    Stores are shared per URL so that many studies opened in one process share one pool and
    the schema is checked once.
    """
    if isinstance(url, Store):
        return url
    resolved = resolve_url(url)
    key = resolved.render_as_string(hide_password=False)
    store = _STORES.get(key)
    if store is None:
        store = _STORES[key] = Store(resolved)
    return store
