"""User models for the coordinate check of ``hpo mup coord-check --model module:build`` (the
tests put this folder on PYTHONPATH): a small residual MLP classifier built as a user would,
in muP (``mup.MuReadout``, base shapes from ``set_mup_base_shapes``) and in SP, one whose
readout is a plain ``nn.Linear`` (refused under muP), and ``batch``, the check's data."""

from __future__ import annotations

import torch
from mup import MuReadout
from torch import nn

from workers.proxies.base_shapes import set_mup_base_shapes

IN_FEATURES, CLASSES, BASE_WIDTH = 16, 10, 32


class Net(nn.Module):
    """features -> ``embed`` -> two residual ReLU blocks -> ``head``; layer names as a user's."""

    def __init__(self, width: int, *, mup_readout: bool) -> None:
        super().__init__()
        self.embed = nn.Linear(IN_FEATURES, width)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(width, width), nn.ReLU()) for _ in range(2))
        self.head = MuReadout(width, CLASSES, readout_zero_init=True) if mup_readout else nn.Linear(width, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        for block in self.blocks:
            h = h + block(h)
        return self.head(h)


def net(width: int) -> Net:
    """The muP model before its base shapes (``--model user_models:net --base-width 32``)."""
    return Net(width, mup_readout=True)


def build_mup(width: int) -> nn.Module:
    """muP: ``MuReadout`` and base shapes relative to width 32 (PyTorch's init, rescaled by mup)."""
    return set_mup_base_shapes(net, width, BASE_WIDTH)


def build_sp(width: int) -> nn.Module:
    """SP: PyTorch's default init and a plain readout, no base shapes."""
    return Net(width, mup_readout=False)


def build_plain_readout(width: int) -> nn.Module:
    """A muP attempt whose readout is still a plain ``nn.Linear``: refused, naming ``head``."""
    return set_mup_base_shapes(build_sp, width, BASE_WIDTH)


def batch(size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random features and labels (the check needs batches, not a task)."""
    return torch.randn(size, IN_FEATURES, generator=generator), torch.randint(0, CLASSES, (size,), generator=generator)
