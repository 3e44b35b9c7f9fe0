"""`flash_attention`: the one attention call a model needs, on any device."""

from __future__ import annotations

import torch

from kernels_triton.flash_attention_torch import FlashAttentionTorch


def flash_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, is_causal: bool = False
) -> torch.Tensor:
    """softmax(q k^T / sqrt(head_dim)) v, differentiable in q, k and v.

    q: (B, H, T_q, D) or (B, T_q, D); k, v: (B, H, T_k, D) or (B, T_k, D); D in 16, 32, 64, 128;
    float16, bfloat16 or float32. `is_causal` masks key j for query i when j > i (needs
    T_q == T_k). Runs the Triton kernels on CUDA tensors and the tiled PyTorch reference
    elsewhere; both save only O and the log-sum-exp for the backward pass.

    On CUDA, under torch.compile the call goes through the torch.library operators of
    flash_attention_op.py, which the compiler keeps in its graph as single opaque nodes (it
    cannot trace the Triton launcher); run eagerly it goes through FlashAttentionTriton.apply,
    the shortest path to the launchers. Both run the same launchers and kernels.
    """
    if q.is_cuda:
        # Imported here so that a machine without Triton can still use the CPU path.
        if torch.compiler.is_compiling():
            from kernels_triton.flash_attention_op import flash_attention_custom_op

            return flash_attention_custom_op(q, k, v, is_causal)
        from kernels_triton.flash_attention_triton import FlashAttentionTriton

        return FlashAttentionTriton.apply(q, k, v, is_causal)
    return FlashAttentionTorch.apply(q, k, v, is_causal)
