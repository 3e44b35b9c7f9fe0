"""FlashAttentionTorch (tiled PyTorch) against a float64 materialised-softmax reference."""

import pytest
import torch

from kernels_triton import FlashAttentionTorch, check_attention_inputs, flash_attention
from kernels_triton.flash_attention_torch import (
    flash_attention_torch_backward,
    flash_attention_torch_forward,
)

# (B, H, T_q, T_k, D): odd lengths that are not multiples of any tile, T_q != T_k when not causal.
SHAPES = [(2, 3, 77, 77, 32), (1, 2, 100, 45, 16), (3, 1, 17, 130, 64), (1, 1, 1, 1, 128)]


CASES = [(s, causal) for s in SHAPES for causal in (False, True) if not causal or s[2] == s[3]]


@pytest.mark.parametrize("shape, is_causal", CASES)
@pytest.mark.parametrize("tiles", [(16, 16), (32, 16), (16, 48), (64, 64)])
def test_forward_backward_match_float64_reference(shape, is_causal, tiles, attention_ref, rel_err):
    batch, heads, n_q, n_k, dim = shape
    gen = torch.Generator().manual_seed(hash((shape, is_causal, tiles)) % 2**31)
    q = torch.randn(batch, heads, n_q, dim, generator=gen)
    k = torch.randn(batch, heads, n_k, dim, generator=gen)
    v = torch.randn(batch, heads, n_k, dim, generator=gen)
    grad_out = torch.randn(batch, heads, n_q, dim, generator=gen)
    ref_out, ref_lse, ref_dq, ref_dk, ref_dv = attention_ref(q, k, v, grad_out, is_causal)

    out, lse = flash_attention_torch_forward(q, k, v, is_causal, *tiles)
    dq, dk, dv = flash_attention_torch_backward(q, k, v, out, lse, grad_out, is_causal, *tiles)
    assert out.dtype == torch.float32 and lse.shape == (batch, heads, n_q)
    for name, got, want in [
        ("O", out, ref_out),
        ("L", lse, ref_lse),
        ("dQ", dq, ref_dq),
        ("dK", dk, ref_dk),
        ("dV", dv, ref_dv),
    ]:
        assert rel_err(got, want) < 1e-5, name


@pytest.mark.parametrize("is_causal", [False, True])
def test_autograd_function_on_3d_inputs(is_causal, attention_ref, rel_err):
    gen = torch.Generator().manual_seed(7)
    q, k, v, grad_out = (torch.randn(2, 93, 32, generator=gen) for _ in range(4))
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    out = FlashAttentionTorch.apply(q, k, v, is_causal)
    out.backward(grad_out)
    ref_out, _, ref_dq, ref_dk, ref_dv = attention_ref(q, k, v, grad_out, is_causal)
    assert out.shape == (2, 93, 32)
    for got, want in [(out, ref_out), (q.grad, ref_dq), (k.grad, ref_dk), (v.grad, ref_dv)]:
        assert rel_err(got, want) < 1e-5


def test_lse_is_saved_for_backward(attention_ref, rel_err):
    """CS336's tests find L among ctx.saved_tensors by its shape (B, T_q)."""
    gen = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 40, 16, generator=gen).requires_grad_() for _ in range(3))
    out = FlashAttentionTorch.apply(q, k, v, False)
    saved = [t for t in out.grad_fn.saved_tensors if t.shape == (2, 40)]
    assert len(saved) == 1
    _, ref_lse, *_ = attention_ref(q, k, v, torch.ones(2, 40, 16))
    assert rel_err(saved[0], ref_lse) < 1e-5


@pytest.mark.parametrize("dtype, tol", [(torch.bfloat16, 1e-2), (torch.float16, 2e-3)])
def test_half_precision_inputs(dtype, tol, attention_ref, rel_err):
    gen = torch.Generator().manual_seed(11)
    q, k, v, grad_out = (torch.randn(1, 2, 70, 64, generator=gen).to(dtype) for _ in range(4))
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    out = flash_attention(q, k, v, is_causal=True)  # CPU tensors: the torch path
    out.backward(grad_out)
    ref_out, _, ref_dq, ref_dk, ref_dv = attention_ref(q, k, v, grad_out, True)
    assert out.dtype == dtype and q.grad.dtype == dtype
    for got, want in [(out, ref_out), (q.grad, ref_dq), (k.grad, ref_dk), (v.grad, ref_dv)]:
        assert rel_err(got, want) < tol


@pytest.mark.parametrize(
    "shapes, dtype, is_causal, message",
    [
        (((2, 8, 64),) * 3, torch.float64, False, "dtype"),
        (((2, 8, 24),) * 3, torch.float32, False, "head_dim"),
        (((2, 8, 256),) * 3, torch.float32, False, "head_dim"),
        (((8, 64),) * 3, torch.float32, False, r"\(batch, heads, seq, head_dim\)"),
        (((2, 8, 64), (2, 9, 64), (2, 9, 64)), torch.float32, True, "causal"),
        (((2, 8, 64), (2, 9, 64), (2, 8, 64)), torch.float32, False, "k and v"),
        (((2, 8, 64), (3, 9, 64), (3, 9, 64)), torch.float32, False, "every dimension but seq"),
        (((2, 0, 64),) * 3, torch.float32, False, "seq must be at least 1"),
    ],
)
def test_bad_inputs_raise_clear_errors(shapes, dtype, is_causal, message):
    q, k, v = (torch.randn(s, dtype=dtype) for s in shapes)
    with pytest.raises(ValueError, match=message):
        check_attention_inputs(q, k, v, is_causal)
    with pytest.raises(ValueError, match=message):
        flash_attention(q, k, v, is_causal)


def test_mixed_dtypes_raise():
    q = torch.randn(1, 8, 16)
    with pytest.raises(ValueError, match="share a dtype"):
        flash_attention(q, q.half(), q)


def test_public_names_exist():
    import kernels_triton

    for name in kernels_triton.__all__:
        assert hasattr(kernels_triton, name), name
