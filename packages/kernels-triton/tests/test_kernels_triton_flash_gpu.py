"""FlashAttentionTriton at real sizes on a CUDA GPU, with the autotuned tiles.

Each test compares against a float64 materialised-softmax reference and reports the error of
PyTorch's own SDPA next to ours, so a loose tolerance cannot hide behind the dtype.
"""

import functools

import pytest
import torch
import torch.nn.functional as F

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

# Relative error (norm) against float64. bf16 keeps 8 bits of mantissa (2^-9 ~ 2e-3 per rounding);
# fp16 11 bits; float32 multiplies with 3xTF32 on the tensor cores, as accurate as float32.
TOLERANCE = {torch.bfloat16: 1e-2, torch.float16: 2e-3, torch.float32: 1e-4}
# (B, H, T_q, T_k, D): odd lengths, T_q != T_k, every head_dim.
SHAPES = [
    (2, 8, 1024, 1024, 64),
    (1, 4, 2049, 2049, 128),
    (3, 2, 1000, 1537, 32),
    (1, 16, 4096, 4096, 16),
    (1, 2, 8191, 8191, 64),
]
CASES = [(s, causal) for s in SHAPES for causal in (False, True) if not causal or s[2] == s[3]]


def _inputs(shape, dtype, scale=1.0, seed=0):
    batch, heads, n_q, n_k, dim = shape
    gen = torch.Generator(device="cuda").manual_seed(seed)

    def randn(n):
        return (torch.randn(batch, heads, n, dim, generator=gen, device="cuda") * scale).to(dtype)

    return randn(n_q), randn(n_k), randn(n_k), randn(n_q)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("shape, is_causal", CASES)
def test_real_sizes_against_float64(shape, is_causal, dtype, attention_ref, rel_err):
    from kernels_triton.flash_attention_triton import (
        default_config,
        flash_attention_triton_backward,
        flash_attention_triton_forward,
    )

    q, k, v, grad_out = _inputs(shape, dtype, seed=hash((shape, is_causal)) % 2**31)
    ref = attention_ref(q, k, v, grad_out, is_causal)

    def poisoned(t, dtype=None):
        return torch.full_like(t, float("nan"), dtype=dtype or t.dtype)

    # Fixed default tiles here (autotuning every head_dim x dtype would compile for minutes);
    # the autotuned path runs in the tests below and every tuned config is checked by
    # benchmarks/bench_flash_tiles.py.
    config = default_config(shape[-1], dtype)
    out, lse = flash_attention_triton_forward(
        q, k, v, is_causal, config, out=poisoned(q), lse=poisoned(q[..., 0], torch.float32)
    )
    grads = flash_attention_triton_backward(
        q, k, v, out, lse, grad_out, is_causal, config, grads=tuple(poisoned(t) for t in (q, k, v))
    )
    ours = (out, lse, *grads)

    # The peer: PyTorch's SDPA (flash or cuDNN in half precision, a fused kernel in float32).
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    sdpa_out = F.scaled_dot_product_attention(*leaves, is_causal=is_causal)
    sdpa_out.backward(grad_out)
    peer = (sdpa_out, None, *(t.grad for t in leaves))

    for name, got, want, theirs in zip(("O", "L", "dQ", "dK", "dV"), ours, ref, peer):
        assert torch.isfinite(got).all(), f"{name}: unwritten (NaN poison) or non-finite elements"
        err = rel_err(got, want)
        peer_err = rel_err(theirs, want) if theirs is not None else 0.0
        print(f"{name} {dtype} {shape} causal={is_causal}: ours {err:.2e}, sdpa {peer_err:.2e}")
        assert err < TOLERANCE[dtype], (name, err, peer_err)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_peaked_softmax_and_single_key_rows_stay_finite(dtype, attention_ref, rel_err):
    """The rows most prone to NaN: logits with a spread of hundreds (most probabilities underflow
    to exactly 0, rows nearly one-hot), row 0 that sees a single key under the causal mask, and a
    length (1000) that leaves padding rows and masked keys in the last tiles. Fully masked rows
    cannot occur (causal needs T_q == T_k, so row i always sees key i); these are the extreme
    cases that can. Nothing may become NaN or inf, and the result must stay right."""
    from kernels_triton import flash_attention

    shape = (1, 4, 1000, 1000, 64)
    q, k, v, grad_out = _inputs(shape, dtype, seed=1)
    q = q * 8  # s = q.k / sqrt(64) ~ N(0, 64^2): logits spread over hundreds
    k = k * 8
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    out = flash_attention(*leaves, is_causal=True)
    out.backward(grad_out)
    ref_out, _, ref_dq, ref_dk, ref_dv = attention_ref(q, k, v, grad_out, True)
    for name, got, want in zip(
        ("O", "dQ", "dK", "dV"), (out, *(t.grad for t in leaves)), (ref_out, ref_dq, ref_dk, ref_dv)
    ):
        assert torch.isfinite(got).all(), name
        assert rel_err(got, want) < 2 * TOLERANCE[dtype], name
    assert torch.allclose(out[:, :, 0].float(), v[:, :, 0].float())  # row 0 sees only key 0


