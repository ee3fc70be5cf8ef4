"""The muP proxies: parameter counts, base shapes, the parameterizations' multipliers and the
coordinate check (muP flat in width, SP growing), with the real ``mup`` package."""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

import pytest
import torch
from mup import MuReadout

from workers.proxies.coord_check import coord_check
from workers.proxies.gpt import GPTConfig, build_gpt
from workers.proxies.mlp import MLPConfig, build_mlp
from workers.proxies.parameterization import ProxyConfigError, Scaling, make_optimizer


@pytest.mark.parametrize(
    ("width", "depth", "expected"),
    [
        # per block: qkv 3d^2 + proj d^2 + fc 4d^2 + proj 4d^2 (no biases) + two LayerNorms 4d;
        # plus the final LayerNorm 2d. d=64, L=2: 2 * (49152 + 256) + 128
        (64, 2, 98_944),
        # d=96, L=3: 3 * (12 * 9216 + 384) + 192
        (96, 3, 333_120),
        # d=256, L=1: 786432 + 1024 + 512
        (256, 1, 787_968),
    ],
)
def test_gpt_non_embedding_parameters_match_hand_counts(width: int, depth: int, expected: int) -> None:
    cfg = GPTConfig(width=width, depth=depth, heads=4, vocab_size=256, seq_len=64)
    model = build_gpt(cfg)
    assert model.non_embedding_params() == expected == cfg.non_embedding_params
    embeddings = 256 * width + 64 * width + width * 256  # token, position, readout
    assert sum(p.numel() for p in model.parameters()) == expected + embeddings


def test_mlp_non_embedding_parameters_match_hand_counts() -> None:
    model = build_mlp(MLPConfig(width=100, depth=3, in_features=64, classes=10))
    assert model.non_embedding_params() == 3 * (100 * 100 + 100) == 30_300
    assert sum(p.numel() for p in model.parameters()) == 30_300 + (64 * 100 + 100) + (100 * 10 + 10)


@pytest.mark.parametrize("param", ["mup", "depth-mup"])
def test_mup_base_shapes_are_attached_to_every_parameter(param: str) -> None:
    model = build_gpt(GPTConfig(width=256, depth=3, param=param, base_width=64))
    for name, p in model.named_parameters():
        assert hasattr(p, "infshape"), name
    shapes = {name: p.infshape for name, p in model.named_parameters()}
    assert shapes["blocks.0.mlp.fc.weight"].ninf() == 2 and shapes["blocks.0.mlp.fc.weight"].width_mult() == 4.0
    assert shapes["blocks.2.attn.qkv.weight"].width_mult() == 4.0
    assert shapes["embed.weight"].ninf() == 1 and shapes["readout.weight"].ninf() == 1
    assert isinstance(model.readout, MuReadout)
    # zero-initialised readout and query, as the muP paper recommends; keys are not zero
    assert torch.count_nonzero(model.readout.weight) == 0
    qkv = model.blocks[0].attn.qkv.weight
    assert torch.count_nonzero(qkv[:256]) == 0 and torch.count_nonzero(qkv[256:]) > 0
    mlp = build_mlp(MLPConfig(width=128, param=param))
    assert all(hasattr(p, "infshape") for p in mlp.parameters())


def test_mup_without_zero_init_draws_readout_and_query_as_sp_does_at_the_base_width() -> None:
    """``zero_init=False`` draws the readout and query: at the base width with SP's stds, at
    larger widths a readout std that stays ``init_std`` while ``MuReadout`` shrinks its output
    by the width multiplier, and a query scaled by fan-in like every hidden matrix."""
    torch.manual_seed(0)
    for model_cfg, builder in ((GPTConfig, build_gpt), (MLPConfig, build_mlp)):
        sp = builder(model_cfg(width=64, base_width=64, param="sp"))
        base = builder(model_cfg(width=64, base_width=64, param="mup", zero_init=False))
        wide = builder(model_cfg(width=512, base_width=64, param="mup", zero_init=False))
        for model in (sp, base, wide):  # the MLP's readout has 640 to 5,120 weights: 15% is > 5 standard errors
            assert model.readout.weight.std().item() == pytest.approx(0.02, rel=0.15)
        assert wide.readout.width_mult() == 8.0
        assert torch.count_nonzero(builder(model_cfg(width=512, param="mup")).readout.weight) == 0
    qkv = build_gpt(GPTConfig(width=256, param="mup", zero_init=False)).blocks[0].attn.qkv.weight
    assert qkv[:256].std().item() == pytest.approx(0.02 * math.sqrt(64 / 256), rel=0.05)


