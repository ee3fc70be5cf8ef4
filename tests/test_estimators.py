"""The optimum estimators on basins shaped like real ones, the choice between them on the
sweep itself, the held-out check, and ``hpo scaling fit`` on a real released table.

Real LR basins are steep above the optimum and flat below (Step Law; the tables in
benchmarks/data/real_sweeps); the synthetic ones here have that shape with a known optimum.
"""

from __future__ import annotations

import csv
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from scaling import Run, ScalingError, find_optimum, fit_runs, read_csv
from scaling.runs import parse_columns
from scaling.surface import CellSurface
from scaling.validate import held_out, split

REAL = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "real_sweeps"


def asymmetric_cell(n: float, d: float, lr0: float, b0: float, *, two_d: bool = True, noise: float = 0.0005,
                    seed: int = 0, tilt: float = 0.3, step: float = 0.5) -> list[Run]:
    """Loss 3 (1 + a |dx|^2.5 + 0.004 dy^2) with a = 0.02 above the optimum and 0.003 below
    (dx measured along a valley whose best rate rises with the batch), optimum at (lr0, b0),
    learning rates every ``step`` octaves from 3 below to 2 above."""
    rng = np.random.default_rng(seed)
    runs = []
    for dx in np.arange(-3, 2.01, step):
        for dy in (range(-2, 3) if two_d else [0]):
            along = dx - tilt * dy
            loss = 3 * (1 + (0.02 if along > 0 else 0.003) * abs(along) ** 2.5 + 0.004 * dy * dy)
            runs.append(Run(n, d, lr0 * 2**dx, b0 * 2**dy, loss * (1 + noise * rng.standard_normal())))
    return runs


@pytest.mark.parametrize("two_d", [True, False], ids=["lr x batch", "lr only"])
def test_shape_free_estimators_recover_an_asymmetric_optimum_and_the_quadratic_is_pulled_to_the_flat_side(two_d: bool) -> None:
    """A 2-D grid of 11 x 5 runs, or one batch with learning rates every quarter octave (at half
    an octave only two runs lie on the steep side within the basin, and resampling a 5-coefficient
    curve fitted to 9 runs gives a skewed interval)."""
    lr0, b0 = 1e-3, 2.0**18
    runs = asymmetric_cell(1e8, 1e10, lr0, b0, two_d=two_d, step=0.5 if two_d else 0.25)
    found = {e: find_optimum(runs, estimator=e, bootstrap=100) for e in ("asymmetric", "plateau", "quadratic")}
    for e in ("asymmetric", "plateau"):
        o = found[e]
        lo, hi = o.learning_rate_interval
        assert lo <= lr0 <= hi, (e, lo, hi)
        assert abs(math.log2(o.learning_rate / lr0)) <= 0.3, e  # about half a grid step at most
        assert o.estimator == e and o.lr_usable
        if two_d:
            assert abs(math.log2(o.batch_size / b0)) <= 0.25, e
    assert abs(math.log2(found["asymmetric"].learning_rate / lr0)) < 0.1
    quadratic = found["quadratic"]
    lo, hi = quadratic.learning_rate_interval
    assert hi < lr0 and math.log2(quadratic.learning_rate / lr0) < -0.3  # the bias real basins show


def test_the_asymmetric_estimator_falls_back_to_the_quadratic_on_a_thin_grid_and_says_so() -> None:
    runs = [r for r in asymmetric_cell(1e8, 1e10, 1e-3, 2.0**18, two_d=False) if r.learning_rate in
            {1e-3 * 2.0**k for k in (-2, -1, 0, 1)}]
    o = find_optimum(runs, estimator="asymmetric", bootstrap=20)
    assert o.estimator == "quadratic" and "asymmetric not applicable (4 learning rates in the basin" in o.note


def test_a_plateau_across_the_whole_grid_is_flagged_flat_and_the_range_within_tolerance_comes_from_the_runs() -> None:
    flat = [Run(1e8, 1e10, 1e-3 * 2**k, 2.0**18, 3.0 * (1 + 0.0005 * (k % 2))) for k in range(-3, 4)]
    o = find_optimum(flat, estimator="plateau", bootstrap=20)
    assert "flat within noise" in o.flags["learning_rate"]
    o = find_optimum(asymmetric_cell(1e8, 1e10, 1e-3, 2.0**18, two_d=False, noise=0.0), estimator="plateau", bootstrap=0)
    lo, hi = (math.log2(v / 1e-3) for v in o.tolerance["learning_rate"])
    # truly within 0.1%: 0.003 |dx|^2.5 < 0.001 below, 0.02 |dx|^2.5 < 0.001 above. Straight lines
    # between runs lie above a convex basin, so the runs' range is inside the true one, by less
    # than a grid step (half an octave)
    true_lo, true_hi = -((0.001 / 0.003) ** 0.4), (0.001 / 0.02) ** 0.4
    assert true_lo <= lo < -0.5 < 0 < hi <= true_hi and lo - true_lo < 0.5 and true_hi - hi < 0.5