@pytest.mark.parametrize("is_causal", [False, True])
def test_fused_dq_backward(is_causal, attention_ref, rel_err):
    """The atomic-dQ backward strategy (FlashConfig.fused_dq) at a real size."""
    from dataclasses import replace

    from kernels_triton.flash_attention_triton import (
        default_config,
        flash_attention_triton_backward,
        flash_attention_triton_forward,
    )

    q, k, v, grad_out = _inputs((2, 4, 1999, 1999, 64), torch.bfloat16, seed=3)
    config = replace(default_config(64, torch.bfloat16), fused_dq=True)
    out, lse = flash_attention_triton_forward(q, k, v, is_causal, config)
    grads = flash_attention_triton_backward(q, k, v, out, lse, grad_out, is_causal, config)
    _, _, *ref_grads = attention_ref(q, k, v, grad_out, is_causal)
    for got, want in zip(grads, ref_grads):
        assert rel_err(got, want) < TOLERANCE[torch.bfloat16]


def _count_strategy_timings(monkeypatch) -> list:
    """A list that collects the arguments of every strategy timing (do_bench of a
    functools.partial of a launcher; the autotuner's own timings are not partials)."""
    import triton

    timed = []
    real_do_bench = triton.testing.do_bench

    def counting_do_bench(fn, **kwargs):
        if isinstance(fn, functools.partial):
            timed.append(fn.args)
        return real_do_bench(fn, **kwargs)

    monkeypatch.setattr(triton.testing, "do_bench", counting_do_bench)
    return timed


def test_backward_strategy_is_timed_once_per_key(monkeypatch, attention_ref, rel_err):
    """With no config, the first backward per autotuning key times the two-kernel and the
    fused-dQ strategies (four do_bench calls, in the order A B B A), keeps the faster, and later
    calls reuse it."""
    import kernels_triton.flash_attention_triton as fa

    monkeypatch.setattr(fa, "FUSED_DQ", None)
    monkeypatch.setattr(fa, "_fused_backward_faster", {})
    timed = _count_strategy_timings(monkeypatch)
    q, k, v, grad_out = _inputs((1, 2, 4097, 4097, 32), torch.bfloat16, seed=11)
    out, lse = fa.flash_attention_triton_forward(q, k, v, True)
    _, _, *ref_grads = attention_ref(q, k, v, grad_out, True)
    for call in range(2):
        grads = fa.flash_attention_triton_backward(q, k, v, out, lse, grad_out, True)
        for got, want in zip(grads, ref_grads):
            assert rel_err(got, want) < TOLERANCE[torch.bfloat16]
        # two-kernel, fused, fused, two-kernel: a drifting clock weighs on both alike
        assert timed == [(False,), (True,), (True,), (False,)], f"call {call}: timed {timed}"
    (choice,) = fa._fused_backward_faster.values()
    assert isinstance(choice, bool)


