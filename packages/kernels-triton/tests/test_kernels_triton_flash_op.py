"""The Triton FlashAttention as torch.library custom ops (flash_attention_op.py).

Without CUDA the ops run the Triton launchers in the CPU interpreter (conftest.py), so the
schema, the fake (meta) implementations, the autograd registration and torch.compile with
fullgraph=True are all checked here; the inductor-on-GPU test runs only with CUDA.
"""

import pytest
import torch

from kernels_triton.flash_attention_op import (
    flash_attention_backward,
    flash_attention_custom_op,
    flash_attention_forward,
)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# The interpreter multiplies in float32 (NumPy); on the GPU a float32 tl.dot runs in 3xTF32.
FP32_TOL = 1e-5 if DEVICE == "cpu" else 5e-3


def _inputs(batch, heads, n_q, n_k, dim, seed=0, requires_grad=False):
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, heads, n, dim, generator=gen) for n in (n_q, n_k, n_k))
    grad_out = torch.randn(batch, heads, n_q, dim, generator=gen)
    q, k, v = (t.to(DEVICE).requires_grad_(requires_grad) for t in (q, k, v))
    return q, k, v, grad_out.to(DEVICE)


# test_autograd_registration is left out of the backward op: it has no autograd of its own (no
# double backward), which that check would report for inputs that require grad.
OPCHECK_TESTS = ("test_schema", "test_faketensor", "test_aot_dispatch_dynamic")


@pytest.mark.parametrize("is_causal", [False, True])
def test_opcheck_forward_and_backward_ops(is_causal):
    q, k, v, grad_out = _inputs(1, 2, 20, 20, 16, seed=1)
    torch.library.opcheck(flash_attention_forward, (q, k, v, is_causal), test_utils=OPCHECK_TESTS)
    leaves = tuple(t.clone().requires_grad_() for t in (q, k, v))
    torch.library.opcheck(
        flash_attention_forward,
        (*leaves, is_causal),
        test_utils=(*OPCHECK_TESTS, "test_autograd_registration"),
    )
    out, lse = flash_attention_forward(q, k, v, is_causal)
    torch.library.opcheck(
        flash_attention_backward, (grad_out, q, k, v, out, lse, is_causal), test_utils=OPCHECK_TESTS
    )


def test_outputs_are_contiguous_as_the_fakes_claim():
    """Non-contiguous inputs (a transposed view, as a model's head split gives) still produce
    contiguous outputs, which is the layout the fake implementations promise the compiler."""
    q, k, v, grad_out = _inputs(2, 3, 17, 17, 16, seed=2)
    q, k, v = (t.transpose(1, 2).contiguous().transpose(1, 2) for t in (q, k, v))
    assert not q.is_contiguous()
    out, lse = flash_attention_forward(q, k, v, False)
    grads = flash_attention_backward(grad_out, q, k, v, out, lse, False)
    assert out.is_contiguous() and lse.is_contiguous() and lse.dtype == torch.float32
    assert lse.shape == q.shape[:-1]
    for got, like in zip(grads, (q, k, v)):
        assert got.is_contiguous() and got.shape == like.shape and got.dtype == like.dtype


# (B, H, T_q, T_k, D); no length a multiple of the interpreter's tiles.
CASES = [((2, 2, 45, 45, 32), True), ((2, 2, 45, 45, 32), False), ((1, 3, 30, 53, 16), False)]


@pytest.mark.parametrize("shape, is_causal", CASES)
def test_op_path_matches_float64_reference(shape, is_causal, attention_ref, rel_err):
    q, k, v, grad_out = _inputs(*shape, seed=3, requires_grad=True)
    ref_out, _, ref_dq, ref_dk, ref_dv = attention_ref(q, k, v, grad_out, is_causal)
    out = flash_attention_custom_op(q, k, v, is_causal)
    out.backward(grad_out)
    for name, got, want in [
        ("O", out, ref_out),
        ("dQ", q.grad, ref_dq),
        ("dK", k.grad, ref_dk),
        ("dV", v.grad, ref_dv),
    ]:
        assert rel_err(got, want) < FP32_TOL, name


def test_op_path_takes_3d_inputs_and_validates_before_the_op(attention_ref, rel_err):
    q, k, v, grad_out = _inputs(2, 1, 21, 21, 16, seed=4)
    q, k, v, grad_out = (t[:, 0] for t in (q, k, v, grad_out))  # (B, T, D)
    q, k, v = (t.clone().requires_grad_() for t in (q, k, v))
    ref_out, _, ref_dq, _, _ = attention_ref(q, k, v, grad_out, True)
    out = flash_attention_custom_op(q, k, v, True)
    out.backward(grad_out)
    assert out.shape == q.shape
    assert "kernels_triton_flash_attention_forward" in type(out.grad_fn).__name__
    assert rel_err(out, ref_out) < FP32_TOL and rel_err(q.grad, ref_dq) < FP32_TOL
    with pytest.raises(ValueError, match="head_dim"):
        flash_attention_custom_op(q[..., :8], k[..., :8], v[..., :8])


