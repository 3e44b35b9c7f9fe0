"""Learning-rate schedules."""

from __future__ import annotations

import math


def cosine_lr(
    t: int, max_lr: float, min_lr: float, warmup_iters: int, cosine_cycle_iters: int
) -> float:
    """Linear warm-up, cosine decay, then a flat minimum (LLaMA's schedule, as in CS336 §4.4).

    t < warmup_iters:                        lr = t / warmup_iters * max_lr
    warmup_iters <= t <= cosine_cycle_iters: lr = min_lr + (1 + cos(pi * (t - Tw) / (Tc - Tw))) / 2
                                                            * (max_lr - min_lr)
    t > cosine_cycle_iters:                  lr = min_lr
    """
    if t < 0:
        raise ValueError(f"cosine_lr: t must be >= 0, got {t!r}")
    if warmup_iters < 0 or cosine_cycle_iters < warmup_iters:
        raise ValueError(
            "cosine_lr: need 0 <= warmup_iters <= cosine_cycle_iters, got "
            f"warmup_iters={warmup_iters!r}, cosine_cycle_iters={cosine_cycle_iters!r}"
        )
    if t < warmup_iters:
        return t / warmup_iters * max_lr
    if t > cosine_cycle_iters:
        return min_lr
    if cosine_cycle_iters == warmup_iters:  # a zero-length decay: t sits exactly at its start
        return max_lr
    progress = (t - warmup_iters) / (cosine_cycle_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (max_lr - min_lr)
