"""The scaling fit's recommendations on real released lr x batch sweeps, held out at the largest scale.

For every table in ``benchmarks/data/real_sweeps`` (see its README) and each split of
:mod:`scaling.validate` (the largest N held out; each N's largest D held out), four methods
recommend a learning rate and batch size for every held-out cell from the other cells: ours
(``scaling.fit_runs``, form, estimator and fit_to all ``auto``), the published pipeline refitted
on the same cells (runs within 0.25% of each cell's best, ordinary least squares in log space,
Step Law's form), and Step Law and DeepSeek LLM as published. Each pick is scored on the
held-out cell's own runs (:func:`scaling.validate.score_cell`). An exponent check fits ours in
Step Law's form, with a 1,000-resample bootstrap, to the N split's training cells.

Targets, on every table: our median held-out loss excess (nearest run) <= 0.07% (Step Law's
headline figure) and <= the refitted pipeline's; our 95% exponent intervals contain the
pipeline's point estimates. A table whose held-out cells cannot be scored is "not measured".

Run: ``python benchmarks/scaling_real.py``; writes ``benchmarks/results/scaling_real.json`` and
``benchmarks/results/scaling_real.png`` and prints a table per (table, split).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import fmt, new_figure
from scaling import PUBLISHED_LAWS, ScalingError, fit_runs, read_csv
from scaling.runs import Run, cells
from scaling.validate import check_split, split

if TYPE_CHECKING:
    from matplotlib.figure import Figure

HERE = Path(__file__).resolve().parent
TABLES = HERE / "data" / "real_sweeps"
RESULTS = HERE / "results"
TARGET_PCT = 0.07  # Step Law's headline loss excess over the exhaustive optimum
NEAR_BEST = 1.0025  # the pipeline keeps runs within 0.25% of their cell's best
COLOURS = {"ours": "tab:red", "pipeline": "tab:blue", "steplaw": "tab:green", "deepseek": "tab:purple"}
SPLIT_KEYS = ("split", "held_out", "why", "cells", "median_excess_nearest", "median_excess_interpolated")
Predictor = Callable[[float, float], tuple[float, float]]
Refit = Callable[[list[Run]], tuple[Predictor, dict[str, Any]]]


def batch_fallback(runs: list[Run]) -> str | None:
    """None for a full lr x batch grid (every cell sweeps the batch), else Step Law's batch law."""
    return None if all(len({r.batch_size for r in g}) >= 3 for g in cells(runs).values()) else "steplaw"


def pipeline(train: list[Run]) -> tuple[Predictor, dict[str, float]]:
    """Step Law's pipeline refitted: near-best runs of every cell, OLS in natural-log space."""
    lr_rows, b_rows = [], []
    for (n, d), group in cells(train).items():
        finite = [r for r in group if math.isfinite(r.loss)]
        best = min((r.loss for r in finite), default=math.inf)
        for r in (r for r in finite if r.loss <= best * NEAR_BEST):
            lr_rows.append((1.0, math.log(n), math.log(d), math.log(r.learning_rate)))
            b_rows.append((1.0, math.log(d), math.log(r.batch_size)))
    lr_a, b_a = np.array(lr_rows), np.array(b_rows)
    a, alpha, beta = np.linalg.lstsq(lr_a[:, :3], lr_a[:, 3], rcond=None)[0]
    b, gamma = np.linalg.lstsq(b_a[:, :2], b_a[:, 2], rcond=None)[0]

    def predict(n_params: float, tokens: float) -> tuple[float, float]:
        return (math.exp(a + alpha * math.log(n_params) + beta * math.log(tokens)),
                math.exp(b + gamma * math.log(tokens)))

    return predict, {"alpha": float(alpha), "beta": float(beta), "gamma": float(gamma)}


def methods(fb: str | None) -> dict[str, Refit]:
    def ours(train: list[Run]) -> tuple[Predictor, dict[str, Any]]:
        fit = fit_runs(train, bootstrap=0, validate=False, batch_fallback=fb)
        choice = fit.method["estimator_choice"]
        return fit.law.predict, {"form": fit.form, "chosen": choice["chosen"], "scores": choice.get("scores", {})}

    def published(name: str) -> Refit:
        return lambda _: (PUBLISHED_LAWS[name].predict, {})

    return {"ours": ours, "pipeline": pipeline, "steplaw": published("steplaw"), "deepseek": published("deepseek")}


