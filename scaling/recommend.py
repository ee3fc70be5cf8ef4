"""Recommending a learning rate and batch size for a target model of N non-embedding
parameters trained on D tokens, from a published law or a stored fit.

The batch size is given in tokens and in sequences of ``seq_len``, rounded to something a
training script can use: the nearest power of two below 8 sequences, else the nearest multiple
of 8 sequences (tokens then follow from the rounded sequences). Intervals come from a fit's
bootstrap (published laws give none); so does the tolerance, the range of settings within 0.1%
of the best loss, from the plateau widths of a fit's cells. A target outside a law's fitted
range carries a warning that says how far outside.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scaling.errors import ScalingError
from scaling.laws import Law
from scaling.published import PUBLISHED_LAWS
from scaling.report import FIT_PREFIX, FitReport


@dataclass(frozen=True)
class Recommendation:
    law: str
    source: str
    n_params: float
    tokens: float
    seq_len: int
    learning_rate: float
    learning_rate_interval: tuple[float, float] | None
    batch_size_tokens: int
    batch_size_tokens_exact: float
    batch_size_tokens_interval: tuple[float, float] | None
    batch_size_sequences: int
    batch_size_sequences_interval: tuple[int, int] | None
    #: the learning rates (and batch sizes in tokens) within 0.1% of the best loss, where a fit knows
    learning_rate_tolerance: tuple[float, float] | None = None
    batch_size_tokens_tolerance: tuple[float, float] | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def round_sequences(sequences: float) -> int:
    """A practical batch: a power of two below 8 sequences, else a multiple of 8."""
    if sequences < 8:
        return max(1, 2 ** round(math.log2(max(sequences, 1.0))))
    return max(8, 8 * round(sequences / 8))


def _check(n_params: float, tokens: float, seq_len: int) -> None:
    for label, value in (("--params", n_params), ("--tokens", tokens), ("--seq-len", seq_len)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ScalingError(f"{label} must be a positive number, got {value}")
        if value < 1:
            raise ScalingError(f"{label} must be at least 1, got {value:g}")


def recommend_with(law: Law, n_params: float, tokens: float, *, seq_len: int = 4096) -> Recommendation:
    """What ``law`` recommends for N parameters and D tokens."""
    _check(n_params, tokens, seq_len)
    try:
        lr, batch = law.predict(n_params, tokens)
        interval = law.interval(n_params, tokens)
    except (OverflowError, ZeroDivisionError):
        lr = batch = math.inf
    if not (0 < lr < math.inf and 0 < batch < math.inf):
        raise ScalingError(f"law {law.name!r} gives no finite learning rate and batch size at N={n_params:g}, D={tokens:g}")
    sequences = round_sequences(batch / seq_len)
    seq_interval = None
    if interval is not None:
        lo, hi = interval[1]
        seq_interval = (max(1, math.floor(lo / seq_len)), max(1, math.ceil(hi / seq_len)))
    warnings = [f"extrapolation: {line}" for line in law.extrapolation(n_params, tokens)]
    if law.notes:
        warnings.append(law.notes)
    within = {k: (value * 2.0 ** law.tolerance[k][0], value * 2.0 ** law.tolerance[k][1])
              for k, value in (("learning_rate", lr), ("batch_size", batch)) if k in law.tolerance}
    return Recommendation(
        law=law.name,
        source=law.source,
        n_params=float(n_params),
        tokens=float(tokens),
        seq_len=int(seq_len),
        learning_rate=lr,
        learning_rate_interval=None if interval is None else interval[0],
        batch_size_tokens=sequences * seq_len,
        batch_size_tokens_exact=batch,
        batch_size_tokens_interval=None if interval is None else interval[1],
        batch_size_sequences=sequences,
        batch_size_sequences_interval=seq_interval,
        learning_rate_tolerance=within.get("learning_rate"),
        batch_size_tokens_tolerance=within.get("batch_size"),
        warnings=warnings,
    )


def _stored_laws(storage: str | None, names: list[str] | None) -> list[Law]:
    from db.store import Store

    store = Store(storage)
    try:
        records = [store.get_fit(n) for n in names] if names is not None else store.list_fits()
    finally:
        store.close()
    return [FitReport.from_dict(r.report).law() for r in records]


def _has_store(storage: str | None) -> bool:
    """Whether to look for stored fits without being asked: only where a store already is
    (``recommend`` should not create ./hpo.db as a side effect)."""
    return storage is not None or "HPO_STORAGE" in os.environ or Path("hpo.db").exists()


def recommend(
    n_params: float,
    tokens: float,
    *,
    law: str | None = None,
    seq_len: int = 4096,
    storage: str | None = None,
) -> list[Recommendation]:
    """Recommendations for N parameters and D tokens: from one law (``steplaw``,
    ``deepseek``, ``fit:NAME``), or from every published law and stored fit side by side."""
    _check(n_params, tokens, seq_len)
    if law is None:
        laws = list(PUBLISHED_LAWS.values()) + (_stored_laws(storage, None) if _has_store(storage) else [])
    elif law.startswith(FIT_PREFIX):
        laws = _stored_laws(storage, [law[len(FIT_PREFIX) :]])
    elif law in PUBLISHED_LAWS:
        laws = [PUBLISHED_LAWS[law]]
    else:
        raise ScalingError(f"unknown law {law!r}; choose {', '.join(PUBLISHED_LAWS)} or fit:NAME (a stored fit)")
    return [recommend_with(item, n_params, tokens, seq_len=seq_len) for item in laws]
