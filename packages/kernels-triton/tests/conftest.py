"""Run the Triton kernels in Triton's CPU interpreter when no CUDA device is present.

TRITON_INTERPRET must be set before `@triton.jit` decorates the kernels, i.e. before
kernels_triton.flash_attention_triton is first imported. Nothing else in the workspace imports
Triton, and pytest loads this file before collecting the tests beside it, so setting the variable
here is early enough; if the module was nevertheless imported already (a test elsewhere in the
same run did), it is reloaded so that its kernels become interpreted ones.
"""

from __future__ import annotations

import importlib
import os
import sys

import numpy as np
import pytest
import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"

    import triton.runtime.interpreter as _interpreter

    # Triton 3.6's interpreter turns a scalar (a one-element array) into a Python int with
    # int(array), which NumPy >= 2.4 refuses for arrays of one dimension; loops bounded by
    # run-time values (range(lo, hi) with lo from tl.program_id) then fail. Take the element.
    if tuple(int(x) for x in np.__version__.split(".")[:2]) >= (2, 4):
        _patch_tensor = _interpreter._patch_lang_tensor

        def _patch_lang_tensor(tensor, scope):
            _patch_tensor(tensor, scope)
            scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))

        _interpreter._patch_lang_tensor = _patch_lang_tensor

    _module = sys.modules.get("kernels_triton.flash_attention_triton")
    if _module is not None and not isinstance(
        _module._attn_fwd_kernel, _interpreter.InterpretedFunction
    ):
        importlib.reload(_module)
        importlib.reload(sys.modules["kernels_triton"])


def reference_attention(q, k, v, is_causal=False):
    """Materialised-softmax attention in float64: returns (O, L) for the tests to compare with."""
    q, k, v = (t.double() for t in (q, k, v))
    scores = q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5  # (..., T_q, T_k)
    if is_causal:
        visible = torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~visible, -torch.inf)
    return torch.softmax(scores, dim=-1) @ v, torch.logsumexp(scores, dim=-1)


def reference_attention_grads(q, k, v, grad_out, is_causal=False):
    """(O, L, dQ, dK, dV) of reference_attention, all float64."""
    q, k, v = (t.detach().double().requires_grad_() for t in (q, k, v))
    out, lse = reference_attention(q, k, v, is_causal)
    out.backward(grad_out.double())
    return out.detach(), lse.detach(), q.grad, k.grad, v.grad


def rel_error(actual, expected):
    """||actual - expected|| / ||expected|| in float64, the norm floored at 1 so that an all-zero
    reference (dQ when each query sees one key) still compares. NaN anywhere gives NaN: fails."""
    actual, expected = actual.double(), expected.double()
    return ((actual - expected).norm() / expected.norm().clamp(min=1.0)).item()


@pytest.fixture
def attention_ref():
    return reference_attention_grads


@pytest.fixture
def rel_err():
    return rel_error
