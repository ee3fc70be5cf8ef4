"""``hpo demo``, the README's first command, in a reduced size: every step leaves its artifact."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    result = subprocess.run(
        ["hpo", "demo", "--trials", "12", "--workers", "3"], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "12 completed, 0 failed" in result.stdout
    out = tmp_path / "hpo-demo"
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 12 and set(trials["state"]) == {"completed"}
    assert trials["n_intermediate"].eq(3).all()
    assert trials["worker_id"].nunique() >= 2, "the workers shared the queue"
    doc = json.loads((out / "study.json").read_text())
    assert doc["study"]["name"] == "demo-branin" and len(doc["trials"]) == 12
    assert (out / "best_value.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "hpo.db").exists()
    # Running it again replaces the demo study instead of failing on the duplicate name.
    again = subprocess.run(["hpo", "demo", "--trials", "4", "--workers", "2"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(pd.read_csv(out / "trials.csv")) == 4
