"""Split a model's parameters into weight-decayed and not-decayed groups."""

from __future__ import annotations

from typing import Any

from torch import nn


def weight_decay_param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay matrices (p.dim() >= 2: linear weights, embeddings); leave vectors (norm gains) alone.

    Shrinking a norm's gain towards 0 fights the normalisation it exists to undo, so only
    weights that multiply activations are decayed (as nanoGPT does). Frozen parameters are
    left out. Pass the result to an optimizer: ``AdamW(weight_decay_param_groups(m, 0.1))``.
    """
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    decay, no_decay = [], []
    for p in model.parameters():  # .parameters() yields a tied tensor once
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
