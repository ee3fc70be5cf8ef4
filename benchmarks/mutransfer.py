"""muTransfer on the GPT proxy: does the optimal learning rate stay put as the model widens
under muP, and move under SP?

What it measures
    A learning-rate sweep of the GPT proxy (``workers.proxies.trainer.train("gpt", ...)``) at
    widths 64 to 512, once in SP and once in muP (base width 64), with the same settings
    (``FIXED``, tuned at the base width) for both. A run scores its held-out loss (nats/byte)
    after ``STEPS`` steps; a diverged run is worse than any finite loss (a gap in the plot).
    Optimum per (param, width): the best grid point, refined by the parabola in log2 lr
    through it and its neighbours (flagged where it cannot be). Drift: the optimum's log2 lr
    at the widest width minus at the narrowest. At the widest width each param's two best
    grid points are re-run with ``--confirm-seeds`` seeds, paired by seed.

Targets
    1. muP: |drift| <= 0.5, :mod:`scaling.transfer`'s tolerance.  2. SP: |drift| >= 1.
    3. muP's best loss at the widest width (the confirmation's mean) is no worse than SP's.

How to run it
    ``python benchmarks/mutransfer.py [--quick] [--widths ...] [--log2-lrs ...] [--steps N]
    [--seeds N] [--confirm-seeds N] [--threads N] [--out DIR]`` -> ``DIR/mutransfer.json``
    and ``.png`` (DIR: benchmarks/results; ``mutransfer_quick.*`` with ``--quick``: widths 64
    and 128, 5 learning rates, 40 steps, 2 confirmation seeds). Findings, the tuning of
    ``FIXED`` and the caveats: ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS_DIR, fmt, json_safe, log, machine, new_figure, write_json
from hpo.runner import Diverged
from scaling.transfer import TOLERANCE_LOG2, stays_put
from workers.proxies.trainer import train

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PARAMS = ("sp", "mup")
WIDTHS = (64, 128, 256, 512)
LOG2_LRS = tuple(float(x) for x in range(-16, -4))  # -16 to -5 in steps of 1
STEPS = 200
THREADS = 1
SEEDS = 1
QUICK_WIDTHS = (64, 128)
QUICK_LOG2_LRS = (-10.0, -9.0, -8.0, -7.0, -6.0)
QUICK_STEPS = 40
CONFIRM_SEEDS = 6
QUICK_CONFIRM_SEEDS = 2
SP_DRIFT_MIN = 1.0
# Everything but width, param, learning rate and seed: the same for every run.
FIXED = {
    "depth": 2,
    "heads": 4,
    "seq_len": 32,
    "batch_size": 8,
    "base_width": 64,
    "init_std": 0.02,
    "output_mult": 2.0,  # tuned at the base width (benchmarks/README.md)
    "attn_mult": 1.0,
    "embed_lr_mult": 32.0,  # tuned at the base width (benchmarks/README.md)
    "zero_init": False,  # muP only; tuned at the base width (benchmarks/README.md)
    "weight_decay": 0.1,
    "warmup_fraction": 0.05,
    "schedule": "cosine",
    "grad_clip": 1.0,
    "eval_sequences": 128,
    "data": "stdlib",
}


# ------------------------------------------------------------------ the sweep


def run_point(param: str, width: int, log2_lr: float, steps: int, seed: int) -> dict[str, Any]:
    """One training run; a diverged run has loss NaN and the trainer's message in ``diverged``."""
    config = FIXED | {"width": width, "param": param, "learning_rate": 2.0**log2_lr, "seed": seed}
    record: dict[str, Any] = {"param": param, "width": width, "log2_lr": log2_lr, "seed": seed}
    started = time.perf_counter()
    try:
        result = train("gpt", config, steps, unit="steps")
    except Diverged as exc:
        return record | {"loss": math.nan, "diverged": str(exc), "seconds": time.perf_counter() - started}
    return record | {
        "loss": result.final_loss,
        "diverged": None,
        "seconds": result.seconds,
        "steps": result.steps,
        "tokens": result.tokens,
        "non_embedding_params": result.non_embedding_params,
    }


