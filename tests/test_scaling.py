"""The scaling module: per-cell optima, law fits recovering known exponents from noisy data,
the published laws against the papers' values, fits stored in and read from a real store
(from a sweep's trials), and one-line errors for bad CSVs through the ``hpo`` command."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import hpo
import scaling
from db.errors import FitNotFoundError
from db.store import Store
from scaling import PUBLISHED_LAWS, Run, ScalingError, find_optimum, fit_runs, recommend
from scaling.laws import Law, PowerLaw
from scaling.recommend import round_sequences
from scaling.report import FitReport

STEP = PUBLISHED_LAWS["steplaw"]


def synthetic_runs(law: Law, ns, ds, *, noise: float = 0.002, seed: int = 0, lr_offsets=None, batch_offsets=None) -> list[Run]:
    """Runs whose loss is a convex bowl in (log2 lr, log2 batch) around the law's optimum,
    with multiplicative noise."""
    rng = np.random.default_rng(seed)
    lr_offsets = np.arange(-2, 2.01, 0.5) if lr_offsets is None else lr_offsets
    batch_offsets = np.arange(-2, 2.01, 1.0) if batch_offsets is None else batch_offsets
    runs = []
    for n in ns:
        for d in ds:
            lr0, b0 = law.predict(n, d)
            for dx in lr_offsets:
                for dy in batch_offsets:
                    loss = 3.0 * (1 + 0.01 * dx * dx + 0.005 * dy * dy) * (1 + noise * rng.standard_normal())
                    runs.append(Run(n, d, lr0 * 2**dx, b0 * 2**dy, loss))
    return runs


def test_published_laws_reproduce_the_papers_values() -> None:
    lr, batch = STEP.predict(1e9, 1e11)
    assert lr == pytest.approx(1.63e-3, rel=0.01) and batch == pytest.approx(1.10e6, rel=0.01)
    n = 1e9
    lr, batch = PUBLISHED_LAWS["deepseek"].predict(n, 1e21 / (6 * n))  # C = 6ND = 1e21 FLOPs
    assert lr == pytest.approx(7.4e-4, rel=0.01) and batch == pytest.approx(2.16e6, rel=0.01)
    assert STEP.learning_rate.exponents == {"N": -0.713, "D": 0.307} and STEP.batch_tokens.coefficient == 0.58


def test_fit_recovers_known_exponents_within_its_bootstrap_interval() -> None:
    runs = synthetic_runs(STEP, [1e7, 3e7, 1e8, 3e8], [1e9, 3e9, 1e10], noise=0.003, seed=1)
    result = fit_runs(runs, form="steplaw", bootstrap=300)
    lr, b = result.learning_rate, result.batch_size
    for name, true in (("N", -0.713), ("D", 0.307)):
        lo, hi = lr.intervals[name]
        assert lo <= true <= hi, (name, lr.intervals)
        assert hi - lo < 0.05
    lo, hi = b.intervals["D"]
    assert lo <= 0.571 <= hi
    assert lr.intervals["coefficient"][0] <= 1.79 <= lr.intervals["coefficient"][1]
    assert lr.validation["error"] < 0.05 and "largest N = 3e+08" in lr.validation["held_out"]
    assert len(result.optima) == 12 and all(not o.flags for o in result.optima)


def test_auto_picks_the_compute_form_for_data_from_a_compute_law() -> None:
    deepseek = PUBLISHED_LAWS["deepseek"]
    runs = synthetic_runs(deepseek, [1e7, 3e7, 1e8], [3e8, 1e9, 3e9], noise=0.002, seed=2)
    result = fit_runs(runs, bootstrap=100)
    assert result.compared["compute"] is not None
    # the compute law is nested in nd (N^a D^a): both predict well; steplaw's B(D) cannot
    assert result.form in ("compute", "nd") and result.compared["steplaw"] > result.compared[result.form]
    compute = fit_runs(runs, form="compute", bootstrap=100)
    assert compute.learning_rate.law.exponents["C"] == pytest.approx(-0.125, abs=0.01)
    assert compute.batch_size.law.exponents["C"] == pytest.approx(0.3271, abs=0.01)


def test_cell_optimum_is_the_vertex_with_an_interval_and_a_plateau() -> None:
    runs = synthetic_runs(STEP, [1e8], [1e10], noise=0.001, lr_offsets=np.arange(-3, 1.01, 0.5))  # optimum off-centre
    cell = find_optimum(runs, bootstrap=100)
    lr0, b0 = STEP.predict(1e8, 1e10)
    assert math.log2(cell.learning_rate / lr0) == pytest.approx(0, abs=0.15)
    assert math.log2(cell.batch_size / b0) == pytest.approx(0, abs=0.3)
    lo, hi = cell.learning_rate_interval
    assert lo < cell.learning_rate < hi
    p_lo, p_hi = cell.plateau["learning_rate"]
    assert p_lo < lr0 < p_hi and p_hi / p_lo < 4  # within 0.25%: a bowl of 1% per log2^2 is about +-0.5 log2
    assert not cell.flags and cell.runs_used >= 7


def test_cells_with_an_optimum_on_the_edge_or_no_batch_sweep_are_flagged_and_excluded() -> None:
    edge = synthetic_runs(STEP, [1e8], [1e10], lr_offsets=np.arange(0.5, 3.01, 0.5))  # all above the optimum
    cell = find_optimum(edge, bootstrap=20)
    assert "optimum on the edge of the swept range" in cell.flags["learning_rate"]
    one_batch = synthetic_runs(STEP, [1e8], [1e10], batch_offsets=[0.0])
    cell = find_optimum(one_batch, bootstrap=20)
    assert cell.lr_usable and "batch size not swept (1 value" in cell.flags["batch_size"]

    runs = synthetic_runs(STEP, [1e7, 3e7, 1e8, 3e8], [1e9, 3e9], seed=3)
    runs += synthetic_runs(STEP, [1e9], [1e9], lr_offsets=np.arange(1, 3.01, 0.5))
    result = fit_runs(runs, form="steplaw", bootstrap=50)
    excluded = result.learning_rate.excluded
    assert len(excluded) == 1 and excluded[0]["n_params"] == 1e9 and "edge" in excluded[0]["why"]
    assert result.learning_rate.validation["held_out"].startswith("largest N = 3e+08")


def test_a_valley_open_along_the_batch_still_gives_the_learning_rate_at_the_best_batch() -> None:
    """Small budgets: loss falls steadily with smaller batches (no batch optimum inside the data)
    while the learning rate has a clear one."""
    lr0 = 0.01
    runs = [
        Run(1e6, 1e7, lr0 * 2**dx, 2.0**by, 3.0 * (1 + 0.01 * dx * dx + 0.004 * by))
        for dx in np.arange(-2, 2.01, 0.5)
        for by in range(4, 9)
    ]
    cell = find_optimum(runs, bootstrap=50)
    assert cell.lr_usable and math.log2(cell.learning_rate / lr0) == pytest.approx(0, abs=0.05)
    assert "not convex in the batch size" in cell.flags["batch_size"] and "best run's batch 16" in cell.flags["batch_size"]
    assert cell.learning_rate_interval is not None and cell.batch_size_interval is None
    thin = find_optimum(runs[::7], bootstrap=20)  # 7 runs over 5 batches: too few for a surface
    assert "too few runs (7)" in thin.flags["batch_size"]


def valley_runs(n: float, d: float, lr0: float, b0: float, batch_offsets, seed: int = 0) -> list[Run]:
    """A bowl whose best learning rate rises with the batch (lr ~ batch^0.5 along its valley),
    minimum at (lr0, b0), with 0.2% noise."""
    rng = np.random.default_rng(seed)
    return [
        Run(n, d, lr0 * 2**dx, b0 * 2**dy,
            3.0 * (1 + 0.01 * (dx - 0.5 * dy) ** 2 + 0.004 * dy * dy) * (1 + 0.002 * rng.standard_normal()))
        for dx in np.arange(-2, 3.01, 0.5)
        for dy in batch_offsets
    ]


def test_a_batch_optimum_below_the_grid_gives_the_learning_rate_where_the_valley_leaves_the_data() -> None:
    """The bowl's vertex is one octave below the smallest batch swept: the batch is flagged, and
    the learning rate is the valley's at that smallest batch (lr0 x 2^0.5), not the vertex's."""
    cell = find_optimum(valley_runs(1e6, 1e7, 0.01, 64.0, [1.0, 2.0, 3.0, 4.0]), bootstrap=50)
    assert cell.batch_size < 128.0  # the vertex, reported below the grid
    assert "edge of the swept range" in cell.flags["batch_size"] and "at the edge batch 128" in cell.flags["batch_size"]
    assert cell.lr_usable and math.log2(cell.learning_rate / 0.01) == pytest.approx(0.5, abs=0.1)
    lo, hi = cell.learning_rate_interval
    assert lo < 0.01 * 2**0.5 < hi and lo > 0.01
    # the valley line itself, clamped to the swept batches
    assert math.log2(cell.learning_rate_at(512.0) / 0.01) == pytest.approx(1.5, abs=0.1)
    assert cell.learning_rate_at(32.0) == pytest.approx(cell.learning_rate_at(128.0))


def test_a_calibrated_batch_law_reads_each_cells_learning_rate_at_the_laws_batch() -> None:
    """Valleys whose grids start above their optima (every batch flagged): the batch law is
    calibrated, and the learning-rate law is fitted to each cell's rate at that law's batch,
    so that the two laws recommend a consistent pair."""
    true = Law("small", STEP.learning_rate, PowerLaw(0.58 / 30, {"D": 0.571}), "test", STEP.fitted_range)
    runs = []
    for i, (n, d) in enumerate((n, d) for n in (1e7, 3e7, 1e8) for d in (1e9, 3e9)):
        lr0, b0 = true.predict(n, d)
        runs += valley_runs(n, d, lr0, b0, [1.0, 2.0, 3.0], seed=i)
    result = fit_runs(runs, form="steplaw", estimator="quadratic", fit_to="optima", bootstrap=100, batch_fallback="steplaw")
    assert result.batch_size.calibrated and "read_at" in result.learning_rate.validation
    cells = {(o.n_params, o.tokens): o for o in result.optima}
    for p in result.learning_rate.points:
        cell = cells[(p["n_params"], p["tokens"])]
        at = cell.learning_rate_at(result.batch_size.law(p["n_params"], p["tokens"]))
        assert p["learning_rate"] == pytest.approx(at)
    lr, batch = result.law.predict(1e8, 3e9)
    lr0, b0 = true.predict(1e8, 3e9)
    assert math.log2(batch / b0) == pytest.approx(1.0, abs=0.15)  # the smallest batch swept: a bound
    assert math.log2(lr / lr0) == pytest.approx(0.5 * math.log2(batch / b0), abs=0.15)  # on the valley there


def test_a_sweep_without_a_batch_law_borrows_one_only_when_asked() -> None:
    runs = synthetic_runs(STEP, [1e7, 3e7, 1e8, 3e8], [1e9, 3e9], seed=4, batch_offsets=[0.0])
    with pytest.raises(ScalingError, match="cannot fit batch_size"):
        fit_runs(runs, form="steplaw", bootstrap=50)
    with pytest.raises(ScalingError, match="unknown batch fallback 'nope'; choose one of steplaw, deepseek"):
        fit_runs(runs, batch_fallback="nope")
    result = fit_runs(runs, bootstrap=100, batch_fallback="deepseek")
    assert result.form == "steplaw"  # the learning rate alone decides; steplaw and nd tie, steplaw is smaller
    assert result.learning_rate.law.exponents["N"] == pytest.approx(-0.713, abs=0.03)
    assert result.batch_size.borrowed_from == "deepseek" and result.batch_size.law == PUBLISHED_LAWS["deepseek"].batch_tokens
    report = result.report()
    assert report.batch_size.source == "deepseek" and "taken from deepseek" in report.batch_size.validation["why"]
    stored = json.loads(json.dumps(report.to_dict()))
    assert json.loads(json.dumps(FitReport.from_dict(stored).to_dict())) == stored  # the stored form reads back whole
    assert result.compared["steplaw"] == pytest.approx(result.learning_rate.validation["error"])
    from scaling.recommend import recommend_with

    for law in (result.law, FitReport.from_dict(json.loads(json.dumps(report.to_dict()))).law()):
        rec = recommend_with(law, 1e9, 1e10, seq_len=2048)
        assert rec.batch_size_tokens_exact == pytest.approx(PUBLISHED_LAWS["deepseek"].predict(1e9, 1e10)[1])
        assert any("batch size from the published deepseek law" in w for w in rec.warnings)
        assert rec.learning_rate_interval is not None and rec.batch_size_tokens_interval[0] == pytest.approx(rec.batch_size_tokens_exact)
    from scaling.plot import plot_fit

    assert "from deepseek, not fitted" in plot_fit(result, None)


def test_a_batch_law_the_sweep_cannot_fit_keeps_the_published_exponent_and_takes_its_level_from_the_cells(tmp_path: Path) -> None:
    """The batch swept at one token budget only (the other budget sweeps the learning rate):
    no batch law in D can be fitted. With a fallback, the published exponent stays and the
    coefficient comes from the cells that swept the batch, so a sweep whose data puts the
    optimum 30x below the published level is followed, not overruled; where the grid starts
    above the optimum (every best run at the smallest batch), the level is that bound."""
    from scaling.plot import plot_fit
    from scaling.recommend import recommend_with

    true = Law("small", STEP.learning_rate, PowerLaw(0.58 / 30, {"D": 0.571}), "test", STEP.fitted_range)
    runs = synthetic_runs(true, [1e7, 3e7, 1e8], [1e9], seed=8)
    runs += synthetic_runs(true, [1e7, 3e7, 1e8], [3e9], seed=10, batch_offsets=[0.0])
    with pytest.raises(ScalingError, match="cannot fit batch_size"):
        fit_runs(runs, form="steplaw", bootstrap=50)
    result = fit_runs(runs, form="steplaw", bootstrap=200, batch_fallback="steplaw")
    batch = result.batch_size
    assert batch.calibrated and batch.borrowed_from == "steplaw" and batch.law.exponents == {"D": 0.571}
    assert batch.law.coefficient == pytest.approx(0.58 / 30, rel=0.05)
    lo, hi = batch.intervals["coefficient"]
    assert lo <= 0.58 / 30 <= hi and hi < 0.58 / 10
    assert batch.validation["error"] < 0.05 and "3 cells' best batches" in batch.validation["why_calibrated"]
    assert [p["n_params"] for p in batch.points] == [1e7, 3e7, 1e8]
    report = FitReport.from_dict(json.loads(json.dumps(result.report().to_dict())))
    assert report.batch_size.calibrated is True and report.batch_size.source == "steplaw"
    for law in (result.law, report.law()):
        assert law.ranges["batch_size"]["D"] == (1e9, 1e9)  # the cells' span, not Step Law's
        rec = recommend_with(law, 1e8, 1e9, seq_len=2048)
        assert rec.batch_size_tokens_exact == pytest.approx(true.batch_tokens(1e8, 1e9), rel=0.05)
        assert any("exponents, its coefficient calibrated" in w for w in rec.warnings)
        assert rec.batch_size_tokens_interval[0] < rec.batch_size_tokens_exact < rec.batch_size_tokens_interval[1]
    assert "steplaw exponent, calibrated" in plot_fit(result, None)
    rows = [{"n_params": r.n_params, "n_tokens": r.tokens, "lr": r.learning_rate, "batch_size": r.batch_size, "loss": r.loss}
            for r in runs]
    path = _write_csv(tmp_path / "one-budget.csv", rows, columns=("n_params", "n_tokens", "lr", "batch_size", "loss"))
    done = _hpo("scaling", "fit", "--from-csv", str(path), "--form", "steplaw", "--bootstrap", "50",
                "--batch-fallback", "steplaw", "--storage", f"sqlite:///{tmp_path / 'fits.db'}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "calibrated" in done.stdout and "from steplaw" not in done.stdout
    # a grid that starts 2x above the optimum: every cell's best run is at its smallest batch
    above = fit_runs(synthetic_runs(true, [1e7, 3e7, 1e8], [1e9, 3e9], seed=9, batch_offsets=[1.0, 2.0, 3.0]),
                     form="steplaw", bootstrap=100, batch_fallback="steplaw")
    assert all("batch_size" in o.flags for o in above.optima)
    assert above.batch_size.calibrated and above.batch_size.law.coefficient == pytest.approx(2 * 0.58 / 30, rel=0.05)


def test_each_law_is_judged_against_the_range_of_the_cells_it_rests_on() -> None:
    """The learning-rate law rests on N up to 3e8; the largest model's batch was not swept,
    so the batch law rests on N up to 1e8 only. A target at N = 6e8 is 2x beyond the one and
    6x beyond the other, and a stored fit read back says the same."""
    from scaling.recommend import recommend_with

    runs = synthetic_runs(STEP, [1e7, 3e7, 1e8], [1e9, 3e9], seed=5)
    runs += synthetic_runs(STEP, [3e8], [1e9, 3e9], seed=6, batch_offsets=[0.0])
    result = fit_runs(runs, form="nd", bootstrap=50)
    assert result.law.ranges["learning_rate"]["N"] == (1e7, 3e8) and result.law.ranges["batch_size"]["N"] == (1e7, 1e8)
    assert result.law.fitted_range["N"] == (1e7, 3e8)
    stored = FitReport.from_dict(json.loads(json.dumps(result.report().to_dict()))).law()
    for law in (result.law, stored):
        warnings = recommend_with(law, 6e8, 2e9).warnings
        assert "extrapolation: N = 6e+08 is 2.0x above the largest fitted N (3e+08) for the learning rate" in warnings
        assert "extrapolation: N = 6e+08 is 6.0x above the largest fitted N (1e+08) for the batch size" in warnings
        assert not any("D = " in w for w in warnings)  # D = 2e9 lies inside both laws' ranges
    # a borrowed batch law is judged against its own published range, not the sweep's
    borrowed = fit_runs(synthetic_runs(STEP, [1e7, 3e7, 1e8], [1e9, 3e9], seed=7, batch_offsets=[0.0]),
                        form="steplaw", bootstrap=50, batch_fallback="steplaw")
    assert borrowed.law.ranges["batch_size"] == dict(STEP.fitted_range)
    warnings = recommend_with(borrowed.law, 5e7, 1e10).warnings
    assert "extrapolation: D = 1e+10 is 3.3x above the largest fitted D (3e+09) for the learning rate" in warnings
    assert not any("for the batch size" in w for w in warnings)  # D = 1e10 is inside Step Law's 2e9..1e11


def test_recommendation_rounds_the_batch_and_warns_beyond_the_fitted_range() -> None:
    (rec,) = recommend(7e9, 2e12, law="steplaw", seq_len=4096)
    assert rec.batch_size_sequences == round_sequences(rec.batch_size_tokens_exact / 4096) == 1496
    assert rec.batch_size_tokens == 1496 * 4096
    assert any("N = 7e+09 is 7.0x above the largest fitted N (1e+09)" in w for w in rec.warnings)
    assert [round_sequences(s) for s in (0.3, 3.2, 6.5, 13, 270.9)] == [1, 4, 8, 16, 272]
    with pytest.raises(ScalingError, match="--tokens must be a positive number"):
        recommend(1e9, 0)


def test_fits_from_a_sweep_are_stored_and_recommended_from(sqlite_url: str) -> None:
    """Trials recorded as the proxy objective records them (N in attrs, D the token budget)."""
    truth = Law("truth", PowerLaw(0.5, {"N": -0.5, "D": 0.2}), PowerLaw(2.0, {"D": 0.5}), "test", {})
    space = {
        "parameters": {"learning_rate": {"type": "float", "low": 1e-6, "high": 1.0, "log": True},
                       "batch_size": {"type": "int", "low": 1, "high": 100_000, "log": True}},
        "fidelity": {"name": "tokens", "min": 1e5, "max": 1e9},
    }
    for n in (1e5, 4e5, 1.6e6):
        study = hpo.create_study(f"w{int(n)}", sqlite_url, search_space=space, sweep="widths")
        for run in synthetic_runs(truth, [n], [1e6, 4e6], seed=int(n)):
            sequences = max(1, round(run.batch_size / 64))
            study.enqueue({"learning_rate": run.learning_rate, "batch_size": sequences}, budget=run.tokens)
        while (trial := study.claim("w")) is not None:
            run_loss = _bowl(truth, n, trial.budget, trial.params)
            trial.record({"n_params": n, "tokens": trial.budget})
            trial.complete(run_loss)
    from scaling.runs import runs_from_sweep

    runs = runs_from_sweep("widths", sqlite_url)
    assert len(runs) == 3 * 2 * 45
    result = scaling.fit(sweep="widths", storage=sqlite_url, form="steplaw", bootstrap=100)  # fitted and stored
    assert result.name == "widths" and result.learning_rate.law.exponents["N"] == pytest.approx(-0.5, abs=0.05)
    store = Store(sqlite_url)
    record = store.get_fit("widths")
    assert record.sweep == "widths" and record.form == "steplaw" and record.report["learning_rate"]["points"]
    with pytest.raises(FitNotFoundError, match="no scaling fit named 'nope'; stored fits: widths"):
        store.get_fit("nope")
    store.close()
    (rec,) = recommend(6.4e6, 4e6, law="fit:widths", storage=sqlite_url, seq_len=64)
    assert rec.learning_rate == pytest.approx(truth.learning_rate(6.4e6, 4e6), rel=0.15)
    lo, hi = rec.learning_rate_interval
    assert lo <= rec.learning_rate <= hi
    assert any("4.0x above the largest fitted N" in w for w in rec.warnings)
    all_laws = recommend(6.4e6, 4e6, storage=sqlite_url)
    assert [r.law for r in all_laws] == ["steplaw", "deepseek", "fit:widths"]


def _bowl(law: Law, n: float, d: float, params: dict) -> float:
    lr0, b0 = law.predict(n, d)
    dx = math.log2(params["learning_rate"] / lr0)
    dy = math.log2(params["batch_size"] * 64 / b0)
    return 3.0 * (1 + 0.01 * dx * dx + 0.005 * dy * dy)


def _hpo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["hpo", *args], capture_output=True, text=True, timeout=300, check=False, cwd=cwd,
                          env={**os.environ, "COLUMNS": "200"})


def _write_csv(path: Path, rows: list[dict], columns=("n_params", "n_tokens", "lr", "batch_size", "loss")) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_cli_fit_from_csv_stores_plots_and_recommends(tmp_path: Path) -> None:
    rows = [{"n_params": r.n_params, "n_tokens": r.tokens, "lr": r.learning_rate, "batch_size": r.batch_size, "loss": r.loss, "arch": "gpt"}
            for r in synthetic_runs(STEP, [1e7, 3e7, 1e8], [1e9, 3e9], seed=5)]
    path = _write_csv(tmp_path / "grid.csv", rows, columns=("n_params", "n_tokens", "lr", "batch_size", "loss", "arch"))
    url = f"sqlite:///{tmp_path / 'fits.db'}"
    done = _hpo("scaling", "fit", "--from-csv", str(path), "--form", "steplaw", "--bootstrap", "100", "--storage", url,
                "--target-params", "1e9", "--target-tokens", "1e11", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "learning_rate │ 1.7" in done.stdout or "learning_rate" in done.stdout
    assert "stored as fit 'grid'" in done.stdout and (tmp_path / "grid.png").read_bytes()[:4] == b"\x89PNG"
    out = _hpo("recommend", "--params", "1e9", "--tokens", "1e11", "--json", "--storage", url, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    laws = json.loads(out.stdout)
    assert [entry["law"] for entry in laws] == ["steplaw", "deepseek", "fit:grid"]
    for entry in laws:
        assert {"law", "learning_rate", "learning_rate_interval", "batch_size_tokens", "batch_size_tokens_interval",
                "batch_size_sequences", "batch_size_sequences_interval"} <= set(entry)
    assert laws[2]["learning_rate"] == pytest.approx(laws[0]["learning_rate"], rel=0.1)
    assert "grid" in _hpo("scaling", "list", "--storage", url, cwd=tmp_path).stdout


def test_bad_csvs_are_one_line_errors(tmp_path: Path) -> None:
    good = {"n_params": 1e7, "n_tokens": 1e9, "lr": 1e-3, "batch_size": 65536, "loss": 3.0}
    cases = {
        "missing.csv": ([good], ("n_params", "n_tokens", "lr", "loss"), "missing column batch_size"),
        "negative.csv": ([good, {**good, "n_params": -5}], None, "line 3: n_params must be positive, got -5"),
        "nan.csv": ([good, {**good, "loss": "nan"}], None, "line 3: loss is NaN"),
        "text.csv": ([{**good, "lr": "fast"}], None, "line 2: lr is 'fast', not a number"),
        "single.csv": ([{**good, "lr": 1e-3 * 2**i, "batch_size": 65536 * 2**j} for i in range(5) for j in range(3)], None,
                       "all runs are at a single scale (N=1e+07, D=1e+09)"),
    }
    for name, (rows, columns, message) in cases.items():
        path = _write_csv(tmp_path / name, rows, columns or ("n_params", "n_tokens", "lr", "batch_size", "loss"))
        done = _hpo("scaling", "fit", "--from-csv", str(path), "--storage", f"sqlite:///{tmp_path / 'x.db'}", cwd=tmp_path)
        assert done.returncode == 2, (name, done.stdout, done.stderr)
        assert done.stderr.startswith("hpo: error: ") and message in done.stderr, (name, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    for args, message in [
        (["scaling", "fit"], "give exactly one of --sweep NAME and --from-csv FILE"),
        (["scaling", "fit", "--sweep", "none-such"], "sweep 'none-such' has no studies"),
        (["recommend", "--params", "1e9", "--tokens", "1e9", "--law", "fit:nope"], "no scaling fit named 'nope'"),
        (["recommend", "--params", "1e9", "--tokens", "-1"], "--tokens must be a positive number"),
    ]:
        done = _hpo(*args, "--storage", f"sqlite:///{tmp_path / 'x.db'}", cwd=tmp_path)
        assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_log_axes_are_labelled_without_overlap() -> None:
    """A log axis spanning a decade and a half is labelled 1-2-5 in plain numbers where it has
    room, by decades where it has not, and never on its minor ticks; ticks set by hand stay."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scaling.plot import readable_log_axes

    fig, (wide, narrow, fixed) = plt.subplots(1, 3, figsize=(12, 3), gridspec_kw={"width_ratios": [8, 2, 3]})
    wide.plot([1.7e-3, 7e-2], [1, 2])
    narrow.plot([1e-4, 1e-1], [1, 2])
    fixed.plot([1.7e-3, 7e-2], [1, 2])
    for ax in (wide, narrow, fixed):
        ax.set_xscale("log")
    fixed.set_xticks([2e-3, 2e-2], ["two", "twenty"])
    readable_log_axes(fig)
    fig.canvas.draw()

    def shown(axis, minor: bool = False) -> list[str]:
        lo, hi = sorted(axis.get_view_interval())
        ticks = axis.get_minor_ticks() if minor else axis.get_major_ticks()
        return [t.label1.get_text() for t in ticks if lo <= t.get_loc() <= hi and t.label1.get_text()]

    assert shown(wide.xaxis) == ["0.002", "0.005", "0.01", "0.02", "0.05"] and shown(wide.xaxis, minor=True) == []
    decades = shown(narrow.xaxis)  # matplotlib may skip some where the axis is short
    assert len(decades) >= 2 and set(decades) <= {"0.0001", "0.001", "0.01", "0.1"} and shown(narrow.xaxis, minor=True) == []
    assert shown(fixed.xaxis) == ["two", "twenty"]
    plt.close(fig)
