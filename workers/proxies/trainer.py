"""Training a proxy to a budget and reporting held-out loss at every rung on the way.

One loop for every proxy: AdamW (``MuAdamW`` under muP), warmup then cosine or
warmup-stable-decay, a batch of ``batch_size`` sequences (or examples) made of micro-batches
of ``micro_batch_size`` with gradient accumulation, decoupled weight decay on matrices,
gradient clipping, and one seed for the init and the data order, so a run on the CPU repeats
exactly. On a GPU it trains under bf16 autocast.

A trial's budget is in tokens or steps (the search space's fidelity says which); the LR
schedule spans the trial's own budget. At each report point the held-out loss goes to
``report`` and training stops when the answer is no. A non-finite loss, or a training loss
``explode_factor`` times the first step's, raises :class:`hpo.runner.Diverged`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from hpo.runner import Diverged
from workers.proxies.data import TableData, TokenData, digits, load_tokens
from workers.proxies.gpt import GPT, GPTConfig, build_gpt
from workers.proxies.llama import Llama, LlamaConfig, build_llama
from workers.proxies.mlp import MLPConfig, ResidualMLP, build_mlp
from workers.proxies.parameterization import ProxyConfigError, make_optimizer
from workers.proxies.schedules import SCHEDULES, lr_multiplier

#: The proxies, and which of them are language models (token ids in, trained on ``data``).
MODELS = ("gpt", "llama", "mlp")
LANGUAGE_MODELS = ("gpt", "llama")
BUDGET_UNITS = ("tokens", "steps")


@dataclass(frozen=True)
class TrainSettings:
    """The optimisation side of a trial's configuration (the model side is the model's config)."""

    learning_rate: float = 3e-3
    batch_size: int = 32
    micro_batch_size: int | None = None
    weight_decay: float = 0.1
    embed_lr_mult: float = 1.0
    warmup_fraction: float = 0.05
    schedule: str = "cosine"
    decay_fraction: float = 0.2
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"
    explode_factor: float = 3.0
    eval_sequences: int = 128
    data: str = "stdlib"
    data_dtype: str = "uint16"

    def __post_init__(self) -> None:
        if not self.learning_rate > 0:
            raise ProxyConfigError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.batch_size < 1:
            raise ProxyConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        if not self.embed_lr_mult > 0:
            raise ProxyConfigError(f"embed_lr_mult must be positive, got {self.embed_lr_mult}")
        if self.micro_batch_size is not None and not 1 <= self.micro_batch_size <= self.batch_size:
            raise ProxyConfigError(f"micro_batch_size must be between 1 and batch_size ({self.batch_size})")
        if self.schedule not in SCHEDULES:
            raise ProxyConfigError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")

    @property
    def accumulation(self) -> tuple[int, int]:
        """(micro-batches per step, sequences per micro-batch)."""
        micro = self.micro_batch_size or self.batch_size
        steps = math.ceil(self.batch_size / micro)
        return steps, math.ceil(self.batch_size / steps)


@dataclass(frozen=True)
class TrainResult:
    """What a run did: its held-out losses by budget and the N and D the scaling laws use."""

    final_loss: float
    losses: list[tuple[float, float]]
    steps: int
    tokens: int
    non_embedding_params: int
    seconds: float
    stopped_early: bool


def split_config(model: str, config: Mapping[str, Any]) -> tuple[GPTConfig | LlamaConfig | MLPConfig, TrainSettings]:
    """A trial's flat configuration as the model's config and the training settings; a key
    neither knows is an error that lists the known ones (a typo would otherwise be ignored)."""
    if model not in MODELS:
        raise ProxyConfigError(f"unknown proxy model {model!r}; choose one of {', '.join(MODELS)}")
    model_type: type[GPTConfig | LlamaConfig | MLPConfig] = {"gpt": GPTConfig, "llama": LlamaConfig, "mlp": MLPConfig}[model]
    model_keys = {f.name for f in fields(model_type)} - {"vocab_size", "in_features", "classes"}
    train_keys = {f.name for f in fields(TrainSettings)}
    if model == "mlp":
        train_keys -= {"data", "data_dtype", "eval_sequences"}
    else:
        model_keys.add("vocab_size")
    unknown = sorted(set(config) - model_keys - train_keys)
    if unknown:
        raise ProxyConfigError(
            f"the {model} proxy has no setting {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(model_keys | train_keys))}"
        )
    try:
        settings = TrainSettings(**{k: v for k, v in config.items() if k in train_keys})
        model_cfg = model_type(**{k: v for k, v in config.items() if k in model_keys})
    except TypeError as exc:
        raise ProxyConfigError(f"bad {model} proxy setting: {exc}") from None
    return model_cfg, settings


class _Task:
    """A model with its data: batches to train on and the held-out loss."""

    units_per_sample: int = 1

    def __init__(self, model: GPT | Llama | ResidualMLP) -> None:
        self.model = model

    def batch(self, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def heldout(self) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        raise NotImplementedError


class _LanguageTask(_Task):
    def __init__(self, cfg: GPTConfig | LlamaConfig, settings: TrainSettings) -> None:
        vocab = cfg.vocab_size if settings.data != "stdlib" else None
        data: TokenData = load_tokens(settings.data, vocab, settings.data_dtype)
        if cfg.vocab_size != data.vocab_size:
            cfg = replace(cfg, vocab_size=data.vocab_size)
        data.check(cfg.seq_len)
        super().__init__(build_gpt(cfg) if isinstance(cfg, GPTConfig) else build_llama(cfg))
        self.data, self.seq_len = data, cfg.seq_len
        self.units_per_sample = cfg.seq_len
        self._heldout = data.eval_batches(cfg.seq_len, settings.eval_sequences, 32)

    def batch(self, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data.batch(size, self.seq_len, generator)

    def heldout(self) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        return self._heldout


class _ClassifierTask(_Task):
    def __init__(self, cfg: MLPConfig) -> None:
        data: TableData = digits()
        super().__init__(build_mlp(replace(cfg, in_features=data.in_features, classes=data.classes)))
        self.data = data
        self._heldout = data.eval_batches(512)

    def batch(self, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data.batch(size, generator)

    def heldout(self) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        return self._heldout


def _loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))


def resolve_device(name: str) -> torch.device:
    """``auto``: the GPU Ray assigned this worker (CUDA_VISIBLE_DEVICES), else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ProxyConfigError(f"device {name!r} asked for, but this worker sees no CUDA GPU")
    return device


