"""The kernels as the H100 runs them: compiled for sm_90 on any machine (Triton's wheel ships
ptxas and nvdisasm), through benchmarks/flash_attention_sass.py, in a process of its own so that
the CPU interpreter, which conftest.py turns on without CUDA, stays out of it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import triton

TOOL = Path(__file__).resolve().parents[3] / "benchmarks" / "flash_attention_sass.py"
NVDISASM = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "nvdisasm"


@pytest.fixture(scope="module")
def loops():
    """One JSON line per loop of each kernel, as the tool prints them (one compile of all)."""
    if not NVDISASM.exists():
        pytest.skip("this Triton wheel ships no nvdisasm")
    run = subprocess.run(
        [sys.executable, str(TOOL)],
        capture_output=True,
        text=True,
        env={**os.environ, "TRITON_INTERPRET": "0"},
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return [json.loads(line) for line in run.stdout.splitlines()]


def test_dkdv_loops_stream_row_statistics_without_per_element_copies(loops):
    """With L and D by tensor descriptor the dK/dV loops issue no per-element asynchronous copy
    (LDGSTS), and the unmasked loop stays well under the 602 instructions per thread it took at
    64 x 64 tiles with masked pointer loads (323 since)."""
    dkdv = [loop for loop in loops if loop["kernel"] == "dkdv"]
    assert len(dkdv) == 2, dkdv  # the diagonal band's masked loop, then the unmasked one
    for loop in dkdv:
        assert "LDGSTS" not in loop["mix"], loop
        assert loop["mix"]["MUFU.EX2"] == 32  # one exp2 per score: 64 x 64 over 128 threads
    assert dkdv[1]["instructions"] < 400, dkdv[1]
    kernels = {"fwd", "dkdv", "dq", "fwd_gluon", "fwd_pingpong", "dq_gluon", "dkdv_gluon",
               "dkdv_fused_gluon", "dkdv_fused_gluon_wide"}  # fmt: skip
    assert {loop["kernel"] for loop in loops} == kernels
    # Triton waits for each product it issues before the next step (every wait leaves none
    # running), which is what the Gluon kernels exist to avoid.
    assert all(set(loop["waits_leave_running"]) == {0} for loop in dkdv), dkdv


def test_gluon_loops_overlap_exp2_with_the_next_product(loops):
    """Each Gluon kernel has one loop whose first wait leaves a product running (dP^T or dP
    during the exp2s); the dK/dV loop's second wait leaves dV running during dS^T. dK/dV: per
    query tile four 64 x 64 x 64 products (16 HGMMA of k = 16), one exp2 per score, two query
    tiles per copy and loop iteration; dQ at 64 x 128 tiles: S and dP of 64 x 128 x 64 (4 HGMMA
    each) and dQ of 64 x 64 x 128 (8)."""
    by_kernel = {name: [loop for loop in loops if loop["kernel"] == name] for name in
                 ("dq_gluon", "dkdv_gluon")}  # fmt: skip
    assert [len(found) for found in by_kernel.values()] == [1, 1], by_kernel
    dq, dkdv = by_kernel["dq_gluon"][0], by_kernel["dkdv_gluon"][0]
    assert dkdv["query_tiles"] == 2, dkdv
    assert dkdv["waits_leave_running"] == [1, 1, 1, 1], dkdv
    assert dkdv["mix"]["HGMMA.64"] == 32 and dkdv["mix"]["MUFU.EX2"] == 64, dkdv
    # K and V are loaded into registers once: every product takes its A operand from there
    # (P^T and dS^T for dV and dK, K and V for S^T and dP^T), none reads it from shared memory.
    assert dkdv["hgmma_a_in_registers"] == 32, dkdv
    # ... and K's and V's registers (S^T and dP^T, 2 tiles x 2 products x 4 HGMMA) are never
    # rewritten inside the loop: the ptxas bug that reuses them at one tile per copy is absent.
    assert dkdv["hgmma_a_loop_invariant"] == 16, dkdv
    assert dkdv["registers"] <= 255, dkdv  # two programs per SM: 2 x 128 threads x 256
    # One copy, barrier wait and refill per two tiles: 683 instructions per thread for both
    # (masked band included), against 401 for one tile when each tile had its own copy.
    assert dkdv["instructions"] < 720, dkdv
    assert dq["waits_leave_running"] == [1, 0], dq
    assert dq["mix"]["HGMMA.64"] == 16 and dq["mix"]["MUFU.EX2"] == 64, dq
    for loop in (dq, dkdv):
        assert "LDGSTS" not in loop["mix"], loop


def test_fused_dq_loop_adds_each_tile_by_one_bulk_reduction(loops):
    """The dK/dV kernel with dQ fused in: per query tile a fifth product (dQ^T, 4 HGMMA) and one
    bulk reduction of the whole float32 dQ tile by the copy engine (UTMAREDG), no per-element
    atomics. Its waits still each leave a product running: ptxas has not serialised the loop
    (it does when a product carried round the loop is read after its wait, which is why dQ^T
    is waited for within its own tile). K and V stay loop-invariant register operands, and
    the program still fits twice per SM."""
    (fused,) = [loop for loop in loops if loop["kernel"] == "dkdv_fused_gluon"]
    assert fused["query_tiles"] == 2, fused
    assert fused["waits_leave_running"] == [1] * 6, fused
    assert fused["mix"]["HGMMA.64"] == 40 and fused["mix"]["MUFU.EX2"] == 64, fused
    assert fused["mix"]["UTMAREDG"] == 2, fused  # one per query tile
    assert not {"RED", "ATOM", "ATOMG", "REDG", "LDGSTS"} & set(fused["mix"]), fused
    # dQ^T = K^T dS^T takes K^T from registers too, loaded once: 2 tiles x 5 products x 4
    # HGMMA with a register A operand, of which S^T's, dP^T's and dQ^T's (24) never rewritten
    assert fused["hgmma_a_in_registers"] == 40, fused
    assert fused["hgmma_a_loop_invariant"] == 24, fused
    assert fused["registers"] <= 255, fused


def test_wide_fused_dq_loop_keeps_its_registers_and_overlap(loops):
    """The fused strategy's tile from 8K queries: 128 keys over 8 warps, four query tiles per
    copy. Per tile S^T, dP^T, dV, dK (4 HGMMA each per warpgroup) and dQ^T over both
    warpgroups' 128 keys with its columns split between them (8 of 64 x 32 x 16), one bulk
    reduction per tile; each of the 12 waits leaves a product running; K and V (S^T, dP^T) and
    K^T (dQ^T) stay loop-invariant register operands (64 products); no spills, at most 255
    registers (one 256-thread program per SM)."""
    (wide,) = [loop for loop in loops if loop["kernel"] == "dkdv_fused_gluon_wide"]
    assert wide["tile"] == [64, 128, 8, 2] and wide["query_tiles"] == 4, wide
    assert wide["waits_leave_running"] == [1] * 12, wide
    assert wide["mix"]["HGMMA.64"] == 96 and wide["mix"]["MUFU.EX2"] == 128, wide
    assert wide["mix"]["UTMAREDG"] == 4, wide
    assert not {"RED", "ATOM", "ATOMG", "REDG", "LDGSTS", "LDL", "STL"} & set(wide["mix"]), wide
    assert wide["hgmma_a_in_registers"] == 96, wide
    assert wide["hgmma_a_loop_invariant"] == 64, wide
    assert wide["registers"] <= 255, wide


def test_gluon_forward_masks_only_in_its_band_loop(loops):
    """The Gluon forward (64 queries x 128 keys, 4 warps): an unmasked loop with no selects,
    then the diagonal band's masked one. Per key tile S = Q K^T (4 HGMMA of 64 x 128 x 16) and
    O += P~ V (8 of 64 x 64 x 16), one exp2 per score (64 per thread) plus the rescale's two;
    428 instructions per thread in the unmasked loop (the Triton forward's 128 x 128 tile: 466
    per 64 scores), few enough registers (157-160) for three programs per SM."""
    fwd = [loop for loop in loops if loop["kernel"] == "fwd_gluon"]
    assert len(fwd) == 2, fwd
    unmasked, band = fwd
    assert "FSEL" not in unmasked["mix"] and "FSEL" in band["mix"], fwd
    for loop in fwd:
        assert loop["mix"]["HGMMA.64"] == 12 and loop["mix"]["MUFU.EX2"] == 66, loop
        assert loop["registers"] <= 168, loop  # 3 x 128 threads x 168 <= 65,536 per SM
    assert unmasked["instructions"] < 460, unmasked


def test_keys_leave_shared_memory_only_where_ptxas_keeps_their_registers():
    """K and V become register operands at head_dim <= 64 with two or more query tiles per copy
    (the shipped tile; the test above shows their registers untouched through its loop). At one
    tile per copy they stay in shared memory: there Triton's bundled ptxas 12.8 reuses their
    registers inside the causal loop (ninth session, probe 3: dK and dV wrong), so that loop's
    S^T and dP^T read them from shared memory and only dV's and dK's 8 HGMMA take a register
    operand (P^T, dS^T)."""
    if not NVDISASM.exists():
        pytest.skip("this Triton wheel ships no nvdisasm")
    from kernels_triton.flash_attention_gluon import gluon_dkdv_layouts

    def keys_in_registers(head_dim, query_tiles):
        layouts = gluon_dkdv_layouts(head_dim, torch.bfloat16, 64, 64, 4, query_tiles)
        return layouts["KEYS_IN_REGISTERS"]

    assert keys_in_registers(64, 2) and keys_in_registers(32, 2)
    assert not keys_in_registers(64, 1) and not keys_in_registers(128, 2)
    run = subprocess.run(
        [sys.executable, str(TOOL), "--gluon-dkdv-query-tiles", "1"],
        capture_output=True,
        text=True,
        env={**os.environ, "TRITON_INTERPRET": "0"},
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    dkdv = [json.loads(line) for line in run.stdout.splitlines() if "dkdv_gluon" in line]
    assert len(dkdv) == 1 and dkdv[0]["query_tiles"] == 1, dkdv
    assert dkdv[0]["hgmma_a_in_registers"] == 8, dkdv


def test_pingpong_forward_overlaps_softmax_with_its_own_product(loops):
    """The ping-pong forward at head_dim 128 (128 x 128 tiles): each consumer warpgroup (two, each
    with an unmasked loop and a diagonal-band loop) issues S_j and the previous tile's P~V per
    turn (8 + 8 HGMMA of 64 x 128 x 16), waits for S_j alone so that its softmax (one exp2 per
    score, 64 x 128 over 128 threads, plus the rescale factors) runs while P~V does, then for
    P~V; nothing spills to local memory after the register split."""
    pingpong = [loop for loop in loops if loop["kernel"] == "fwd_pingpong"]
    assert len(pingpong) == 4, pingpong
    for loop in pingpong:
        assert loop["head_dim"] == 128, loop
        assert loop["waits_leave_running"] == [1, 0], loop
        assert loop["mix"]["HGMMA.64"] == 16, loop
        assert loop["mix"]["MUFU.EX2"] == 64 + 2, loop
        assert not {"LDL", "STL"} & set(loop["mix"]), loop
    # the unmasked loops pay no per-element mask
    assert sum("FSEL" not in loop["mix"] for loop in pingpong) == 2, pingpong
