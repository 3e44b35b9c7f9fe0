"""TransformerLM: token ids (batch, seq) -> next-token logits (batch, seq, vocab_size)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from nn_core.attention import AttentionFn, get_attention_fn
from nn_core.block import TransformerBlock
from nn_core.config import ModelConfig
from nn_core.embedding import Embedding
from nn_core.kv_cache import KVCache
from nn_core.linear import Linear
from nn_core.rmsnorm import RMSNorm
from nn_core.rope import RotaryEmbedding


class TransformerLM(nn.Module):
    """A decoder-only Transformer (Llama-style by default: pre-norm RMSNorm, RoPE, SwiGLU).

    Parameter names follow the CS336 reference: ``token_embeddings``, ``layers.{i}.*``,
    ``ln_final``, ``lm_head``. With ``tie_embeddings`` there is no ``lm_head`` parameter: the
    logits are x @ token_embeddings.weight^T, so the state dict holds each tensor once.

    ``attention_fn``: None (nn-core's own), "naive", "sdpa" (torch's fused kernels), or a callable
    (q, k, v, is_causal) -> out on (batch, heads, seq, head_dim). Set ``activation_checkpointing``
    to recompute each block's activations in backward instead of storing them.
    """

    def __init__(
        self,
        config: ModelConfig,
        attention_fn: str | AttentionFn | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TypeError(
                f"TransformerLM: config must be a ModelConfig, got {type(config).__name__}"
            )
        self.config = config
        self.activation_checkpointing = False
        cfg = config
        embed_std = cfg.d_model**-0.5 if cfg.tie_embeddings else 1.0
        self.token_embeddings = Embedding(
            cfg.vocab_size, cfg.d_model, device, dtype, init_std=embed_std
        )
        # One RoPE table shared by every layer (a non-persistent buffer, so not in the state dict).
        rope = None
        if cfg.pos == "rope":
            rope = RotaryEmbedding(cfg.rope_theta, cfg.head_dim, cfg.context_length, device=device)
        attention_fn = get_attention_fn(attention_fn)
        self.layers = nn.ModuleList(
            TransformerBlock(
                cfg.d_model,
                cfg.num_heads,
                cfg.ffn_dim,
                rope=rope,
                norm=cfg.norm,
                ffn=cfg.ffn,
                attention_fn=attention_fn,
                eps=cfg.norm_eps,
                device=device,
                dtype=dtype,
            )
            for _ in range(cfg.num_layers)
        )
        # Without any RMSNorm (the "none" ablation) the final one goes too.
        self.ln_final = (
            RMSNorm(cfg.d_model, cfg.norm_eps, device, dtype) if cfg.norm != "none" else None
        )
        self.lm_head = (
            None if cfg.tie_embeddings else Linear(cfg.d_model, cfg.vocab_size, device, dtype)
        )

    def set_attention_fn(self, attention_fn: str | AttentionFn | None) -> None:
        """Swap the attention function of every layer (e.g. to a GPU kernel after construction)."""
        fn = get_attention_fn(attention_fn)
        for layer in self.layers:
            layer.attn.attention_fn = fn

    def forward(
        self,
        token_ids: torch.Tensor,
        token_positions: torch.Tensor | None = None,
        kv_cache: KVCache | None = None,
    ) -> torch.Tensor:
        """token_ids: (batch, seq) integers -> logits (batch, seq, vocab_size).

        token_positions (optional): (batch, seq) or (seq,) absolute positions; by default
        0..seq-1, or continuing after the cached positions when ``kv_cache`` is given.
        """
        if not isinstance(token_ids, torch.Tensor) or token_ids.ndim != 2:
            shape = (
                tuple(token_ids.shape) if isinstance(token_ids, torch.Tensor) else type(token_ids)
            )
            raise ValueError(f"TransformerLM: token_ids must be a (batch, seq) tensor, got {shape}")
        seq = token_ids.shape[1]
        start = 0 if kv_cache is None else kv_cache.length
        if start + seq > self.config.context_length:
            raise ValueError(
                f"TransformerLM: sequence length {start + seq} exceeds "
                f"context_length={self.config.context_length}"
            )
        if token_positions is None:
            token_positions = torch.arange(start, start + seq, device=token_ids.device)  # (T,)

        x = self.token_embeddings(token_ids)  # (B, T, C)
        use_checkpointing = (
            self.activation_checkpointing and self.training and torch.is_grad_enabled()
        )
        for i, layer in enumerate(self.layers):
            layer_cache = None if kv_cache is None else kv_cache.layers[i]
            if use_checkpointing and layer_cache is None:
                x = checkpoint(layer, x, token_positions, use_reentrant=False)
            else:
                x = layer(x, token_positions, layer_cache)
        if self.ln_final is not None:
            x = self.ln_final(x)
        if self.lm_head is None:
            return x @ self.token_embeddings.weight.T  # (B, T, C) @ (C, V) -> (B, T, V)
        return self.lm_head(x)  # (B, T, V)

    def new_kv_cache(self, batch_size: int = 1, max_seq_len: int | None = None) -> KVCache:
        """An empty cache for ``batch_size`` sequences, on this model's device and dtype."""
        weight = self.token_embeddings.weight
        cfg = self.config
        return KVCache(
            cfg.num_layers,
            batch_size,
            cfg.num_heads,
            max_seq_len or cfg.context_length,
            cfg.head_dim,
            device=weight.device,
            dtype=weight.dtype,
        )

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Parameter count; ``exclude_embeddings`` drops the token embedding table (not lm_head)."""
        total = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            total -= self.token_embeddings.weight.numel()
        return total
