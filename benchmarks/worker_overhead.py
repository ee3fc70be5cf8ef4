"""Per-trial overhead and worker utilization of our Ray sweep (``workers.sweep.run_sweep``)
against Ray Tune with ASHA and with OptunaSearch, on a trivial objective and on one that
sleeps 0.2 s, with 2, 4 and 8 workers.

What it measures
    Every system runs ``timed_objective`` (Branin, then ``sleep_s``), which records its entry
    and exit times, on a fresh local Ray per run (``ray_start``). Systems: ours (a study on
    /dev/shm and ``run_sweep``), ray-tune-asha and ray-tune-optuna (Tune at its fastest fair
    settings: actor reuse, no checkpoints, no callback loggers) and ray-tune-asha-defaults
    (Tune's own defaults). From the recorded intervals (``measure``): utilization = busy /
    (workers x steady-state wall), and per-trial overhead = (workers x steady-state wall -
    busy) / trials, start-up excluded on both sides; ``overhead_ratio`` = Tune's / ours.

Targets
    1. Our steady-state per-trial overhead at least 20x below Tune's at every worker count,
       on each objective: against Tune's defaults and against the faster tuned variant.
    2. Utilization >= 95% with 8 workers on the sleeping objective.

How to run it
    ``python benchmarks/worker_overhead.py [--quick] [--workers 2 4 8] [--trials 500]
    [--tune-trials N] [--objectives trivial sleep] [--systems ...] [--defaults-trials 100]
    [--algorithm asha] [--tune-no-reuse] [--output PATH]`` ->
    ``benchmarks/results/worker_overhead.json`` and ``.png`` (``--quick``: 4 workers, 60
    trials, ``worker_overhead_quick.*``). Definitions in full and findings: ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import functools
import glob
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS_DIR, fmt, json_safe, log, machine, new_figure, print_table, quiet_ray_env, write_json
from scaling.plot import readable_log_axes

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SHM_DIR = "/dev/shm"
OURS = "ours"
TUNE_ASHA = "ray-tune-asha"
TUNE_OPTUNA = "ray-tune-optuna"
TUNE_DEFAULTS = "ray-tune-asha-defaults"
SYSTEMS = (OURS, TUNE_ASHA, TUNE_OPTUNA, TUNE_DEFAULTS)
#: The Tune variants the headline ratio is taken against: Tune at its fastest settings.
TUNE_SYSTEMS = (TUNE_ASHA, TUNE_OPTUNA)
OBJECTIVES = {"trivial": 0.0, "sleep": 0.2}
RATIO_TARGET = 20.0
UTILIZATION_TARGET = 0.95
UTILIZATION_WORKERS = 8
UTILIZATION_OBJECTIVE = "sleep"
BRANIN_BOUNDS = {"x1": (-5.0, 10.0), "x2": (0.0, 15.0)}


# ------------------------------------------------------------------ the objective


def timed_objective(
    timing_dir: str, sleep_s: float, config: Any, budget: Any, report: Any
) -> float:
    """Branin at ``config`` after sleeping ``sleep_s``; appends "entry exit" (time.time())
    to ``timing_dir/<pid>.txt`` after the exit time is taken."""
    entry = time.time()
    x1, x2 = float(config["x1"]), float(config["x2"])
    value = (
        (x2 - 5.1 / (4 * math.pi**2) * x1**2 + 5 / math.pi * x1 - 6) ** 2
        + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1)
        + 10
    )
    if sleep_s > 0:
        time.sleep(sleep_s)
    leave = time.time()
    with open(os.path.join(timing_dir, f"{os.getpid()}.txt"), "a") as f:
        f.write(f"{entry!r} {leave!r}\n")
    return value


def read_intervals(timing_dir: str) -> dict[int, list[tuple[float, float]]]:
    out: dict[int, list[tuple[float, float]]] = {}
    for path in glob.glob(os.path.join(timing_dir, "*.txt")):
        pid = int(Path(path).stem)
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    out.setdefault(pid, []).append((float(parts[0]), float(parts[1])))
    return out


def measure(
    intervals: dict[int, list[tuple[float, float]]], workers: int, t_call: float, t_return: float
) -> dict[str, Any]:
    """The numbers of one run: utilization and overhead as the module docstring defines them,
    the rest (start-up, tail, ramp) as benchmarks/README.md does."""
    flat = [iv for ivs in intervals.values() for iv in ivs]
    wall = t_return - t_call
    if not flat:
        return {"trials_run": 0, "wall_s": wall}
    n = len(flat)
    first = min(a for a, _ in flat)
    last = max(b for _, b in flat)
    busy = sum(b - a for a, b in flat)
    steady = last - first
    firsts = sorted(min(a for a, _ in ivs) for ivs in intervals.values())
    return {
        "trials_run": n,
        "wall_s": wall,
        "startup_s": first - t_call,
        "steady_s": steady,
        "tail_s": t_return - last,
        "busy_s": busy,
        "busy_per_trial_ms": busy / n * 1e3,
        "utilization": busy / (workers * steady) if steady > 0 else None,
        "utilization_incl_startup": busy / (workers * wall),
        "overhead_ms": (workers * steady - busy) / n * 1e3,
        "overhead_incl_startup_ms": (workers * wall - busy) / n * 1e3,
        "wall_per_trial_ms": steady / n * 1e3,
        "trials_per_s": n / steady if steady > 0 else None,
        "processes": len(intervals),
        "ramp_s": firsts[-1] - first,
        "trials_per_process": sorted((len(v) for v in intervals.values()), reverse=True),
    }


# ------------------------------------------------------------------ Ray


def ray_start(workers: int, temp_dir: str) -> float:
    """A fresh local Ray with ``workers`` CPUs; returns how long ``ray.init`` took.

    ``address="local"`` and a temp dir of our own: never join (or advertise ourselves as)
    another Ray that happens to run on this machine."""
    quiet_ray_env()
    import ray

    if ray.is_initialized():
        ray.shutdown()
    start = time.perf_counter()
    ray.init(
        address="local",
        num_cpus=workers,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
        _temp_dir=temp_dir,
    )
    return time.perf_counter() - start


def ship_by_value() -> None:
    """Pickle this module's functions by value, as they are when it runs as ``__main__``:
    imported (``benchmarks.worker_overhead``), Ray's workers could not import it back."""
    if __name__ != "__main__":
        import ray.cloudpickle

        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def run_ours(
    objective: Callable[..., float],
    workers: int,
    trials: int,
    algorithm: str,
    seed: int,
    scratch: str,
) -> tuple[float, float, dict[str, Any]]:
    import hpo
    from search_spaces import get_builtin
    from workers.sweep import run_sweep

    t_call = time.time()
    study = hpo.create_study(
        "worker-overhead",
        f"sqlite:///{scratch}/study.db",
        search_space=get_builtin("branin"),
        algorithm=algorithm,
        algorithm_settings={"seed": seed},
    )
    result = run_sweep(study, objective, workers=workers, max_trials=trials, progress=False)
    t_return = time.time()
    info = {
        "counts": {state.value: n for state, n in result.counts.items() if n},
        "run_sweep_wall_s": result.wall_s,
        "workers_started": result.workers_started,
        "deaths": result.deaths,
        "algorithm": algorithm,
    }
    return t_call, t_return, info


