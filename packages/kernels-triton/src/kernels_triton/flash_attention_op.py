"""The Triton FlashAttention as `torch.library` operators, opaque to torch.compile.

Dynamo cannot trace a Triton launcher (autotuner state, Python-side caches, `triton.set_allocator`)
nor, cleanly, the `FlashAttentionTriton` autograd.Function around it: it breaks the graph there
and, with the per-shape launcher state, keeps recompiling until it hits its limit and runs the
rest of the model eagerly. Registered as operators, the forward and backward are single nodes
in the graph: the compiler sees only their fake (meta) implementations, which state the output
shapes, dtypes and strides, and calls the real ones at run time.

    kernels_triton::flash_attention_forward(q, k, v, is_causal) -> (O, L)
    kernels_triton::flash_attention_backward(grad_out, q, k, v, O, L, is_causal) -> (dQ, dK, dV)

Both call the very launchers `FlashAttentionTriton` uses, so the kernels, tiles and autotuning are
unchanged. They run on any device the launchers run on: CUDA, or the CPU under TRITON_INTERPRET=1
(how the tests exercise them). Every output is a fresh contiguous tensor, as the fakes claim: O and
dQ/dK/dV shaped like q/k/v in q's dtype, L float32 of shape q.shape[:-1].
"""

from __future__ import annotations

import torch

# The module, not its functions: the tests' conftest may reload it to switch Triton to its
# interpreter, and looking the launchers up at call time picks up the reloaded ones.
from kernels_triton import flash_attention_triton as _launchers
from kernels_triton.attention_inputs import check_attention_inputs

# Defined with a plain torch.library.Library, not @torch.library.custom_op: the decorator's
# Python wrappers (output-aliasing checks, a dynamo-disable shim, an autograd layer) cost
# hundreds of microseconds of host time per call, measured on the H100 host, which a small
# model's compiled step cannot hide. Here the dispatcher calls the launcher directly.
_lib = torch.library.Library("kernels_triton", "DEF")
_lib.define(
    "flash_attention_forward(Tensor q, Tensor k, Tensor v, bool is_causal) -> (Tensor, Tensor)"
)
_lib.define(
    "flash_attention_backward(Tensor grad_out, Tensor q, Tensor k, Tensor v, Tensor out, "
    "Tensor lse, bool is_causal) -> (Tensor, Tensor, Tensor)"
)


def _forward_impl(q, k, v, is_causal):
    """(O, L): O contiguous like q, L float32 (natural-log log-sum-exp) of shape q.shape[:-1]."""
    return _launchers.flash_attention_triton_forward(q, k, v, is_causal)


def _backward_impl(grad_out, q, k, v, out, lse, is_causal):
    """(dQ, dK, dV), contiguous, shaped and typed like q, k, v."""
    return _launchers.flash_attention_triton_backward(q, k, v, out, lse, grad_out, is_causal)


# CUDA, and the CPU for the Triton interpreter (how the tests run the ops without a GPU).
for _key in ("CUDA", "CPU"):
    _lib.impl("flash_attention_forward", _forward_impl, _key)
    _lib.impl("flash_attention_backward", _backward_impl, _key)

flash_attention_forward = torch.ops.kernels_triton.flash_attention_forward.default
flash_attention_backward = torch.ops.kernels_triton.flash_attention_backward.default


@torch.library.register_fake("kernels_triton::flash_attention_forward")
def _(q, k, v, is_causal):
    out = q.new_empty(q.shape)  # contiguous, as the launcher allocates it
    lse = q.new_empty(q.shape[:-1], dtype=torch.float32)
    return out, lse


@torch.library.register_fake("kernels_triton::flash_attention_backward")
def _(grad_out, q, k, v, out, lse, is_causal):
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


def _setup_context(ctx, inputs, output):
    q, k, v, is_causal = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse)
    ctx.is_causal = is_causal
    # L is an auxiliary output for the backward pass; no gradient flows through it.
    ctx.mark_non_differentiable(lse)


def _backward(ctx, grad_out, grad_lse):
    q, k, v, out, lse = ctx.saved_tensors
    if grad_out is None:  # O was not used: nothing flows back
        return None, None, None, None
    dq, dk, dv = flash_attention_backward(grad_out, q, k, v, out, lse, ctx.is_causal)
    return dq, dk, dv, None


torch.library.register_autograd(
    "kernels_triton::flash_attention_forward", _backward, setup_context=_setup_context
)


def flash_attention_custom_op(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, is_causal: bool = False
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v through the custom ops: differentiable, compiles without a
    graph break. Inputs are validated here, in Python, so that a bad call fails with the same
    ValueError as `FlashAttentionTriton` before reaching the op."""
    check_attention_inputs(q, k, v, is_causal)
    out, _ = flash_attention_forward(q, k, v, is_causal)
    return out
