"""A Hugging Face Trainer, DDP on two CPU processes, with hpo.integrations.huggingface.HpoCallback;
launched by tests/test_trainer_callbacks.py as ``torchrun --standalone --nproc-per-node 2 hf_ddp.py OUT``.

Rank 1 alone looks at its own stop file (``OUT/stop-rank-1``), which it creates after the first
evaluation; rank 0's (HPO_STOP_FILE as the test set it) never appears. So both ranks stop at the
second evaluation only if the callback makes them agree. Each rank notes in ``OUT/rank-R.json``
the step it stopped at.
"""

import json
import os
import sys
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from hpo.integrations.huggingface import HpoCallback

out = Path(sys.argv[1])
rank = int(os.environ["RANK"])
if rank == 1:
    os.environ["HPO_STOP_FILE"] = str(out / "stop-rank-1")


class Regressor(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": torch.nn.functional.mse_loss(self.linear(x), labels)}


class Rows(torch.utils.data.Dataset):
    def __init__(self) -> None:
        self.x = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
        self.y = self.x @ torch.tensor([[1.0], [-2.0], [3.0], [0.5]])

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "labels": self.y[i]}


class StopRankOneAfterFirstEvaluation(TrainerCallback):
    def on_evaluate(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if rank == 1:
            Path(os.environ["HPO_STOP_FILE"]).touch()


args = TrainingArguments(
    output_dir=str(out / "hf"), eval_strategy="steps", eval_steps=2, max_steps=8, per_device_train_batch_size=8,
    learning_rate=0.05, report_to=[], use_cpu=True, save_strategy="no", disable_tqdm=True, logging_strategy="no",
)
callbacks = [HpoCallback(), StopRankOneAfterFirstEvaluation()]
trainer = Trainer(model=Regressor(), args=args, train_dataset=Rows(), eval_dataset=Rows(), callbacks=callbacks)
trainer.train()
(out / f"rank-{rank}.json").write_text(json.dumps({"global_step": trainer.state.global_step, "world": args.world_size}))
# torch's gloo backend now and then aborts a rank in the interpreter's teardown ("terminate
# called without an active exception"), after all the work is done: leave the group, then
# leave without the teardown.
if torch.distributed.is_initialized():
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
