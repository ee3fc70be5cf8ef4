"""The coordinate check (Yang et al. 2022, section 4): train a few steps at several widths and
watch the size of every layer's output. Under muP each layer's activation RMS stays put as the
model widens; under SP, with a learning rate high enough, it grows with width: the sign that
the optimal learning rate will move.

Written here, not with ``mup.coord_check``: that records the mean absolute value through a
data loader and plots with seaborn; we want the RMS of named layers of our own models on our
own batches, a slope per layer to test against, and a table a CLI can print.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from workers.proxies.parameterization import make_optimizer
from workers.proxies.trainer import _loss, build_task, resolve_device

if TYPE_CHECKING:
    from matplotlib.figure import Figure


#: A layer whose RMS grows by less than this power of width counts as flat.
FLAT_SLOPE = 0.25


@dataclass(frozen=True)
class CoordCheck:
    """Activation RMS by (width, step, layer) and what the run was."""

    model: str
    param: str
    lr: float
    widths: tuple[int, ...]
    steps: int
    layers: tuple[str, ...]
    rms: dict[tuple[int, int, str], float]

    def slope(self, layer: str, step: int) -> float:
        """d log2(RMS) / d log2(width) at ``step``: 0 is flat, 1 grows in proportion to width."""
        pts = [(math.log2(w), math.log2(self.rms[w, step, layer])) for w in self.widths if self.rms[w, step, layer] > 0]
        if len(pts) < 2:
            return 0.0
        x, y = np.array(pts).T
        return float(np.polyfit(x, y, 1)[0])

    def rows(self) -> list[dict[str, object]]:
        return [
            {"width": w, "step": t, "layer": layer, "rms": self.rms[w, t, layer]}
            for w in self.widths
            for t in range(self.steps)
            for layer in self.layers
        ]

    def write_csv(self, path: Path) -> None:
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["width", "step", "layer", "rms"])
            writer.writeheader()
            writer.writerows(self.rows())

    def plot(self, path: Path) -> None:
        """Write :meth:`figure` as a PNG."""
        self.figure().savefig(path, dpi=120)

    def figure(self) -> Figure:
        """One panel per step: RMS against width (log-log), a line per layer; the legend to the
        right of the last panel."""
        from matplotlib.figure import Figure
        from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

        from scaling.plot import readable_log_axes

        fig = Figure(figsize=(3.2 * self.steps + 1.6, 3.6), layout="constrained")
        axes = fig.subplots(1, self.steps, sharey=True, squeeze=False)
        for t, ax in enumerate(axes[0]):
            for layer in self.layers:
                ys = [self.rms[w, t, layer] for w in self.widths]
                ax.plot(self.widths, ys, "o-", ms=3, label=layer)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.xaxis.set_major_locator(FixedLocator(self.widths))  # the widths run, as plain numbers
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_title(f"step {t}")
            ax.set_xlabel("width")
        axes[0][0].set_ylabel("activation RMS")
        axes[0][-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
        fig.suptitle(f"coordinate check: {self.model}, {self.param}, lr {self.lr:g}")
        fig.draw_without_rendering()  # lay out first: the tick density reads the panels' sizes
        readable_log_axes(fig)
        return fig


def _watched(model: nn.Module) -> dict[str, nn.Module]:
    """The layers whose outputs the check records, by stable name."""
    names = {"embed", "readout"}
    for name, _ in model.named_modules():
        parts = name.split(".")
        if parts[0] == "blocks" and (len(parts) == 2 or parts[-1] in ("attn", "mlp")):
            names.add(name)
    return {name: module for name, module in model.named_modules() if name in names}


def coord_check(
    model: str = "gpt",
    widths: Sequence[int] = (64, 128, 256, 512),
    *,
    param: str = "mup",
    lr: float = 1e-2,
    steps: int = 4,
    depth: int = 2,
    batch_size: int = 8,
    seq_len: int = 32,
    seed: int = 0,
    device: str = "cpu",
) -> CoordCheck:
    """Train ``steps`` steps of plain AdamW/MuAdamW (no schedule, no decay) at each width on the
    same batches and record each watched layer's output RMS before every step (step 0 is init).
    On a CUDA ``device`` the steps run under bf16 autocast, as the trainer's do there, so the
    check sees the numerics real training has; the batches are drawn on the CPU either way, so
    every device sees the same ones."""
    where = resolve_device(device)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if where.type == "cuda" else nullcontext
    rms: dict[tuple[int, int, str], float] = {}
    layers: tuple[str, ...] = ()
    for width in widths:
        config: dict[str, object] = {"width": width, "depth": depth, "param": param, "seed": seed, "batch_size": batch_size}
        if model == "gpt":
            config["seq_len"] = seq_len
        task, _ = build_task(model, config)
        net = task.model.to(where)
        optimizer = make_optimizer(net, net.cfg.scaling, lr=lr, weight_decay=0.0)
        watched = _watched(net)
        layers = tuple(watched)
        seen: dict[str, float] = {}
        hooks = [
            module.register_forward_hook(lambda _m, _i, out, name=name, seen=seen: seen.__setitem__(name, _rms(out)))
            for name, module in watched.items()
        ]
        generator = torch.Generator().manual_seed(seed)
        for t in range(steps):
            x, y = task.batch(batch_size, generator)
            with autocast():
                loss = _loss(net(x.to(where)), y.to(where))
            for name in layers:
                rms[width, t, name] = seen[name]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        for hook in hooks:
            hook.remove()
    return CoordCheck(model, param, lr, tuple(widths), steps, layers, rms)


def _rms(out: torch.Tensor) -> float:
    return float(out.detach().float().pow(2).mean().sqrt())
