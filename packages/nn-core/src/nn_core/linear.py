"""A bias-free linear layer, stored as (out_features, in_features) like ``torch.nn.Linear``."""

from __future__ import annotations

import math

import torch
from torch import nn


def truncated_normal_(weight: torch.Tensor, std: float) -> torch.Tensor:
    """Fill ``weight`` in place from N(0, std^2) truncated at +-3 std (CS336 §3.4.1)."""
    return nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-3.0 * std, b=3.0 * std)


class Linear(nn.Module):
    """y = x W^T with W of shape (out_features, in_features); no bias, as in modern LMs.

    Initialised from N(0, 2 / (in + out)) truncated at 3 std, which keeps the variance of
    activations and of gradients roughly constant from layer to layer (Glorot's compromise).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"Linear: {name} must be a positive int, got {value!r}")
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(
            torch.empty(out_features, in_features, device=device, dtype=dtype)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        truncated_normal_(self.weight, std=math.sqrt(2.0 / (self.in_features + self.out_features)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"Linear: input's last dim is {x.shape[-1]}, "
                f"expected in_features={self.in_features}"
            )
        return x @ self.weight.T  # (..., in) @ (in, out) -> (..., out)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"
