"""Search quality of every registered algorithm against Optuna and Ray Tune on the synthetic
multi-fidelity benchmarks, plus the per-trial cost of ``ask`` in a study of 2,000 trials.

What it measures
    On multi-fidelity Branin, Hartmann-3, Hartmann-6 and counting ones 8+8 and 32+32
    (``workers/problems.py``), every algorithm in ``hpo.algorithms.ALGORITHMS`` (through the
    real study API on SQLite in /dev/shm), Optuna TPE + Hyperband pruner and Ray Tune ASHA /
    HyperBand (the anchors) get the same noisy objective, eta = 3 and the same total budget
    in full-fidelity evaluations; each rung evaluation is charged cost(z) / cost(z_max).
    Regret is the incumbent's (best observed full-fidelity value), scored noise-free: median
    and IQR over seeds, and budget_to_random / speedup_vs_random against random search.
    ``ask_latency_ms``: median ``ask`` and ask + tell with 2,000 trials in the study, timed
    alone after the quality runs, on /dev/shm and on disk.

Targets, per benchmark
    1. Our DEHB variants and our best model-based method: median final regret <= the best
       anchor's.  2. Every multi-fidelity method of ours: speedup_vs_random >= 3.  3. The
       median ask on /dev/shm under 50 ms at 2,000 trials, for every algorithm.

How to run it
    ``python benchmarks/hpo_quality.py [--quick] [--seeds N] [--budget B] [--problems ...]
    [--methods ...] [--no-ray]`` -> ``benchmarks/results/hpo_quality.json`` and ``.png``
    (``hpo_quality_quick.*`` with ``--quick``: 2 seeds, budget 15, one Ray seed on Branin).
    The protocol's details and the findings: ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hpo
from benchmarks.common import (
    RESULTS_DIR,
    fmt,
    json_safe,
    log,
    machine,
    new_figure,
    print_table,
    quiet_ray_env,
    write_json,
)
from db.store import Store
from scaling.plot import readable_log_axes
from search_spaces.params import Categorical, Float, Int
from workers.problems import PROBLEMS, Problem

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ETA = 3
SHM_DIR = "/dev/shm"
DISK_DIR = "/var/tmp"
OPTUNA = "optuna-tpe-hb"
RAY_ASHA = "ray-asha"
RAY_HB = "ray-hyperband"
ANCHORS = (OPTUNA, RAY_ASHA, RAY_HB)
RAY_METHODS = (RAY_ASHA, RAY_HB)
MF_NAME = re.compile(r"dehb|bohb|hyperband|asha|^hb")
MODEL_BASED_NAMES = ("bo", "tpe", "bohb", "gp", "smac")
SPEEDUP_TARGET = 3.0
ASK_TARGET_MS = 50.0
DEFAULT_BUDGETS = {"counting-ones-8-8": 30.0, "counting-ones-32-32": 30.0}
DEFAULT_BUDGET = 50.0
LATENCY_PROBLEM = "hartmann6"


# ------------------------------------------------------------------ registry


def registry() -> dict[str, type]:
    from hpo.algorithms import ALGORITHMS

    return dict(ALGORITHMS)


def is_multi_fidelity(name: str, cls: type | None = None) -> bool:
    from hpo.algorithms import ASHA, Hyperband

    if name in RAY_METHODS or name == OPTUNA:
        return True
    if cls is not None and issubclass(cls, (Hyperband, ASHA)):
        return True
    return bool(MF_NAME.search(name))


def is_model_based(name: str) -> bool:
    return name in MODEL_BASED_NAMES


def ladder(problem: Problem) -> list[float]:
    """The rung budgets min-side to max: max * eta^(k - s_max), k = 0..s_max (our Hyperband's)."""
    fid = problem.space.fidelity
    s_max = math.floor(math.log(fid.max / fid.min, ETA) + 1e-9)
    return [fid.max * ETA ** (k - s_max) for k in range(s_max + 1)]


class Recorder:
    """Charges evaluations and keeps the trace (spent, incumbent regret) as the protocol says."""

    def __init__(self, problem: Problem, budget: float) -> None:
        self.problem = problem
        self.budget = budget
        self.zmax = problem.space.fidelity.max
        self.full = problem.cost(self.zmax)
        self.spent = 0.0
        self.best_value = math.inf
        self.best_regret = math.inf
        self.trace_spent: list[float] = []
        self.trace_regret: list[float] = []

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.budget

    def charge(self, config: dict[str, Any], z: float, value: float) -> None:
        self.spent += self.problem.cost(z) / self.full
        if math.isclose(z, self.zmax) and value < self.best_value:
            self.best_value, self.best_regret = value, self.problem.regret(config)
        self.trace_spent.append(self.spent)
        self.trace_regret.append(self.best_regret)


# ------------------------------------------------------------------ runners


def run_ours(
    algorithm: str, problem: Problem, budget: float, seed: int, deadline_s: float
) -> dict[str, Any]:
    """As ``workers.problems.run_on_budget`` (same loop, same accounting), plus a wall-clock
    guard so one pathological run cannot sink the whole benchmark (flagged if it trips)."""
    directory = tempfile.mkdtemp(prefix="hpoq_", dir=SHM_DIR)
    store = Store(f"sqlite:///{directory}/study.db")
    try:
        study = hpo.create_study(
            "q",
            store,
            search_space=problem.space,
            algorithm=algorithm,
            algorithm_settings={"seed": seed},
        )
        rng = np.random.default_rng(seed)
        rec = Recorder(problem, budget)
        start = time.perf_counter()
        timed_out = False
        while not rec.exhausted:
            if time.perf_counter() - start > deadline_s:
                timed_out = True
                break
            trial = study.ask("bench")
            if trial is None:
                raise RuntimeError(f"{algorithm!r} proposed nothing with no trial running")
            z = trial.budget if trial.budget is not None else rec.zmax
            value = problem.evaluate(trial.params, z, rng)
            study.tell(trial, value)
            rec.charge(dict(trial.params), z, value)
        return {"spent": rec.trace_spent, "regret": rec.trace_regret, "timed_out": timed_out}
    finally:
        store.close()
        shutil.rmtree(directory, ignore_errors=True)


def _suggest_optuna(trial: Any, problem: Problem) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for name, param in zip(problem.space.names, problem.space.params):
        if isinstance(param, Float):
            config[name] = trial.suggest_float(name, param.low, param.high, log=param.log)
        elif isinstance(param, Int):
            config[name] = trial.suggest_int(
                name, param.low, param.high, log=getattr(param, "log", False)
            )
        elif isinstance(param, Categorical):
            config[name] = trial.suggest_categorical(name, list(param.choices))
        else:
            raise TypeError(f"no Optuna distribution for {param!r}")
    return config


def run_optuna(problem: Problem, budget: float, seed: int) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rungs = ladder(problem)
    s_max = len(rungs) - 1
    pruner = optuna.pruners.HyperbandPruner(
        min_resource=1, max_resource=ETA**s_max, reduction_factor=ETA
    )
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner)
    rng = np.random.default_rng(seed)
    rec = Recorder(problem, budget)

    def objective(trial: Any) -> float:
        config = _suggest_optuna(trial, problem)
        first = pruner._get_bracket_id(study, trial)  # the bracket's first check is at step 3^id
        value = math.inf
        for k in range(min(first, s_max), s_max + 1):
            value = problem.evaluate(config, rungs[k], rng)
            rec.charge(config, rungs[k], value)
            if rec.exhausted:
                study.stop()
                raise optuna.TrialPruned()
            trial.report(value, ETA**k)
            if k < s_max and trial.should_prune():
                raise optuna.TrialPruned()
        return value

    study.optimize(objective, n_trials=10**7)
    return {"spent": rec.trace_spent, "regret": rec.trace_regret, "timed_out": False}


