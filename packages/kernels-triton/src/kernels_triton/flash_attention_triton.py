"""FlashAttention-2 forward and backward in Triton: kernels, launchers and the autograd.Function.

Five kernels, each one program per (tile, batch*head) (on Hopper with 16-bit inputs, long enough
calls run Gluon kernels instead, flash_attention_gluon.py: at head_dim 64 the forward and both
backward kernels, at head_dim 128 the forward with FlashAttention-3's ping-pong):

- `_attn_fwd_kernel`: one query tile against all its key tiles with the online softmax; writes O
  and the log-sum-exp L (natural log, float32) of every query row.
- `_attn_bwd_dq_kernel` (runs first in the backward): one query tile against its key tiles;
  forms D = rowsum(dO * O), the per-row correction term of the softmax backward (it equals
  rowsum(P * dP), so no P is needed for it) and stores it with L in log2 units for the dK/dV
  kernel, then recomputes P and accumulates dQ = dS K. Splitting dQ from dK/dV costs one more
  recomputation of P but needs no atomics.
- `_attn_bwd_dkdv_kernel`: one key tile against the query tiles that see it; recomputes P^T from
  L and accumulates dV = P^T dO and dK = dS^T Q in registers.
- `_attn_bwd_row_stats_kernel`: D and L in log2 units alone, for the fused-dQ strategy, which has
  no dQ kernel.
- `_dq_from_transposed_kernel`: dQ from the float32 dQ^T that the fused-dQ Gluon kernel adds up.

Causal attention skips the key tiles wholly above the diagonal and pays for the mask only on the
tiles that cross it: each kernel runs one unmasked loop over the tiles below the diagonal and one
masked loop over the diagonal band. Sequence ends that are not a multiple of the tile are handled
with masked loads and stores, so any length works.

Exponentials are base 2 with log2(e) folded into the score scale (`qk_scale`), which saves a
multiply per score; the L written out is converted back to the natural log. On Hopper the streamed
tiles come through tensor descriptors (TMA), and float32 inputs multiply with 3xTF32 so that they
keep float32 accuracy on the tensor cores (see `_dot_precision`).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
import triton
import triton.language as tl
from triton.runtime import _allocation
from triton.runtime.errors import OutOfResources

from kernels_triton.attention_inputs import check_attention_inputs

try:  # Gluon is Triton 3.6's experimental dialect: another Triton may lack it or differ
    from kernels_triton.flash_attention_gluon import (
        attn_bwd_dkdv_gluon,
        attn_bwd_dq_gluon,
        attn_fwd_gluon,
        attn_fwd_gluon_pingpong,
        gluon_supported,
    )

    GLUON_IMPORT_ERROR = None
except (ImportError, AttributeError) as error:  # the Triton kernels do all the work then
    GLUON_IMPORT_ERROR = error

    def gluon_supported(*tensors: torch.Tensor) -> bool:
        return False


LOG2E = math.log2(math.e)


# --------------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------------


@triton.jit
def _streamed_tiles(
    A,
    B,
    n_rows,
    stride_at,
    stride_bt,
    stride_ad,
    stride_bd,
    offs_rows,
    offs_d,
    BLOCK: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    USE_TMA: tl.constexpr,
):
    """Handles on the (BLOCK, HEAD_DIM) tiles of two (n_rows, HEAD_DIM) tensors that a kernel
    streams through its loop (K and V, or Q and dO): tensor descriptors with USE_TMA (the copy
    engine fetches a tile and fills rows past the end with zeros; unit stride along head_dim),
    else pointer blocks of the first tile, offset by start * stride in the loop."""
    if USE_TMA:
        a = tl.make_tensor_descriptor(A, [n_rows, HEAD_DIM], [stride_at, 1], [BLOCK, HEAD_DIM])
        b = tl.make_tensor_descriptor(B, [n_rows, HEAD_DIM], [stride_bt, 1], [BLOCK, HEAD_DIM])
    else:
        a = A + offs_rows[:, None] * stride_at + offs_d[None, :] * stride_ad
        b = B + offs_rows[:, None] * stride_bt + offs_d[None, :] * stride_bd
    return a, b


@triton.jit
def _attn_fwd_key_loop(
    acc,
    row_max,
    row_sum,
    q,
    k_ptrs,
    v_ptrs,
    stride_kt,
    stride_vt,
    rows,
    offs_n,
    key_lo,
    key_hi,
    n_keys,
    qk_scale,
    BLOCK_N: tl.constexpr,
    MASKED: tl.constexpr,
    CAUSAL: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    USE_TMA: tl.constexpr,
):
    """Online-softmax update of (acc, row_max, row_sum) over key tiles [key_lo, key_hi).

    k_ptrs and v_ptrs are (BLOCK_N, HEAD_DIM) pointer blocks, or with USE_TMA tensor descriptors
    (the copy engine fetches the tile and fills rows past the end with zeros)."""
    for start_n in range(key_lo, key_hi, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        cols = start_n + offs_n
        if USE_TMA:
            k = k_ptrs.load([start_n, 0])
            v = v_ptrs.load([start_n, 0])
        elif MASKED:
            key_in = (cols < n_keys)[:, None]
            k = tl.load(k_ptrs + start_n * stride_kt, mask=key_in, other=0.0)
            v = tl.load(v_ptrs + start_n * stride_vt, mask=key_in, other=0.0)
        else:
            k = tl.load(k_ptrs + start_n * stride_kt)
            v = tl.load(v_ptrs + start_n * stride_vt)
        scores = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION)  # (BLOCK_M, BLOCK_N)
        if MASKED:
            keep = cols[None, :] < n_keys
            if CAUSAL:
                keep = keep & (rows[:, None] >= cols[None, :])
            scores = tl.where(keep, scores, -float("inf"))
        # Every row has a visible key in the first tile it meets (key 0, or its own diagonal key),
        # so new_max is finite from then on and exp2 never sees inf - inf. The max is taken on
        # the raw scores and scaled once per row, so each score costs one multiply-add below.
        new_max = tl.maximum(row_max, tl.max(scores, 1) * qk_scale)  # log2 units
        probs = tl.math.exp2(scores * qk_scale - new_max[:, None])  # unnormalised P~
        rescale = tl.math.exp2(row_max - new_max)  # 0 on the first tile (row_max = -inf)
        row_sum = row_sum * rescale + tl.sum(probs, 1)
        acc = acc * rescale[:, None]
        acc = tl.dot(probs.to(v.dtype), v, acc, input_precision=DOT_PRECISION)
        row_max = new_max
    return acc, row_max, row_sum


@triton.jit(do_not_specialize=["SHAPE_BUCKET"])
def _attn_fwd_kernel(
    Q,
    K,
    V,
    O,
    LSE,
    stride_qb,
    stride_qh,
    stride_qt,
    stride_qd,
    stride_kb,
    stride_kh,
    stride_kt,
    stride_kd,
    stride_vb,
    stride_vh,
    stride_vt,
    stride_vd,
    stride_ob,
    stride_oh,
    stride_ot,
    stride_od,
    n_heads,
    n_queries,
    n_keys,
    qk_scale,
    SHAPE_BUCKET,  # autotuning key only (see _shape_bucket)
    HEAD_DIM: tl.constexpr,
    CAUSAL: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    USE_TMA: tl.constexpr,
):
    tile_m = tl.program_id(0)
    if CAUSAL:  # the last query tiles see the most keys: start them first to shorten the tail
        tile_m = tl.num_programs(0) - 1 - tile_m
    bh = tl.program_id(1).to(tl.int64)
    batch, head = bh // n_heads, bh % n_heads
    Q += batch * stride_qb + head * stride_qh
    K += batch * stride_kb + head * stride_kh
    V += batch * stride_vb + head * stride_vh
    O += batch * stride_ob + head * stride_oh
    LSE += bh * n_queries

    start_m = tile_m * BLOCK_M
    rows = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    row_in = rows < n_queries
    q = tl.load(
        Q + rows[:, None] * stride_qt + offs_d[None, :] * stride_qd, mask=row_in[:, None], other=0.0
    )
    k_ptrs, v_ptrs = _streamed_tiles(
        K, V, n_keys, stride_kt, stride_vt, stride_kd, stride_vd, offs_n, offs_d,
        BLOCK_N, HEAD_DIM, USE_TMA,
    )  # fmt: skip

    row_max = tl.full([BLOCK_M], -float("inf"), dtype=tl.float32)
    row_sum = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    if CAUSAL:
        # Key tiles left of this query tile are fully visible; the band [start_m, start_m+BLOCK_M)
        # crosses the diagonal; everything right of it is masked and never loaded.
        acc, row_max, row_sum = _attn_fwd_key_loop(
            acc, row_max, row_sum, q, k_ptrs, v_ptrs, stride_kt, stride_vt, rows, offs_n,
            0, start_m, n_keys, qk_scale, BLOCK_N, False, CAUSAL, DOT_PRECISION, USE_TMA,
        )  # fmt: skip
        acc, row_max, row_sum = _attn_fwd_key_loop(
            acc, row_max, row_sum, q, k_ptrs, v_ptrs, stride_kt, stride_vt, rows, offs_n,
            start_m, tl.minimum(start_m + BLOCK_M, n_keys), n_keys, qk_scale, BLOCK_N, True, CAUSAL,
            DOT_PRECISION, USE_TMA,
        )  # fmt: skip
    else:
        full_end = (n_keys // BLOCK_N) * BLOCK_N
        acc, row_max, row_sum = _attn_fwd_key_loop(
            acc, row_max, row_sum, q, k_ptrs, v_ptrs, stride_kt, stride_vt, rows, offs_n,
            0, full_end, n_keys, qk_scale, BLOCK_N, False, CAUSAL, DOT_PRECISION, USE_TMA,
        )  # fmt: skip
        if full_end < n_keys:  # a last, partial key tile
            acc, row_max, row_sum = _attn_fwd_key_loop(
                acc, row_max, row_sum, q, k_ptrs, v_ptrs, stride_kt, stride_vt, rows, offs_n,
                full_end, n_keys, n_keys, qk_scale, BLOCK_N, True, CAUSAL, DOT_PRECISION, USE_TMA,
            )  # fmt: skip

    acc = acc / row_sum[:, None]
    # row_max is in log2 units of the scaled scores: L = ln(sum_j exp(s_j)) = (m + log2 l) * ln 2.
    lse = (row_max + tl.math.log2(row_sum)) / 1.4426950408889634
    tl.store(LSE + rows, lse, mask=row_in)
    tl.store(
        O + rows[:, None] * stride_ot + offs_d[None, :] * stride_od,
        acc.to(O.dtype.element_ty),
        mask=row_in[:, None],
    )


@triton.jit
def _store_row_stats(LSE2, DELTA, bh, stats_stride, rows, lse2, delta, row_in):
    """Write L in log2 units and D of `rows` into the (B*H, stats_stride) row statistics that the
    dK/dV kernel streams (its one reader)."""
    tl.store(LSE2 + bh * stats_stride + rows, lse2, mask=row_in)
    tl.store(DELTA + bh * stats_stride + rows, delta, mask=row_in)


@triton.jit
def _attn_bwd_row_stats_kernel(
    O,
    DO,
    LSE,
    LSE2,
    DELTA,
    stride_ob,
    stride_oh,
    stride_ot,
    stride_od,
    stride_dob,
    stride_doh,
    stride_dot,
    stride_dod,
    n_heads,
    n_queries,
    stats_stride,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
):
    """D = rowsum(dO * O) and L in log2 units (L * log2(e)) of BLOCK_M query rows, into the
    row-statistics buffers the dK/dV kernel streams (rows stats_stride apart)."""
    bh = tl.program_id(1).to(tl.int64)
    batch, head = bh // n_heads, bh % n_heads
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    row_in = (rows < n_queries)[:, None]
    o_ptrs = O + batch * stride_ob + head * stride_oh
    do_ptrs = DO + batch * stride_dob + head * stride_doh
    o = tl.load(o_ptrs + rows[:, None] * stride_ot + offs_d[None, :] * stride_od, mask=row_in)
    do = tl.load(do_ptrs + rows[:, None] * stride_dot + offs_d[None, :] * stride_dod, mask=row_in)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), axis=1)
    lse = tl.load(LSE + bh * n_queries + rows, mask=rows < n_queries)
    lse2 = lse * 1.4426950408889634
    _store_row_stats(LSE2, DELTA, bh, stats_stride, rows, lse2, delta, rows < n_queries)


@triton.jit
def _dq_from_transposed_kernel(
    DQT,  # float32 (B*H, D, stride_dqt_row): dQ^T as the fused Gluon dK/dV kernel adds it up
    DQ,  # (B, H, T, D) in the inputs' dtype
    stride_dqt_bh,
    stride_dqt_row,
    stride_dqb,
    stride_dqh,
    stride_dqt,
    n_heads,
    n_queries,
    sm_scale,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
):
    """dQ = (dQ^T)^T / sqrt(d) for BLOCK_M query rows of one (batch, head), cast to dQ's dtype
    (the fused kernel adds K^T dS^T up unscaled: one multiply here instead of one per tile
    there): reads along the queries, writes along head_dim, both coalesced."""
    bh = tl.program_id(1).to(tl.int64)
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    dims = tl.arange(0, HEAD_DIM)
    row_in = rows < n_queries
    dq_t = tl.load(
        DQT + bh * stride_dqt_bh + dims[:, None] * stride_dqt_row + rows[None, :],
        mask=row_in[None, :],
    )  # (HEAD_DIM, BLOCK_M)
    dq_ptrs = DQ + (bh // n_heads) * stride_dqb + (bh % n_heads) * stride_dqh
    dq_ptrs += rows[:, None] * stride_dqt + dims[None, :]
    dq = tl.trans(dq_t) * sm_scale
    tl.store(dq_ptrs, dq.to(DQ.dtype.element_ty), mask=row_in[:, None])


@triton.jit
def _attn_bwd_dkdv_query_loop(
    dk,
    dv,
    k,
    v,
    q_ptrs,
    do_ptrs,
    lse2_rows,
    delta_rows,
    stride_qt,
    stride_dot,
    cols,
    offs_m,
    query_lo,
    query_hi,
    n_queries,
    qk_scale,
    BLOCK_M: tl.constexpr,
    MASKED: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    FUSED_DQ: tl.constexpr,
    dq_ptrs,
    sm_scale,
    HEAD_DIM: tl.constexpr,
    USE_TMA: tl.constexpr,
    DQ_TMA_REDUCE: tl.constexpr,
    STATS_TMA: tl.constexpr,
):
    """Accumulate dK (unscaled) and dV of one key tile over query tiles [query_lo, query_hi)."""
    for start_m in range(query_lo, query_hi, BLOCK_M):
        start_m = tl.multiple_of(start_m, BLOCK_M)
        rows = start_m + offs_m
        row_in = rows < n_queries
        # Rows past the end arrive as zeros: their q and dO rows are 0, so they add nothing to
        # dV = P^T dO, dP^T = V dO^T is 0 there, and with D = 0 so is dS^T.
        if USE_TMA:
            q = q_ptrs.load([start_m, 0])
            do = do_ptrs.load([start_m, 0])
        else:
            q = tl.load(q_ptrs + start_m * stride_qt, mask=row_in[:, None], other=0.0)
            do = tl.load(do_ptrs + start_m * stride_dot, mask=row_in[:, None], other=0.0)
        if STATS_TMA:  # one copy-engine request per vector: at 64 x 64 tiles the loop is 323
            # instructions per thread this way, 464 with the pointer loads below
            lse2 = lse2_rows.load([start_m])
            delta = delta_rows.load([start_m])
        else:
            lse2 = tl.load(lse2_rows + rows, mask=row_in, other=0.0)
            delta = tl.load(delta_rows + rows, mask=row_in, other=0.0)
        scores_t = (
            tl.dot(k, tl.trans(q), input_precision=DOT_PRECISION) * qk_scale
        )  # S^T, (BLOCK_N, BLOCK_M), log2 units
        if HEAD_DIM <= 64:
            # Issued before the exp2 below, this product runs on the tensor cores while the
            # exp2s run (dK/dV kernel 6% faster at head_dim 64). At 128 the extra live tile
            # spills registers and the kernel gets 10-45% slower, so it waits there.
            dprobs_t = tl.dot(v, tl.trans(do), input_precision=DOT_PRECISION)  # dP^T = V dO^T
        probs_t = tl.math.exp2(scores_t - lse2[None, :])  # P^T recomputed from L
        if MASKED:  # causal diagonal band: query i sees key j only when j <= i
            probs_t = tl.where(rows[None, :] >= cols[:, None], probs_t, 0.0)
        dv = tl.dot(probs_t.to(do.dtype), do, dv, input_precision=DOT_PRECISION)  # dV += P^T dO
        if HEAD_DIM > 64:
            dprobs_t = tl.dot(v, tl.trans(do), input_precision=DOT_PRECISION)
        dscores_t = probs_t * (dprobs_t - delta[None, :])  # dS^T = P^T * (dP^T - D)
        dk = tl.dot(
            dscores_t.to(q.dtype), q, dk, input_precision=DOT_PRECISION
        )  # dK += dS^T Q (scaled by the caller)
        if FUSED_DQ:  # dQ_i += dS K / sqrt(d), summed over key tiles by float32 atomics
            dq_part = tl.dot(tl.trans(dscores_t).to(k.dtype), k, input_precision=DOT_PRECISION)
            if DQ_TMA_REDUCE:  # one bulk add of the whole tile by the copy engine (Hopper)
                dq_ptrs.atomic_add([start_m, 0], dq_part * sm_scale)
            else:  # one atomic per element
                tl.atomic_add(
                    dq_ptrs + start_m * HEAD_DIM,
                    dq_part * sm_scale,
                    mask=row_in[:, None],
                    sem="relaxed",
                )
    return dk, dv


@triton.jit(do_not_specialize=["SHAPE_BUCKET"])
def _attn_bwd_dkdv_kernel(
    Q,
    K,
    V,
    DO,
    LSE2,  # L * log2(e), rows stats_stride apart (written by the dQ or row-statistics kernel)
    DELTA,  # D, laid out as LSE2
    DK,
    DV,
    DQ_ACC,  # float32 (B, H, T_q, D), zeroed; only used with FUSED_DQ
    stride_qb,
    stride_qh,
    stride_qt,
    stride_qd,
    stride_kb,
    stride_kh,
    stride_kt,
    stride_kd,
    stride_vb,
    stride_vh,
    stride_vt,
    stride_vd,
    stride_dob,
    stride_doh,
    stride_dot,
    stride_dod,
    stride_dkb,
    stride_dkh,
    stride_dkt,
    stride_dkd,
    stride_dvb,
    stride_dvh,
    stride_dvt,
    stride_dvd,
    n_heads,
    n_queries,
    n_keys,
    stats_stride,
    qk_scale,
    sm_scale,
    SHAPE_BUCKET,
    HEAD_DIM: tl.constexpr,
    CAUSAL: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    FUSED_DQ: tl.constexpr,
    USE_TMA: tl.constexpr,
    DQ_TMA_REDUCE: tl.constexpr = False,
    STATS_TMA: tl.constexpr = False,  # L and D by tensor descriptor (see the launcher)
):
    bh = tl.program_id(1).to(tl.int64)
    batch, head = bh // n_heads, bh % n_heads
    start_n = tl.program_id(0) * BLOCK_N  # causal: low key tiles have the most queries, go first
    cols = start_n + tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    col_in = (cols < n_keys)[:, None]
    K += batch * stride_kb + head * stride_kh
    V += batch * stride_vb + head * stride_vh
    k = tl.load(K + cols[:, None] * stride_kt + offs_d[None, :] * stride_kd, mask=col_in, other=0.0)
    v = tl.load(V + cols[:, None] * stride_vt + offs_d[None, :] * stride_vd, mask=col_in, other=0.0)
    Q += batch * stride_qb + head * stride_qh
    DO += batch * stride_dob + head * stride_doh
    q_ptrs, do_ptrs = _streamed_tiles(
        Q, DO, n_queries, stride_qt, stride_dot, stride_qd, stride_dod, offs_m, offs_d,
        BLOCK_M, HEAD_DIM, USE_TMA,
    )  # fmt: skip
    LSE2 += bh * stats_stride
    DELTA += bh * stats_stride
    if STATS_TMA:  # stats_stride keeps every row 16-byte aligned, as the copy engine needs
        lse2_rows = tl.make_tensor_descriptor(LSE2, [n_queries], [1], [BLOCK_M])
        delta_rows = tl.make_tensor_descriptor(DELTA, [n_queries], [1], [BLOCK_M])
    else:
        lse2_rows, delta_rows = LSE2, DELTA
    if DQ_TMA_REDUCE:
        dq_ptrs = tl.make_tensor_descriptor(
            DQ_ACC + bh * n_queries * HEAD_DIM, [n_queries, HEAD_DIM], [HEAD_DIM, 1],
            [BLOCK_M, HEAD_DIM],
        )  # fmt: skip
    else:
        dq_ptrs = DQ_ACC + bh * n_queries * HEAD_DIM + offs_m[:, None] * HEAD_DIM + offs_d[None, :]

    dk = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    if CAUSAL:
        # Queries before start_n see none of these keys. Queries in [start_n, start_n + BLOCK_N)
        # cross the diagonal (BLOCK_N is a multiple of BLOCK_M); later queries see all of them.
        band_end = tl.minimum(start_n + BLOCK_N, n_queries)
        dk, dv = _attn_bwd_dkdv_query_loop(
            dk, dv, k, v, q_ptrs, do_ptrs, lse2_rows, delta_rows, stride_qt, stride_dot, cols,
            offs_m, start_n, band_end, n_queries, qk_scale, BLOCK_M, True,
            DOT_PRECISION, FUSED_DQ, dq_ptrs, sm_scale, HEAD_DIM, USE_TMA, DQ_TMA_REDUCE,
            STATS_TMA,
        )  # fmt: skip
        dk, dv = _attn_bwd_dkdv_query_loop(
            dk, dv, k, v, q_ptrs, do_ptrs, lse2_rows, delta_rows, stride_qt, stride_dot, cols,
            offs_m, band_end, n_queries, n_queries, qk_scale, BLOCK_M, False,
            DOT_PRECISION, FUSED_DQ, dq_ptrs, sm_scale, HEAD_DIM, USE_TMA, DQ_TMA_REDUCE,
            STATS_TMA,
        )  # fmt: skip
    else:
        dk, dv = _attn_bwd_dkdv_query_loop(
            dk, dv, k, v, q_ptrs, do_ptrs, lse2_rows, delta_rows, stride_qt, stride_dot, cols,
            offs_m, 0, n_queries, n_queries, qk_scale, BLOCK_M, False,
            DOT_PRECISION, FUSED_DQ, dq_ptrs, sm_scale, HEAD_DIM, USE_TMA, DQ_TMA_REDUCE,
            STATS_TMA,
        )  # fmt: skip

    dk *= sm_scale  # dK = dS^T Q / sqrt(d)
    DK += batch * stride_dkb + head * stride_dkh
    DV += batch * stride_dvb + head * stride_dvh
    tl.store(
        DK + cols[:, None] * stride_dkt + offs_d[None, :] * stride_dkd,
        dk.to(DK.dtype.element_ty),
        mask=col_in,
    )
    tl.store(
        DV + cols[:, None] * stride_dvt + offs_d[None, :] * stride_dvd,
        dv.to(DV.dtype.element_ty),
        mask=col_in,
    )


@triton.jit
def _attn_bwd_dq_key_loop(
    dq,
    q,
    do,
    lse2,
    delta,
    k_ptrs,
    v_ptrs,
    stride_kt,
    stride_vt,
    rows,
    offs_n,
    key_lo,
    key_hi,
    n_keys,
    qk_scale,
    BLOCK_N: tl.constexpr,
    MASKED: tl.constexpr,
    CAUSAL: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    USE_TMA: tl.constexpr,
):
    """Accumulate dQ (unscaled) of one query tile over key tiles [key_lo, key_hi)."""
    for start_n in range(key_lo, key_hi, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        cols = start_n + offs_n
        if USE_TMA:
            k = k_ptrs.load([start_n, 0])
            v = v_ptrs.load([start_n, 0])
        elif MASKED:
            key_in = (cols < n_keys)[:, None]
            k = tl.load(k_ptrs + start_n * stride_kt, mask=key_in, other=0.0)
            v = tl.load(v_ptrs + start_n * stride_vt, mask=key_in, other=0.0)
        else:
            k = tl.load(k_ptrs + start_n * stride_kt)
            v = tl.load(v_ptrs + start_n * stride_vt)
        scores = (
            tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale
        )  # (BLOCK_M, BLOCK_N), log2 units
        probs = tl.math.exp2(scores - lse2[:, None])  # P recomputed from L
        if MASKED:
            keep = cols[None, :] < n_keys
            if CAUSAL:
                keep = keep & (rows[:, None] >= cols[None, :])
            probs = tl.where(keep, probs, 0.0)
        dprobs = tl.dot(do, tl.trans(v), input_precision=DOT_PRECISION)  # dP = dO V^T
        dscores = probs * (dprobs - delta[:, None])  # dS = P * (dP - D)
        dq = tl.dot(
            dscores.to(k.dtype), k, dq, input_precision=DOT_PRECISION
        )  # dQ += dS K (scaled by the caller)
    return dq


@triton.jit(do_not_specialize=["SHAPE_BUCKET"])
def _attn_bwd_dq_kernel(
    Q,
    K,
    V,
    DO,
    O,
    LSE,
    LSE2,  # written here: L * log2(e) of this program's query rows, for the dK/dV kernel
    DELTA,  # written here: D of those rows
    DQ,
    stride_qb,
    stride_qh,
    stride_qt,
    stride_qd,
    stride_kb,
    stride_kh,
    stride_kt,
    stride_kd,
    stride_vb,
    stride_vh,
    stride_vt,
    stride_vd,
    stride_dob,
    stride_doh,
    stride_dot,
    stride_dod,
    stride_ob,
    stride_oh,
    stride_ot,
    stride_od,
    stride_dqb,
    stride_dqh,
    stride_dqt,
    stride_dqd,
    n_heads,
    n_queries,
    n_keys,
    stats_stride,
    qk_scale,
    sm_scale,
    SHAPE_BUCKET,
    HEAD_DIM: tl.constexpr,
    CAUSAL: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    USE_TMA: tl.constexpr,
):
    tile_m = tl.program_id(0)
    if CAUSAL:  # the last query tiles see the most keys: start them first
        tile_m = tl.num_programs(0) - 1 - tile_m
    bh = tl.program_id(1).to(tl.int64)
    batch, head = bh // n_heads, bh % n_heads
    start_m = tile_m * BLOCK_M
    rows = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    row_in = rows < n_queries
    Q += batch * stride_qb + head * stride_qh
    DO += batch * stride_dob + head * stride_doh
    q = tl.load(
        Q + rows[:, None] * stride_qt + offs_d[None, :] * stride_qd, mask=row_in[:, None], other=0.0
    )
    do = tl.load(
        DO + rows[:, None] * stride_dot + offs_d[None, :] * stride_dod,
        mask=row_in[:, None],
        other=0.0,
    )
    lse2 = (
        tl.load(LSE + bh * n_queries + rows, mask=row_in, other=float("inf")) * 1.4426950408889634
    )
    # D = rowsum(dO * O) of these rows, formed here where dO is loaded anyway, and stored with L in
    # log2 units for the dK/dV kernel, which runs after this one: one launch fewer than a kernel
    # of its own.
    O += batch * stride_ob + head * stride_oh
    o = tl.load(
        O + rows[:, None] * stride_ot + offs_d[None, :] * stride_od,
        mask=row_in[:, None],
        other=0.0,
    )
    delta = tl.sum(do.to(tl.float32) * o.to(tl.float32), axis=1)
    _store_row_stats(LSE2, DELTA, bh, stats_stride, rows, lse2, delta, row_in)
    K += batch * stride_kb + head * stride_kh
    V += batch * stride_vb + head * stride_vh
    k_ptrs, v_ptrs = _streamed_tiles(
        K, V, n_keys, stride_kt, stride_vt, stride_kd, stride_vd, offs_n, offs_d,
        BLOCK_N, HEAD_DIM, USE_TMA,
    )  # fmt: skip

    dq = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    if CAUSAL:
        dq = _attn_bwd_dq_key_loop(
            dq, q, do, lse2, delta, k_ptrs, v_ptrs, stride_kt, stride_vt, rows, offs_n,
            0, start_m, n_keys, qk_scale, BLOCK_N, False, CAUSAL, DOT_PRECISION, USE_TMA,
        )  # fmt: skip
        dq = _attn_bwd_dq_key_loop(
            dq, q, do, lse2, delta, k_ptrs, v_ptrs, stride_kt, stride_vt, rows, offs_n,
            start_m, tl.minimum(start_m + BLOCK_M, n_keys), n_keys, qk_scale, BLOCK_N, True, CAUSAL,
            DOT_PRECISION, USE_TMA,
        )  # fmt: skip
    else:
        full_end = (n_keys // BLOCK_N) * BLOCK_N
        dq = _attn_bwd_dq_key_loop(
            dq, q, do, lse2, delta, k_ptrs, v_ptrs, stride_kt, stride_vt, rows, offs_n,
            0, full_end, n_keys, qk_scale, BLOCK_N, False, CAUSAL, DOT_PRECISION, USE_TMA,
        )  # fmt: skip
        if full_end < n_keys:
            dq = _attn_bwd_dq_key_loop(
                dq, q, do, lse2, delta, k_ptrs, v_ptrs, stride_kt, stride_vt, rows, offs_n,
                full_end, n_keys, n_keys, qk_scale, BLOCK_N, True, CAUSAL, DOT_PRECISION, USE_TMA,
            )  # fmt: skip

    dq *= sm_scale  # dQ = dS K / sqrt(d)
    DQ += batch * stride_dqb + head * stride_dqh
    tl.store(
        DQ + rows[:, None] * stride_dqt + offs_d[None, :] * stride_dqd,
        dq.to(DQ.dtype.element_ty),
        mask=row_in[:, None],
    )


# --------------------------------------------------------------------------------------------
# Tile configurations and autotuning
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TileConfig:
    """One launch shape: tile sides, warps per program and software-pipelining depth."""

    block_m: int
    block_n: int
    num_warps: int = 4
    num_stages: int = 1

    def kwargs(self) -> dict:
        return dict(
            BLOCK_M=self.block_m,
            BLOCK_N=self.block_n,
            num_warps=self.num_warps,
            num_stages=self.num_stages,
        )


@dataclass(frozen=True)
class FlashConfig:
    """Explicit tiles for all three kernels (the autotuner picks them when this is not given).

    Needs fwd.block_m % fwd.block_n == 0, dkdv.block_n % dkdv.block_m == 0 and
    dq.block_m % dq.block_n == 0: the causal diagonal band of a tile is a whole number of the
    other side's tiles.
    """

    fwd: TileConfig
    dkdv: TileConfig
    dq: TileConfig
    # dQ added up in float32 inside the dK/dV kernel (dq tiles unused): by the Triton kernel,
    # or with gluon_backward=True by the Gluon one (head_dim 64 over 4 warps)
    fused_dq: bool = False
    tma: bool | None = None  # streamed tiles by tensor descriptors; None: on Hopper and newer
    # The two-kernel backward by the Gluon kernels (flash_attention_gluon.py) with the dq and
    # dkdv tiles: True forces them (Hopper, 16-bit inputs, 16-byte aligned rows; else an error);
    # None leaves explicit configs on Triton (the autotuned path picks, see GLUON_BACKWARD).
    gluon_backward: bool | None = None
    # The forward by the Gluon kernel with the fwd tile (block_m = 16 rows per warp; block_n may
    # exceed block_m): True forces it (same needs as gluon_backward), None leaves explicit configs
    # on Triton (the autotuned path picks, see GLUON_FORWARD).
    gluon_forward: bool | None = None
    # With gluon_forward=True: the fwd tile as FlashAttention-3's ping-pong forward instead
    # (block_m = 128 queries over two 4-warp consumer warpgroups, num_warps = 8, which take turns
    # on the tensor cores, plus a producer warp; the autotuned path: GLUON_PINGPONG).
    gluon_pingpong: bool = False
    # Query tiles per copy in the Gluon dK/dV kernel: each of its dkdv.num_stages buffers holds
    # this many dkdv.block_m-row tiles (the autotuned path: GLUON_DKDV_QUERY_TILES, or with the
    # fused dQ from GLUON_FUSED_WIDE_MIN_QUERIES queries GLUON_FUSED_DKDV_QUERY_TILES).
    gluon_dkdv_query_tiles: int = 1

    def check(self) -> None:
        for name, tile in (("fwd", self.fwd), ("dkdv", self.dkdv), ("dq", self.dq)):
            if tile.block_m < 16 or tile.block_n < 16:
                raise ValueError(f"{name} tiles must be at least 16 x 16, got {tile}")
        if self.gluon_pingpong:
            if not self.gluon_forward:
                raise ValueError("gluon_pingpong=True is a Gluon forward: set gluon_forward=True")
            if (self.fwd.block_m, self.fwd.num_warps) != (128, 8):
                raise ValueError(
                    "the ping-pong forward needs fwd.block_m = 128 over num_warps = 8 (two "
                    f"warpgroups of 64 queries), got {self.fwd}"
                )
        if self.gluon_forward:  # masks its diagonal band per element: any block_n
            if self.fwd.block_m != 16 * self.fwd.num_warps:
                raise ValueError(
                    f"the Gluon forward needs fwd.block_m = 16 rows per warp, got {self.fwd}"
                )
        elif self.fwd.block_m % self.fwd.block_n:
            raise ValueError(f"fwd.block_m must be a multiple of fwd.block_n, got {self.fwd}")
        if self.dkdv.block_n % self.dkdv.block_m:
            raise ValueError(f"dkdv.block_n must be a multiple of dkdv.block_m, got {self.dkdv}")
        if self.dq.block_m % self.dq.block_n:
            raise ValueError(f"dq.block_m must be a multiple of dq.block_n, got {self.dq}")
        if self.gluon_dkdv_query_tiles < 1:
            raise ValueError(
                f"gluon_dkdv_query_tiles must be at least 1, got {self.gluon_dkdv_query_tiles}"
            )


# Small tiles for the CPU interpreter: several tiles per sequence even at seq <= 128, and the
# unequal sides exercise the band logic the way the GPU's 128 x 64 tiles do.
INTERPRETER_CONFIG = FlashConfig(
    fwd=TileConfig(32, 16), dkdv=TileConfig(16, 32), dq=TileConfig(32, 16)
)


def default_config(head_dim: int, dtype: torch.dtype) -> FlashConfig:
    """Good tiles without tuning (the GPU tests use these; the autotuner also tries others)."""
    if dtype == torch.float32:  # 4-byte elements: half the tile area fits in shared memory
        return FlashConfig(
            TileConfig(64, 32, 4, 3), TileConfig(32, 64, 4, 2), TileConfig(64, 32, 4, 2)
        )
    return FlashConfig(
        TileConfig(64, 64, 4, 3), TileConfig(64, 64, 4, 3), TileConfig(128, 64, 8, 3)
    )


def _configs(tiles):
    """(BLOCK_M, BLOCK_N, num_warps, num_stages[, maxnreg]) tuples as triton.Configs."""
    return [
        triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=w, num_stages=s, maxnreg=cap)
        for m, n, w, s, cap in (tuple(tile) + (None,) * (5 - len(tile)) for tile in tiles)
    ]


# (BLOCK_M, BLOCK_N, num_warps, num_stages): the fastest few of a wider sweep on an H100
# (benchmarks/bench_flash_tiles.py, B1 H16 T16K D64 and B4 H16 T4K D128, bf16, causal), plus
# small tiles for float32. Each config costs a compile (~1 s) the first time a (head_dim, dtype)
# is seen, and a few timed runs per autotuning key.
_FWD_CONFIGS = _configs(
    [
        (128, 128, 8, 3),  # best for D128 at 4K tokens (0.579 ms, 474 TFLOP/s, 2nd sweep)
        (64, 64, 4, 4),  # best for D64 at 16K tokens (1.267 ms, 2nd sweep)
        (128, 64, 8, 3),
        (64, 64, 4, 3),
        (128, 64, 8, 4),
        (64, 32, 4, 3),
        # Capped at 128 registers, two programs fit on an SM and one's softmax runs beside the
        # other's matrix products (D64 at 16K: 1.30 ms vs 1.33-1.36 for 128 x 64; uncapped this
        # tile takes 1.9 ms). At D128 the cap spills and the tuner passes it over.
        (128, 128, 8, 2, 128),
    ]
)
_DKDV_CONFIGS = _configs([(64, 64, 4, 3), (64, 64, 4, 2), (32, 64, 4, 2), (64, 128, 8, 3)])
_DQ_CONFIGS = _configs([(128, 64, 8, 3), (64, 64, 4, 3), (64, 32, 4, 3)])


def _shared_memory_bytes(config: triton.Config, head_dim: int, elem_bytes: int) -> int:
    """Rough shared memory of a config: the resident tile plus num_stages copies of two
    streamed tiles (K and V, or Q and dO)."""
    m, n = config.kwargs["BLOCK_M"], config.kwargs["BLOCK_N"]
    resident, streamed = max(m, n), min(m, n)
    return (resident + 2 * streamed * max(config.num_stages, 1)) * head_dim * elem_bytes


@functools.cache
def _shared_memory_limit(device: torch.device) -> int:
    """Shared memory one block may use on `device` (a config over it cannot launch; one the
    estimate lets through but the compiler finds too big is skipped by the autotuner)."""
    hopper = 227 * 1024
    if device.type != "cuda":
        return hopper
    properties = torch.cuda.get_device_properties(device)
    return getattr(properties, "shared_memory_per_block_optin", hopper)


def _prune(configs, named_args, **kwargs):
    """Drop configs whose tiles cannot fit in shared memory for this head_dim and dtype."""
    head_dim = kwargs.get("HEAD_DIM", named_args.get("HEAD_DIM"))
    elem_bytes = named_args["Q"].element_size()
    limit = _shared_memory_limit(named_args["Q"].device)  # H100: 227 KB per block
    kept = [c for c in configs if _shared_memory_bytes(c, head_dim, elem_bytes) <= limit]
    if elem_bytes == 4:  # float32 tiles are twice the bytes: keep the smaller ones
        kept = [c for c in kept if c.kwargs["BLOCK_M"] * c.kwargs["BLOCK_N"] <= 128 * 64] or kept
    return kept or configs[-1:]


# Backward strategy when no config is given:
# - False, two kernels: a dQ kernel of its own recomputes P (seven matrix products per tile
#   pair); every gradient is written once, so results are bitwise reproducible.
# - True, fused dQ: the dK/dV kernel also forms dS K and adds it into a float32 dQ (five
#   products); the additions land in a varying order, so the last bits vary from run to run.
# - None: time both on the first call per autotuning key and keep the faster. On the H100 the
#   two kernels win at 16K tokens and head_dim 64 since L and D come by descriptor (3.51 vs
#   3.75 ms), at head_dim 128 and up to 2K tokens; the fused one won at 8K D32/D16 in the fourth
#   session. As for PyTorch's own attention backward, torch.use_deterministic_algorithms(True)
#   rules the fused one out.
FUSED_DQ: bool | None = None

# Each candidate runs this long before it is timed (Triton's default is 25 ms). A GPU that was
# idle while the candidate compiled runs at higher clocks for a while: with a short warm-up the
# first configs measured look faster than they are under sustained load. On the H100 at
# B1 H16 T16K D64 the forward tuner then picked a config 3% slower than the best in 1 of 4
# fresh tunings (this warm-up: the best in 4 of 4; 2.1 s per key instead of 0.9 s).
TUNING_WARMUP_MS = 200


def _tuning_bench(fn, quantiles=None):
    """Median time of `fn` (or the given quantiles) after TUNING_WARMUP_MS of running it: how the
    autotuners and `_faster_backward` time their candidates."""
    return triton.testing.do_bench(
        fn, warmup=TUNING_WARMUP_MS, rep=100, quantiles=quantiles, return_mode="median"
    )


_TUNE_KEY = ["HEAD_DIM", "CAUSAL", "SHAPE_BUCKET"]  # the autotuner adds the tensors' dtypes
_TUNER = dict(prune_configs_by={"early_config_prune": _prune}, do_bench=_tuning_bench)
_fwd_tuned = triton.autotune(_FWD_CONFIGS, key=_TUNE_KEY, cache_results=True, **_TUNER)(
    _attn_fwd_kernel
)
_dkdv_tuned = triton.autotune(_DKDV_CONFIGS, key=_TUNE_KEY, cache_results=True, **_TUNER)(
    _attn_bwd_dkdv_kernel
)
_dkdv_fused_tuned = triton.autotune(
    _DKDV_CONFIGS,
    key=_TUNE_KEY,
    cache_results=True,
    reset_to_zero=["DQ_ACC"],  # each timed run adds into the accumulator
    **_TUNER,
)(_attn_bwd_dkdv_kernel)
_dq_tuned = triton.autotune(_DQ_CONFIGS, key=_TUNE_KEY, cache_results=True, **_TUNER)(
    _attn_bwd_dq_kernel
)


# (id(tuner), key) -> the chosen config and its launch keyword arguments (built once: they are
# passed on every call).
_chosen_configs: dict[tuple, tuple[triton.Config, dict]] = {}


# autotuning key -> whether the fused-dQ backward was the faster one there
_fused_backward_faster: dict[tuple, bool] = {}
# autotuning key -> whether the ping-pong forward beat the tuned Triton forward there
_pingpong_forward_faster: dict[tuple, bool] = {}


# The order the two strategies are timed in: A B B A, so that a clock drifting through the
# timing (the H100 at its power cap at long sequences) weighs on both alike. Timed once each
# (A B), the second one timed often came out slower or faster by more than the 3% between the
# Gluon pair and the Gluon fused dQ at 16K D64, and the slower one was picked.
_STRATEGY_TIMING_ORDER = (False, True, True, False)


def _second_is_faster(memo: dict, key: tuple, launch: Callable[[bool], None]) -> bool:
    """Whether launch(True) runs faster than launch(False) for this key: timed once per key
    (after each has tuned its tiles), remembered in `memo`."""
    faster = memo.get(key)
    if faster is None:
        total = {False: 0.0, True: 0.0}
        for second in _STRATEGY_TIMING_ORDER:
            if total[second] == math.inf:
                continue
            try:
                total[second] += _tuning_bench(functools.partial(launch, second))
            except OutOfResources:  # e.g. no fused tile fits (float32 at head_dim 64, H100)
                total[second] = math.inf
        faster = memo[key] = total[True] < total[False]
    return faster


def _faster_backward(key: tuple, launch: Callable[[bool], None]) -> bool:
    """Whether the fused-dQ backward beats the two-kernel one for this key (~1.5 s, once)."""
    return _second_is_faster(_fused_backward_faster, key, launch)


def _launch_tuned(tuner, grid, args, constants: dict, key: tuple) -> None:
    """Launch an autotuned kernel. The autotuner runs on the first call per key; later calls
    launch the chosen config directly, skipping the autotuner's per-call argument bookkeeping
    (~0.1 ms of Python per launch, which dominates short sequences)."""
    chosen = _chosen_configs.get((id(tuner), key))
    if chosen is None:
        tuner[grid](*args, **constants)
        _chosen_configs[(id(tuner), key)] = tuner.best_config, tuner.best_config.all_kwargs()
    else:
        tuner.fn[grid](*args, **constants, **chosen[1])


@functools.lru_cache(maxsize=1024)
def _shape_bucket(batch_heads: int, n_queries: int, n_keys: int) -> int:
    """The autotuning key's view of a shape: the sequence length and batch*heads, each rounded
    up to a power of two (sequences capped at 64K, batch*heads at 1024), as
    100 * log2(seq) + log2(batch*heads): 1404 is 16K tokens over 16 (batch, head) pairs.

    Tiles that fill the GPU at 16K tokens and one head may idle it at 256 tokens and 2,048 heads,
    and the tiles chosen for a small shape (a smoke test, say) must not be reused for a large
    one, so both dimensions are in the key. A training run has one shape: one tuning."""
    seq = min(triton.next_power_of_2(max(n_queries, n_keys)), 1 << 16)
    rows = min(triton.next_power_of_2(batch_heads), 1 << 10)
    return 100 * (seq.bit_length() - 1) + rows.bit_length() - 1


def _dot_precision(dtype: torch.dtype) -> str:
    """How tl.dot multiplies float32 operands (16-bit operands ignore this).

    Plain TF32 keeps 10 mantissa bits, which costs float32 attention a ~2e-3 relative error.
    Unless PyTorch is told TF32 is fine for matmuls (torch.backends.cuda.matmul.allow_tf32),
    use 3xTF32: a split into high and low TF32 parts that restores float32 accuracy on the
    tensor cores at about three times the TF32 cost.
    """
    if dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32:
        return "tf32x3"
    return "tf32"


def _tune_key(q: torch.Tensor, shape_bucket: int, constants: dict) -> tuple:
    """What the autotuner keys on: head_dim, causal, shape bucket, dtype (and dot precision)."""
    return (*constants.values(), shape_bucket, q.dtype)


# Streamed tiles (K/V in the forward and dQ kernels, Q/dO in the dK/dV kernel) through tensor
# descriptors (TMA) on GPUs that have the copy engine.
USE_TMA = True
# From this many queries, the dK/dV kernel also streams L and D by descriptor (when USE_TMA does):
# on the H100 equal at 1,024, faster from 2,048.
STATS_TMA_MIN_QUERIES = 2048
# The two-kernel backward in Gluon (flash_attention_gluon.py), where it applies: Hopper, 16-bit
# inputs with aligned rows, head_dim 64, from STATS_TMA_MIN_QUERIES queries. On the H100 at
# B1 H16 T16K D64 causal (sustained do_bench, same process): dK/dV 1.93-1.96 ms against the
# Triton kernel's 2.02; the whole backward 3.37-3.46 against 3.55. At 4K and 8K tokens and at
# head_dim 32 the two are equal; at head_dim 128 the Gluon kernels are 8-12% slower.
# Tiles are (BLOCK_M, BLOCK_N, num_warps, num_stages); 4 stages, 128-key dK/dV tiles and 8-warp
# dQ tiles were slower. Since the ninth session the dK/dV kernel holds K and V in registers at
# these tiles (gluon_dkdv_layouts says where): backward 3.37 against 3.49 ms at 16K D64.
GLUON_BACKWARD = True
GLUON_DQ_TILE = (64, 128, 4, 3)
GLUON_DKDV_TILE = (64, 64, 4, 2)
# Query tiles per copy in the Gluon dK/dV kernel: two 64-row tiles per copy, mbarrier wait and
# CTA barriers take its unmasked loop from 321 to 261 instructions per tile (bitwise-equal
# results); at 16K D64 the kernel took 1.931-2.039 ms (median 1.95) against 1.960-2.059 (1.99)
# with one tile per copy and three buffers (seventh session, probe 7: two runs of three rounds).
# Three buffers of two tiles hold one program per SM and take 2.6 ms.
GLUON_DKDV_QUERY_TILES = 2
# The fused-dQ strategy's dK/dV tile on the Gluon path, from GLUON_FUSED_WIDE_MIN_QUERIES
# queries: 128 keys over 8 warps (two warpgroups of 64 keys share every copy of Q and dO, and
# dQ^T's columns: one 64 x 64 float32 part per query tile for 128 keys instead of 64), four
# 64-query tiles per copy in two buffers (180 KiB of shared memory, 254 registers, one program
# per SM), so the copies, the mbarrier wait and the refill's barriers come once per four tiles.
# Eleventh session, probe 5, backward (fused, same process, medians of 10 and 4 timings) against
# the 64 x 64 / 4 warps / 2 x 2 tiles: B1 H16 T16K 3.104 vs 3.256 ms, B2 H16 T8K 1.714 vs
# 1.773, B1 H1 T32K 0.738 vs 0.793, B1 H16 T16411 3.211 vs 3.851; at B4 H16 T4K slower, 1.015
# vs 0.986 (short query loops: fewer tiles per copy-sized step), hence the threshold. With 3 or
# 4 buffers of two tiles: 3.276 and 3.177 ms at 16K.
GLUON_FUSED_DKDV_TILE = (64, 128, 8, 2)
GLUON_FUSED_DKDV_QUERY_TILES = 4
GLUON_FUSED_WIDE_MIN_QUERIES = 8192
GLUON_HEAD_DIMS = (64,)
# ... and only for calls with at least this many scores (batch * heads * T_q * T_k), where device
# time dominates: backward at B1 H1 (probe 8, same process) 0.33 vs 0.355 ms at 16K tokens
# (2^28 scores), 0.82-0.83 vs 0.90 at 32K; at 4K-8K (host-bound, 0.15-0.28 ms either way) the
# Gluon pair was no faster and at 4K slightly slower.
GLUON_MIN_SCORES = 2**28
# The forward in Gluon (same conditions; 16-bit only): one warpgroup per 64-query tile, 128-key
# tiles in two buffers, 157 registers, so three programs share an SM and one's softmax runs
# beside another's products. On the H100 (eighth session, probes 1-2, same process) at B1 H16
# T16K D64 causal: 1.213-1.267 ms against the Triton forward's 1.289-1.301 and cuDNN's
# 1.243-1.284; non-causal 2.26-2.30 vs 2.47-2.51 (cuDNN 2.35-2.41); faster than Triton at every
# D64 shape tried from 2^28 scores (4K-32K tokens). Sustained (probe 7b, 20 interleaved rounds):
# forward 1.289 vs 1.308 (cuDNN 1.299), fwd+bwd level with the Triton forward's (4.739 vs 4.750):
# the H100 runs these at its 700 W cap and clocks this kernel lower (1815 vs 1928 MHz). With
# FlashAttention-3's intra-warpgroup overlap it took 1.31-1.34; with 64-key tiles 1.36-1.39; at
# head_dim 128 (64-key tiles) 0.64-0.66 against Triton's 0.59-0.61.
GLUON_FORWARD = True
GLUON_FWD_TILE = (64, 128, 4, 2)
# At these head_dims (same conditions) the forward is FlashAttention-3's ping-pong
# (flash_attention_gluon.py, attn_fwd_gluon_pingpong): 128-query programs of two consumer
# warpgroups that take turns on the tensor cores, so that one's softmax runs while the other's
# products do, and a producer warp for the copies; 128-key tiles in three buffers (224 KiB).
# On the H100 (twelfth session, probe 3, same process) at B4 H16 T4K D128 bf16: causal
# 0.587 ms (469 TFLOP/s) against the Triton forward's 0.608 (452) and cuDNN's 0.538 (511);
# non-causal 0.992 (554) against 1.034 (532) and 0.934 (589). Slower than GLUON_FWD_TILE at D64
# (1.33 vs 1.26 ms at B1 H16 T16K), where the one-warpgroup programs already overlap. At other
# D128 shapes (probe 4, TFLOP/s, ping-pong / Triton / cuDNN): B1 H16 T16K 600 / 545 / 559,
# B2 H16 T8K 545 / 504 / 543, B1 H1 T32K 636 / 587 / 461, B8 H16 T2K 388 / 387 / 478, but
# B16 H16 T1K 269 / 315 / 420 (short programs: its fixed cost per program is higher) and
# B1 H1 T16K 347 / 402 / 338 (one wave: the longest program sets the time). So the autotuned
# path times it against the tuned Triton forward once per autotuning key and keeps the faster.
GLUON_PINGPONG = True
GLUON_PINGPONG_HEAD_DIMS = (128,)
GLUON_PINGPONG_TILE = (128, 128, 8, 3)


def _gluon_applies(*tensors: torch.Tensor, head_dims: tuple[int, ...] | None = None) -> bool:
    """Whether the autotuned path takes the Gluon kernels for these (B, H, T, D) tensors (the
    first two q and k): head_dim (in `head_dims`, by default GLUON_HEAD_DIMS as it is at the
    call), call size and the kernels' input needs."""
    return (
        tensors[0].shape[-1] in (GLUON_HEAD_DIMS if head_dims is None else head_dims)
        and math.prod(tensors[0].shape[:3]) * tensors[1].shape[2] >= GLUON_MIN_SCORES
        and gluon_supported(*tensors)
    )


