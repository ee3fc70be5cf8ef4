"""A PyTorch Lightning ``Trainer`` as a command objective's script: report each validation to
the study, stop when it prunes the trial. Needs the extra: ``pip install 'hposcale[lightning]'``.

::

    from hpo import client
    from hpo.integrations.lightning import HpoCallback

    model = MyModule(lr=client.params().get("learning_rate", 1e-3))   # it logs "val_loss"
    Trainer(max_steps=10_000, val_check_interval=500, callbacks=[HpoCallback()]).fit(model, data)

It speaks :mod:`hpo.client`'s protocol (the metrics file and the stop file a command objective's
worker sets), so the script still runs by hand, reporting nothing. The callback subclasses
``lightning.pytorch.Callback`` (the ``lightning`` package); a Trainer from the standalone
``pytorch_lightning`` package refuses it, as it refuses any callback of the other package.
Invariants:

- Only global rank zero (``trainer.is_global_zero``, and the client's own ``RANK`` rule)
  writes a line, so a DDP run records one line per validation. Only validations within
  ``trainer.fit`` are reported: not the sanity check before training, nor ``trainer.validate()``.
- Every rank sets ``trainer.should_stop`` at the same validation: the ranks agree through the
  strategy (any rank that saw the stop file stops them all), because a rank that stops while
  another trains on waits for it forever at the next gradient all-reduce.
"""

from __future__ import annotations

import math

try:
    import lightning.pytorch as pl
    from lightning.pytorch.trainer.states import TrainerFn
except ImportError as error:  # the extra is not installed
    raise ImportError(
        f"hpo.integrations.lightning needs lightning ({error}): pip install 'hposcale[lightning]'"
    ) from error

from hpo import client

__all__ = ["HpoCallback"]

#: What a reported budget counts: optimizer steps, or (fractional) epochs of training batches.
BUDGETS = ("step", "epoch")


class HpoCallback(pl.Callback):
    """Reports ``trainer.callback_metrics[monitor]`` (what the module logged with
    ``self.log(monitor, ...)``) at each validation, at ``trainer.global_step`` (``budget="step"``)
    or at the epochs trained so far (``budget="epoch"``), and stops training once the study
    stops the trial."""

    def __init__(self, monitor: str = "val_loss", budget: str = "step") -> None:
        if budget not in BUDGETS:
            raise ValueError(f"budget must be one of {', '.join(BUDGETS)}, not {budget!r}")
        self.monitor = monitor
        self.budget = budget

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return  # the check before training, or trainer.validate(): no step of the trial
        metrics = trainer.callback_metrics
        if self.monitor not in metrics:
            raise ValueError(
                f"HpoCallback: no logged metric {self.monitor!r}; the module logged {sorted(metrics)}"
            )
        if trainer.is_global_zero:
            client.report(_budget(trainer, self.budget), float(metrics[self.monitor]), step=trainer.global_step)
        if trainer.strategy.reduce_boolean_decision(client.should_stop(), all=False):
            trainer.should_stop = True


def _budget(trainer: pl.Trainer, unit: str) -> float:
    if unit == "step":
        return float(trainer.global_step)
    # Batches done in the current epoch over its length: validation at an epoch's end counts
    # the whole epoch, validation within one (val_check_interval < 1) a fraction of it.
    batches = float(trainer.num_training_batches)
    if not math.isfinite(batches):
        raise ValueError("HpoCallback(budget='epoch') needs a training loader with a length; use budget='step'")
    done = trainer.fit_loop.epoch_loop.batch_progress.current.ready
    return trainer.current_epoch + done / batches