@pytest.mark.skipif(
    not (torch.cuda.is_available() and torch.cuda.get_device_capability()[0] == 9),
    reason="the ping-pong forward needs sm_90",
)
def test_pingpong_forward_is_timed_once_per_key(monkeypatch, attention_ref, rel_err):
    """With no config at head_dim 128 (16-bit, from GLUON_MIN_SCORES scores), the first forward
    per autotuning key times the tuned Triton forward against the ping-pong (A B B A), keeps the
    faster, and later calls reuse it; either way O and L are right."""
    import kernels_triton.flash_attention_triton as fa

    monkeypatch.setattr(fa, "GLUON_MIN_SCORES", 2 * 2048 * 2048)  # a test-sized threshold
    monkeypatch.setattr(fa, "_pingpong_forward_faster", {})
    timed = _count_strategy_timings(monkeypatch)
    q, k, v, grad_out = _inputs((1, 2, 2049, 2049, 128), torch.bfloat16, seed=14)
    ref_out, ref_lse, *_ = attention_ref(q, k, v, grad_out, True)
    for call in range(2):
        out, lse = fa.flash_attention_triton_forward(q, k, v, True)
        assert rel_err(out, ref_out) < TOLERANCE[torch.bfloat16]
        assert rel_err(lse, ref_lse) < TOLERANCE[torch.bfloat16]
        assert timed == [(False,), (True,), (True,), (False,)], f"call {call}: timed {timed}"
    (choice,) = fa._pingpong_forward_faster.values()
    assert isinstance(choice, bool)


def test_float32_backward_autotuned_where_no_fused_tile_fits(monkeypatch, attention_ref, rel_err):
    """float32 at head_dim 64, no config: the fused-dQ kernel has no tile that fits in shared
    memory there (its float32 3xTF32 tiles need ~340 KB on the H100). Timing the strategies must
    then keep the two-kernel backward, not fail."""
    import kernels_triton.flash_attention_triton as fa

    monkeypatch.setattr(fa, "FUSED_DQ", None)
    monkeypatch.setattr(fa, "_fused_backward_faster", {})
    q, k, v, grad_out = _inputs((1, 2, 1024, 1024, 64), torch.float32, seed=13)
    out, lse = fa.flash_attention_triton_forward(q, k, v, True)
    _, _, *ref_grads = attention_ref(q, k, v, grad_out, True)
    grads = fa.flash_attention_triton_backward(q, k, v, out, lse, grad_out, True)
    for got, want in zip(grads, ref_grads):
        assert rel_err(got, want) < TOLERANCE[torch.float32]
    assert len(fa._fused_backward_faster) == 1


def test_deterministic_algorithms_rule_out_the_fused_backward(monkeypatch):
    """Under torch.use_deterministic_algorithms(True) the backward takes the two-kernel path
    even where the fused one was found faster: gradients are bitwise identical run to run."""
    import kernels_triton.flash_attention_triton as fa

    monkeypatch.setattr(fa, "FUSED_DQ", None)

    def must_not_be_asked(key, launch):
        raise AssertionError("the strategy was timed in deterministic mode")

    monkeypatch.setattr(fa, "_faster_backward", must_not_be_asked)
    q, k, v, grad_out = _inputs((1, 4, 4096, 4096, 64), torch.bfloat16, seed=12)
    out, lse = fa.flash_attention_triton_forward(q, k, v, True)
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        first = fa.flash_attention_triton_backward(q, k, v, out, lse, grad_out, True)
        second = fa.flash_attention_triton_backward(q, k, v, out, lse, grad_out, True)
    finally:
        torch.use_deterministic_algorithms(was)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_dispatch_runs_triton_on_cuda_with_3d_inputs(attention_ref, rel_err):
    from kernels_triton import flash_attention

    q, k, v, grad_out = (t[:, 0] for t in _inputs((4, 1, 777, 777, 64), torch.bfloat16, seed=2))
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    out = flash_attention(*leaves, is_causal=True)
    # eagerly through the autograd.Function (the custom op is for torch.compile)
    assert "FlashAttentionTriton" in type(out.grad_fn).__name__
    out.backward(grad_out)
    ref = attention_ref(q, k, v, grad_out, True)
    for got, want in zip((out, *(t.grad for t in leaves)), (ref[0], *ref[2:])):
        assert rel_err(got, want) < TOLERANCE[torch.bfloat16]


