"""The forward and the two backward kernels of FlashAttention-2 (dQ, then dK/dV) in Gluon, for
Hopper (sm_90).

Why a second language for them: in the Triton kernels each loop iteration runs its matrix
products and its softmax work one after the other. Triton waits for every product that is not a
loop-carried accumulator right after issuing it, so the exp2s never run while the tensor cores
work; only a second program on the same SM fills those gaps. Gluon (the lower-level dialect
shipped with Triton) lets a kernel say which product it waits for, which is what
FlashAttention-3 does inside one warpgroup. The dK/dV loop, per query tile:

    issue S^T  = K Q^T                        (tensor cores)
    issue dP^T = V dO^T                       (tensor cores, queued behind S^T)
    wait for S^T only -> P^T = exp2(S^T - L)   (exp units, while dP^T is computed)
    issue dV  += P^T dO
    wait for dP^T only -> dS^T = P^T (dP^T - D)   (while dV is accumulated)
    issue dK  += dS^T Q                       (left running into the next iteration)

and the dQ loop, per key tile: issue S = Q K^T and dP = dO V^T, wait for S only and run the
exp2s while dP is computed, then issue dQ += dS K and leave it running.

The streamed tiles (Q, dO, L, D for dK/dV; K, V for dQ) arrive through a ring of NUM_STAGES
shared-memory buffers filled by the copy engine (TMA), one mbarrier per buffer. A buffer is
refilled once the products that read it have retired, which the in-order completion of
warpgroup products tells: after the first wait of iteration i, everything issued in iteration
i - 1 is done. In the dK/dV kernel each buffer holds QUERY_TILES query tiles (two on the
autotuned path) that one iteration works through in turn: the copies, the mbarrier wait and
the CTA barriers around the refill are then paid once per two tiles. There K and V, fixed for
the whole program, are read into registers once and fed to S^T and dP^T from there, so those
products read only Q and dO from shared memory (KEYS_IN_REGISTERS, gluon_dkdv_layouts).

With FUSED_DQ the dK/dV kernel is the whole backward but for small kernels around it (the
row statistics before, dQ from its transpose after): per query tile it also stores dS^T to
shared memory, issues dQ^T = K^T dS^T (K^T a register operand like K and V) before dK, waits for
it alone and, while dK is computed, has the copy engine add it into a float32 dQ^T by one bulk
reduction, through two staging tiles. Five products per tile pair instead of the pair's seven,
one exp2 per score instead of two; at 16K D64 the backward took 3.30 ms against the pair's 3.39
(tenth session, probe 6).

Inputs are 16-bit (bf16 or fp16) with unit stride along head_dim and 16-byte aligned rows, as the
copy engine needs; flash_attention_triton.py decides when to use these kernels and keeps the
Triton ones for everything else. The mathematics is the Triton kernels', including the causal
diagonal band (masked) and the zero rows the copy engine returns past the end of a sequence.
Measured on the H100 (B1 H16 T16K D64 causal): the backward 3.37-3.46 ms against 3.55 with the
Triton kernels; equal at 4K-8K tokens and at head_dim 32; slower at head_dim 128. With K and V
in registers (ninth session): 3.37 against 3.49 ms in the same process, cuDNN 3.29.

The forward works differently: one product at a time (S = Q K^T, its softmax, then O += P~ V),
but with one warpgroup per 64-query program and 128-key tiles in two buffers it needs 157
registers and 72 KiB of shared memory, so three programs share an SM and one's softmax runs
while another's products do. At 16K D64 causal it took 1.21-1.27 ms against the Triton
forward's 1.29-1.30 and cuDNN's 1.24-1.28 (two runs). Written with FlashAttention-3's order
inside one warpgroup (issue S_j, then tile j - 1's P~V product, and run tile j's softmax beside
it) it was slower, 1.31-1.34 ms, at as many programs per SM (168 registers); why is not known.

PINGPONG: at head_dim 128 a program's tiles fill the SM alone (224 KiB of shared memory), so
no second program can fill its softmax gaps. The ping-pong forward (FlashAttention-3's) finds
the overlap inside the program. gl.warp_specialize splits it into three partitions:

    producer warp:         Q's two 64-row halves once, then K_j, V_j into a ring of 3 buffers
    consumer warpgroup 0:  rows [0, 64) of the 128-query tile
    consumer warpgroup 1:  rows [64, 128)

and each consumer, per key tile j:

    wait for K_j, V_j, and for its turn (mbarrier turn[w])
    issue S_j = Q K_j^T, then O += P~_{j-1} V_{j-1}     (one burst on the tensor cores)
    hand the turn to the other warpgroup                (its burst queues behind this one)
    wait for S_j only -> softmax of S_j, P~_j          (while P~V and the other's burst run)
    wait for P~V -> release buffer j - 1, rescale O

The turns alternate strictly, so one warpgroup's softmax always has the other's products
beside it. Each partition synchronises only through mbarriers: the CTA-wide barriers Triton's
membar pass would insert become per-partition named barriers inside warp_specialize, which is
what makes warpgroup-divergent hand-offs safe here. The producer drops to 24 registers
(setmaxnreg), the consumers rise to 240. On the H100 at B4 H16 T4K D128 causal it took 0.578-0.589
ms (466-476 TFLOP/s) against the Triton forward's 0.60-0.61 and cuDNN's 0.51-0.54 (twelfth
session); it loses on short sequences and single waves of programs, so flash_attention_triton.py
times it against the Triton forward once per autotuning key.
"""

from __future__ import annotations

import functools

import torch
import triton
from triton._C.libtriton import ir
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language._core import builtin
from triton.experimental.gluon.language.nvidia.hopper import (
    fence_async_shared,
    mbarrier,
    tma,
    warpgroup_mma,
    warpgroup_mma_init,
    warpgroup_mma_wait,
)


@builtin
def _async_add_shared_to_global(tensor_desc, coord, src, _semantic=None):
    """Add a shared-memory tile into global memory at `coord` by the copy engine (one bulk
    reduction, Hopper's cp.reduce.async.bulk.tensor). Gluon 3.6 builds this operation (its
    builder has it) but exposes no function for it; this is tma.async_copy_shared_to_global
    with an add. Like a store, it is waited for with tma.store_wait."""
    coord = _semantic._convert_to_ir_values(coord, require_i64=False)
    _semantic.builder.create_async_tma_reduce(
        ir.DESCRIPTOR_REDUCE_KIND.ADD, tensor_desc.handle, coord, src.handle
    )


@gluon.jit
def _head_tiles(
    X, batch, head, stride_b, stride_h, stride_t, n_rows, BLOCK: gl.constexpr,
    HEAD_DIM: gl.constexpr, LAYOUT: gl.constexpr,
):  # fmt: skip
    """A descriptor on the (BLOCK, HEAD_DIM) row tiles of one (batch, head) of a (B, H, T, D)
    tensor: the copy engine fills rows past n_rows with zeros."""
    return tma.make_tensor_descriptor(
        X + batch * stride_b + head * stride_h, [n_rows, HEAD_DIM], [stride_t, 1],
        [BLOCK, HEAD_DIM], LAYOUT,
    )  # fmt: skip


@gluon.jit
def _key_descriptors(
    K, V, batch, head, stride_kb, stride_kh, stride_kt, stride_vb, stride_vh, stride_vt, n_keys,
    BLOCK_N: gl.constexpr, HEAD_DIM: gl.constexpr, KEY_TILE_LAYOUT: gl.constexpr,
):  # fmt: skip
    """Descriptors on one (batch, head)'s K and V row tiles, which every kernel reads."""
    k_desc = _head_tiles(
        K, batch, head, stride_kb, stride_kh, stride_kt, n_keys, BLOCK_N, HEAD_DIM,
        KEY_TILE_LAYOUT,
    )  # fmt: skip
    v_desc = _head_tiles(
        V, batch, head, stride_vb, stride_vh, stride_vt, n_keys, BLOCK_N, HEAD_DIM,
        KEY_TILE_LAYOUT,
    )  # fmt: skip
    return k_desc, v_desc


@gluon.jit
def _head_descriptors(
    Q, DO, K, V, batch, head, stride_qb, stride_qh, stride_qt, stride_dob, stride_doh,
    stride_dot, stride_kb, stride_kh, stride_kt, stride_vb, stride_vh, stride_vt, n_queries,
    n_keys, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, HEAD_DIM: gl.constexpr,
    QUERY_TILE_LAYOUT: gl.constexpr, KEY_TILE_LAYOUT: gl.constexpr,
):  # fmt: skip
    """Descriptors on one (batch, head)'s query-side (Q, dO) and key-side (K, V) row tiles,
    which both backward kernels stream or keep."""
    q_desc = _head_tiles(
        Q, batch, head, stride_qb, stride_qh, stride_qt, n_queries, BLOCK_M, HEAD_DIM,
        QUERY_TILE_LAYOUT,
    )  # fmt: skip
    do_desc = _head_tiles(
        DO, batch, head, stride_dob, stride_doh, stride_dot, n_queries, BLOCK_M, HEAD_DIM,
        QUERY_TILE_LAYOUT,
    )  # fmt: skip
    k_desc, v_desc = _key_descriptors(
        K, V, batch, head, stride_kb, stride_kh, stride_kt, stride_vb, stride_vh, stride_vt,
        n_keys, BLOCK_N, HEAD_DIM, KEY_TILE_LAYOUT,
    )  # fmt: skip
    return q_desc, do_desc, k_desc, v_desc