def _require_gluon(flag: str, *tensors: torch.Tensor) -> None:
    """Check that a config forcing the Gluon kernels (`flag`) can have them."""
    if GLUON_IMPORT_ERROR is not None:
        raise ValueError(
            f"config.{flag}=True needs Triton's Gluon, which failed to import "
            f"with this Triton {triton.__version__}: {GLUON_IMPORT_ERROR!r}"
        )
    if not gluon_supported(*tensors):
        raise ValueError(
            f"config.{flag}=True needs a Hopper GPU and bf16/fp16 tensors with unit head_dim "
            "stride and 16-byte aligned rows"
        )
    _ensure_tma_allocator()  # the Gluon kernels build their descriptors on the device


def _gluon_forward_tile(config: FlashConfig | None, *tensors: torch.Tensor):
    """The Gluon forward for this call, as (launcher, (BLOCK_M, BLOCK_N, num_warps,
    num_stages)), or None for the Triton kernel."""
    if config is not None:
        if not config.gluon_forward:
            return None
        _require_gluon("gluon_forward", *tensors)
        tile = config.fwd
        launcher = attn_fwd_gluon_pingpong if config.gluon_pingpong else attn_fwd_gluon
        return launcher, (tile.block_m, tile.block_n, tile.num_warps, tile.num_stages)
    if GLUON_PINGPONG and _gluon_applies(*tensors, head_dims=GLUON_PINGPONG_HEAD_DIMS):
        _ensure_tma_allocator()
        return attn_fwd_gluon_pingpong, GLUON_PINGPONG_TILE
    if GLUON_FORWARD and _gluon_applies(*tensors):
        _ensure_tma_allocator()
        return attn_fwd_gluon, GLUON_FWD_TILE
    return None


