"""A user's Hugging Face training script, run by tests/test_trainer_callbacks.py as a command
objective: ``hf_train.py --lr {learning_rate} --steps {budget}``. It fits a linear model on CPU,
evaluating every 2 steps; hpo.integrations.huggingface.HpoCallback reports each evaluation."""

import argparse

import torch
from transformers import Trainer, TrainingArguments

from hpo import client
from hpo.integrations.huggingface import HpoCallback

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--steps", type=int, required=True)
cli = parser.parse_args()


class Regressor(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": torch.nn.functional.mse_loss(self.linear(x), labels)}


x = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
rows = [{"x": xi, "labels": yi} for xi, yi in zip(x, x @ torch.tensor([[1.0], [-2.0], [3.0], [0.5]]))]
out = client.output_dir()
assert out is not None, "run by a command objective, HPO_OUTPUT_DIR is set"
args = TrainingArguments(
    output_dir=str(out / "hf"), eval_strategy="steps", eval_steps=2, max_steps=cli.steps, per_device_train_batch_size=8,
    learning_rate=cli.lr, report_to=[], use_cpu=True, save_strategy="no", disable_tqdm=True, logging_strategy="no",
)
Trainer(model=Regressor(), args=args, train_dataset=rows, eval_dataset=rows, callbacks=[HpoCallback()]).train()