# Ray Tune: the stopper runs in the driver process and records every result there.
_RAY_RECORDER: Recorder | None = None


def _ray_trainable() -> type:
    from ray import tune

    class Rungs(tune.Trainable):
        def setup(self, config: dict[str, Any]) -> None:
            self.problem = PROBLEMS[config["_problem"]]
            self.rungs = ladder(self.problem)
            self.k = 0
            self.rng = np.random.default_rng(
                [int(config["_seed"]), zlib.crc32(self.trial_id.encode())]
            )

        def step(self) -> dict[str, Any]:
            z = self.rungs[self.k]
            config = {p: self.config[p] for p in self.problem.space.names}
            value = self.problem.evaluate(config, z, self.rng)
            self.k += 1
            return {
                "value": value,
                "z": z,
                "rung_step": ETA ** (self.k - 1),
                "done": self.k >= len(self.rungs),
            }

        def save_checkpoint(self, checkpoint_dir: str) -> dict[str, Any]:
            return {"k": self.k}

        def load_checkpoint(self, checkpoint: Any) -> None:
            self.k = int(checkpoint["k"])

        def reset_config(self, new_config: dict[str, Any]) -> bool:
            self.setup(new_config)
            return True

    return Rungs


def _ray_space(problem: Problem) -> dict[str, Any]:
    from ray import tune

    space: dict[str, Any] = {}
    for name, param in zip(problem.space.names, problem.space.params):
        if isinstance(param, Float):
            space[name] = (tune.loguniform if param.log else tune.uniform)(param.low, param.high)
        elif isinstance(param, Int):
            space[name] = tune.randint(param.low, param.high + 1)
        elif isinstance(param, Categorical):
            space[name] = tune.choice(list(param.choices))
        else:
            raise TypeError(f"no Ray Tune distribution for {param!r}")
    return space