@gluon.jit
def _head_rows(X, batch, head, stride_b, stride_h, stride_t, rows, cols):
    """Pointers to rows x cols of one (batch, head) of a (B, H, T, D) tensor (unit D stride)."""
    X += batch * stride_b + head * stride_h
    return X + gl.expand_dims(rows, 1) * stride_t + gl.expand_dims(cols, 0)


@gluon.jit
def _issue_query_tile(
    q_desc,
    do_desc,
    stats_desc,
    q_smem,
    do_smem,
    lse_smem,
    delta_smem,
    ready,
    j,
    n_iters,
    query_lo,
    bh,
    n_bh,
    BLOCK_M: gl.constexpr,
    NUM_STAGES: gl.constexpr,
    TILE_BYTES: gl.constexpr,
):
    """Start the copies of query tile j of this program's loop (Q, dO, L, D) into buffer
    j % NUM_STAGES; nothing when j is past the loop."""
    stage = j % NUM_STAGES
    start_m = query_lo + j * BLOCK_M
    valid = j < n_iters
    bar = ready.index(stage)
    mbarrier.expect(bar, TILE_BYTES, pred=valid)
    tma.async_copy_global_to_shared(q_desc, [start_m, 0], bar, q_smem.index(stage), pred=valid)
    tma.async_copy_global_to_shared(do_desc, [start_m, 0], bar, do_smem.index(stage), pred=valid)
    tma.async_copy_global_to_shared(
        stats_desc, [bh, start_m], bar, lse_smem.index(stage), pred=valid
    )
    tma.async_copy_global_to_shared(
        stats_desc, [n_bh + bh, start_m], bar, delta_smem.index(stage), pred=valid
    )


