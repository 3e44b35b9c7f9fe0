"""Key/value cache for incremental decoding: each new token attends to stored keys and values."""

from __future__ import annotations

import torch


class LayerKVCache:
    """Preallocated keys and values of one layer, each (batch, heads, max_seq_len, head_dim)."""

    def __init__(
        self,
        batch_size: int,
        num_heads: int,
        max_seq_len: int,
        head_dim: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        shape = (batch_size, num_heads, max_seq_len, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.max_seq_len = max_seq_len
        self.length = 0  # positions [0, length) hold valid keys/values

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (batch, heads, new, head_dim) after the cached ones; return all of them."""
        end = self.length + k.shape[-2]
        if end > self.max_seq_len:
            raise ValueError(
                f"KV cache overflow: {self.length} cached + {k.shape[-2]} new positions exceed "
                f"its max_seq_len={self.max_seq_len}"
            )
        self.k[:, :, self.length : end] = k
        self.v[:, :, self.length : end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]  # (batch, heads, end, head_dim)


class KVCache:
    """One ``LayerKVCache`` per Transformer block; ``length`` is the number of cached positions."""

    def __init__(
        self,
        num_layers: int,
        batch_size: int,
        num_heads: int,
        max_seq_len: int,
        head_dim: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        self.layers = [
            LayerKVCache(batch_size, num_heads, max_seq_len, head_dim, device, dtype)
            for _ in range(num_layers)
        ]
        self.max_seq_len = max_seq_len

    @property
    def length(self) -> int:
        return self.layers[0].length

    def reset(self) -> None:
        for layer in self.layers:
            layer.length = 0