def test_dispatch_under_torch_compile_keeps_attention_in_the_graph(attention_ref, rel_err):
    # Under torch.compile, flash_attention routes to the custom ops: fullgraph=True fails on any
    # graph break, so compiling at all shows the Triton call is one node of the graph.
    from kernels_triton import flash_attention

    q, k, v, grad_out = _inputs((2, 4, 1000, 1000, 64), torch.bfloat16, seed=3)
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    compiled = torch.compile(lambda a, b, c: flash_attention(a, b, c, True) * 2.0, fullgraph=True)
    out = compiled(*leaves)
    out.backward(grad_out)
    ref = attention_ref(q, k, v, grad_out * 2.0, True)
    for got, want in zip((out, *(t.grad for t in leaves)), (ref[0] * 2.0, *ref[2:])):
        assert rel_err(got, want) < TOLERANCE[torch.bfloat16]


@pytest.mark.parametrize("layout", ["one_element_in", "odd_row_stride"])
def test_views_not_16_byte_aligned(layout, attention_ref, rel_err):
    """q, k, v views whose tiles do not start on 16-byte boundaries (the tensor descriptors'
    requirement) still give the right result through the public, autotuned path: such tensors
    take the pointer loads."""
    from kernels_triton import flash_attention

    shape = (2, 4, 1000, 64)
    gen = torch.Generator(device="cuda").manual_seed(5)

    def view():
        if layout == "one_element_in":  # the data starts 2 bytes into its storage
            storage = torch.randn(torch.Size(shape).numel() + 1, generator=gen, device="cuda")
            return storage.to(torch.bfloat16)[1:].view(shape)
        wide = torch.randn(*shape[:-1], shape[-1] + 1, generator=gen, device="cuda")
        return wide.to(torch.bfloat16)[..., : shape[-1]]  # rows 130 bytes apart

    q, k, v = view(), view(), view()
    grad_out = torch.randn(shape, generator=gen, device="cuda").to(torch.bfloat16)
    leaves = [t.detach().requires_grad_() for t in (q, k, v)]
    out = flash_attention(*leaves, is_causal=True)
    out.backward(grad_out)
    ref = attention_ref(q, k, v, grad_out, True)
    for name, got, want in zip(
        ("O", "dQ", "dK", "dV"), (out, *(t.grad for t in leaves)), (ref[0], *ref[2:])
    ):
        assert rel_err(got, want) < TOLERANCE[torch.bfloat16], name


# (B, H, T_q, T_k, D) for the Gluon backward kernels: a sequence shorter than one tile, lengths
# that are not multiples of 64, T_q != T_k, every head_dim they compile for.
GLUON_SHAPES = [
    (1, 2, 50, 50, 64),
    (2, 3, 1000, 1000, 64),
    (1, 2, 2500, 3001, 64),
    (1, 4, 4099, 4099, 32),
    (1, 4, 2049, 2049, 16),
    (1, 2, 2049, 2049, 128),
]
GLUON_CASES = [
    (s, causal) for s in GLUON_SHAPES for causal in (False, True) if not causal or s[2] == s[3]
]


def _hopper() -> bool:
    return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] == 9


