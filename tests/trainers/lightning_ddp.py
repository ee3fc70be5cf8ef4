"""Lightning DDP on two CPU processes with hpo.integrations.lightning.HpoCallback, launched by
tests/test_trainer_callbacks.py as ``torchrun --standalone --nproc-per-node 2 lightning_ddp.py OUT``.

Rank 1 alone looks at its own stop file (``OUT/stop-rank-1``), which it creates after the first
validation; rank 0's (HPO_STOP_FILE as the test set it) never appears. So both ranks stop at the
second validation only if the callback makes them agree. Each rank notes in ``OUT/rank-R.json``
the step it stopped at.
"""

import json
import os
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from hpo.integrations.lightning import HpoCallback

out = Path(sys.argv[1])
rank = int(os.environ["RANK"])
if rank == 1:
    os.environ["HPO_STOP_FILE"] = str(out / "stop-rank-1")


class Regressor(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self.linear(x), y)

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.linear(x), y), sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)


class StopRankOneAfterFirstValidation(pl.Callback):
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if rank == 1 and not trainer.sanity_checking:
            Path(os.environ["HPO_STOP_FILE"]).touch()


x = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
data = TensorDataset(x, x @ torch.tensor([[1.0], [-2.0], [3.0], [0.5]]))
trainer = pl.Trainer(
    accelerator="cpu", devices=2, strategy="ddp", max_steps=8, val_check_interval=2, num_sanity_val_steps=1,
    logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    callbacks=[HpoCallback(), StopRankOneAfterFirstValidation()],
)
trainer.fit(Regressor(), DataLoader(data, batch_size=8), DataLoader(data, batch_size=8))
(out / f"rank-{rank}.json").write_text(json.dumps({"global_step": trainer.global_step}))
# torch's gloo backend now and then aborts a rank in the interpreter's teardown ("terminate
# called without an active exception"), after all the work is done: leave the group, then
# leave without the teardown.
if torch.distributed.is_initialized():
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
