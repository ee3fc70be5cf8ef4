"""The spaces that ship with hposcale: the muP proxies' hyperparameters and the synthetic
benchmarks' domains, by name (``hpo spaces list``; ``--space mup-gpt`` in a study).

The muP ranges are wide on purpose: with muP the optimum should not move as the proxy widens,
so one range serves every width, and a sweep should see both sides of each optimum (the scaling
module flags an optimum on the edge of its range). Fidelity ranges are max/min = 27 = 3^3, so
Hyperband with eta=3 has four rungs (``mup-gpt-scaling`` has three, see its docstring);
counting ones keeps the DEHB paper's 576/d..93312/d (162).
"""

from __future__ import annotations

from collections.abc import Callable

from search_spaces.errors import SpaceError, did_you_mean
from search_spaces.params import Categorical, Float, Int, Param
from search_spaces.space import Fidelity, SearchSpace


def _training(batch: Int, **extra: Param) -> dict[str, Param]:
    """The hyperparameters muP transfers (learning rate, init and multipliers) and the ones a
    proxy sweep tunes beside them (batch size, regularisation, schedule)."""
    return {
        "learning_rate": Float(1e-4, 1e-1, log=True, default=3e-3),
        "init_std": Float(0.005, 0.2, log=True, default=0.02),
        "output_mult": Float(0.125, 32.0, log=True, default=1.0),
        **extra,
        "batch_size": batch,
        "weight_decay": Float(0.0, 0.3, default=0.1),
        "warmup_fraction": Float(0.0, 0.2, default=0.05),
        "schedule": Categorical(["cosine", "wsd"], default="cosine"),
        "decay_fraction": Float(0.1, 0.5, default=0.2, condition={"schedule": ["wsd"]}),
    }


def mup_gpt() -> SearchSpace:
    return SearchSpace(
        _training(Int(8, 256, log=True, default=32), attn_mult=Float(0.25, 8.0, log=True, default=1.0)),
        Fidelity("tokens", 131_072, 3_538_944),
        "muP GPT proxy: learning rate, init std, output and attention multipliers, batch size in "
        "sequences, weight decay, warmup fraction, cosine or warmup-stable-decay schedule",
        source="built-in space 'mup-gpt'",
    )


def mup_gpt_scaling() -> SearchSpace:
    """The space of a scaling-law sweep (``hpo demo``'s): only what the laws predict, so each
    (N, D) cell's optimum is a surface in two dimensions rather than a slice of nine. Its
    fidelity spans 9x (three rungs with eta 3) so that every rung, a token budget D of the
    fit, holds enough trials for an optimum."""
    return SearchSpace(
        {
            "learning_rate": Float(3e-4, 0.1, log=True, default=3e-3),
            "batch_size": Int(2, 32, log=True, default=8),
        },
        Fidelity("tokens", 16_384, 147_456),
        "muP GPT proxy, the two hyperparameters scaling laws predict: learning rate and batch size "
        "in sequences (the rest at the proxy's defaults)",
        source="built-in space 'mup-gpt-scaling'",
    )


def mup_mlp() -> SearchSpace:
    return SearchSpace(
        _training(Int(16, 512, log=True, default=64)),
        Fidelity("steps", 30, 810),
        "muP MLP proxy: learning rate, init std, output multiplier, batch size, weight decay, "
        "warmup fraction, cosine or warmup-stable-decay schedule",
        source="built-in space 'mup-mlp'",
    )


def branin() -> SearchSpace:
    return SearchSpace(
        {"x1": Float(-5.0, 10.0), "x2": Float(0.0, 15.0)},
        Fidelity("z", 1 / 27, 1.0),
        "multi-fidelity Branin (Kandasamy et al. 2017); optimum 0.397887 at z = 1",
        source="built-in space 'branin'",
    )


def _hartmann(d: int) -> SearchSpace:
    return SearchSpace(
        {f"x{i}": Float(0.0, 1.0) for i in range(1, d + 1)},
        Fidelity("z", 100 / 27, 100.0),
        f"multi-fidelity Hartmann-{d} (mf-prior-bench); exact Hartmann at z = 100",
        source=f"built-in space 'hartmann{d}'",
    )


def _counting_ones(d_cat: int, d_cont: int) -> SearchSpace:
    d = d_cat + d_cont
    return SearchSpace(
        {f"c{i}": Categorical([0, 1]) for i in range(1, d_cat + 1)}
        | {f"x{i}": Float(0.0, 1.0) for i in range(1, d_cont + 1)},
        Fidelity("samples", 576 / d, 93_312 / d),
        f"counting ones, {d_cat} binary + {d_cont} continuous dimensions (DEHB paper); optimum -{d}",
        source=f"built-in space 'counting-ones-{d_cat}-{d_cont}'",
    )


BUILTIN_SPACES: dict[str, Callable[[], SearchSpace]] = {
    "mup-gpt": mup_gpt,
    "mup-gpt-scaling": mup_gpt_scaling,
    "mup-mlp": mup_mlp,
    "branin": branin,
    "hartmann3": lambda: _hartmann(3),
    "hartmann6": lambda: _hartmann(6),
    "counting-ones-8-8": lambda: _counting_ones(8, 8),
    "counting-ones-32-32": lambda: _counting_ones(32, 32),
}


def builtin_spaces() -> dict[str, SearchSpace]:
    """Every built-in space by name."""
    return {name: make() for name, make in BUILTIN_SPACES.items()}


def get_builtin(name: str) -> SearchSpace:
    """The built-in space of that name; SpaceError lists the names otherwise."""
    try:
        return BUILTIN_SPACES[name]()
    except KeyError:
        raise SpaceError(
            f"no built-in space {name!r}{did_you_mean(name, BUILTIN_SPACES)}; "
            f"built-ins: {', '.join(BUILTIN_SPACES)}"
        ) from None
