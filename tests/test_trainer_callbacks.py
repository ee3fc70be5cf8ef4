"""hpo.integrations.huggingface and hpo.integrations.lightning with the real libraries on CPU.

Each test sets HPO_METRICS_FILE and HPO_STOP_FILE as a command objective's worker does, trains
a tiny model, and reads back the lines the callback wrote. The stop file is created by a second
callback after the first evaluation, as the worker creates it when the study prunes the trial.
The DDP tests run each Trainer under torchrun with two CPU processes (gloo); the last test runs
a Hugging Face script through ``hpo sweep run --command``, as a user would.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset
from transformers import Trainer, TrainerCallback, TrainingArguments

import hpo
from db.models import TrialState
from hpo.integrations import huggingface, lightning
from search_spaces import Fidelity, Float, SearchSpace

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def protocol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """The metrics file and the (absent) stop file, set in the environment as the worker does."""
    metrics, stop = tmp_path / "metrics.jsonl", tmp_path / "stop"
    monkeypatch.setenv("HPO_METRICS_FILE", str(metrics))
    monkeypatch.setenv("HPO_STOP_FILE", str(stop))
    monkeypatch.delenv("RANK", raising=False)
    return metrics, stop


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def regression(n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(n, 4, generator=torch.Generator().manual_seed(0))
    return x, x @ torch.tensor([[1.0], [-2.0], [3.0], [0.5]])


@pytest.mark.parametrize(("module", "library", "extra"), [
    ("hpo.integrations.huggingface", "transformers", "huggingface"),
    ("hpo.integrations.lightning", "lightning.pytorch", "lightning"),
])
def test_without_the_extra_the_import_error_says_what_to_install(
    module: str, library: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, library, None)  # None in sys.modules: that import fails
    monkeypatch.delitem(sys.modules, module)
    with pytest.raises(ImportError, match=rf"pip install 'hposcale\[{extra}\]'"):
        importlib.import_module(module)


# --- Hugging Face -----------------------------------------------------------------------------


class HfRegressor(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": torch.nn.functional.mse_loss(self.linear(x), labels)}


class HfRows(Dataset[dict[str, torch.Tensor]]):
    def __init__(self) -> None:
        self.x, self.y = regression()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "labels": self.y[i]}


class HfRecord(TrainerCallback):
    """Keeps every evaluation's (step, eval_loss); creates ``stop`` after the first one."""

    def __init__(self, stop: Path | None = None) -> None:
        self.evaluations: list[tuple[int, float]] = []
        self.stop = stop

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float], **kwargs: Any) -> None:
        self.evaluations.append((state.global_step, metrics["eval_loss"]))
        if self.stop is not None:
            self.stop.touch()


def hf_train(tmp_path: Path, *callbacks: TrainerCallback, max_steps: int = 8) -> Trainer:
    args = TrainingArguments(
        output_dir=str(tmp_path / "hf"), eval_strategy="steps", eval_steps=2, max_steps=max_steps,
        per_device_train_batch_size=8, learning_rate=0.05, report_to=[], use_cpu=True,
        save_strategy="no", disable_tqdm=True, logging_strategy="no",
    )
    trainer = Trainer(model=HfRegressor(), args=args, train_dataset=HfRows(), eval_dataset=HfRows(),
                      callbacks=list(callbacks))
    trainer.train()
    return trainer


def test_hf_reports_each_evaluation_at_its_step(tmp_path: Path, protocol: tuple[Path, Path]) -> None:
    metrics, _ = protocol
    record = HfRecord()
    trainer = hf_train(tmp_path, huggingface.HpoCallback(), record)
    written = lines(metrics)
    assert [(line["budget"], line["value"]) for line in written] == [(float(s), v) for s, v in record.evaluations]
    assert [s for s, _ in record.evaluations] == [2, 4, 6, 8]
    assert trainer.state.global_step == 8
    assert all("eval_runtime" in line for line in written), "the other metrics are kept for the record"


def test_hf_budget_in_epochs(tmp_path: Path, protocol: tuple[Path, Path]) -> None:
    metrics, _ = protocol
    hf_train(tmp_path, huggingface.HpoCallback(budget="epoch"))
    # 32 rows in batches of 8: an evaluation every 2 steps is every half epoch.
    assert [line["budget"] for line in lines(metrics)] == [0.5, 1.0, 1.5, 2.0]
    assert [line["step"] for line in lines(metrics)] == [2, 4, 6, 8]


def test_hf_stops_at_the_evaluation_after_the_stop_file(tmp_path: Path, protocol: tuple[Path, Path]) -> None:
    metrics, stop = protocol
    record = HfRecord(stop)  # runs after HpoCallback: the first evaluation goes on, the second stops
    trainer = hf_train(tmp_path, huggingface.HpoCallback(), record)
    assert trainer.state.global_step == 4
    assert [line["budget"] for line in lines(metrics)] == [2.0, 4.0]


def test_hf_rank_other_than_zero_writes_nothing_but_stops(
    tmp_path: Path, protocol: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics, stop = protocol
    monkeypatch.setenv("RANK", "1")
    trainer = hf_train(tmp_path, huggingface.HpoCallback(), HfRecord(stop))
    assert trainer.state.global_step == 4
    assert not metrics.exists()


def test_hf_missing_metric_names_the_keys_present(tmp_path: Path, protocol: tuple[Path, Path]) -> None:
    with pytest.raises(ValueError, match=r"'eval_accuracy'.*'eval_loss'"):
        hf_train(tmp_path, huggingface.HpoCallback(metric="eval_accuracy"))


# --- Lightning --------------------------------------------------------------------------------


class PlRegressor(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)
        self.validations: list[tuple[int, float]] = []

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self.linear(x), y)

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.linear(x), y))

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self.validations.append((self.trainer.global_step, float(self.trainer.callback_metrics["val_loss"])))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)


