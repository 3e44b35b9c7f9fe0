"""Position-wise feed-forward networks: SwiGLU (the default) and a plain SiLU MLP (ablation)."""

from __future__ import annotations

import torch
from torch import nn

from nn_core.activations import silu
from nn_core.linear import Linear


def default_d_ff(d_model: int) -> int:
    """8/3 * d_model rounded to the nearest multiple of 64 (d_model=512 -> 1344).

    SwiGLU has three matrices instead of two, so 8/3 * d_model hidden units cost the same
    parameters as a 4 * d_model two-matrix MLP; a multiple of 64 keeps matmuls tile-aligned.
    """
    return max(64, 64 * round(8 * d_model / 3 / 64))


class SwiGLU(nn.Module):
    """W2 (SiLU(W1 x) * W3 x), with W1, W3: (d_ff, d_model) and W2: (d_model, d_ff)."""

    def __init__(
        self,
        d_model: int,
        d_ff: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        d_ff = default_d_ff(d_model) if d_ff is None else d_ff
        self.w1 = Linear(d_model, d_ff, device=device, dtype=dtype)
        self.w2 = Linear(d_ff, d_model, device=device, dtype=dtype)
        self.w3 = Linear(d_model, d_ff, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(silu(self.w1(x)) * self.w3(x))  # (..., d_ff) gated -> (..., d_model)


class SiLUFeedForward(nn.Module):
    """W2 SiLU(W1 x): the ungated MLP of CS336's SwiGLU-vs-SiLU ablation (d_ff = 4 * d_model)."""

    def __init__(
        self,
        d_model: int,
        d_ff: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        d_ff = 4 * d_model if d_ff is None else d_ff
        self.w1 = Linear(d_model, d_ff, device=device, dtype=dtype)
        self.w2 = Linear(d_ff, d_model, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(silu(self.w1(x)))
