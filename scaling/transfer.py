"""The muTransfer verdict: did the optimal learning rate stay put as the proxy widened?

The rule, in one home for ``hpo demo`` and ``benchmarks/mutransfer.py``:

* The drift is the optimum's log2 learning rate at the widest width minus at the narrowest.
  It "stays put" when ``|drift| <= TOLERANCE_LOG2`` (0.5, a factor of 1.41): the bar the
  muTransfer benchmark sets over 8x in width, where SP's optimum moves by more than 1.
* A drift past the tolerance is called a move only when the two widths' bootstrap intervals
  are disjoint: with a few dozen single-seed runs per width the optimum is often uncertain by
  more than the tolerance, and calling that noise a failure of muP would mislead.
* From a sweep over several token budgets the check reads the budget where the most widths
  have a usable optimum; on a tie the one whose optima are best determined (the narrowest
  mean interval), since a drift read from wide intervals says little.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scaling.optimum import CellOptimum

#: The largest |drift| (log2 of the learning rate) that still counts as staying put.
TOLERANCE_LOG2 = 0.5
STAYS = "it stays put"
MOVES = "it moves"
UNRESOLVED = "not resolved: the two widths' 90% intervals overlap; more trials per width would settle it"


@dataclass(frozen=True)
class TransferCheck:
    """The check at one token budget: ``cells`` are the widths' optima, narrowest first."""

    tokens: float
    cells: tuple[CellOptimum, ...]
    drift_log2: float
    stays_put: bool
    verdict: str


def stays_put(drift_log2: float) -> bool:
    """Whether a drift (log2 learning rate, widest minus narrowest) is within the tolerance."""
    return abs(drift_log2) <= TOLERANCE_LOG2


def transfer_verdict(narrow: CellOptimum, wide: CellOptimum, stays: bool) -> str:
    """:data:`STAYS` within the tolerance; beyond it :data:`MOVES` only when the two optima's
    learning-rate intervals are disjoint (or either is missing), else :data:`UNRESOLVED`."""
    if stays:
        return STAYS
    a, b = narrow.learning_rate_interval, wide.learning_rate_interval
    if a is None or b is None or a[1] < b[0] or b[1] < a[0]:
        return MOVES
    return UNRESOLVED


def check_transfer(optima: Sequence[CellOptimum], n_params: Mapping[float, object]) -> TransferCheck | None:
    """The verdict at the budget the module docstring picks, over the optima whose N is in
    ``n_params`` (the proxies of the sweep) and whose learning rate is usable; None when no
    budget has two such widths."""
    by_tokens: dict[float, list[CellOptimum]] = {}
    for o in optima:
        if o.lr_usable and o.n_params in n_params:
            by_tokens.setdefault(o.tokens, []).append(o)
    if not by_tokens or max(len(v) for v in by_tokens.values()) < 2:
        return None
    tokens = max(by_tokens, key=lambda d: (len(by_tokens[d]), -_spread_log2(by_tokens[d])))
    cells = tuple(sorted(by_tokens[tokens], key=lambda o: o.n_params))
    drift = math.log2(cells[-1].learning_rate / cells[0].learning_rate)
    stays = stays_put(drift)
    return TransferCheck(tokens, cells, drift, stays, transfer_verdict(cells[0], cells[-1], stays))


def _spread_log2(cells: list[CellOptimum]) -> float:
    """The mean width, in log2, of the cells' learning-rate intervals (inf without any)."""
    widths = [math.log2(i[1] / i[0]) for o in cells if (i := o.learning_rate_interval) is not None and i[0] > 0]
    return sum(widths) / len(widths) if widths else math.inf
