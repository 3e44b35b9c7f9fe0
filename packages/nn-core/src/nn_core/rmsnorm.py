"""Root-mean-square layer normalisation (Zhang & Sennrich, 2019)."""

from __future__ import annotations

import torch
from torch import nn


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight over the last dim; weight starts at 1.

    The mean of squares is computed in (at least) float32 and the result cast back to the input
    dtype: in bfloat16 the sum of d_model squares would lose most of its significant bits.
    """

    def __init__(
        self,
        d_model: int,
        eps: float = 1e-5,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        if not isinstance(d_model, int) or d_model <= 0:
            raise ValueError(f"RMSNorm: d_model must be a positive int, got {d_model!r}")
        if not eps > 0:
            raise ValueError(f"RMSNorm: eps must be > 0, got {eps!r}")
        self.d_model = d_model
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.d_model:
            raise ValueError(f"RMSNorm: input's last dim is {x.shape[-1]}, expected {self.d_model}")
        in_dtype = x.dtype
        x = x.to(torch.promote_types(in_dtype, torch.float32))  # at least float32
        inv_rms = torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)  # (..., 1)
        return (x * inv_rms * self.weight.to(x.dtype)).to(in_dtype)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, eps={self.eps}"
