"""A Llama-style decoder-only transformer for proxy sweeps, in SP, muP or depth-muP.

Pre-RMSNorm blocks (causal self-attention with rotary position embeddings on the queries and
keys, then a SwiGLU MLP ``w2(silu(w1 x) * w3 x)``), no biases, no learned positions, a final
RMSNorm and a readout, optionally tied to the token embedding. Module names are stable
(``embed``, ``blocks.{i}.attn``, ``blocks.{i}.mlp``, ``blocks.{i}``, ``norm``, ``readout``):
the coordinate check and the optimizer's parameter groups key on them.

Tied under muP, the readout is ``mup.MuSharedReadout``: it reads the embedding's weight,
whose ``infshape`` (vocab finite, width infinite) gives the readout its 1/width multiplier;
the shared weight is drawn as an embedding (std ``init_std``), so ``zero_init`` zeroes only
the query there. Tied under SP, the plain readout reads the embedding's weight.

The SwiGLU hidden size is Llama's rule, ``multiple_of * ceil(int(8 width / 3) / multiple_of)``,
so it grows with width as muP needs. N leaves out the embedding and the readout, as the GPT
proxy's does: ``N = depth * (4 width^2 + 3 width hidden + 2 width) + width``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from mup import MuSharedReadout
from torch import nn
from torch.nn import functional as F

from workers.proxies.parameterization import ProxyConfig, ProxyConfigError, Readout, build, init_readout, make_readout


def swiglu_hidden(width: int, multiple_of: int) -> int:
    """Llama's SwiGLU hidden size: two thirds of 4 x width, rounded up to ``multiple_of``."""
    return multiple_of * math.ceil(int(8 * width / 3) / multiple_of)


@dataclass(frozen=True)
class LlamaConfig(ProxyConfig):
    vocab_size: int = 256
    seq_len: int = 64
    heads: int = 4
    attn_mult: float = 1.0
    tie_embeddings: bool = False
    multiple_of: int = 16
    rope_theta: float = 10000.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "seq_len", "heads", "multiple_of"):
            if getattr(self, name) < 1:
                raise ProxyConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.rope_theta > 0:
            raise ProxyConfigError(f"rope_theta must be positive, got {self.rope_theta}")
        for w in (self.width, self.base_width):
            if w % self.heads or (w // self.heads) % 2:
                raise ProxyConfigError(f"width {w} over {self.heads} heads is not an even head size (rotary pairs)")

    @property
    def hidden(self) -> int:
        return swiglu_hidden(self.width, self.multiple_of)

    @property
    def non_embedding_params(self) -> int:
        """N, counted by hand from the architecture (the tests check it against the model)."""
        d = self.width
        return self.depth * (4 * d * d + 3 * d * self.hidden + 2 * d) + d


def rotary_tables(seq_len: int, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of position x frequency, (seq_len, head_dim / 2): pair i turns at
    ``theta^(-2i / head_dim)`` radians per position."""
    freqs = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), freqs)
    return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding of (batch, heads, seq, head_dim): each adjacent pair turned by its angle."""
    t = x.shape[-2]
    x1, x2 = x.float()[..., 0::2], x.float()[..., 1::2]
    c, s = cos[:t], sin[:t]
    out = torch.stack((x1 * c - x2 * s, x1 * s + x2 * c), dim=-1).flatten(-2)
    return out.type_as(x)


class Attention(nn.Module):
    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        head_dim = cfg.width // cfg.heads
        self.q = nn.Linear(cfg.width, cfg.width, bias=False)
        self.k = nn.Linear(cfg.width, cfg.width, bias=False)
        self.v = nn.Linear(cfg.width, cfg.width, bias=False)
        self.o = nn.Linear(cfg.width, cfg.width, bias=False)
        self.scale = cfg.scaling.attention_scale(head_dim, cfg.base_width // cfg.heads, cfg.attn_mult)
        cos, sin = rotary_tables(cfg.seq_len, head_dim, cfg.rope_theta)
        self.cos: torch.Tensor
        self.sin: torch.Tensor
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = (proj(x).view(b, t, self.heads, c // self.heads).transpose(1, 2) for proj in (self.q, self.k, self.v))
        q, k = rotate(q, self.cos, self.sin), rotate(k, self.cos, self.sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)
        return self.o(y.transpose(1, 2).reshape(b, t, c))


class SwiGLU(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(width, hidden, bias=False)  # gate
        self.w3 = nn.Linear(width, hidden, bias=False)  # up
        self.w2 = nn.Linear(hidden, width, bias=False)  # down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.attn_norm = nn.RMSNorm(cfg.width)
        self.attn = Attention(cfg)
        self.mlp_norm = nn.RMSNorm(cfg.width)
        self.mlp = SwiGLU(cfg.width, cfg.hidden)
        self.branch_mult = cfg.scaling.branch_mult

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.branch_mult * self.attn(self.attn_norm(x))
        return x + self.branch_mult * self.mlp(self.mlp_norm(x))


class Llama(nn.Module):
    """Maps token ids (batch, seq) to logits (batch, seq, vocab)."""

    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.width)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.RMSNorm(cfg.width)
        self.readout: nn.Linear
        if not cfg.tie_embeddings:
            self.readout = make_readout(cfg, cfg.vocab_size, bias=False)
        elif cfg.scaling.is_mup:
            self.readout = MuSharedReadout(self.embed.weight, bias=False, output_mult=cfg.output_mult)
        else:
            self.readout = Readout(cfg.width, cfg.vocab_size, bias=False, output_mult=cfg.output_mult)
            self.readout.weight = self.embed.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x)
        return self.readout(self.norm(x))

    @torch.no_grad()
    def initialize(self) -> None:
        """The parameterization's init, the GPT proxy's rules: embedding std ``init_std``,
        hidden matrices fan-in scaled, norms at one; muP zeroes the query and (untied) the
        readout unless ``zero_init`` is off."""
        cfg, scaling = self.cfg, self.cfg.scaling
        nn.init.normal_(self.embed.weight, std=cfg.init_std)
        for block in self.blocks:
            assert isinstance(block, Block)  # nn.ModuleList hands out plain Modules to the type checker
            attn, mlp = block.attn, block.mlp
            for linear in (attn.q, attn.k, attn.v, attn.o, mlp.w1, mlp.w3, mlp.w2):
                nn.init.normal_(linear.weight, std=scaling.hidden_std(cfg.init_std, linear.in_features))
            if cfg.zeroes_readout:
                attn.q.weight.zero_()
            for norm in (block.attn_norm, block.mlp_norm):
                nn.init.ones_(norm.weight)
        nn.init.ones_(self.norm.weight)
        if not cfg.tie_embeddings:
            init_readout(self.readout.weight, cfg)

    def non_embedding_params(self) -> int:
        """N counted from the live parameters (everything but the embedding and readout)."""
        return sum(p.numel() for name, p in self.named_parameters() if not name.startswith(("embed.", "readout.")))


def build_llama(cfg: LlamaConfig) -> Llama:
    """The model, with base shapes attached (muP) and initialised, on the CPU."""
    return build(Llama, cfg)
