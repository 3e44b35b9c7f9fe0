"""Activation checkpointing per block: keep only each block's input, recompute inside backward.

Memory for activations drops from every intermediate of every block to one tensor per block,
for roughly one extra forward pass of compute. The block's `forward` is replaced on the
instance (not wrapped in another module), so parameter names, state dicts and checkpoints are
unchanged.
"""

from __future__ import annotations

import functools

import torch
from torch.utils.checkpoint import checkpoint


def _recomputed(forward):
    @functools.wraps(forward)
    def run(*args, **kwargs):
        # use_reentrant=False: works with torch.compile, DDP/FSDP2 and inputs without grad.
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)

    run.__trainer_checkpointed__ = True
    return run


def apply_activation_checkpointing(model: torch.nn.Module) -> int:
    """Checkpoint every block in `model.layers`; return how many blocks were wrapped."""
    layers = getattr(model, "layers", None)
    if layers is None:
        raise ValueError(
            "activation checkpointing needs the model's blocks in `model.layers` "
            f"({type(model).__name__} has no such attribute)"
        )
    count = 0
    for block in layers:
        if not getattr(block.forward, "__trainer_checkpointed__", False):
            block.forward = _recomputed(block.forward)
            count += 1
    return count