@pytest.mark.skipif(not _hopper(), reason="needs sm_90")
@pytest.mark.parametrize("query_tiles", [1, 2])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape, is_causal", GLUON_CASES)
def test_gluon_backward_against_float64(
    shape, is_causal, dtype, query_tiles, attention_ref, rel_err
):
    """dQ, dK and dV from the Gluon kernels (forced by config.gluon_backward) against float64,
    every element written (NaN poison first), and as close as the Triton kernels'. With two
    query tiles per dK/dV copy (as the autotuned path runs them, two buffers) the tiles of a
    sequence may be odd in number: the last copy's second tile lies past the end."""
    from dataclasses import replace

    def gluon_config(triton_config):
        # two tiles per copy in two buffers, as the autotuned path runs them (three would not
        # fit in shared memory at head_dim 128)
        dkdv = triton_config.dkdv
        if query_tiles > 1:
            dkdv = replace(dkdv, num_stages=2)
        return replace(
            triton_config, gluon_backward=True, gluon_dkdv_query_tiles=query_tiles, dkdv=dkdv
        )

    _check_forced_backward(
        shape, is_causal, dtype, gluon_config, 7, "gluon", attention_ref, rel_err
    )


def _check_forced_backward(shape, is_causal, dtype, make_config, seed, label, ref, rel_err):
    """dQ, dK and dV with `make_config(default tiles)` against float64 (`ref`): every element
    written (NaN poison first), within the dtype's tolerance and as close as the Triton kernels'
    with the default tiles."""
    from kernels_triton.flash_attention_triton import (
        default_config,
        flash_attention_triton_backward,
        flash_attention_triton_forward,
    )

    q, k, v, grad_out = _inputs(shape, dtype, seed=hash((shape, is_causal, seed)) % 2**31)
    _, _, *ref_grads = ref(q, k, v, grad_out, is_causal)
    triton_config = default_config(shape[-1], dtype)
    out, lse = flash_attention_triton_forward(q, k, v, is_causal, triton_config)
    poisoned = tuple(torch.full_like(t, float("nan")) for t in (q, k, v))
    grads = flash_attention_triton_backward(
        q, k, v, out, lse, grad_out, is_causal, make_config(triton_config), grads=poisoned
    )
    triton_grads = flash_attention_triton_backward(
        q, k, v, out, lse, grad_out, is_causal, triton_config
    )
    for name, got, want, triton_got in zip(("dQ", "dK", "dV"), grads, ref_grads, triton_grads):
        assert torch.isfinite(got).all(), f"{name}: unwritten (NaN poison) or non-finite elements"
        err, triton_err = rel_err(got, want), rel_err(triton_got, want)
        print(f"{name} {dtype} {shape} causal={is_causal}: {label} {err:.2e} "
              f"triton {triton_err:.2e}")  # fmt: skip
        assert err < TOLERANCE[dtype], (name, err)
        assert err < 1.1 * triton_err + 1e-6, (name, err, triton_err)


# The fused-dQ Gluon dK/dV kernel (head_dim 64: dQ^T's rows fill one warpgroup) at its two
# shipped tiles, (tile, query tiles per copy): 64 x 64 over 4 warps, two tiles per copy (two
# programs per SM), and from 8K queries 128-key tiles over 8 warps (two warpgroups split dQ^T's
# columns) with four tiles per copy; and the 8-warp tile with two tiles per copy.
FUSED_GLUON_CASES = [
    (shape, is_causal, tile, query_tiles)
    for shape, is_causal in GLUON_CASES
    for tile, query_tiles in (((64, 64, 4, 2), 2), ((64, 128, 8, 2), 4), ((64, 128, 8, 3), 2))
    if shape[-1] == 64
]


@pytest.mark.skipif(not _hopper(), reason="needs sm_90")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape, is_causal, tile, query_tiles", FUSED_GLUON_CASES)
def test_gluon_fused_dq_backward_against_float64(
    shape, is_causal, tile, query_tiles, dtype, attention_ref, rel_err
):
    """dQ, dK and dV when the Gluon dK/dV kernel also forms dQ (config.gluon_backward with
    config.fused_dq; dS K added into a float32 dQ by the copy engine) against float64, every
    element written (NaN poison first), as close as the Triton kernels'. Two or four query tiles
    per copy: a sequence's last copy may hold tiles past its end, whose dQ rows the copy engine
    must drop."""
    from dataclasses import replace

    from kernels_triton.flash_attention_triton import TileConfig

    def fused_config(triton_config):
        return replace(
            triton_config, gluon_backward=True, fused_dq=True,
            gluon_dkdv_query_tiles=query_tiles, dkdv=TileConfig(*tile),
        )  # fmt: skip

    label = f"fused gluon {tile} x{query_tiles}"
    _check_forced_backward(shape, is_causal, dtype, fused_config, 9, label, attention_ref, rel_err)


