"""Sweep explicit tile configs of the FlashAttention kernels; the autotune space comes from here.

For every case and every candidate it checks the result against a float32 SDPA reference (a
config that is fast but wrong is reported as such) and times it with triton.testing.do_bench
(median). The forward kernel is timed alone; the dK/dV and dQ kernels are timed inside the whole
backward with the other kernel held at the default tiles, so differences come from the swept one.
Prints one JSON line per (case, kernel, config), then the best per (case, kernel).

    python benchmarks/bench_flash_tiles.py [--budget-s 300] [--cases NAME,...]
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial

import torch
import torch.nn.functional as F
import triton

from kernels_triton.flash_attention_triton import (
    FlashConfig,
    TileConfig,
    default_config,
    flash_attention_triton_backward,
    flash_attention_triton_forward,
)

CASES = {
    "b1h16_t16k_d64_bf16": (1, 16, 16384, 64, torch.bfloat16),
    "b4h16_t4k_d128_bf16": (4, 16, 4096, 128, torch.bfloat16),
    "b1h16_t8k_d32_bf16": (1, 16, 8192, 32, torch.bfloat16),
    "b1h16_t8k_d16_bf16": (1, 16, 8192, 16, torch.bfloat16),
    "b1h16_t4k_d128_fp32": (1, 16, 4096, 128, torch.float32),
    "b1h16_t4k_d64_fp32": (1, 16, 4096, 64, torch.float32),
}


def candidates(kernel: str, dtype: torch.dtype) -> list[TileConfig]:
    if kernel == "dkdv_fused":  # dQ by atomics inside the dK/dV kernel
        pairs = [(32, 64), (64, 64), (32, 128), (64, 128), (16, 64), (128, 128)]
        warps_stages = [(4, 2), (4, 3), (8, 2), (8, 3)]
    elif kernel == "fwd":
        pairs = [(64, 32), (64, 64), (128, 32), (128, 64), (128, 128)]
        warps_stages = [(4, 3), (8, 3), (4, 4), (8, 4), (8, 2)]
    elif kernel == "dkdv":
        pairs = [(16, 64), (32, 64), (32, 128), (64, 64), (64, 128), (16, 128)]
        warps_stages = [(4, 2), (4, 3), (8, 2), (8, 3)]
    else:  # dq
        pairs = [(64, 16), (64, 32), (128, 32), (64, 64), (128, 64), (128, 16)]
        warps_stages = [(4, 2), (4, 3), (8, 2), (8, 3)]
    tiles = [TileConfig(m, n, w, s) for m, n in pairs for w, s in warps_stages]
    if dtype == torch.float32:  # 4-byte tiles: skip the largest
        tiles = [t for t in tiles if t.block_m * t.block_n <= 128 * 64]
    return tiles


def tuned_space(kernel: str) -> list[TileConfig]:
    """The autotuner's own candidates for this kernel."""
    import kernels_triton.flash_attention_triton as fa

    configs = {"fwd": fa._FWD_CONFIGS, "dq": fa._DQ_CONFIGS}.get(kernel, fa._DKDV_CONFIGS)
    return [
        TileConfig(c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.num_warps, c.num_stages)
        for c in configs
    ]


def rel_err(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget-s", type=float, default=300.0)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--kernels", default="fwd,dkdv,dq,dkdv_fused")
    parser.add_argument("--tma", default="off,on", help="streamed tiles by TMA descriptors")
    parser.add_argument("--space", choices=["wide", "tuned"], default="wide")
    args = parser.parse_args()
    start = time.time()
    best: dict[tuple[str, str], tuple[float, TileConfig, bool]] = {}
    for case in args.cases.split(","):
        batch, heads, seq, dim, dtype = CASES[case]
        gen = torch.Generator(device="cuda").manual_seed(0)
        q, k, v, do = (
            torch.randn(batch, heads, seq, dim, device="cuda", generator=gen, dtype=dtype)
            for _ in range(4)
        )
        leaves = [t.float().requires_grad_() for t in (q, k, v)]
        ref_out = F.scaled_dot_product_attention(*leaves, is_causal=True)
        ref_out.backward(do.float())
        ref_grads = [t.grad for t in leaves]
        base = default_config(dim, dtype)
        out, lse = flash_attention_triton_forward(q, k, v, True, base)
        tol = 2e-2 if dtype != torch.float32 else 5e-3
        for kernel in args.kernels.split(","):
            tiles = candidates(kernel, dtype) if args.space == "wide" else tuned_space(kernel)
            for tile, tma in ((t, m == "on") for t in tiles for m in args.tma.split(",")):
                if time.time() - start > args.budget_s:
                    print(json.dumps({"stopped": "budget", "elapsed_s": time.time() - start}))
                    break
                config = FlashConfig(
                    fwd=tile if kernel == "fwd" else base.fwd,
                    dkdv=tile if kernel.startswith("dkdv") else base.dkdv,
                    dq=tile if kernel == "dq" else base.dq,
                    fused_dq=kernel == "dkdv_fused",
                    tma=tma,
                )
                row = {"case": case, "kernel": kernel, "tma": tma, **tile.__dict__}
                try:
                    config.check()
                    t0 = time.time()
                    if kernel == "fwd":
                        fn = partial(flash_attention_triton_forward, q, k, v, True, config)
                        got = fn()[0]
                        errors = [rel_err(got, ref_out)]
                    else:
                        fn = partial(
                            flash_attention_triton_backward, q, k, v, out, lse, do, True, config
                        )
                        dq, dk, dv = fn()
                        errors = [rel_err(g, r) for g, r in zip((dq, dk, dv), ref_grads)]
                    torch.cuda.synchronize()
                    row["first_call_s"] = round(time.time() - t0, 2)
                    ms = triton.testing.do_bench(fn, warmup=10, rep=50, return_mode="median")
                    row.update(ms=round(ms, 4), max_rel_err=max(errors))
                    row["ok"] = max(errors) < tol
                    if row["ok"] and ms < best.get((case, kernel), (float("inf"),))[0]:
                        best[(case, kernel)] = (ms, tile, tma)
                except Exception as exc:  # out of shared memory, bad tile ratio, ...
                    row["error"] = f"{type(exc).__name__}: {str(exc)[:120]}"
                print(json.dumps(row), flush=True)
    for (case, kernel), (ms, tile, tma) in best.items():
        row = {"best": case, "kernel": kernel, "ms": round(ms, 4), "tma": tma, **tile.__dict__}
        print(json.dumps(row))


if __name__ == "__main__":
    main()
