"""End to end: muP proxy sweeps -> a fitted learning-rate and batch-size law -> a recommendation
for a model over 4x larger than the largest proxy, checked by training that model on a grid
around the recommendation and at the Step Law default.

What it measures
    1. Proxy sweeps: the GPT proxy under muP at widths 16, 32 and 64 and token budgets 2^16
       and 2^17, each (N, D) cell on the same 4 learning rates x 4 batch sizes, two seeds.
    2. The fit (:func:`fit_proxies`: ``scaling.fit_runs``, form auto, each cell's optimum by
       the quadratic read, Step Law's batch exponent calibrated where no batch law fits).
    3. The recommendation (``recommend_with``) for width 160 at D = 2^17.
    4. The check: the target trained at the recommendation, on the grid lr x {1/4 .. 4} and
       batch x {1/2, 1, 2} around it, and at Step Law's default, each with seeds 0, 1, 2.

Targets (on each configuration's mean over the three seeds)
    1. gap = loss(recommendation) / min(grid loss) - 1 <= 1%.
    2. loss(Step Law) / loss(recommendation) - 1 > 0.

How to run it
    ``python benchmarks/scaling_e2e.py [--quick] [--workers 2] [--out DIR]`` ->
    ``DIR/scaling_e2e.json`` and ``.png`` (DIR: benchmarks/results). Runs go to ``--workers``
    processes of one torch thread each; a run is deterministic given its seed. ``--quick``:
    widths 16/32, budgets 2^13 and 2^14, 3 x 3 grids, target width 48, ``scaling_e2e_quick.*``.
    Why these settings, the findings and the caveat on Step Law: ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import scaling
from benchmarks.common import RESULTS_DIR, fmt, json_safe, log, new_figure, write_json
from scaling.plot import readable_log_axes
from scaling.recommend import Recommendation, recommend_with

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SEQ_LEN = 16
GAP_TARGET = 0.01
TARGET_LR_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)
TARGET_BATCH_FACTORS = (0.5, 1.0, 2.0)
FIXED: dict[str, Any] = {
    "depth": 2,
    "heads": 4,
    "seq_len": SEQ_LEN,
    "param": "mup",
    "base_width": 64,
    "init_std": 0.02,
    "weight_decay": 0.1,
    "warmup_fraction": 0.05,
    "schedule": "cosine",
    "grad_clip": 1.0,
    "eval_sequences": 512,
    "data": "stdlib",
}


@dataclass(frozen=True)
class Plan:
    """What one invocation sweeps and trains."""

    widths: tuple[int, ...]
    tokens: tuple[int, ...]
    log2_lrs: tuple[float, ...]
    batches: tuple[int, ...]
    target_width: int
    target_tokens: int
    proxy_seeds: tuple[int, ...] = (0, 1)
    target_seeds: tuple[int, ...] = (0, 1, 2)
    bootstrap: int = 1000


FULL = Plan(
    widths=(16, 32, 64),
    tokens=(65536, 131072),
    log2_lrs=(-12.0, -10.5, -9.0, -7.5),
    batches=(1, 2, 4, 8),
    target_width=160,
    target_tokens=131072,
)
QUICK = Plan(
    widths=(16, 32),
    tokens=(8192, 16384),
    log2_lrs=(-10.5, -9.0, -7.5),
    batches=(1, 2, 4),
    target_width=48,
    target_tokens=16384,
    target_seeds=(0, 1),
    bootstrap=100,
)


def non_embedding_params(width: int, depth: int = FIXED["depth"]) -> int:
    """N of the GPT proxy (as ``workers.proxies.gpt.GPTConfig.non_embedding_params``)."""
    return depth * (12 * width * width + 4 * width) + 2 * width


# ------------------------------------------------------------------ running


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train one configuration; a diverged run has loss inf and the reason in ``diverged``."""
    from hpo.runner import Diverged
    from workers.proxies.trainer import train

    config = FIXED | {
        "width": job["width"],
        "learning_rate": job["learning_rate"],
        "batch_size": job["batch_size"],
        "seed": job["seed"],
    }
    started = time.perf_counter()
    try:
        result = train("gpt", config, job["tokens"], unit="tokens")
    except Diverged as exc:
        return job | {"loss": math.inf, "diverged": str(exc), "seconds": time.perf_counter() - started}
    return job | {
        "loss": result.final_loss,
        "diverged": None,
        "seconds": result.seconds,
        "steps": result.steps,
        "tokens_trained": result.tokens,
        "non_embedding_params": result.non_embedding_params,
    }


