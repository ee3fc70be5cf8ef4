"""Running a study's search on Ray: ``hpo sweep run`` and :func:`run_sweep`.

The driver starts (or joins) Ray, places ``workers`` actors (:class:`workers.ray_worker.SweepWorker`)
with the resources a trial needs, and then only watches: each actor asks the study for trials,
runs them and records them itself, so the driver is off the per-trial path. What the driver
adds is what no worker can know alone:

* a worker that dies (killed, out of memory, its node gone) is noticed at once through its
  actor; its running trial is re-queued (or, after an out-of-memory death, failed: running it
  again would die again) without waiting for the heartbeat timeout, and a replacement starts.
  A worker lost with its node (spot preemption, a node removed) spends none of the trial's
  retries: the trial was not at fault;
* a driver that dies leaves its trials running in the store; their heartbeats stop with the
  actors, so the next ``hpo sweep run`` of the same study recovers them after the study's
  heartbeat timeout, and the stateless algorithms continue their brackets from the store;
* live progress, and a summary at the end.

``max_trials`` counts the study's trials, not this run's: running the same command again
after an interruption finishes the same sweep instead of starting a second one.
"""

from __future__ import annotations

import enum
import math
import os
import re
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from db.models import TrialState
from db.records import FrozenTrial
from hpo.runner import Objective, sweep_done
from hpo.study import Study, load_study
from workers.command import CommandObjective
from workers.errors import SweepError
from workers.objectives import resolve_objective
from workers.progress import SweepProgress

#: Deaths tolerated per requested worker before the sweep gives up (a crash loop, e.g. an
#: objective module that cannot import on the cluster's nodes, should stop, not spin). Deaths
#: with a lost node count too: they spend no trial's retries, so this is what bounds them.
_DEATHS_PER_WORKER = 3
#: How often the driver looks at its actors and the store.
_POLL_S = 0.5
#: How long the driver waits for a cluster's port to answer before calling the address bad.
_CONNECT_TIMEOUT_S = 5.0


#: ``on_progress(counts by state, best trial or None, workers alive, seconds elapsed)``.
ProgressCallback = Callable[[dict[TrialState, int], FrozenTrial | None, int, float], None]


@dataclass
class SweepResult:
    """What a sweep did: the study's counts by state at the end, its best trial, this run's
    wall time, and the workers that died (with why) and were replaced."""

    study: str
    counts: dict[TrialState, int]
    best: FrozenTrial | None
    wall_s: float
    workers_started: int
    deaths: list[str] = field(default_factory=list)
    interrupted: bool = False


@dataclass
class _Slot:
    actor: Any
    token: str
    identity: Any  # ObjectRef of the worker's id in the store
    run: Any  # ObjectRef of its run()


def run_sweep(
    study: str | Study,
    objective: str | Objective | None = None,
    *,
    storage: str | None = None,
    workers: int = 1,
    address: str | None = None,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    max_trials: int | None = None,
    timeout: float | None = None,
    progress: bool = True,
    heartbeat_interval: float | None = None,
    on_progress: ProgressCallback | None = None,
) -> SweepResult:
    """Run the study's search with ``workers`` Ray workers until the study holds
    ``max_trials`` finished trials, ``timeout`` seconds pass, or the user interrupts.

    ``objective`` is a ``module:function`` spec, a built-in's name, or a callable (pickled to
    the workers), such as a :class:`workers.command.CommandObjective`; default: the objective
    recorded with the study. Without ``address`` a local Ray is started (and stopped at the
    end) with at least ``workers * cpus_per_trial`` CPUs, so the workers asked for all run;
    with it, the cluster at that address is joined (``auto``, ``ray://host:10001``) and
    workers wait for free resources there. If Ray is already initialised in this process,
    that Ray is used as it is. ``on_progress`` is called from the driver at every poll with
    the study's counts by state, its best trial, the workers alive and the seconds elapsed
    (for a notebook's own display, or a test).
    """
    _check_counts(workers, cpus_per_trial, gpus_per_trial, max_trials, timeout)
    handle = study if isinstance(study, Study) else load_study(study, storage)
    spec = objective if objective is not None else handle.record.objective
    if spec is None:
        raise SweepError(
            f"study {handle.name!r} records no objective; pass one (--objective module:function, "
            "or a built-in such as branin)"
        )
    if isinstance(spec, str):
        resolve_objective(spec, handle)  # a typo fails here, in one line, before any worker starts
    elif isinstance(spec, CommandObjective):
        spec.validate(handle)  # so does a placeholder the study cannot fill, or a missing executable
    if handle.search_space is None and handle.counts()[TrialState.QUEUED] == 0:
        raise SweepError(
            f"study {handle.name!r} has no search space and no queued trials: nothing to run; "
            "create it with --space, or enqueue configurations"
        )

    import ray

    started = _connect(ray, address, workers * cpus_per_trial)
    try:
        _check_resources(ray, gpus_per_trial, cpus_per_trial)
        driver = _Driver(ray, handle, spec, workers, cpus_per_trial, gpus_per_trial, max_trials, timeout, heartbeat_interval)
        with SweepProgress(handle.name, max_trials, enabled=progress) as display:
            if on_progress is None:
                return driver.run(display.update)
            callback = on_progress

            def both(*state: Any) -> None:
                display.update(*state)
                callback(*state)

            return driver.run(both)
    finally:
        if started:
            ray.shutdown()


