"""Token embedding: a lookup table from token ids to vectors."""

from __future__ import annotations

import torch
from torch import nn

from nn_core.linear import truncated_normal_


def check_token_ids(token_ids: torch.Tensor, vocab_size: int, name: str = "token_ids") -> None:
    """Raise a clear error when ``token_ids`` is not an integer tensor with ids in [0, vocab_size).

    The range check reads the values back to the host, so it only runs on CPU tensors and outside
    ``torch.compile``: on a GPU an out-of-range index already trips a device-side assert, and a
    host sync on every training step would stall the launch queue.
    """
    if not isinstance(token_ids, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(token_ids).__name__}")
    if (
        token_ids.dtype.is_floating_point
        or token_ids.dtype.is_complex
        or token_ids.dtype == torch.bool
    ):
        raise TypeError(
            f"{name} must be an integer tensor (e.g. torch.long), got {token_ids.dtype}"
        )
    if token_ids.device.type != "cpu" or torch.compiler.is_compiling() or token_ids.numel() == 0:
        return
    if token_ids.dtype in (torch.uint16, torch.uint32, torch.uint64):
        token_ids = token_ids.long()  # min/max are not implemented for these on the CPU
    lo, hi = int(token_ids.min()), int(token_ids.max())
    if lo < 0 or hi >= vocab_size:
        bad = hi if hi >= vocab_size else lo
        raise ValueError(f"{name} contains id {bad}, outside the vocabulary [0, {vocab_size})")


class Embedding(nn.Module):
    """weight[token_ids]; weight (num_embeddings, embedding_dim) from N(0, std^2) cut at 3 std.

    ``init_std`` is 1 by default (CS336); a tied input/output embedding uses d_model ** -0.5 so the
    logits it produces start with unit variance instead of variance d_model.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        init_std: float = 1.0,
    ):
        super().__init__()
        for name, value in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"Embedding: {name} must be a positive int, got {value!r}")
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.init_std = init_std
        self.weight = nn.Parameter(
            torch.empty(num_embeddings, embedding_dim, device=device, dtype=dtype)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        truncated_normal_(self.weight, std=self.init_std)

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        check_token_ids(token_ids, self.num_embeddings)
        if token_ids.dtype not in (torch.int32, torch.int64):
            # uint8 would index as a boolean mask, int16/uint16 not at all: widen them.
            token_ids = token_ids.long()
        return self.weight[token_ids]  # (...) -> (..., embedding_dim)

    def extra_repr(self) -> str:
        return f"num_embeddings={self.num_embeddings}, embedding_dim={self.embedding_dim}"
