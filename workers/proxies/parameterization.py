"""How a proxy's initialisation, multipliers and per-layer learning rates scale with its size.

Three parameterizations, chosen by name:

* ``sp``, standard: hidden weights drawn with std ``init_std * sqrt(base_width / fan_in)`` (the
  usual fan-in init, equal to ``init_std`` at the base width), a plain linear readout, attention
  logits scaled by ``1/sqrt(d_head)``, one learning rate for everything (AdamW). Its optimal
  learning rate falls as the model widens, which is what muP fixes.
* ``mup``, maximal update parameterization (Yang et al., "Tensor Programs V", 2022) through
  Microsoft's ``mup`` package: base shapes from a base and a delta model (``set_base_shapes``),
  ``MuReadout`` (output divided by the width multiplier), zero-initialised readout and query
  weights, attention logits scaled by ``1/d_head``, and ``MuAdamW``, which divides the learning
  rate of hidden matrices by their width multiplier.
* ``depth-mup``: ``mup`` plus residual branches multiplied by ``(base_depth / depth)^alpha`` and
  the hidden matrices' learning rate by ``(base_depth / depth)^(1 - alpha)``: alpha = 1/2 is
  Depth-muP (Yang et al., "Tensor Programs VI", 2023), alpha = 1, the default, is CompleteP
  (Dey et al., 2025), so learning rates transfer across depth as well as width.

Everything is relative to a base width and depth (64 and 2 by default) so that the
hyperparameters a sweep finds at any size mean the same thing at every other size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import torch
from mup import MuAdamW, MuReadout, set_base_shapes
from torch import nn

PARAMETERIZATIONS = ("sp", "mup", "depth-mup")


class ProxyConfigError(ValueError):
    """A proxy setting that cannot build a model (a bad parameterization, width, head count)."""


@dataclass(frozen=True)
class Scaling:
    """The multipliers a parameterization applies at one model size."""

    param: str
    width: int
    base_width: int
    depth: int
    base_depth: int
    depth_alpha: float = 1.0

    def __post_init__(self) -> None:
        if self.param not in PARAMETERIZATIONS:
            raise ProxyConfigError(
                f"unknown parameterization {self.param!r}; choose one of {', '.join(PARAMETERIZATIONS)}"
            )
        for name in ("width", "base_width", "depth", "base_depth"):
            if getattr(self, name) < 1:
                raise ProxyConfigError(f"{name} must be at least 1, got {getattr(self, name)}")

    @property
    def is_mup(self) -> bool:
        return self.param != "sp"

    @property
    def branch_mult(self) -> float:
        """Multiplier of every residual branch (1 unless depth-aware)."""
        if self.param != "depth-mup":
            return 1.0
        return (self.base_depth / self.depth) ** self.depth_alpha

    @property
    def depth_lr_mult(self) -> float:
        """Extra learning-rate factor of the hidden matrices inside residual blocks."""
        if self.param != "depth-mup":
            return 1.0
        return (self.base_depth / self.depth) ** (1.0 - self.depth_alpha)

    def attention_scale(self, head_dim: int, base_head_dim: int, attn_mult: float) -> float:
        """muP's 1/d attention (equal to SP's 1/sqrt(d) at the base head size), SP's 1/sqrt(d)."""
        if self.is_mup:
            return attn_mult * math.sqrt(base_head_dim) / head_dim
        return attn_mult / math.sqrt(head_dim)

    def hidden_std(self, init_std: float, fan_in: int) -> float:
        """Std of a hidden matrix: fan-in scaled, ``init_std`` at the base width (both SP and muP)."""
        return init_std * math.sqrt(self.base_width / fan_in)


@dataclass(frozen=True)
class ProxyConfig:
    """What every proxy shares: its size, its parameterization relative to a base size, and
    the init and output multipliers a sweep tunes."""

    width: int = 128
    depth: int = 2
    param: str = "mup"
    base_width: int = 64
    base_depth: int = 2
    depth_alpha: float = 1.0
    init_std: float = 0.02
    output_mult: float = 1.0
    #: muP only: zero the readout (and the GPT's query projection), as the muP paper
    #: recommends. ``False`` draws them as SP does at the base width (readout std ``init_std``
    #: at every width, its output shrinking with ``MuReadout``'s 1/width multiplier; query
    #: fan-in scaled), which is still muP: a base-width choice to tune like the multipliers.
    zero_init: bool = True

    @property
    def scaling(self) -> Scaling:
        return Scaling(self.param, self.width, self.base_width, self.depth, self.base_depth, self.depth_alpha)

    @property
    def zeroes_readout(self) -> bool:
        """Whether the init zeroes the readout (and the GPT's query): muP with ``zero_init``."""
        return self.scaling.is_mup and self.zero_init


