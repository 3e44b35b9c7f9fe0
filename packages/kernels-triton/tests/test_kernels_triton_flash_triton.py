"""The Triton kernels at small sizes against a float64 reference.

Without CUDA they run in Triton's CPU interpreter (conftest.py sets TRITON_INTERPRET=1); with CUDA
the same tests run compiled. Explicit small tiles make every sequence span several tiles, and no
length here is a multiple of a tile.
"""

from pathlib import Path

import pytest
import torch

from kernels_triton import FlashAttentionTorch, FlashAttentionTriton
from kernels_triton.flash_attention_triton import (
    INTERPRETER_CONFIG,
    FlashConfig,
    TileConfig,
    flash_attention_triton_backward,
    flash_attention_triton_forward,
)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# The interpreter multiplies in float32 (NumPy); on the GPU a float32 tl.dot runs in TF32.
FP32_TOL = 1e-5 if DEVICE == "cpu" else 5e-3

CONFIGS = {
    "interp": INTERPRETER_CONFIG,  # fwd 32x16, dkdv 16x32, dq 32x16
    "square16": FlashConfig(TileConfig(16, 16), TileConfig(16, 16), TileConfig(16, 16)),
    "wide": FlashConfig(TileConfig(64, 32), TileConfig(32, 64), TileConfig(64, 16)),
    # dQ accumulated with atomics inside the dK/dV kernel instead of its own kernel
    "fused_dq": FlashConfig(TileConfig(32, 16), TileConfig(16, 32), TileConfig(32, 16), True),
    # forward K/V through tensor descriptors (TMA on Hopper), as the GPU runs by default
    "tma": FlashConfig(TileConfig(32, 16), TileConfig(16, 32), TileConfig(32, 16), tma=True),
}
# (B, H, T_q, T_k, D)
SHAPES = [(2, 3, 77, 77, 32), (1, 2, 100, 45, 16), (1, 1, 128, 128, 64), (2, 1, 33, 97, 128)]
CASES = [(s, causal) for s in SHAPES for causal in (False, True) if not causal or s[2] == s[3]]


def _inputs(shape, dtype=torch.float32, seed=0):
    batch, heads, n_q, n_k, dim = shape
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, n_q, dim, generator=gen)
    k = torch.randn(batch, heads, n_k, dim, generator=gen)
    v = torch.randn(batch, heads, n_k, dim, generator=gen)
    grad_out = torch.randn(batch, heads, n_q, dim, generator=gen)
    return tuple(t.to(device=DEVICE, dtype=dtype) for t in (q, k, v, grad_out))


def _poisoned_like(t, dtype=None):
    return torch.full_like(t, float("nan"), dtype=dtype or t.dtype)


@pytest.mark.parametrize("shape, is_causal", CASES)
@pytest.mark.parametrize("config_name", ["interp", "wide", "fused_dq", "tma"])
def test_kernels_match_float64_reference(shape, is_causal, config_name, attention_ref, rel_err):
    config = CONFIGS[config_name]
    q, k, v, grad_out = _inputs(shape, seed=hash((shape, is_causal, config_name)) % 2**31)
    ref_out, ref_lse, ref_dq, ref_dk, ref_dv = attention_ref(q, k, v, grad_out, is_causal)
    # NaN-filled buffers: an element the kernels forget to write stays NaN and fails the check.
    out, lse = flash_attention_triton_forward(
        q, k, v, is_causal, config, out=_poisoned_like(q), lse=_poisoned_like(q[..., 0])
    )
    grads = tuple(_poisoned_like(t) for t in (q, k, v))
    dq, dk, dv = flash_attention_triton_backward(
        q, k, v, out, lse, grad_out, is_causal, config, grads=grads
    )
    for name, got, want in [
        ("O", out, ref_out),
        ("L", lse, ref_lse),
        ("dQ", dq, ref_dq),
        ("dK", dk, ref_dk),
        ("dV", dv, ref_dv),
    ]:
        assert torch.isfinite(got).all(), f"{name} has unwritten or non-finite elements"
        assert rel_err(got, want) < FP32_TOL, name