@pytest.mark.skipif(not _hopper(), reason="needs sm_90")
def test_autotuned_fused_backward_runs_the_gluon_dkdv_kernel_alone(monkeypatch, rel_err):
    """With FUSED_DQ on the autotuned path where the Gluon kernels apply: no dQ kernel, one
    dK/dV launch given the float32 dQ accumulator, at the pair's dK/dV tile below
    GLUON_FUSED_WIDE_MIN_QUERIES queries and at the wide tile from there; the result matches
    the two-kernel one."""
    import kernels_triton.flash_attention_triton as fat

    calls = []

    def spying(name, real):
        def spy(*args, **kwargs):
            # attn_bwd_dkdv_gluon(q4, k4, v4, do4, stats, dk, dv, is_causal, 3 scales, tile,
            # query_tiles, dq_acc=...)
            tile = tuple(args[11:16]) if name == "attn_bwd_dkdv_gluon" else None
            calls.append((name, kwargs.get("dq_acc") is not None, tile))
            return real(*args, **kwargs)

        return spy

    monkeypatch.setattr(fat, "GLUON_MIN_SCORES", 2 * 2048 * 2048)  # a test-sized threshold
    for name in ("attn_bwd_dq_gluon", "attn_bwd_dkdv_gluon"):
        monkeypatch.setattr(fat, name, spying(name, getattr(fat, name)))
    q, k, v, grad_out = _inputs((1, 2, 2048, 2048, 64), torch.bfloat16, seed=5)
    out, lse = fat.flash_attention_triton_forward(q, k, v, True)
    pair_tile = (*fat.GLUON_DKDV_TILE, fat.GLUON_DKDV_QUERY_TILES)
    wide_tile = (*fat.GLUON_FUSED_DKDV_TILE, fat.GLUON_FUSED_DKDV_QUERY_TILES)
    for wide_from in (fat.GLUON_FUSED_WIDE_MIN_QUERIES, 2048):  # 2048 queries: narrow, wide
        monkeypatch.setattr(fat, "GLUON_FUSED_WIDE_MIN_QUERIES", wide_from)
        results = {}
        for fused in (False, True):
            monkeypatch.setattr(fat, "FUSED_DQ", fused)
            calls.clear()
            results[fused] = fat.flash_attention_triton_backward(q, k, v, out, lse, grad_out, True)
            fused_tile = wide_tile if wide_from <= 2048 else pair_tile
            expected = (
                [("attn_bwd_dkdv_gluon", True, fused_tile)]
                if fused
                else [("attn_bwd_dq_gluon", False, None), ("attn_bwd_dkdv_gluon", False, pair_tile)]
            )
            assert calls == expected, (fused, calls)
        for pair, fused in zip(results[False], results[True]):
            assert rel_err(fused, pair) < 4e-3


