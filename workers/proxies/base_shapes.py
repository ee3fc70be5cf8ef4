"""muP base shapes for any model: ``mup.set_base_shapes`` with the checks that make it safe.

``set_mup_base_shapes(build, width, base_width)`` builds the model at ``width`` and, on the
meta device (shapes, no memory), a base at ``base_width`` and a delta at ``delta_width``
(twice the base by default) from the same ``build(width) -> nn.Module``; a dimension that
differs between base and delta is a width dimension. Before attaching the shapes it checks
what ``mup`` would otherwise get wrong silently or with a bare assertion:

* the output layer is the model's only ``mup.MuReadout`` (or ``MuSharedReadout``, tied to an
  embedding) and no plain ``nn.Linear`` maps width to a fixed size: such a layer is a readout
  without muP's 1/width multiplier, and the error names it and says how to fix it;
* every parameter exists at every width and gets an ``infshape``.

A model with base shapes must be trained with ``mup.MuAdamW`` or ``mup.MuSGD``, which divide
the hidden matrices' learning rate by their width multiplier; :func:`check_mup_optimizer`
tells a plain optimizer from them (the proxies' ``make_optimizer`` picks the right one).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from mup import MuReadout, set_base_shapes
from torch import nn

from workers.proxies.parameterization import ProxyConfigError


def set_mup_base_shapes(
    build: Callable[[int], nn.Module],
    width: int,
    base_width: int,
    delta_width: int | None = None,
    *,
    rescale_params: bool = True,
) -> nn.Module:
    """``build(width)`` with every parameter's ``infshape`` set relative to ``base_width``.

    ``rescale_params`` is ``mup``'s: it assumes PyTorch's default init and rescales the
    readout (and the biases) to muP's; pass ``False`` when ``build`` already initialises by
    the muP rules (as the built-in proxies do)."""
    delta_width = 2 * base_width if delta_width is None else delta_width
    if min(width, base_width, delta_width) < 1 or delta_width == base_width:
        raise ProxyConfigError(
            f"widths must be positive and the delta width ({delta_width}) differ from the base width ({base_width})"
        )
    model = build(width)
    with torch.device("meta"):
        base, delta = build(base_width), build(delta_width)
    _check_readout(base, delta)
    _check_same_parameters(model, base, delta, width, base_width, delta_width)
    set_base_shapes(model, base, delta=delta, rescale_params=rescale_params)
    missing = [name for name, p in model.named_parameters() if not hasattr(p, "infshape")]
    if missing:
        raise ProxyConfigError(f"parameters without a muP base shape: {', '.join(missing)}")
    return model


def _check_readout(base: nn.Module, delta: nn.Module) -> None:
    """Exactly one ``MuReadout``, the last linear layer; no plain linear layer from width to
    a fixed size (that is a readout muP does not know about)."""
    delta_modules = dict(delta.named_modules())
    linears: list[tuple[str, nn.Linear, bool]] = []  # (name, base layer, maps width to a fixed size)
    for name, module in base.named_modules():
        other = delta_modules.get(name)
        if isinstance(module, nn.Linear) and isinstance(other, nn.Linear):
            to_fixed = module.in_features != other.in_features and module.out_features == other.out_features
            linears.append((name, module, to_fixed))
    readouts = [name for name, module, _ in linears if isinstance(module, MuReadout)]
    plain = [(name, module) for name, module, to_fixed in linears if to_fixed and not isinstance(module, MuReadout)]
    if plain:
        name, layer = plain[-1]
        raise ProxyConfigError(
            f"layer {name!r} is a plain nn.Linear from width to a fixed size ({layer.out_features}), a readout "
            f"without muP's multiplier: replace it with mup.MuReadout(in_features, {layer.out_features}) "
            "(or mup.MuSharedReadout(embedding.weight) when tied)"
        )
    if len(readouts) != 1:
        found = "none" if not readouts else ", ".join(readouts)
        raise ProxyConfigError(
            f"a muP model needs exactly one mup.MuReadout, its output layer (found {found}): make the final "
            "layer from width to the outputs a mup.MuReadout(in_features, out_features)"
        )
    if readouts[0] != linears[-1][0]:
        raise ProxyConfigError(
            f"the mup.MuReadout {readouts[0]!r} is not the model's last linear layer ({linears[-1][0]!r}): "
            "the readout must be the output layer"
        )


def _check_same_parameters(
    model: nn.Module, base: nn.Module, delta: nn.Module, width: int, base_width: int, delta_width: int
) -> None:
    names = [{name for name, _ in m.named_parameters()} for m in (model, base, delta)]
    for these, other, w in ((names[0], names[1], width), (names[1], names[0], base_width), (names[2], names[0], delta_width)):
        extra = sorted(these - other)
        if extra:
            raise ProxyConfigError(
                f"build({w}) has parameters the other widths lack ({', '.join(extra)}): "
                "build(width) must make the same layers at every width, only their sizes differing"
            )


def check_mup_optimizer(optimizer: torch.optim.Optimizer) -> None:
    """Raise unless ``optimizer`` could be ``MuAdamW``/``MuSGD`` over a muP model: those put
    matrix-like parameters (two width dimensions) and the others in separate groups, each
    with its own learning rate, so a group that mixes them, in a model wider than its base,
    is a plain optimizer that would train the hidden matrices with an unscaled rate."""
    for group in optimizer.param_groups:
        if not all(hasattr(p, "infshape") for p in group["params"]):
            raise ProxyConfigError("the optimizer holds a parameter without a muP base shape: call set_mup_base_shapes first")
        shapes = [p.infshape for p in group["params"]]
        matrix = [s.ninf() == 2 for s in shapes]
        scaled = any(s.width_mult() != 1 for s in shapes)
        if scaled and any(matrix) and not all(matrix):
            raise ProxyConfigError(
                "the optimizer trains hidden matrices and vector-like parameters at one rate: "
                "use mup.MuAdamW(model.parameters(), lr=...) (or mup.MuSGD) instead of torch.optim"
            )