class _GluonBackwardTiles(NamedTuple):
    """The Gluon backward kernels' launch shapes, (BLOCK_M, BLOCK_N, num_warps, num_stages) for
    each, and the dK/dV kernel's query tiles per copy, for each of the two strategies."""

    dq: tuple[int, int, int, int]  # the two-kernel strategy's dQ kernel
    dkdv: tuple[int, int, int, int]  # ... and its dK/dV kernel
    query_tiles: int
    fused_dkdv: tuple[int, int, int, int]  # the dK/dV kernel that also forms dQ
    fused_query_tiles: int


def _gluon_backward_tiles(
    config: FlashConfig | None, n_queries: int, *tensors: torch.Tensor
) -> _GluonBackwardTiles | None:
    """The Gluon backward kernels' tiles for this call, or None for the Triton kernels. A
    config's dkdv tile serves both strategies."""
    if config is not None and config.gluon_backward is not None:
        if not config.gluon_backward:
            return None
        _require_gluon("gluon_backward", *tensors)
        dq_tile, dkdv_tile = (
            (t.block_m, t.block_n, t.num_warps, t.num_stages) for t in (config.dq, config.dkdv)
        )
        query_tiles = config.gluon_dkdv_query_tiles
        return _GluonBackwardTiles(dq_tile, dkdv_tile, query_tiles, dkdv_tile, query_tiles)
    automatic = (
        config is None
        and GLUON_BACKWARD
        and n_queries >= STATS_TMA_MIN_QUERIES
        and _gluon_applies(*tensors)
    )
    if not automatic:
        return None
    _ensure_tma_allocator()
    if n_queries >= GLUON_FUSED_WIDE_MIN_QUERIES:
        fused = GLUON_FUSED_DKDV_TILE, GLUON_FUSED_DKDV_QUERY_TILES
    else:
        fused = GLUON_DKDV_TILE, GLUON_DKDV_QUERY_TILES
    return _GluonBackwardTiles(GLUON_DQ_TILE, GLUON_DKDV_TILE, GLUON_DKDV_QUERY_TILES, *fused)


