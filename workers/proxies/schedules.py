"""Learning-rate schedules as a multiplier of the peak rate at each step.

Both warm up linearly over ``warmup_fraction`` of the run. ``cosine`` then follows a half cosine
down to ``final_fraction`` of the peak (Chinchilla's 10% by default); ``wsd``
(warmup-stable-decay, as in MiniCPM, Hu et al. 2024) holds the peak and decays linearly to
``final_fraction`` over the last ``decay_fraction`` of the run. A few lines each, so written
here rather than through ``torch.optim.lr_scheduler``, whose classes carry state that a trial
resumed at another budget would have to rebuild.
"""

from __future__ import annotations

import math

SCHEDULES = ("cosine", "wsd", "constant")


def lr_multiplier(
    step: int,
    total_steps: int,
    *,
    schedule: str = "cosine",
    warmup_fraction: float = 0.05,
    decay_fraction: float = 0.2,
    final_fraction: float = 0.1,
) -> float:
    """The multiplier at ``step`` (0-based) of a run of ``total_steps`` steps."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    warmup = round(warmup_fraction * total_steps)
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        progress = (step - warmup) / max(1, total_steps - warmup)
        return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    decay_steps = max(1, round(decay_fraction * total_steps))
    decay_start = total_steps - decay_steps
    if step < decay_start:
        return 1.0
    progress = (step - decay_start + 1) / decay_steps
    return 1.0 - (1 - final_fraction) * min(1.0, progress)
