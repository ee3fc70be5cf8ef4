"""The Ray actor that runs one sweep worker: :func:`hpo.runner.work` in its own process.

It is a plain class; :mod:`workers.sweep` turns it into an actor with the resources a trial
needs (``num_cpus``, ``num_gpus``), so Ray places it and sets ``CUDA_VISIBLE_DEVICES``. The
driver's import path comes as an argument and the objective pickled, unpickled only once that
path is on ``sys.path`` (where a ``module:function`` or a pickled function of the user's own
modules is found). A ``runtime_env`` would do the same, but an actor with one cannot take any
of the worker processes Ray keeps started for the job, and it brought the workers' first
trials no closer together. The actor talks to the study store directly:
trials, intermediate values and heartbeats never go through the driver, which only watches
the store and replaces workers that die.
"""

from __future__ import annotations

import os
import socket
import sys

from ray import cloudpickle

from hpo.runner import Objective, work
from hpo.study import load_study
from workers.objectives import resolve_objective


class SweepWorker:
    """One worker of a sweep. ``token`` names it in the driver's run; its worker id in the
    store adds the host and pid it landed on, so the dashboard says where a trial runs."""

    def __init__(
        self,
        storage_url: str,
        study_name: str,
        objective: str | bytes,
        token: str,
        import_path: list[str],
    ) -> None:
        sys.path[:0] = [p for p in import_path if p not in sys.path]
        self.worker_id = f"{token}@{socket.gethostname()}:{os.getpid()}"
        self.study = load_study(study_name, storage_url)
        self.objective: Objective = (
            resolve_objective(objective, self.study) if isinstance(objective, str) else cloudpickle.loads(objective)
        )

    def identity(self) -> str:
        return self.worker_id

    def run(self, max_trials: int | None, deadline: float | None, heartbeat_interval: float | None) -> dict[str, int]:
        """Work until the sweep is over for this worker; how many trials it ended, by state."""
        outcomes = work(
            self.study,
            self.objective,
            worker_id=self.worker_id,
            max_trials=max_trials,
            deadline=deadline,
            heartbeat_interval=heartbeat_interval,
        )
        return {state.value: n for state, n in outcomes.items()}