def _resolve_tma(config: FlashConfig | None, *streamed: torch.Tensor) -> bool:
    """Whether the streamed tensors go through tensor descriptors: the config's choice, or when
    it leaves that open, on a GPU with TMA. Either way only when every tile starts on a 16-byte
    boundary, which the copy engine requires: a view that starts one element into its storage,
    or rows an odd number of elements apart, takes the pointer path (or, forced, an error)."""
    automatic = config is None or config.tma is None
    if automatic:
        first = streamed[0]
        if not (USE_TMA and first.is_cuda and _has_tma(first.device.index)):
            return False
    elif not config.tma:
        return False
    if not all(map(_tiles_16_byte_aligned, streamed)):
        if automatic:
            return False
        raise ValueError(
            "config.tma=True needs q, k, v (and grad_out) whose base address and batch, head "
            "and row strides are multiples of 16 bytes; leave tma=None to fall back to pointers"
        )
    if streamed[0].is_cuda:  # descriptors built on the device need Triton's scratch allocator
        _ensure_tma_allocator()
    return True


def _tiles_16_byte_aligned(t: torch.Tensor) -> bool:
    """A (B, H, T, D) tensor's base address and its batch, head and row strides are multiples of
    16 bytes (the head_dim stride is 1), so every (batch, head) slice and every row is too."""
    size = t.element_size()
    batch_stride, head_stride, row_stride, _ = t.stride()
    return not (
        t.data_ptr() % 16 or batch_stride * size % 16 or head_stride * size % 16
        or row_stride * size % 16
    )  # fmt: skip


