"""Scaled dot-product attention and causal multi-head self-attention.

An attention function has the signature ``attention_fn(q, k, v, is_causal) -> out`` on tensors of
shape (batch, heads, seq, head_dim). ``MultiHeadSelfAttention`` takes one as a parameter so a
faster kernel (torch SDPA, a Triton FlashAttention) can replace the readable default.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from nn_core.activations import softmax
from nn_core.kv_cache import LayerKVCache
from nn_core.linear import Linear
from nn_core.rope import RotaryEmbedding

AttentionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, bool], torch.Tensor]


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d_k)) v, with any leading batch dims.

    q: (..., n, d_k), k: (..., m, d_k), v: (..., m, d_v), mask: boolean, broadcastable to
    (..., n, m), True where a query may attend to a key. Returns (..., n, d_v).
    """
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"attention: q's head dim {q.shape[-1]} != k's head dim {k.shape[-1]}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"attention: k has {k.shape[-2]} positions but v has {v.shape[-2]}")
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., n, m)
    if mask is not None:
        if mask.dtype != torch.bool:
            raise TypeError(f"attention: mask must be a boolean tensor, got {mask.dtype}")
        scores = scores.masked_fill(~mask, float("-inf"))
    return softmax(scores, dim=-1) @ v  # (..., n, d_v)


def naive_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, is_causal: bool
) -> torch.Tensor:
    """nn-core's own attention as an ``AttentionFn`` (causal mask aligned top-left, like torch)."""
    mask = None
    if is_causal:
        n, m = q.shape[-2], k.shape[-2]
        mask = torch.ones(n, m, dtype=torch.bool, device=q.device).tril()  # (n, m)
    return scaled_dot_product_attention(q, k, v, mask)


def sdpa_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, is_causal: bool
) -> torch.Tensor:
    """torch's fused scaled_dot_product_attention (FlashAttention on GPU) as an ``AttentionFn``."""
    return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)


ATTENTION_FUNCTIONS: dict[str, AttentionFn] = {"naive": naive_attention, "sdpa": sdpa_attention}


def get_attention_fn(attention_fn: str | AttentionFn | None) -> AttentionFn:
    """Resolve None (nn-core's own), a name in ``ATTENTION_FUNCTIONS``, or a callable."""
    if attention_fn is None:
        return naive_attention
    if isinstance(attention_fn, str):
        if attention_fn not in ATTENTION_FUNCTIONS:
            raise ValueError(
                f"attention_fn {attention_fn!r} is unknown; choose one of "
                f"{sorted(ATTENTION_FUNCTIONS)} "
                "or pass a callable (q, k, v, is_causal) -> out"
            )
        return ATTENTION_FUNCTIONS[attention_fn]
    if not callable(attention_fn):
        raise TypeError(
            f"attention_fn must be a name or a callable, got {type(attention_fn).__name__}"
        )
    return attention_fn


class MultiHeadSelfAttention(nn.Module):
    """Causal multi-head self-attention with optional RoPE on queries and keys.

    One (d_model, d_model) projection each for Q, K and V; heads are split with einops, so all
    heads run in the same batched matmul.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        rope: RotaryEmbedding | None = None,
        attention_fn: str | AttentionFn | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        if not isinstance(num_heads, int) or num_heads <= 0:
            raise ValueError(
                f"MultiHeadSelfAttention: num_heads must be a positive int, got {num_heads!r}"
            )
        if d_model % num_heads:
            raise ValueError(
                f"MultiHeadSelfAttention: d_model={d_model} is not divisible by "
                f"num_heads={num_heads}"
            )
        self.d_model, self.num_heads, self.head_dim = d_model, num_heads, d_model // num_heads
        if rope is not None and rope.d_k != self.head_dim:
            raise ValueError(f"RoPE d_k={rope.d_k} does not match the head dim {self.head_dim}")
        self.q_proj = Linear(d_model, d_model, device=device, dtype=dtype)
        self.k_proj = Linear(d_model, d_model, device=device, dtype=dtype)
        self.v_proj = Linear(d_model, d_model, device=device, dtype=dtype)
        self.output_proj = Linear(d_model, d_model, device=device, dtype=dtype)
        self.rope = rope
        self.attention_fn = get_attention_fn(attention_fn)

    def forward(
        self,
        x: torch.Tensor,
        token_positions: torch.Tensor | None = None,
        kv_cache: LayerKVCache | None = None,
    ) -> torch.Tensor:
        """x: (..., seq, d_model) -> (..., seq, d_model).

        token_positions: (..., seq) or (seq,); defaults to cache_length + arange(seq).
        kv_cache: keys/values of earlier positions (decoding); the new ones are appended to it.
        """
        if x.ndim < 2 or x.shape[-1] != self.d_model:
            raise ValueError(
                f"MultiHeadSelfAttention: expected input (..., seq, {self.d_model}), "
                f"got {tuple(x.shape)}"
            )
        lead, seq = x.shape[:-2], x.shape[-2]
        x = x.reshape(-1, seq, self.d_model)  # (B, T, C) with B = prod(leading dims)
        start = 0 if kv_cache is None else kv_cache.length

        q = rearrange(self.q_proj(x), "b t (h d) -> b h t d", h=self.num_heads)  # (B, nh, T, hs)
        k = rearrange(self.k_proj(x), "b t (h d) -> b h t d", h=self.num_heads)
        v = rearrange(self.v_proj(x), "b t (h d) -> b h t d", h=self.num_heads)

        if self.rope is not None:
            if token_positions is None:
                token_positions = torch.arange(start, start + seq, device=x.device)
            elif token_positions.ndim > 1:
                token_positions = token_positions.reshape(-1, seq)  # (B, T), like x
            positions = token_positions.unsqueeze(-2)  # (..., 1, T): the same for every head
            q, k = self.rope(q, positions), self.rope(k, positions)

        if kv_cache is None:
            out = self.attention_fn(q, k, v, True)
        else:
            k_all, v_all = kv_cache.append(k, v)  # (B, nh, start + T, hs)
            if start == 0:  # prefill: ordinary causal self-attention over the prompt
                out = self.attention_fn(q, k_all, v_all, True)
            else:  # new query i sits at position start + i and sees keys 0 .. start + i
                query_pos = torch.arange(start, start + seq, device=x.device)
                key_pos = torch.arange(start + seq, device=x.device)
                mask = query_pos[:, None] >= key_pos[None, :]  # (T, start + T)
                out = scaled_dot_product_attention(q, k_all, v_all, mask)

        out = rearrange(out, "b h t d -> b t (h d)")  # (B, T, C)
        return self.output_proj(out).reshape(*lead, seq, self.d_model)

    def extra_repr(self) -> str:
        name = getattr(self.attention_fn, "__name__", type(self.attention_fn).__name__)
        return f"num_heads={self.num_heads}, head_dim={self.head_dim}, attention_fn={name}"
