"""A Hugging Face ``Trainer`` as a command objective's script: report each evaluation to the
study, stop when it prunes the trial. Needs the extra: ``pip install 'hposcale[huggingface]'``.

::

    from hpo import client
    from hpo.integrations.huggingface import HpoCallback

    lr = client.params().get("learning_rate", 1e-4)
    args = TrainingArguments(output_dir=..., learning_rate=lr, eval_strategy="steps", eval_steps=200)
    Trainer(model, args, train_dataset=..., eval_dataset=..., callbacks=[HpoCallback()]).train()

It speaks :mod:`hpo.client`'s protocol (the metrics file and the stop file a command objective's
worker sets), so the script still runs by hand, reporting nothing. Invariants:

- Only the world's main process (``state.is_world_process_zero``, and the client's own
  ``RANK`` rule) writes a line, so a DDP run records one line per evaluation.
- Every rank sets ``control.should_training_stop`` at the same evaluation: the ranks agree
  (an all-reduce when torch.distributed is initialized), because a rank that stops while
  another trains on waits for it forever at the next gradient all-reduce.
"""

from __future__ import annotations

from typing import Any

try:
    import torch
    from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
except ImportError as error:  # the extra is not installed
    raise ImportError(
        f"hpo.integrations.huggingface needs transformers ({error}): pip install 'hposcale[huggingface]'"
    ) from error

from hpo import client

__all__ = ["HpoCallback"]

#: What a reported budget counts: optimizer steps, or (fractional) epochs.
BUDGETS = ("step", "epoch")


class HpoCallback(TrainerCallback):
    """Reports ``metrics[metric]`` at each evaluation, at ``state.global_step`` (``budget="step"``)
    or ``state.epoch`` (``budget="epoch"``), and ends training once the study stops the trial.
    ``metric`` is a key of the Trainer's evaluation metrics, prefix included (``eval_loss``)."""

    def __init__(self, metric: str = "eval_loss", budget: str = "step") -> None:
        if budget not in BUDGETS:
            raise ValueError(f"budget must be one of {', '.join(BUDGETS)}, not {budget!r}")
        self.metric = metric
        self.budget = budget

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        metrics = metrics or {}
        if self.metric not in metrics:
            raise ValueError(
                f"HpoCallback: no evaluation metric {self.metric!r}; the Trainer gave {sorted(metrics)}"
            )
        if state.is_world_process_zero:
            at = state.global_step if self.budget == "step" else (state.epoch or 0.0)
            extra = {k: v for k, v in metrics.items() if k != self.metric}
            client.report(at, metrics[self.metric], step=state.global_step, **extra)
        if _all_agree_to_stop(client.should_stop(), args.device):
            control.should_training_stop = True


def _all_agree_to_stop(stop: bool, device: torch.device) -> bool:
    """True on every rank if any rank saw the stop file (the file may appear between two ranks'
    looks at it). ``device`` is where the process group's backend takes tensors."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return stop
    flag = torch.tensor(int(stop), device=device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    return bool(flag.item())