@functools.cache
def _has_tma(device_index: int | None) -> bool:
    return torch.cuda.get_device_capability(device_index)[0] >= 9  # Hopper and newer


# stream handle -> the scratch buffer of the kernels launched on that stream.
_scratch_buffers: dict[int, torch.Tensor] = {}


def _scratch(size: int, alignment: int, stream: int) -> torch.Tensor:
    """Global scratch for the descriptors a kernel builds (128 bytes per descriptor per program).

    One buffer per stream, grown when a launch needs more: kernels on one stream run one after
    another, so each may reuse the memory of the one before, and a launch saves an allocation
    (~5 us of host time, three times per forward + backward)."""
    if torch.cuda.is_current_stream_capturing():
        # A CUDA graph's memory belongs to its pool: keeping it here for eager launches (on a
        # stream that may reuse the capture stream's handle) could share it with the graph.
        return torch.empty(max(size, 1 << 16), dtype=torch.int8, device="cuda")
    buffer = _scratch_buffers.get(stream)
    if buffer is None or buffer.numel() < size:
        buffer = torch.empty(max(size, 1 << 16), dtype=torch.int8, device="cuda")
        _scratch_buffers[stream] = buffer
    return buffer


def _ensure_tma_allocator() -> None:
    """Descriptors built inside a kernel live in a small global scratch buffer that Triton asks
    the host for at launch; give it PyTorch's caching allocator. Triton keeps the allocator in a
    ContextVar, so every thread needs it (autograd runs backward in a thread of its own); an
    allocator the caller set is left alone."""
    if _allocation._allocator.get() is _allocation._NULL_ALLOCATOR:
        triton.set_allocator(_scratch)


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