@contextmanager
def ray_session(address: str | None = None, cpus: float = 1.0) -> Iterator[dict[str, float]]:
    """Ray for several sweeps in a row (one per proxy width, say): started or joined once,
    with at least ``cpus`` CPUs when local, and stopped at the end only if started here.
    :func:`run_sweep` inside it uses this Ray instead of starting its own. Yields the
    cluster's resources (CPU, GPU, ...), so a caller can say where it runs."""
    import ray

    started = _connect(ray, address, cpus)
    try:
        yield dict(ray.cluster_resources())
    finally:
        if started:
            ray.shutdown()


def _check_counts(
    workers: int, cpus: float, gpus: float, max_trials: int | None, timeout: float | None
) -> None:
    problems = [
        f"{name} must be {rule}, got {value}"
        for name, value, ok, rule in (
            ("workers", workers, workers >= 1, ">= 1"),
            ("cpus per trial", cpus, cpus > 0, "> 0"),
            ("gpus per trial", gpus, gpus >= 0, ">= 0"),
            ("max trials", max_trials, max_trials is None or max_trials >= 1, ">= 1"),
            ("timeout", timeout, timeout is None or timeout > 0, "> 0 seconds"),
        )
        if not ok
    ]
    if problems:
        raise SweepError("; ".join(problems))


def _connect(ray: Any, address: str | None, cpus_needed: float) -> bool:
    """Join or start Ray; True when this call started it (and so must stop it)."""
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"address": address, "log_to_driver": False, "logging_level": "ERROR"}
    if address is None:  # "local": never join a cluster someone else left running here
        cpus = max(os.cpu_count() or 1, math.ceil(cpus_needed))
        options |= {"address": "local", "num_cpus": cpus, "include_dashboard": False}
    else:
        _reachable(address)
        _send_auth_token()
    try:
        ray.init(**options)
    except Exception as exc:  # noqa: BLE001 - Ray raises many kinds here; each is one line for the user
        where = f"the Ray cluster at {address!r}" if address else "a local Ray"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SweepError(f"cannot start or join {where}: {first}") from None
    return True


