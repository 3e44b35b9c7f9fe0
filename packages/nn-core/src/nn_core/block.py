"""One Transformer block: attention then feed-forward, each a residual branch."""

from __future__ import annotations

import torch
from torch import nn

from nn_core.attention import AttentionFn, MultiHeadSelfAttention
from nn_core.config import FFN_CHOICES, NORM_CHOICES
from nn_core.feedforward import SiLUFeedForward, SwiGLU
from nn_core.kv_cache import LayerKVCache
from nn_core.rmsnorm import RMSNorm
from nn_core.rope import RotaryEmbedding


class TransformerBlock(nn.Module):
    """Pre-norm by default: x + attn(ln1(x)), then x + ffn(ln2(x)).

    Pre-norm leaves an identity path from input to output, which is what lets deep stacks train
    without warm-up tricks. ``norm="post"`` normalises after each residual add (the 2017
    Transformer); ``norm="none"`` drops ln1/ln2 entirely.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int | None = None,
        rope: RotaryEmbedding | None = None,
        norm: str = "pre",
        ffn: str = "swiglu",
        attention_fn: str | AttentionFn | None = None,
        eps: float = 1e-5,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        if norm not in NORM_CHOICES:
            raise ValueError(f"TransformerBlock: norm={norm!r}; choose one of {NORM_CHOICES}")
        if ffn not in FFN_CHOICES:
            raise ValueError(f"TransformerBlock: ffn={ffn!r}; choose one of {FFN_CHOICES}")
        self.norm = norm
        self.attn = MultiHeadSelfAttention(d_model, num_heads, rope, attention_fn, device, dtype)
        feedforward = SwiGLU if ffn == "swiglu" else SiLUFeedForward
        self.ffn = feedforward(d_model, d_ff, device=device, dtype=dtype)
        if norm != "none":
            self.ln1 = RMSNorm(d_model, eps, device=device, dtype=dtype)
            self.ln2 = RMSNorm(d_model, eps, device=device, dtype=dtype)

    def forward(
        self,
        x: torch.Tensor,
        token_positions: torch.Tensor | None = None,
        kv_cache: LayerKVCache | None = None,
    ) -> torch.Tensor:
        """x: (batch, seq, d_model) -> (batch, seq, d_model)."""
        if self.norm == "pre":
            x = x + self.attn(self.ln1(x), token_positions, kv_cache)
            return x + self.ffn(self.ln2(x))
        if self.norm == "post":
            x = self.ln1(x + self.attn(x, token_positions, kv_cache))
            return self.ln2(x + self.ffn(x))
        x = x + self.attn(x, token_positions, kv_cache)
        return x + self.ffn(x)