# --------------------------------------------------------------------------------------------
# Launchers
# --------------------------------------------------------------------------------------------


def _as_4d(t: torch.Tensor) -> torch.Tensor:
    """(B, T, D) -> (B, 1, T, D) view; the kernels want unit stride along head_dim."""
    if t.dim() == 3:
        t = t.unsqueeze(1)
    return t if t.stride(-1) == 1 else t.contiguous()


# (shapes, dtypes, devices, is_causal) of inputs that passed check_attention_inputs.
_valid_signatures: set[tuple] = set()


def _check_inputs_once(q, k, v, is_causal: bool) -> None:
    """check_attention_inputs, skipped for a signature it has passed before (everything it
    checks is in the signature): a training run calls with one signature thousands of times."""
    try:
        signature = (
            q.shape, k.shape, v.shape, q.dtype, k.dtype, v.dtype, q.device, k.device, v.device,
            bool(is_causal),
        )  # fmt: skip
    except AttributeError:  # not a tensor: let the full check name it
        signature = None
    if signature is None or signature not in _valid_signatures:
        check_attention_inputs(q, k, v, is_causal)
        if len(_valid_signatures) > 4096:
            _valid_signatures.clear()
        _valid_signatures.add(signature)


def _check_buffer(name, buffer, shape, dtype, device) -> None:
    if buffer.shape != shape or buffer.dtype != dtype or buffer.device != device:
        raise ValueError(
            f"{name} must be a {dtype} tensor of shape {tuple(shape)} on {device}, got "
            f"{buffer.dtype} {tuple(buffer.shape)} on {buffer.device}"
        )
    if not buffer.is_contiguous():
        raise ValueError(f"{name} must be contiguous")


