"""``hpo mup coord-check``: the muP coordinate check of a proxy or of the user's own model
(``--model module:build``), as a plot and a table."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hpo.cli.errors import CLIError
from hpo.cli.options import console

mup_app = typer.Typer(help="muP proxies: the coordinate check.", no_args_is_help=True)

def _widths(text: str) -> list[int]:
    try:
        widths = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise CLIError(f"--widths must be comma-separated integers, got {text!r}") from None
    if len(widths) < 2 or any(w < 1 for w in widths):
        raise CLIError(f"--widths needs at least two positive widths, got {text!r}")
    return sorted(set(widths))


@mup_app.command("coord-check")
def coord_check_command(
    model: Annotated[
        str, typer.Option(help="Proxy model (gpt, llama or mlp), or module:build, build(width) -> your nn.Module.")
    ] = "gpt",
    widths: Annotated[str, typer.Option(help="Comma-separated widths.")] = "64,128,256,512",
    param: Annotated[str, typer.Option(help="Parameterization of a proxy: sp, mup or depth-mup.")] = "mup",
    lr: Annotated[float, typer.Option(help="AdamW learning rate (high enough to show SP's growth).")] = 1e-2,
    steps: Annotated[int, typer.Option(min=1, help="Training steps (step 0 is the init).")] = 4,
    depth: Annotated[int, typer.Option(min=1, help="Blocks of a proxy.")] = 2,
    base_width: Annotated[
        int | None, typer.Option(min=1, help="Your model: set its muP base shapes relative to this width.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the init and the batches.")] = 0,
    out: Annotated[Path, typer.Option(help="Folder for the PNG and the CSV.")] = Path("coord_check"),
) -> None:
    """Train a few steps at each width; write activation RMS by layer, width and step (CSV), a
    plot (PNG), and print the last step's table with each layer's growth with width. Your own
    model: ``--model module:build``, where the module defines ``build(width)`` (SP, or muP
    with base shapes set; ``--base-width`` sets them) and ``batch(size, generator) -> (x, y)``."""
    from workers.proxies.coord_check import FLAT_SLOPE, coord_check, coord_check_user
    from workers.proxies.parameterization import ProxyConfigError

    try:
        if ":" in model:
            check = coord_check_user(model, _widths(widths), base_width=base_width, lr=lr, steps=steps, seed=seed)
        elif base_width is not None:
            raise CLIError("--base-width is for your own model (--model module:build); a proxy has base_width 64")
        else:
            check = coord_check(model, _widths(widths), param=param, lr=lr, steps=steps, depth=depth, seed=seed)
    except ProxyConfigError as exc:
        raise CLIError(str(exc)) from None
    model, param = check.model, check.param
    out.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^\w-]", "_", model)  # a.b:build -> a_b_build: no dot for with_suffix to take
    stem = out / f"coord_check_{name}_{param}"
    check.write_csv(stem.with_suffix(".csv"))
    check.plot(stem.with_suffix(".png"))
    last = check.steps - 1
    table = Table(title=f"activation RMS at step {last} ({model}, {param}, lr {lr:g})", show_edge=False)
    table.add_column("layer")
    for w in check.widths:
        table.add_column(f"width {w}", justify="right")
    table.add_column("slope", justify="right")
    for layer in check.layers:
        cells = [f"{check.rms[w, last, layer]:.3g}" for w in check.widths]
        table.add_row(layer, *cells, f"{check.slope(layer, last):+.2f}")
    console.print(table)
    worst = max(check.layers, key=lambda layer: abs(check.slope(layer, last)))
    slope = check.slope(worst, last)
    verdict = "flat in width" if abs(slope) < FLAT_SLOPE else "changes with width"
    console.print(
        f"{verdict}: largest slope d log RMS / d log width = {slope:+.2f} ({worst}); "
        f"wrote {stem.with_suffix('.png')} and {stem.with_suffix('.csv')}"
    )
