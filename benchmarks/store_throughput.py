"""Trial throughput and per-trial latency of the study store against Optuna's RDBStorage.

What it measures
    One cycle is one trial's life as a worker drives it: ours ``Store.enqueue`` -> ``claim``
    -> ``report`` at budgets 1, 2, 3 -> ``finish``; Optuna ``study.ask`` -> ``trial.report``
    x3 -> ``study.tell``. Every backend (SQLite, PostgreSQL) x study size (finished trials
    already in the study) x processes (1 and 4) is measured for both systems, each in its
    own database copied from a populated snapshot; each "spawn" process warms up, waits at a
    barrier and times its share of the cycles. trials/s: all measured cycles / (last end -
    first start); p50 / p95: of one whole cycle; throughput_ratio: ours / Optuna's;
    latency_growth: p50 at the largest study / at the smallest.

Targets
    throughput_ratio >= 5 in every configuration of a backend; our latency_growth <= 1.5 on
    every backend and process count.

How to run it
    ``python benchmarks/store_throughput.py [--quick] [--cycles N] [--backends sqlite
    postgresql] [--pg-url URL] [--output PATH]`` -> ``benchmarks/results/store_throughput.json``
    and ``.png`` (sizes 1,000 and 10,000; ``--quick``: 200 and 1,000, 60 cycles,
    ``store_throughput_quick.*``). PostgreSQL databases ``hpo_bench_*`` are created next to
    ``--pg-url``'s and dropped at the end; findings: ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import optuna
import psycopg
import sqlalchemy
from optuna.distributions import BaseDistribution, FloatDistribution
from psycopg import sql
from sqlalchemy import Engine, event, insert, select, update
from sqlalchemy.engine import URL, make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS_DIR, json_safe, log, new_figure, write_json
from db.models import IntermediateValue, Trial, TrialState
from db.store import Store, StudySettings, utcnow
from scaling.plot import readable_log_axes

if TYPE_CHECKING:
    from matplotlib.figure import Figure

STUDY_NAME = "throughput"
SYSTEMS = ("ours", "optuna")
BUDGETS = (1, 2, 3)
DISTRIBUTIONS: dict[str, BaseDistribution] = {
    "x": FloatDistribution(0.0, 1.0),
    "y": FloatDistribution(0.0, 1.0),
}
WARMUP_CYCLES = 3
BARRIER_TIMEOUT_S = 300.0
RESULT_TIMEOUT_S = 1800.0
THROUGHPUT_TARGET = 5.0
LATENCY_GROWTH_TARGET = 1.5
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


# ------------------------------------------------------------------- databases


class Databases(Protocol):
    """Two databases per system on one backend: ``base`` (the snapshot) and ``run`` (its copy)."""

    backend: str

    def url(self, system: str, role: str) -> str: ...

    def create_empty(self, system: str, role: str) -> None: ...

    def seal_base(self, system: str) -> None: ...

    def copy_base_to_run(self, system: str) -> None:
        """A fresh copy of the snapshot, written out to disk so measuring does not pay for it."""
        ...


class SQLiteDatabases:
    backend = "sqlite"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, system: str, role: str) -> Path:
        return self.directory / f"{system}_{role}.db"

    def url(self, system: str, role: str) -> str:
        return f"sqlite:///{self._path(system, role)}"

    def create_empty(self, system: str, role: str) -> None:
        path = self._path(system, role)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    def seal_base(self, system: str) -> None:
        """Nothing to do: every connection to the snapshot is closed, so its WAL is checkpointed."""

    def copy_base_to_run(self, system: str) -> None:
        self.create_empty(system, "run")
        base, run = self._path(system, "base"), self._path(system, "run")
        for suffix in ("", "-wal"):
            if Path(f"{base}{suffix}").exists():
                shutil.copyfile(f"{base}{suffix}", f"{run}{suffix}")
        os.sync()


class PostgresDatabases:
    backend = "postgresql"

    def __init__(self, admin_url: URL) -> None:
        self.admin_url = admin_url

    @contextmanager
    def _connect(self, database: str | None = None) -> Iterator[psycopg.Connection[Any]]:
        u = self.admin_url
        with psycopg.connect(
            host=u.host,
            port=u.port,
            user=u.username,
            password=u.password,
            dbname=database or u.database,
            autocommit=True,
        ) as conn:
            yield conn

    @staticmethod
    def _name(system: str, role: str) -> str:
        return f"hpo_bench_{system}" if role == "run" else f"hpo_bench_{system}_{role}"

    def url(self, system: str, role: str) -> str:
        return self.admin_url.set(database=self._name(system, role)).render_as_string(
            hide_password=False
        )

    def server_version(self) -> str:
        with self._connect() as conn:
            row = conn.execute("SHOW server_version").fetchone()
        assert row is not None
        return str(row[0])

    def _recreate(self, system: str, role: str, template: str | None = None) -> None:
        name = sql.Identifier(self._name(system, role))
        create = sql.SQL("CREATE DATABASE {}").format(name)
        if template is not None:
            create = sql.SQL("{} TEMPLATE {}").format(create, sql.Identifier(template))
        with self._connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
            conn.execute(create)

    def create_empty(self, system: str, role: str) -> None:
        self._recreate(system, role)

    def seal_base(self, system: str) -> None:
        """Reclaim dead rows and refresh planner statistics, as autovacuum eventually would."""
        with self._connect(self._name(system, "base")) as conn:
            conn.execute("VACUUM ANALYZE")

    def copy_base_to_run(self, system: str) -> None:
        self._recreate(system, "run", template=self._name(system, "base"))
        with self._connect() as conn:
            conn.execute("CHECKPOINT")
        os.sync()

    def drop_all(self) -> None:
        with self._connect() as conn:
            for system in SYSTEMS:
                for role in ("run", "base"):
                    name = sql.Identifier(self._name(system, role))
                    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))


# -------------------------------------------------------------------- populate


def populate_ours(url: str, start: int, stop: int) -> None:
    """Grow our study from ``start`` to ``stop`` finished trials, each with three intermediates."""
    rng = random.Random(start)
    store = Store(url)
    try:
        study_id = (
            store.create_study(STUDY_NAME, StudySettings()) if start == 0 else store.get_study(STUDY_NAME)
        ).id
        first = store.enqueue(study_id, [_random_params(rng) for _ in range(start, stop)])[0]
        now = utcnow()
        new_trials = (Trial.study_id == study_id, Trial.number >= first)
        with store.engine.begin() as conn:
            conn.execute(
                update(Trial)
                .where(*new_trials)
                .values(
                    state=TrialState.COMPLETED.value,
                    value=(Trial.number % 997) / 997.0,
                    worker_id="populate",
                    attempts=1,
                    started_at=now,
                    heartbeat_at=now,
                    finished_at=now,
                )
            )
            trial_ids = conn.execute(select(Trial.id).where(*new_trials)).scalars().all()
            conn.execute(
                insert(IntermediateValue),
                [
                    {
                        "trial_id": trial_id,
                        "budget": float(b),
                        "value": rng.random(),
                        "reported_at": now,
                    }
                    for trial_id in trial_ids
                    for b in BUDGETS
                ],
            )
    finally:
        store.close()


def populate_optuna(url: str, start: int, stop: int) -> None:
    """Grow Optuna's study from ``start`` to ``stop`` finished trials through ``add_trials``."""
    rng = random.Random(start)
    storage = optuna.storages.RDBStorage(url)
    _skip_waiting_for_disk(storage.engine)
    study = optuna.create_study(
        storage=storage,
        study_name=STUDY_NAME,
        sampler=optuna.samplers.RandomSampler(),
        load_if_exists=start > 0,
    )
    study.add_trials(
        [
            optuna.trial.create_trial(
                params=_random_params(rng),
                distributions=DISTRIBUTIONS,
                value=rng.random(),
                intermediate_values={b: rng.random() for b in BUDGETS},
            )
            for _ in range(start, stop)
        ]
    )
    storage.engine.dispose()