def sweep(
    widths: Sequence[int], log2_lrs: Sequence[float], steps: int, seeds: int
) -> list[dict[str, Any]]:
    """Every (param, width, lr, seed) run, smallest width first so early output is cheap."""
    runs: list[dict[str, Any]] = []
    total = len(PARAMS) * len(widths) * len(log2_lrs) * seeds
    started = time.perf_counter()
    for width in widths:
        for param in PARAMS:
            for log2_lr in log2_lrs:
                for seed in range(seeds):
                    r = run_point(param, width, log2_lr, steps, seed)
                    runs.append(r)
                    log(
                        f"{len(runs)}/{total} {param} width {width} log2 lr {log2_lr:+.1f} seed {seed}: "
                        f"{'diverged' if r['diverged'] else format(r['loss'], '.4f')} "
                        f"({r['seconds']:.1f} s, {time.perf_counter() - started:.0f} s elapsed)"
                    )
    return runs


# ------------------------------------------------------------------ analysis


def mean_losses(
    runs: list[dict[str, Any]], param: str, width: int, log2_lrs: Sequence[float]
) -> list[float]:
    """Loss per grid point, averaged over seeds; NaN when any seed diverged."""
    out = []
    for x in log2_lrs:
        losses = [r["loss"] for r in runs if (r["param"], r["width"], r["log2_lr"]) == (param, width, x)]
        out.append(float(np.mean(losses)) if losses else math.nan)
    return out


def find_optimum(log2_lrs: Sequence[float], losses: Sequence[float]) -> dict[str, Any]:
    """The best grid point (diverged = worse than any finite loss), refined by the vertex of
    the parabola in log2(lr) through it and its two neighbours; the grid point itself when it
    is on the edge of the grid or a neighbour diverged."""
    finite = [i for i, v in enumerate(losses) if math.isfinite(v)]
    if not finite:
        return {"log2_lr": None, "grid_log2_lr": None, "loss": None, "fitted_loss": None, "note": "every run diverged"}
    i = min(finite, key=lambda j: losses[j])
    out: dict[str, Any] = {"log2_lr": log2_lrs[i], "grid_log2_lr": log2_lrs[i], "loss": losses[i], "fitted_loss": None}
    if i in (0, len(losses) - 1):
        return out | {"note": "optimum on the edge of the grid"}
    xs, ys = log2_lrs[i - 1 : i + 2], losses[i - 1 : i + 2]
    if not all(math.isfinite(y) for y in ys):
        return out | {"note": "a neighbour of the best grid point diverged: grid point used"}
    a, b, c = np.polyfit(xs, ys, 2)
    if a <= 0:  # three equal losses: no curvature to fit
        return out | {"note": "flat around the best grid point: grid point used"}
    vertex = -b / (2 * a)
    return out | {"log2_lr": float(vertex), "fitted_loss": float(c - b * b / (4 * a)), "note": None}


def analyse(runs: list[dict[str, Any]], widths: Sequence[int], log2_lrs: Sequence[float]) -> dict[str, Any]:
    """Per param: the loss curve and optimum at each width, and the drift smallest -> largest."""
    out: dict[str, Any] = {}
    for param in PARAMS:
        per_width = {}
        for width in widths:
            losses = mean_losses(runs, param, width, log2_lrs)
            done = [r for r in runs if r["width"] == width and "non_embedding_params" in r]
            n = done[0]["non_embedding_params"] if done else None
            per_width[str(width)] = {
                "non_embedding_params": n,
                "losses": losses,
                "optimum": find_optimum(log2_lrs, losses),
            }
        lo, hi = (per_width[str(w)]["optimum"]["log2_lr"] for w in (widths[0], widths[-1]))
        drift = hi - lo if lo is not None and hi is not None else None
        out[param] = {"widths": per_width, "drift_log2": drift}
    return out