def run_tune(
    system: str,
    objective: Callable[..., float],
    workers: int,
    trials: int,
    seed: int,
    scratch: str,
    reuse_actors: bool,
) -> tuple[float, float, dict[str, Any]]:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    def trainable(config: dict[str, Any]) -> None:
        tune.report({"value": objective(config, None, None)})

    space = {name: tune.uniform(lo, hi) for name, (lo, hi) in BRANIN_BOUNDS.items()}
    defaults = system == TUNE_DEFAULTS
    # Tune reads this when the Tuner runs: its CSV/JSON/TensorBoard loggers stay on only for
    # the variant at Tune's defaults
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "0" if defaults else "1"
    if defaults:
        reuse_actors = False  # TuneConfig's documented default
    if system in (TUNE_ASHA, TUNE_DEFAULTS):
        algo: dict[str, Any] = {
            "scheduler": ASHAScheduler(
                time_attr="training_iteration",
                metric="value",
                mode="min",
                max_t=1,
                grace_period=1,
                reduction_factor=3,
            ),
            "search_alg": BasicVariantGenerator(random_state=seed),
        }
    else:
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        algo = {"search_alg": OptunaSearch(metric="value", mode="min", seed=seed)}
    t_call = time.time()
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(
            num_samples=trials, max_concurrent_trials=workers, reuse_actors=reuse_actors, **algo
        ),
        run_config=tune.RunConfig(
            name=f"wo-{system}-{workers}",
            storage_path=f"{scratch}/tune",
            verbose=0,
            **({} if defaults else {"checkpoint_config": tune.CheckpointConfig(checkpoint_at_end=False)}),
        ),
    )
    results = tuner.fit()
    t_return = time.time()
    info = {
        "trials_created": len(results),
        "errors": results.num_errors,
        "reuse_actors": reuse_actors,
    }
    return t_call, t_return, info


