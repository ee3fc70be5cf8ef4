"""A GPT-style decoder-only transformer for proxy sweeps, in SP, muP or depth-muP.

Pre-LayerNorm blocks (causal self-attention, then a 4x MLP with GELU), no biases in the
linear layers, learned position embeddings, an untied readout. Module names are stable
(``embed``, ``blocks.{i}.attn``, ``blocks.{i}.mlp``, ``blocks.{i}``, ``readout``): the
coordinate check and the optimizer's parameter groups key on them.

N, the non-embedding parameter count the scaling laws use (Kaplan et al. 2020), counts the
blocks and the final LayerNorm and leaves out the token and position embeddings and the
readout: ``N = depth * (12 width^2 + 4 width) + 2 width``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from workers.proxies.parameterization import ProxyConfig, ProxyConfigError, build, init_readout, make_readout


@dataclass(frozen=True)
class GPTConfig(ProxyConfig):
    vocab_size: int = 256
    seq_len: int = 64
    heads: int = 4
    attn_mult: float = 1.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "seq_len", "heads"):
            if getattr(self, name) < 1:
                raise ProxyConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for w in (self.width, self.base_width):
            if w % self.heads:
                raise ProxyConfigError(f"width {w} is not divisible by {self.heads} heads")

    @property
    def non_embedding_params(self) -> int:
        """N, counted by hand from the architecture (the tests check it against the model)."""
        d = self.width
        return self.depth * (12 * d * d + 4 * d) + 2 * d


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width, bias=False)
        self.proj = nn.Linear(cfg.width, cfg.width, bias=False)
        self.scale = cfg.scaling.attention_scale(cfg.width // cfg.heads, cfg.base_width // cfg.heads, cfg.attn_mult)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class MLP(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc = nn.Linear(width, 4 * width, bias=False)
        self.proj = nn.Linear(4 * width, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.width)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.width)
        self.mlp = MLP(cfg.width)
        self.branch_mult = cfg.scaling.branch_mult

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.branch_mult * self.attn(self.ln1(x))
        return x + self.branch_mult * self.mlp(self.ln2(x))


class GPT(nn.Module):
    """Maps token ids (batch, seq) to logits (batch, seq, vocab)."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.width)
        self.pos_embed = nn.Embedding(cfg.seq_len, cfg.width)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.ln_f = nn.LayerNorm(cfg.width)
        self.readout = make_readout(cfg, cfg.vocab_size, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.embed(idx) + self.pos_embed(pos)
        for block in self.blocks:
            x = block(x)
        return self.readout(self.ln_f(x))

    @torch.no_grad()
    def initialize(self) -> None:
        """The parameterization's init; muP zeroes the readout and the query projection unless
        ``zero_init`` is off."""
        cfg, scaling = self.cfg, self.cfg.scaling
        nn.init.normal_(self.embed.weight, std=cfg.init_std)
        nn.init.normal_(self.pos_embed.weight, std=cfg.init_std)
        for block in self.blocks:
            assert isinstance(block, Block)  # nn.ModuleList hands out plain Modules to the type checker
            for linear in (block.attn.qkv, block.attn.proj, block.mlp.fc, block.mlp.proj):
                nn.init.normal_(linear.weight, std=scaling.hidden_std(cfg.init_std, linear.in_features))
            if cfg.zeroes_readout:
                block.attn.qkv.weight[: cfg.width].zero_()
        init_readout(self.readout.weight, cfg)

    def non_embedding_params(self) -> int:
        """N counted from the live parameters (everything but the embeddings and readout)."""
        skip = ("embed.", "pos_embed.", "readout.")
        return sum(p.numel() for name, p in self.named_parameters() if not name.startswith(skip))


def build_gpt(cfg: GPTConfig) -> GPT:
    """The model, with base shapes attached (muP) and initialised, on the CPU."""
    return build(GPT, cfg)
