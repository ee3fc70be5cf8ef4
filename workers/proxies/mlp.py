"""A residual MLP classifier for proxy sweeps, in SP, muP or depth-muP.

An input layer (``embed``: features to width, the MLP's analogue of an embedding: its fan-in
does not grow), ``depth`` residual blocks ``h + m * relu(W h)`` and a readout to the classes.
The residual form is what lets depth-muP scale the branches. N counts the blocks only:
``N = depth * (width^2 + width)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from workers.proxies.parameterization import ProxyConfig, ProxyConfigError, build, init_readout, make_readout


@dataclass(frozen=True)
class MLPConfig(ProxyConfig):
    in_features: int = 64
    classes: int = 10

    def __post_init__(self) -> None:
        for name in ("in_features", "classes"):
            if getattr(self, name) < 1:
                raise ProxyConfigError(f"{name} must be at least 1, got {getattr(self, name)}")

    @property
    def non_embedding_params(self) -> int:
        return self.depth * (self.width * self.width + self.width)


class ResidualBlock(nn.Module):
    def __init__(self, cfg: MLPConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.width, cfg.width)
        self.branch_mult = cfg.scaling.branch_mult

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.branch_mult * F.relu(self.fc(h))


class ResidualMLP(nn.Module):
    """Maps features (batch, in_features) to logits (batch, classes)."""

    def __init__(self, cfg: MLPConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Linear(cfg.in_features, cfg.width)
        self.blocks = nn.ModuleList(ResidualBlock(cfg) for _ in range(cfg.depth))
        self.readout = make_readout(cfg, cfg.classes, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        for block in self.blocks:
            h = block(h)
        return self.readout(h)

    @torch.no_grad()
    def initialize(self) -> None:
        cfg, scaling = self.cfg, self.cfg.scaling
        nn.init.normal_(self.embed.weight, std=scaling.hidden_std(cfg.init_std, cfg.in_features))
        nn.init.zeros_(self.embed.bias)
        for block in self.blocks:
            assert isinstance(block, ResidualBlock)  # nn.ModuleList hands out plain Modules to the type checker
            nn.init.normal_(block.fc.weight, std=scaling.hidden_std(cfg.init_std, cfg.width))
            nn.init.zeros_(block.fc.bias)
        init_readout(self.readout.weight, cfg)
        nn.init.zeros_(self.readout.bias)

    def non_embedding_params(self) -> int:
        return sum(p.numel() for name, p in self.named_parameters() if name.startswith("blocks."))


def build_mlp(cfg: MLPConfig) -> ResidualMLP:
    """The model, with base shapes attached (muP) and initialised, on the CPU."""
    return build(ResidualMLP, cfg)