def test_the_surface_scores_a_setting_by_the_runs_alone() -> None:
    runs = [Run(1, 1, 2.0**x, 2.0**y, 3.0 + 0.01 * (x * x + y * y)) for x in range(-2, 3) for y in range(-2, 3)]
    surface = CellSurface(runs)
    assert surface.two_d and surface.best.loss == 3.0
    assert surface.excess(1.0, 1.0) == 0.0 and surface.nearest(2.0**0.4, 2.0**1.6).batch_size == 4.0
    assert surface.excess(2.0**0.5, 1.0) == pytest.approx(0.005 / 3.0)  # halfway between x=0 and x=1
    assert surface.excess(2.0**9, 1.0) == pytest.approx(0.04 / 3.0)  # beyond the runs: the nearest run's
    line = CellSurface([Run(1, 1, 2.0**x, 8.0, 3.0 + abs(x)) for x in range(-2, 3)])
    assert not line.two_d and line.excess(2.0**0.5, 1e9) == pytest.approx(0.5 / 3.0)


def _asymmetric_sweep(seed: int = 0) -> list[Run]:
    """Cells on a known law (lr ~ N^-0.5 D^0.3), each an asymmetric basin along the lr alone."""
    runs = []
    for i, (n, d) in enumerate((n, d) for n in (1e7, 3e7, 1e8, 3e8) for d in (1e9, 3e9, 1e10)):
        lr0 = 0.5 * n**-0.5 * (d / 1e9) ** 0.3
        runs += asymmetric_cell(n, d, lr0, 2.0**18, two_d=False, seed=seed + i)
    return runs


@pytest.mark.slow
def test_the_sweep_chooses_a_shape_aware_estimator_on_asymmetric_basins_and_each_cell_says_which() -> None:
    result = fit_runs(_asymmetric_sweep(), form="steplaw", bootstrap=100, batch_fallback="steplaw")
    choice = result.method["estimator_choice"]
    scores = choice["scores"]
    assert choice["chosen"] != "quadratic optima" and scores[choice["chosen"]] < scores["quadratic optima"]
    assert set(scores) == {f"{e} {m}" for e in ("quadratic", "plateau", "asymmetric") for m in ("optima", "runs")}
    report = result.report()
    chosen_estimator = choice["chosen"].split()[0]
    assert all(c["estimator"] == chosen_estimator and c["note"] for c in report.cells)
    lo, hi = result.learning_rate.intervals["N"]
    assert lo <= -0.5 <= hi
    # the held-out check: the whole fit redone without the largest N, and without each N's largest D
    checks = {c["split"]: c for c in report.held_out}
    assert checks["N"]["held_out"].startswith("largest N = 3e+08 (3 cells")
    assert checks["D"]["held_out"].startswith("each N's largest D (4 cells")
    for cell in checks["N"]["cells"]:
        assert abs(cell["lr_log2_error"]) < 0.5 and cell["batch_log2_error"] is None
    # a symmetric sweep keeps the quadratic: a shape-free estimator wins only by more than noise
    given = fit_runs(_asymmetric_sweep(), form="steplaw", estimator="quadratic", fit_to="optima", bootstrap=0,
                     batch_fallback="steplaw", validate=False)
    assert given.method["estimator_choice"]["by"] == "given" and given.held_out == []


def test_the_split_holds_out_the_largest_model_and_each_models_longest_run() -> None:
    runs = _asymmetric_sweep()
    train, held = split(runs, "N")
    assert set(held) == {(3e8, d) for d in (1e9, 3e9, 1e10)} and all(r.n_params < 3e8 for r in train)
    train, held = split(runs, "D")
    assert set(held) == {(n, 1e10) for n in (1e7, 3e7, 1e8, 3e8)} and all(r.tokens < 1e10 for r in train)
    with pytest.raises(ScalingError, match="unknown split 'C'"):
        split(runs, "C")


