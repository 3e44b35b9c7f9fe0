"""Each layer against an independent torch reference, on odd shapes, in float32 and bfloat16.

The truth is always the reference evaluated in float64 on the same (already rounded) inputs and
weights, so the tolerance measures only our arithmetic error in the tested dtype:
- float32: unit roundoff 2^-24 ~ 6e-8; sums of ~100 terms stay well within 2e-6.
- bfloat16: unit roundoff 2^-8 (8 significant bits). A single op rounds its output once, so it
  must land within 2^-8 relative of the truth. A composite op (SwiGLU, attention, a block)
  rounds each intermediate tensor too: we allow 2^-8 per rounding step it contains.
"""

import math

import pytest
import torch
import torch.nn.functional as F

import nn_core as nc

DTYPES = [torch.float32, torch.bfloat16]
B, T, D = 3, 17, 48  # odd shapes: nothing divides nicely


def assert_close_to_truth(
    actual: torch.Tensor, truth: torch.Tensor, dtype: torch.dtype, roundings: int = 1
):
    """|actual - truth| <= tol * (1 + |truth|), tol from the dtype and the rounding steps."""
    assert actual.dtype == dtype
    tol = 2e-6 if dtype == torch.float32 else roundings * 2**-8
    torch.testing.assert_close(actual.double(), truth, rtol=tol, atol=tol, check_dtype=False)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_matches_torch_linear(dtype):
    torch.manual_seed(0)
    layer = nc.Linear(D, 23).to(dtype)
    x = torch.randn(B, T, D).to(dtype)
    truth = F.linear(x.double(), layer.weight.double())
    assert_close_to_truth(layer(x), truth, dtype)
    assert layer.weight.shape == (23, D)  # stored (out, in), like torch and CS336


def test_linear_init_is_truncated_normal_with_glorot_variance():
    torch.manual_seed(0)
    d_in, d_out = 300, 500
    w = nc.Linear(d_in, d_out).weight.detach()
    std = math.sqrt(2 / (d_in + d_out))
    assert w.abs().max() <= 3 * std
    # Truncating N(0, s^2) at 3 s leaves a std of 0.9866 s; 150k samples pin it to ~0.5 %.
    assert w.std().item() == pytest.approx(0.9866 * std, rel=0.01)
    assert w.mean().abs().item() < 0.01 * std


def test_embedding_matches_torch_embedding_and_init():
    torch.manual_seed(0)
    emb = nc.Embedding(101, D)
    ids = torch.randint(0, 101, (B, T))
    torch.testing.assert_close(emb(ids), F.embedding(ids, emb.weight), rtol=0, atol=0)
    # Any integer dtype indexes rows: uint8 must not act as a boolean mask.
    for dtype in (torch.uint8, torch.int16, torch.int32, torch.uint16):
        torch.testing.assert_close(emb(ids.to(dtype)), emb(ids), rtol=0, atol=0)
    w = emb.weight.detach()
    assert w.abs().max() <= 3.0
    assert w.std().item() == pytest.approx(0.9866, rel=0.03)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rmsnorm_matches_torch_rmsnorm(dtype):
    torch.manual_seed(0)
    norm = nc.RMSNorm(D, eps=1e-5)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(D))
    norm = norm.to(dtype)
    reference = torch.nn.RMSNorm(D, eps=1e-5, dtype=torch.float64)
    with torch.no_grad():
        reference.weight.copy_(norm.weight.double())
    x = (torch.randn(B, T, D) * 5 + 1).to(dtype)
    assert_close_to_truth(norm(x), reference(x.double()), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_silu_and_softmax_match_torch(dtype):
    torch.manual_seed(0)
    x = (torch.randn(B, T, D) * 4).to(dtype)
    assert_close_to_truth(nc.silu(x), F.silu(x.double()), dtype)
    for dim in (0, 1, -1):
        assert_close_to_truth(nc.softmax(x, dim), torch.softmax(x.double(), dim), dtype)


def test_softmax_is_stable_for_huge_logits():
    x = torch.tensor([[1e4, 1e4 - 1.0, -1e4], [-1e4, -1e4, -1e4]])
    out = nc.softmax(x, dim=-1)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, torch.softmax(x.double(), -1).float())


