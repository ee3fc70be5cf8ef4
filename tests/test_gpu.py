"""The proxies on a CUDA GPU: training under bf16 autocast with fp32 weights, the coordinate
check at real widths, and the same seed giving the same first loss on GPU as on CPU (to bf16
precision). No CI machine has a GPU: these run in ``benchmarks/gpu_check.sh`` on one, and are
skipped elsewhere; the one test below that needs no GPU checks the refusal without one."""

from __future__ import annotations

import math

import pytest
import torch

from workers.proxies.coord_check import FLAT_SLOPE, coord_check
from workers.proxies.parameterization import ProxyConfigError
from workers.proxies.trainer import build_task, train

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_check.sh)")

GPT = {"width": 256, "depth": 2, "param": "mup", "seq_len": 64, "batch_size": 16, "learning_rate": 2**-8}


@needs_cuda
def test_a_proxy_trains_on_the_gpu_under_bf16_with_fp32_weights() -> None:
    task, _ = build_task("gpt", GPT)
    net = task.model.cuda()
    seen: list[torch.dtype] = []
    hook = net.blocks[0].mlp.fc.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    x, _ = task.batch(4, torch.Generator().manual_seed(0))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        net(x.cuda())
    hook.remove()
    assert seen == [torch.bfloat16]
    assert all(p.dtype is torch.float32 for p in net.parameters())
    result = train("gpt", {**GPT, "device": "cuda"}, 40, unit="steps", report_at=[20])
    assert math.isfinite(result.final_loss) and [b for b, _ in result.losses] == [20, 40]
    assert result.losses[-1][1] < result.losses[0][1] + 0.5  # trains, does not blow up


@needs_cuda
def test_the_gpu_and_the_cpu_start_from_the_same_loss() -> None:
    on_gpu = train("gpt", {**GPT, "device": "cuda"}, 1, unit="steps")
    on_cpu = train("gpt", {**GPT, "device": "cpu"}, 1, unit="steps")
    assert on_gpu.final_loss == pytest.approx(on_cpu.final_loss, rel=2e-2)  # bf16 against fp32


@needs_cuda
def test_the_coordinate_check_at_real_widths_is_flat_under_mup_and_grows_under_sp() -> None:
    widths = (256, 512, 1024)
    mup = coord_check("gpt", widths, param="mup", steps=4, device="cuda")
    sp = coord_check("gpt", widths, param="sp", steps=4, device="cuda")
    last = mup.steps - 1
    assert max(abs(mup.slope(layer, last)) for layer in mup.layers) < FLAT_SLOPE
    assert max(sp.slope(layer, last) for layer in sp.layers) >= FLAT_SLOPE


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_asking_for_cuda_without_a_gpu_is_one_clear_error() -> None:
    with pytest.raises(ProxyConfigError, match="sees no CUDA GPU"):
        coord_check("gpt", (32, 64), steps=1, device="cuda")