def confirm_candidates(analysis: dict[str, Any], width: int, log2_lrs: Sequence[float]) -> dict[str, list[float]]:
    """Per param, the grid points the largest width's optimum lies between: the best grid
    point and the better of its finite neighbours (the best alone when it has none)."""
    out: dict[str, list[float]] = {}
    for param in PARAMS:
        losses = analysis[param]["widths"][str(width)]["losses"]
        finite = [i for i, v in enumerate(losses) if math.isfinite(v)]
        if not finite:
            out[param] = []
            continue
        i = min(finite, key=lambda j: losses[j])
        neighbours = [j for j in (i - 1, i + 1) if j in finite]
        out[param] = [log2_lrs[i]] + ([log2_lrs[min(neighbours, key=lambda j: losses[j])]] if neighbours else [])
    return out


def confirm(
    runs: list[dict[str, Any]], candidates: dict[str, list[float]], width: int, steps: int, n_seeds: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Seeds 0..n_seeds-1 at each candidate (reusing the sweep's runs), and per param the
    candidate with the lowest mean: one seed cannot settle a comparison of a few hundredths
    (benchmarks/README.md), and picking the best of two grid points by one seed's loss would
    carry that seed's luck into the verdict. Diverged seeds count as NaN (the mean too)."""
    done = {(r["param"], r["width"], r["log2_lr"], r["seed"]): r for r in runs}
    extra: list[dict[str, Any]] = []
    out: dict[str, Any] = {"width": width, "seeds": n_seeds}
    for param, lrs in candidates.items():
        points = []
        for x in lrs:
            losses = []
            for seed in range(n_seeds):
                r = done.get((param, width, x, seed))
                if r is None:
                    r = run_point(param, width, x, steps, seed)
                    extra.append(r)
                    log(f"confirm {param} width {width} log2 lr {x:+.1f} seed {seed}: {fmt(r['loss'], '.4f')}")
                losses.append(r["loss"])
            points.append({"log2_lr": x, "losses": losses, "mean": float(np.mean(losses))})
        finite = [p for p in points if math.isfinite(p["mean"])]
        out[param] = {"points": points, "best": min(finite, key=lambda p: p["mean"]) if finite else None}
    mup, sp = out["mup"]["best"], out["sp"]["best"]
    if mup and sp and n_seeds > 1:  # same seed = same batches in the same order: pair them
        diffs = np.array(mup["losses"]) - np.array(sp["losses"])
        out["paired_diff"] = {"mean": float(diffs.mean()), "stderr": float(diffs.std(ddof=1) / math.sqrt(len(diffs)))}
    return out, extra


def targets(analysis: dict[str, Any], widths: Sequence[int], confirmed: dict[str, Any]) -> dict[str, Any]:
    """The issue's three targets, and whether any optimum sat on the grid's edge. The loss
    target is judged on the confirmation's means."""
    mup_drift, sp_drift = analysis["mup"]["drift_log2"], analysis["sp"]["drift_log2"]
    top = str(widths[-1])
    mup_best, sp_best = ((confirmed[p]["best"] or {}).get("mean") for p in ("mup", "sp"))
    edges = [
        f"{p} width {w}"
        for p in PARAMS
        for w, e in analysis[p]["widths"].items()
        if e["optimum"]["note"] == "optimum on the edge of the grid"
    ]
    return {
        "mup_drift": {
            "target": f"|muP drift| <= {TOLERANCE_LOG2} log2 from width {widths[0]} to {widths[-1]}",
            "value": mup_drift,
            "met": mup_drift is not None and stays_put(mup_drift),
        },
        "sp_drift": {
            "target": f"|SP drift| >= {SP_DRIFT_MIN} log2 from width {widths[0]} to {widths[-1]}",
            "value": sp_drift,
            "met": sp_drift is not None and abs(sp_drift) >= SP_DRIFT_MIN,
        },
        "mup_loss_at_largest": {
            "target": f"best muP loss at width {top} <= best SP loss there "
            f"(mean of {confirmed['seeds']} seeds at each one's best grid point)",
            "mup": mup_best,
            "sp": sp_best,
            "paired_diff": confirmed.get("paired_diff"),
            "met": mup_best is not None and (sp_best is None or mup_best <= sp_best),
        },
        "optima_on_grid_edge": edges,
    }


# ------------------------------------------------------------------ report


def print_report(analysis: dict[str, Any], confirmed: dict[str, Any], tgt: dict[str, Any], wall_s: float) -> None:
    print(f"\n{'param':<6} {'width':>5} {'opt log2 lr':>11} {'grid best':>9} {'best loss':>9} {'fit loss':>8}  note")
    for param in PARAMS:
        for width, entry in analysis[param]["widths"].items():
            o = entry["optimum"]
            print(
                f"{param:<6} {width:>5} {fmt(o['log2_lr'], '+.2f'):>11} {fmt(o['grid_log2_lr'], '+.1f'):>9} "
                f"{fmt(o['loss'], '.4f'):>9} {fmt(o['fitted_loss'], '.4f'):>8}  {o['note'] or ''}"
            )
    print()
    for param in PARAMS:
        print(f"{param} drift (log2 lr, largest minus smallest width): {fmt(analysis[param]['drift_log2'], '+.2f')}")
    print(f"\nwidth {confirmed['width']}, {confirmed['seeds']} seeds per candidate grid point:")
    for param in PARAMS:
        for p in confirmed[param]["points"]:
            seeds = " ".join(fmt(v, ".4f") for v in p["losses"])
            best = " (best)" if p is confirmed[param]["best"] else ""
            print(f"  {param:<4} log2 lr {p['log2_lr']:+.1f}: mean {fmt(p['mean'], '.4f')}{best}  seeds {seeds}")
    if "paired_diff" in confirmed:
        d = confirmed["paired_diff"]
        print(f"  muP - SP, paired by seed: {d['mean']:+.4f} +- {d['stderr']:.4f} (standard error)")
    print()
    for key in ("mup_drift", "sp_drift"):
        t = tgt[key]
        print(f"target {t['target']}: {fmt(t['value'], '+.2f')} -> {'met' if t['met'] else 'MISSED'}")
    t = tgt["mup_loss_at_largest"]
    print(
        f"target {t['target']}: muP {fmt(t['mup'], '.4f')}, SP {fmt(t['sp'], '.4f')} -> "
        f"{'met' if t['met'] else 'MISSED'}"
    )
    if tgt["optima_on_grid_edge"]:
        print(f"warning: optimum on the edge of the grid for {', '.join(tgt['optima_on_grid_edge'])}")
    print(f"wall time {wall_s / 60:.1f} min")


def figure(results: dict[str, Any]) -> Figure:
    """Loss against log2 lr by width, one panel per parameterization, from the results JSON
    (a diverged point is null there: a gap)."""
    analysis, log2_lrs = results["results"], results["config"]["log2_lrs"]
    fig = new_figure(6 * len(PARAMS), 4.8)
    axes = fig.subplots(1, len(PARAMS), sharey=True)
    widths = list(analysis[PARAMS[0]]["widths"])
    colors = matplotlib.colormaps["viridis"](np.linspace(0.0, 0.85, len(widths)))
    losses = {(p, w): [math.nan if v is None else v for v in e["losses"]]
              for p in PARAMS for w, e in analysis[p]["widths"].items()}
    finite = [v for curve in losses.values() for v in curve if math.isfinite(v)]
    for ax, param in zip(axes, PARAMS, strict=True):
        for color, width in zip(colors, widths, strict=True):
            o = analysis[param]["widths"][width]["optimum"]
            ax.plot(log2_lrs, losses[param, width], "o-", color=color, ms=3.5, lw=1.4, label=f"width {width}")
            if o["log2_lr"] is not None:
                ax.axvline(o["log2_lr"], color=color, ls=":", lw=1.0)
        drift = analysis[param]["drift_log2"]
        ax.set_title(f"{'muP' if param == 'mup' else 'SP'}: optimum drift {fmt(drift, '+.2f')} log2", fontsize=11)
        ax.set_xlabel("log2 learning rate")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", framealpha=0.8)
    axes[0].set_ylabel("held-out loss after training (nats/byte)")
    if finite:  # diverged points are gaps; very bad ones would squash the minima
        lo = min(finite)
        axes[0].set_ylim(lo - 0.05, min(max(finite), lo + 1.5) + 0.05)
    fig.suptitle("Final held-out loss vs learning rate by width (dotted: fitted optimum)")
    return fig


# ------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: widths 64 128, 5 learning rates, 40 steps (< 1 min)"
    )
    parser.add_argument("--widths", type=int, nargs="+", default=None, help="default: 64 128 256 512")
    parser.add_argument(
        "--log2-lrs", type=float, nargs="+", default=None, help="log2 learning rates (default: -16 to -5 by 1)"
    )
    parser.add_argument("--steps", type=int, default=None, help=f"training steps per run ({STEPS})")
    parser.add_argument("--seeds", type=int, default=None, help=f"seeds per point, losses averaged ({SEEDS})")
    parser.add_argument(
        "--confirm-seeds",
        type=int,
        default=None,
        help=f"seeds at the largest width's two best grid points per param "
        f"({CONFIRM_SEEDS}; quick {QUICK_CONFIRM_SEEDS})",
    )
    parser.add_argument(
        "--threads", type=int, default=THREADS, help=f"torch intra-op threads ({THREADS}; why one: benchmarks/README.md)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="output folder (benchmarks/results)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    widths = sorted(args.widths or (QUICK_WIDTHS if args.quick else WIDTHS))
    log2_lrs = sorted(args.log2_lrs or (QUICK_LOG2_LRS if args.quick else LOG2_LRS))
    steps = args.steps or (QUICK_STEPS if args.quick else STEPS)
    seeds = args.seeds or SEEDS
    confirm_seeds = max(args.confirm_seeds or (QUICK_CONFIRM_SEEDS if args.quick else CONFIRM_SEEDS), seeds)
    import torch

    torch.set_num_threads(args.threads)
    loadavg_start = list(os.getloadavg())
    log(f"widths {widths}, log2 lrs {log2_lrs}, {steps} steps, {seeds} seed(s), {torch.get_num_threads()} threads")
    t_start = time.perf_counter()
    runs = sweep(widths, log2_lrs, steps, seeds)
    analysis = analyse(runs, widths, log2_lrs)
    candidates = confirm_candidates(analysis, widths[-1], log2_lrs)
    confirmed, extra = confirm(runs, candidates, widths[-1], steps, confirm_seeds)
    wall_s = time.perf_counter() - t_start
    tgt = targets(analysis, widths, confirmed)
    print_report(analysis, confirmed, tgt, wall_s)

    payload = {
        "benchmark": "mutransfer",
        "quick": args.quick,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "mup_drift_log2": analysis["mup"]["drift_log2"],
        "sp_drift_log2": analysis["sp"]["drift_log2"],
        "targets": tgt,
        "wall_s": wall_s,
        "machine": machine(
            torch=torch.__version__,
            torch_threads=torch.get_num_threads(),
            mup=importlib.metadata.version("mup"),
            loadavg_start=loadavg_start,
            loadavg_end=list(os.getloadavg()),
        ),
        "config": {
            "model": "gpt",
            "params": list(PARAMS),
            "widths": widths,
            "log2_lrs": log2_lrs,
            "steps": steps,
            "tokens_per_step": FIXED["batch_size"] * FIXED["seq_len"],
            "seeds": seeds,
            "confirm_seeds": confirm_seeds,
            "fixed": FIXED,
            "loss": "held-out cross-entropy (nats/byte) at the end of training, mean over seeds; "
            "results.<param>.widths.<width>.losses follow log2_lrs, null = diverged",
            "optimum": "vertex of the parabola in log2 lr through the best grid point and its neighbours",
            "drift": "optimum log2 lr at the largest width minus at the smallest",
        },
        "results": analysis,
        "confirmation": confirmed,
        "runs": runs + extra,
    }
    stem = "mutransfer_quick" if args.quick else "mutransfer"
    out = args.out / f"{stem}.json"
    write_json(out, payload)
    figure(json_safe(payload)).savefig(out.with_suffix(".png"), dpi=110)
    log(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