@pytest.mark.skipif(not _hopper(), reason="needs sm_90")
def test_autotuned_backward_picks_gluon_where_it_applies(monkeypatch):
    """With no config: the Gluon kernels from STATS_TMA_MIN_QUERIES queries and GLUON_MIN_SCORES
    scores at head_dim 64 in 16-bit, the Triton kernels for shorter sequences, fewer scores and
    other head_dims; forcing them on float32 is an error that says why."""
    from dataclasses import replace

    import kernels_triton.flash_attention_triton as fat

    calls = []

    def spying(name, real):
        def spy(*args, **kwargs):
            calls.append(name)
            return real(*args, **kwargs)

        return spy

    monkeypatch.setattr(fat, "FUSED_DQ", False)  # the Gluon kernels serve the two-kernel backward
    monkeypatch.setattr(fat, "GLUON_MIN_SCORES", 2 * 2048 * 2048)  # a test-sized threshold
    for name in ("attn_bwd_dq_gluon", "attn_bwd_dkdv_gluon"):
        monkeypatch.setattr(fat, name, spying(name, getattr(fat, name)))
    cases = (
        ((1, 2), 2048, 64, 2),
        ((1, 2), 1024, 64, 0),
        ((1, 2), 2048, 32, 0),
        ((1, 1), 2048, 64, 0),
    )
    for (batch, heads), n, dim, expected in cases:
        q, k, v, grad_out = _inputs((batch, heads, n, n, dim), torch.bfloat16)
        out, lse = fat.flash_attention_triton_forward(q, k, v, True)
        calls.clear()
        fat.flash_attention_triton_backward(q, k, v, out, lse, grad_out, True)
        assert len(calls) == expected, (batch, heads, n, dim, calls)
    q, k, v, grad_out = _inputs((1, 2, 2048, 2048, 64), torch.float32)
    config = replace(fat.default_config(64, torch.float32), gluon_backward=True)
    out, lse = fat.flash_attention_triton_forward(q, k, v, True, config)
    with pytest.raises(ValueError, match="gluon_backward=True needs"):
        fat.flash_attention_triton_backward(q, k, v, out, lse, grad_out, True, config)


def _check_gluon_forward(shape, is_causal, dtype, tile, seed_salt, attention_ref, rel_err, **flags):
    """O and L from a Gluon forward forced by config `flags` at fwd tile `tile` against float64,
    every element written (NaN poison first), and as close as the Triton forward's."""
    from dataclasses import replace

    from kernels_triton.flash_attention_triton import (
        TileConfig,
        default_config,
        flash_attention_triton_forward,
    )

    q, k, v, grad_out = _inputs(shape, dtype, seed=hash((shape, is_causal, seed_salt)) % 2**31)
    ref_out, ref_lse, *_ = attention_ref(q, k, v, grad_out, is_causal)
    triton_config = default_config(shape[-1], dtype)
    gluon_config = replace(triton_config, fwd=TileConfig(*tile), **flags)
    out, lse = flash_attention_triton_forward(
        q, k, v, is_causal, gluon_config,
        out=torch.full_like(q, float("nan")),
        lse=torch.full_like(q[..., 0], float("nan"), dtype=torch.float32),
    )  # fmt: skip
    triton_out, triton_lse = flash_attention_triton_forward(q, k, v, is_causal, triton_config)
    for name, got, want, triton_got in (
        ("O", out, ref_out, triton_out),
        ("L", lse, ref_lse, triton_lse),
    ):
        assert torch.isfinite(got).all(), f"{name}: unwritten (NaN poison) or non-finite elements"
        err, triton_err = rel_err(got, want), rel_err(triton_got, want)
        print(f"{name} {dtype} {shape} {tile} causal={is_causal}: {err:.2e} vs {triton_err:.2e}")
        assert err < TOLERANCE[dtype], (name, err)
        assert err < 1.1 * triton_err + 1e-6, (name, err, triton_err)


