"""What ``GET /api/studies/{name}/trials`` answers, kept between requests.

Reading a page from the store and encoding it is SQL with an offset into all of the study's
trials, two counts, and JSON decoded from the rows and encoded again, on every request, so its
cost grows with the study and bounds what a server can answer. But a finished
trial never changes again (the store guards every update by state; the ask path's
:class:`~db.store.HistoryCache` rests on the same fact), so each server process keeps every
open study's trials with each one's JSON already encoded, refreshed at most every
``TRIALS_TTL_S`` by reading only the new and the unfinished trials, and sorted once per
(filter, sort key, order) and refresh. A page is then a slice of encoded fragments joined.

A write through this server (enqueue) shows at once; one from a worker or another process
within ``TRIALS_TTL_S``. Memory is a few hundred bytes a trial, for the ``STUDIES_KEPT``
studies read most recently.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool

from db.errors import StudyNotFoundError
from db.models import TrialState
from db.records import FrozenTrial
from db.store import HistoryCache, Store
from hpo.service.records import encode as encode_json
from hpo.service.records import trial_json

#: How long a study's trials are served before the store is read again.
TRIALS_TTL_S = 0.5
#: Studies whose trials are kept (least recently read dropped first).
STUDIES_KEPT = 32

def _attribute(name: str) -> Callable[[FrozenTrial], Any]:
    def get(trial: FrozenTrial) -> Any:
        value = getattr(trial, name)
        return value.value if isinstance(value, TrialState) else value

    return get


def _value(trial: FrozenTrial) -> Any:
    v = trial.value
    # PostgreSQL keeps NaN and sorts it above every number; SQLite stores it as NULL
    return None if v is None else (math.isnan(v), 0.0 if math.isnan(v) else v)


_KEYS: dict[str, Callable[[FrozenTrial], Any]] = {
    "number": _attribute("number"),
    "value": _value,
    "budget": _attribute("budget"),
    "state": _attribute("state"),
    "created_at": _attribute("created_at"),
    "finished_at": _attribute("finished_at"),
}


def encode(trial: FrozenTrial) -> bytes:
    """A trial as the API shows it, encoded as FastAPI would (compact, UTF-8, no NaN)."""
    return encode_json(trial_json(trial))


@dataclass(frozen=True)
class Snapshot:
    """A study's trials at one read, each with its encoding, and the orders asked of them.
    Replaced whole by a read that changed anything, so a page never mixes two reads."""

    trials: list[FrozenTrial]
    encoded: dict[int, tuple[FrozenTrial, bytes]]
    orders: dict[tuple[Any, ...], list[bytes]] = field(default_factory=dict)

    def ordered(self, states: frozenset[str] | None, sort: str, descending: bool) -> list[bytes]:
        """The encoded trials in the store's order (:meth:`db.store.Store.trial_page`): by the
        sort key, ties by number in the same direction, trials without the key last."""
        key = (states, sort, descending)
        order = self.orders.get(key)
        if order is None:
            of = _KEYS[sort]
            chosen = [t for t in self.trials if states is None or t.state.value in states]
            present = [t for t in chosen if of(t) is not None]
            present.sort(key=lambda t: (of(t), t.number), reverse=descending)
            absent = [t for t in chosen if of(t) is None]
            absent.sort(key=lambda t: t.number, reverse=descending)
            order = self.orders[key] = [self.encoded[t.number][1] for t in present + absent]
        return order


_EMPTY = Snapshot([], {})


@dataclass
class _Study:
    """One study's copy: the store's incremental reader and the latest snapshot."""

    study_id: int
    history: HistoryCache = field(default_factory=lambda: HistoryCache(with_intermediate=True))
    snapshot: Snapshot = _EMPTY
    read_at: float = -math.inf

    def read(self, store: Store) -> None:
        """Bring the copy up to date; only new and unfinished trials are read and re-encoded."""
        trials = store.read_history(self.history, self.study_id)
        encoded = dict(self.snapshot.encoded)
        changed = len(trials) != len(self.snapshot.trials)
        for trial in trials:
            hit = encoded.get(trial.number)
            # a trial object the reader kept is a finished one it did not re-read
            if hit is None or (hit[0] is not trial and hit[0] != trial):
                encoded[trial.number] = (trial, encode(trial))
                changed = True
        if changed:
            self.snapshot = Snapshot(trials, encoded)
        self.read_at = time.monotonic()


class TrialPages:
    """Pages of studies' trials for one server process, used from its event loop."""

    def __init__(self, store: Store, *, ttl_s: float = TRIALS_TTL_S, studies_kept: int = STUDIES_KEPT) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.studies_kept = studies_kept
        self._studies: OrderedDict[str, _Study] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    async def page(
        self, name: str, *, states: Sequence[str] | None, sort: str, descending: bool, offset: int, limit: int
    ) -> bytes:
        """``{"total", "offset", "limit", "trials"}`` encoded; StudyNotFoundError if there is no
        study ``name``."""
        snapshot = (await self._fresh(name)).snapshot
        order = snapshot.ordered(frozenset(states) if states else None, sort, descending)
        head = b'{"total":%d,"offset":%d,"limit":%d,"trials":[' % (len(order), offset, limit)
        return head + b",".join(order[offset : offset + limit]) + b"]}"

    async def snapshot(self, name: str) -> Snapshot:
        """The study's trials as last read (at most ``ttl_s`` old); StudyNotFoundError if there
        is no study ``name``. A new object exactly when anything changed, so what is derived
        from it (the dashboard's charts) can be kept by its identity."""
        return (await self._fresh(name)).snapshot

    def forget(self, name: str) -> None:
        """Read ``name`` afresh on its next page (this server just wrote to it)."""
        study = self._studies.get(name)
        if study is not None:
            study.read_at = -math.inf

    async def _fresh(self, name: str) -> _Study:
        study = self._studies.get(name)
        if study is not None:
            self._studies.move_to_end(name)
            if time.monotonic() - study.read_at < self.ttl_s:
                return study
        lock = self._locks.setdefault(name, asyncio.Lock())
        if lock.locked() and study is not None:
            return study  # another request is reading it: serve what is here, a moment old
        async with lock:
            study = self._studies.get(name)
            if study is None or time.monotonic() - study.read_at >= self.ttl_s:
                try:
                    study = await run_in_threadpool(self._read, name, study)
                except StudyNotFoundError:
                    self._studies.pop(name, None)  # deleted: forget its trials
                    raise
                self._studies[name] = study
                self._studies.move_to_end(name)
                while len(self._studies) > self.studies_kept:
                    dropped, _ = self._studies.popitem(last=False)
                    self._locks.pop(dropped, None)
            return study

    def _read(self, name: str, study: _Study | None) -> _Study:
        """In a worker thread: the study's copy, read anew (from scratch if it was deleted and
        made again under the same name)."""
        study_id = self.store.get_study(name).id
        if study is None or study.study_id != study_id:
            study = _Study(study_id)
        study.read(self.store)
        return study