@gluon.jit
def _attn_bwd_dkdv_gluon_kernel(
    Q,
    K,
    V,
    DO,
    STATS,  # float32 (2, B*H, stats_stride): L * log2(e) rows, then D rows
    DK,
    DV,
    DQ_ACC,  # float32 (B, H, D, T_q rounded up to 4): dQ transposed, zeroed; FUSED_DQ only
    stride_qb,
    stride_qh,
    stride_qt,
    stride_kb,
    stride_kh,
    stride_kt,
    stride_vb,
    stride_vh,
    stride_vt,
    stride_dob,
    stride_doh,
    stride_dot,
    stride_dkb,
    stride_dkh,
    stride_dkt,
    stride_dvb,
    stride_dvh,
    stride_dvt,
    stride_dqb,
    stride_dqh,
    dq_row_stride,  # DQ_ACC's: its rows are dQ's head_dim columns
    n_heads,
    n_bh,
    n_queries,
    n_keys,
    stats_stride,
    qk_scale,
    sm_scale,
    HEAD_DIM: gl.constexpr,
    CAUSAL: gl.constexpr,
    BLOCK_M: gl.constexpr,
    BLOCK_N: gl.constexpr,
    NUM_STAGES: gl.constexpr,
    QUERY_TILES: gl.constexpr,  # query tiles per copy (each buffer holds this many)
    QUERY_TILE_LAYOUT: gl.constexpr,  # shared: (QUERY_TILES * BLOCK_M, HEAD_DIM) Q and dO
    KEY_TILE_LAYOUT: gl.constexpr,  # shared: (BLOCK_N, HEAD_DIM) tiles of K and V
    STATS_LAYOUT: gl.constexpr,  # shared: (1, QUERY_TILES * BLOCK_M) float32 rows of L and D
    SCORES_LAYOUT: gl.constexpr,  # registers: (BLOCK_N, BLOCK_M) products S^T and dP^T
    GRAD_LAYOUT: gl.constexpr,  # registers: (BLOCK_N, HEAD_DIM) accumulators dK and dV
    KEYS_IN_REGISTERS: gl.constexpr,  # K and V as register operands of S^T and dP^T
    FUSED_DQ: gl.constexpr,  # also dQ^T += K^T dS^T (unscaled), into DQ_ACC by the copy engine
    DSCORES_LAYOUT: gl.constexpr,  # shared: (BLOCK_N, BLOCK_M) dS^T, B operand of dQ^T
    DQ_TILE_LAYOUT: gl.constexpr,  # shared: (HEAD_DIM, BLOCK_M) float32 dQ^T parts
    DQ_LAYOUT: gl.constexpr,  # registers: (HEAD_DIM, BLOCK_M) the product K^T dS^T
    num_warps: gl.constexpr,
):
    dtype: gl.constexpr = Q.dtype.element_ty
    bh = gl.program_id(1)  # int32: a copy-engine coordinate below
    batch = bh.to(gl.int64) // n_heads  # int64: element offsets of a (batch, head) may pass 2^31
    head = bh.to(gl.int64) % n_heads
    start_n = gl.program_id(0) * BLOCK_N  # causal: low key tiles have the most queries, go first
    COPY_M: gl.constexpr = QUERY_TILES * BLOCK_M  # query rows per copy and per buffer

    # Per-(batch, head) descriptors: the copy engine fills rows past the end with zeros.
    q_desc, do_desc, k_desc, v_desc = _head_descriptors(
        Q, DO, K, V, batch, head, stride_qb, stride_qh, stride_qt, stride_dob, stride_doh,
        stride_dot, stride_kb, stride_kh, stride_kt, stride_vb, stride_vh, stride_vt, n_queries,
        n_keys, COPY_M, BLOCK_N, HEAD_DIM, QUERY_TILE_LAYOUT, KEY_TILE_LAYOUT,
    )  # fmt: skip
    stats_desc = tma.make_tensor_descriptor(
        STATS, [2 * n_bh, n_queries], [stats_stride, 1], [1, COPY_M], STATS_LAYOUT
    )

    k_smem = gl.allocate_shared_memory(dtype, [BLOCK_N, HEAD_DIM], KEY_TILE_LAYOUT)
    v_smem = gl.allocate_shared_memory(dtype, [BLOCK_N, HEAD_DIM], KEY_TILE_LAYOUT)
    q_smem = gl.allocate_shared_memory(dtype, [NUM_STAGES, COPY_M, HEAD_DIM], QUERY_TILE_LAYOUT)
    do_smem = gl.allocate_shared_memory(dtype, [NUM_STAGES, COPY_M, HEAD_DIM], QUERY_TILE_LAYOUT)
    lse_smem = gl.allocate_shared_memory(gl.float32, [NUM_STAGES, 1, COPY_M], STATS_LAYOUT)
    delta_smem = gl.allocate_shared_memory(gl.float32, [NUM_STAGES, 1, COPY_M], STATS_LAYOUT)
    ready = gl.allocate_shared_memory(gl.int64, [NUM_STAGES, 1], mbarrier.MBarrierLayout())
    keys_ready = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    for buffer in gl.static_range(NUM_STAGES):
        mbarrier.init(ready.index(buffer), count=1)
    mbarrier.init(keys_ready, count=1)
    if FUSED_DQ:
        # dQ is formed transposed, dQ^T = K^T dS^T: K^T, fixed for the program, is a register
        # operand and dS^T is read from shared memory as it is stored, so the product reads 8
        # KiB of shared memory per tile instead of 16 (dS K: dS and K both from there). Each
        # finished (HEAD_DIM, BLOCK_M) part goes through a float32 tile that the copy engine
        # adds into DQ_ACC, the (B, H, D, T) accumulator; columns past n_queries are dropped.
        dq_desc = tma.make_tensor_descriptor(
            DQ_ACC + batch * stride_dqb + head * stride_dqh, [HEAD_DIM, n_queries],
            [dq_row_stride, 1], [HEAD_DIM, BLOCK_M], DQ_TILE_LAYOUT,
        )  # fmt: skip
        dq_init = gl.zeros([HEAD_DIM, BLOCK_M], gl.float32, DQ_LAYOUT)  # ignored: use_acc=False

    # Queries before start_n see none of these keys (causal); the loop runs over the rest.
    query_lo = start_n if CAUSAL else 0
    n_iters = gl.cdiv(n_queries - query_lo, COPY_M)
    TILE_BYTES: gl.constexpr = 2 * COPY_M * HEAD_DIM * dtype.primitive_bitwidth // 8 + 8 * COPY_M

    mbarrier.expect(keys_ready, 2 * BLOCK_N * HEAD_DIM * dtype.primitive_bitwidth // 8)
    tma.async_copy_global_to_shared(k_desc, [start_n, 0], keys_ready, k_smem)
    tma.async_copy_global_to_shared(v_desc, [start_n, 0], keys_ready, v_smem)
    for j in gl.static_range(NUM_STAGES - 1):
        _issue_query_tile(
            q_desc, do_desc, stats_desc, q_smem, do_smem, lse_smem, delta_smem, ready, j,
            n_iters, query_lo, bh, n_bh, COPY_M, NUM_STAGES, TILE_BYTES,
        )  # fmt: skip

    query_cols_layout: gl.constexpr = gl.SliceLayout(0, SCORES_LAYOUT)  # one value per query
    key_rows_layout: gl.constexpr = gl.SliceLayout(1, SCORES_LAYOUT)  # one value per key
    # P^T and dS^T as the register (A) operand of the dV and dK products
    operand_layout: gl.constexpr = gl.DotOperandLayout(
        operand_index=0, parent=GRAD_LAYOUT, k_width=2
    )
    offs_m = gl.arange(0, BLOCK_M, layout=query_cols_layout)
    cols = start_n + gl.arange(0, BLOCK_N, layout=key_rows_layout)
    # Loop-carried as in-flight accumulators: the products that update them run on into the
    # next iteration.
    dk = warpgroup_mma_init(gl.zeros([BLOCK_N, HEAD_DIM], gl.float32, GRAD_LAYOUT))
    dv = warpgroup_mma_init(gl.zeros([BLOCK_N, HEAD_DIM], gl.float32, GRAD_LAYOUT))
    scores_init = gl.zeros([BLOCK_N, BLOCK_M], gl.float32, SCORES_LAYOUT)  # ignored: use_acc=False
    mbarrier.wait(keys_ready, 0)
    if KEYS_IN_REGISTERS:
        # This program's K and V never change: read once into registers, they are the A
        # operands of S^T and dP^T, and those products then read only Q and dO from shared
        # memory (a 64 x 64 x 16 product with both operands there reads 128 bytes per clock,
        # the shared memory's whole bandwidth). Same results, bit for bit.
        keys_operand_layout: gl.constexpr = gl.DotOperandLayout(
            operand_index=0, parent=SCORES_LAYOUT, k_width=2
        )
        k_operand = k_smem.load(keys_operand_layout)
        v_operand = v_smem.load(keys_operand_layout)
    else:
        k_operand = k_smem
        v_operand = v_smem
    if FUSED_DQ:
        kt_operand = k_smem.permute((1, 0)).load(
            gl.DotOperandLayout(operand_index=0, parent=DQ_LAYOUT, k_width=2)
        )
        # Allocated after the last reads of K and V from shared memory, so that they can take
        # their space (with K and V in registers, two programs per SM still fit): dS^T, and two
        # dQ^T staging tiles, so that the copy engine reads one while the next is written.
        dscores_smem = gl.allocate_shared_memory(dtype, [BLOCK_N, BLOCK_M], DSCORES_LAYOUT)
        dq_smem = gl.allocate_shared_memory(gl.float32, [2, HEAD_DIM, BLOCK_M], DQ_TILE_LAYOUT)

    for i in range(n_iters):
        stage = i % NUM_STAGES
        mbarrier.wait(ready.index(stage), (i // NUM_STAGES) & 1)
        for t in gl.static_range(QUERY_TILES):  # the buffer's query tiles, one after another
            start_m = query_lo + (i * QUERY_TILES + t) * BLOCK_M
            q_tile = q_smem.index(stage).slice(t * BLOCK_M, BLOCK_M)
            do_tile = do_smem.index(stage).slice(t * BLOCK_M, BLOCK_M)
            scores_t = warpgroup_mma(
                k_operand, q_tile.permute((1, 0)), scores_init, use_acc=False, is_async=True
            )  # S^T = K Q^T, (BLOCK_N, BLOCK_M)
            dprobs_t = warpgroup_mma(
                v_operand, do_tile.permute((1, 0)), scores_init, use_acc=False, is_async=True
            )  # dP^T = V dO^T
            # Products retire in issue order: this waits for the previous tile's dV and dK and
            # for S^T, and leaves dP^T running.
            scores_t, dk, dv = warpgroup_mma_wait(num_outstanding=1, deps=(scores_t, dk, dv))
            if t == 0:
                # So buffer (i - 1) % NUM_STAGES is free: refill it with copy i + NUM_STAGES - 1.
                _issue_query_tile(
                    q_desc, do_desc, stats_desc, q_smem, do_smem, lse_smem, delta_smem, ready,
                    i + NUM_STAGES - 1, n_iters, query_lo, bh, n_bh, COPY_M, NUM_STAGES,
                    TILE_BYTES,
                )  # fmt: skip

            # (1, BLOCK_M) rows of L and D, broadcast over keys
            lse2 = lse_smem.index(stage).slice(t * BLOCK_M, BLOCK_M, 1).load(SCORES_LAYOUT)
            probs_t = gl.exp2(scores_t * qk_scale - lse2)  # P^T recomputed from L
            if CAUSAL:  # noqa: SIM102 (a compile-time branch around a run-time one)
                if start_m < start_n + BLOCK_N:  # diagonal band: query i sees key j if j <= i
                    rows = start_m + offs_m
                    visible = gl.expand_dims(rows, 0) >= gl.expand_dims(cols, 1)
                    probs_t = gl.where(visible, probs_t, 0.0)
            probs_op = gl.convert_layout(probs_t.to(dtype), operand_layout)
            dv = warpgroup_mma(probs_op, do_tile, dv, is_async=True)  # dV += P^T dO
            dprobs_t = warpgroup_mma_wait(num_outstanding=1, deps=(dprobs_t,))
            delta = delta_smem.index(stage).slice(t * BLOCK_M, BLOCK_M, 1).load(SCORES_LAYOUT)
            dscores_t = probs_t * (dprobs_t - delta)  # dS^T = P^T (dP^T - D)
            dscores_lo = dscores_t.to(dtype)
            if FUSED_DQ:
                # dS^T for the dQ product (its last reader, the previous tile's dQ product, has
                # retired). The barrier below also tells every warp that the copy engine has
                # read the dQ part of two tiles ago out of the staging tile this one will use:
                # the thread that issued that reduction waits for it here.
                tma.store_wait(1)
                dscores_smem.store(dscores_lo)
                fence_async_shared()
                gl.thread_barrier()  # every warp's rows are in before the warpgroup reads them
                dq_part = warpgroup_mma(
                    kt_operand, dscores_smem, dq_init, use_acc=False, is_async=True
                )  # dQ^T = K^T dS^T, (HEAD_DIM, BLOCK_M)
            dscores_op = gl.convert_layout(dscores_lo, operand_layout)
            dk = warpgroup_mma(dscores_op, q_tile, dk, is_async=True)  # dK += dS^T Q
            if FUSED_DQ:
                # Wait for dQ^T only, add it into dQ while dK is computed. (Left running into
                # the next tile instead, ptxas serialises every product of the loop: it does not
                # see that a product carried round the loop has retired when its result is read.)
                dq_part = warpgroup_mma_wait(num_outstanding=1, deps=(dq_part,))
                _add_dq_part(dq_desc, dq_smem.index((i * QUERY_TILES + t) % 2), dq_part, start_m)

    dk, dv = warpgroup_mma_wait(num_outstanding=0, deps=(dk, dv))
    if FUSED_DQ:
        tma.store_wait(0)  # the copy engine has read dq_smem before the program ends
    for buffer in gl.static_range(NUM_STAGES):
        mbarrier.invalidate(ready.index(buffer))
    mbarrier.invalidate(keys_ready)

    dk = dk * sm_scale  # dK = dS^T Q / sqrt(d)
    grad_rows = start_n + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(1, GRAD_LAYOUT))
    grad_cols = gl.arange(0, HEAD_DIM, layout=gl.SliceLayout(0, GRAD_LAYOUT))
    in_range = gl.expand_dims(grad_rows < n_keys, 1)
    dk_ptrs = _head_rows(DK, batch, head, stride_dkb, stride_dkh, stride_dkt, grad_rows, grad_cols)
    dv_ptrs = _head_rows(DV, batch, head, stride_dvb, stride_dvh, stride_dvt, grad_rows, grad_cols)
    gl.store(dk_ptrs, dk.to(dtype), mask=in_range)
    gl.store(dv_ptrs, dv.to(dtype), mask=in_range)


@gluon.jit
def _add_dq_part(dq_desc, dq_smem, dq_part, start_m):
    """Add one query tile's K^T dS^T into the float32 dQ^T accumulator through dq_smem, by one
    bulk reduction of the copy engine. The other key tiles' programs add theirs in any order,
    so dQ's last bits vary run to run; 1 / sqrt(d) is applied once, when dQ is read out."""
    dq_smem.store(dq_part)  # free: its previous reduction was waited for before dS
    fence_async_shared()
    gl.thread_barrier()  # all rows written before the copy engine reads them
    _async_add_shared_to_global(dq_desc, [0, start_m], dq_smem)


_GL_DTYPES = {torch.bfloat16: gl.bfloat16, torch.float16: gl.float16}


def _mma_layout(num_warps: int, n: int):
    """Registers of a warpgroup product with n columns per instruction, 16 rows per warp."""
    return gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, n, 16]
    )


def _tile_layouts(head_dim: int, dtype: torch.dtype, block_m: int, block_n: int) -> dict:
    """Shared memory of the (BLOCK_M, HEAD_DIM) query-side and (BLOCK_N, HEAD_DIM) key-side
    tiles, swizzled as the copy engine and the tensor cores both read them."""
    element = _GL_DTYPES[dtype]
    return dict(
        QUERY_TILE_LAYOUT=gl.NVMMASharedLayout.get_default_for([block_m, head_dim], element),
        KEY_TILE_LAYOUT=gl.NVMMASharedLayout.get_default_for([block_n, head_dim], element),
    )


def _check_ring(num_stages: int) -> None:
    """Every Gluon kernel refills the buffer its previous iteration read while it works on the
    current one: with a single buffer the first copy is never issued and the program waits
    forever."""
    if num_stages < 2:
        raise ValueError(f"num_stages={num_stages}: the Gluon kernels need at least 2 buffers")


def _check_rows_per_warp(name: str, rows: int, num_warps: int) -> None:
    if rows != 16 * num_warps:
        raise ValueError(f"{name}={rows} must be 16 rows per warp ({num_warps} warps)")


