"""What a sweep shows while it runs and when it ends.

On a terminal, one live line (rich) redrawn a few times a second: trials finished against the
limit, by state, the best value, the rate and the workers alive. Piped into a log, the same
line is printed every ``log_every`` seconds instead, so CI logs and ``nohup`` files stay short.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.text import Text

from db.models import TrialState
from db.records import FrozenTrial


class SweepProgress:
    """``with SweepProgress(name, max_trials) as p: p.update(counts, best, workers, elapsed)``."""

    def __init__(self, study: str, max_trials: int | None, *, enabled: bool = True, log_every: float = 10.0) -> None:
        self.study = study
        self.max_trials = max_trials
        self.enabled = enabled
        self.log_every = log_every
        self.console = Console(stderr=True)
        self._live: Live | None = None
        self._last_log = 0.0
        self._first_finished: int | None = None

    def __enter__(self) -> SweepProgress:
        if self.enabled and self.console.is_terminal:
            self._live = Live(Text(f"{self.study}: starting workers"), console=self.console, refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)

    def update(self, counts: dict[TrialState, int], best: FrozenTrial | None, workers: int, elapsed: float) -> None:
        if not self.enabled:
            return
        line = self.line(counts, best, workers, elapsed)
        if self._live is not None:
            self._live.update(Text(line))
        elif time.monotonic() - self._last_log >= self.log_every:
            self._last_log = time.monotonic()
            print(line, file=sys.stderr, flush=True)

    def line(self, counts: dict[TrialState, int], best: FrozenTrial | None, workers: int, elapsed: float) -> str:
        finished = sum(n for state, n in counts.items() if state.is_finished)
        if self._first_finished is None:
            self._first_finished = finished  # a resumed sweep's rate counts this run's trials only
        rate = (finished - self._first_finished) / elapsed * 60 if elapsed > 0 else 0.0
        total = f"{finished}/{self.max_trials}" if self.max_trials else str(finished)
        states = ", ".join(
            f"{n} {state.value}"
            for state in (TrialState.COMPLETED, TrialState.PRUNED, TrialState.FAILED, TrialState.DIVERGED, TrialState.RUNNING)
            if (n := counts.get(state, 0))
        )
        best_text = "-" if best is None or best.value is None else f"{best.value:.6g} (trial {best.number})"
        return (
            f"{self.study}: {total} trials ({states or 'none yet'}) | best {best_text} | "
            f"{rate:.1f} trials/min | {workers} workers | {elapsed:.0f}s"
        )
