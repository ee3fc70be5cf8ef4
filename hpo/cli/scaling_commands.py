"""``hpo recommend`` and ``hpo scaling fit|list|show``: the learning rate and batch size for a
target model, from published laws or from laws fitted to the user's own sweeps."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from hpo.cli.errors import CLIError
from hpo.cli.options import StorageOption, console

if TYPE_CHECKING:
    from scaling.report import FitReport

scaling_app = typer.Typer(help="Fit hyperparameter scaling laws to sweeps or CSV files.", no_args_is_help=True)


def _interval(pair: Any, fmt: str) -> str:
    return "-" if pair is None else f"{pair[0]:{fmt}} .. {pair[1]:{fmt}}"


def recommend_command(
    params: Annotated[float, typer.Option("--params", help="Target model's non-embedding parameters N, e.g. 7e9.")],
    tokens: Annotated[float, typer.Option("--tokens", help="Training tokens D, e.g. 2e12.")],
    law: Annotated[str | None, typer.Option(help="steplaw, deepseek or fit:NAME (default: every law side by side).")] = None,
    seq_len: Annotated[int, typer.Option("--seq-len", help="Sequence length, for the batch size in sequences.")] = 4096,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per law.")] = False,
    storage: StorageOption = None,
) -> None:
    """The learning rate and batch size for N parameters and D tokens."""
    from scaling.recommend import recommend

    recommendations = recommend(params, tokens, law=law, seq_len=seq_len, storage=storage)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in recommendations], indent=2))
        return
    table = Table(title=f"N = {params:.3g} parameters, D = {tokens:.3g} tokens, sequences of {seq_len}", show_edge=False)
    for column in ("law", "learning rate", "interval", "lr within 0.1%", "batch (tokens)", "batch (sequences)",
                   "interval (sequences)"):
        table.add_column(column, justify="left" if column == "law" else "right")
    for r in recommendations:
        table.add_row(
            r.law,
            f"{r.learning_rate:.3g}",
            _interval(r.learning_rate_interval, ".3g"),
            _interval(r.learning_rate_tolerance, ".3g"),
            f"{r.batch_size_tokens:,}",
            f"{r.batch_size_sequences:,}",
            _interval(r.batch_size_sequences_interval, ","),
        )
    console.print(table)
    for r in recommendations:
        for warning in r.warnings:
            console.print(f"[yellow]{r.law}[/yellow]: {warning}")
    console.print("intervals: 90% bootstrap of a fitted law; within 0.1%: the fitted cells' plateau widths; "
                  "published laws state neither")


@scaling_app.command("fit")
def fit_command(
    sweep: Annotated[str | None, typer.Option(help="Fit the trials of every study in this sweep.")] = None,
    from_csv: Annotated[Path | None, typer.Option("--from-csv", help="Fit a CSV: n_params, n_tokens, lr, batch_size (tokens), loss.")] = None,
    name: Annotated[str | None, typer.Option(help="Name to store the fit under (default: the sweep's or the file's name).")] = None,
    form: Annotated[str, typer.Option(help="auto, steplaw, nd or compute.")] = "auto",
    estimator: Annotated[str, typer.Option(help="Each cell's optimum: auto, quadratic, plateau or asymmetric.")] = "auto",
    fit_to: Annotated[str, typer.Option("--fit-to", help="Fit the laws to each cell's optimum or its near-best runs: auto, optima or runs.")] = "auto",
    columns: Annotated[str | None, typer.Option(
        help="Map a table's own columns: 'n_params=Na,n_tokens=D,batch_size=bs*2048,loss=smooth loss' (COLUMN, COLUMN*NUMBER or NUMBER).")] = None,
    target_params: Annotated[float | None, typer.Option("--target-params", help="Mark a target N on the plot.")] = None,
    target_tokens: Annotated[float | None, typer.Option("--target-tokens", help="Mark a target D on the plot.")] = None,
    plot: Annotated[Path | None, typer.Option(help="PNG to write (default: NAME.png).")] = None,
    bootstrap: Annotated[int, typer.Option(min=10, help="Bootstrap resamples.")] = 1000,
    batch_fallback: Annotated[str | None, typer.Option(
        "--batch-fallback", help="A published law (steplaw, deepseek) to take the batch size from when the sweep cannot fit one.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the fit's full report as JSON.")] = False,
    storage: StorageOption = None,
) -> None:
    """Fit eta_opt and B_opt laws; print them with intervals and held-out error; store the fit; plot it."""
    from scaling.api import fit
    from scaling.plot import plot_fit

    if (sweep is None) == (from_csv is None):
        raise CLIError("give exactly one of --sweep NAME and --from-csv FILE")
    if (target_params is None) != (target_tokens is None):
        raise CLIError("--target-params and --target-tokens go together")
    from scaling.runs import parse_columns

    if columns is not None and from_csv is None:
        raise CLIError("--columns maps a CSV's columns: give it with --from-csv")
    result = fit(csv=from_csv, sweep=sweep, storage=storage, form=form, estimator=estimator, fit_to=fit_to,
                 columns=None if columns is None else parse_columns(columns), name=name, bootstrap=bootstrap,
                 batch_fallback=batch_fallback)
    report = result.report()
    label = result.name
    target = (target_params, target_tokens) if target_params is not None else None
    picture = plot_fit(result, plot or Path(f"{label}.png"), target=target)  # type: ignore[arg-type]
    if as_json:
        typer.echo(json.dumps(report.to_dict(bootstrap=False), indent=2, default=str))
        return
    _print_fit(report)
    console.print(f"stored as fit {label!r} (hpo recommend --law fit:{label}); plot: {picture}")


def _print_fit(report: FitReport) -> None:
    console.print(f"[bold]{report.name}[/bold]: {report.form} form ({report.method['form']})")
    if report.forms_compared:
        scores = ", ".join(f"{k} {'-' if v is None else f'{100 * v:.1f}%'}" for k, v in report.forms_compared.items())
        console.print(f"forms compared by held-out error (lr + batch): {scores}")
    table = Table(show_edge=False)
    for column in ("target", "law", "95% intervals", "cells used", "excluded", "held-out error"):
        table.add_column(column)
    for target in ("learning_rate", "batch_size"):
        t = report.target(target)
        intervals = "; ".join(f"{k} {v[0]:.3g}..{v[1]:.3g}" for k, v in t.intervals.items())
        error = "-" if t.held_out_error is None else f"{100 * t.held_out_error:.1f}% ({t.validation['held_out']})"
        table.add_row(target, t.formula + t.origin_note, intervals, str(len(t.points)), str(len(t.excluded)), error)
    console.print(table)
    for target in ("learning_rate", "batch_size"):
        for ex in report.target(target).excluded:
            console.print(f"  excluded from {target}: N={ex['n_params']:.3g}, D={ex['tokens']:.3g}: {ex['why']}")
    ranges = ", ".join(f"{k} {v[0]:.3g}..{v[1]:.3g}" for k, v in report.fitted_range.items())
    console.print(f"fitted range: {ranges}; {report.method['loss']}; {report.method['bootstrap']}")
    _print_choice(report)
    _print_held_out(report.held_out)


def _print_choice(report: FitReport) -> None:
    """How the cells became the laws: the estimator and fit target chosen, and each cell's reading."""
    choice = report.method.get("estimator_choice")
    if choice:
        scores = ", ".join(f"{k} {100 * v:.3f}%" for k, v in choice.get("scores", {}).items())
        console.print(f"cell optima: {choice['chosen']} ({choice['by']}{': ' + scores if scores else ''})")
    if "fit_to" in report.method:
        console.print(f"laws fitted to: {report.method['fit_to']}")
    tolerance = report.tolerance
    if tolerance:
        parts = ", ".join(f"{k} x{2 ** lo:.2g}..x{2 ** hi:.2g}" for k, (lo, hi) in tolerance.items())
        console.print(f"within 0.1% of the best loss (median over the cells, around the optimum): {parts}")
    table = Table(title="cells", show_edge=False)
    for column in ("N", "D", "estimator", "lr", "lr within 0.1%", "batch", "flags / note"):
        table.add_column(column)
    for c in report.cells:
        lr_range = c.get("tolerance", {}).get("learning_rate")
        flags = "; ".join(f"{k}: {v}" for k, v in c["flags"].items())
        table.add_row(f"{c['n_params']:.3g}", f"{c['tokens']:.3g}", c.get("estimator", "quadratic"), f"{c['learning_rate']:.3g}",
                      _interval(lr_range, ".3g"), f"{c['batch_size']:.3g}", flags or c.get("note", ""))
    console.print(table)