def _cost(job: dict[str, Any]) -> float:
    """Rough relative cost (steps x per-step time), to start the longest runs first."""
    return job["tokens"] / job["batch_size"] * (1 + (job["width"] / 64) ** 2)


def run_all(jobs: Sequence[dict[str, Any]], workers: int, label: str) -> list[dict[str, Any]]:
    """Every job, on ``workers`` single-threaded processes; results in the jobs' order."""
    ordered = sorted(range(len(jobs)), key=lambda i: -_cost(jobs[i]))
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    started = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
        futures = {pool.submit(run_one, jobs[i]): i for i in ordered}
        for done, future in enumerate(as_completed(futures), start=1):
            r = future.result()
            results[futures[future]] = r
            log(
                f"{label} {done}/{len(jobs)} width {r['width']} D {r['tokens']} lr 2^{math.log2(r['learning_rate']):+.2f} "
                f"batch {r['batch_size']} seed {r['seed']}: {'diverged' if r['diverged'] else format(r['loss'], '.4f')} "
                f"({r['seconds']:.1f} s; {time.perf_counter() - started:.0f} s elapsed)"
            )
    return [r for r in results if r is not None]


def proxy_jobs(plan: Plan) -> list[dict[str, Any]]:
    return [
        {"phase": "proxy", "width": w, "tokens": d, "learning_rate": 2.0**x, "batch_size": b, "seed": seed}
        for w in plan.widths
        for d in plan.tokens
        for x in plan.log2_lrs
        for b in plan.batches
        for seed in plan.proxy_seeds
    ]


def target_configs(rec: Recommendation, step: Recommendation) -> list[dict[str, Any]]:
    """The grid around the recommendation (its centre is the recommendation) and Step Law's
    default; a batch factor that rounds to a batch already on the grid is dropped, and Step
    Law's point, if it is on the grid, is marked there rather than trained twice."""
    batches = sorted({max(1, round(rec.batch_size_sequences * f)) for f in TARGET_BATCH_FACTORS})
    configs = [
        {
            "role": ["recommendation" if (fl, batch) == (1.0, rec.batch_size_sequences) else "grid"],
            "lr_factor": fl,
            "batch_factor": batch / rec.batch_size_sequences,
            "learning_rate": rec.learning_rate * fl,
            "batch_size": batch,
        }
        for batch in batches
        for fl in TARGET_LR_FACTORS
    ]
    same = [c for c in configs if (c["learning_rate"], c["batch_size"]) == (step.learning_rate, step.batch_size_sequences)]
    if same:
        same[0]["role"].append("steplaw")
    else:
        configs.append(
            {"role": ["steplaw"], "lr_factor": None, "batch_factor": None,
             "learning_rate": step.learning_rate, "batch_size": step.batch_size_sequences}
        )
    return configs


