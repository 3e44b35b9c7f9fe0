"""Input checks shared by every attention implementation in this package.

Both `FlashAttentionTorch` and `FlashAttentionTriton` accept the same inputs and reject the same
bad ones, so a model that runs on the CPU reference runs unchanged on the GPU kernels.
"""

from __future__ import annotations

import torch

SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
# The Triton kernels keep one whole head (D values) of a row in registers and use it as a tl.dot
# operand, so D must be a power of two and at least 16 (the smallest tensor-core tile side).
SUPPORTED_HEAD_DIMS = (16, 32, 64, 128)


def check_attention_inputs(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, is_causal: bool
) -> None:
    """Raise a ValueError naming the input and the problem unless q, k, v are valid.

    Valid: all three (batch, heads, seq, head_dim) or all three (batch, seq, head_dim); one dtype
    (float16, bfloat16 or float32) and one device; k and v of one shape; q and k share every
    dimension but seq; head_dim in 16, 32, 64, 128; seq >= 1; for causal attention, as many
    queries as keys.
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() not in (3, 4):
            raise ValueError(
                f"{name} must be (batch, heads, seq, head_dim) or (batch, seq, head_dim), "
                f"got shape {tuple(t.shape)}"
            )
        if t.dtype not in SUPPORTED_DTYPES:
            raise ValueError(f"{name} has dtype {t.dtype}; supported: float16, bfloat16, float32")
    if not (q.dim() == k.dim() == v.dim()):
        raise ValueError(
            f"q, k, v must have the same number of dimensions, got "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v must be on one device, got {q.device}, {k.device}, {v.device}")
    if k.shape != v.shape:
        raise ValueError(
            f"k and v must have the same shape, got {tuple(k.shape)} and {tuple(v.shape)}"
        )
    if q.shape[:-2] != k.shape[:-2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q {tuple(q.shape)} and k {tuple(k.shape)} must agree in every dimension but seq"
        )
    head_dim = q.shape[-1]
    if head_dim not in SUPPORTED_HEAD_DIMS:
        raise ValueError(
            f"head_dim (last dim of q, k, v) must be one of {SUPPORTED_HEAD_DIMS}, got {head_dim}"
        )
    if q.shape[-2] == 0 or k.shape[-2] == 0:
        raise ValueError(
            f"seq must be at least 1, got {q.shape[-2]} queries and {k.shape[-2]} keys"
        )
    if is_causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"causal attention needs as many queries as keys, got {q.shape[-2]} queries "
            f"and {k.shape[-2]} keys"
        )