class Readout(nn.Linear):
    """SP's readout: a plain linear layer whose input is multiplied by ``output_mult``, where
    ``MuReadout`` applies it too, so a bias is never scaled and at the base width the two
    readouts are the same layer."""

    def __init__(self, in_features: int, out_features: int, *, bias: bool, output_mult: float) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.output_mult = output_mult

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.output_mult * x)


def make_readout(cfg: ProxyConfig, out_features: int, *, bias: bool) -> nn.Linear:
    """The readout from width to ``out_features``: ``MuReadout`` under muP (``output_mult``
    and the 1/width multiplier), ``Readout`` under SP (``output_mult``); either way the
    model just calls it, and ``init_readout`` sets its weights."""
    if cfg.scaling.is_mup:
        return MuReadout(cfg.width, out_features, bias=bias, readout_zero_init=True, output_mult=cfg.output_mult)
    return Readout(cfg.width, out_features, bias=bias, output_mult=cfg.output_mult)


@torch.no_grad()
def init_readout(weight: torch.Tensor, cfg: ProxyConfig) -> None:
    """The readout's init, one rule for every proxy: zero (muP with ``zero_init``), std
    ``init_std`` at every width (muP without it; ``MuReadout`` shrinks the output), or SP's
    fan-in std."""
    if cfg.zeroes_readout:
        weight.zero_()
    elif cfg.scaling.is_mup:
        nn.init.normal_(weight, std=cfg.init_std)
    else:
        nn.init.normal_(weight, std=cfg.scaling.hidden_std(cfg.init_std, cfg.width))


C = TypeVar("C", bound=ProxyConfig)
M = TypeVar("M", bound=nn.Module)


def build(model_type: type[M], cfg: C) -> M:
    """The model, initialised, on the CPU; under muP with every parameter's ``infshape`` (which
    dimensions grow with width) taken from a base and a delta model that differ from it only
    in width, built on the meta device (shapes, no memory). ``rescale_params=False``: the
    model's own init already follows the muP rules."""
    model = model_type(cfg)
    if cfg.scaling.is_mup:
        with torch.device("meta"):
            base = model_type(replace(cfg, width=cfg.base_width))
            delta = model_type(replace(cfg, width=2 * cfg.base_width))
        set_base_shapes(model, base, delta=delta, rescale_params=False)
    model.initialize()  # type: ignore[operator]
    return model


def make_optimizer(
    model: nn.Module,
    scaling: Scaling,
    *,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.95),
    embed_lr_mult: float = 1.0,
) -> torch.optim.Optimizer:
    """AdamW for SP, ``MuAdamW`` for muP; weight decay only on matrices (not on norms, biases or
    embeddings). Under depth-muP the matrices inside residual blocks get the depth factor.

    ``embed_lr_mult`` multiplies the learning rate of the input layer (the token and position
    embeddings; the MLP's ``embed``), the same under every parameterization. Under muP the
    embeddings are vector-like (one dimension grows with width), so ``MuAdamW`` leaves their
    rate as it is at every width: the multiplier is a base-width hyperparameter, like
    ``output_mult``, tuned once at the base width and carried to every width unchanged."""
    if not embed_lr_mult > 0:
        raise ProxyConfigError(f"embed_lr_mult must be positive, got {embed_lr_mult}")
    decay: list[nn.Parameter] = []
    block_decay: list[nn.Parameter] = []
    embed: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        if "embed" in name.split(".")[0]:
            embed.append(p)
        elif p.ndim < 2:
            no_decay.append(p)
        elif name.startswith("blocks."):
            block_decay.append(p)
        else:
            decay.append(p)
    groups: list[dict[str, Any]] = [
        {"params": decay, "weight_decay": weight_decay, "lr": lr},
        {"params": block_decay, "weight_decay": weight_decay, "lr": lr * scaling.depth_lr_mult},
        {"params": embed, "weight_decay": 0.0, "lr": lr * embed_lr_mult},
        {"params": no_decay, "weight_decay": 0.0, "lr": lr},
    ]
    groups = [g for g in groups if g["params"]]
    # fused: one kernel for all parameters instead of a Python loop of small ones per tensor
    if scaling.is_mup:
        optimizer = MuAdamW(groups, lr=lr, betas=betas, fused=True)
    else:
        optimizer = torch.optim.AdamW(groups, lr=lr, betas=betas, fused=True)
    for g in optimizer.param_groups:  # MuAdamW rescales lr per width; schedules scale from here
        g["initial_lr"] = g["lr"]
    return optimizer
