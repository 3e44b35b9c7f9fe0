"""Element-wise and normalising functions: SiLU and a numerically stable softmax."""

from __future__ import annotations

import torch


def silu(x: torch.Tensor) -> torch.Tensor:
    """SiLU / swish: x * sigmoid(x)."""
    return x * torch.sigmoid(x)


def softmax(x: torch.Tensor, dim: int) -> torch.Tensor:
    """exp(x - max) / sum(exp(x - max)) along ``dim``.

    Subtracting the max leaves the result unchanged (it cancels in the ratio) but makes the
    largest exponent exp(0) = 1, so nothing overflows even for logits of 1e4. Half-precision
    inputs are reduced in float32 and cast back. Entries of -inf get probability 0; a slice that
    is entirely -inf has no defined softmax and gives NaN.
    """
    in_dtype = x.dtype
    if in_dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    shifted = x - x.amax(dim=dim, keepdim=True)
    exp = torch.exp(shifted)
    return (exp / exp.sum(dim=dim, keepdim=True)).to(in_dtype)
