"""The Llama-style proxy (RoPE, RMSNorm, SwiGLU, optionally tied embeddings): its parameter
count against a hand computation, its muP base shapes, the coordinate check (muP flat in
width, SP growing), a short training run and ``proxy:llama`` as an objective."""

from __future__ import annotations

import math

import pytest
import torch
from mup import MuReadout, MuSharedReadout

from workers.objectives import resolve_objective
from workers.proxies.coord_check import FLAT_SLOPE, coord_check
from workers.proxies.llama import LlamaConfig, build_llama
from workers.proxies.parameterization import ProxyConfigError
from workers.proxies.trainer import train


@pytest.mark.parametrize(("width", "depth", "multiple_of"), [(64, 2, 16), (96, 3, 32), (128, 1, 64)])
def test_llama_non_embedding_parameters_match_hand_counts(width: int, depth: int, multiple_of: int) -> None:
    # SwiGLU hidden: Llama's rule, 2/3 of 4 width rounded up to multiple_of
    hidden = multiple_of * math.ceil(int(2 * 4 * width / 3) / multiple_of)
    # per block: two RMSNorm weights 2d + q, k, v, o 4d^2 + w1, w3 (d x hidden) and w2 (hidden x d); final norm d
    expected = depth * (2 * width + 4 * width * width + 3 * width * hidden) + width
    vocab = 256
    for tied in (False, True):
        cfg = LlamaConfig(width=width, depth=depth, heads=4, multiple_of=multiple_of, vocab_size=vocab, tie_embeddings=tied)
        model = build_llama(cfg)
        assert model.non_embedding_params() == expected == cfg.non_embedding_params
        total = sum(p.numel() for p in model.parameters())
        assert total == expected + vocab * width * (1 if tied else 2)  # the embedding, and the readout unless tied
    assert LlamaConfig(width=width, multiple_of=multiple_of).hidden == hidden == {64: 176, 96: 256, 128: 384}[width]


@pytest.mark.parametrize("param", ["mup", "depth-mup"])
@pytest.mark.parametrize("tied", [False, True])
def test_llama_mup_base_shapes_on_every_parameter(param: str, tied: bool) -> None:
    model = build_llama(LlamaConfig(width=256, depth=2, param=param, base_width=64, tie_embeddings=tied))
    shapes = {name: p.infshape for name, p in model.named_parameters()}
    assert all(hasattr(p, "infshape") for p in model.parameters())
    for name, shape in shapes.items():
        if name.startswith("blocks.") and name.endswith(("q.weight", "k.weight", "v.weight", "o.weight", "w1.weight", "w2.weight", "w3.weight")):
            assert shape.ninf() == 2, name  # hidden matrices: both dimensions grow with width
        else:
            assert shape.ninf() == 1, name  # embedding, norms (and an untied readout): only the width
    assert shapes["blocks.0.attn.q.weight"].width_mult() == 4.0
    assert shapes["embed.weight"].ninf() == 1 and shapes["embed.weight"].width_mult() == 4.0
    readout = model.readout
    assert isinstance(readout, MuSharedReadout if tied else MuReadout) and readout.width_mult() == 4.0
    assert (readout.weight is model.embed.weight) == tied
    assert ("readout.weight" in shapes) != tied
    assert torch.count_nonzero(model.blocks[0].attn.q.weight) == 0  # zero-initialised query under muP
    assert (torch.count_nonzero(readout.weight) == 0) != tied  # a tied readout is the embedding: drawn


def test_llama_sp_ties_the_readout_to_the_embedding() -> None:
    model = build_llama(LlamaConfig(width=64, param="sp", tie_embeddings=True))
    assert model.readout.weight is model.embed.weight and not isinstance(model.readout, MuReadout)
    assert not any(hasattr(p, "infshape") for p in model.parameters())
    with pytest.raises(ProxyConfigError, match="not an even head size"):
        LlamaConfig(width=60, heads=10)


def test_llama_coordinate_check_mup_is_flat_in_width_and_sp_grows() -> None:
    mup = coord_check("llama", (64, 128, 256, 512), param="mup", lr=1e-2, steps=4)
    sp = coord_check("llama", (64, 128, 256), param="sp", lr=1e-2, steps=4)
    assert set(mup.layers) == {"embed", "readout"} | {f"blocks.{i}{s}" for i in range(2) for s in ("", ".attn", ".mlp")}
    mup_slopes = {layer: mup.slope(layer, 3) for layer in mup.layers}
    sp_slopes = {layer: sp.slope(layer, 3) for layer in sp.layers}
    assert max(abs(s) for s in mup_slopes.values()) < FLAT_SLOPE, mup_slopes
    assert max(sp_slopes.values()) >= FLAT_SLOPE and sp_slopes["readout"] > 0.5, sp_slopes


def test_llama_trains_and_is_a_builtin_objective() -> None:
    config = {"width": 64, "seq_len": 32, "batch_size": 8, "learning_rate": 1e-2, "tie_embeddings": True}
    result = train("llama", config, 20, unit="steps", report_at=[5, 10, 15])
    losses = [loss for _, loss in result.losses]
    assert all(math.isfinite(v) for v in losses) and losses == sorted(losses, reverse=True), losses
    assert losses[-1] < losses[0] - 0.2 and result.non_embedding_params == LlamaConfig(width=64).non_embedding_params
    reports: list[tuple[float, float]] = []
    objective = resolve_objective("proxy:llama")
    value = objective({"width": 64, "seq_len": 16, "batch_size": 4}, 3, lambda b, v: reports.append((b, v)) or True)
    assert math.isfinite(value) and reports[-1] == (3.0, value)
