"""FlashAttention-2 (ours, Triton) against PyTorch's attention, in the same run on the same GPU.

Peers: scaled_dot_product_attention with its FlashAttention-2 backend ("sdpa_flash"), its cuDNN
backend ("sdpa_cudnn") and its unfused math backend ("sdpa_math"), and naive PyTorch attention
("naive": matmul, causal mask, softmax, matmul; materialises T x T). Latencies are medians of
triton.testing.do_bench on fresh random inputs. TFLOP/s count the matrix products only: forward
4*B*H*T_q*T_k*D, halved for causal attention (the masked half is not computed), backward 2.5x
and forward+backward 3.5x the forward (the FlashAttention-2 paper's convention). The headline
adds "fwd_back_to_back": the forward's device time, 50 calls queued back to back (see
back_to_back_ms), beside do_bench's per-call figure, which also counts host time. Its figures are
medians of --rounds interleaved rounds (each round times every pass of every implementation
once), with each figure's range beside it (`*_ms_range`): at the 16K shape the H100 runs at its
power cap and one implementation timed after another sees a different clock.

    python benchmarks/bench_flash_attention.py headline          # the two headline shapes + memory
    python benchmarks/bench_flash_attention.py sweep --csv PATH  # CS336 sweep (batch 1, causal)
    python benchmarks/bench_flash_attention.py sweep --csv PATH --dtypes float32 --head-dims 128

Each line printed is one JSON object with ours, each peer and the ratios peer_ms / ours_ms
(above 1: ours is faster).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import time
import warnings

import torch
import torch.nn.functional as F
import triton
from torch.nn.attention import SDPBackend, sdpa_kernel

from kernels_triton import flash_attention

PEERS = ("sdpa_flash", "sdpa_cudnn", "sdpa_math", "naive")
IMPLS = ("ours", *PEERS)
PASSES = ("fwd", "bwd", "fwd_bwd")
BACKENDS = {
    "sdpa_flash": SDPBackend.FLASH_ATTENTION,
    "sdpa_cudnn": SDPBackend.CUDNN_ATTENTION,
    "sdpa_math": SDPBackend.MATH,
}


def naive_attention(q, k, v, is_causal):
    """What one writes without a fused kernel: every intermediate is a (T_q, T_k) tensor."""
    scores = q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5  # (B, H, T_q, T_k)
    if is_causal:
        n_q, n_k = scores.shape[-2:]
        hidden = torch.ones(n_q, n_k, dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(hidden, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def run_impl(name, q, k, v, is_causal):
    if name == "ours":
        return flash_attention(q, k, v, is_causal)
    if name == "naive":
        return naive_attention(q, k, v, is_causal)
    with sdpa_kernel(BACKENDS[name]):
        return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)


def forward_flops(batch, heads, n_q, n_k, dim, is_causal):
    return 4 * batch * heads * n_q * n_k * dim / (2 if is_causal else 1)


PASS_FLOPS = {"fwd": 1.0, "bwd": 2.5, "fwd_bwd": 3.5, "fwd_back_to_back": 1.0}


def back_to_back_ms(fn, calls: int = 50, repeats: int = 7) -> float:
    """Median ms per call of `calls` calls queued back to back between two CUDA events.

    do_bench flushes the L2 cache before every call and times each call alone, so when a call's
    host-side work (Python, autograd, launch) outlasts the flush, the GPU idles inside the timed
    window: for a sub-millisecond kernel that host time shows up in the figure. Queued back to
    back, as in a training step where the host runs ahead of the GPU, the host time overlaps the
    previous call's kernel and the figure is the device time.
    """
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / calls)
    return sorted(times)[repeats // 2]


def pass_calls(name, shape, dtype, is_causal, passes):
    """{pass: a function that takes rep_ms and returns ms} for one implementation on fresh
    inputs, after a first call (compile, autotune, plan); a string for every pass instead when
    the implementation cannot run."""
    gen = torch.Generator(device="cuda").manual_seed(hash((name, shape, str(dtype))) % 2**31)

    def randn():
        return torch.randn(shape, device="cuda", dtype=dtype, generator=gen).requires_grad_()

    q, k, v = randn(), randn(), randn()
    grad_out = torch.randn(shape, device="cuda", dtype=dtype, generator=gen)
    try:
        out = run_impl(name, q, k, v, is_causal)  # first call: compile / autotune / plan
        out.backward(grad_out)
        torch.cuda.synchronize()
    except torch.cuda.OutOfMemoryError:
        return dict.fromkeys(passes, "oom")
    except RuntimeError as exc:  # e.g. "No available kernel" for float32 on flash / cuDNN
        return dict.fromkeys(passes, "unsupported: " + str(exc).split("\n")[0][:80])

    def forward():
        return run_impl(name, q, k, v, is_causal)

    def bench(fn, rep_ms, **kwargs):
        return triton.testing.do_bench(
            fn, warmup=max(rep_ms // 4, 5), rep=rep_ms, return_mode="median", **kwargs
        )

    calls = {}
    if "fwd" in passes:
        calls["fwd"] = lambda rep_ms: bench(forward, rep_ms)
    if "fwd_back_to_back" in passes:
        calls["fwd_back_to_back"] = lambda rep_ms: back_to_back_ms(forward)
    if "bwd" in passes:
        out = forward()
        calls["bwd"] = lambda rep_ms: bench(
            lambda: out.backward(grad_out, retain_graph=True), rep_ms, grad_to_none=[q, k, v]
        )
    if "fwd_bwd" in passes:
        calls["fwd_bwd"] = lambda rep_ms: bench(
            lambda: forward().backward(grad_out), rep_ms, grad_to_none=[q, k, v]
        )
    return calls


def time_impl(name, shape, dtype, is_causal, passes, rep_ms):
    """{pass: median ms} for one implementation; a string instead of ms when it cannot run."""
    calls = pass_calls(name, shape, dtype, is_causal, passes)
    results = {}
    for p in passes:
        if isinstance(calls[p], str):
            results[p] = calls[p]
            continue
        try:
            results[p] = calls[p](rep_ms)
        except torch.cuda.OutOfMemoryError:
            results[p] = "oom"
    return results


def time_interleaved(impls, shape, dtype, is_causal, passes, rep_ms, rounds):
    """{name: {pass: [ms per round]}}: every implementation set up at once, then `rounds` rounds
    that each time every pass of every implementation once, one after another. A GPU's clock
    drifts under sustained load (at the 16K headline shape the H100 sits at its power cap), so
    timing one implementation's passes after the other's favours whichever runs first."""
    calls = {name: pass_calls(name, shape, dtype, is_causal, passes) for name in impls}
    samples = {name: {p: [] for p in passes} for name in impls}
    for _ in range(rounds):
        for p in passes:
            for name in impls:
                if isinstance(calls[name][p], str):
                    samples[name][p] = calls[name][p]
                else:
                    samples[name][p].append(calls[name][p](rep_ms))
    return samples


def materialised_bytes(shape, dtype, name):
    """Rough peak of the unfused implementations: S, P, dP, dS in the input dtype plus a bool
    mask (naive), or float32 intermediates (the math backend upcasts half inputs)."""
    batch, heads, seq, _ = shape
    elem = torch.finfo(dtype).bits // 8 if name == "naive" else 4
    return batch * heads * seq * seq * (5 * elem + 1)


def compare(shape, dtype, is_causal, passes, rep_ms, impls=IMPLS, memory_limit=None, rounds=1):
    """Time every implementation; one JSON-ready dict per pass. With rounds > 1 (fused
    implementations only: all of them stay set up at once) the figures are the medians of that
    many interleaved rounds, with their range beside them."""
    times, ranges = {}, {}
    if rounds > 1:
        samples = time_interleaved(impls, shape, dtype, is_causal, passes, rep_ms, rounds)
        for name, by_pass in samples.items():
            times[name] = {
                p: ms if isinstance(ms, str) else statistics.median(ms) for p, ms in by_pass.items()
            }
            ranges[name] = {
                p: [round(min(ms), 4), round(max(ms), 4)]
                for p, ms in by_pass.items()
                if not isinstance(ms, str)
            }
        torch.cuda.empty_cache()
    for name in impls if rounds == 1 else ():
        unfused = name in ("naive", "sdpa_math")
        if unfused and memory_limit and materialised_bytes(shape, dtype, name) > memory_limit:
            times[name] = dict.fromkeys(passes, "skipped: would materialise > memory limit")
            continue
        times[name] = time_impl(name, shape, dtype, is_causal, passes, rep_ms)
        torch.cuda.empty_cache()  # the inputs and graph of this impl are gone; free their blocks
    batch, heads, seq, dim = shape
    flops = forward_flops(batch, heads, seq, seq, dim, is_causal)
    rows = []
    for p in passes:
        row = {
            "batch": batch,
            "heads": heads,
            "seq": seq,
            "head_dim": dim,
            "dtype": str(dtype).removeprefix("torch."),
            "causal": is_causal,
            "pass": p,
        }
        if rounds > 1:
            row["rounds"] = rounds
        ours = times["ours"].get(p)
        for name in impls:
            ms = times[name].get(p)
            row[f"{name}_ms"] = round(ms, 4) if isinstance(ms, float) else ms
            if isinstance(ms, float):
                row[f"{name}_tflops"] = round(flops * PASS_FLOPS[p] / ms / 1e9, 1)
            if p in ranges.get(name, {}):
                row[f"{name}_ms_range"] = ranges[name][p]
            if name != "ours" and isinstance(ms, float) and isinstance(ours, float):
                row[f"{name}_over_ours"] = round(ms / ours, 3)
        rows.append(row)
    return rows


def peak_memory(shape, dtype, name, is_causal=True):
    """Peak bytes allocated by one forward+backward beyond the inputs and their gradients."""
    gen = torch.Generator(device="cuda").manual_seed(1)
    q, k, v = (
        torch.randn(shape, device="cuda", dtype=dtype, generator=gen).requires_grad_()
        for _ in range(3)
    )
    grad_out = torch.randn(shape, device="cuda", dtype=dtype, generator=gen)
    run_impl(name, q, k, v, is_causal).backward(grad_out)  # warm: compile, grads allocated
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    try:
        run_impl(name, q, k, v, is_causal).backward(grad_out)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    except torch.cuda.OutOfMemoryError:
        return "oom"
    finally:
        del q, k, v, grad_out
        torch.cuda.empty_cache()


def emit(row, figure):
    print(json.dumps({"figure": figure, **row}), flush=True)


def headline(rep_ms: int, rounds: int) -> None:
    device = torch.cuda.get_device_name()
    impls = ("ours", "sdpa_flash", "sdpa_cudnn")
    for shape, passes in [((1, 16, 16384, 64), PASSES), ((4, 16, 4096, 128), PASSES)]:
        for row in compare(
            shape, torch.bfloat16, True, (*passes, "fwd_back_to_back"), rep_ms, impls,
            rounds=rounds,
        ):  # fmt: skip
            emit({**row, "device": device}, "flash_attention_latency")
    from kernels_triton.flash_attention_triton import _chosen_configs

    for (_, key), (config, _) in _chosen_configs.items():
        emit({"key": [str(part) for part in key], "config": str(config)}, "autotuned_config")
    from kernels_triton import flash_attention_triton as fat

    for key, fused in fat._fused_backward_faster.items():  # the strategy each key timed faster
        emit({"key": [str(part) for part in key], "fused_dq": fused}, "backward_strategy")
    for key, pingpong in fat._pingpong_forward_faster.items():  # ... and forward (head_dim 128)
        emit({"key": [str(part) for part in key], "pingpong": pingpong}, "forward_strategy")
    gluon = dict(
        enabled=fat.GLUON_BACKWARD, head_dims=fat.GLUON_HEAD_DIMS, dq_tile=fat.GLUON_DQ_TILE,
        dkdv_tile=fat.GLUON_DKDV_TILE, dkdv_query_tiles=fat.GLUON_DKDV_QUERY_TILES,
        fused_dkdv_tile=fat.GLUON_FUSED_DKDV_TILE,
        fused_dkdv_query_tiles=fat.GLUON_FUSED_DKDV_QUERY_TILES,
        fused_wide_min_queries=fat.GLUON_FUSED_WIDE_MIN_QUERIES,
        min_queries=fat.STATS_TMA_MIN_QUERIES,
    )  # fmt: skip
    emit(gluon, "gluon_backward")
    gluon = dict(
        enabled=fat.GLUON_FORWARD, head_dims=fat.GLUON_HEAD_DIMS, tile=fat.GLUON_FWD_TILE,
        min_scores=fat.GLUON_MIN_SCORES,
    )  # fmt: skip
    emit(gluon, "gluon_forward")  # the forward rows at head_dim 64 ran this kernel, not a tuned one
    gluon = dict(
        enabled=fat.GLUON_PINGPONG, head_dims=fat.GLUON_PINGPONG_HEAD_DIMS,
        tile=fat.GLUON_PINGPONG_TILE, min_scores=fat.GLUON_MIN_SCORES,
    )  # fmt: skip
    emit(gluon, "gluon_pingpong_forward")  # ... and the ones at head_dim 128 this one
    shape = (1, 16, 16384, 64)
    mem = {name: peak_memory(shape, torch.bfloat16, name) for name in (*impls, "naive")}
    row = {"shape": list(shape), "dtype": "bfloat16", "causal": True, "pass": "fwd_bwd"}
    for name, peak in mem.items():
        row[f"{name}_peak_mib"] = round(peak / 2**20, 1) if isinstance(peak, int) else peak
        if name != "ours" and isinstance(peak, int) and isinstance(mem["ours"], int):
            row[f"{name}_over_ours"] = round(peak / mem["ours"], 2)
    emit({**row, "device": device}, "flash_attention_peak_memory")


def sweep(
    csv_path: str | None,
    rep_ms: int,
    budget_s: float,
    dtypes: tuple[torch.dtype, ...] = (torch.bfloat16, torch.float32),
    head_dims: tuple[int, ...] = (16, 32, 64, 128),
) -> None:
    device = torch.cuda.get_device_name()
    memory_limit = 0.6 * torch.cuda.get_device_properties(0).total_memory
    start = time.time()
    rows = []
    for dtype in dtypes:
        for dim in head_dims:
            for seq in (2**p for p in range(7, 17)):
                if time.time() - start > budget_s:
                    emit({"stopped": "budget", "elapsed_s": round(time.time() - start)}, "sweep")
                    break
                shape = (1, 1, seq, dim)  # CS336: batch 1, one head
                for row in compare(shape, dtype, True, PASSES, rep_ms, IMPLS, memory_limit):
                    row["device"] = device
                    emit(row, "flash_attention_sweep")
                    rows.append(row)
            write_csv(csv_path, rows)  # after every head_dim: a cut-off run keeps what it has


def write_csv(csv_path: str | None, rows: list[dict]) -> None:
    if csv_path and rows:
        fields = sorted({key for row in rows for key in row}, key=_field_order)
        tmp = csv_path + ".tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, csv_path)


def _field_order(key: str):
    head = ["device", "batch", "heads", "seq", "head_dim", "dtype", "causal", "pass"]
    if key in head:
        return (0, head.index(key), "")
    impl = next((i for i, name in enumerate(IMPLS) if key.startswith(name)), len(IMPLS))
    return (1, impl, key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["headline", "sweep"])
    parser.add_argument("--csv", help="sweep: write every row here (written whole, then renamed)")
    parser.add_argument("--rep-ms", type=int, default=100, help="do_bench timing window per case")
    parser.add_argument("--budget-s", type=float, default=480, help="sweep: stop starting cases")
    parser.add_argument(
        "--rounds", type=int, default=7, help="headline: interleaved rounds (medians reported)"
    )
    parser.add_argument(
        "--dtypes", default="bfloat16,float32", help="sweep: comma-separated, of bfloat16,float32"
    )
    parser.add_argument("--head-dims", default="16,32,64,128", help="sweep: comma-separated")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU")
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 means float32, for every impl
    warnings.filterwarnings("ignore")  # SDPA warns at length for every float32 flash/cuDNN call
    if args.mode == "headline":
        if args.rounds < 1:
            parser.error(f"--rounds must be at least 1, got {args.rounds}")
        headline(args.rep_ms, args.rounds)
    else:
        dtypes = {"bfloat16": torch.bfloat16, "float32": torch.float32}
        chosen = args.dtypes.split(",")
        unknown = [name for name in chosen if name not in dtypes]
        if unknown:
            parser.error(f"--dtypes: unknown {unknown}; choose from {sorted(dtypes)}")
        try:
            head_dims = tuple(int(d) for d in args.head_dims.split(","))
        except ValueError:
            parser.error(f"--head-dims: comma-separated integers, got {args.head_dims!r}")
        sweep(args.csv, args.rep_ms, args.budget_s, tuple(dtypes[n] for n in chosen), head_dims)


if __name__ == "__main__":
    main()