@pytest.mark.parametrize("growth", [3.0, 120.0])
@pytest.mark.parametrize("is_causal", [False, True])
def test_scores_growing_along_the_keys(growth, is_causal, attention_ref, rel_err):
    """Scores that rise key after key, so that each key tile raises the running max the online
    softmax rescales by: a little (growth 3, in natural-log units over the sequence) or by far
    more than float32 could hold unrescaled (growth 120: a forward that kept its first tile's
    max as the exponent offset would overflow to inf, then NaN)."""
    q, k, v, grad_out = _inputs((1, 2, 77, 77, 32), seed=7)
    rise = torch.linspace(0, growth, 77, device=DEVICE)[:, None]  # (T_k, 1)
    direction = torch.ones(32, device=DEVICE) / 32**0.5
    q = q * 0.1 + direction * 32**0.5  # every query points along `direction`
    k = k * 0.1 + rise * direction  # so q.k / sqrt(32) rises by about `growth` along the keys
    ref_out, ref_lse, *ref_grads = attention_ref(q, k, v, grad_out, is_causal)
    out, lse = flash_attention_triton_forward(q, k, v, is_causal, INTERPRETER_CONFIG)
    grads = flash_attention_triton_backward(
        q, k, v, out, lse, grad_out, is_causal, INTERPRETER_CONFIG
    )
    assert rel_err(out, ref_out) < FP32_TOL
    assert rel_err(lse, ref_lse) < FP32_TOL
    # Scores near 120 carry float32 rounding of ~1e-5 of themselves, which the softmax's
    # gradient amplifies (3e-5 measured): the gradients' bound grows with the scores.
    for got, want in zip(grads, ref_grads):
        assert rel_err(got, want) < FP32_TOL * max(1.0, growth / 10)


@pytest.mark.parametrize("is_causal", [False, True])
def test_square_tiles_and_single_token(is_causal, attention_ref, rel_err):
    """16x16 tiles everywhere; T = 1 (one query, one key) and T = 16 (exactly one tile)."""
    for n in (1, 16, 50):
        q, k, v, grad_out = _inputs((1, 2, n, n, 16), seed=n)
        out, lse = flash_attention_triton_forward(q, k, v, is_causal, CONFIGS["square16"])
        grads = flash_attention_triton_backward(
            q, k, v, out, lse, grad_out, is_causal, CONFIGS["square16"]
        )
        ref = attention_ref(q, k, v, grad_out, is_causal)
        for got, want in zip((out, lse, *grads), ref):
            assert rel_err(got, want) < FP32_TOL


@pytest.mark.parametrize("is_causal", [False, True])
def test_autograd_function_matches_torch_reference_on_3d_inputs(is_causal, rel_err):
    q, k, v, grad_out = (t[:, 0] for t in _inputs((2, 1, 61, 61, 64), seed=5))  # (B, T, D)
    results = []
    for fn in (FlashAttentionTriton, FlashAttentionTorch):
        leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
        out = fn.apply(*leaves, is_causal)
        saved_lse = [t for t in out.grad_fn.saved_tensors if t.shape == (2, 61)]
        assert len(saved_lse) == 1, "L (shape (B, T_q)) is saved for backward"
        out.backward(grad_out)
        results.append((out, saved_lse[0], *(t.grad for t in leaves)))
    for got, want in zip(*results):
        assert got.shape == want.shape
        assert rel_err(got, want) < FP32_TOL


# Triton 3.6's interpreter has no bfloat16 arithmetic (NumPy has no such type): bf16 runs on GPU.
BF16 = pytest.param(
    torch.bfloat16,
    1e-2,
    marks=pytest.mark.skipif(DEVICE == "cpu", reason="Triton's interpreter lacks bfloat16"),
)


@pytest.mark.parametrize("dtype, tol", [BF16, (torch.float16, 2e-3)])
def test_half_precision(dtype, tol, attention_ref, rel_err):
    q, k, v, grad_out = _inputs((1, 2, 90, 90, 64), dtype=dtype, seed=9)
    out, lse = flash_attention_triton_forward(q, k, v, True)
    dq, dk, dv = flash_attention_triton_backward(q, k, v, out, lse, grad_out, True)
    assert out.dtype == dq.dtype == dk.dtype == dv.dtype == dtype and lse.dtype == torch.float32
    ref = attention_ref(q, k, v, grad_out, True)
    for got, want in zip((out, lse, dq, dk, dv), ref):
        assert rel_err(got, want) < tol