def build_task(model: str, config: Mapping[str, Any]) -> tuple[_Task, TrainSettings]:
    """The model (seeded by the config's seed) and its data, ready to train."""
    model_cfg, settings = split_config(model, config)
    torch.manual_seed(settings.seed)
    if isinstance(model_cfg, (GPTConfig, LlamaConfig)):
        return _LanguageTask(model_cfg, settings), settings
    return _ClassifierTask(model_cfg), settings


def train(
    model: str,
    config: Mapping[str, Any],
    budget: float,
    *,
    unit: str = "tokens",
    report_at: Iterable[float] = (),
    report: Callable[[float, float], bool] | None = None,
) -> TrainResult:
    """Train the ``model`` proxy (``gpt``, ``llama`` or ``mlp``) configured by ``config`` for ``budget``
    tokens or steps, reporting held-out loss at each budget in ``report_at`` (and at the end)."""
    if unit not in BUDGET_UNITS:
        raise ProxyConfigError(f"budget unit {unit!r} is not one of {', '.join(BUDGET_UNITS)}")
    started = time.perf_counter()
    task, settings = build_task(model, config)
    device = resolve_device(settings.device)
    net = task.model.to(device)
    optimizer = make_optimizer(
        net,
        task.model.cfg.scaling,
        lr=settings.learning_rate,
        weight_decay=settings.weight_decay,
        embed_lr_mult=settings.embed_lr_mult,
    )
    micro_steps, micro_size = settings.accumulation
    per_step = micro_steps * micro_size * (task.units_per_sample if unit == "tokens" else 1)
    total = max(1, round(budget / per_step)) if unit == "tokens" else max(1, round(budget))
    points = _report_steps(report_at, budget, per_step, total, unit)
    autocast: Callable[[], AbstractContextManager[Any]] = (
        (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda" else nullcontext
    )
    generator = torch.Generator().manual_seed(settings.seed)
    losses: list[tuple[float, float]] = []
    first_loss: float | None = None
    step = 0
    stopped = False
    while step < total:
        mult = lr_multiplier(
            step,
            total,
            schedule=settings.schedule,
            warmup_fraction=settings.warmup_fraction,
            decay_fraction=settings.decay_fraction,
        )
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * mult
        optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for _ in range(micro_steps):
            x, y = task.batch(micro_size, generator)
            with autocast():
                loss = _loss(net(x.to(device)), y.to(device)) / micro_steps
            loss.backward()
            step_loss += loss.item()
        first_loss = step_loss if first_loss is None else first_loss
        if not math.isfinite(step_loss) or step_loss > settings.explode_factor * first_loss:
            raise Diverged(f"training loss {step_loss:.4g} at step {step + 1} (first step {first_loss:.4g})")
        if settings.grad_clip > 0:
            nn.utils.clip_grad_norm_(net.parameters(), settings.grad_clip)
        optimizer.step()
        step += 1
        if step in points:
            value = heldout_loss(net, task, device, autocast)
            if not math.isfinite(value):
                raise Diverged(f"held-out loss {value} at step {step}")
            losses.append((points[step], value))
            if report is not None and not report(points[step], value):
                stopped = step < total
                break
    return TrainResult(
        final_loss=losses[-1][1],
        losses=losses,
        steps=step,
        tokens=step * micro_steps * micro_size * task.units_per_sample,
        non_embedding_params=task.model.non_embedding_params(),
        seconds=time.perf_counter() - started,
        stopped_early=stopped,
    )


def _report_steps(report_at: Iterable[float], budget: float, per_step: int, total: int, unit: str) -> dict[int, float]:
    """Step -> the budget reported there: each report point that fits, and the end."""
    points: dict[int, float] = {}
    for b in sorted(set(report_at)):
        if 0 < b < budget:
            s = max(1, round(b / per_step)) if unit == "tokens" else max(1, round(b))
            points.setdefault(min(s, total), float(b))
    points[total] = float(budget)
    return points


@torch.no_grad()
def heldout_loss(
    net: nn.Module,
    task: _Task,
    device: torch.device,
    autocast: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> float:
    """Mean cross-entropy (nats per token or example) over the fixed held-out batches."""
    net.eval()
    total, count = 0.0, 0
    for x, y in task.heldout():
        with autocast():
            total += _loss(net(x.to(device)), y.to(device)).item() * y.numel()
        count += y.numel()
    net.train()
    return total / count