def run_one(
    system: str,
    objective_name: str,
    workers: int,
    trials: int,
    args: argparse.Namespace,
    ray_temp: str,
) -> dict[str, Any]:
    import ray

    out: dict[str, Any] = {
        "system": system,
        "objective": objective_name,
        "workers": workers,
        "trials": trials,
        "loadavg_start": list(os.getloadavg()),
    }
    scratch = tempfile.mkdtemp(prefix="wo_", dir=SHM_DIR)
    timing_dir = os.path.join(scratch, "timing")
    os.mkdir(timing_dir)
    objective = functools.partial(timed_objective, timing_dir, OBJECTIVES[objective_name])
    ship_by_value()
    try:
        out["ray_init_s"] = ray_start(workers, ray_temp)
        if system == OURS:
            t_call, t_return, info = run_ours(
                objective, workers, trials, args.algorithm, args.seed, scratch
            )
        else:
            t_call, t_return, info = run_tune(
                system, objective, workers, trials, args.seed, scratch, not args.tune_no_reuse
            )
        out |= measure(read_intervals(timing_dir), workers, t_call, t_return) | info
    except Exception:  # noqa: BLE001 - one failed run is reported, the others go on
        out["error"] = traceback.format_exc(limit=8)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)
    out["loadavg_end"] = list(os.getloadavg())
    return out


# ------------------------------------------------------------------ analysis


