"""The plateau estimator of a cell's optimum: the geometric mean of the settings whose loss is
within ``plateau`` (0.25%) of the cell's best, as Step Law's pipeline reads an optimum.

It assumes no shape, so neither an asymmetric basin (steep above the optimum, flat below)
nor a plateau pulls it the way they pull a fitted vertex; its price is resolution, since it
can only average swept values. A cell whose runs are all within the tolerance across the
whole swept learning-rate range is flat within noise: flagged, with no optimum inside the data.
"""

from __future__ import annotations

import math

import numpy as np

from scaling.optimum import PLATEAU, Cell, Located, batch_not_swept


def locate(cell: Cell, *, plateau: float = PLATEAU) -> Located:
    """The geometric mean of the near-best settings (see the module)."""
    best = cell.best
    kept = cell.near_best(plateau)
    two_d = len(cell.batches) >= 3
    x = float(np.mean(np.log2([r.learning_rate for r in kept])))
    y = float(np.mean(np.log2([r.batch_size for r in kept]))) if two_d else math.log2(best.batch_size)
    flags = {} if two_d else {"batch_size": batch_not_swept(cell)}
    lrs = {r.learning_rate for r in kept}
    if cell.learning_rates[0] in lrs and cell.learning_rates[-1] in lrs:
        flags["learning_rate"] = (
            f"flat within noise: runs within {100 * plateau:g}% of the best loss span the whole swept learning-rate "
            f"range ({cell.learning_rates[0]:.3g}..{cell.learning_rates[-1]:.3g}); no optimum inside the data"
        )
        return Located(None, None, False, two_d, best.loss, len(kept), flags)
    return Located(x, y, two_d, two_d, best.loss, len(kept), flags)
