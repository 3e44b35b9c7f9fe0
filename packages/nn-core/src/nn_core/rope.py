"""Rotary position embedding (Su et al., 2021) on adjacent pairs of features."""

from __future__ import annotations

import torch
from torch import nn


class RotaryEmbedding(nn.Module):
    """Rotate each adjacent pair (x[2k], x[2k+1]) of a query/key by the angle pos * theta^(-2k/d_k).

    cos and sin are tabulated once for positions [0, max_seq_len) as non-persistent buffers (they
    are a function of the config, so they stay out of state dicts). ``forward`` takes explicit
    positions, so a KV-cached decode step rotates its single token by its true position.
    The rotation is done in (at least) float32 and cast back: angles up to max_seq_len radians
    need the extra mantissa bits.
    """

    def __init__(
        self,
        theta: float,
        d_k: int,
        max_seq_len: int,
        device: torch.device | str | None = None,
    ):
        super().__init__()
        if not isinstance(d_k, int) or d_k <= 0 or d_k % 2:
            raise ValueError(f"RotaryEmbedding: d_k must be a positive even int, got {d_k!r}")
        if not isinstance(max_seq_len, int) or max_seq_len <= 0:
            raise ValueError(
                f"RotaryEmbedding: max_seq_len must be a positive int, got {max_seq_len!r}"
            )
        if not theta > 0:
            raise ValueError(f"RotaryEmbedding: theta must be > 0, got {theta!r}")
        self.theta, self.d_k, self.max_seq_len = theta, d_k, max_seq_len
        inv_freq = theta ** (-torch.arange(0, d_k, 2, dtype=torch.float64, device=device) / d_k)
        positions = torch.arange(max_seq_len, dtype=torch.float64, device=device)
        angles = torch.outer(positions, inv_freq)  # (max_seq_len, d_k/2)
        self.register_buffer("cos", angles.cos().float(), persistent=False)
        self.register_buffer("sin", angles.sin().float(), persistent=False)

    def forward(self, x: torch.Tensor, token_positions: torch.Tensor) -> torch.Tensor:
        """x: (..., seq, d_k); token_positions: (..., seq) integers, broadcastable against x."""
        if x.shape[-1] != self.d_k:
            raise ValueError(
                f"RotaryEmbedding: input's last dim is {x.shape[-1]}, expected d_k={self.d_k}"
            )
        if token_positions.dtype.is_floating_point:
            raise TypeError(
                f"RotaryEmbedding: token_positions must be integers, got {token_positions.dtype}"
            )
        if (
            token_positions.device.type == "cpu"
            and not torch.compiler.is_compiling()
            and token_positions.numel()
            and int(token_positions.max()) >= self.max_seq_len
        ):
            raise ValueError(
                f"RotaryEmbedding: position {int(token_positions.max())} is beyond "
                f"max_seq_len={self.max_seq_len}"
            )
        compute_dtype = torch.promote_types(x.dtype, torch.float32)
        cos = self.cos[token_positions].to(compute_dtype)  # (..., seq, d_k/2)
        sin = self.sin[token_positions].to(compute_dtype)
        pairs = x.to(compute_dtype).unflatten(-1, (-1, 2))  # (..., seq, d_k/2, 2)
        even, odd = pairs[..., 0], pairs[..., 1]
        rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)
        return rotated.flatten(-2).to(x.dtype)  # (..., seq, d_k)

    def extra_repr(self) -> str:
        return f"theta={self.theta}, d_k={self.d_k}, max_seq_len={self.max_seq_len}"