class PlStopAfterFirst(pl.Callback):
    def __init__(self, stop: Path) -> None:
        self.stop = stop

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.stop.touch()


def pl_fit(*callbacks: pl.Callback, model: PlRegressor | None = None) -> tuple[pl.Trainer, PlRegressor]:
    model = model or PlRegressor()
    loader = DataLoader(TensorDataset(*regression()), batch_size=8)  # 4 batches an epoch
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_steps=8, val_check_interval=2, num_sanity_val_steps=1,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=list(callbacks),
    )
    trainer.fit(model, loader, loader)
    return trainer, model


def test_lightning_reports_each_validation_not_the_sanity_check(protocol: tuple[Path, Path]) -> None:
    metrics, _ = protocol
    trainer, model = pl_fit(lightning.HpoCallback())
    assert [s for s, _ in model.validations] == [2, 4, 6, 8]
    assert [(line["budget"], line["value"]) for line in lines(metrics)] == [
        (float(s), pytest.approx(v)) for s, v in model.validations
    ]
    trainer.validate(model, DataLoader(TensorDataset(*regression()), batch_size=8))
    assert len(lines(metrics)) == 4, "trainer.validate() after fitting is no step of the trial"


def test_lightning_budget_in_epochs(protocol: tuple[Path, Path]) -> None:
    metrics, _ = protocol
    pl_fit(lightning.HpoCallback(budget="epoch"))
    assert [line["budget"] for line in lines(metrics)] == [0.5, 1.0, 1.5, 2.0]


def test_lightning_stops_at_the_validation_after_the_stop_file(protocol: tuple[Path, Path]) -> None:
    metrics, stop = protocol
    trainer, model = pl_fit(lightning.HpoCallback(), PlStopAfterFirst(stop))
    assert trainer.global_step == 4
    assert [s for s, _ in model.validations] == [2, 4]
    assert [line["budget"] for line in lines(metrics)] == [2.0, 4.0]


def test_lightning_missing_metric_names_the_keys_present(protocol: tuple[Path, Path]) -> None:
    with pytest.raises(ValueError, match=r"'val_acc'.*'val_loss'"):
        pl_fit(lightning.HpoCallback(monitor="val_acc"))


def torchrun(script: str, out: Path) -> list[dict[str, Any]]:
    """Runs tests/trainers/SCRIPT on two CPU processes; each rank's ``rank-R.json``. The
    subprocess timeout is what fails a run whose ranks disagree and wait on each other."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               str(ROOT / "tests" / "trainers" / script), str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads((out / f"rank-{r}.json").read_text()) for r in (0, 1)]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_lightning_ddp_one_line_per_validation_and_all_ranks_stop(tmp_path: Path, protocol: tuple[Path, Path]) -> None:
    """Two processes under torchrun. Only rank 1's stop file appears (after the first
    validation), so rank 0 stops at the second validation only if the ranks agree; were they
    not to, rank 0 would train on alone and fail at its next collective once rank 1 exits."""
    metrics, stop = protocol
    ranks = torchrun("lightning_ddp.py", tmp_path)
    assert [r["global_step"] for r in ranks] == [4, 4], "both ranks stopped at the second validation"
    assert [line["budget"] for line in lines(metrics)] == [2.0, 4.0], "rank 0 alone wrote, once a validation"
    assert not stop.exists() and (tmp_path / "stop-rank-1").exists()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_hf_ddp_one_line_per_evaluation_and_all_ranks_stop(tmp_path: Path, protocol: tuple[Path, Path]) -> None:
    """As the Lightning DDP test: only rank 1 sees a stop file; without the callback's
    all-reduce rank 0 would train on and wait for rank 1 at its next step's gradients."""
    metrics, stop = protocol
    ranks = torchrun("hf_ddp.py", tmp_path)
    assert [(r["global_step"], r["world"]) for r in ranks] == [(4, 2), (4, 2)]
    assert [(line["budget"], line["step"]) for line in lines(metrics)] == [(2.0, 2), (4.0, 4)]
    assert not stop.exists() and (tmp_path / "stop-rank-1").exists()


# --- End to end -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_hf_script_as_a_command_objective_completes_with_its_eval_loss(tmp_path: Path) -> None:
    """``hpo sweep run --command`` runs tests/trainers/hf_train.py; the trial is recorded with the
    evaluations HpoCallback reported, and completes with the last one's eval_loss."""
    url = f"sqlite:///{tmp_path / 'hf.db'}"
    space = SearchSpace({"learning_rate": Float(0.01, 0.1, log=True)}, Fidelity("steps", 1, 6))
    hpo.create_study("hf", url, search_space=space, algorithm="random")
    script = ROOT / "tests" / "trainers" / "hf_train.py"
    command = f"{sys.executable} {script} --lr {{learning_rate}} --steps {{budget}}"
    done = subprocess.run(
        ["hpo", "sweep", "run", "hf", "--storage", url, "--command", command, "--max-trials", "1", "--quiet",
         "--output-root", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=240, cwd=tmp_path, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [trial] = hpo.load_study("hf", url).trials
    assert trial.state is TrialState.COMPLETED, trial.error
    written = lines(tmp_path / "runs" / "hpo-runs" / "hf" / f"trial-{trial.number}" / "metrics.jsonl")
    assert [line["budget"] for line in written] == [2.0, 4.0, 6.0]
    assert trial.intermediate_values == {line["budget"]: line["value"] for line in written}
    assert trial.value == written[-1]["value"]
