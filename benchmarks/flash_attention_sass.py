"""Instruction mix of the attention kernels' loops, compiled for the H100 (sm_90) on any machine.

Triton's wheel ships ptxas and nvdisasm, so the kernels compile to SASS without a GPU. For each
kernel (the Triton forward, dK/dV and dQ; the Gluon forward, dQ and dK/dV) at one head_dim and
tile, this prints one JSON line per loop of the SASS that issues tensor-core instructions: the
instructions one thread issues per iteration and how many of each kind (HGMMA: tensor core;
MUFU.EX2: exp2; F2FP: float32 -> 16-bit packs; LDGSTS: per-element asynchronous copies; U*: the
uniform datapath's loop bookkeeping), and `waits_leave_running`: for each tensor-core wait in
the loop, how many products it lets run on (0 everywhere in the Triton kernels; the Gluon
kernels leave one running so that exp2 and the tensor cores work at once);
`hgmma_a_in_registers`: products whose A operand comes from registers, not shared memory;
`hgmma_a_loop_invariant`: of those, the ones whose registers no instruction in the loop rewrites
(how the ninth session caught ptxas clobbering K and V in the dK/dV loop). This is how the
fifth session found that masked pointer loads of L and D took ~250 of the dK/dV loop's ~600
instructions per thread.

    python benchmarks/flash_attention_sass.py                      # D64 at the headline's tiles
    python benchmarks/flash_attention_sass.py --head-dim 128 --dkdv-tile 64,64,4,2
    git show REV:packages/kernels-triton/src/kernels_triton/flash_attention_triton.py > /tmp/a.py
    python benchmarks/flash_attention_sass.py --module /tmp/a.py   # an older version beside

Counts are static (a loop's body as compiled, masked band loops included) and the runtime's
specialisations (16-byte divisibility of pointers and strides) are not applied, so treat them as
the shape of the work, not exact runtime figures; the register count is ptxas's for this build.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

POINTERS_FP32 = {"LSE", "LSE2", "DELTA", "DQ_ACC", "STATS"}
POINTERS_INPUT = {"Q", "K", "V", "O", "DO", "DQ", "DK", "DV"}
FLOATS = {"qk_scale", "sm_scale"}
KERNELS = {"fwd": "_attn_fwd_kernel", "dkdv": "_attn_bwd_dkdv_kernel", "dq": "_attn_bwd_dq_kernel"}
# SASS kinds reported whole (the rest by their first word: FFMA, IMAD, ...)
WHOLE = ("HGMMA", "MUFU", "F2FP")
BIN = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"


def load_module(path: str | None):
    if path is None:
        import kernels_triton.flash_attention_triton as module

        return module
    spec = importlib.util.spec_from_file_location("flash_attention_under_study", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def _signature(kernel, constants: dict) -> tuple[dict, dict]:
    """Triton signature types for the kernel's arguments (constants taken as given), plus the
    constexprs: unit head_dim strides (as the launchers specialise them)."""
    signature, chosen = {}, {}
    for name in kernel.arg_names:
        if name in constants:
            chosen[name] = constants[name]
        elif name.startswith("stride_") and name.endswith("d"):
            chosen[name] = 1  # unit stride along head_dim
        elif name in POINTERS_FP32:
            signature[name] = "*fp32"
        elif name in POINTERS_INPUT:
            signature[name] = "*bf16"
        elif name in FLOATS:
            signature[name] = "fp32"
        else:
            signature[name] = "i32"
    signature.update(dict.fromkeys(chosen, "constexpr"))
    return signature, chosen


def _sass_of(compiled) -> tuple[str, int | None]:
    with tempfile.NamedTemporaryFile(suffix=".cubin") as cubin:
        cubin.write(compiled.asm["cubin"])
        cubin.flush()
        sass = subprocess.run(
            [BIN / "nvdisasm", "-c", cubin.name], capture_output=True, text=True, check=True
        ).stdout
        usage = subprocess.run(
            [BIN / "cuobjdump", "--dump-resource-usage", cubin.name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    registers = re.search(r"REG:(\d+)", usage)
    return sass, int(registers.group(1)) if registers else None


def _compile_for_sm90(source_class, kernel, head_dim: int, tile, **constants):
    """SASS and register count of `kernel` compiled for sm_90, bf16, causal, at `tile`
    (BLOCK_M, BLOCK_N, num_warps, num_stages[, maxnreg]), with the kernel-specific `constants`."""
    block_m, block_n, num_warps, num_stages = tile[:4]
    options = dict(num_warps=num_warps, num_stages=num_stages)
    if len(tile) == 5:
        options["maxnreg"] = tile[4]  # a register cap, as the tuned forward tile has
    constants = dict(HEAD_DIM=head_dim, CAUSAL=True, BLOCK_M=block_m, BLOCK_N=block_n, **constants)
    signature, chosen = _signature(kernel, constants)
    compiled = triton.compile(
        source_class(kernel, signature, chosen), target=GPUTarget("cuda", 90, 32), options=options
    )
    return _sass_of(compiled)


def compile_gluon_sass(
    which: str, head_dim: int, tile: tuple[int, int, int, int], query_tiles: int = 1
):
    """SASS of a Gluon kernel (flash_attention_gluon.py; `which` is "fwd_gluon", "fwd_pingpong"
    (FlashAttention-3's ping-pong, warp-specialised), "dq_gluon", "dkdv_gluon" or
    "dkdv_fused_gluon" / "dkdv_fused_gluon_wide" (dQ added in by the copy engine; the wide one is
    the tile the fused strategy takes on long sequences), the last three with `query_tiles` query
    tiles per copy) for sm_90, bf16, causal."""
    import torch
    from triton.experimental.gluon._runtime import GluonASTSource

    from kernels_triton import flash_attention_gluon as gluon_module

    block_m, block_n, num_warps, num_stages = tile
    if which == "fwd_gluon":
        kernel = gluon_module._attn_fwd_gluon_kernel
        constants = gluon_module.gluon_forward_layouts(
            head_dim, torch.bfloat16, block_m, block_n, num_warps
        )
    elif which == "fwd_pingpong":
        kernel = gluon_module._attn_fwd_pingpong_kernel
        constants = dict(
            CONSUMER_REGISTERS=gluon_module.PINGPONG_CONSUMER_REGISTERS,
            PRODUCER_REGISTERS=gluon_module.PINGPONG_PRODUCER_REGISTERS,
            **gluon_module.gluon_pingpong_layouts(head_dim, torch.bfloat16, block_m, block_n),
        )
        # The tile counts both consumer warpgroups; the launch names the first one's 4 warps.
        num_warps, tile = 4, (block_m, block_n, 4, num_stages)
    elif which == "dq_gluon":
        kernel = gluon_module._attn_bwd_dq_gluon_kernel
        constants = gluon_module.gluon_dq_layouts(
            head_dim, torch.bfloat16, block_m, block_n, num_warps
        )
    else:
        kernel = gluon_module._attn_bwd_dkdv_gluon_kernel
        constants = dict(
            QUERY_TILES=query_tiles,
            **gluon_module.gluon_dkdv_layouts(
                head_dim,
                torch.bfloat16,
                block_m,
                block_n,
                num_warps,
                query_tiles,
                fused_dq=which.startswith("dkdv_fused_gluon"),
            ),
        )
    return _compile_for_sm90(
        GluonASTSource, kernel, head_dim, tile, NUM_STAGES=num_stages, num_warps=num_warps,
        **constants,
    )  # fmt: skip


def compile_sass(kernel, head_dim: int, tile: tuple[int, ...]) -> tuple[str, int | None]:
    """SASS text and ptxas's register count of `kernel` compiled for sm_90 with bf16 inputs,
    causal, tensor descriptors on (for L and D too, as from 2,048 queries), unit head_dim strides
    (as the launchers specialise them)."""
    return _compile_for_sm90(
        ASTSource, kernel, head_dim, tile, DOT_PRECISION="tf32", USE_TMA=True, FUSED_DQ=False,
        DQ_TMA_REDUCE=False, STATS_TMA=True,
    )  # fmt: skip


def _registers_written(op: str) -> int:
    """How many consecutive registers an instruction writes from its first operand on."""
    if op.startswith("LDSM"):  # LDSM.16.M88.4: four matrices, one register each
        return int(op.rsplit(".", 1)[1]) if op[-1].isdigit() else 1
    return 4 if ".128" in op else 2 if ".64" in op else 1


def _loop_invariant_a_operands(body: list[str]) -> int:
    """HGMMAs in `body` whose A operand's four registers no instruction in `body` writes."""
    written = set()
    for line in body:
        found = re.match(r"\s+/\*[0-9a-f]+\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]+)\s+R(\d+)", line)
        # HGMMA's first operand is its accumulator, a store's an address: neither is an A operand
        if found and not found.group(1).startswith(("HGMMA", "ST")):
            first = int(found.group(2))
            written.update(range(first, first + _registers_written(found.group(1))))
    invariant = 0
    for line in body:
        if product := re.search(r"HGMMA\.\S+ R\d+, R(\d+),", line):
            first = int(product.group(1))
            invariant += not written.intersection(range(first, first + 4))
    return invariant


def loop_mixes(sass: str) -> list[dict]:
    """Per loop whose body issues HGMMA: its size and mix. A loop is a label that a later,
    predicated branch jumps back to (the unconditional branches back are returns from the
    out-of-line spin-waits at a kernel's end, not loops)."""
    lines = sass.splitlines()
    labels = {}
    for i, line in enumerate(lines):
        if label := re.match(r"^(\.L_x_\d+):", line):
            labels[label.group(1)] = i
    mixes = []
    for end, line in enumerate(lines):
        back = re.search(r"@!?U?P\w+\s+BRA `\((\.L_x_\d+)\)", line)
        start = labels.get(back.group(1)) if back else None
        if start is None or start >= end:
            continue
        kinds = collections.Counter()
        waits = []  # the tensor-core waits in issue order: how many products each leaves running
        for body_line in lines[start : end + 1]:
            if wait := re.search(r"WARPGROUP\.DEPBAR\.LE gsb0, (0x[0-9a-f]+)", body_line):
                waits.append(int(wait.group(1), 16))
            op = re.match(r"\s+/\*[0-9a-f]+\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]+)", body_line)
            if op:
                name = op.group(1)
                kinds[name if name.startswith(WHOLE) else name.split(".")[0]] += 1
        if any(kind.startswith("HGMMA") for kind in kinds):
            body = "\n".join(lines[start : end + 1])
            mixes.append(
                {
                    "instructions": sum(kinds.values()),
                    "waits_leave_running": waits,
                    # products whose A operand is in registers (HGMMA d, Ra, ...), not shared
                    # memory (HGMMA d, gdesc[...], ...)
                    "hgmma_a_in_registers": len(re.findall(r"HGMMA\.\S+ R\d+, R\d+,", body)),
                    # ... of which no instruction in the loop rewrites (an operand loaded once
                    # before the loop, as K and V in the Gluon dK/dV kernel)
                    "hgmma_a_loop_invariant": _loop_invariant_a_operands(lines[start : end + 1]),
                    "mix": dict(kinds.most_common()),
                }
            )
    return mixes


def parse_tile(text: str) -> tuple[int, ...]:
    parts = tuple(int(p) for p in text.split(","))
    if len(parts) not in (4, 5):
        raise argparse.ArgumentTypeError(
            f"tile is BLOCK_M,BLOCK_N,warps,stages[,maxnreg], got {text!r}"
        )
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--module", help="a flash_attention_triton.py to study (default: ours)")
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--fwd-tile", type=parse_tile, default=(128, 128, 8, 2, 128))
    parser.add_argument("--dkdv-tile", type=parse_tile, default=(64, 64, 4, 3))
    parser.add_argument("--dq-tile", type=parse_tile, default=(128, 64, 8, 3))
    parser.add_argument("--gluon-fwd-tile", type=parse_tile, default=(64, 128, 4, 2))
    parser.add_argument("--pingpong-tile", type=parse_tile, default=(128, 128, 8, 3))
    parser.add_argument(
        "--pingpong-head-dim", type=int, default=128, help="the ping-pong forward's head_dim"
    )
    parser.add_argument("--gluon-dq-tile", type=parse_tile, default=(64, 128, 4, 3))
    parser.add_argument("--gluon-dkdv-tile", type=parse_tile, default=(64, 64, 4, 2))
    parser.add_argument("--gluon-dkdv-query-tiles", type=int, default=2)
    parser.add_argument("--gluon-fused-wide-tile", type=parse_tile, default=(64, 128, 8, 2))
    parser.add_argument("--gluon-fused-wide-query-tiles", type=int, default=4)
    args = parser.parse_args()
    module = load_module(args.module)
    tiles = {
        "fwd": args.fwd_tile,
        "dkdv": args.dkdv_tile,
        "dq": args.dq_tile,
        "fwd_gluon": args.gluon_fwd_tile,
        "fwd_pingpong": args.pingpong_tile,
        "dq_gluon": args.gluon_dq_tile,
        "dkdv_gluon": args.gluon_dkdv_tile,
        "dkdv_fused_gluon": args.gluon_dkdv_tile,
        "dkdv_fused_gluon_wide": args.gluon_fused_wide_tile,
    }
    query_tiles = {
        which: args.gluon_fused_wide_query_tiles if which.endswith("_wide") else
        args.gluon_dkdv_query_tiles for which in tiles
    }  # fmt: skip
    for which in tiles:
        head_dim = args.pingpong_head_dim if which == "fwd_pingpong" else args.head_dim
        if "_gluon" in which or which == "fwd_pingpong":
            sass, registers = compile_gluon_sass(which, head_dim, tiles[which], query_tiles[which])
        else:
            sass, registers = compile_sass(
                getattr(module, KERNELS[which]), args.head_dim, tiles[which]
            )
        for number, mix in enumerate(loop_mixes(sass)):
            row = {"kernel": which, "head_dim": head_dim, "tile": list(tiles[which])}
            if which.startswith("dkdv_"):
                row["query_tiles"] = query_tiles[which]
            row.update(registers=registers, loop=number, **mix)
            row["module"] = args.module or "kernels_triton.flash_attention_triton"
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