@pytest.mark.parametrize(
    "config, message",
    [
        (FlashConfig(TileConfig(16, 32), TileConfig(16, 32), TileConfig(32, 16)), "fwd.block_m"),
        (FlashConfig(TileConfig(32, 16), TileConfig(32, 16), TileConfig(32, 16)), "dkdv.block_n"),
        (FlashConfig(TileConfig(32, 16), TileConfig(16, 32), TileConfig(16, 32)), "dq.block_m"),
        (FlashConfig(TileConfig(32, 8), TileConfig(16, 32), TileConfig(32, 16)), "at least 16"),
        (
            FlashConfig(
                TileConfig(32, 16), TileConfig(16, 32), TileConfig(32, 16), gluon_dkdv_query_tiles=0
            ),
            "gluon_dkdv_query_tiles",
        ),
        (  # the Gluon forward's rows are 16 per warp
            FlashConfig(
                TileConfig(32, 64), TileConfig(16, 32), TileConfig(32, 16), gluon_forward=True
            ),
            "16 rows per warp",
        ),
        (  # a valid Gluon tile (block_n > block_m is fine there), but no Hopper GPU here
            FlashConfig(
                TileConfig(64, 128, 4, 2),
                TileConfig(16, 32),
                TileConfig(32, 16),
                gluon_forward=True,
            ),
            "gluon_forward=True needs",
        ),
        (  # the ping-pong is a Gluon forward
            FlashConfig(
                TileConfig(128, 128, 8, 3),
                TileConfig(16, 32),
                TileConfig(32, 16),
                gluon_pingpong=True,
            ),
            "set gluon_forward=True",
        ),
        (  # ... of two warpgroups of 64 queries
            FlashConfig(
                TileConfig(64, 128, 4, 3),
                TileConfig(16, 32),
                TileConfig(32, 16),
                gluon_forward=True,
                gluon_pingpong=True,
            ),
            "two warpgroups of 64 queries",
        ),
        (  # a valid ping-pong tile, but no Hopper GPU here
            FlashConfig(
                TileConfig(128, 128, 8, 3),
                TileConfig(16, 32),
                TileConfig(32, 16),
                gluon_forward=True,
                gluon_pingpong=True,
            ),
            "gluon_forward=True needs",
        ),
    ],
)
def test_bad_tile_configs_raise(config, message):
    q, k, v, _ = _inputs((1, 1, 32, 32, 16))
    with pytest.raises(ValueError, match=message):
        flash_attention_triton_forward(q, k, v, False, config)


def test_bad_output_buffer_raises():
    q, k, v, _ = _inputs((1, 1, 32, 32, 16))
    with pytest.raises(ValueError, match="out must be"):
        flash_attention_triton_forward(q, k, v, False, out=torch.empty_like(q[..., :8]))


def test_tensor_descriptors_only_for_16_byte_aligned_tiles():
    """TMA needs every tile to start on a 16-byte boundary: a view one element into its storage
    or rows an odd number of elements apart must take the pointer path, and an explicit
    tma=True on such a tensor is refused with a clear error rather than faulting on the GPU."""
    from kernels_triton.flash_attention_triton import _resolve_tma, _tiles_16_byte_aligned

    storage = torch.zeros(2 * 3 * 40 * 32 + 8, dtype=torch.bfloat16)
    aligned = storage[: 2 * 3 * 40 * 32].view(2, 3, 40, 32)
    one_element_in = storage[1 : 1 + 2 * 3 * 40 * 32].view(2, 3, 40, 32)  # 2 bytes off
    odd_rows = torch.zeros(2, 3, 40, 33, dtype=torch.bfloat16)[..., :32]  # rows 66 bytes apart
    assert aligned.data_ptr() % 16 == 0
    assert _tiles_16_byte_aligned(aligned)
    assert not _tiles_16_byte_aligned(one_element_in)
    assert not _tiles_16_byte_aligned(odd_rows)
    forced = CONFIGS["tma"]
    assert _resolve_tma(forced, aligned, aligned)
    with pytest.raises(ValueError, match="16 bytes"):
        _resolve_tma(forced, aligned, odd_rows)
    assert not _resolve_tma(CONFIGS["interp"], one_element_in)  # tma=False stays off


def test_kernels_work_without_gluon():
    """When the Gluon kernels cannot be imported (a Triton without triton.experimental.gluon, or
    one whose Gluon API differs), the package still imports and runs the Triton kernels; asking
    for the Gluon backward then says what is missing. In a process of its own, with our Gluon
    module made unimportable (Triton itself imports parts of Gluon, so those stay)."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import sys
        sys.modules["kernels_triton.flash_attention_gluon"] = None  # importing it fails
        sys.path.insert(0, TESTS)
        import conftest  # the CPU interpreter (and its NumPy workaround) when there is no GPU
        import torch
        from dataclasses import replace
        import kernels_triton.flash_attention_triton as fat
        assert fat.GLUON_IMPORT_ERROR is not None
        device = "cuda" if torch.cuda.is_available() else "cpu"
        q, k, v, do = (torch.randn(1, 2, 40, 16, device=device) for _ in range(4))
        config = fat.INTERPRETER_CONFIG
        out, lse = fat.flash_attention_triton_forward(q, k, v, True, config)
        fat.flash_attention_triton_backward(q, k, v, out, lse, do, True, config)
        try:
            forced = replace(config, gluon_backward=True)
            fat.flash_attention_triton_backward(q, k, v, out, lse, do, True, forced)
        except ValueError as error:
            assert "needs Triton's Gluon" in str(error), error
        else:
            raise AssertionError("forcing the Gluon backward without Gluon did not raise")
        """
    )
    tests = str(Path(__file__).resolve().parent)
    script = script.replace("TESTS", repr(tests))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]


