"""Gradient clipping by the global L2 norm over all parameters."""

from __future__ import annotations

from collections.abc import Iterable

import torch


@torch.no_grad()
def clip_grad_norm_(
    parameters: Iterable[torch.Tensor] | torch.Tensor, max_l2_norm: float, eps: float = 1e-6
) -> torch.Tensor:
    """Scale every gradient by max_l2_norm / (norm + eps) when the global norm exceeds max_l2_norm.

    The norm is one L2 norm over all gradients together (so clipping keeps the update's
    direction), computed in float32. Parameters without a gradient are skipped. Returns the
    total norm before clipping, as a float32 scalar tensor. The scale is applied with a
    ``torch.where`` rather than a Python ``if``, so no device-to-host sync is needed.
    """
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    if not max_l2_norm > 0:
        raise ValueError(f"clip_grad_norm_: max_l2_norm must be > 0, got {max_l2_norm!r}")
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    norms = torch.stack([torch.linalg.vector_norm(g, dtype=torch.float32) for g in grads])
    total_norm = torch.linalg.vector_norm(norms)
    scale = torch.where(total_norm > max_l2_norm, max_l2_norm / (total_norm + eps), 1.0)
    for g in grads:
        g.mul_(scale.to(g.dtype))
    return total_norm