@pytest.mark.skipif(not _hopper(), reason="needs sm_90")
@pytest.mark.parametrize("tile", [(64, 128, 4, 2), (64, 64, 4, 3), (128, 64, 8, 3)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape, is_causal", GLUON_CASES)
def test_gluon_forward_against_float64(shape, is_causal, dtype, tile, attention_ref, rel_err):
    """The Gluon forward (config.gluon_forward) against float64 and beside the Triton forward
    (_check_gluon_forward). Tiles: the autotuned path's (128 keys for 64 queries: the diagonal
    band is half a key tile), 64 x 64 and two warpgroups of 64 queries."""
    if shape[-1] == 128 and tile[1] == 128:
        pytest.skip("a 128 x 128 key tile pair does not fit beside the others at head_dim 128")
    _check_gluon_forward(
        shape, is_causal, dtype, tile, 11, attention_ref, rel_err, gluon_forward=True
    )


@pytest.mark.skipif(not _hopper(), reason="needs sm_90")
@pytest.mark.parametrize("tile", [(128, 128, 8, 3), (128, 64, 8, 2)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape, is_causal", GLUON_CASES)
def test_gluon_pingpong_forward_against_float64(
    shape, is_causal, dtype, tile, attention_ref, rel_err
):
    """The ping-pong forward (config.gluon_pingpong) against float64 and beside the Triton
    forward (_check_gluon_forward). Tiles: the autotuned path's, and 64-key tiles, whose causal
    diagonal band is two masked key tiles per program."""
    _check_gluon_forward(
        shape, is_causal, dtype, tile, 12, attention_ref, rel_err,
        gluon_forward=True, gluon_pingpong=True,
    )  # fmt: skip


@pytest.mark.skipif(not _hopper(), reason="needs sm_90")
def test_autotuned_forward_picks_gluon_where_it_applies(monkeypatch):
    """With no config: from GLUON_MIN_SCORES scores in 16-bit, the Gluon forward at head_dim 64
    and at 128 the ping-pong one where its timing against the Triton forward says so (here
    stubbed: both answers); the Triton kernel for fewer scores, other head_dims and float32
    (where forcing it is an error that says why)."""
    from dataclasses import replace

    import kernels_triton.flash_attention_triton as fat

    calls = []

    def spy(name, real):
        def launch(*args, **kwargs):
            calls.append((name, args[-4:]))  # which kernel, at which tile
            return real(*args, **kwargs)

        return launch

    monkeypatch.setattr(fat, "GLUON_MIN_SCORES", 2 * 2048 * 2048)  # a test-sized threshold
    monkeypatch.setattr(fat, "attn_fwd_gluon", spy("one", fat.attn_fwd_gluon))
    monkeypatch.setattr(
        fat, "attn_fwd_gluon_pingpong", spy("pingpong", fat.attn_fwd_gluon_pingpong)
    )
    asked = []

    def timing_says(answer):
        def second_is_faster(memo, key, launch):
            asked.append(key)
            return answer

        return second_is_faster

    one, pingpong = ("one", fat.GLUON_FWD_TILE), ("pingpong", fat.GLUON_PINGPONG_TILE)
    for (batch, heads), n, dim, dtype, pingpong_faster, expected in (
        ((1, 2), 2048, 64, torch.bfloat16, True, [one]),
        ((2, 1), 2048, 64, torch.float16, True, [one]),
        ((1, 2), 2048, 128, torch.bfloat16, True, [pingpong]),
        ((1, 2), 2048, 128, torch.float16, True, [pingpong]),
        ((1, 2), 2048, 128, torch.bfloat16, False, []),
        ((1, 1), 2048, 64, torch.bfloat16, True, []),
        ((1, 1), 2048, 128, torch.bfloat16, True, []),
        ((1, 2), 2048, 32, torch.bfloat16, True, []),
        ((1, 2), 2048, 64, torch.float32, True, []),
        ((1, 2), 2048, 128, torch.float32, True, []),
    ):
        monkeypatch.setattr(fat, "_second_is_faster", timing_says(pingpong_faster))
        q, k, v, _ = _inputs((batch, heads, n, n, dim), dtype)
        calls.clear()
        asked.clear()
        fat.flash_attention_triton_forward(q, k, v, True)
        assert calls == expected, (batch, heads, n, dim, dtype, calls)
        # only the calls the ping-pong is eligible for are timed
        assert len(asked) == (dim == 128 and dtype != torch.float32 and batch * heads == 2)
    q, k, v, _ = _inputs((1, 2, 2048, 2048, 64), torch.float32)
    config = replace(fat.default_config(64, torch.float32), gluon_forward=True)
    config = replace(config, fwd=fat.TileConfig(64, 64, 4, 2))
    with pytest.raises(ValueError, match="gluon_forward=True needs"):
        fat.flash_attention_triton_forward(q, k, v, True, config)
