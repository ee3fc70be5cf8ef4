"""``hpo demo``: the product's whole job in one command, on the embedded default.

1. A sweep: one study per proxy width (``--widths``), each over the built-in
   ``mup-gpt-scaling`` space with the width fixed, all in one sweep, run by Ray workers on a
   local Ray (or ``--address``) asking the study's algorithm (DEHB by default) for trials at
   rising token budgets. The rungs of that budget are the token counts D of the scaling fit.
   The demo searches the learning rate, the hyperparameter muP transfers, at a fixed batch
   (``--batch-size``): at the token budgets two CPU cores afford, loss is nearly flat in the
   batch size, within the noise of single runs (``benchmarks/scaling_e2e.py``), so a batch
   optimum cannot be resolved in minutes; ``--sweep-batch`` searches it too.
2. Each width's optimal learning rate (:func:`scaling.optima_of`) and the muTransfer check:
   how far the optimum moves from the narrowest to the widest proxy (the verdict's rule is
   :mod:`scaling.transfer`'s).
3. A scaling-law fit over the sweep (:func:`scaling.fit`), stored in the study store, with
   its leave-largest-scale-out error. When the sweep cannot support a batch law (the batch
   was fixed, or its optima are flagged) the fit takes Step Law's, and says so.
4. The recommendation for a larger target from the fit, beside Step Law's and DeepSeek's.
5. The plots and tables in ``--output``, and the command that opens the dashboard on the
   sweep.

Every step leaves its artifact (``summary.json`` records them), which is what the test of
``--quick`` checks.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from db.store import open_store
from hpo.cli.demo_plots import write_plots
from hpo.cli.errors import CLIError
from hpo.cli.options import StorageOption, console
from hpo.study import Study, create_study, delete_study, list_studies
from scaling import PUBLISHED_LAWS, ScalingError, ScalingFit, optima_of, runs_from_sweep
from scaling.optimum import CellOptimum
from scaling.recommend import Recommendation, recommend_with
from scaling.report import TARGETS
from scaling.transfer import TOLERANCE_LOG2, check_transfer
from search_spaces import get_builtin
from search_spaces.space import Fidelity, SearchSpace

SPACE = "mup-gpt-scaling"


@dataclass(frozen=True)
class _Size:
    widths: str
    trials_per_width: int
    fidelity: tuple[float, float] | None = None  # None: the space's own


#: --quick: a smaller sweep (narrower proxies, half the tokens, two Hyperband iterations).
QUICK = _Size("16,32,64", 44, (8_192, 73_728))
#: Without --quick: three Hyperband iterations at widths 32-128.
FULL = _Size("32,64,128", 66)


def demo(
    storage: StorageOption = None,
    sweep: Annotated[str, typer.Option("--sweep", help="Name of the demo's sweep; its studies are replaced if they exist.")] = "demo",
    algorithm: Annotated[str, typer.Option(help="Search algorithm: dehb, hyperband, asha, bohb, bo, tpe, random.")] = "dehb",
    widths: Annotated[str | None, typer.Option(help="Proxy widths, comma-separated, three or more [default: 32,64,128; 16,32,64 with --quick].")] = None,
    trials_per_width: Annotated[int | None, typer.Option("--trials-per-width", min=2, help="Trials per width; a DEHB or Hyperband iteration is 22 [default: 66; 44 with --quick].")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Batch in sequences of 64 tokens, fixed unless --sweep-batch.")] = 8,
    sweep_batch: Annotated[bool, typer.Option("--sweep-batch", help="Search the batch size (2-32 sequences) too.")] = False,
    workers: Annotated[int, typer.Option(min=1, help="Ray workers.")] = 2,
    address: Annotated[str | None, typer.Option(help="A Ray cluster to join (auto, HOST:PORT or ray://HOST:10001); default: a local Ray.")] = None,
    gpus_per_trial: Annotated[float, typer.Option("--gpus-per-trial", help="GPUs per trial on a cluster that has them (bf16 on CUDA).")] = 0.0,
    target_name: Annotated[str, typer.Option("--target-name", help="What the target model is called in the output.")] = "GPT-2 small",
    target_params: Annotated[float, typer.Option("--target-params", help="Target model's non-embedding parameters N.")] = 85e6,
    target_tokens: Annotated[float, typer.Option("--target-tokens", help="Target's training tokens D.")] = 2.5e9,
    target_seq_len: Annotated[int, typer.Option("--target-seq-len", min=1, help="Target's sequence length (batch in sequences).")] = 1024,
    output: Annotated[Path, typer.Option(help="Folder for the plots and tables.")] = Path("hpo-demo"),
    seed: Annotated[int, typer.Option(help="Seed of the search algorithm.")] = 0,
    quick: Annotated[bool, typer.Option("--quick", help="A two-minute run: widths 16,32,64, 44 trials each, half the tokens (explicit --widths or --trials-per-width still win).")] = False,
) -> None:
    """Sweep muP proxies at several widths, check muTransfer, fit a scaling law and recommend a learning rate and batch size for a larger target."""
    defaults = QUICK if quick else FULL
    width_list = _widths(widths or defaults.widths)
    per_width = trials_per_width or defaults.trials_per_width
    space = get_builtin(SPACE).with_fixed({} if sweep_batch else {"batch_size": batch_size})
    if defaults.fidelity is not None:
        space = space.with_fixed({}, fidelity=Fidelity("tokens", *defaults.fidelity))
    store = open_store(storage)
    url = store.display_url
    started = time.monotonic()
    summary: dict[str, Any] = {"storage": url, "sweep": sweep, "algorithm": algorithm, "widths": width_list, "quick": quick}
    output.mkdir(parents=True, exist_ok=True)

    studies = _fresh_studies(sweep, storage, space, width_list, algorithm, seed)
    fidelity = space.fidelity
    searched = "learning rate and batch size" if sweep_batch else f"the learning rate (batch {batch_size} x 64 tokens)"
    console.print(
        f"[bold]1. Sweep[/] {sweep!r} in {url}: {algorithm} over {searched} of muP GPT proxies at "
        f"widths {', '.join(map(str, width_list))}, {per_width} trials each, budgets of "
        f"{fidelity.min:,g} to {fidelity.max:,g} tokens, {workers} Ray workers"  # type: ignore[union-attr]
    )
    summary["studies"] = _run_sweeps(studies, workers, address, per_width, gpus_per_trial)
    for study in studies:
        study.to_csv(output / f"trials-{study.name}.csv")

    runs = runs_from_sweep(sweep, storage)
    optima, _ = optima_of(runs, seed=seed)
    width_of = {s["n_params"]: s["width"] for s in summary["studies"] if s["n_params"] is not None}
    summary["mutransfer"] = _mutransfer(optima, width_of, show_batch=sweep_batch)

    fit = _fit(sweep, storage, summary, fixed_batch=not sweep_batch)
    target = (target_params, target_tokens)
    summary["target"] = {"name": target_name, "n_params": target_params, "tokens": target_tokens, "seq_len": target_seq_len}
    summary["recommendations"] = _recommend(fit, target, target_name, target_seq_len)

    summary["artifacts"] = write_plots(output, runs, optima, width_of, summary["mutransfer"], fit, target)
    dashboard = f"hpo serve --storage {url}"
    summary["dashboard"] = dashboard
    summary["wall_s"] = round(time.monotonic() - started, 1)
    (output / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    console.print(f"[bold]5. Results[/] in {output}/: {', '.join(sorted(summary['artifacts'].values()))}, summary.json")
    console.print(f"   the dashboard on this sweep: {dashboard}  then open http://127.0.0.1:8000/sweeps/{sweep}")
    console.print(f"   done in {summary['wall_s']:.0f}s")


def _widths(text: str) -> list[int]:
    try:
        values = sorted({int(w) for w in text.split(",") if w.strip()})
    except ValueError:
        raise CLIError(f"--widths must be comma-separated integers, got {text!r}") from None
    if len(values) < 3 or any(w < 8 or w % 4 for w in values):
        raise CLIError(f"--widths needs three or more widths, each a multiple of 4 and at least 8, got {text!r}")
    return values


def _fresh_studies(
    sweep: str, storage: str | None, space: SearchSpace, widths: list[int], algorithm: str, seed: int
) -> list[Study]:
    names = {s.study.name for s in list_studies(storage, sweep=sweep)} | {f"{sweep}-w{w}" for w in widths}
    existing = {s.study.name for s in list_studies(storage)}
    for name in sorted(names & existing):
        delete_study(name, storage)
    return [
        create_study(
            f"{sweep}-w{w}",
            storage,
            search_space=space.with_fixed({"width": w}),
            objective="proxy:gpt",
            algorithm=algorithm,
            algorithm_settings={"seed": seed},
            sweep=sweep,
            tags={"demo": True, "width": w},
            heartbeat_timeout=30.0,
        )
        for w in widths
    ]


def _run_sweeps(studies: list[Study], workers: int, address: str | None, trials: int, gpus: float) -> list[dict[str, Any]]:
    from db.models import TrialState
    from workers.sweep import ray_session, run_sweep

    rows = []
    with ray_session(address, cpus=workers) as resources:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        gpu_note = f", {resources['GPU']:g} GPUs" if resources.get("GPU") else ""
        console.print(f"   on {where}: {resources.get('CPU', 0):g} CPUs{gpu_note}")
        for study in studies:
            result = run_sweep(study, workers=workers, max_trials=trials, gpus_per_trial=gpus)
            done = [t for t in study.trials if t.state is TrialState.COMPLETED]
            n_params = done[0].attrs.get("n_params") if done else None
            counts = {state.value: n for state, n in result.counts.items() if n}
            best = result.best
            console.print(
                f"   {study.name}: N = {n_params:,} non-embedding parameters; " if n_params else f"   {study.name}: ",
                end="",
            )
            console.print(
                ", ".join(f"{n} {state}" for state, n in counts.items())
                + (f"; best loss {best.value:.4f} at {best.budget:,g} tokens" if best and best.value is not None else "")
                + f" ({result.wall_s:.0f}s)"
            )
            rows.append({"study": study.name, "width": study.record.tags.get("width"), "n_params": n_params,
                         "counts": counts, "best": None if best is None else best.value, "wall_s": round(result.wall_s, 1)})
    return rows


def _mutransfer(optima: list[CellOptimum], width_of: dict[float, int], *, show_batch: bool) -> dict[str, Any]:
    """Print each cell's optimum and the muTransfer verdict (:func:`scaling.transfer.check_transfer`:
    the rule and why); returns the verdict as the summary records it."""
    table = Table(show_edge=False)
    for column in ("width", "N", "tokens D", "optimal lr", f"{int(100 * 0.9)}% interval", "loss", "flags"):
        table.add_column(column)
    for o in sorted(optima, key=lambda o: (o.tokens, o.n_params)):
        interval = o.learning_rate_interval
        table.add_row(
            str(width_of.get(o.n_params, "?")), f"{o.n_params:,.0f}", f"{o.tokens:,.0f}",
            f"{o.learning_rate:.3g}" if o.lr_usable else "-",
            f"{interval[0]:.3g}..{interval[1]:.3g}" if interval and o.lr_usable else "-",
            f"{o.loss:.4f}",
            "; ".join(f"{k}: {v.split(':')[0].split(' (')[0]}" for k, v in o.flags.items() if show_batch or k != "batch_size"),
        )
    shape = "a quadratic in log lr and log batch" if show_batch else "a parabola in log lr"
    console.print(f"[bold]2. Optima[/] per width and token budget ({shape} over each cell's basin):")
    console.print(table)
    check = check_transfer(optima, width_of)
    if check is None:
        console.print("   muTransfer: fewer than two widths have a usable optimum at any budget; cannot judge (run more trials)")
        return {"tokens": None, "drift_log2": None, "stays_put": None, "optima": []}
    narrow, wide = check.cells[0], check.cells[-1]
    first, last = width_of[narrow.n_params], width_of[wide.n_params]
    console.print(
        f"   muTransfer: at D = {check.tokens:,.0f} tokens the optimal learning rate moves {check.drift_log2:+.2f} in log2 from width "
        f"{first} ({narrow.learning_rate:.3g}) to width {last} ({wide.learning_rate:.3g}): {check.verdict}"
        f" (tolerance {TOLERANCE_LOG2} over {last // first}x in width)"
    )
    return {
        "tokens": check.tokens,
        "drift_log2": check.drift_log2,
        "stays_put": check.stays_put,
        "verdict": check.verdict,
        "tolerance_log2": TOLERANCE_LOG2,
        "optima": [{"width": width_of[o.n_params], "n_params": o.n_params, "learning_rate": o.learning_rate,
                    "interval": o.learning_rate_interval, "loss": o.loss} for o in check.cells],
    }


def _fit(sweep: str, storage: str | None, summary: dict[str, Any], *, fixed_batch: bool) -> ScalingFit | None:
    from scaling import fit

    try:
        result = fit(sweep=sweep, storage=storage, name=sweep, batch_fallback="steplaw")
    except ScalingError as exc:
        console.print(f"[bold]3. Scaling fit[/]: [red]none[/]: {exc}")
        summary["fit"] = {"error": str(exc)}
        return None
    report = result.report()
    lines = []
    for key, label in (("learning_rate", "learning rate"), ("batch_size", "batch size (tokens)")):
        part = report.target(key)
        validation = part.validation
        held = (
            f"held-out error {100 * part.held_out_error:.1f}% predicting {validation['held_out']}"
            if part.held_out_error is not None else validation.get("why", "no held-out error")
        )
        if part.fitted:
            lines.append(f"   {label}: {part.formula}; {len(part.points)} cells; {held}")
        elif part.calibrated:
            lines.append(f"   {label}: {part.formula} [yellow](Step Law's exponent, coefficient calibrated to "
                         f"{len(part.points)} cells' best batches: this sweep cannot fit a batch law)[/]; {held}")
        elif fixed_batch:
            lines.append(f"   {label}: {part.formula} [yellow](Step Law's: the demo fixed the batch; --sweep-batch searches it)[/]")
        else:
            lines.append(f"   {label}: {part.formula} [yellow](Step Law's: this sweep cannot fit one)[/]; {held}")
    console.print(f"[bold]3. Scaling fit[/] {result.name!r} ({result.form} form), stored in the study store:")
    for line in lines:
        console.print(line)
    summary["fit"] = {
        "name": result.name,
        "form": result.form,
        "learning_rate": report.learning_rate.formula,
        "batch_size": report.batch_size.formula,
        "batch_source": report.batch_size.source,
        "held_out_error": {k: report.target(k).held_out_error for k in TARGETS},
        "cells_used": {k: len(report.target(k).points) for k in TARGETS},
        "fitted_range": {k: list(v) for k, v in report.fitted_range.items()},
    }
    return result


def _recommend(fit: ScalingFit | None, target: tuple[float, float], name: str, seq_len: int) -> list[dict[str, Any]]:
    # the fit under the name `hpo recommend --law` knows it by
    laws = ([replace(fit.law, name=f"fit:{fit.name}")] if fit is not None else []) + [PUBLISHED_LAWS["steplaw"], PUBLISHED_LAWS["deepseek"]]
    recs: list[Recommendation] = [recommend_with(law, *target, seq_len=seq_len) for law in laws]
    table = Table(show_edge=False)
    for column in ("law", "learning rate", f"{int(100 * 0.9)}% interval", "batch (tokens)", "batch (sequences)"):
        table.add_column(column)
    for rec in recs:
        interval = rec.learning_rate_interval
        table.add_row(rec.law, f"{rec.learning_rate:.3g}", f"{interval[0]:.3g}..{interval[1]:.3g}" if interval else "-",
                      f"{rec.batch_size_tokens:,}", f"{rec.batch_size_sequences:,} x {seq_len}")
    console.print(f"[bold]4. Recommendation[/] for {name}: N = {target[0]:.3g} non-embedding parameters, D = {target[1]:.3g} tokens")
    console.print(table)
    if fit is not None:
        console.print(
            "   the fit's learning rate is muP's base rate (base width 64, MuAdamW), to use with a muP model; "
            "Step Law's and DeepSeek's are for standard parameterization"
        )
        for warning in recs[0].warnings:
            console.print(f"   [yellow]{warning}[/]")
    return [r.to_dict() for r in recs]