def _send_auth_token() -> None:
    """Ray 2.5x's ``ray start`` turns token authentication on by default, but a driver that
    joins by address sends its token only when ``RAY_AUTH_MODE=token``; without it the join
    fails after 30 s of 'InvalidAuthToken' warnings. So when a token is at hand and the user
    has not chosen a mode, send it (a cluster without authentication ignores it)."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH") or (Path.home() / ".ray" / "auth_token").is_file():
        os.environ["RAY_AUTH_MODE"] = "token"
        # Ray reads its config when imported; re-read it as Ray's own token setup does
        from ray._raylet import Config  # type: ignore[attr-defined]  # Ray's private config hook, untyped

        Config.initialize("")


def _reachable(address: str) -> None:
    """Fail in one line, at once, on an address nothing listens at: Ray itself waits 30 s
    (``ray://``) or retries for minutes (a GCS ``host:port``) before it gives up."""
    if address == "auto":
        return
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise SweepError(f"Ray address {address!r} is malformed; expected auto, HOST:PORT or ray://HOST:10001")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=_CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise SweepError(f"cannot reach the Ray cluster at {address!r}: {exc.strerror or exc}") from None


def _check_resources(ray: Any, gpus: float, cpus: float) -> None:
    total = ray.cluster_resources()
    if gpus > 0 and total.get("GPU", 0) < gpus:
        raise SweepError(
            f"--gpus-per-trial {gpus:g} needs a GPU, and this Ray cluster has {total.get('GPU', 0):g}; "
            "run on a cluster with GPUs or leave --gpus-per-trial at 0"
        )
    if total.get("CPU", 0) < cpus:
        raise SweepError(f"--cpus-per-trial {cpus:g} is more than the cluster's {total.get('CPU', 0):g} CPUs")


class _Driver:
    """Keeps ``workers`` actors running the study until every one of them is done, replacing
    the ones that die and giving their trials back to the store."""

    def __init__(
        self,
        ray: Any,
        study: Study,
        objective: str | Objective,
        workers: int,
        cpus: float,
        gpus: float,
        max_trials: int | None,
        timeout: float | None,
        heartbeat_interval: float | None,
    ) -> None:
        from workers.ray_worker import SweepWorker

        self.ray = ray
        self.study = study
        self.workers = workers
        self.max_trials = max_trials
        self.deadline = None if timeout is None else time.time() + timeout
        self.heartbeat_interval = heartbeat_interval
        # The driver's import path goes to each worker, so a module:function spec or a pickled
        # callable from the user's own modules imports there too; the callable is pickled here
        # so that Ray does not unpickle it before the worker has extended sys.path.
        self.import_path = [*_import_path(), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        self.objective_arg = objective if isinstance(objective, str) else ray.cloudpickle.dumps(objective)
        self.actor_class = ray.remote(SweepWorker).options(num_cpus=cpus, num_gpus=gpus, max_restarts=0)
        self.run_id = uuid.uuid4().hex[:6]
        self.storage_url = study.store.url.render_as_string(hide_password=False)
        self.slots: list[_Slot] = []
        self.started = 0
        self.deaths: list[str] = []

    def run(self, show: ProgressCallback) -> SweepResult:
        start = time.monotonic()
        for _ in range(self.workers):
            self._start_worker()
        interrupted = False
        try:
            while self.slots:
                ready, _ = self.ray.wait([slot.run for slot in self.slots], num_returns=1, timeout=_POLL_S)
                for ref in ready:
                    self._finished(next(slot for slot in self.slots if slot.run == ref))
                show(self.study.counts(), self._best(), len(self.slots), time.monotonic() - start)
        except KeyboardInterrupt:
            interrupted = True
            self._stop_all("the sweep was interrupted")
        return SweepResult(
            study=self.study.name,
            counts=self.study.counts(),
            best=self._best(),
            wall_s=time.monotonic() - start,
            workers_started=self.started,
            deaths=self.deaths,
            interrupted=interrupted,
        )

    def _start_worker(self) -> None:
        token = f"ray-{self.run_id}-{self.started}"
        self.started += 1
        actor = self.actor_class.remote(self.storage_url, self.study.name, self.objective_arg, token, self.import_path)
        identity = actor.identity.remote()  # first: an actor runs its calls in order, and run() is long
        run = actor.run.remote(self.max_trials, self.deadline, self.heartbeat_interval)
        self.slots.append(_Slot(actor, token, identity, run))

    def _finished(self, slot: _Slot) -> None:
        self.slots.remove(slot)
        try:
            self.ray.get(slot.run)
            return  # the sweep is over for this worker
        except self.ray.exceptions.RayError as exc:
            reason, cause = _death(exc, _lost_node(self.ray, exc))
            if getattr(exc, "actor_init_failed", False):  # it would fail the same way every time
                self._stop_all("a worker could not start")
                raise SweepError(f"workers cannot start: {_start_failure(exc)}") from None
        worker_id = self._worker_id(slot)
        self.deaths.append(f"{worker_id or slot.token}: {reason}")
        if worker_id is not None:
            self.study.release_worker(
                worker_id,
                f"worker {worker_id!r} died: {reason}",
                retry=cause is not _Cause.OUT_OF_MEMORY,
                counted=cause is not _Cause.NODE_LOST,
            )
        if len(self.deaths) > _DEATHS_PER_WORKER * self.workers:
            self._stop_all("the sweep gave up")
            raise SweepError(f"{len(self.deaths)} workers died, the last with: {reason}; the sweep stopped")
        if not self._over():
            self._start_worker()

    def _worker_id(self, slot: _Slot) -> str | None:
        """The dead worker's id in the store, if it lived long enough to have one."""
        try:
            return str(self.ray.get(slot.identity, timeout=0))
        except Exception:  # noqa: BLE001 - died before it said who it was: it held no trial
            return None

    def _over(self) -> bool:
        if self.deadline is not None and time.time() >= self.deadline:
            return True
        return sweep_done(
            self.study.counts(), self.max_trials, has_space=self.study.search_space is not None, stopped=self.study.stopped
        )

    def _stop_all(self, why: str) -> None:
        """Kill every actor and give its trials back at once, so a re-run resumes them without
        waiting out the heartbeat timeout."""
        for slot in self.slots:
            worker_id = self._worker_id(slot)
            self.ray.kill(slot.actor, no_restart=True)
            if worker_id is not None:
                self.study.release_worker(worker_id, f"{why}; worker {worker_id!r} stopped")
        self.slots.clear()

    def _best(self) -> FrozenTrial | None:
        return self.study.store.best_trial(self.study.id, self.study.direction)


class _Cause(enum.Enum):
    """Why a worker died, as far as its trial's retries go: a crash spends one, running out of
    memory fails the trial (it would die again), a lost node spends none (not the trial's fault)."""

    CRASH = ""
    OUT_OF_MEMORY = "out of memory: "
    NODE_LOST = "node lost: "


#: The cause Ray's GCS gives an actor whose node died (removed, preempted, failed its health
#: checks), naming the node.
_NODE_DIED = re.compile(r"its node has died\. Node Id: ([0-9a-f]+)")


def _lost_node(ray: Any, exc: Exception) -> bool:
    """Whether the actor died with its node rather than by its own process's end.

    Ray flags a spot or autoscaler preemption on the error (``preempted``); any other node
    death it writes into the actor's cause with the node's id, and then the GCS node table
    must agree that this node is no longer alive. Anything else (a crash, a kill, a message
    Ray words differently) is not a node loss, so it spends a retry as it always did."""
    if isinstance(exc, ray.exceptions.RayActorError) and exc.preempted:
        return True
    named = _NODE_DIED.search(str(exc))
    if named is None:
        return False
    return not any(node["NodeID"] == named.group(1) and node["Alive"] for node in ray.nodes())


def _death(exc: Exception, node_lost: bool) -> tuple[str, _Cause]:
    """One line on why an actor died, and its cause: Ray's memory monitor killed it (Ray's
    generic worker-death text also lists "OOM" among possible causes, so that word alone
    proves nothing), its node was lost (``node_lost``, from :func:`_lost_node`), or else a
    crash."""
    text = str(exc)
    out_of_memory = type(exc).__name__ == "OutOfMemoryError" or any(
        mark in text for mark in ("low on memory", "RAY_memory_usage_threshold")
    )
    cause = _Cause.OUT_OF_MEMORY if out_of_memory else _Cause.NODE_LOST if node_lost else _Cause.CRASH
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("\t")]
    if not lines:
        return cause.value + type(exc).__name__, cause
    detail = lines[-1].split(". ")[0] if len(lines) > 1 else ""
    reason = f"{type(exc).__name__}: {lines[0]}" + (f" {detail}" if detail else "")
    return (cause.value + reason)[:400], cause


def _start_failure(exc: Exception) -> str:
    """The last line of the error a worker's constructor raised (the exception itself),
    its class named without its module."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return re.sub(r"^[\w.]+\.(\w+: )", r"\1", lines[-1])[:300] if lines else type(exc).__name__


def _import_path() -> list[str]:
    """The driver's import path entries a worker may lack: its working directory and the
    ``sys.path`` entries outside the Python installation (the script's directory,
    ``PYTHONPATH``), where ``module:function`` objectives are found."""
    installed = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix})
    extra = [p for p in sys.path if p and os.path.isdir(p) and not os.path.abspath(p).startswith(installed)]
    return list(dict.fromkeys([os.getcwd(), *extra]))