@pytest.mark.slow
def test_on_a_real_table_the_chosen_estimator_holds_out_no_worse_than_the_plateau() -> None:
    """Step Law's MoE grid (benchmarks/data/real_sweeps): 16 cells of 9 learning rates x 5
    batch sizes. The choice is made on the training cells alone; its held-out error at the
    largest N and at each N's largest D is no worse than the plateau estimator's."""
    runs = read_csv(REAL / "steplaw_moe.csv")
    chosen = {c["split"]: c for c in held_out(runs)}
    plateau = {c["split"]: c for c in held_out(runs, estimator="plateau", fit_to="optima")}
    for by in ("N", "D"):
        assert len(chosen[by]["cells"]) == 4
        assert chosen[by]["median_excess_interpolated"] <= plateau[by]["median_excess_interpolated"], by


def _hpo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250"}
    return subprocess.run(["hpo", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_cli_fits_a_real_table_in_its_own_column_names_and_recommends_with_a_tolerance(tmp_path: Path) -> None:
    """The Step Law table as its authors name it (Na, D, lr, bs in sequences of 2048, 'smooth
    loss'), read through --columns; the fit prints each cell's estimator and the held-out
    cells; the stored fit recommends a learning rate with its range within 0.1%."""
    raw = tmp_path / "moe_lr_bs_loss.csv"
    with (REAL / "steplaw_moe.csv").open() as f, raw.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["Na", "D", "lr", "bs", "smooth loss", "moe_name"])
        for row in csv.DictReader(f):
            writer.writerow([row["n_params"], row["n_tokens"], row["lr"], row["batch_sequences"], row["loss"], row["config"]])
    storage = f"sqlite:///{tmp_path / 'fits.db'}"
    done = _hpo("scaling", "fit", "--from-csv", str(raw), "--columns", "n_params=Na,n_tokens=D,batch_size=bs*2048,loss=smooth loss",
                "--bootstrap", "50", "--name", "moe", "--storage", storage, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "cell optima:" in out and "leave-one-cell-out" in out
    assert "held out largest N = 1.24e+09 (4 cells scored)" in out and "held out each N's largest D" in out
    assert "median loss excess: nearest run" in out and out.count("1.24e+09") >= 8
    rec = _hpo("recommend", "--params", "2e9", "--tokens", "4e10", "--law", "fit:moe", "--json", "--storage", storage, cwd=tmp_path)
    assert rec.returncode == 0, rec.stderr
    import json

    (r,) = json.loads(rec.stdout)
    lo, hi = r["learning_rate_tolerance"]
    assert lo < r["learning_rate"] < hi and hi / lo < 8
    bad = _hpo("scaling", "fit", "--from-csv", str(raw), "--columns", "n_params=Na,batch=bs", "--storage", storage, cwd=tmp_path)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "'batch' is not one of n_params, n_tokens, lr, batch_size, loss" in bad.stderr + bad.stdout


def test_columns_map_a_tables_names_scale_a_column_or_fix_a_constant(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("N_no_emb,D,peak_lr,C4 Eval Loss,model\n1e7,1e9,0.002,4.5,12m\n")
    (run,) = read_csv(path, parse_columns("n_params=N_no_emb,n_tokens=D,lr=peak_lr,batch_size=1048576,loss=C4 Eval Loss"))
    assert (run.n_params, run.tokens, run.learning_rate, run.batch_size, run.loss) == (1e7, 1e9, 0.002, 1048576.0, 4.5)
    assert run.extra == {"model": "12m"}
    with pytest.raises(ScalingError, match="missing column Na \\(for n_params\\)"):
        read_csv(path, {"n_params": "Na", "n_tokens": "D", "lr": "peak_lr", "batch_size": "8", "loss": "C4 Eval Loss"})
    with pytest.raises(ScalingError, match="'x2' after '\\*' is not a number"):
        read_csv(path, parse_columns("n_params=N_no_emb*x2"))
    with pytest.raises(ScalingError, match="is not NAME=COLUMN"):
        parse_columns("n_params")


def test_a_noiseless_bowl_gets_a_tight_interval_from_every_estimator() -> None:
    """A bootstrap resample repeats runs; a basin of repeats of two learning rates has no vertex,
    and its far-off fits once stretched the quadratic's interval to 50x the optimum."""
    lrs = [float(x) for x in np.geomspace(1e-3, 0.3, 9)]
    runs = [Run(1e7, 1e9, lr, 2**17, 3.0 + 0.05 * (math.log2(lr) - math.log2(0.02)) ** 2) for lr in lrs]
    for estimator in ("quadratic", "asymmetric"):
        found = find_optimum(runs, estimator=estimator)
        assert found.learning_rate == pytest.approx(0.02, rel=1e-3)
        lo, hi = found.learning_rate_interval
        assert 0.02 / 1.01 <= lo <= hi <= 0.02 * 1.01, estimator