@functools.cache  # built once per tile: the launch is on the host's critical path
def gluon_dkdv_layouts(
    head_dim: int, dtype: torch.dtype, block_m: int, block_n: int, num_warps: int,
    query_tiles: int = 1, fused_dq: bool = False,
):  # fmt: skip
    """The dK/dV kernel's shared and register layouts, where K and V live, and whether it also
    forms dQ (constexpr arguments)."""
    _check_rows_per_warp("BLOCK_N", block_n, num_warps)  # key rows across the warps
    dq_layouts = dict(DSCORES_LAYOUT=None, DQ_TILE_LAYOUT=None, DQ_LAYOUT=None)
    if fused_dq:
        # K^T dS^T, (HEAD_DIM, BLOCK_M): 16 rows per warp in whole warpgroups (64 rows);
        # warpgroups beyond HEAD_DIM / 64 split its columns.
        row_warps = head_dim // 16
        if head_dim % 64 or num_warps % row_warps or block_m * row_warps // num_warps % 8:
            raise ValueError(
                f"the fused dQ product needs head_dim a multiple of 64 whose 16-row slices "
                f"divide the {num_warps} warps, got head_dim={head_dim}"
            )
        dq_layouts = dict(
            DSCORES_LAYOUT=gl.NVMMASharedLayout.get_default_for(
                [block_n, block_m], _GL_DTYPES[dtype]
            ),
            DQ_TILE_LAYOUT=gl.NVMMASharedLayout.get_default_for([head_dim, block_m], gl.float32),
            DQ_LAYOUT=gl.NVMMADistributedLayout(
                version=[3, 0],
                warps_per_cta=[row_warps, num_warps // row_warps],
                instr_shape=[16, block_m * row_warps // num_warps, 16],
            ),
        )
    return dict(
        FUSED_DQ=fused_dq,
        **dq_layouts,
        **_tile_layouts(head_dim, dtype, query_tiles * block_m, block_n),
        STATS_LAYOUT=gl.NVMMASharedLayout(swizzle_byte_width=0, element_bitwidth=32, rank=2),
        SCORES_LAYOUT=_mma_layout(num_warps, block_m),  # S^T: (BLOCK_N, BLOCK_M)
        GRAD_LAYOUT=_mma_layout(num_warps, head_dim),
        # Where they fit: at head_dim 64 and 64-query tiles K and V add 32 registers per thread
        # (221 in all, still two programs per SM; the backward at 16K took 3.37 against 3.49
        # ms, ninth session, probe 1); at head_dim 128 the accumulators alone take 128 and they
        # would spill. Only with two or more query tiles per copy: at one, causal, the ptxas
        # that Triton 3.6 bundles (12.8) reuses K's and V's registers inside the loop while
        # later iterations still read them, though the PTX leaves them alone, and dK, dV come
        # out wrong (probe 3; register reuse under register-operand wgmma is a ptxas bug
        # reported in triton-lang/triton PR 11781, fixed in CUDA 13.3). The SASS test checks
        # that the shipped tile keeps them untouched through the loop.
        KEYS_IN_REGISTERS=head_dim <= 64 and block_m <= 64 and query_tiles >= 2,
    )


@functools.cache
def _is_hopper(device_index: int | None) -> bool:
    return torch.cuda.get_device_capability(device_index)[0] == 9  # sm_90 only: wgmma


def gluon_supported(q4: torch.Tensor, *tensors: torch.Tensor) -> bool:
    """Whether the Gluon kernels can take these (B, H, T, D) tensors on this device: Hopper,
    16-bit, unit stride along head_dim, 16-byte aligned rows and bases."""
    if not q4.is_cuda or not _is_hopper(q4.device.index):
        return False
    for t in (q4, *tensors):
        if t.dtype not in _GL_DTYPES or t.stride(-1) != 1 or t.data_ptr() % 16:
            return False
        if any(s * t.element_size() % 16 for s in t.stride()[:-1]):
            return False
    return True


def attn_bwd_dkdv_gluon(
    q4, k4, v4, do4, stats, dk, dv, is_causal, stats_stride, qk_scale, sm_scale,
    block_m=64, block_n=64, num_warps=4, num_stages=3, query_tiles=1, dq_acc=None,
):  # fmt: skip
    """Launch the Gluon dK/dV kernel on (B, H, T, D) tensors; `stats` is the (2, B*H,
    stats_stride) float32 buffer of L * log2(e) and D that the dQ kernel (or the row-statistics
    kernel) wrote. Each copy brings `query_tiles` query tiles of block_m rows (and each of the
    num_stages buffers holds them), which the loop then works through one after another. With
    `dq_acc`, a zeroed float32 (B, H, D, T_pad) tensor (dQ transposed; unit stride along
    T_pad >= T, a multiple of 4 so that its rows are 16-byte aligned), the kernel also adds dQ
    into it."""
    batch, n_heads, n_queries, head_dim = q4.shape
    n_keys = k4.shape[2]
    fused_dq = dq_acc is not None
    if not fused_dq:
        dq_acc = stats  # a placeholder pointer: the kernel does not touch it
    _check_ring(num_stages)
    grid = (triton.cdiv(n_keys, block_n), batch * n_heads)
    _attn_bwd_dkdv_gluon_kernel[grid](
        q4, k4, v4, do4, stats, dk, dv, dq_acc,
        *q4.stride()[:3], *k4.stride()[:3], *v4.stride()[:3], *do4.stride()[:3],
        *dk.stride()[:3], *dv.stride()[:3], *(dq_acc.stride()[:3] if fused_dq else (0, 0, 0)),
        n_heads, batch * n_heads, n_queries, n_keys, stats_stride, qk_scale, sm_scale,
        HEAD_DIM=head_dim, CAUSAL=is_causal, BLOCK_M=block_m, BLOCK_N=block_n,
        NUM_STAGES=num_stages, QUERY_TILES=query_tiles, num_warps=num_warps,
        **gluon_dkdv_layouts(
            head_dim, q4.dtype, block_m, block_n, num_warps, query_tiles, fused_dq
        ),
    )  # fmt: skip


@gluon.jit
def _key_tile_ring(
    dtype: gl.constexpr, NUM_STAGES: gl.constexpr, BLOCK_N: gl.constexpr,
    HEAD_DIM: gl.constexpr, KEY_TILE_LAYOUT: gl.constexpr,
):  # fmt: skip
    """The ring the forward and dQ kernels stream key tiles through: NUM_STAGES shared buffers
    of K and of V, and one initialised mbarrier per buffer that its copies complete."""
    k_smem = gl.allocate_shared_memory(dtype, [NUM_STAGES, BLOCK_N, HEAD_DIM], KEY_TILE_LAYOUT)
    v_smem = gl.allocate_shared_memory(dtype, [NUM_STAGES, BLOCK_N, HEAD_DIM], KEY_TILE_LAYOUT)
    ready = gl.allocate_shared_memory(gl.int64, [NUM_STAGES, 1], mbarrier.MBarrierLayout())
    for buffer in gl.static_range(NUM_STAGES):
        mbarrier.init(ready.index(buffer), count=1)
    return k_smem, v_smem, ready


@gluon.jit
def _issue_key_tile(
    k_desc,
    v_desc,
    k_smem,
    v_smem,
    ready,
    j,
    n_iters,
    NUM_STAGES: gl.constexpr,
    BLOCK_N: gl.constexpr,
):
    """Start the copies of key tile j (K and V) into buffer j % NUM_STAGES; nothing past the
    loop."""
    stage = j % NUM_STAGES
    valid = j < n_iters
    bar = ready.index(stage)
    mbarrier.expect(bar, k_desc.block_type.nbytes + v_desc.block_type.nbytes, pred=valid)
    tma.async_copy_global_to_shared(k_desc, [j * BLOCK_N, 0], bar, k_smem.index(stage), pred=valid)
    tma.async_copy_global_to_shared(v_desc, [j * BLOCK_N, 0], bar, v_smem.index(stage), pred=valid)


@gluon.jit
def _attn_bwd_dq_gluon_kernel(
    Q,
    K,
    V,
    DO,
    O,
    LSE,  # float32 (B*H, T_q), natural log
    STATS,  # float32 (2, B*H, stats_stride): written here (L * log2(e), D) for the dK/dV kernel
    DQ,
    stride_qb,
    stride_qh,
    stride_qt,
    stride_kb,
    stride_kh,
    stride_kt,
    stride_vb,
    stride_vh,
    stride_vt,
    stride_dob,
    stride_doh,
    stride_dot,
    stride_ob,
    stride_oh,
    stride_ot,
    stride_dqb,
    stride_dqh,
    stride_dqt,
    n_heads,
    n_bh,
    n_queries,
    n_keys,
    stats_stride,
    qk_scale,
    sm_scale,
    HEAD_DIM: gl.constexpr,
    CAUSAL: gl.constexpr,
    BLOCK_M: gl.constexpr,
    BLOCK_N: gl.constexpr,
    NUM_STAGES: gl.constexpr,
    QUERY_TILE_LAYOUT: gl.constexpr,  # shared: (BLOCK_M, HEAD_DIM) tiles of Q and dO
    KEY_TILE_LAYOUT: gl.constexpr,  # shared: (BLOCK_N, HEAD_DIM) tiles of K and V
    SCORES_LAYOUT: gl.constexpr,  # registers: (BLOCK_M, BLOCK_N) S and dP
    GRAD_LAYOUT: gl.constexpr,  # registers: (BLOCK_M, HEAD_DIM) accumulator of dQ
    num_warps: gl.constexpr,
):
    """dQ of one query tile, with D and L * log2(e) of its rows written for the dK/dV kernel.
    Per key tile: issue S = Q K^T and dP = dO V^T, wait for S only and run the exp2s while dP
    is computed, then issue dQ += dS K and leave it running into the next iteration."""
    dtype: gl.constexpr = Q.dtype.element_ty
    tile_m = gl.program_id(0)
    if CAUSAL:  # the last query tiles see the most keys: start them first to shorten the tail
        tile_m = gl.num_programs(0) - 1 - tile_m
    bh = gl.program_id(1)  # int32: a copy-engine coordinate below
    batch = bh.to(gl.int64) // n_heads  # int64: element offsets of a (batch, head) may pass 2^31
    head = bh.to(gl.int64) % n_heads
    start_m = tile_m * BLOCK_M

    q_desc, do_desc, k_desc, v_desc = _head_descriptors(
        Q, DO, K, V, batch, head, stride_qb, stride_qh, stride_qt, stride_dob, stride_doh,
        stride_dot, stride_kb, stride_kh, stride_kt, stride_vb, stride_vh, stride_vt, n_queries,
        n_keys, BLOCK_M, BLOCK_N, HEAD_DIM, QUERY_TILE_LAYOUT, KEY_TILE_LAYOUT,
    )  # fmt: skip
    q_smem = gl.allocate_shared_memory(dtype, [BLOCK_M, HEAD_DIM], QUERY_TILE_LAYOUT)
    do_smem = gl.allocate_shared_memory(dtype, [BLOCK_M, HEAD_DIM], QUERY_TILE_LAYOUT)
    k_smem, v_smem, ready = _key_tile_ring(dtype, NUM_STAGES, BLOCK_N, HEAD_DIM, KEY_TILE_LAYOUT)
    queries_ready = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    mbarrier.init(queries_ready, count=1)

    # Causal: key tiles right of this query tile are never loaded; those reaching past its
    # first row (the diagonal band) or past the last key are masked.
    key_hi = gl.minimum(start_m + BLOCK_M, n_keys) if CAUSAL else n_keys
    n_iters = gl.cdiv(key_hi, BLOCK_N)
    unmasked_end = start_m if CAUSAL else n_keys

    mbarrier.expect(queries_ready, 2 * q_desc.block_type.nbytes)
    tma.async_copy_global_to_shared(q_desc, [start_m, 0], queries_ready, q_smem)
    tma.async_copy_global_to_shared(do_desc, [start_m, 0], queries_ready, do_smem)
    for j in gl.static_range(NUM_STAGES - 1):
        _issue_key_tile(k_desc, v_desc, k_smem, v_smem, ready, j, n_iters, NUM_STAGES, BLOCK_N)

    # D = rowsum(dO * O) and L in log2 units for this tile's rows, kept in registers and
    # written out for the dK/dV kernel.
    rows = start_m + gl.arange(0, BLOCK_M, layout=gl.SliceLayout(1, GRAD_LAYOUT))
    cols_d = gl.arange(0, HEAD_DIM, layout=gl.SliceLayout(0, GRAD_LAYOUT))
    row_in = rows < n_queries
    o_ptrs = _head_rows(O, batch, head, stride_ob, stride_oh, stride_ot, rows, cols_d)
    o = gl.load(o_ptrs, mask=gl.expand_dims(row_in, 1), other=0.0)
    mbarrier.wait(queries_ready, 0)
    do = do_smem.load(GRAD_LAYOUT)
    delta = gl.sum(o.to(gl.float32) * do.to(gl.float32), 1)
    lse2 = gl.load(LSE + bh.to(gl.int64) * n_queries + rows, mask=row_in, other=0.0)
    lse2 = lse2 * 1.4426950408889634
    gl.store(STATS + bh.to(gl.int64) * stats_stride + rows, lse2, mask=row_in)
    gl.store(STATS + (n_bh + bh).to(gl.int64) * stats_stride + rows, delta, mask=row_in)
    score_rows: gl.constexpr = gl.SliceLayout(1, SCORES_LAYOUT)
    lse2 = gl.expand_dims(gl.convert_layout(lse2, score_rows), 1)
    delta = gl.expand_dims(gl.convert_layout(delta, score_rows), 1)
    score_row_ids = start_m + gl.arange(0, BLOCK_M, layout=score_rows)
    offs_n = gl.arange(0, BLOCK_N, layout=gl.SliceLayout(0, SCORES_LAYOUT))

    # dS as the register (A) operand of dQ += dS K
    operand_layout: gl.constexpr = gl.DotOperandLayout(
        operand_index=0, parent=GRAD_LAYOUT, k_width=2
    )
    scores_init = gl.zeros([BLOCK_M, BLOCK_N], gl.float32, SCORES_LAYOUT)  # ignored: use_acc=False
    dq = warpgroup_mma_init(gl.zeros([BLOCK_M, HEAD_DIM], gl.float32, GRAD_LAYOUT))
    for j in range(n_iters):
        stage = j % NUM_STAGES
        mbarrier.wait(ready.index(stage), (j // NUM_STAGES) & 1)
        k_tile = k_smem.index(stage)
        scores = warpgroup_mma(
            q_smem, k_tile.permute((1, 0)), scores_init, use_acc=False, is_async=True
        )  # S = Q K^T, (BLOCK_M, BLOCK_N)
        dprobs = warpgroup_mma(
            do_smem, v_smem.index(stage).permute((1, 0)), scores_init, use_acc=False, is_async=True
        )  # dP = dO V^T
        # In-order retirement: iteration j - 1's dQ product is done, so is S; dP runs on.
        scores, dq = warpgroup_mma_wait(num_outstanding=1, deps=(scores, dq))
        _issue_key_tile(
            k_desc, v_desc, k_smem, v_smem, ready, j + NUM_STAGES - 1, n_iters, NUM_STAGES, BLOCK_N
        )
        probs = gl.exp2(scores * qk_scale - lse2)  # P recomputed from L
        if j * BLOCK_N + BLOCK_N > unmasked_end:  # diagonal band or last, partial key tile
            cols = j * BLOCK_N + offs_n
            keep = gl.expand_dims(cols, 0) < n_keys
            if CAUSAL:
                keep = keep & (gl.expand_dims(score_row_ids, 1) >= gl.expand_dims(cols, 0))
            probs = gl.where(keep, probs, 0.0)
        dprobs = warpgroup_mma_wait(num_outstanding=0, deps=(dprobs,))
        dscores = probs * (dprobs - delta)  # dS = P (dP - D)
        dscores_op = gl.convert_layout(dscores.to(dtype), operand_layout)
        dq = warpgroup_mma(dscores_op, k_tile, dq, is_async=True)  # dQ += dS K
    dq = warpgroup_mma_wait(num_outstanding=0, deps=(dq,))
    for buffer in gl.static_range(NUM_STAGES):
        mbarrier.invalidate(ready.index(buffer))
    mbarrier.invalidate(queries_ready)

    dq = dq * sm_scale  # dQ = dS K / sqrt(d)
    dq_ptrs = _head_rows(DQ, batch, head, stride_dqb, stride_dqh, stride_dqt, rows, cols_d)
    gl.store(dq_ptrs, dq.to(dtype), mask=gl.expand_dims(row_in, 1))


@functools.cache
def gluon_dq_layouts(head_dim: int, dtype: torch.dtype, block_m: int, block_n: int, num_warps: int):
    """The dQ kernel's shared and register layouts (constexpr arguments)."""
    _check_rows_per_warp("BLOCK_M", block_m, num_warps)  # query rows across the warps
    return dict(
        **_tile_layouts(head_dim, dtype, block_m, block_n),
        SCORES_LAYOUT=_mma_layout(num_warps, block_n),  # S: (BLOCK_M, BLOCK_N)
        GRAD_LAYOUT=_mma_layout(num_warps, head_dim),
    )


def attn_bwd_dq_gluon(
    q4, k4, v4, do4, o4, lse, stats, dq, is_causal, stats_stride, qk_scale, sm_scale,
    block_m=64, block_n=64, num_warps=4, num_stages=3,
):  # fmt: skip
    """Launch the Gluon dQ kernel on (B, H, T, D) tensors; it also writes L * log2(e) and D
    into `stats` ((2, B*H, stats_stride) float32) for the dK/dV kernel."""
    batch, n_heads, n_queries, head_dim = q4.shape
    n_keys = k4.shape[2]
    _check_ring(num_stages)
    grid = (triton.cdiv(n_queries, block_m), batch * n_heads)
    _attn_bwd_dq_gluon_kernel[grid](
        q4, k4, v4, do4, o4, lse, stats, dq,
        *q4.stride()[:3], *k4.stride()[:3], *v4.stride()[:3], *do4.stride()[:3],
        *o4.stride()[:3], *dq.stride()[:3],
        n_heads, batch * n_heads, n_queries, n_keys, stats_stride, qk_scale, sm_scale,
        HEAD_DIM=head_dim, CAUSAL=is_causal, BLOCK_M=block_m, BLOCK_N=block_n,
        NUM_STAGES=num_stages, num_warps=num_warps,
        **gluon_dq_layouts(head_dim, q4.dtype, block_m, block_n, num_warps),
    )  # fmt: skip


@gluon.jit
def _online_softmax(
    scores, row_max, row_sum, qk_scale, j, n_keys, score_row_ids, offs_n, MASKED: gl.constexpr,
    CAUSAL: gl.constexpr, BLOCK_N: gl.constexpr, DTYPE: gl.constexpr,
    OPERAND_LAYOUT: gl.constexpr,
):  # fmt: skip
    """Key tile j's step of the online softmax: P~ (as the P~V product's register operand), the
    factor the accumulator is rescaled by, and the updated row max (log2 units) and sum."""
    if MASKED:  # diagonal band or last, partial key tile
        cols = j * BLOCK_N + offs_n
        keep = gl.expand_dims(cols, 0) < n_keys
        if CAUSAL:
            keep = keep & (gl.expand_dims(score_row_ids, 1) >= gl.expand_dims(cols, 0))
        scores = gl.where(keep, scores, -float("inf"))
    # As in the Triton forward: every row sees a key in its first tile, so new_max is finite
    # from then on; the max is taken on the raw scores and scaled once per row.
    new_max = gl.maximum(row_max, gl.max(scores, 1) * qk_scale)
    probs = gl.exp2(scores * qk_scale - gl.expand_dims(new_max, 1))
    rescale = gl.exp2(row_max - new_max)  # 0 on the first tile (row_max = -inf)
    row_sum = row_sum * rescale + gl.sum(probs, 1)
    probs_op = gl.convert_layout(probs.to(DTYPE), OPERAND_LAYOUT)
    return probs_op, rescale, new_max, row_sum


@gluon.jit
def _fwd_key_loop(
    acc, row_max, row_sum, q_smem, k_smem, v_smem, ready, k_desc, v_desc, scores_init, lo, hi,
    n_iters, qk_scale, n_keys, score_row_ids, offs_n, MASKED: gl.constexpr, CAUSAL: gl.constexpr,
    BLOCK_N: gl.constexpr, NUM_STAGES: gl.constexpr, DTYPE: gl.constexpr,
    OPERAND_LAYOUT: gl.constexpr,
):  # fmt: skip
    """Key tiles [lo, hi), one after another: S = Q K^T, its softmax, then O += P~ V."""
    out_rows: gl.constexpr = gl.SliceLayout(1, OPERAND_LAYOUT.parent)
    for j in range(lo, hi):
        stage = j % NUM_STAGES
        mbarrier.wait(ready.index(stage), (j // NUM_STAGES) & 1)
        scores = warpgroup_mma(
            q_smem, k_smem.index(stage).permute((1, 0)), scores_init, use_acc=False, is_async=True
        )  # S = Q K^T, (BLOCK_M, BLOCK_N)
        # In-order retirement: the previous P~V product is done too, so is its buffer.
        scores, acc = warpgroup_mma_wait(num_outstanding=0, deps=(scores, acc))
        _issue_key_tile(
            k_desc, v_desc, k_smem, v_smem, ready, j + NUM_STAGES - 1, n_iters, NUM_STAGES, BLOCK_N
        )
        probs_op, rescale, row_max, row_sum = _online_softmax(
            scores, row_max, row_sum, qk_scale, j, n_keys, score_row_ids, offs_n, MASKED, CAUSAL,
            BLOCK_N, DTYPE, OPERAND_LAYOUT,
        )  # fmt: skip
        acc = acc * gl.expand_dims(gl.convert_layout(rescale, out_rows), 1)
        acc = warpgroup_mma(probs_op, v_smem.index(stage), acc, is_async=True)  # O += P~ V
    return acc, row_max, row_sum


@gluon.jit
def _forward_program(n_heads, CAUSAL: gl.constexpr, BLOCK_M: gl.constexpr):
    """This forward program's (batch*head index, batch, head, first query row). Causal: the
    last query tiles see the most keys, so they start first, which shortens the tail."""
    tile_m = gl.program_id(0)
    if CAUSAL:
        tile_m = gl.num_programs(0) - 1 - tile_m
    bh = gl.program_id(1)
    return bh, bh.to(gl.int64) // n_heads, bh.to(gl.int64) % n_heads, tile_m * BLOCK_M


@gluon.jit
def _forward_key_tiles(
    start_m, n_keys, CAUSAL: gl.constexpr, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr
):
    """(key tiles the forward program visits, how many of the first ones need no mask). Causal:
    key tiles right of the query tile are never loaded; those reaching past its first row (the
    diagonal band) or past the last key are masked, in a loop of their own."""
    key_hi = gl.minimum(start_m + BLOCK_M, n_keys) if CAUSAL else n_keys
    return gl.cdiv(key_hi, BLOCK_N), (start_m if CAUSAL else n_keys) // BLOCK_N


@gluon.jit
def _store_out_rows(
    O, LSE, acc, row_max, row_sum, batch, head, bh, stride_ob, stride_oh, stride_ot, start_m,
    n_queries, ROWS: gl.constexpr, HEAD_DIM: gl.constexpr, OUT_LAYOUT: gl.constexpr,
):  # fmt: skip
    """The forward's epilogue for query rows [start_m, start_m + ROWS): O = acc / row sum into O
    and L into LSE, rows past n_queries left alone."""
    out_rows: gl.constexpr = gl.SliceLayout(1, OUT_LAYOUT)
    rows = start_m + gl.arange(0, ROWS, layout=out_rows)
    row_in = rows < n_queries
    acc = acc / gl.expand_dims(gl.convert_layout(row_sum, out_rows), 1)
    # L = ln(sum_j exp(s_j)) = (m + log2 l) * ln 2, m in log2 units of the scaled scores
    lse = gl.convert_layout((row_max + gl.log2(row_sum)) * 0.6931471805599453, out_rows)
    gl.store(LSE + bh.to(gl.int64) * n_queries + rows, lse, mask=row_in)
    cols_d = gl.arange(0, HEAD_DIM, layout=gl.SliceLayout(0, OUT_LAYOUT))
    o_ptrs = _head_rows(O, batch, head, stride_ob, stride_oh, stride_ot, rows, cols_d)
    gl.store(o_ptrs, acc.to(O.dtype.element_ty), mask=gl.expand_dims(row_in, 1))


@gluon.jit
def _attn_fwd_gluon_kernel(
    Q,
    K,
    V,
    O,
    LSE,  # float32 (B*H, T_q), natural log
    stride_qb,
    stride_qh,
    stride_qt,
    stride_kb,
    stride_kh,
    stride_kt,
    stride_vb,
    stride_vh,
    stride_vt,
    stride_ob,
    stride_oh,
    stride_ot,
    n_heads,
    n_queries,
    n_keys,
    qk_scale,
    HEAD_DIM: gl.constexpr,
    CAUSAL: gl.constexpr,
    BLOCK_M: gl.constexpr,
    BLOCK_N: gl.constexpr,
    NUM_STAGES: gl.constexpr,
    QUERY_TILE_LAYOUT: gl.constexpr,  # shared: (BLOCK_M, HEAD_DIM) tile of Q
    KEY_TILE_LAYOUT: gl.constexpr,  # shared: (BLOCK_N, HEAD_DIM) tiles of K and V
    SCORES_LAYOUT: gl.constexpr,  # registers: (BLOCK_M, BLOCK_N) S
    OUT_LAYOUT: gl.constexpr,  # registers: (BLOCK_M, HEAD_DIM) accumulator of O
    num_warps: gl.constexpr,
):
    """O and L of one query tile: online softmax over the key tiles, K and V through a ring of
    NUM_STAGES shared buffers filled by the copy engine."""
    dtype: gl.constexpr = Q.dtype.element_ty
    bh, batch, head, start_m = _forward_program(n_heads, CAUSAL, BLOCK_M)

    q_desc = _head_tiles(
        Q, batch, head, stride_qb, stride_qh, stride_qt, n_queries, BLOCK_M, HEAD_DIM,
        QUERY_TILE_LAYOUT,
    )  # fmt: skip
    k_desc, v_desc = _key_descriptors(
        K, V, batch, head, stride_kb, stride_kh, stride_kt, stride_vb, stride_vh, stride_vt,
        n_keys, BLOCK_N, HEAD_DIM, KEY_TILE_LAYOUT,
    )  # fmt: skip
    q_smem = gl.allocate_shared_memory(dtype, [BLOCK_M, HEAD_DIM], QUERY_TILE_LAYOUT)
    k_smem, v_smem, ready = _key_tile_ring(dtype, NUM_STAGES, BLOCK_N, HEAD_DIM, KEY_TILE_LAYOUT)
    queries_ready = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    mbarrier.init(queries_ready, count=1)

    n_iters, n_unmasked = _forward_key_tiles(start_m, n_keys, CAUSAL, BLOCK_M, BLOCK_N)

    mbarrier.expect(queries_ready, q_desc.block_type.nbytes)
    tma.async_copy_global_to_shared(q_desc, [start_m, 0], queries_ready, q_smem)
    for j in gl.static_range(NUM_STAGES - 1):
        _issue_key_tile(k_desc, v_desc, k_smem, v_smem, ready, j, n_iters, NUM_STAGES, BLOCK_N)

    score_rows: gl.constexpr = gl.SliceLayout(1, SCORES_LAYOUT)
    score_row_ids = start_m + gl.arange(0, BLOCK_M, layout=score_rows)
    offs_n = gl.arange(0, BLOCK_N, layout=gl.SliceLayout(0, SCORES_LAYOUT))
    # P~ as the register (A) operand of O += P~ V
    operand_layout: gl.constexpr = gl.DotOperandLayout(
        operand_index=0, parent=OUT_LAYOUT, k_width=2
    )
    scores_init = gl.zeros([BLOCK_M, BLOCK_N], gl.float32, SCORES_LAYOUT)  # ignored: use_acc=False
    row_max = gl.full([BLOCK_M], -float("inf"), gl.float32, score_rows)  # log2 units
    row_sum = gl.zeros([BLOCK_M], gl.float32, score_rows)
    acc = warpgroup_mma_init(gl.zeros([BLOCK_M, HEAD_DIM], gl.float32, OUT_LAYOUT))
    mbarrier.wait(queries_ready, 0)
    acc, row_max, row_sum = _fwd_key_loop(
        acc, row_max, row_sum, q_smem, k_smem, v_smem, ready, k_desc, v_desc, scores_init,
        0, n_unmasked, n_iters, qk_scale, n_keys, score_row_ids, offs_n, False, CAUSAL,
        BLOCK_N, NUM_STAGES, dtype, operand_layout,
    )  # fmt: skip
    acc, row_max, row_sum = _fwd_key_loop(
        acc, row_max, row_sum, q_smem, k_smem, v_smem, ready, k_desc, v_desc, scores_init,
        n_unmasked, n_iters, n_iters, qk_scale, n_keys, score_row_ids, offs_n, True, CAUSAL,
        BLOCK_N, NUM_STAGES, dtype, operand_layout,
    )  # fmt: skip
    acc = warpgroup_mma_wait(num_outstanding=0, deps=(acc,))
    for buffer in gl.static_range(NUM_STAGES):
        mbarrier.invalidate(ready.index(buffer))
    mbarrier.invalidate(queries_ready)

    _store_out_rows(
        O, LSE, acc, row_max, row_sum, batch, head, bh, stride_ob, stride_oh, stride_ot,
        start_m, n_queries, BLOCK_M, HEAD_DIM, OUT_LAYOUT,
    )  # fmt: skip


@functools.cache
def gluon_forward_layouts(
    head_dim: int, dtype: torch.dtype, block_m: int, block_n: int, num_warps: int
):
    """The forward kernel's shared and register layouts (constexpr arguments)."""
    _check_rows_per_warp("BLOCK_M", block_m, num_warps)  # query rows across the warps
    return dict(
        **_tile_layouts(head_dim, dtype, block_m, block_n),
        SCORES_LAYOUT=_mma_layout(num_warps, block_n),  # S: (BLOCK_M, BLOCK_N)
        OUT_LAYOUT=_mma_layout(num_warps, head_dim),
    )


def attn_fwd_gluon(
    q4, k4, v4, out, lse, is_causal, qk_scale, block_m=64, block_n=128, num_warps=4,
    num_stages=2,
):  # fmt: skip
    """Launch the Gluon forward on (B, H, T, D) tensors: O into `out`, L (natural log) into
    `lse` ((B*H, T_q) float32)."""
    batch, n_heads, n_queries, head_dim = q4.shape
    n_keys = k4.shape[2]
    _check_ring(num_stages)
    grid = (triton.cdiv(n_queries, block_m), batch * n_heads)
    _attn_fwd_gluon_kernel[grid](
        q4, k4, v4, out, lse,
        *q4.stride()[:3], *k4.stride()[:3], *v4.stride()[:3], *out.stride()[:3],
        n_heads, n_queries, n_keys, qk_scale,
        HEAD_DIM=head_dim, CAUSAL=is_causal, BLOCK_M=block_m, BLOCK_N=block_n,
        NUM_STAGES=num_stages, num_warps=num_warps,
        **gluon_forward_layouts(head_dim, q4.dtype, block_m, block_n, num_warps),
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# The forward with FlashAttention-3's ping-pong: two consumer warpgroups and a producer warp
# --------------------------------------------------------------------------------------------


@gluon.jit
def _pingpong_producer(
    q_desc, k_desc, v_desc, q_smem, k_smem, v_smem, queries_ready, ready, free, start_m, n_iters,
    HALF_M: gl.constexpr, BLOCK_N: gl.constexpr, NUM_STAGES: gl.constexpr,
):  # fmt: skip
    """The producer warp: the program's two query halves once, then key tile after key tile
    (K and V) into the ring, each into a buffer both consumers have released."""
    mbarrier.expect(queries_ready, 2 * q_desc.block_type.nbytes)
    tma.async_copy_global_to_shared(q_desc, [start_m, 0], queries_ready, q_smem.index(0))
    tma.async_copy_global_to_shared(q_desc, [start_m + HALF_M, 0], queries_ready, q_smem.index(1))
    for j in range(n_iters):
        # Key tile j - NUM_STAGES, the buffer's last tenant, must have been read by both.
        stage = j % NUM_STAGES
        mbarrier.wait(free.index(stage), ((j // NUM_STAGES) + 1) & 1, pred=j >= NUM_STAGES)
        _issue_key_tile(k_desc, v_desc, k_smem, v_smem, ready, j, n_iters, NUM_STAGES, BLOCK_N)


@gluon.jit
def _pingpong_key_loop(
    acc, row_max, row_sum, probs_op, q_tile, k_smem, v_smem, ready, free, turn, scores_init,
    lo, hi, qk_scale, n_keys, score_row_ids, offs_n, WARPGROUP: gl.constexpr,
    MASKED: gl.constexpr, CAUSAL: gl.constexpr, BLOCK_N: gl.constexpr,
    NUM_STAGES: gl.constexpr, DTYPE: gl.constexpr, OPERAND_LAYOUT: gl.constexpr,
):  # fmt: skip
    """Key tiles [lo, hi) of one consumer warpgroup. Per tile j, on its turn, it issues
    S_j = Q K_j^T and then tile j - 1's O += P~ V (probs_op holds P~_{j-1}), hands the turn to
    the other warpgroup, whose products then queue behind these, and runs S_j's softmax while
    its own P~V and the other's products occupy the tensor cores."""
    out_rows: gl.constexpr = gl.SliceLayout(1, OPERAND_LAYOUT.parent)
    for j in range(lo, hi):
        stage = j % NUM_STAGES
        previous = (j + NUM_STAGES - 1) % NUM_STAGES
        mbarrier.wait(ready.index(stage), (j // NUM_STAGES) & 1)
        mbarrier.wait(turn.index(WARPGROUP), j & 1)
        scores = warpgroup_mma(
            q_tile, k_smem.index(stage).permute((1, 0)), scores_init, use_acc=False, is_async=True
        )  # S_j = Q K_j^T, (HALF_M, BLOCK_N)
        acc = warpgroup_mma(probs_op, v_smem.index(previous), acc, is_async=True)
        mbarrier.arrive(turn.index(1 - WARPGROUP))
        scores = warpgroup_mma_wait(num_outstanding=1, deps=(scores,))  # P~V still running
        probs_op, rescale, row_max, row_sum = _online_softmax(
            scores, row_max, row_sum, qk_scale, j, n_keys, score_row_ids, offs_n, MASKED, CAUSAL,
            BLOCK_N, DTYPE, OPERAND_LAYOUT,
        )  # fmt: skip
        acc = warpgroup_mma_wait(num_outstanding=0, deps=(acc,))
        mbarrier.arrive(free.index(previous))  # this warpgroup is done with key tile j - 1
        acc = acc * gl.expand_dims(gl.convert_layout(rescale, out_rows), 1)
    return acc, row_max, row_sum, probs_op


@gluon.jit
def _pingpong_consumer(
    q_smem, k_smem, v_smem, queries_ready, ready, free, turn, O, LSE, batch, head, bh,
    stride_ob, stride_oh, stride_ot, start_m, n_iters, n_unmasked, n_queries, n_keys, qk_scale,
    WARPGROUP: gl.constexpr, HEAD_DIM: gl.constexpr, CAUSAL: gl.constexpr,
    HALF_M: gl.constexpr, BLOCK_N: gl.constexpr, NUM_STAGES: gl.constexpr,
    SCORES_LAYOUT: gl.constexpr, OUT_LAYOUT: gl.constexpr,
):  # fmt: skip
    """One consumer warpgroup: O and L of query rows start_m + WARPGROUP * HALF_M onwards."""
    dtype: gl.constexpr = q_smem.dtype
    first_row = start_m + WARPGROUP * HALF_M
    score_rows: gl.constexpr = gl.SliceLayout(1, SCORES_LAYOUT)
    score_row_ids = first_row + gl.arange(0, HALF_M, layout=score_rows)
    offs_n = gl.arange(0, BLOCK_N, layout=gl.SliceLayout(0, SCORES_LAYOUT))
    operand_layout: gl.constexpr = gl.DotOperandLayout(
        operand_index=0, parent=OUT_LAYOUT, k_width=2
    )
    scores_init = gl.zeros([HALF_M, BLOCK_N], gl.float32, SCORES_LAYOUT)  # ignored: use_acc=False
    row_max = gl.full([HALF_M], -float("inf"), gl.float32, score_rows)  # log2 units
    row_sum = gl.zeros([HALF_M], gl.float32, score_rows)
    acc = gl.zeros([HALF_M, HEAD_DIM], gl.float32, OUT_LAYOUT)
    q_tile = q_smem.index(WARPGROUP)
    mbarrier.wait(queries_ready, 0)

    # Key tile 0 has no P~V before it: S_0 alone on the first turn.
    mbarrier.wait(ready.index(0), 0)
    mbarrier.wait(turn.index(WARPGROUP), 0)
    scores = warpgroup_mma(
        q_tile, k_smem.index(0).permute((1, 0)), scores_init, use_acc=False, is_async=True
    )
    mbarrier.arrive(turn.index(1 - WARPGROUP))
    scores = warpgroup_mma_wait(num_outstanding=0, deps=(scores,))
    if n_unmasked == 0:  # tile 0 is in the diagonal band or past the last key
        probs_op, _, row_max, row_sum = _online_softmax(
            scores, row_max, row_sum, qk_scale, 0, n_keys, score_row_ids, offs_n, True, CAUSAL,
            BLOCK_N, dtype, operand_layout,
        )  # fmt: skip
    else:  # (the accumulator is still zero: no rescaling)
        probs_op, _, row_max, row_sum = _online_softmax(
            scores, row_max, row_sum, qk_scale, 0, n_keys, score_row_ids, offs_n, False, CAUSAL,
            BLOCK_N, dtype, operand_layout,
        )  # fmt: skip
    acc, row_max, row_sum, probs_op = _pingpong_key_loop(
        acc, row_max, row_sum, probs_op, q_tile, k_smem, v_smem, ready, free, turn, scores_init,
        1, n_unmasked, qk_scale, n_keys, score_row_ids, offs_n, WARPGROUP, False, CAUSAL,
        BLOCK_N, NUM_STAGES, dtype, operand_layout,
    )  # fmt: skip
    acc, row_max, row_sum, probs_op = _pingpong_key_loop(
        acc, row_max, row_sum, probs_op, q_tile, k_smem, v_smem, ready, free, turn, scores_init,
        gl.maximum(n_unmasked, 1), n_iters, qk_scale, n_keys, score_row_ids, offs_n, WARPGROUP,
        True, CAUSAL, BLOCK_N, NUM_STAGES, dtype, operand_layout,
    )  # fmt: skip
    # The last key tile's P~V, on a turn of its own.
    mbarrier.wait(turn.index(WARPGROUP), n_iters & 1)
    acc = warpgroup_mma(probs_op, v_smem.index((n_iters - 1) % NUM_STAGES), acc, is_async=True)
    mbarrier.arrive(turn.index(1 - WARPGROUP))
    acc = warpgroup_mma_wait(num_outstanding=0, deps=(acc,))
    _store_out_rows(
        O, LSE, acc, row_max, row_sum, batch, head, bh, stride_ob, stride_oh, stride_ot,
        first_row, n_queries, HALF_M, HEAD_DIM, OUT_LAYOUT,
    )  # fmt: skip


@gluon.jit
def _attn_fwd_pingpong_kernel(
    Q,
    K,
    V,
    O,
    LSE,  # float32 (B*H, T_q), natural log
    stride_qb,
    stride_qh,
    stride_qt,
    stride_kb,
    stride_kh,
    stride_kt,
    stride_vb,
    stride_vh,
    stride_vt,
    stride_ob,
    stride_oh,
    stride_ot,
    n_heads,
    n_queries,
    n_keys,
    qk_scale,
    HEAD_DIM: gl.constexpr,
    CAUSAL: gl.constexpr,
    BLOCK_M: gl.constexpr,  # query rows per program: two warpgroups of BLOCK_M // 2
    BLOCK_N: gl.constexpr,
    NUM_STAGES: gl.constexpr,
    QUERY_TILE_LAYOUT: gl.constexpr,  # shared: (BLOCK_M // 2, HEAD_DIM) half of the Q tile
    KEY_TILE_LAYOUT: gl.constexpr,  # shared: (BLOCK_N, HEAD_DIM) tiles of K and V
    SCORES_LAYOUT: gl.constexpr,  # registers, per warpgroup: (BLOCK_M // 2, BLOCK_N) S
    OUT_LAYOUT: gl.constexpr,  # registers, per warpgroup: (BLOCK_M // 2, HEAD_DIM) O
    CONSUMER_REGISTERS: gl.constexpr,
    PRODUCER_REGISTERS: gl.constexpr,
    num_warps: gl.constexpr,  # 4: the first consumer warpgroup (the default partition)
):
    """O and L of one BLOCK_M-query tile, FlashAttention-3's way (see PINGPONG in the module
    docstring): a producer warp streams K and V, two consumer warpgroups take turns on the
    tensor cores."""
    HALF_M: gl.constexpr = BLOCK_M // 2
    dtype: gl.constexpr = Q.dtype.element_ty
    bh, batch, head, start_m = _forward_program(n_heads, CAUSAL, BLOCK_M)

    q_desc = _head_tiles(
        Q, batch, head, stride_qb, stride_qh, stride_qt, n_queries, HALF_M, HEAD_DIM,
        QUERY_TILE_LAYOUT,
    )  # fmt: skip
    k_desc, v_desc = _key_descriptors(
        K, V, batch, head, stride_kb, stride_kh, stride_kt, stride_vb, stride_vh, stride_vt,
        n_keys, BLOCK_N, HEAD_DIM, KEY_TILE_LAYOUT,
    )  # fmt: skip
    q_smem = gl.allocate_shared_memory(dtype, [2, HALF_M, HEAD_DIM], QUERY_TILE_LAYOUT)
    k_smem, v_smem, ready = _key_tile_ring(dtype, NUM_STAGES, BLOCK_N, HEAD_DIM, KEY_TILE_LAYOUT)
    free = gl.allocate_shared_memory(gl.int64, [NUM_STAGES, 1], mbarrier.MBarrierLayout())
    for buffer in gl.static_range(NUM_STAGES):
        mbarrier.init(free.index(buffer), count=2)  # one arrival per consumer warpgroup
    # turn[w] completes a phase each time warpgroup w may issue its next products; the two
    # alternate strictly, warpgroup 0 first.
    turn = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
    mbarrier.init(turn.index(0), count=1)
    mbarrier.init(turn.index(1), count=1)
    mbarrier.arrive(turn.index(0))
    queries_ready = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    mbarrier.init(queries_ready, count=1)

    n_iters, n_unmasked = _forward_key_tiles(start_m, n_keys, CAUSAL, BLOCK_M, BLOCK_N)

    # Gluon passes each partition its arguments as one flat tuple (no * unpacking in kernels).
    gl.warp_specialize(
        [
            (
                _pingpong_consumer,
                (q_smem, k_smem, v_smem, queries_ready, ready, free, turn, O, LSE, batch, head, bh,
                 stride_ob, stride_oh, stride_ot, start_m, n_iters, n_unmasked, n_queries, n_keys,
                 qk_scale, 0, HEAD_DIM, CAUSAL, HALF_M, BLOCK_N, NUM_STAGES, SCORES_LAYOUT,
                 OUT_LAYOUT),
            ),
            (
                _pingpong_consumer,
                (q_smem, k_smem, v_smem, queries_ready, ready, free, turn, O, LSE, batch, head, bh,
                 stride_ob, stride_oh, stride_ot, start_m, n_iters, n_unmasked, n_queries, n_keys,
                 qk_scale, 1, HEAD_DIM, CAUSAL, HALF_M, BLOCK_N, NUM_STAGES, SCORES_LAYOUT,
                 OUT_LAYOUT),
            ),
            (
                _pingpong_producer,
                (q_desc, k_desc, v_desc, q_smem, k_smem, v_smem, queries_ready, ready, free,
                 start_m, n_iters, HALF_M, BLOCK_N, NUM_STAGES),
            ),
        ],
        [4, 1],  # warps: the second consumer warpgroup, the producer
        [CONSUMER_REGISTERS, PRODUCER_REGISTERS],
    )  # fmt: skip


@functools.cache
def gluon_pingpong_layouts(head_dim: int, dtype: torch.dtype, block_m: int, block_n: int):
    """The ping-pong forward's shared and register layouts (constexpr arguments)."""
    if block_m != 128:
        raise ValueError(f"BLOCK_M={block_m}: the ping-pong forward takes two warpgroups of 64")
    return dict(
        **_tile_layouts(head_dim, dtype, block_m // 2, block_n),
        SCORES_LAYOUT=_mma_layout(4, block_n),
        OUT_LAYOUT=_mma_layout(4, head_dim),
    )


# Registers per thread after the split (setmaxnreg): the producer warp needs few, which leaves
# the consumers 240 (FlashAttention-3's split; 232 timed the same).
PINGPONG_CONSUMER_REGISTERS = 240
PINGPONG_PRODUCER_REGISTERS = 24


def attn_fwd_gluon_pingpong(
    q4, k4, v4, out, lse, is_causal, qk_scale, block_m=128, block_n=128, num_warps=8,
    num_stages=3,
):  # fmt: skip
    """Launch the ping-pong forward on (B, H, T, D) tensors: O into `out`, L (natural log) into
    `lse` ((B*H, T_q) float32). The tile is (BLOCK_M, BLOCK_N, consumer warps, buffers): two
    consumer warpgroups of 64 query rows (num_warps 8) and a producer warp."""
    batch, n_heads, n_queries, head_dim = q4.shape
    n_keys = k4.shape[2]
    _check_ring(num_stages)
    if num_warps != 8:
        raise ValueError(f"num_warps={num_warps}: the ping-pong forward has 8 consumer warps")
    grid = (triton.cdiv(n_queries, block_m), batch * n_heads)
    _attn_fwd_pingpong_kernel[grid](
        q4, k4, v4, out, lse,
        *q4.stride()[:3], *k4.stride()[:3], *v4.stride()[:3], *out.stride()[:3],
        n_heads, n_queries, n_keys, qk_scale,
        HEAD_DIM=head_dim, CAUSAL=is_causal, BLOCK_M=block_m, BLOCK_N=block_n,
        NUM_STAGES=num_stages, CONSUMER_REGISTERS=PINGPONG_CONSUMER_REGISTERS,
        PRODUCER_REGISTERS=PINGPONG_PRODUCER_REGISTERS, num_warps=4,
        **gluon_pingpong_layouts(head_dim, q4.dtype, block_m, block_n),
    )  # fmt: skip
