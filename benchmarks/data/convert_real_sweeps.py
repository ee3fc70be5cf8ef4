"""Convert published LR / batch-size sweep tables into the project's scaling-CSV fixtures.

Reads the read-only copies under ``<repo>/../shared/reference/data`` (``--source DIR``) and
writes ``benchmarks/data/real_sweeps/*.csv`` (``--out DIR``). Every output starts with the
columns ``n_params,n_tokens,lr,batch_size,loss`` (``scaling.runs.read_csv``'s format: N is
non-embedding parameters, D and the batch size are in tokens), followed by a few provenance
columns. Rows are sorted by (n_params, n_tokens, batch_size, lr); integers are written as
integers, floats with ``repr()`` so they round-trip exactly; line endings are ``\\n``. The
output is a pure function of the input files, so re-running it reproduces the fixtures byte
for byte.

Tables and rules:

steplaw_moe.csv  <- steplaw_moe/moe_lr_bs_loss.csv (Step Law, Li et al. 2025, MoE grid)
    n_params = Na (ACTIVE non-embedding params: total N is ~2.15e9 for every config, so the
    size axis is sparsity), n_tokens = D, lr = lr, batch_size = bs * seq_len (bs is in
    sequences of 2048), loss = "smooth loss" (Gaussian-smoothed final training loss).
    Extra: config (moe_name), batch_sequences (bs), final_loss (raw last logged loss).
    Dropped: rows whose smooth loss is missing or not finite (none in the published table).

misfitting.csv  <- misfitting/scaling_results_last_ckpt_only_flagged.csv ((Mis)Fitting, Li et al. 2025)
    Dropped: rows with flag_dup_conflict True (17M-model rows whose losses are swapped between
    lr labels), then exact duplicate rows. n_params = N_no_emb, n_tokens = D, lr = peak_lr,
    batch_size = tokens_per_step (1,048,576 = 512 x 2048 for every run), loss = C4 Eval Loss
    at the final checkpoint. Extra: model.

misfitting_old.csv  <- misfitting/misfitting_old_lr_sweep_tidy.csv (the paper's older sweep)
    Dropped: rows with no C4 loss. n_params = N_non_emb, n_tokens = total_steps *
    tokens_per_step (exact integer; the table's D column is rounded for some rows), lr = lr,
    batch_size = tokens_per_step, loss = C4 Eval Loss. Extra: model.

marin_adamw.csv  <- marin_fantastic_optimizers/adamw_1d_sweeps.csv (Wen et al. 2025, AdamW)
    Kept: role == baseline, or ablated_param in {learning_rate, train_batch_size}; the other
    one-at-a-time ablations (betas, eps, warmup, ...) change something other than lr / batch.
    Dropped: rows with a null loss (one missing run). Diverged runs (loss ~7+) are kept.
    n_params = N_nonembed_expected, n_tokens = D_tokens, lr = learning_rate, batch_size =
    train_batch_size * 4096 (sequences of 4096 tokens), loss = loss_paloma_c4_en.
    Extra: size, role, ablated_param.

Stdlib only (csv, math). Usage: python benchmarks/data/convert_real_sweeps.py [--source DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_SOURCE = REPO.parent / "shared" / "reference" / "data"
DEFAULT_OUT = HERE / "real_sweeps"
COLUMNS = ["n_params", "n_tokens", "lr", "batch_size", "loss"]
MARIN_SEQ_LEN = 4096
MARIN_SWEPT = ("learning_rate", "train_batch_size")

Row = dict[str, object]


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _int(text: str) -> int:
    """An integer quantity given as '123' or '123.0'; anything fractional is an error."""
    value = float(text)
    if not value.is_integer():
        raise ValueError(f"{text!r} is not an integer")
    return int(value)


def _loss(text: str | None) -> float | None:
    """The loss as a float, or None when it is missing or not finite."""
    text = (text or "").strip()
    if not text:
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def _fmt(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def steplaw_moe(source: Path) -> tuple[list[Row], int]:
    rows: list[Row] = []
    dropped = 0
    for r in _read(source / "steplaw_moe" / "moe_lr_bs_loss.csv"):
        smooth = _loss(r["smooth loss"])
        if smooth is None:
            dropped += 1
            continue
        bs = _int(r["bs"])
        rows.append({
            "n_params": _int(r["Na"]), "n_tokens": _int(r["D"]), "lr": float(r["lr"]),
            "batch_size": bs * _int(r["seq_len"]), "loss": smooth,
            "config": r["moe_name"], "batch_sequences": bs, "final_loss": float(r["loss"]),
        })
    return rows, dropped


def misfitting(source: Path) -> tuple[list[Row], int]:
    rows: list[Row] = []
    seen: set[tuple[str, ...]] = set()
    dropped = 0
    for r in _read(source / "misfitting" / "scaling_results_last_ckpt_only_flagged.csv"):
        key = tuple(r.values())
        if r["flag_dup_conflict"].strip() == "True" or key in seen:
            dropped += 1
            continue
        seen.add(key)
        rows.append({
            "n_params": _int(r["N_no_emb"]), "n_tokens": _int(r["D"]), "lr": float(r["peak_lr"]),
            "batch_size": _int(r["tokens_per_step"]), "loss": float(r["C4 Eval Loss"]),
            "model": r["model"],
        })
    return rows, dropped


def misfitting_old(source: Path) -> tuple[list[Row], int]:
    rows: list[Row] = []
    dropped = 0
    for r in _read(source / "misfitting" / "misfitting_old_lr_sweep_tidy.csv"):
        loss = _loss(r["C4 Eval Loss"])
        if loss is None:
            dropped += 1
            continue
        tokens_per_step = _int(r["tokens_per_step"])
        rows.append({
            "n_params": _int(r["N_non_emb"]), "n_tokens": _int(r["total_steps"]) * tokens_per_step,
            "lr": float(r["lr"]), "batch_size": tokens_per_step, "loss": loss, "model": r["model"],
        })
    return rows, dropped


def marin_adamw(source: Path) -> tuple[list[Row], int]:
    rows: list[Row] = []
    dropped = 0
    for r in _read(source / "marin_fantastic_optimizers" / "adamw_1d_sweeps.csv"):
        if not (r["role"] == "baseline" or r["ablated_param"] in MARIN_SWEPT):
            continue
        loss = _loss(r["loss_paloma_c4_en"])
        if loss is None:
            dropped += 1
            continue
        rows.append({
            "n_params": _int(r["N_nonembed_expected"]), "n_tokens": _int(r["D_tokens"]),
            "lr": float(r["learning_rate"]), "batch_size": _int(r["train_batch_size"]) * MARIN_SEQ_LEN,
            "loss": loss, "size": r["size"], "role": r["role"], "ablated_param": r["ablated_param"],
        })
    return rows, dropped


TABLES = {
    "steplaw_moe.csv": steplaw_moe,
    "misfitting.csv": misfitting,
    "misfitting_old.csv": misfitting_old,
    "marin_adamw.csv": marin_adamw,
}


def write(path: Path, rows: list[Row]) -> None:
    """Rows sorted by (N, D, batch, lr), then by the remaining columns' text as a tiebreak."""
    header = list(rows[0])
    assert header[:5] == COLUMNS, header
    ordered = sorted(rows, key=lambda r: (
        r["n_params"], r["n_tokens"], r["batch_size"], r["lr"], [_fmt(r[c]) for c in header[5:]]))
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        for r in ordered:
            writer.writerow([_fmt(r[c]) for c in header])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="reference data folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the CSVs go")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, convert in TABLES.items():
        rows, dropped = convert(args.source)
        write(args.out / name, rows)
        n_cells = len({(r["n_params"], r["n_tokens"]) for r in rows})
        print(f"{name}: {len(rows)} rows, {n_cells} (N, D) cells, {dropped} dropped")


if __name__ == "__main__":
    main()