@pytest.mark.parametrize("dtype", DTYPES)
def test_swiglu_matches_functional_reference(dtype):
    torch.manual_seed(0)
    ffn = nc.SwiGLU(D, 40).to(dtype)
    x = torch.randn(B, T, D).to(dtype)
    xd = x.double()
    w1, w2, w3 = (ffn.w1.weight.double(), ffn.w2.weight.double(), ffn.w3.weight.double())
    truth = F.linear(F.silu(F.linear(xd, w1)) * F.linear(xd, w3), w2)
    # roundings: W1 x, W3 x, SiLU, the product, W2 (.)
    assert_close_to_truth(ffn(x), truth, dtype, roundings=5)


def test_default_d_ff_is_eight_thirds_rounded_to_64():
    assert nc.default_d_ff(512) == 1344  # 1365.3 -> nearest multiple of 64
    assert nc.default_d_ff(768) == 2048
    assert nc.default_d_ff(48) == 128  # 128 exactly
    assert all(nc.default_d_ff(d) % 64 == 0 for d in range(16, 2000, 16))
    assert nc.SwiGLU(512).w1.weight.shape == (1344, 512)


def rope_reference(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """RoPE as complex multiplication: pair (x0, x1) -> (x0 + i x1) * exp(i pos theta^(-2k/d))."""
    d = x.shape[-1]
    inv_freq = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = positions.double()[..., None] * inv_freq  # (..., seq, d/2)
    pairs = torch.view_as_complex(x.double().reshape(*x.shape[:-1], d // 2, 2).contiguous())
    return torch.view_as_real(pairs * torch.polar(torch.ones_like(angles), angles)).flatten(-2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rope_matches_complex_rotation(dtype):
    torch.manual_seed(0)
    rope = nc.RotaryEmbedding(10_000.0, 16, max_seq_len=64)
    x = torch.randn(B, T, 16).to(dtype)
    positions = torch.randint(0, 64, (B, T))  # arbitrary, not just 0..T-1
    assert_close_to_truth(rope(x, positions), rope_reference(x, positions, 10_000.0), dtype)
    # Positions broadcast over leading dims (one position row for every head).
    xh = torch.randn(2, 5, T, 16)
    pos = torch.arange(T).expand(2, 1, T)
    torch.testing.assert_close(
        rope(xh, pos), rope_reference(xh, pos, 10_000.0).float(), rtol=2e-6, atol=2e-6
    )


def test_rope_keeps_norms_and_depends_only_on_relative_position():
    torch.manual_seed(0)
    rope = nc.RotaryEmbedding(10_000.0, 32, max_seq_len=128)
    q, k = torch.randn(32), torch.randn(32)

    def score(m, n):
        qm = rope(q[None], torch.tensor([m]))[0]
        kn = rope(k[None], torch.tensor([n]))[0]
        return (qm @ kn).item()

    assert score(3, 1) == pytest.approx(score(50, 48), rel=1e-5)
    assert score(7, 7) == pytest.approx((q @ k).item(), rel=1e-5)
    rotated = rope(q[None], torch.tensor([99]))
    assert rotated.norm().item() == pytest.approx(q.norm().item(), rel=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_scaled_dot_product_attention_matches_torch(dtype):
    torch.manual_seed(0)
    q = torch.randn(2, B, 5, 13, 24).to(dtype)  # extra leading dims, n=13 queries
    k = torch.randn(2, B, 5, 19, 24).to(dtype)  # m=19 keys
    v = torch.randn(2, B, 5, 19, 20).to(dtype)
    mask = torch.rand(13, 19) > 0.3
    mask[:, 0] = True  # every query sees at least one key
    truth = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), attn_mask=mask)
    # roundings: the scores q k^T, the probabilities, the output
    assert_close_to_truth(nc.scaled_dot_product_attention(q, k, v, mask), truth, dtype, roundings=3)
    truth = F.scaled_dot_product_attention(q.double(), k.double(), v.double())
    assert_close_to_truth(nc.scaled_dot_product_attention(q, k, v), truth, dtype, roundings=3)


def test_attention_functions_agree_causal():
    torch.manual_seed(0)
    q, k, v = (torch.randn(B, 4, T, 12) for _ in range(3))
    truth = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), is_causal=True)
    for name, fn in nc.ATTENTION_FUNCTIONS.items():
        out = fn(q, k, v, True)
        torch.testing.assert_close(out.double(), truth, rtol=2e-6, atol=2e-6, msg=name)


def mha_reference(mha: nc.MultiHeadSelfAttention, x: torch.Tensor, theta: float | None):
    """Causal MHA from torch primitives: F.linear, view/transpose heads, complex RoPE, F.sdpa."""
    b, t, d = x.shape
    h = mha.num_heads
    xd = x.double()

    def heads(w):
        return F.linear(xd, w.double()).view(b, t, h, d // h).transpose(1, 2)  # (B, nh, T, hs)

    q, k, v = heads(mha.q_proj.weight), heads(mha.k_proj.weight), heads(mha.v_proj.weight)
    if theta is not None:
        pos = torch.arange(t)
        q, k = rope_reference(q, pos, theta), rope_reference(k, pos, theta)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    out = out.transpose(1, 2).reshape(b, t, d)
    return F.linear(out, mha.output_proj.weight.double())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("use_rope", [True, False])
def test_multihead_self_attention_matches_reference(dtype, use_rope):
    torch.manual_seed(0)
    rope = nc.RotaryEmbedding(10_000.0, D // 4, max_seq_len=32) if use_rope else None
    mha = nc.MultiHeadSelfAttention(D, 4, rope=rope).to(dtype)
    x = torch.randn(B, T, D).to(dtype)
    truth = mha_reference(mha, x, 10_000.0 if use_rope else None)
    # roundings: Q/K/V projections, RoPE, scores, probabilities, attention output, W_o
    assert_close_to_truth(mha(x), truth, dtype, roundings=6)


def test_multihead_self_attention_is_causal():
    torch.manual_seed(0)
    mha = nc.MultiHeadSelfAttention(D, 4, rope=nc.RotaryEmbedding(1e4, 12, 32))
    x = torch.randn(1, T, D)
    y = x.clone()
    y[:, 10:] = torch.randn(1, T - 10, D)  # change the future only
    torch.testing.assert_close(mha(x)[:, :10], mha(y)[:, :10])


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_matches_torch(dtype):
    torch.manual_seed(0)
    logits = (torch.randn(B, T, 101) * 3).to(dtype)
    targets = torch.randint(0, 101, (B, T))
    truth = F.cross_entropy(logits.double().reshape(-1, 101), targets.reshape(-1))
    loss = nc.cross_entropy(logits, targets)
    assert loss.dtype == torch.float32  # reduced in float32 whatever the logits' dtype
    # bf16 logits are exact inputs here, so only float32 rounding remains.
    torch.testing.assert_close(loss.double(), truth, rtol=1e-6, atol=1e-6)


def test_cross_entropy_is_finite_for_logits_of_magnitude_1e4():
    logits = torch.tensor([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [5e3, 1e4, 1e4]])
    targets = torch.tensor([1, 2, 0])
    loss = nc.cross_entropy(logits, targets)
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss.double(), F.cross_entropy(logits.double(), targets))
    logits.requires_grad_(True)
    nc.cross_entropy(logits, targets).backward()
    assert torch.isfinite(logits.grad).all()


def test_cross_entropy_gradient_matches_torch():
    torch.manual_seed(0)
    logits = torch.randn(7, 11, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 11, (7,))
    (g_ours,) = torch.autograd.grad(nc.cross_entropy(logits, targets), logits)
    (g_ref,) = torch.autograd.grad(F.cross_entropy(logits, targets), logits)
    torch.testing.assert_close(g_ours, g_ref.float(), rtol=1e-6, atol=1e-7, check_dtype=False)


@pytest.mark.parametrize("dtype", DTYPES)
def test_transformer_block_matches_composed_reference(dtype):
    torch.manual_seed(0)
    rope = nc.RotaryEmbedding(10_000.0, 12, max_seq_len=32)
    block = nc.TransformerBlock(D, 4, 40, rope=rope).to(dtype)
    x = torch.randn(B, T, D).to(dtype)
    xd = x.double()

    def rms(z, w):
        return z * torch.rsqrt(z.pow(2).mean(-1, keepdim=True) + 1e-5) * w.double()

    h = xd + mha_reference(block.attn, rms(xd, block.ln1.weight), 10_000.0)
    f = block.ffn
    z = rms(h, block.ln2.weight)
    truth = h + F.linear(
        F.silu(F.linear(z, f.w1.weight.double())) * F.linear(z, f.w3.weight.double()),
        f.w2.weight.double(),
    )
    # roundings: ln1, attention (6), residual add, ln2, SwiGLU (5), residual add
    assert_close_to_truth(block(x), truth, dtype, roundings=15)
