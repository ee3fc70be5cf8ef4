"""``hpo demo``, the README's first command, in its reduced size (``--quick``): every step of
the flow leaves its artifact, the fit it stores is the one ``hpo recommend`` then uses, and a
demo whose sweep is too small for a law still finishes with the published laws' answer."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from db.store import Store
from hpo.cli.demo import _mutransfer
from scaling import PUBLISHED_LAWS, Run
from scaling.optimum import CellOptimum
from scaling.transfer import transfer_verdict


def _hpo(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["hpo", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, "COLUMNS": "200"})


@pytest.mark.timeout(900)
def test_quick_demo_runs_every_step_and_leaves_its_artifacts(tmp_path: Path) -> None:
    result = _hpo("demo", "--quick", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out, folder = result.stdout, tmp_path / "hpo-demo"
    summary = json.loads((folder / "summary.json").read_text())

    # 1. the sweep: three widths, 44 DEHB trials each, spread over the token rungs, N recorded
    assert summary["algorithm"] == "dehb" and summary["widths"] == [16, 32, 64]
    studies = summary["studies"]
    assert [s["width"] for s in studies] == [16, 32, 64]
    assert [s["n_params"] for s in studies] == [6_304, 24_896, 98_944]
    for s in studies:
        trials = pd.read_csv(folder / f"trials-{s['study']}.csv")
        assert len(trials) == 44 and set(trials["state"]) <= {"completed", "diverged"}
        assert sorted(trials["budget"].unique()) == [8_192, 24_576, 73_728]
        assert trials["worker_id"].nunique() == 2
    # 2. the per-width optima and the muTransfer verdict, with the drift in one line
    transfer = summary["mutransfer"]
    assert transfer["tokens"] in (8_192, 24_576, 73_728) and len(transfer["optima"]) >= 2
    assert isinstance(transfer["drift_log2"], float) and transfer["stays_put"] == (abs(transfer["drift_log2"]) <= 0.5)
    assert transfer["verdict"] == transfer_verdict(*(_cell(o["learning_rate"], o["interval"]) for o in (transfer["optima"][0], transfer["optima"][-1])),
                                                  transfer["stays_put"])
    assert transfer["verdict"] in out
    assert f"moves {transfer['drift_log2']:+.2f} in log2" in out
    # 3. the fit, stored with the sweep it came from, with its held-out error
    fit = summary["fit"]
    assert "error" not in fit, fit
    assert fit["cells_used"]["learning_rate"] >= 4 and fit["held_out_error"]["learning_rate"] is not None
    assert fit["batch_source"] == "steplaw"  # the demo fixes the batch: its law is Step Law's, and it says so
    assert "held-out error" in out and "Step Law's: the demo fixed the batch; --sweep-batch searches it" in out
    store = Store(f"sqlite:///{tmp_path / 'hpo.db'}")
    record = store.get_fit("demo")
    store.close()
    assert record.sweep == "demo"
    # 4. the recommendation for the target beside Step Law's and DeepSeek's
    recs = summary["recommendations"]
    assert [r["law"] for r in recs] == ["fit:demo", "steplaw", "deepseek"]
    step = PUBLISHED_LAWS["steplaw"].predict(85e6, 2.5e9)
    assert recs[1]["learning_rate"] == pytest.approx(step[0]) and recs[1]["batch_size_sequences"] * 1024 == recs[1]["batch_size_tokens"]
    assert any("extrapolation" in w for w in recs[0]["warnings"])
    again = _hpo("recommend", "--params", "85e6", "--tokens", "2.5e9", "--law", "fit:demo", "--seq-len", "1024", "--json",
                 "--storage", f"sqlite:///{tmp_path / 'hpo.db'}", cwd=tmp_path, timeout=120)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)[0]["learning_rate"] == pytest.approx(recs[0]["learning_rate"])
    # 5. the plots and the dashboard command
    for name in ("mutransfer.png", "scaling_fit.png"):
        assert (folder / name).read_bytes()[:4] == b"\x89PNG"
    assert summary["artifacts"] == {"mutransfer": "mutransfer.png", "scaling_fit": "scaling_fit.png"}
    assert f"hpo serve --storage sqlite:///{tmp_path / 'hpo.db'}" in out and "/sweeps/demo" in out


def _cell(lr: float, interval: tuple[float, float] | None, n: float = 1e5, d: float = 1e5) -> CellOptimum:
    run = Run(n, d, lr, 512.0, 3.0)
    return CellOptimum(n, d, lr, 512.0, 3.0, run, None if interval is None else tuple(interval), None, {}, {})  # type: ignore[arg-type]


def test_the_transfer_check_reads_the_budget_whose_optima_are_best_determined() -> None:
    widths = {1e4: 16, 4e4: 32, 1.6e5: 64}
    tight = [_cell(0.01 * k, (0.008 * k, 0.012 * k), n, 1e5) for k, n in zip((1.0, 1.1, 1.2), widths, strict=True)]
    loose = [_cell(0.01 * k, (0.001, 0.1), n, 3e5) for k, n in zip((1.0, 0.5, 0.25), widths, strict=True)]
    two_widths = [_cell(0.01, (0.0099, 0.0101), n, 9e5) for n in list(widths)[:2]]
    transfer = _mutransfer(loose + tight + two_widths, widths, show_batch=False)
    assert transfer["tokens"] == 1e5 and transfer["verdict"] == "it stays put"
    assert transfer["drift_log2"] == pytest.approx(math.log2(1.2))


def test_the_transfer_verdict_calls_a_move_only_when_the_widths_intervals_are_disjoint() -> None:
    narrow = _cell(0.01, (0.005, 0.02))
    assert transfer_verdict(narrow, _cell(0.011, (0.006, 0.03)), stays=True) == "it stays put"
    assert transfer_verdict(narrow, _cell(0.004, (0.003, 0.0045)), stays=False) == "it moves"
    assert transfer_verdict(narrow, _cell(0.04, (0.025, 0.08)), stays=False) == "it moves"
    overlapping = transfer_verdict(narrow, _cell(0.004, (0.002, 0.006)), stays=False)
    assert overlapping.startswith("not resolved: the two widths' 90% intervals overlap;")
    assert transfer_verdict(narrow, _cell(0.004, None), stays=False) == "it moves"


@pytest.mark.timeout(600)
def test_a_demo_too_small_for_a_law_still_answers_from_the_published_laws(tmp_path: Path) -> None:
    # two learning rates per cell: no cell has an optimum, so there is no law to fit
    first = _hpo("demo", "--quick", "--widths", "8,12,16", "--trials-per-width", "2", "--algorithm", "random", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "3. Scaling fit: none: no (N, D) cell has an optimum" in first.stdout
    summary = json.loads((tmp_path / "hpo-demo" / "summary.json").read_text())
    assert summary["fit"]["error"] and [r["law"] for r in summary["recommendations"]] == ["steplaw", "deepseek"]
    assert summary["artifacts"] == {"mutransfer": "mutransfer.png"}
    # a second run replaces the sweep's studies instead of failing on the names
    second = _hpo("demo", "--quick", "--widths", "8,12,20", "--trials-per-width", "2", "--algorithm", "random", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    listed = _hpo("study", "list", cwd=tmp_path, timeout=120).stdout
    assert "demo-w20" in listed and "demo-w16" not in listed
    bad = _hpo("demo", "--widths", "32,64", cwd=tmp_path, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "hpo: error: --widths needs three or more widths, each a multiple of 4 and at least 8, got '32,64'"
    )


@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_demo_on_a_ray_cluster_with_postgresql(tmp_path: Path, pg_url: str) -> None:
    """`hpo demo --address --storage`: a Ray head started by `ray start` (3 CPUs, so joining it
    shows), the store in a real PostgreSQL database."""
    ray_cli = shutil.which("ray")
    assert ray_cli, "the ray command comes with ray[tune]"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    start = subprocess.run([ray_cli, "start", "--head", f"--port={port}", "--num-cpus=3", "--include-dashboard=false",
                            "--disable-usage-stats"], capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert start.returncode == 0, start.stderr[-2000:]
    try:
        result = _hpo("demo", "--quick", "--widths", "8,12,16", "--trials-per-width", "3", "--address", f"127.0.0.1:{port}",
                      "--storage", pg_url, cwd=tmp_path)
    finally:
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"on the Ray cluster at 127.0.0.1:{port}: 3 CPUs" in result.stdout
    summary = json.loads((tmp_path / "hpo-demo" / "summary.json").read_text())
    assert summary["storage"].startswith("postgresql+psycopg://")
    assert [s["counts"] for s in summary["studies"]] == [{"completed": 3}] * 3
    assert not (tmp_path / "hpo.db").exists()
    import hpo

    assert sorted(s.study.name for s in hpo.list_studies(pg_url, sweep="demo")) == ["demo-w12", "demo-w16", "demo-w8"]
