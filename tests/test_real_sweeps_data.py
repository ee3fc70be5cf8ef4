"""The real LR / batch sweep fixtures in benchmarks/data/real_sweeps: well formed, reproducible
from the reference tables by benchmarks/data/convert_real_sweeps.py, and readable by the
project's own CSV reader."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "benchmarks" / "data"
FIXTURES = DATA / "real_sweeps"
CONVERTER = DATA / "convert_real_sweeps.py"
SOURCE = REPO.parent / "shared" / "reference" / "data"

# name: (rows, (n_params, n_tokens) cells), as measured when the fixtures were made
EXPECTED = {
    "steplaw_moe.csv": (708, 16),
    "misfitting.csv": (224, 78),
    "misfitting_old.csv": (220, 64),
    "marin_adamw.csv": (66, 18),
}
COLUMNS = ("n_params", "n_tokens", "lr", "batch_size", "loss")  # scaling.runs.CSV_COLUMNS
POSITIVE = ("n_params", "n_tokens", "lr", "batch_size")


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def test_no_unexpected_fixtures() -> None:
    assert sorted(p.name for p in FIXTURES.glob("*.csv")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_columns_values_and_counts(name: str) -> None:
    header, rows = _rows(FIXTURES / name)
    assert tuple(header[:5]) == COLUMNS
    for line, row in enumerate(rows, start=2):
        for column in POSITIVE:
            value = float(row[column])
            assert math.isfinite(value) and value > 0, (name, line, column, row[column])
        assert math.isfinite(float(row["loss"])), (name, line, row["loss"])
    n_rows, n_cells = EXPECTED[name]
    assert len(rows) == n_rows
    assert len({(float(r["n_params"]), float(r["n_tokens"])) for r in rows}) == n_cells


def test_converter_reproduces_fixtures(tmp_path: Path) -> None:
    if not SOURCE.is_dir():
        pytest.skip(f"reference data not present at {SOURCE}")
    subprocess.run(
        [sys.executable, str(CONVERTER), "--source", str(SOURCE), "--out", str(tmp_path)],
        check=True, capture_output=True, text=True,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(EXPECTED)
    for name in EXPECTED:
        assert (tmp_path / name).read_bytes() == (FIXTURES / name).read_bytes(), name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_reads_through_project_reader(name: str) -> None:
    from scaling.runs import CSV_COLUMNS, read_csv

    assert CSV_COLUMNS == COLUMNS
    runs = read_csv(FIXTURES / name)
    assert len(runs) == EXPECTED[name][0]
