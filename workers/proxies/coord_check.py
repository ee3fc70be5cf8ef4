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
import importlib
import math
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from mup import MuAdamW
from torch import nn

from workers.proxies.base_shapes import set_mup_base_shapes
from workers.proxies.parameterization import ProxyConfigError, make_optimizer
from workers.proxies.trainer import LANGUAGE_MODELS, _loss, build_task, resolve_device

if TYPE_CHECKING:
    from matplotlib.figure import Figure


#: ``batch(size, generator) -> (x, y)``: a user model's data for the check.
Batches = Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]

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
    rms: dict[tuple[int, int, str], float] = {}
    layers: tuple[str, ...] = ()
    for width in widths:
        config: dict[str, object] = {"width": width, "depth": depth, "param": param, "seed": seed, "batch_size": batch_size}
        if model in LANGUAGE_MODELS:
            config["seq_len"] = seq_len
        task, _ = build_task(model, config)
        net = task.model.to(where)
        optimizer = make_optimizer(net, net.cfg.scaling, lr=lr, weight_decay=0.0)
        layers = _record(width, net, _watched(net), optimizer, task.batch, steps, batch_size, seed, where, rms)
    return CoordCheck(model, param, lr, tuple(widths), steps, layers, rms)


def coord_check_user(
    spec: str,
    widths: Sequence[int],
    *,
    base_width: int | None = None,
    lr: float = 1e-2,
    steps: int = 4,
    batch_size: int = 8,
    seed: int = 0,
    device: str = "cpu",
) -> CoordCheck:
    """The coordinate check of the user's model ``module:build``: ``build(width)`` returns the
    model (in SP, or in muP with its base shapes set, e.g. by ``set_mup_base_shapes``; with
    ``base_width`` the check sets them itself), and the module's ``batch(size, generator)``
    returns ``(x, y)``; the loss is the cross-entropy of the output's last dimension against
    ``y``. A model whose parameters all have base shapes trains with ``MuAdamW`` and counts as
    muP, one without any with ``AdamW`` as SP. Watched: each top-level child module, or each
    member instead of a top-level ``nn.ModuleList``."""
    build, batch = load_user_model(spec)
    where = resolve_device(device)
    rms: dict[tuple[int, int, str], float] = {}
    layers: tuple[str, ...] = ()
    param = "sp"
    for width in widths:
        torch.manual_seed(seed)
        net = build(width) if base_width is None else set_mup_base_shapes(build, width, base_width)
        with_shapes = [hasattr(p, "infshape") for p in net.parameters()]
        if any(with_shapes) and not all(with_shapes):
            raise ProxyConfigError(f"{spec}({width}) has base shapes on some parameters only: set them on the whole model")
        param = "mup" if all(with_shapes) else "sp"
        net = net.to(where)
        optimizer = MuAdamW(net.parameters(), lr=lr) if param == "mup" else torch.optim.AdamW(net.parameters(), lr=lr)
        layers = _record(width, net, _user_watched(net), optimizer, batch, steps, batch_size, seed, where, rms)
    return CoordCheck(spec, param, lr, tuple(widths), steps, layers, rms)


def load_user_model(spec: str) -> tuple[Callable[[int], nn.Module], Batches]:
    """``build`` and the module's ``batch`` from ``module:build``; one-line errors otherwise."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ProxyConfigError(f"a user model is module:function (build(width) -> nn.Module), got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - an import can fail in any way; each gets one line
        raise ProxyConfigError(f"cannot import module {module_name!r} of model {spec!r}: {type(exc).__name__}: {exc}") from None
    build, batch = getattr(module, attr, None), getattr(module, "batch", None)
    if not callable(build):
        raise ProxyConfigError(f"module {module_name!r} has no function {attr!r} (model {spec!r})")
    if not callable(batch):
        raise ProxyConfigError(f"module {module_name!r} has no batch(size, generator) -> (x, y) for the check's data")
    return build, batch


def _user_watched(model: nn.Module) -> dict[str, nn.Module]:
    watched: dict[str, nn.Module] = {}
    for name, child in model.named_children():
        if isinstance(child, nn.ModuleList):
            watched.update((f"{name}.{i}", member) for i, member in enumerate(child))
        else:
            watched[name] = child
    return watched


def _record(
    width: int,
    net: nn.Module,
    watched: dict[str, nn.Module],
    optimizer: torch.optim.Optimizer,
    batch: Batches,
    steps: int,
    batch_size: int,
    seed: int,
    where: torch.device,
    rms: dict[tuple[int, int, str], float],
) -> tuple[str, ...]:
    """Train ``net`` ``steps`` steps, writing each watched layer's output RMS before each step
    into ``rms``; the layers whose outputs are tensors, in order."""
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if where.type == "cuda" else nullcontext
    seen: dict[str, float] = {}

    def hook(name: str) -> Callable[[nn.Module, object, object], None]:
        def record(_module: nn.Module, _inputs: object, out: object) -> None:
            if isinstance(out, torch.Tensor):
                seen[name] = _rms(out)

        return record

    hooks = [module.register_forward_hook(hook(name)) for name, module in watched.items()]
    generator = torch.Generator().manual_seed(seed)
    try:
        for t in range(steps):
            x, y = batch(batch_size, generator)
            seen.clear()
            with autocast():
                loss = _loss(net(x.to(where)), y.to(where))
            for name, value in seen.items():
                rms[width, t, name] = value
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    finally:
        for handle in hooks:
            handle.remove()
    return tuple(name for name in watched if name in seen)


def _rms(out: torch.Tensor) -> float:
    return float(out.detach().float().pow(2).mean().sqrt())