def ray_init() -> None:
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    quiet_ray_env()
    import logging

    import ray

    if not ray.is_initialized():
        ray.init(
            num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR
        )


def run_ray(
    method: str, problem: Problem, budget: float, seed: int, storage: str
) -> dict[str, Any]:
    global _RAY_RECORDER  # noqa: PLW0603 - one recorder actor per process, made on first use
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, HyperBandScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    rungs = ladder(problem)
    max_t = ETA ** (len(rungs) - 1)
    if method == RAY_ASHA:
        scheduler: Any = ASHAScheduler(
            time_attr="rung_step",
            max_t=max_t,
            grace_period=1,
            reduction_factor=ETA,
            metric="value",
            mode="min",
        )
    else:
        scheduler = HyperBandScheduler(
            time_attr="rung_step", max_t=max_t, reduction_factor=ETA, metric="value", mode="min"
        )
    rec = Recorder(problem, budget)
    _RAY_RECORDER = rec
    names = problem.space.names
    started: set[str] = set()  # trials that reported at least once

    class BudgetStopper(tune.Stopper):
        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            r = _RAY_RECORDER
            started.add(trial_id)
            if r is not None and not r.exhausted:
                config = {p: result["config"][p] for p in names}
                r.charge(config, float(result["z"]), float(result["value"]))
            return False

        def stop_all(self) -> bool:
            return _RAY_RECORDER is None or _RAY_RECORDER.exhausted

    tuner = tune.Tuner(
        _ray_trainable(),
        param_space={**_ray_space(problem), "_problem": problem.name, "_seed": seed},
        tune_config=tune.TuneConfig(
            scheduler=scheduler,
            num_samples=-1,
            max_concurrent_trials=2,
            reuse_actors=True,
            search_alg=BasicVariantGenerator(random_state=seed),  # Tune's default searcher
        ),
        run_config=tune.RunConfig(
            name=f"hpoq-{method}-{problem.name}-{seed}",
            storage_path=storage,
            stop=BudgetStopper(),
            verbose=0,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1, checkpoint_at_end=False),
        ),
    )
    start = time.perf_counter()
    results = tuner.fit()
    wall = time.perf_counter() - start
    _RAY_RECORDER = None
    return {
        "spent": rec.trace_spent,
        "regret": rec.trace_regret,
        "timed_out": False,
        "n_trials": len(started),
        "n_trials_created": len(results),
        "wall_s": wall,
    }


def run_job(job: tuple[str, str, float, int, float]) -> dict[str, Any]:
    method, problem_name, budget, seed, deadline_s = job
    start = time.perf_counter()
    out: dict[str, Any] = {"method": method, "problem": problem_name, "seed": seed}
    try:
        if method == OPTUNA:
            out |= run_optuna(PROBLEMS[problem_name], budget, seed)
        else:
            out |= run_ours(method, PROBLEMS[problem_name], budget, seed, deadline_s)
    except Exception:  # noqa: BLE001 - one broken algorithm must not sink the others
        out["error"] = traceback.format_exc(limit=4)
    out["wall_s"] = time.perf_counter() - start
    return out


# ------------------------------------------------------------------ ask latency


def measure_latency(job: tuple[str, int, int, float]) -> dict[str, Any]:
    algorithm, n_fill, n_asks, fill_limit_s = job
    problem = PROBLEMS[LATENCY_PROBLEM]
    cls = registry()[algorithm]
    out: dict[str, Any] = {"algorithm": algorithm, "trials_before": n_fill}
    directory = tempfile.mkdtemp(prefix="hpoq_lat_", dir=SHM_DIR)
    disk_dir = tempfile.mkdtemp(prefix="hpoq_lat_", dir=DISK_DIR)
    try:
        url = f"sqlite:///{directory}/study.db"
        store = Store(url)
        study = hpo.create_study(
            "lat",
            store,
            search_space=problem.space,
            algorithm=algorithm,
            algorithm_settings={"seed": 0},
        )
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        filled = 0
        while filled < n_fill and time.perf_counter() - start < fill_limit_s:  # the real loop
            trial = study.ask("fill")
            z = trial.budget if trial.budget is not None else problem.space.fidelity.max
            study.tell(trial, problem.evaluate(trial.params, z, rng))
            filled += 1
        out["filled_by_ask_tell"] = filled
        if filled < n_fill:  # too slow to fill for real in the time allowed: enqueue the rest
            rest = n_fill - filled
            if is_multi_fidelity(algorithm, cls):
                rungs = ladder(problem)
                weights = np.array(
                    [ETA ** (len(rungs) - 1 - k) for k in range(len(rungs))], dtype=float
                )
                budgets = rng.choice(rungs, size=rest, p=weights / weights.sum())
            else:
                budgets = np.full(rest, problem.space.fidelity.max)
            for b in sorted(set(budgets.tolist())):
                n = int(np.sum(budgets == b))
                study.enqueue_many([problem.space.sample(rng) for _ in range(n)], budget=float(b))
            while (trial := study.claim("fill")) is not None:
                study.tell(trial, problem.evaluate(trial.params, trial.budget, rng))
        out["filled_by_enqueue"] = n_fill - filled
        out["fill_s"] = time.perf_counter() - start
        out["shm"] = _time_asks(study, problem, rng, n_asks)
        store.close()
        for suffix in ("", "-wal"):
            if Path(f"{directory}/study.db{suffix}").exists():
                shutil.copyfile(f"{directory}/study.db{suffix}", f"{disk_dir}/study.db{suffix}")
        os.sync()
        store = Store(f"sqlite:///{disk_dir}/study.db")
        study = hpo.load_study("lat", store)
        out["disk"] = _time_asks(study, problem, rng, n_asks)
        store.close()
    except Exception:  # noqa: BLE001
        out["error"] = traceback.format_exc(limit=4)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        shutil.rmtree(disk_dir, ignore_errors=True)
    return out


