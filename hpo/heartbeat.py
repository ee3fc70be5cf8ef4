"""Keeping a claimed trial alive while its objective runs.

A background thread beats every ``interval`` seconds. If the store answers that the trial is no
longer held (it was re-queued because beats stopped arriving, e.g. the process was paused),
the thread records that, so the worker can drop its result instead of reporting it.
"""

from __future__ import annotations

import threading
from types import TracebackType

from db.errors import StoreError, TrialNotHeldError
from hpo.trial import HeldTrial


class Heartbeat:
    """``with Heartbeat(trial, interval):`` beats for the held trial until the block ends."""

    def __init__(self, trial: HeldTrial, interval: float) -> None:
        self._trial = trial
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{trial.number}", daemon=True)
        self.lost: TrialNotHeldError | None = None

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._trial.heartbeat()
            except TrialNotHeldError as exc:
                self.lost = exc
                return
            except StoreError:
                continue  # a blip in the database: the next beat may get through

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