def median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def summarize(check: dict[str, Any]) -> dict[str, Any]:
    """One method on one split: medians over the scored held-out cells, and the cells."""
    info = {k: v for k, v in check.items() if k not in SPLIT_KEYS}
    if not check["cells"]:
        return {"why": check.get("why"), "info": info, "cells": []}
    scored = [{**{k: c[k] for k in ("n_params", "tokens", "learning_rate", "batch_size", "best_run",
                                    "lr_log2_error", "batch_log2_error")},
               "excess_nearest_pct": 100 * c["excess_nearest"], "excess_interpolated_pct": 100 * c["excess_interpolated"]}
              for c in check["cells"]]
    return {
        "median_excess_nearest_pct": 100 * check["median_excess_nearest"],
        "median_excess_interpolated_pct": 100 * check["median_excess_interpolated"],
        "median_abs_lr_log2_error": median([abs(c["lr_log2_error"]) for c in scored]),
        "median_abs_batch_log2_error": median([abs(c["batch_log2_error"]) for c in scored
                                               if c["batch_log2_error"] is not None]),
        "info": info,
        "cells": scored,
    }


def exponents(runs: list[Run], fb: str | None) -> dict[str, Any]:
    """Our 95% intervals (Step Law's form, N split's training cells) against the pipeline's point estimates."""
    train, _ = split(runs, "N")
    _, point = pipeline(train)
    try:
        fit = fit_runs(train, form="steplaw", bootstrap=1000, validate=False, batch_fallback=fb)
    except ScalingError as exc:
        return {"pipeline": point, "why": str(exc).splitlines()[0]}
    lr, batch = fit.learning_rate, fit.batch_size
    ours = {"alpha": (lr.law.exponents["N"], lr.intervals["N"]), "beta": (lr.law.exponents["D"], lr.intervals["D"])}
    if batch.borrowed_from is None:
        ours["gamma"] = (batch.law.exponents["D"], batch.intervals["D"])
    return {
        "pipeline": point,
        "ours": {k: v for k, (v, _) in ours.items()},
        "ours_95": {k: list(iv) for k, (_, iv) in ours.items()},
        "contained": {k: bool(iv[0] <= point[k] <= iv[1]) for k, (_, iv) in ours.items()},
        "chosen": fit.method["estimator_choice"]["chosen"],
        "batch_law": "fitted" if batch.borrowed_from is None else f"borrowed from {batch.borrowed_from}",
    }


def run_table(path: Path) -> dict[str, Any]:
    runs = read_csv(path)
    fb = batch_fallback(runs)
    out: dict[str, Any] = {"rows": len(runs), "cells": len(cells(runs)), "batch_fallback": fb, "splits": {}}
    for by in ("N", "D"):
        checks = {name: check_split(runs, by, refit) for name, refit in methods(fb).items()}
        if any(c is None for c in checks.values()):
            continue
        out["splits"][by] = {"held_out": checks["ours"]["held_out"],
                             "methods": {name: summarize(c) for name, c in checks.items()}}
    out["exponents"] = exponents(runs, fb)
    return out


def split_targets(s: dict[str, Any]) -> dict[str, Any]:
    ours, pipe = s["methods"]["ours"], s["methods"]["pipeline"]
    if not ours["cells"] or not pipe["cells"]:
        return {"status": "not measured", "why": ours.get("why") or pipe.get("why")}
    o, p = ours["median_excess_nearest_pct"], pipe["median_excess_nearest_pct"]
    oi, pi = ours["median_excess_interpolated_pct"], pipe["median_excess_interpolated_pct"]
    return {"ours_nearest_pct": o, "pipeline_nearest_pct": p, "ratio_nearest": o / p if p > 0 else None,
            "ours_interpolated_pct": oi, "pipeline_interpolated_pct": pi, "ratio_interpolated": oi / pi if pi > 0 else None,
            "within_0.07pct": o <= TARGET_PCT, "no_worse_than_pipeline": o <= p}


def verdict(flags: list[bool]) -> str:
    return "not measured" if not flags else ("met" if all(flags) else "missed")


def targets(table: dict[str, Any]) -> dict[str, Any]:
    """Per split, and for the table: met only where every measured split meets it."""
    per_split = {by: split_targets(s) for by, s in table["splits"].items()}
    measured = [t for t in per_split.values() if "status" not in t]
    contained = table["exponents"].get("contained")
    return {
        "splits": per_split,
        "excess_within_0.07pct": verdict([t["within_0.07pct"] for t in measured]),
        "excess_no_worse_than_pipeline": verdict([t["no_worse_than_pipeline"] for t in measured]),
        "exponents_contain_pipeline": verdict(list(contained.values()) if contained else []),
    }