def _print_held_out(checks: list[dict[str, Any]]) -> None:
    """The fit redone without the largest scales: each held-out cell's recommendation against its best run."""
    for check in checks:
        if not check["cells"]:
            console.print(f"held out {check['held_out']}: not checked ({check.get('why', '')})")
            continue
        table = Table(title=f"held out {check['held_out']}: refitted ({check['chosen']}, {check['form']} form) without them",
                      show_edge=False)
        for column in ("N", "D", "lr log2 (pred / best run)", "batch log2 (pred / best run)", "excess: nearest run",
                       "interpolated"):
            table.add_column(column, justify="right")
        for c in check["cells"]:
            best = c["best_run"]
            batch = "-" if c["batch_log2_error"] is None else (
                f"{math.log2(c['batch_size']):.2f} / {math.log2(best['batch_size']):.2f}")
            table.add_row(f"{c['n_params']:.3g}", f"{c['tokens']:.3g}",
                          f"{math.log2(c['learning_rate']):.2f} / {math.log2(best['learning_rate']):.2f}", batch,
                          f"{100 * c['excess_nearest']:.3f}%", f"{100 * c['excess_interpolated']:.3f}%")
        console.print(table)
        console.print(f"  median loss excess: nearest run {100 * check['median_excess_nearest']:.3f}%, "
                      f"interpolated {100 * check['median_excess_interpolated']:.3f}%")


@scaling_app.command("list")
def list_command(storage: StorageOption = None) -> None:
    """The stored fits."""
    from db.store import Store

    store = Store(storage)
    try:
        fits = store.list_fits()
    finally:
        store.close()
    table = Table(show_edge=False)
    for column in ("name", "form", "source", "learning rate law", "batch size law", "created"):
        table.add_column(column)
    from scaling.report import FitReport

    for f in fits:
        report = FitReport.from_dict(f.report)
        table.add_row(f.name, f.form, f.source, report.learning_rate.formula, report.batch_size.formula,
                      f.created_at.strftime("%Y-%m-%d %H:%M"))
    console.print(table)


@scaling_app.command("show")
def show_command(name: str, storage: StorageOption = None) -> None:
    """A stored fit's report."""
    from db.store import Store

    store = Store(storage)
    try:
        record = store.get_fit(name)
    finally:
        store.close()
    from scaling.report import FitReport

    _print_fit(FitReport.from_dict(record.report))
