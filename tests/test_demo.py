"""``hpo demo``, the README's first command, in a reduced size: every step leaves its artifact."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    result = subprocess.run(
        ["hpo", "demo", "--trials", "60", "--workers", "3"], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "dehb searches multi-fidelity Branin" in result.stdout
    assert "best at full fidelity" in result.stdout
    out = tmp_path / "hpo-demo"
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 60 and set(trials["state"]) == {"completed"}
    assert trials["n_intermediate"].eq(1).all()
    assert trials["budget"].nunique() >= 3, "DEHB spread the trials over its rungs"
    assert trials["worker_id"].nunique() >= 2, "the workers shared the search"
    doc = json.loads((out / "study.json").read_text())
    assert doc["study"]["name"] == "demo-branin" and doc["study"]["algorithm"] == "dehb"
    assert (out / "best_value.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "hpo.db").exists()
    # Running it again replaces the demo study instead of failing on the duplicate name.
    again = subprocess.run(["hpo", "demo", "--trials", "4", "--workers", "2", "--algorithm", "random"],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(pd.read_csv(out / "trials.csv")) == 4
    assert "no trial reached full fidelity yet" not in again.stdout  # random search runs every trial in full