def test_gluon_launch_shapes_that_cannot_run_are_errors():
    """Caught on the host before a launch, with what is wrong: a Gluon kernel given one buffer
    (its ring refills the buffer the previous iteration read, so with one the first copy is
    never issued and the program would wait forever, as a probe of the tenth session did), and a
    fused-dQ dK/dV tile whose dQ rows do not fill whole warpgroups."""
    gluon = pytest.importorskip("kernels_triton.flash_attention_gluon")
    t = torch.zeros(1, 1, 64, 64, dtype=torch.bfloat16)
    stats = torch.zeros(2, 1, 64)
    scales = (64, 1.0, 1.0)
    with pytest.raises(ValueError, match="num_stages=1"):
        gluon.attn_bwd_dkdv_gluon(t, t, t, t, stats, t, t, True, *scales, num_stages=1)
    with pytest.raises(ValueError, match="num_stages=1"):
        gluon.attn_bwd_dq_gluon(t, t, t, t, t, stats[0], stats, t, True, *scales, num_stages=1)
    with pytest.raises(ValueError, match="num_stages=1"):
        gluon.attn_fwd_gluon(t, t, t, t, stats[0], True, 1.0, num_stages=1)
    with pytest.raises(ValueError, match="num_stages=1"):
        gluon.attn_fwd_gluon_pingpong(t, t, t, t, stats[0], True, 1.0, num_stages=1)
    with pytest.raises(ValueError, match="num_warps=4"):  # two consumer warpgroups: 8 warps
        gluon.attn_fwd_gluon_pingpong(t, t, t, t, stats[0], True, 1.0, 128, 128, 4, 3)
    with pytest.raises(ValueError, match="BLOCK_M=64"):
        gluon.attn_fwd_gluon_pingpong(t, t, t, t, stats[0], True, 1.0, 64, 128, 8, 3)
    with pytest.raises(ValueError, match="head_dim a multiple of 64"):
        gluon.gluon_dkdv_layouts(32, torch.bfloat16, 64, 64, 4, 2, fused_dq=True)
    with pytest.raises(ValueError, match="head_dim a multiple of 64"):  # 128 rows, 4 warps
        gluon.gluon_dkdv_layouts(128, torch.bfloat16, 64, 64, 4, 2, fused_dq=True)
    for head_dim, block_n, warps in ((64, 64, 4), (64, 128, 8), (128, 128, 8)):
        layouts = gluon.gluon_dkdv_layouts(head_dim, torch.bfloat16, 64, block_n, warps, 2, True)
        assert layouts["FUSED_DQ"]


def test_dq_from_its_transpose(rel_err):
    """The fused-dQ Gluon backward adds dQ up transposed and unscaled, float32 (B, H, D, T
    padded to a multiple of 4); this kernel turns that into dQ, (B, H, T, D) in the inputs'
    dtype, times the softmax scale, here with T not a multiple of its 64-row blocks and a dQ
    that is a view with its own strides."""
    import triton

    from kernels_triton.flash_attention_triton import _dq_from_transposed_kernel

    batch, heads, n, dim, padded = 2, 3, 100, 32, 100 + 4
    dq_t = torch.randn(batch, heads, dim, padded)
    storage = torch.full((batch, n, heads, dim), float("nan"))
    dq = storage.transpose(1, 2)  # (B, H, T, D) with heads inside the rows
    _dq_from_transposed_kernel[(triton.cdiv(n, 64), batch * heads)](
        dq_t, dq, dim * padded, padded, *dq.stride()[:3], heads, n, 0.125, HEAD_DIM=dim,
        BLOCK_M=64,
    )  # fmt: skip
    assert torch.equal(dq, dq_t[..., :n].transpose(-1, -2) * 0.125)  # a power of two: exact