@pytest.mark.parametrize("model_type", ["gpt", "mlp"])
def test_mup_without_zero_init_trains_exactly_as_sp_at_the_base_width(model_type: str) -> None:
    """What the muTransfer benchmark relies on: at the base width, muP with ``zero_init`` off
    is SP (multipliers, attention scale, MuAdamW's groups all reduce to SP's), so with the same
    weights and batches the two follow the same trajectory, the multipliers a sweep tunes
    included. A multiplier applied in one parameterization only would split them."""
    shared = {"width": 64, "base_width": 64, "output_mult": 2.0, "zero_init": False}
    if model_type == "gpt":
        configs = [GPTConfig(param=p, heads=4, seq_len=16, attn_mult=0.5, **shared) for p in ("sp", "mup")]
        models = [build_gpt(c) for c in configs]
    else:
        models = [build_mlp(MLPConfig(param=p, **shared)) for p in ("sp", "mup")]
    sp, mup = models
    mup.load_state_dict(sp.state_dict())
    optimizers = [make_optimizer(m, m.cfg.scaling, lr=0.01, weight_decay=0.1, embed_lr_mult=4.0) for m in models]
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        if model_type == "gpt":
            tokens = torch.randint(0, 256, (4, 17), generator=generator)
            inputs, targets = tokens[:, :-1], tokens[:, 1:].reshape(-1)
        else:
            inputs, targets = torch.randn(16, 64, generator=generator), torch.randint(0, 10, (16,), generator=generator)
        losses = []
        for model, optimizer in zip(models, optimizers):
            optimizer.zero_grad()
            logits = model(inputs)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    for (name, p_sp), p_mup in zip(sp.named_parameters(), mup.parameters()):
        torch.testing.assert_close(p_sp, p_mup, msg=f"{name} differs after 20 steps")


def test_sp_has_no_base_shapes_and_a_plain_readout() -> None:
    model = build_gpt(GPTConfig(width=128, param="sp"))
    assert not isinstance(model.readout, MuReadout)
    assert not any(hasattr(p, "infshape") for p in model.parameters())
    assert torch.count_nonzero(model.readout.weight) > 0


def test_parameterizations_scale_attention_learning_rate_and_branches() -> None:
    sp, mup = Scaling("sp", 256, 64, 2, 2), Scaling("mup", 256, 64, 2, 2)
    assert sp.attention_scale(64, 16, 1.0) == pytest.approx(1 / 8)  # 1/sqrt(d_head)
    assert mup.attention_scale(64, 16, 1.0) == pytest.approx(4 / 64)  # 1/d_head, equal at the base
    assert mup.attention_scale(16, 16, 1.0) == pytest.approx(sp.attention_scale(16, 16, 1.0))
    deep = Scaling("depth-mup", 64, 64, 8, 2, depth_alpha=1.0)
    assert deep.branch_mult == pytest.approx(0.25) and deep.depth_lr_mult == 1.0
    half = Scaling("depth-mup", 64, 64, 8, 2, depth_alpha=0.5)
    assert half.branch_mult == pytest.approx(0.5) and half.depth_lr_mult == pytest.approx(0.5)
    assert mup.branch_mult == 1.0 and sp.depth_lr_mult == 1.0

    model = build_gpt(GPTConfig(width=256, param="mup", base_width=64))
    optimizer = make_optimizer(model, model.cfg.scaling, lr=0.01, weight_decay=0.1)
    lrs = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert lrs[id(model.blocks[0].mlp.fc.weight)] == pytest.approx(0.01 / 4)  # MuAdamW: lr / width_mult
    assert lrs[id(model.embed.weight)] == pytest.approx(0.01)
    assert lrs[id(model.readout.weight)] == pytest.approx(0.01)

    # embed_lr_mult: the token and position embeddings only, the same factor at every width
    for param in ("mup", "sp"):
        model = build_gpt(GPTConfig(width=256, param=param, base_width=64))
        optimizer = make_optimizer(model, model.cfg.scaling, lr=0.01, weight_decay=0.1, embed_lr_mult=8.0)
        lrs = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
        assert lrs[id(model.embed.weight)] == pytest.approx(0.08)
        assert lrs[id(model.pos_embed.weight)] == pytest.approx(0.08)
        assert lrs[id(model.ln_f.weight)] == pytest.approx(0.01)
        assert lrs[id(model.readout.weight)] == pytest.approx(0.01)
        hidden = 0.01 / 4 if param == "mup" else 0.01
        assert lrs[id(model.blocks[0].mlp.fc.weight)] == pytest.approx(hidden)
        assert all(g["initial_lr"] == g["lr"] for g in optimizer.param_groups)