def _attention_block(x, w_qkv, w_out, is_causal):
    """A minimal self-attention block around the op: projection, head split, attention, merge."""
    batch, seq, width = x.shape
    heads = width // 16
    q, k, v = (x @ w_qkv).chunk(3, dim=-1)  # each (B, T, C)
    q, k, v = (t.view(batch, seq, heads, 16).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
    y = flash_attention_custom_op(q, k, v, is_causal)  # (B, nh, T, hs)
    return y.transpose(1, 2).reshape(batch, seq, width) @ w_out  # (B, T, C)


@pytest.mark.parametrize("is_causal", [False, True])
def test_compiles_with_fullgraph_and_matches_eager(is_causal):
    """fullgraph=True raises on any graph break, so this fails if Dynamo has to trace into the
    Triton launcher (as it does through FlashAttentionTriton.apply) instead of the op."""
    torch._dynamo.reset()
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 37, 32, generator=gen).to(DEVICE)
    w_qkv = (torch.randn(32, 96, generator=gen) * 0.2).to(DEVICE).requires_grad_()
    w_out = (torch.randn(32, 32, generator=gen) * 0.2).to(DEVICE).requires_grad_()

    def loss(block):
        out = block(x, w_qkv, w_out, is_causal)
        (out.square().sum()).backward()
        grads = (w_qkv.grad.clone(), w_out.grad.clone())
        w_qkv.grad = w_out.grad = None
        return out.detach(), grads

    compiled = torch.compile(_attention_block, fullgraph=True, backend="aot_eager")
    got_out, got_grads = loss(compiled)
    want_out, want_grads = loss(_attention_block)
    # aot_eager runs the same kernels on the same inputs: identical up to float32 reassociation.
    torch.testing.assert_close(got_out, want_out, rtol=1e-6, atol=1e-6)
    for got, want in zip(got_grads, want_grads):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype, tol", [(torch.bfloat16, 2e-2), (torch.float32, 1e-4)])
def test_inductor_compiled_block_matches_sdpa_on_gpu(dtype, tol):
    """The default inductor backend on the GPU, with no graph break, against the same block
    with PyTorch's SDPA (compiled alike) and a float64 eager run of our block's math.

    Plain relative error (no floor at 1, unlike conftest's): the weight gradients are small in
    norm, and a floor would turn the check into a loose absolute one. On the CPU, bf16 SDPA lands
    at ~6e-3 on every output of this block and float32 at ~7e-7.
    """
    import torch.nn.functional as F

    def rel_err(actual, expected):
        return ((actual.double() - expected).norm() / expected.norm()).item()

    torch._dynamo.reset()
    batch, seq, heads, head_dim = 2, 1000, 4, 64
    width = heads * head_dim
    gen = torch.Generator(device="cuda").manual_seed(6)
    x = torch.randn(batch, seq, width, generator=gen, device="cuda")
    w_qkv = torch.randn(width, 3 * width, generator=gen, device="cuda") * width**-0.5
    w_out = torch.randn(width, width, generator=gen, device="cuda") * width**-0.5

    def block(attention, x, w_qkv, w_out):
        q, k, v = (x @ w_qkv).chunk(3, dim=-1)  # each (B, T, C)
        q, k, v = (t.view(batch, seq, heads, head_dim).transpose(1, 2) for t in (q, k, v))
        y = attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        return y.transpose(1, 2).reshape(batch, seq, width) @ w_out

    def run(fn, dtype):
        leaves = [t.to(dtype, copy=True).requires_grad_() for t in (x, w_qkv, w_out)]
        out = fn(*leaves)
        out.float().square().mean().backward()
        return [out.detach()] + [t.grad for t in leaves]

    ours = torch.compile(
        lambda *a: block(flash_attention_custom_op, *a), fullgraph=True
    )  # default backend: inductor
    sdpa = torch.compile(lambda *a: block(F.scaled_dot_product_attention, *a), fullgraph=True)
    reference = run(lambda *a: block(F.scaled_dot_product_attention, *a), torch.float64)
    got, peer = run(ours, dtype), run(sdpa, dtype)
    for name, g, p, r in zip(("out", "dx", "dw_qkv", "dw_out"), got, peer, reference):
        ours_err, sdpa_err = rel_err(g, r), rel_err(p, r)
        print(f"{dtype} {name}: ours {ours_err:.2e}, SDPA {sdpa_err:.2e}")
        assert ours_err < tol, name