def _time_asks(study: Any, problem: Problem, rng: np.random.Generator, n: int) -> dict[str, float]:
    ask_ms, cycle_ms = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        trial = study.ask("bench")
        t1 = time.perf_counter()
        if trial is None:
            raise RuntimeError("ask proposed nothing")
        z = trial.budget if trial.budget is not None else problem.space.fidelity.max
        study.tell(trial, problem.evaluate(trial.params, z, rng))
        t2 = time.perf_counter()
        ask_ms.append((t1 - t0) * 1e3)
        cycle_ms.append((t2 - t0) * 1e3)
    return {
        "ask_p50_ms": float(np.median(ask_ms)),
        "ask_p95_ms": float(np.percentile(ask_ms, 95)),
        "ask_tell_p50_ms": float(np.median(cycle_ms)),
        "asks": n,
    }


# ------------------------------------------------------------------ analysis

BIG = 1e300


def curve(run: dict[str, Any], grid: np.ndarray) -> np.ndarray:
    """The incumbent's regret at each budget of ``grid`` (inf before any full-fidelity result)."""
    spent = np.asarray(run["spent"], dtype=float)
    regret = np.asarray(run["regret"], dtype=float)
    idx = np.searchsorted(spent, grid + 1e-9, side="right") - 1
    out = np.full(grid.shape, math.inf)
    ok = idx >= 0
    out[ok] = regret[idx[ok]]
    return out