def analyse(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per objective and worker count: every system's run, ours's overhead_ratio (against
    each Tune variant, and the headline one against the better Tune) and utilization."""
    objectives: dict[str, Any] = {}
    for r in runs:
        obj = objectives.setdefault(
            r["objective"], {"sleep_s": OBJECTIVES[r["objective"]], "workers": {}}
        )
        obj["workers"].setdefault(str(r["workers"]), {})[r["system"]] = r
    for obj in objectives.values():
        for entry in obj["workers"].values():
            ours = entry.get(OURS, {})
            ours_ovh = ours.get("overhead_ms")
            ratios = {}
            for s in (*TUNE_SYSTEMS, TUNE_DEFAULTS):
                tune_ovh = entry.get(s, {}).get("overhead_ms")
                if ours_ovh is not None and tune_ovh is not None and ours_ovh > 0:
                    ratios[s] = entry[s]["overhead_ratio"] = tune_ovh / ours_ovh
            by_variant = {s: ratios[s] for s in TUNE_SYSTEMS if s in ratios}
            entry["overhead_ratio_by_variant"] = by_variant
            entry["overhead_ratio"] = min(by_variant.values()) if by_variant else None
            entry["overhead_ratio_against"] = (
                min(by_variant, key=by_variant.__getitem__) if by_variant else None
            )
            entry["overhead_ratio_vs_defaults"] = ratios.get(TUNE_DEFAULTS)
            entry["utilization"] = ours.get("utilization")
            entry["overhead_ms"] = ours_ovh
            # keys in a fixed order: the headline numbers first, then the runs
            for s in SYSTEMS:
                if s in entry:
                    entry[s] = entry.pop(s)
    return objectives


def _ratio_target(objectives: dict[str, Any], key: str, against: str) -> dict[str, Any]:
    ratio: dict[str, Any] = {}
    for name, obj in objectives.items():
        cells = {
            w: {"overhead_ratio": e[key], "ok": e[key] >= RATIO_TARGET}
            for w, e in obj["workers"].items()
            if e[key] is not None
        }
        if cells:
            ratio[name] = {"per_workers": cells, "ok": all(c["ok"] for c in cells.values())}
    return {
        "target": RATIO_TARGET,
        "against": against,
        "per_objective": ratio,
        "ok": bool(ratio) and all(v["ok"] for v in ratio.values()),
    }


def targets(objectives: dict[str, Any]) -> dict[str, Any]:
    util_entry = (
        objectives.get(UTILIZATION_OBJECTIVE, {}).get("workers", {}).get(str(UTILIZATION_WORKERS))
    )
    util = None if util_entry is None else util_entry["utilization"]
    return {
        "overhead_ratio": _ratio_target(
            objectives,
            "overhead_ratio",
            "the better of Ray Tune ASHA and Ray Tune OptunaSearch at their fastest settings, steady state",
        ),
        "overhead_ratio_vs_defaults": _ratio_target(
            objectives,
            "overhead_ratio_vs_defaults",
            "Ray Tune ASHA at Tune's defaults (no actor reuse, loggers on), the issue's reference, steady state",
        ),
        "utilization": {
            "target": UTILIZATION_TARGET,
            "workers": UTILIZATION_WORKERS,
            "objective": UTILIZATION_OBJECTIVE,
            "value": util,
            "measured": util is not None,
            "ok": util is not None and util >= UTILIZATION_TARGET,
        },
    }


# ------------------------------------------------------------------ report


def print_report(objectives: dict[str, Any], tgt: dict[str, Any], wall_s: float) -> None:
    header = [
        "system",
        "workers",
        "trials",
        "wall s",
        "ray.init s",
        "start-up s",
        "steady s",
        "procs",
        "overhead ms/trial",
        "incl. start-up",
        "util. %",
        "ratio",
    ]
    for name, obj in objectives.items():
        title = (
            f"{name} objective (sleep {obj['sleep_s']:g} s): overhead per trial = (workers x steady "
            "wall - busy) / trials; ratio = Tune's / ours (ours: against the better fast Tune / Tune's defaults)"
        )
        rows = []
        for w, entry in sorted(obj["workers"].items(), key=lambda kv: int(kv[0])):
            for s in SYSTEMS:
                r = entry.get(s)
                if r is None:
                    continue
                if "error" in r:
                    rows.append([s, w, str(r["trials"]), "ERROR", *["-"] * 8])
                    continue
                if s == OURS:
                    ratio = entry["overhead_ratio"]
                    ratio_s = f"{ratio:.1f}x" if ratio is not None else "-"
                    if entry.get("overhead_ratio_vs_defaults") is not None:
                        ratio_s += f" / {entry['overhead_ratio_vs_defaults']:.0f}x"
                else:
                    ratio_s = fmt(r.get("overhead_ratio"), ".1f") + "x"
                rows.append(
                    [
                        s,
                        w,
                        f"{r.get('trials_run', 0)}/{r['trials']}",
                        fmt(r.get("wall_s"), ".1f"),
                        fmt(r.get("ray_init_s"), ".1f"),
                        fmt(r.get("startup_s"), ".1f"),
                        fmt(r.get("steady_s"), ".1f"),
                        str(r.get("processes", "-")),
                        fmt(r.get("overhead_ms"), ".1f"),
                        fmt(r.get("overhead_incl_startup_ms"), ".0f"),
                        fmt(None if r.get("utilization") is None else 100 * r["utilization"], ".1f"),
                        ratio_s,
                    ]
                )
        print_table(title, header, rows, width=160, left=("system",), no_wrap=("system",))
    print()
    print("Targets")
    for key, label in (("overhead_ratio", "against Tune's fastest"), ("overhead_ratio_vs_defaults", "against Tune's defaults")):
        t = tgt[key]
        for name, v in t["per_objective"].items():
            cells = ", ".join(
                f"{w} workers {fmt(c['overhead_ratio'], '.1f')}x {'ok' if c['ok'] else 'FAIL'}"
                for w, c in sorted(v["per_workers"].items(), key=lambda kv: int(kv[0]))
            )
            print(
                f"  overhead ratio >= {t['target']:g}x {label} ({name}): "
                f"{'PASS' if v['ok'] else 'FAIL'} ({cells})"
            )
    u = tgt["utilization"]
    if u["measured"]:
        print(
            f"  utilization >= {100 * u['target']:.0f}% with {u['workers']} workers ({u['objective']}): "
            f"{'PASS' if u['ok'] else 'FAIL'} ({100 * u['value']:.1f}%)"
        )
    else:
        print(
            f"  utilization with {u['workers']} workers ({u['objective']}): not measured in this run"
        )
    print(f"\nwall time {wall_s:.0f} s")


def figure(results: dict[str, Any]) -> Figure:
    """Per objective: overhead per trial against workers, and utilization (or throughput for
    the trivial objective), from the results JSON."""
    objectives = results["objectives"]
    names = list(objectives)
    fig = new_figure(12, 4.6 * len(names))
    axes = fig.subplots(len(names), 2, squeeze=False)
    colors = {OURS: "tab:blue", TUNE_ASHA: "tab:orange", TUNE_OPTUNA: "tab:green", TUNE_DEFAULTS: "tab:red"}
    for row, name in zip(axes, names):
        entries = sorted(objectives[name]["workers"].items(), key=lambda kv: int(kv[0]))
        for s in SYSTEMS:
            pts = [
                (int(w), e[s]) for w, e in entries if s in e and e[s].get("overhead_ms") is not None
            ]
            if not pts:
                continue
            ws = [w for w, _ in pts]
            row[0].plot(ws, [r["overhead_ms"] for _, r in pts], "o-", color=colors[s], label=s)
            row[0].plot(
                ws,
                [r["overhead_incl_startup_ms"] for _, r in pts],
                "x:",
                color=colors[s],
                alpha=0.6,
                label=f"{s} incl. start-up",
            )
            if objectives[name]["sleep_s"] > 0:
                row[1].plot(
                    ws, [100 * r["utilization"] for _, r in pts], "o-", color=colors[s], label=s
                )
            else:  # utilization of a trivial objective is ~0 for everyone: show throughput
                row[1].plot(ws, [r["trials_per_s"] for _, r in pts], "o-", color=colors[s], label=s)
        row[0].set_yscale("log")
        row[0].set_title(f"{name}: per-trial overhead (worker-slot ms per trial)", fontsize=11)
        row[0].set_xlabel("workers")
        row[0].set_ylabel("ms per trial")
        row[1].set_xlabel("workers")
        if objectives[name]["sleep_s"] > 0:
            row[1].set_title(f"{name}: utilization (busy / workers x steady wall)", fontsize=11)
            row[1].set_ylabel("%")
            row[1].set_ylim(0, 105)
            if name == UTILIZATION_OBJECTIVE:
                row[1].axhline(100 * UTILIZATION_TARGET, color="grey", ls="--", lw=0.8)
        else:
            row[1].set_title(f"{name}: steady-state throughput", fontsize=11)
            row[1].set_ylabel("trials / s")
            row[1].set_ylim(bottom=0)
        for ax in row:
            ax.set_xticks([int(w) for w, _ in entries])
            ax.grid(alpha=0.3, which="both")
    handles: dict[str, Any] = {}  # one legend for every panel, below them: inside, it hid the lines
    for ax in axes[:, 0]:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=4, fontsize=8)
    fig.suptitle(
        "Worker overhead: ours (run_sweep) vs Ray Tune (ASHA, OptunaSearch; ASHA at Tune's defaults), 2 shared cores"
    )
    fig.draw_without_rendering()
    readable_log_axes(fig)
    return fig


# ------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 4 workers, 60 trials, about 2 minutes"
    )
    parser.add_argument("--workers", type=int, nargs="+", default=None, help="default: 2 4 8")
    parser.add_argument("--trials", type=int, default=None, help="trials per run of ours (500)")
    parser.add_argument(
        "--tune-trials", type=int, default=None, help="trials per Ray Tune run (default: --trials)"
    )
    parser.add_argument(
        "--objectives", nargs="+", default=None, choices=list(OBJECTIVES), help="default: both"
    )
    parser.add_argument(
        "--systems", nargs="+", default=None, choices=list(SYSTEMS), help="default: all four"
    )
    parser.add_argument("--algorithm", default="asha", help="our study's algorithm (asha)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tune-no-reuse", action="store_true", help="the fast Ray Tune variants with reuse_actors=False"
    )
    parser.add_argument(
        "--defaults-trials",
        type=int,
        default=None,
        help=f"trials per run of {TUNE_DEFAULTS} (100, as the issue measured it; --quick: 20)",
    )
    parser.add_argument("--output", type=Path, default=None)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    t_start = time.perf_counter()
    loadavg_start = list(os.getloadavg())
    workers = args.workers or ([4] if args.quick else [2, 4, 8])
    trials = args.trials or (60 if args.quick else 500)
    tune_trials = args.tune_trials or trials
    defaults_trials = args.defaults_trials or (20 if args.quick else 100)
    objective_names = args.objectives or list(OBJECTIVES)
    systems = args.systems or list(SYSTEMS)
    ray_temp = tempfile.mkdtemp(prefix="ray_wo_", dir="/tmp")
    log(
        f"workers {workers}, trials {trials} (Ray Tune {tune_trials}, at its defaults {defaults_trials}), objectives {objective_names}, "
        f"systems {systems}, load {loadavg_start[0]:.2f}"
    )
    runs: list[dict[str, Any]] = []
    try:
        for name in objective_names:
            for w in workers:
                for s in systems:
                    n = {OURS: trials, TUNE_DEFAULTS: defaults_trials}.get(s, tune_trials)
                    r = run_one(s, name, w, n, args, ray_temp)
                    runs.append(r)
                    if "error" in r:
                        log(f"ERROR {s} {name} {w} workers: {r['error'].strip().splitlines()[-1]}")
                    else:
                        log(
                            f"{s} {name} {w} workers: {r.get('trials_run', 0)} trials, wall {r['wall_s']:.1f} s "
                            f"(ray.init {r['ray_init_s']:.1f} s, start-up {r.get('startup_s', math.nan):.1f} s, "
                            f"steady {r.get('steady_s', math.nan):.1f} s), overhead {r.get('overhead_ms', math.nan):.1f} ms/trial, "
                            f"utilization {100 * (r.get('utilization') or 0):.1f}%, {r.get('processes', 0)} processes, "
                            f"load {r['loadavg_end'][0]:.2f}"
                        )
    finally:
        shutil.rmtree(ray_temp, ignore_errors=True)
    wall_s = time.perf_counter() - t_start
    objectives = analyse(runs)
    tgt = targets(objectives)
    print_report(objectives, tgt, wall_s)

    import optuna
    import ray

    payload = {
        "benchmark": "worker_overhead",
        "quick": args.quick,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_s": wall_s,
        "machine": machine(optuna=optuna.__version__, ray=ray.__version__, loadavg_start=loadavg_start,
                           loadavg_end=list(os.getloadavg())),
        "config": {
            "workers": workers,
            "trials": trials,
            "tune_trials": tune_trials,
            "defaults_trials": defaults_trials,
            "objectives": {n: {"sleep_s": OBJECTIVES[n]} for n in objective_names},
            "systems": systems,
            "ours": {
                "api": "hpo.create_study(sqlite on /dev/shm, builtin branin) + workers.sweep.run_sweep",
                "algorithm": args.algorithm,
                "seed": args.seed,
            },
            "ray_tune": {
                "trainable": "function trainable: objective once, tune.report once",
                "reuse_actors": not args.tune_no_reuse,
                "max_concurrent_trials": "workers",
                "asha": "ASHAScheduler(time_attr=training_iteration, max_t=1, grace_period=1, reduction_factor=3) + BasicVariantGenerator(random_state=seed)",
                "optuna": "OptunaSearch(metric=value, mode=min, seed=seed), default TPE sampler",
                "run_config": "verbose=0, CheckpointConfig(checkpoint_at_end=False), storage on /dev/shm, TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1",
                "defaults": "ray-tune-asha-defaults: the same ASHA and searcher with Tune's defaults: reuse_actors=False, default CheckpointConfig, auto callback loggers on; verbose=0 and storage on /dev/shm kept",
            },
            "ray_init": "ray.init(address='local', num_cpus=workers, include_dashboard=False, log_to_driver=False) fresh per run, timed separately",
            "definitions": {
                "utilization": "busy / (workers x steady wall); steady wall = first objective entry to last objective exit",
                "overhead_ms": "(workers x steady wall - busy) / trials",
                "overhead_incl_startup_ms": "(workers x wall - busy) / trials; wall = create_study/Tuner() to run_sweep/fit return",
                "overhead_ratio": "Ray Tune's overhead_ms / ours (steady state); headline against the better of the two fast Tune variants",
                "overhead_ratio_vs_defaults": "ray-tune-asha-defaults' overhead_ms / ours (steady state): the configuration behind the issue's 1.1 s per trial",
            },
        },
        "objectives": objectives,
        "targets": tgt,
    }
    suffix = "_quick" if args.quick else ""
    out = args.output or RESULTS_DIR / f"worker_overhead{suffix}.json"
    write_json(out, payload)
    png = out.with_suffix(".png")
    figure(json_safe(payload)).savefig(png, dpi=110)
    log(f"wrote {out} and {png}")


if __name__ == "__main__":
    main()