def target_jobs(plan: Plan, configs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every configuration at every target seed (the same seeds everywhere, so configurations
    are compared on the same initialisations and data orders)."""
    return [
        {"phase": "target", "width": plan.target_width, "tokens": plan.target_tokens,
         "learning_rate": c["learning_rate"], "batch_size": c["batch_size"], "seed": seed}
        for c in configs
        for seed in plan.target_seeds
    ]


# ------------------------------------------------------------------ analysis


def to_scaling_runs(records: Iterable[dict[str, Any]]) -> list[scaling.Run]:
    """Proxy runs as the scaling package's runs: N from the model, D the nominal budget (so a
    cell's runs group together), batch in tokens."""
    return [
        scaling.Run(
            float(non_embedding_params(r["width"])),
            float(r["tokens"]),
            r["learning_rate"],
            float(r["batch_size"] * SEQ_LEN),
            r["loss"],
        )
        for r in records
    ]


def summarise_target(plan: Plan, configs: list[dict[str, Any]], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target configuration with its loss per seed and their mean (what the targets use;
    a diverged seed makes the mean infinite)."""
    out = []
    for c in configs:
        runs = {r["seed"]: r for r in records if (r["learning_rate"], r["batch_size"]) == (c["learning_rate"], c["batch_size"])}
        losses = [runs[seed]["loss"] for seed in plan.target_seeds]
        out.append(c | {"loss": float(np.mean(losses)), "seed_losses": losses,
                        "seconds": sum(r["seconds"] for r in runs.values())})
    return out


def _with_role(grid: list[dict[str, Any]], role: str) -> dict[str, Any]:
    return next(c for c in grid if role in c["role"])


def targets(plan: Plan, grid: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's two targets on the seed-mean losses, and the same comparisons seed by seed
    (how far a single-seed reading could have moved them)."""
    rec, step = _with_role(grid, "recommendation"), _with_role(grid, "steplaw")
    on_grid = [c for c in grid if c["lr_factor"] is not None]
    best = min(on_grid, key=lambda c: c["loss"])
    gap = rec["loss"] / best["loss"] - 1
    vs_step = _relative(step["loss"], rec["loss"])
    per_seed = []
    for i, seed in enumerate(plan.target_seeds):
        rec_i, best_i = rec["seed_losses"][i], min(c["seed_losses"][i] for c in on_grid)
        per_seed.append({"seed": seed, "gap": rec_i / best_i - 1, "vs_steplaw": _relative(step["seed_losses"][i], rec_i)})
    return {
        "gap": {
            "target": f"loss(recommendation) / min(grid loss) - 1 <= {GAP_TARGET:.0%}, losses the mean of {len(plan.target_seeds)} seeds",
            "recommendation_loss": rec["loss"],
            "grid_best_loss": best["loss"],
            "grid_best": {k: best[k] for k in ("learning_rate", "batch_size", "lr_factor", "batch_factor")},
            "value": gap,
            "met": gap <= GAP_TARGET,
        },
        "vs_steplaw": {
            "target": "loss(Step Law default) / loss(recommendation) - 1 > 0 (recommendation better), seed means",
            "steplaw_loss": step["loss"],
            "recommendation_loss": rec["loss"],
            "value": vs_step,
            "met": vs_step > 0,
        },
        "per_seed": per_seed,
    }


def _relative(a: float | None, b: float | None) -> float:
    """a / b - 1; NaN when either is missing or b is not finite."""
    return a / b - 1 if a is not None and b is not None and math.isfinite(b) else math.nan


def target_optimum(plan: Plan, grid: list[dict[str, Any]]) -> dict[str, Any]:
    """Where the target's own optimum lies: the scaling package's cell optimum over the
    seed-mean grid (Step Law's point left out), against the recommendation."""
    n = float(non_embedding_params(plan.target_width))
    runs = [
        scaling.Run(n, float(plan.target_tokens), c["learning_rate"], float(c["batch_size"] * SEQ_LEN), c["loss"])
        for c in grid
        if c["lr_factor"] is not None
    ]
    try:
        opt = scaling.find_optimum(runs)
    except scaling.ScalingError as exc:
        return {"error": str(exc)}
    return opt.to_dict()


def fit_proxies(proxies: list[dict[str, Any]], bootstrap: int) -> scaling.ScalingFit:
    """The benchmark's fit of its proxy runs (as run, or as the JSON keeps them).

    The committed results were measured with the quadratic read of each cell, before the
    estimator became a choice (estimator="auto"); pinned so they stay reproducible."""
    runs = [r | {"loss": math.nan if r["loss"] is None else r["loss"]} for r in proxies]
    return scaling.fit_runs(to_scaling_runs(runs), form="auto", estimator="quadratic", fit_to="optima",
                            name="scaling_e2e", bootstrap=bootstrap, batch_fallback="steplaw")


def _fit_report(fit: scaling.ScalingFit) -> dict[str, Any]:
    return fit.report().to_dict(bootstrap=False)


# ------------------------------------------------------------------ report


def print_report(result: dict[str, Any]) -> None:
    print("\nproxy cells (N, D): optimum lr, optimum batch (tokens), loss at optimum, flags")
    for cell in result["fit"]["cells"] if result.get("fit") else result.get("cell_optima", []):
        flags = "; ".join(f"{k}: {v}" for k, v in cell["flags"].items()) or "-"
        print(
            f"  N {cell['n_params']:>9,.0f}  D {cell['tokens']:>8,.0f}  lr {cell['learning_rate']:.3g}  "
            f"batch {cell['batch_size']:>6.0f}  loss {cell['loss']:.4f}  {flags}"
        )
    if "fit_error" in result:
        print(f"\nfit failed: {result['fit_error']}")
        return
    fit = result["fit"]
    print(f"\nfitted law ({fit['form']} form, auto; forms compared by held-out error: "
          + ", ".join(f"{k} {fmt(v, '.3f')}" for k, v in fit["forms_compared"].items()) + ")")
    print(f"  lr    = {fit['learning_rate']['formula']}   (held-out error {fmt(fit['learning_rate']['validation'].get('error'), '.1%')})")
    print(f"  batch = {fit['batch_size']['formula']} tokens   (held-out error {fmt(fit['batch_size']['validation'].get('error'), '.1%')})")
    rec, step = result["recommendation"], result["steplaw"]
    print(f"\ntarget: width {result['config']['target']['width']}, N {rec['n_params']:,.0f}, D {rec['tokens']:,.0f}")
    print(f"  recommendation: lr {rec['learning_rate']:.4g}, batch {rec['batch_size_sequences']} sequences ({rec['batch_size_tokens']} tokens)")
    print(f"  Step Law:       lr {step['learning_rate']:.4g}, batch {step['batch_size_sequences']} sequences ({step['batch_size_tokens']} tokens)")
    for name, r in (("recommendation", rec), ("Step Law", step)):
        for warning in r["warnings"]:
            print(f"  {name}: {warning}")
    seeds = result["config"]["target"]["seeds"]
    print(f"\n{'lr x':>6} {'batch x':>7} {'lr':>9} {'batch':>5} {'mean':>7}  {'per seed':<{8 * len(seeds)}} role"
          f"   (seeds {', '.join(map(str, seeds))})")
    for c in result["target_grid"]:
        print(
            f"{fmt(c['lr_factor'], '.2f'):>6} {fmt(c['batch_factor'], '.1f'):>7} {c['learning_rate']:>9.4g} "
            f"{c['batch_size']:>5} {fmt(c['loss'], '.4f'):>7}  {' '.join(fmt(x, '.4f') for x in c['seed_losses']):<{8 * len(seeds)}} "
            f"{','.join(c['role'])}"
        )
    t = result["targets"]
    print(f"\ngap = {t['gap']['recommendation_loss']:.4f} / {t['gap']['grid_best_loss']:.4f} - 1 = {t['gap']['value']:+.2%}  "
          f"(target <= {GAP_TARGET:.0%}): {'MET' if t['gap']['met'] else 'MISSED'}")
    print(f"Step Law vs recommendation = {fmt(t['vs_steplaw']['steplaw_loss'], '.4f')} / {t['vs_steplaw']['recommendation_loss']:.4f} - 1 = "
          f"{fmt(t['vs_steplaw']['value'], '+.2%')}  (target > 0): {'MET' if t['vs_steplaw']['met'] else 'MISSED'}")
    print("seed by seed: " + "; ".join(
        f"seed {r['seed']} gap {fmt(r['gap'], '+.2%')}, Step Law {fmt(r['vs_steplaw'], '+.2%')}" for r in t["per_seed"]))
    opt = result["target_optimum"]
    if "error" not in opt:
        print(f"target grid's own optimum (quadratic fit): lr {opt['learning_rate']:.4g}, batch {opt['batch_size']:.0f} tokens"
              + (f"; flags: {opt['flags']}" if opt["flags"] else ""))
    print(f"\nwall time {result['wall_s']:.0f} s")


def _summary(result: dict[str, Any]) -> str:
    """A few lines for the figure: the law, the two recommendations and the targets."""
    if "fit" not in result:
        return "no fit"
    fit, rec, step = result["fit"], result["recommendation"], result["steplaw"]
    return "\n".join([
        f"form: {fit['form']} (auto)",
        "lr = " + fit["learning_rate"]["formula"].replace(" * ", "\n   * "),
        "B  = " + fit["batch_size"]["formula"].replace(" * ", "\n   * ") + " tok",
        "",
        f"target N = {rec['n_params']:,.0f}",
        f"       D = {rec['tokens']:,.0f}",
        f"recommended: lr {rec['learning_rate']:.3g}, {rec['batch_size_sequences']} seq",
        f"Step Law:    lr {step['learning_rate']:.3g}, {step['batch_size_sequences']} seq",
    ])


def _seed_means(runs: Iterable[dict[str, Any]]) -> dict[tuple[float, int], float]:
    """Each (learning rate, batch) configuration's loss, averaged over its seeds."""
    losses: dict[tuple[float, int], list[float]] = {}
    for r in runs:
        losses.setdefault((r["learning_rate"], r["batch_size"]), []).append(r["loss"])
    return {k: float(np.mean(v)) for k, v in losses.items()}


def _draw_cells(fig: Any, result: dict[str, Any]) -> None:
    """One small map per proxy cell: each configuration's seed-mean loss above the cell's best
    (%), the best starred, the cell's flags (if any) in the title."""
    runs = [r | {"loss": math.nan if r["loss"] is None else r["loss"]} for r in result["proxy_runs"]]
    optima = {(o["n_params"], o["tokens"]): o for o in result.get("fit", {}).get("cells", result.get("cell_optima", []))}
    keys = sorted({(r["width"], r["tokens"]) for r in runs})
    for i, ((w, d), ax) in enumerate(zip(keys, fig.subplots(1, len(keys), squeeze=False)[0], strict=True)):
        cell = _seed_means([r for r in runs if (r["width"], r["tokens"]) == (w, d)])
        lrs = sorted({lr for lr, _ in cell})
        batches = sorted({b for _, b in cell})
        best = min(v for v in cell.values() if math.isfinite(v))
        excess = np.full((len(batches), len(lrs)), np.nan)
        for (lr, b), loss in cell.items():
            excess[batches.index(b), lrs.index(lr)] = 100 * (loss / best - 1)
        ax.imshow(np.minimum(excess, 10), origin="lower", cmap="viridis_r", vmin=0, vmax=10, aspect="auto")
        for (y, x), v in np.ndenumerate(excess):
            ax.text(x, y, "*" if v == 0 else ("div" if not np.isfinite(v) else f"{v:.1f}"), ha="center", va="center",
                    fontsize=6, color="k" if np.isfinite(v) and v < 5 else "w")
        ax.set_xticks(range(len(lrs)), [f"{math.log2(x):g}" for x in lrs], fontsize=6)
        ax.set_yticks(range(len(batches)), [str(b) for b in batches], fontsize=6)
        flags = optima.get((float(non_embedding_params(w)), float(d)), {}).get("flags", {})
        status = "ok" if not flags else "flagged: " + ", ".join("lr" if k == "learning_rate" else "batch" for k in flags)
        ax.set_title(f"width {w}, D {d:,}\n{status}", fontsize=7)
        ax.set_xlabel("log2 lr", fontsize=6)
        if i == 0:
            ax.set_ylabel("batch (sequences)", fontsize=6)


def figure(result: dict[str, Any], fit: scaling.ScalingFit | None = None) -> Figure:
    """From the results JSON. Top: each proxy cell's losses; middle: the fit
    (``scaling.plot.draw_fit``): ``fit``, the run's own, or else the JSON's report, which
    keeps no bootstrap laws (no band; :func:`fit_proxies` of the JSON's proxy runs gives them
    back); bottom: the target grid's loss against lr per batch, with the recommendation and
    Step Law marked, beside a summary."""
    from scaling.fitting import ScalingFit
    from scaling.plot import draw_fit
    from scaling.report import FitReport

    fig = new_figure(12, 14)
    top, middle, bottom = fig.subfigures(3, 1, height_ratios=[1.0, 1.45, 1.45])
    top.suptitle("proxy cells: seed-mean loss above the cell's best, % (best: *)", fontsize=9)
    _draw_cells(top, result)
    if "fit" in result:
        target = (result["recommendation"]["n_params"], result["recommendation"]["tokens"])
        draw_fit(middle, fit or ScalingFit.from_report(FitReport.from_dict(result["fit"])), target=target)
    else:
        middle.text(0.5, 0.5, f"fit failed: {result.get('fit_error', '')}", ha="center", wrap=True, fontsize=9)
    ax, side = bottom.subplots(1, 2, width_ratios=[2.4, 1])
    grid = [c | {"loss": math.nan if c["loss"] is None else c["loss"]} for c in result.get("target_grid", [])]
    for i, b in enumerate(sorted({c["batch_size"] for c in grid if c["lr_factor"] is not None})):
        pts = sorted((c["learning_rate"], c["loss"]) for c in grid if c["batch_size"] == b and c["lr_factor"] is not None)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=f"C{i}", label=f"batch {b} seq")
    for role, marker, color in (("recommendation", "*", "C3"), ("steplaw", "X", "k")):
        c = next((c for c in grid if role in c["role"]), None)
        if c is not None and math.isfinite(c["loss"]):
            ax.scatter([c["learning_rate"]], [c["loss"]], marker=marker, s=200, color=color, zorder=5,
                       label=f"{role} (batch {c['batch_size']})")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (muP base)")
    ax.set_ylabel(f"held-out loss (nats/byte),\nmean of {len(result['config']['target']['seeds'])} seeds")
    ax.grid(alpha=0.3, which="both")
    if grid:
        ax.legend(fontsize=7, loc="best", framealpha=0.8)
    side.axis("off")
    side.text(0.0, 1.0, _summary(result), fontsize=8, va="top", family="monospace", transform=side.transAxes)
    t = result["targets"]
    ax.set_title(
        f"target width {result['config']['target']['width']}: gap {fmt(t['gap']['value'], '+.2%')} "
        f"({'met' if t['gap']['met'] else 'missed'}), Step Law vs recommendation "
        f"{fmt(t['vs_steplaw']['value'], '+.2%')} ({'met' if t['vs_steplaw']['met'] else 'missed'})",
        fontsize=9,
    )
    fig.draw_without_rendering()
    readable_log_axes(bottom)
    return fig


# ------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny widths, budgets and grids (< 90 s)")
    parser.add_argument("--workers", type=int, default=2, help="training processes, one torch thread each (2)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="output folder (benchmarks/results)")
    return parser.parse_args(argv)


def _config(plan: Plan, workers: int) -> dict[str, Any]:
    return {
        "proxies": {
            "widths": plan.widths,
            "n_params": [non_embedding_params(w) for w in plan.widths],
            "tokens": plan.tokens,
            "log2_lrs": plan.log2_lrs,
            "batch_sizes_sequences": plan.batches,
            "seeds": plan.proxy_seeds,
        },
        "target": {
            "width": plan.target_width,
            "n_params": non_embedding_params(plan.target_width),
            "n_ratio_to_largest_proxy": non_embedding_params(plan.target_width) / non_embedding_params(max(plan.widths)),
            "tokens": plan.target_tokens,
            "lr_factors": TARGET_LR_FACTORS,
            "batch_factors": TARGET_BATCH_FACTORS,
            "seeds": plan.target_seeds,
        },
        "fixed": FIXED,
        "seq_len": SEQ_LEN,
        "fit": {"form": "auto", "bootstrap": plan.bootstrap},
        "workers": workers,
        "threads_per_worker": 1,
    }


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    t_start = time.perf_counter()
    loadavg_start = list(os.getloadavg())
    result: dict[str, Any] = {"benchmark": "scaling_e2e", "quick": args.quick, "config": _config(plan, args.workers)}
    log(f"proxies: widths {plan.widths}, D {plan.tokens}, {len(plan.log2_lrs)} lrs x {len(plan.batches)} batches x {len(plan.proxy_seeds)} seeds")
    proxies = run_all(proxy_jobs(plan), args.workers, "proxy")
    result["proxy_runs"] = proxies
    fit = None
    try:
        fit = fit_proxies(proxies, plan.bootstrap)
    except scaling.ScalingError as exc:
        result["fit_error"] = str(exc)
        result["cell_optima"] = [o.to_dict() for o in scaling.optima_of(to_scaling_runs(proxies))[0]]
        result["targets"] = {k: {"value": None, "met": False, "why": "no fit"} for k in ("gap", "vs_steplaw")}
    if fit is not None:
        result["fit"] = _fit_report(fit)
        n, d = non_embedding_params(plan.target_width), plan.target_tokens
        rec = recommend_with(fit.law, n, d, seq_len=SEQ_LEN)
        step = recommend_with(scaling.PUBLISHED_LAWS["steplaw"], n, d, seq_len=SEQ_LEN)
        result["recommendation"], result["steplaw"] = rec.to_dict(), step.to_dict()
        log(f"fit: {fit.form}, batch law {fit.batch_size.borrowed_from or 'fitted'}; recommendation lr {rec.learning_rate:.4g} batch {rec.batch_size_sequences}; "
             f"Step Law lr {step.learning_rate:.4g} batch {step.batch_size_sequences}")
        configs = target_configs(rec, step)
        records = run_all(target_jobs(plan, configs), args.workers, "target")
        result["target_runs"] = records
        result["target_grid"] = summarise_target(plan, configs, records)
        result["target_optimum"] = target_optimum(plan, result["target_grid"])
        result["targets"] = targets(plan, result["target_grid"])
    result["wall_s"] = time.perf_counter() - t_start
    result["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    import torch

    result["machine"] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "loadavg_start": loadavg_start,
        "loadavg_end": list(os.getloadavg()),
    }
    print_report(result)
    stem = "scaling_e2e_quick" if args.quick else "scaling_e2e"
    out = args.out / f"{stem}.json"
    write_json(out, result)
    figure(json_safe(result), fit).savefig(out.with_suffix(".png"), dpi=110)
    log(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