def quantiles(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    finite = np.where(np.isinf(values), BIG, values)
    q25, q50, q75 = np.percentile(finite, [25, 50, 75], axis=axis)

    def unmap(a: np.ndarray) -> np.ndarray:
        return np.where(a >= BIG * 1e-10, math.inf, a)

    return unmap(q25), unmap(q50), unmap(q75)


def summarize(runs: list[dict[str, Any]], budget: float) -> dict[str, Any]:
    """Per method: final regret quantiles and the median curve (on its own breakpoints)."""
    finals = np.array([curve(r, np.array([budget]))[0] for r in runs])
    q25, q50, q75 = quantiles(finals[:, None])
    points = sorted({s for r in runs for s in r["spent"] if s <= budget + 1e-9} | {budget})
    grid = np.array(points)
    curves = np.array([curve(r, grid) for r in runs])
    c25, c50, c75 = quantiles(curves)
    return {
        "median": float(q50[0]),
        "q25": float(q25[0]),
        "q75": float(q75[0]),
        "finals": finals.tolist(),
        "seeds": len(runs),
        "timed_out_runs": sum(bool(r.get("timed_out")) for r in runs),
        "wall_s_mean": float(np.mean([r["wall_s"] for r in runs])),
        "evaluations_mean": float(np.mean([len(r["spent"]) for r in runs])),
        "_grid": grid,
        "_median_curve": c50,
        "_q25_curve": c25,
        "_q75_curve": c75,
    }


def budget_to_reach(summary: dict[str, Any], target: float) -> float:
    hit = np.nonzero(summary["_median_curve"] <= target)[0]
    return float(summary["_grid"][hit[0]]) if hit.size else math.inf


def analyse(
    runs: list[dict[str, Any]], budgets: dict[str, float], reg: dict[str, type]
) -> dict[str, Any]:
    by: dict[str, dict[str, list[dict[str, Any]]]] = {}
    errors = []
    for r in runs:
        if "error" in r:
            errors.append({k: r[k] for k in ("method", "problem", "seed", "error")})
            continue
        by.setdefault(r["problem"], {}).setdefault(r["method"], []).append(r)
    benchmarks: dict[str, dict[str, Any]] = {}
    for problem, methods in by.items():
        budget = budgets[problem]
        table = {m: summarize(rs, budget) for m, rs in methods.items()}
        random_final = table["random"]["median"] if "random" in table else math.nan
        for m, s in table.items():
            b = budget_to_reach(s, random_final) if math.isfinite(random_final) else math.inf
            s["budget_to_random"] = b
            s["speedup_vs_random"] = budget / b if math.isfinite(b) and b > 0 else None
            s["multi_fidelity"] = is_multi_fidelity(m, reg.get(m))
            s["system"] = "ours" if m in reg else ("optuna" if m == OPTUNA else "ray")
        benchmarks[problem] = {
            "budget": budget,
            "random_final_median": random_final,
            "methods": table,
        }
    return {"benchmarks": benchmarks, "errors": errors}


def best_model_based(benchmarks: dict[str, Any]) -> str | None:
    ranks: dict[str, list[int]] = {}
    for bench in benchmarks.values():
        mb = sorted(
            (s["median"], m)
            for m, s in bench["methods"].items()
            if s["system"] == "ours" and is_model_based(m)
        )
        for rank, (_, m) in enumerate(mb):
            ranks.setdefault(m, []).append(rank)
    if not ranks:
        return None
    return min(ranks, key=lambda m: (np.mean(ranks[m]), m))


def targets(benchmarks: dict[str, Any], reg: dict[str, type]) -> dict[str, Any]:
    best_mb = best_model_based(benchmarks)
    dehbs = sorted(m for m in reg if "dehb" in m)
    out: dict[str, Any] = {"best_model_based": best_mb, "dehb_variants": dehbs, "per_benchmark": {}}
    all_quality, all_speed = True, True
    for problem, bench in benchmarks.items():
        methods = bench["methods"]
        anchors = {m: s["median"] for m, s in methods.items() if m in ANCHORS}
        best_anchor = min(anchors.values()) if anchors else math.nan
        best_anchor_name = min(anchors, key=anchors.get) if anchors else None
        checked = [m for m in [*dehbs, best_mb] if m is not None and m in methods]
        quality = {
            m: {
                "median": methods[m]["median"],
                "ok": bool(anchors) and methods[m]["median"] <= best_anchor,
            }
            for m in checked
        }
        missing = [m for m in [*dehbs, best_mb] if m is None or m not in methods]
        quality_ok = bool(quality) and all(q["ok"] for q in quality.values()) and not missing
        speed = {
            m: {
                "speedup_vs_random": s["speedup_vs_random"],
                "ok": (s["speedup_vs_random"] or 0.0) >= SPEEDUP_TARGET,
            }
            for m, s in methods.items()
            if s["system"] == "ours" and s["multi_fidelity"]
        }
        speed_ok = bool(speed) and all(v["ok"] for v in speed.values())
        all_quality &= quality_ok
        all_speed &= speed_ok
        out["per_benchmark"][problem] = {
            "best_anchor": best_anchor_name,
            "best_anchor_median": best_anchor,
            "quality": quality,
            "quality_missing": missing,
            "quality_ok": quality_ok,
            "speedup": speed,
            "speedup_ok": speed_ok,
        }
    out["quality_ok_all"] = all_quality
    out["speedup_ok_all"] = all_speed
    return out


# ------------------------------------------------------------------ output


def _fmt(x: float | None, digits: int = 3) -> str:
    return fmt(x, f".{digits}g")


def print_report(
    analysis: dict[str, Any], tgt: dict[str, Any], latency: dict[str, Any], wall_s: float
) -> None:
    for problem, bench in analysis["benchmarks"].items():
        title = (
            f"{problem}: budget {bench['budget']:g} full-fidelity evaluations, "
            f"random's final median regret {_fmt(bench['random_final_median'])}"
        )
        header = [
            "method",
            "system",
            "median regret",
            "IQR (25-75%)",
            "budget to random",
            "speedup vs random",
            "seeds",
            "evals/run",
        ]
        rows = []
        for m, s in sorted(bench["methods"].items(), key=lambda kv: (kv[1]["median"], kv[0])):
            rows.append(
                [
                    m + ("" if s["multi_fidelity"] else " (full fid.)"),
                    s["system"],
                    _fmt(s["median"]),
                    f"{_fmt(s['q25'])} - {_fmt(s['q75'])}",
                    _fmt(s["budget_to_random"]),
                    "-" if s["speedup_vs_random"] is None else f"{s['speedup_vs_random']:.1f}x",
                    str(s["seeds"])
                    + (f" ({s['timed_out_runs']} cut)" if s["timed_out_runs"] else ""),
                    f"{s['evaluations_mean']:.0f}",
                ]
            )
        print_table(title, header, rows, width=140, left=("method", "system"))
    print()
    print(
        f"Targets (best model-based of ours: {tgt['best_model_based']}; DEHB variants: {', '.join(tgt['dehb_variants']) or 'none'})"
    )
    for problem, t in tgt["per_benchmark"].items():
        q = ", ".join(
            f"{m} {_fmt(v['median'])} {'ok' if v['ok'] else 'FAIL'}"
            for m, v in t["quality"].items()
        )
        miss = f" missing {t['quality_missing']}" if t["quality_missing"] else ""
        sp = ", ".join(
            f"{m} {_fmt(v['speedup_vs_random'], 2)}x {'ok' if v['ok'] else 'FAIL'}"
            for m, v in t["speedup"].items()
        )
        print(
            f"  {problem}: quality {'PASS' if t['quality_ok'] else 'FAIL'} "
            f"(best anchor {t['best_anchor']} {_fmt(t['best_anchor_median'])}: {q}{miss}); "
            f"speedup {'PASS' if t['speedup_ok'] else 'FAIL'} ({sp})"
        )
    print(
        f"  all benchmarks: quality {'PASS' if tgt['quality_ok_all'] else 'FAIL'}, speedup {'PASS' if tgt['speedup_ok_all'] else 'FAIL'}"
    )
    if latency:
        print(
            f"\nask latency with {next(iter(latency.values())).get('trials_before', '?')} completed trials (median ms; target < {ASK_TARGET_MS:g}):"
        )
        for alg, lat in latency.items():
            if "error" in lat:
                print(f"  {alg}: ERROR {lat['error'].strip().splitlines()[-1]}")
                continue
            print(
                f"  {alg:12s} shm ask {lat['shm']['ask_p50_ms']:.1f} (p95 {lat['shm']['ask_p95_ms']:.1f}), "
                f"ask+tell {lat['shm']['ask_tell_p50_ms']:.1f}; disk ask {lat['disk']['ask_p50_ms']:.1f}, "
                f"ask+tell {lat['disk']['ask_tell_p50_ms']:.1f}  {'ok' if lat['ok'] else 'FAIL'}"
            )
    for e in analysis["errors"]:
        print(
            f"ERROR {e['method']} {e['problem']} seed {e['seed']}: {e['error'].strip().splitlines()[-1]}"
        )
    print(f"\nwall time {wall_s:.0f} s")


def figure(results: dict[str, Any]) -> Figure:
    """Per problem, each method's median regret over seeds against budget (the JSON's light
    median curve) with its final IQR as a bar at the budget; the legend in the spare panel."""
    import matplotlib

    benches = list(results["benchmarks"].items())
    cols = min(3, len(benches) + 1)  # one more panel than problems: the legend's
    rows = math.ceil((len(benches) + 1) / cols)
    fig = new_figure(6 * cols, 4.4 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).flat
    methods = sorted({m for _, b in benches for m in b["methods"]})
    palette = [*matplotlib.colormaps["tab10"].colors, "black", "olive", "teal", "navy"]
    colors = {m: palette[i % len(palette)] for i, m in enumerate(methods)}
    seeds: dict[str, set[int]] = {}
    for ax, (problem, bench) in zip(axes, benches):
        for m, s in sorted(bench["methods"].items()):
            curve = s["median_curve"]
            regret = [math.nan if v is None or v <= 0 else v for v in curve["regret"]]
            style = "--" if s["system"] != "ours" else ("-" if s["multi_fidelity"] else ":")
            ax.step(curve["budget"], regret, where="post", color=colors[m], ls=style, lw=1.6, label=m)
            if s["q25"] is not None and s["q75"] is not None and s["q25"] > 0:
                ax.plot([bench["budget"]] * 2, [s["q25"], s["q75"]], color=colors[m], lw=3, alpha=0.35)
            seeds.setdefault(m, set()).add(s["seeds"])
        ax.axhline(bench["random_final_median"], color="grey", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_title(problem)
        ax.set_xlabel("budget (full-fidelity evaluations)")
        ax.set_ylabel("median regret over seeds")
        ax.grid(alpha=0.3, which="both")
    handles: dict[str, Any] = {}
    for ax in axes[: len(benches)]:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    spare = axes[len(benches)]
    spare.axis("off")
    for ax in axes[len(benches) + 1 :]:
        ax.axis("off")
    labels = [f"{m} ({'-'.join(str(n) for n in sorted({min(seeds[m]), max(seeds[m])}))})" for m in handles]
    spare.legend(handles.values(), labels, loc="center", fontsize=9, ncols=2, title="method (seeds)")
    fig.suptitle("Regret vs budget: ours (solid multi-fidelity, dotted full-fidelity) vs Optuna and Ray Tune (dashed)\n"
                 "bar at the budget: final IQR over seeds; grey: random's final median")
    fig.draw_without_rendering()
    readable_log_axes(fig)
    return fig


def _jsonable(analysis: dict[str, Any]) -> dict[str, Any]:
    out = json_safe(analysis)
    # A light median curve per method (40 budgets) so the plot can be redrawn from the JSON.
    for problem, bench in analysis["benchmarks"].items():
        for m, s in bench["methods"].items():
            points = np.linspace(0, bench["budget"], 41)[1:]
            idx = np.searchsorted(s["_grid"], points + 1e-9, side="right") - 1
            med = [
                float(s["_median_curve"][i])
                if i >= 0 and math.isfinite(s["_median_curve"][i])
                else None
                for i in idx
            ]
            out["benchmarks"][problem]["methods"][m]["median_curve"] = {
                "budget": points.tolist(),
                "regret": med,
            }
    return out


# ------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2 seeds, budget 15, 1 Ray seed on branin"
    )
    parser.add_argument(
        "--seeds", type=int, default=None, help="seeds per (method, problem) (default 10)"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="total budget for every problem (full-fidelity evaluations)",
    )
    parser.add_argument(
        "--problems", nargs="+", default=None, choices=sorted(PROBLEMS), help="default: all"
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="ours by registry name and/or optuna-tpe-hb, ray-asha, ray-hyperband",
    )
    parser.add_argument("--no-ray", action="store_true", help="skip Ray Tune")
    parser.add_argument(
        "--ray-seeds",
        type=int,
        default=None,
        help="at most this many seeds for Ray Tune (default: --seeds)",
    )
    parser.add_argument(
        "--ray-problems",
        nargs="+",
        default=None,
        choices=sorted(PROBLEMS),
        help="problems for Ray Tune (default: all)",
    )
    parser.add_argument(
        "--time-cap",
        type=float,
        default=1140.0,
        help="no new round of Ray Tune seeds starts if it would end past this many s",
    )
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--latency-trials", type=int, default=2000)
    parser.add_argument("--latency-asks", type=int, default=20)
    parser.add_argument(
        "--latency-fill-limit",
        type=float,
        default=30.0,
        help="s of real ask/tell filling per algorithm before the rest is enqueued",
    )
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument(
        "--run-deadline", type=float, default=240.0, help="wall-clock guard per run of ours (s)"
    )
    parser.add_argument("--output", type=Path, default=None)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    t_start = time.perf_counter()
    reg = registry()
    seeds = args.seeds or (2 if args.quick else 10)
    problems = args.problems or list(PROBLEMS)
    budgets = {
        p: args.budget or (15.0 if args.quick else DEFAULT_BUDGETS.get(p, DEFAULT_BUDGET))
        for p in problems
    }
    all_methods = [*reg, *ANCHORS]
    methods = args.methods or all_methods
    unknown = [m for m in methods if m not in all_methods]
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; registered now: {', '.join(all_methods)}")
    if args.no_ray:
        methods = [m for m in methods if m not in RAY_METHODS]
    if "random" not in methods:
        methods = ["random", *methods]  # the speedup needs it
    ray_seeds = min(seeds, args.ray_seeds or (1 if args.quick else seeds))
    ray_problems = [
        p for p in (args.ray_problems or (["branin"] if args.quick else problems)) if p in problems
    ]
    log(
        f"algorithms registered: {', '.join(reg)}; methods: {', '.join(methods)}; seeds {seeds}; budgets {budgets}"
    )

    pool_methods = [m for m in methods if m not in RAY_METHODS]

    def heavy(j: tuple[Any, ...]) -> tuple[bool, ...]:
        """The longest jobs first, so the pool's last minutes are not one long job alone."""
        return (
            j[1].startswith("counting-ones-32"),
            j[1].startswith("counting"),
            "asha" in j[0] or "async" in j[0],
            j[0] in ("bo", "bohb"),
        )

    jobs = sorted(
        (
            (m, p, budgets[p], s, args.run_deadline)
            for m in pool_methods
            for p in problems
            for s in range(seeds)
        ),
        key=heavy,
        reverse=True,
    )
    latency_jobs = (
        []
        if args.no_latency
        else [
            (
                a,
                200 if args.quick else args.latency_trials,
                5 if args.quick else args.latency_asks,
                args.latency_fill_limit,
            )
            for a in reg
            if a in methods
        ]
    )
    runs: list[dict[str, Any]] = []
    latency: dict[str, Any] = {}
    ctx = mp.get_context("fork")
    with ctx.Pool(args.processes) as pool:
        for i, r in enumerate(pool.imap_unordered(run_job, jobs), 1):
            runs.append(r)
            if "error" in r:
                log(
                    f"ERROR {r['method']} {r['problem']} seed {r['seed']}: {r['error'].strip().splitlines()[-1]}"
                )
            if i % 25 == 0 or i == len(jobs):
                log(f"{i}/{len(jobs)} runs done ({time.perf_counter() - t_start:.0f} s)")
    if latency_jobs:
        with ctx.Pool(1) as pool:  # alone on the machine: see ask_latency_ms in the docstring
            for lat in pool.imap(measure_latency, latency_jobs):
                if "error" not in lat:
                    lat["ok"] = lat["shm"]["ask_p50_ms"] < ASK_TARGET_MS
                latency[lat.pop("algorithm")] = lat
        log("ask latency measured")
    pool_wall = time.perf_counter() - t_start

    ray_info: dict[str, Any] = {
        "methods": [m for m in methods if m in RAY_METHODS],
        "seeds_requested": ray_seeds,
        "seeds": 0,
        "problems": ray_problems,
    }
    if ray_info["methods"] and ray_problems:
        ray_init()
        storage = tempfile.mkdtemp(prefix="hpoq_ray_", dir=SHM_DIR)
        try:
            round_s = 0.0
            for seed in range(ray_seeds):  # seed-major, so a time cap leaves whole rounds
                elapsed = time.perf_counter() - t_start
                if seed > 0 and elapsed + round_s > args.time_cap:
                    log(
                        f"Ray Tune: stopping after {seed} seeds ({elapsed:.0f} s elapsed, a round takes {round_s:.0f} s, cap {args.time_cap:g} s)"
                    )
                    break
                t_round = time.perf_counter()
                for p in ray_problems:
                    for m in ray_info["methods"]:
                        t0 = time.perf_counter()
                        try:
                            r = {"method": m, "problem": p, "seed": seed} | run_ray(
                                m, PROBLEMS[p], budgets[p], seed, storage
                            )
                        except Exception:  # noqa: BLE001
                            r = {
                                "method": m,
                                "problem": p,
                                "seed": seed,
                                "error": traceback.format_exc(limit=6),
                                "wall_s": time.perf_counter() - t0,
                            }
                        runs.append(r)
                        if "error" in r:
                            log(
                                f"ERROR {m} {p} seed {seed}: {r['error'].strip().splitlines()[-1]}"
                            )
                        else:
                            log(
                                f"{m} {p} seed {seed}: {r['n_trials']} trials run ({r['n_trials_created']} created), {len(r['spent'])} evaluations, {r['wall_s']:.1f} s ({r['wall_s'] / max(r['n_trials'], 1) * 1e3:.0f} ms/trial)"
                            )
                round_s = time.perf_counter() - t_round
                ray_info["seeds"] = seed + 1
        finally:
            shutil.rmtree(storage, ignore_errors=True)
        ray_runs = [r for r in runs if r["method"] in RAY_METHODS and "error" not in r]
        if ray_runs:
            ray_info["ms_per_trial"] = float(
                np.mean([r["wall_s"] / max(r["n_trials"], 1) * 1e3 for r in ray_runs])
            )
    wall_s = time.perf_counter() - t_start

    analysis = analyse(runs, budgets, reg)
    tgt = targets(analysis["benchmarks"], reg)
    print_report(analysis, tgt, latency, wall_s)
    if ray_info["methods"]:
        print(
            f"Ray Tune: {ray_info['seeds']} seeds on {', '.join(ray_problems) or 'no problems'}"
            + (
                f", {ray_info['ms_per_trial']:.0f} ms per trial"
                if "ms_per_trial" in ray_info
                else ""
            )
        )

    import optuna
    import ray

    payload = {
        "benchmark": "hpo_quality",
        "quick": args.quick,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(optuna=optuna.__version__, ray=ray.__version__),
        "config": {
            "eta": ETA,
            "seeds": seeds,
            "budgets": budgets,
            "methods": methods,
            "algorithms_registered": list(reg),
            "multi_fidelity_ours": [m for m in reg if is_multi_fidelity(m, reg[m])],
            "model_based_ours": [m for m in reg if is_model_based(m)],
            "ray": ray_info,
            "latency_problem": LATENCY_PROBLEM,
            "accounting": "every rung evaluation is a fresh evaluation charged cost(z)/cost(z_max); incumbent = best observed full-fidelity value, scored noise-free",
        },
        **_jsonable(analysis),
        "targets": json_safe(tgt),
        "ask_latency_ms": json_safe(latency),
        "wall_s": {"total": wall_s, "pool": pool_wall},
    }
    stem = "hpo_quality_quick" if args.quick else "hpo_quality"
    out = args.output or RESULTS_DIR / f"{stem}.json"
    write_json(out, payload)
    figure(json_safe(payload)).savefig(out.with_suffix(".png"), dpi=110)
    log(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
