"""muP for the user's own model: ``set_mup_base_shapes`` and ``hpo mup coord-check --model
module:build`` on the models of tests/user_models.py (the CLI runs with tests/ on PYTHONPATH):
flat in width under muP, growing under SP, a plain ``nn.Linear`` readout refused in one line."""

from __future__ import annotations

import csv
import os
import re
import subprocess
from pathlib import Path

import pytest
import torch
import user_models
from mup import MuAdamW, MuReadout
from torch import nn

from workers.proxies.base_shapes import check_mup_optimizer, set_mup_base_shapes
from workers.proxies.coord_check import FLAT_SLOPE
from workers.proxies.parameterization import ProxyConfigError

TESTS = Path(__file__).parent
WIDTHS = "32,64,128,256"


def _coord_check(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        ["hpo", "mup", "coord-check", *args, "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False, env=env,
    )


def _last_step_slopes(path: Path) -> dict[str, float]:
    """Each layer's slope of log RMS against log width at the last step, from the CSV."""
    rows = list(csv.DictReader(path.open()))
    last = max(int(r["step"]) for r in rows)
    by_layer: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        if int(r["step"]) == last:
            by_layer.setdefault(r["layer"], []).append((float(r["width"]), float(r["rms"])))
    slopes = {}
    for layer, points in by_layer.items():
        x = torch.tensor([p[0] for p in points]).log2()
        y = torch.tensor([p[1] for p in points]).log2()
        slopes[layer] = float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())
    return slopes


@pytest.mark.parametrize(("spec", "extra"), [("user_models:build_mup", []), ("user_models:net", ["--base-width", "32"])])
def test_user_model_coordinate_check_is_flat_under_mup(tmp_path: Path, spec: str, extra: list[str]) -> None:
    done = _coord_check(tmp_path, "--model", spec, "--widths", WIDTHS, *extra)
    assert done.returncode == 0, done.stderr
    assert "flat in width" in done.stdout and f"({spec}, mup," in done.stdout
    stem = tmp_path / f"coord_check_{spec.replace(':', '_')}_mup"
    assert stem.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    slopes = _last_step_slopes(stem.with_suffix(".csv"))
    assert sorted(slopes) == ["blocks.0", "blocks.1", "embed", "head"]  # top-level children, list members
    assert max(abs(s) for s in slopes.values()) < FLAT_SLOPE, slopes


def test_user_model_coordinate_check_grows_under_sp(tmp_path: Path) -> None:
    done = _coord_check(tmp_path, "--model", "user_models:build_sp", "--widths", WIDTHS, "--lr", "0.03")
    assert done.returncode == 0, done.stderr
    assert "changes with width" in done.stdout
    slopes = _last_step_slopes(tmp_path / "coord_check_user_models_build_sp_sp.csv")
    assert max(slopes.values()) >= FLAT_SLOPE and slopes["head"] > 0.5, slopes
    assert re.search(r"largest slope d log RMS / d log width = \+\d\.\d\d \(head\)", done.stdout), done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "user_models:build_plain_readout"], "hpo: error: layer 'head' is a plain nn.Linear from width to a fixed size (10)"),
        (["--model", "user_models:build_sp", "--base-width", "32"], "hpo: error: layer 'head' is a plain nn.Linear"),
        (["--model", "user_models:nothing"], "hpo: error: module 'user_models' has no function 'nothing'"),
        (["--model", "no_such_module:build"], "hpo: error: cannot import module 'no_such_module'"),
        (["--model", "gpt", "--base-width", "32"], "hpo: error: --base-width is for your own model"),
    ],
)
def test_user_model_mistakes_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    failed = _coord_check(tmp_path, *args, "--widths", "32,64")
    assert failed.returncode == 2 and failed.stderr.startswith(message), failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1 and "Traceback" not in failed.stderr
    if "plain nn.Linear" in message:
        assert "replace it with mup.MuReadout(in_features, 10)" in failed.stderr


def test_set_mup_base_shapes_attaches_shapes_and_checks_the_readout() -> None:
    model = set_mup_base_shapes(user_models.net, 128, 32)
    shapes = {name: p.infshape for name, p in model.named_parameters()}
    assert set(shapes) == {name for name, _ in model.named_parameters()}
    assert shapes["blocks.0.0.weight"].ninf() == 2 and shapes["blocks.0.0.weight"].width_mult() == 4.0
    assert shapes["embed.weight"].ninf() == 1 and shapes["head.weight"].ninf() == 1
    assert isinstance(model.head, MuReadout) and model.head.width_mult() == 4.0

    class TwoReadouts(user_models.Net):
        def __init__(self, width: int) -> None:
            super().__init__(width, mup_readout=True)
            self.aux = MuReadout(width, 3)

    with pytest.raises(ProxyConfigError, match=r"exactly one mup.MuReadout, its output layer \(found head, aux\)"):
        set_mup_base_shapes(TwoReadouts, 64, 32)
    with pytest.raises(ProxyConfigError, match="has parameters the other widths lack"):
        set_mup_base_shapes(lambda w: nn.Sequential(*[nn.Linear(w, w) for _ in range(w // 32)], MuReadout(w, 2)), 64, 32)


def test_check_mup_optimizer_tells_plain_adamw_from_muadamw() -> None:
    model = set_mup_base_shapes(user_models.net, 128, 32)
    check_mup_optimizer(MuAdamW(model.parameters(), lr=1e-3))
    with pytest.raises(ProxyConfigError, match=r"use mup.MuAdamW\(model.parameters\(\), lr=...\)"):
        check_mup_optimizer(torch.optim.AdamW(model.parameters(), lr=1e-3))
    check_mup_optimizer(torch.optim.AdamW(set_mup_base_shapes(user_models.net, 32, 32).parameters()))  # base width: the same