def _strides(t: torch.Tensor) -> tuple[int, int, int, int]:
    return t.stride()  # (B, H, T, D) strides; one call, not four (it is per launch)


def flash_attention_triton_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    is_causal: bool = False,
    config: FlashConfig | None = None,
    out: torch.Tensor | None = None,
    lse: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the forward kernel. Returns (O like q, L float32 of shape q.shape[:-1]).

    `config` fixes the tiles; by default the autotuner picks them (on the GPU) or
    INTERPRETER_CONFIG is used (under TRITON_INTERPRET=1). `out` and `lse` may be given as
    contiguous buffers to write into (the tests poison them to prove every element is written).
    """
    _check_inputs_once(q, k, v, is_causal)
    q4, k4, v4 = _as_4d(q), _as_4d(k), _as_4d(v)
    batch, n_heads, n_queries, head_dim = q4.shape
    n_keys = k4.shape[2]
    if out is None:
        out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    if lse is None:
        lse = torch.empty(q.shape[:-1], dtype=torch.float32, device=q.device)
    _check_buffer("out", out, q.shape, q.dtype, q.device)
    _check_buffer("lse", lse, q.shape[:-1], torch.float32, q.device)
    out_buffer, lse_buffer = out, lse
    out = out.view(batch, n_heads, n_queries, head_dim)  # (B, H, T_q, D)
    lse = lse.view(batch, n_heads, n_queries)  # (B, H, T_q)
    sm_scale = head_dim**-0.5
    bucket = _shape_bucket(batch * n_heads, n_queries, n_keys)
    args = (
        q4, k4, v4, out, lse,
        *_strides(q4), *_strides(k4), *_strides(v4), *_strides(out),
        n_heads, n_queries, n_keys, sm_scale * LOG2E, bucket,
    )  # fmt: skip
    if config is None and _interpreting():
        config = INTERPRETER_CONFIG
    if config is not None:
        config.check()
    gluon = _gluon_forward_tile(config, q4, k4, v4, out)
    constants = dict(
        HEAD_DIM=head_dim,
        CAUSAL=is_causal,
        DOT_PRECISION=_dot_precision(q.dtype),
        USE_TMA=_resolve_tma(config, k4, v4),
    )
    key = _tune_key(q, bucket, constants)

    def launch(on_gluon: bool) -> None:
        if on_gluon:
            launcher, tile = gluon
            launcher(q4, k4, v4, out, lse, is_causal, sm_scale * LOG2E, *tile)
        elif config is None:

            def grid(meta):
                return (triton.cdiv(n_queries, meta["BLOCK_M"]), batch * n_heads)

            _launch_tuned(_fwd_tuned, grid, args, constants, key)
        else:
            grid = (triton.cdiv(n_queries, config.fwd.block_m), batch * n_heads)
            _attn_fwd_kernel[grid](*args, **constants, **config.fwd.kwargs())

    on_gluon = gluon is not None
    if on_gluon and config is None and gluon[0] is attn_fwd_gluon_pingpong:
        # The ping-pong wins on long sequences and loses on short ones and on a single wave
        # of programs (see GLUON_PINGPONG): timed against the tuned Triton forward, once per key.
        on_gluon = _second_is_faster(_pingpong_forward_faster, key, launch)
    launch(on_gluon)
    return out_buffer, lse_buffer


def flash_attention_triton_backward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    grad_out: torch.Tensor,
    is_causal: bool = False,
    config: FlashConfig | None = None,
    grads: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the backward kernels: dQ then dK/dV, or D then dK/dV with dQ fused in (`FUSED_DQ`,
    `config.fused_dq`). Returns (dQ, dK, dV) like q, k, v.

    `grads` may give contiguous (dQ, dK, dV) buffers to write into.
    """
    q4, k4, v4, o4, do4 = (_as_4d(t) for t in (q, k, v, out, grad_out.to(q.dtype)))
    batch, n_heads, n_queries, head_dim = q4.shape
    n_keys = k4.shape[2]
    lse = lse.reshape(batch, n_heads, n_queries).contiguous()
    # Per-row L * log2(e) and D for the dK/dV kernel, each row of the (B*H, T_q) statistics
    # padded to a multiple of 16 bytes, so that the kernel can stream them by tensor descriptor.
    stats_stride = triton.cdiv(n_queries, 4) * 4
    stats = torch.empty((2, batch * n_heads, stats_stride), dtype=torch.float32, device=q.device)
    lse2, delta = stats
    if grads is None:
        grads = tuple(torch.empty(t.shape, dtype=t.dtype, device=t.device) for t in (q, k, v))
    for name, buffer, like in zip(("dq", "dk", "dv"), grads, (q, k, v)):
        _check_buffer(name, buffer, like.shape, like.dtype, like.device)
    dq, dk, dv = (g.view(t.shape) for g, t in zip(grads, (q4, k4, v4)))  # (B, H, T, D) views
    sm_scale = head_dim**-0.5
    bucket = _shape_bucket(batch * n_heads, n_queries, n_keys)

    common = (
        n_heads,
        n_queries,
        n_keys,
        stats_stride,
        sm_scale * LOG2E,
        sm_scale,
        bucket,
    )
    if config is None and _interpreting():
        config = INTERPRETER_CONFIG
    if config is not None:
        config.check()
    use_tma = _resolve_tma(config, q4, k4, v4, do4)
    # L and D by descriptor cost each dK/dV program two more descriptors to build: worth it for
    # long query loops (16K D64 backward 9% faster, B2 H8 T4099 24%), not short ones (10-13%
    # slower at 256 queries). config.tma=True asks for descriptors everywhere.
    forced = config is not None and config.tma is True
    stats_tma = use_tma and (forced or n_queries >= STATS_TMA_MIN_QUERIES)
    gluon_tiles = _gluon_backward_tiles(config, n_queries, q4, k4, v4, do4, dq, dk, dv)
    constants = dict(
        HEAD_DIM=head_dim,
        CAUSAL=is_causal,
        DOT_PRECISION=_dot_precision(q.dtype),
        USE_TMA=use_tma,
    )
    key = _tune_key(q, bucket, constants)

    def launch(fused_dq: bool) -> None:
        dq_acc = dk  # a placeholder pointer unless dQ is accumulated with atomics
        if fused_dq:
            # No dQ kernel to form D and L * log2(e) on the way: a kernel of its own does.
            rows_block = 64
            _attn_bwd_row_stats_kernel[(triton.cdiv(n_queries, rows_block), batch * n_heads)](
                o4, do4, lse, lse2, delta, *_strides(o4), *_strides(do4), n_heads, n_queries,
                stats_stride, HEAD_DIM=head_dim, BLOCK_M=rows_block,
            )  # fmt: skip
        if gluon_tiles is not None:  # the backward in Gluon: dQ then dK/dV, or dK/dV and dQ
            scales = (stats_stride, sm_scale * LOG2E, sm_scale)
            if not fused_dq:
                attn_bwd_dq_gluon(
                    q4, k4, v4, do4, o4, lse, stats, dq, is_causal, *scales, *gluon_tiles.dq
                )  # fmt: skip
                dkdv_tile, query_tiles = gluon_tiles.dkdv, gluon_tiles.query_tiles
            else:
                dkdv_tile, query_tiles = gluon_tiles.fused_dkdv, gluon_tiles.fused_query_tiles
                # float32 dQ^T, (B, H, D, T) with its rows padded as the statistics' are
                dq_acc = torch.zeros(
                    (batch, n_heads, head_dim, stats_stride), dtype=torch.float32, device=q.device
                )
            attn_bwd_dkdv_gluon(
                q4, k4, v4, do4, stats, dk, dv, is_causal, *scales, *dkdv_tile, query_tiles,
                dq_acc=dq_acc if fused_dq else None,
            )  # fmt: skip
            if fused_dq:
                rows_block = 64
                _dq_from_transposed_kernel[(triton.cdiv(n_queries, rows_block), batch * n_heads)](
                    dq_acc, dq, head_dim * stats_stride, stats_stride, *dq.stride()[:3],
                    n_heads, n_queries, sm_scale, HEAD_DIM=head_dim, BLOCK_M=rows_block,
                )  # fmt: skip
            return  # the Triton kernels' arguments below are not needed
        if fused_dq:  # float32 accumulator: dQ itself when it is float32, else a scratch buffer
            dq_acc = (
                dq.zero_()
                if dq.dtype == torch.float32
                else torch.zeros_like(dq, dtype=torch.float32)
            )
        dkdv_args = (
            q4, k4, v4, do4, lse2, delta, dk, dv, dq_acc,
            *_strides(q4), *_strides(k4), *_strides(v4), *_strides(do4), *_strides(dk),
            *_strides(dv), *common,
        )  # fmt: skip
        # The dQ kernel's arguments, unless the fused strategy has no dQ kernel.
        dq_args = None if fused_dq else (
            q4, k4, v4, do4, o4, lse, lse2, delta, dq,
            *_strides(q4), *_strides(k4), *_strides(v4), *_strides(do4), *_strides(o4),
            *_strides(dq), *common,
        )  # fmt: skip
        dkdv_constants = dict(
            constants,
            FUSED_DQ=fused_dq,
            DQ_TMA_REDUCE=fused_dq and use_tma and not _interpreting(),
            STATS_TMA=stats_tma,
        )
        if config is None:

            def dq_grid(meta):
                return (triton.cdiv(n_queries, meta["BLOCK_M"]), batch * n_heads)

            def dkdv_grid(meta):
                return (triton.cdiv(n_keys, meta["BLOCK_N"]), batch * n_heads)

            if not fused_dq:  # the dQ kernel first: it writes the D that the dK/dV kernel reads
                _launch_tuned(_dq_tuned, dq_grid, dq_args, constants, key)
            tuner = _dkdv_fused_tuned if fused_dq else _dkdv_tuned
            _launch_tuned(tuner, dkdv_grid, dkdv_args, dkdv_constants, key)
        else:
            if not fused_dq:
                dq_grid = (triton.cdiv(n_queries, config.dq.block_m), batch * n_heads)
                _attn_bwd_dq_kernel[dq_grid](*dq_args, **constants, **config.dq.kwargs())
            dkdv_grid = (triton.cdiv(n_keys, config.dkdv.block_n), batch * n_heads)
            _attn_bwd_dkdv_kernel[dkdv_grid](*dkdv_args, **dkdv_constants, **config.dkdv.kwargs())
        if fused_dq and dq_acc.data_ptr() != dq.data_ptr():
            dq.copy_(dq_acc)

    if config is not None:
        fused_dq = config.fused_dq
    elif torch.are_deterministic_algorithms_enabled():
        fused_dq = False  # the fused dQ adds its tiles in a varying order
    elif FUSED_DQ is not None:
        fused_dq = FUSED_DQ
    else:
        fused_dq = _faster_backward(key, launch)
    launch(fused_dq)
    return grads


class FlashAttentionTriton(torch.autograd.Function):
    """FlashAttention-2 with Triton forward and backward kernels.

    `FlashAttentionTriton.apply(q, k, v, is_causal)` with q, k, v of shape (B, H, T, D) or
    (B, T, D) on a CUDA device (or on the CPU under TRITON_INTERPRET=1, slowly). Saves L
    (float32, q.shape[:-1]), q, k, v and O for the backward pass.
    """

    @staticmethod
    def forward(ctx, q, k, v, is_causal=False):
        out, lse = flash_attention_triton_forward(q, k, v, is_causal)
        ctx.save_for_backward(lse, q, k, v, out)
        ctx.is_causal = is_causal
        return out

    @staticmethod
    def backward(ctx, grad_out):
        lse, q, k, v, out = ctx.saved_tensors
        dq, dk, dv = flash_attention_triton_backward(q, k, v, out, lse, grad_out, ctx.is_causal)
        return dq, dk, dv, None