def test_bad_model_settings_are_clear_errors() -> None:
    with pytest.raises(ProxyConfigError, match="unknown parameterization 'mu'"):
        build_gpt(GPTConfig(param="mu"))
    with pytest.raises(ProxyConfigError, match="width 100 is not divisible by 3 heads"):
        GPTConfig(width=100, heads=3)


@pytest.mark.parametrize("model", ["gpt", "mlp"])
def test_coordinate_check_mup_is_flat_in_width_and_sp_grows(model: str) -> None:
    widths = (64, 128, 256, 512) if model == "mlp" else (64, 128, 256)
    mup = coord_check(model, widths, param="mup", lr=1e-2, steps=4)
    sp = coord_check(model, widths, param="sp", lr=1e-2, steps=4)
    last = 3
    mup_slopes = {layer: mup.slope(layer, last) for layer in mup.layers}
    sp_slopes = {layer: sp.slope(layer, last) for layer in sp.layers}
    assert max(abs(s) for s in mup_slopes.values()) < 0.25, mup_slopes
    assert max(sp_slopes.values()) > 0.5, sp_slopes
    assert sp_slopes["readout"] > 0.5 and abs(mup_slopes["readout"]) < 0.25
    # at initialisation both are flat: the growth comes from training, as the theory says
    assert all(abs(sp.slope(layer, 0)) < 0.25 for layer in sp.layers if layer != "readout")
    assert all(math.isfinite(v) and v >= 0 for v in mup.rms.values())


def test_cli_coord_check_writes_plot_and_table(tmp_path: Path) -> None:
    done = subprocess.run(
        ["hpo", "mup", "coord-check", "--model", "mlp", "--widths", "64,128,256", "--param", "sp", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    assert "changes with width" in done.stdout and "readout" in done.stdout
    png, csv = tmp_path / "coord_check_mlp_sp.png", tmp_path / "coord_check_mlp_sp.csv"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = csv.read_text().splitlines()
    assert lines[0] == "width,step,layer,rms" and len(lines) == 1 + 3 * 4 * 4  # widths x steps x layers

    for args, message in [
        (["--widths", "64,x"], "hpo: error: --widths must be comma-separated integers, got '64,x'"),
        (["--param", "mu"], "hpo: error: unknown parameterization 'mu'"),
        (["--model", "cnn"], "hpo: error: unknown proxy model 'cnn'"),
    ]:
        failed = subprocess.run(["hpo", "mup", "coord-check", *args, "--out", str(tmp_path)], capture_output=True, text=True, timeout=300, check=False)
        assert failed.returncode == 2 and failed.stderr.startswith(message), failed.stderr
        assert len(failed.stderr.strip().splitlines()) == 1


def test_depth_mup_keeps_the_residual_stream_flat_in_depth_where_mup_grows() -> None:
    def last_block_rms(param: str, depth: int) -> float:
        check = coord_check("gpt", (64,), param=param, lr=1e-2, steps=4, depth=depth)
        return check.rms[64, 3, f"blocks.{depth - 1}"]

    deep = {param: last_block_rms(param, 16) / last_block_rms(param, 2) for param in ("mup", "depth-mup")}
    assert deep["mup"] > 3.0, deep  # width-only muP: the stream grows with depth
    assert 0.5 < deep["depth-mup"] < 1.5, deep  # branches scaled by 2/16: it stays put