POPULATE: dict[str, Callable[[str, int, int], None]] = {
    "ours": populate_ours,
    "optuna": populate_optuna,
}


def _skip_waiting_for_disk(engine: Engine) -> None:
    """Populating only: commits return before reaching the disk (add_trials commits per trial)."""
    setting = (
        "PRAGMA synchronous=OFF"
        if engine.dialect.name == "sqlite"
        else "SET synchronous_commit = off"
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute(setting)
        cursor.close()
        dbapi_conn.commit()

    engine.dispose()  # connections opened before the listener was added


def _random_params(rng: random.Random) -> dict[str, float]:
    return {"x": rng.random(), "y": rng.random()}


# ---------------------------------------------------------------------- cycles


class Cycle(Protocol):
    """One process's way of running cycles against its own connection to one system."""

    # Claims that came back empty and were tried again within a cycle (Optuna: always 0).
    retried_claims: int

    def __call__(self) -> None: ...

    def close(self) -> None: ...


class OurCycle:
    """enqueue 1 -> claim -> report x3 -> finish, through one process's own Store.

    The store's claim looks again when PostgreSQL's ``FOR UPDATE ... LIMIT 1`` comes back empty
    while trials are queued; ``retried_claims`` counts any empty claim that still gets through
    (expected: 0), and the cycle then asks again rather than failing the run.
    """

    def __init__(self, url: str, index: int) -> None:
        self.store = Store(url)
        self.study_id = self.store.get_study(STUDY_NAME).id
        self.worker = f"bench-{index}"
        self.rng = random.Random(index)
        self.retried_claims = 0

    def __call__(self) -> None:
        self.store.enqueue(self.study_id, [_random_params(self.rng)])
        trial = self.store.claim(self.study_id, self.worker)
        while trial is None:
            self.retried_claims += 1
            trial = self.store.claim(self.study_id, self.worker)
        for budget in BUDGETS:
            self.store.report(trial.id, self.worker, budget, self.rng.random())
        self.store.finish(trial.id, self.worker, TrialState.COMPLETED, value=self.rng.random())

    def close(self) -> None:
        self.store.close()


class OptunaCycle:
    """ask -> report x3 -> tell, through one process's own RDBStorage."""

    def __init__(self, url: str, index: int) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.storage = optuna.storages.RDBStorage(url)
        self.study = optuna.load_study(
            study_name=STUDY_NAME,
            storage=self.storage,
            sampler=optuna.samplers.RandomSampler(seed=index),
        )
        self.rng = random.Random(index)
        self.retried_claims = 0

    def __call__(self) -> None:
        trial = self.study.ask(DISTRIBUTIONS)
        for step in BUDGETS:
            trial.report(self.rng.random(), step)
        self.study.tell(trial, self.rng.random())

    def close(self) -> None:
        self.storage.engine.dispose()


CYCLES: dict[str, Callable[[str, int], Cycle]] = {"ours": OurCycle, "optuna": OptunaCycle}


# ------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class WorkerResult:
    latencies_s: list[float]
    start: float
    end: float
    retried_claims: int


@dataclass(frozen=True)
class Measurement:
    trials_per_s: float
    p50_ms: float
    p95_ms: float
    retried_claims: int

    @classmethod
    def from_workers(cls, results: Sequence[WorkerResult]) -> Measurement:
        latencies_ms = np.array([t for r in results for t in r.latencies_s]) * 1e3
        elapsed = max(r.end for r in results) - min(r.start for r in results)
        return cls(
            trials_per_s=len(latencies_ms) / elapsed,
            p50_ms=float(np.percentile(latencies_ms, 50)),
            p95_ms=float(np.percentile(latencies_ms, 95)),
            retried_claims=sum(r.retried_claims for r in results),
        )

    def as_dict(self) -> dict[str, float | int]:
        return {
            "trials_per_s": self.trials_per_s,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "retried_claims": self.retried_claims,
        }


def _worker(system: str, url: str, index: int, cycles: int, barrier: Any, results: Any) -> None:
    """One process: open, warm up, wait for the others, run and time ``cycles`` cycles."""
    try:
        cycle = CYCLES[system](url, index)
        for _ in range(WARMUP_CYCLES):
            cycle()
        barrier.wait(BARRIER_TIMEOUT_S)
        warmup_retries = cycle.retried_claims
        latencies: list[float] = []
        start = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes
        for _ in range(cycles):
            t0 = time.perf_counter()
            cycle()
            latencies.append(time.perf_counter() - t0)
        end = time.perf_counter()
        cycle.close()
        results.put(WorkerResult(latencies, start, end, cycle.retried_claims - warmup_retries))
    except BaseException:  # noqa: BLE001 - a worker process hands any failure to the parent, which reports it
        barrier.abort()
        results.put(f"{system} worker {index}:\n{traceback.format_exc()}")


def measure(system: str, url: str, processes: int, cycles: int) -> Measurement:
    """Run ``cycles`` cycles split over ``processes`` spawned processes."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    shares = [cycles // processes + (i < cycles % processes) for i in range(processes)]
    workers = [
        ctx.Process(target=_worker, args=(system, url, i, share, barrier, results))
        for i, share in enumerate(shares)
    ]
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=RESULT_TIMEOUT_S) for _ in workers]
    for w in workers:
        w.join()
    errors = [o for o in outcomes if isinstance(o, str)]
    if errors:
        raise RuntimeError("\n".join(errors))
    return Measurement.from_workers(outcomes)


# --------------------------------------------------------------------- running


@dataclass(frozen=True)
class Configuration:
    backend: str
    study_size: int
    processes: int
    ours: Measurement
    optuna: Measurement

    @property
    def throughput_ratio(self) -> float:
        return self.ours.trials_per_s / self.optuna.trials_per_s

    def as_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "study_size": self.study_size,
            "processes": self.processes,
            "ours": self.ours.as_dict(),
            "optuna": self.optuna.as_dict(),
            "throughput_ratio": self.throughput_ratio,
        }


def run_backend(
    dbs: Databases, sizes: Sequence[int], processes: Sequence[int], cycles: int
) -> Iterator[Configuration]:
    """Populate the snapshots size by size and measure every process count on fresh copies."""
    for system in SYSTEMS:
        dbs.create_empty(system, "base")
    populated = 0
    for size in sizes:
        for system in SYSTEMS:
            t0 = time.perf_counter()
            POPULATE[system](dbs.url(system, "base"), populated, size)
            dbs.seal_base(system)
            elapsed = time.perf_counter() - t0
            log(f"{dbs.backend}: {system} study populated to {size} trials in {elapsed:.1f}s", clock=False)
        populated = size
        for procs in processes:
            measured: dict[str, Measurement] = {}
            for system in SYSTEMS:
                dbs.copy_base_to_run(system)
                measured[system] = measure(system, dbs.url(system, "run"), procs, cycles)
            config = Configuration(dbs.backend, size, procs, measured["ours"], measured["optuna"])
            log(_row(config), clock=False)
            yield config


def latency_growth(configs: Sequence[Configuration]) -> list[dict[str, Any]]:
    """p50 at the largest study size / p50 at the smallest, per backend and process count."""
    growth = []
    for backend in dict.fromkeys(c.backend for c in configs):
        for procs in dict.fromkeys(c.processes for c in configs):
            runs = sorted(
                (c for c in configs if c.backend == backend and c.processes == procs),
                key=lambda c: c.study_size,
            )
            small, large = runs[0], runs[-1]
            growth.append(
                {
                    "backend": backend,
                    "processes": procs,
                    "from_size": small.study_size,
                    "to_size": large.study_size,
                    "ours": large.ours.p50_ms / small.ours.p50_ms,
                    "optuna": large.optuna.p50_ms / small.optuna.p50_ms,
                }
            )
    return growth


def targets(configs: Sequence[Configuration], growth: Sequence[dict[str, Any]]) -> dict[str, Any]:
    backends = list(dict.fromkeys(c.backend for c in configs))
    throughput = {
        b: all(c.throughput_ratio >= THROUGHPUT_TARGET for c in configs if c.backend == b)
        for b in backends
    }
    flat = {
        b: all(g["ours"] <= LATENCY_GROWTH_TARGET for g in growth if g["backend"] == b)
        for b in backends
    }
    return {
        "throughput_ratio_at_least": THROUGHPUT_TARGET,
        "latency_growth_at_most": LATENCY_GROWTH_TARGET,
        "throughput_met": throughput,
        "latency_flat_met": flat,
        "all_met": all(throughput.values()) and all(flat.values()),
    }


# -------------------------------------------------------------------- reporting

_HEADER = (
    f"{'backend':<10} {'size':>6} {'procs':>5} | {'ours t/s':>9} {'optuna t/s':>10} {'ratio':>7} | "
    f"{'ours p50':>8} {'p95':>7} | {'optuna p50':>10} {'p95':>7}"
)


def _row(c: Configuration) -> str:
    return (
        f"{c.backend:<10} {c.study_size:>6} {c.processes:>5} | {c.ours.trials_per_s:>9.1f} "
        f"{c.optuna.trials_per_s:>10.1f} {c.throughput_ratio:>6.1f}x | {c.ours.p50_ms:>8.2f} "
        f"{c.ours.p95_ms:>7.2f} | {c.optuna.p50_ms:>10.2f} {c.optuna.p95_ms:>7.2f}"
    )


def print_report(
    configs: Sequence[Configuration], growth: Sequence[dict[str, Any]], met: dict[str, Any]
) -> None:
    print(_HEADER + "   (latencies in ms per trial)")
    print("-" * len(_HEADER))
    for c in configs:
        print(_row(c))
    print()
    for g in growth:
        print(
            f"latency growth {g['backend']:<10} {g['processes']} proc(s), p50 at {g['to_size']} / "
            f"at {g['from_size']}: ours {g['ours']:.2f}x, optuna {g['optuna']:.2f}x"
        )
    print()
    for backend, ok in met["throughput_met"].items():
        print(f"target throughput >= {THROUGHPUT_TARGET:g}x Optuna on {backend}: {_verdict(ok)}")
    for backend, ok in met["latency_flat_met"].items():
        print(f"target latency growth <= {LATENCY_GROWTH_TARGET:g}x on {backend}: {_verdict(ok)}")


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def figure(results: dict[str, Any]) -> Figure:
    """Left: throughput per configuration, ours beside Optuna, with the ratio over each pair;
    right: p50 latency against study size per (system, backend, processes). From the JSON."""
    configs = results["configurations"]
    fig = new_figure(16, 6)
    bars, lines = fig.subplots(1, 2, width_ratios=[3, 2])
    x = np.arange(len(configs))
    width = 0.4
    colors = {"ours": "tab:blue", "optuna": "tab:orange"}
    for offset, system in ((-width / 2, "ours"), (width / 2, "optuna")):
        values = [c[system]["trials_per_s"] for c in configs]
        bars.bar(x + offset, values, width, label=system, color=colors[system])
    for i, c in enumerate(configs):
        bars.annotate(f"{c['throughput_ratio']:.1f}x", (i, c["ours"]["trials_per_s"]), ha="center", va="bottom", fontsize=8)
    bars.set_xticks(x, [f"{c['backend']}\nN={c['study_size']}\n{c['processes']}p" for c in configs], fontsize=8)
    bars.set_yscale("log")
    bars.set_ylabel("trials/s (log)")
    bars.set_title("Throughput per configuration (label: ours / Optuna)")
    top = max(max(c["ours"]["trials_per_s"], c["optuna"]["trials_per_s"]) for c in configs)
    bars.set_ylim(top=4 * top)  # headroom on the log axis: the legend sits above the ratios, not on them
    bars.legend(loc="upper right", framealpha=0.8)

    styles = {"sqlite": "-", "postgresql": "--"}
    markers = {1: "o", 4: "s"}
    for system in SYSTEMS:
        for backend in dict.fromkeys(c["backend"] for c in configs):
            for procs in dict.fromkeys(c["processes"] for c in configs):
                runs = sorted((c for c in configs if c["backend"] == backend and c["processes"] == procs),
                              key=lambda c: c["study_size"])
                lines.plot([c["study_size"] for c in runs], [c[system]["p50_ms"] for c in runs],
                           styles.get(backend, ":"), marker=markers.get(procs, "^"), color=colors[system],
                           label=f"{system} {backend} {procs}p")
    lines.set_xscale("log")
    lines.set_yscale("log")
    lines.set_xlabel("finished trials in the study")
    lines.set_ylabel("p50 ms per trial (log)")
    lines.set_title("Per-trial latency vs study size")
    lines.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.draw_without_rendering()
    readable_log_axes(fig)
    return fig


def machine_info(pg: PostgresDatabases | None) -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlalchemy": sqlalchemy.__version__,
        "optuna": optuna.__version__,
        "psycopg": psycopg.__version__,
        "sqlite": sqlite3.sqlite_version,
        "postgres": pg.server_version() if pg is not None else None,
        # Other work on a small machine shifts every number: the load when the run began.
        "load_average_at_start": os.getloadavg(),
    }


# ------------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: study sizes 200 and 1000, 60 cycles"
    )
    parser.add_argument(
        "--cycles",
        type=int,
        help="measured cycles per configuration, split over its processes (default 200, quick 60)",
    )
    parser.add_argument(
        "--backends", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"]
    )
    parser.add_argument(
        "--pg-url",
        default=DEFAULT_PG_URL,
        help="a maintenance database on the PostgreSQL server (default %(default)s)",
    )
    parser.add_argument(
        "--output", type=Path, help="JSON results path; the chart goes next to it as .png"
    )
    args = parser.parse_args(argv)
    args.sizes = (200, 1000) if args.quick else (1000, 10_000)
    args.processes = (1, 4)
    args.cycles = args.cycles or (60 if args.quick else 200)
    if args.output is None:
        args.output = RESULTS_DIR / (
            "store_throughput_quick.json" if args.quick else "store_throughput.json"
        )
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    pg = PostgresDatabases(make_url(args.pg_url)) if "postgresql" in args.backends else None
    machine = machine_info(pg)
    configs: list[Configuration] = []
    log(_HEADER, clock=False)
    with tempfile.TemporaryDirectory(prefix="hpo-bench-") as tmp:
        for backend in args.backends:
            dbs = SQLiteDatabases(Path(tmp)) if backend == "sqlite" else pg
            assert dbs is not None
            try:
                configs.extend(run_backend(dbs, args.sizes, args.processes, args.cycles))
            finally:
                if isinstance(dbs, PostgresDatabases):
                    dbs.drop_all()
    growth = latency_growth(configs)
    met = targets(configs, growth)
    print_report(configs, growth, met)
    wall_s = time.perf_counter() - started
    print(f"\nwall time {wall_s:.0f}s; results in {args.output}")
    results = {
        "machine": machine,
        "settings": {
            "quick": args.quick,
            "study_sizes": list(args.sizes),
            "processes": list(args.processes),
            "measured_cycles": args.cycles,
            "warmup_cycles_per_process": WARMUP_CYCLES,
            "wall_s": wall_s,
        },
        "configurations": [c.as_dict() for c in configs],
        "latency_growth": growth,
        "targets": met,
    }
    write_json(args.output, results)
    figure(json_safe(results)).savefig(args.output.with_suffix(".png"), dpi=120)


if __name__ == "__main__":
    main()