def print_table(name: str, table: dict[str, Any], target: dict[str, Any]) -> None:
    for by, s in table["splits"].items():
        print(f"\n{name}, split {by}: held out {s['held_out']}")
        print(f"  {'method':9s} {'nearest%':>9s} {'interp%':>8s} {'|lr|log2':>8s} {'|B|log2':>8s}  chosen / form")
        for m, r in s["methods"].items():
            if not r["cells"]:
                print(f"  {m:9s} not scored: {r['why']}")
                continue
            note = f"  {r['info']['chosen']} / {r['info']['form']}" if m == "ours" else ""
            print(f"  {m:9s} {r['median_excess_nearest_pct']:9.3f} {r['median_excess_interpolated_pct']:8.3f} "
                  f"{r['median_abs_lr_log2_error']:8.2f} {fmt(r['median_abs_batch_log2_error'], '8.2f'):>8s}{note}")
    e = table["exponents"]
    print("  exponents (pipeline point vs our 95%): " + (e.get("why") or ", ".join(
        f"{k} {e['pipeline'][k]:+.3f} in [{lo:+.3f}, {hi:+.3f}]: {e['contained'][k]}"
        for k, (lo, hi) in e["ours_95"].items())))
    for by, t in target["splits"].items():
        print(f"  target {by}: " + (f"not measured ({t['why']})" if "status" in t else
              f"ours {t['ours_nearest_pct']:.3f}% vs 0.07%: {'met' if t['within_0.07pct'] else 'missed'}; "
              f"vs pipeline {t['pipeline_nearest_pct']:.3f}% (ratio {fmt(t['ratio_nearest'], '.2f')}; interpolated "
              f"{fmt(t['ratio_interpolated'], '.2f')}): {'met' if t['no_worse_than_pipeline'] else 'missed'}"))
    print(f"  {name} summary: <=0.07% {target['excess_within_0.07pct']}; "
          f"<=pipeline {target['excess_no_worse_than_pipeline']}; exponents {target['exponents_contain_pipeline']}")


def plot_cell(ax: Any, name: str, cell: dict[str, Any], picks: dict[str, float]) -> None:
    runs = [r for r in read_csv(TABLES / f"{name}.csv")
            if (r.n_params, r.tokens) == (cell["n_params"], cell["tokens"]) and math.isfinite(r.loss)]
    best_b = cell["best_run"]["batch_size"]
    for b in sorted({r.batch_size for r in runs}):
        pts = sorted((math.log2(r.learning_rate), r.loss) for r in runs if r.batch_size == b)
        at_best = b == best_b
        ax.plot(*zip(*pts), marker="o", ms=3.5 if at_best else 2.5, lw=1.5 if at_best else 0.7,
                color="black", alpha=1.0 if at_best else 0.25, label=None if not at_best else "runs at best batch")
    for method, lr in picks.items():
        ax.axvline(math.log2(lr), color=COLOURS[method], lw=1.3, label=method)
    ax.set_title(f"{name} N={cell['n_params']:.3g} D={cell['tokens']:.3g}", fontsize=9)
    ax.set_xlabel("log2 learning rate", fontsize=8)
    ax.set_ylabel("loss", fontsize=8)
    ax.tick_params(labelsize=7)


def figure(results: dict[str, Any]) -> Figure:
    """Per table, each held-out cell of the N split: loss against lr and each method's pick,
    from the results JSON's ``tables`` and the tables' own runs."""
    tables = results["tables"]
    rows = [(name, ms) for name, t in tables.items()
            if (ms := t["splits"].get("N", {}).get("methods")) and ms["ours"]["cells"]]
    cols = max(len(m["ours"]["cells"]) for _, m in rows)
    fig = new_figure(3.5 * cols, 2.9 * len(rows) + 0.6)
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for (name, ms), row in zip(rows, axes, strict=True):
        for i, ax in enumerate(row):
            if i >= len(ms["ours"]["cells"]):
                ax.axis("off")
                continue
            picks = {m: r["cells"][i]["learning_rate"] for m, r in ms.items() if r["cells"]}
            plot_cell(ax, name, ms["ours"]["cells"][i], picks)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=8)
    fig.suptitle("largest N held out: loss vs lr at the best run's batch (faint: other batches); "
                 "vertical lines: each method's pick", fontsize=10)
    return fig


def plain(value: Any) -> Any:
    """JSON-ready: numpy scalars as Python ones, tuples as lists."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def main() -> None:
    start = time.time()
    tables = {p.stem: run_table(p) for p in sorted(TABLES.glob("*.csv"))}
    goals = {name: targets(t) for name, t in tables.items()}
    flat = [{"table": name, "split": by, "method": m, "n_params": c["n_params"], "tokens": c["tokens"],
             "nearest": c["excess_nearest_pct"], "interpolated": c["excess_interpolated_pct"]}
            for name, t in tables.items() for by, s in t["splits"].items()
            for m, r in s["methods"].items() for c in r["cells"]]
    for name, t in tables.items():
        print_table(name, t, goals[name])
    RESULTS.mkdir(exist_ok=True)
    figure(plain({"tables": tables})).savefig(RESULTS / "scaling_real.png", dpi=110)
    elapsed = time.time() - start
    result = {"benchmark": "scaling_real", "tables": tables, "loss_excess_pct": flat, "targets": goals, "elapsed_s": elapsed}
    with (RESULTS / "scaling_real.json").open("w") as f:
        json.dump(plain(result), f, indent=1)
    print(f"\nelapsed {elapsed:.1f} s; results in {RESULTS / 'scaling_real.json'} and scaling_real.png")


if __name__ == "__main__":
    main()
