"""A tiny data-parallel trainer, launched by tests/test_command_objective.py as a user's script
is: ``torchrun --standalone --nproc-per-node 2 ddp_train.py --lr {learning_rate} --steps {budget}``.

Each rank fits a linear model to its own shard on CPU (gloo); DistributedDataParallel averages
the gradients, and each evaluation all-reduces the loss, so every rank holds the same value and
calls :func:`hpo.client.report` with it (only rank 0's call writes). At the end each rank notes
in the output directory how many times it reported and what the client told it.
"""

import argparse
import json
import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from hpo import client

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--steps", type=int, required=True)
args = parser.parse_args()

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
torch.manual_seed(0)
model = DistributedDataParallel(torch.nn.Linear(4, 1))
shard = torch.Generator().manual_seed(rank)
x = torch.randn(64, 4, generator=shard)
y = x @ torch.tensor([[1.0], [-2.0], [3.0], [0.5]])
optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)

reports = 0
for step in range(1, args.steps + 1):
    optimizer.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
    mean = loss.detach().clone()
    dist.all_reduce(mean)
    reports += 1
    if not client.report(step, mean.item() / world, rank=rank, world_size=world):
        break

out = client.output_dir()
assert out is not None, "run by a command objective, HPO_OUTPUT_DIR is set"
(out / f"rank-{rank}.json").write_text(json.dumps({
    "reports": reports, "params": client.params(), "budget": client.budget(), "reporting": client.is_reporting_rank(),
}))
dist.barrier()
dist.destroy_process_group()
# torch's gloo backend now and then aborts a rank in the interpreter's teardown ("terminate
# called without an active exception"), after all the work is done: leave without it.
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
