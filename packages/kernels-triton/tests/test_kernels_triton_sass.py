"""The kernels as the H100 runs them: compiled for sm_90 on any machine (Triton's wheel ships
ptxas and nvdisasm), through benchmarks/flash_attention_sass.py, in a process of its own so that
the CPU interpreter, which conftest.py turns on without CUDA, stays out of it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import triton

TOOL = Path(__file__).resolve().parents[3] / "benchmarks" / "flash_attention_sass.py"
NVDISASM = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "nvdisasm"


@pytest.mark.skipif(not NVDISASM.exists(), reason="this Triton wheel ships no nvdisasm")
def test_dkdv_loops_stream_row_statistics_without_per_element_copies():
    """With L and D by tensor descriptor the dK/dV loops issue no per-element asynchronous copy
    (LDGSTS), and the unmasked loop stays well under the 602 instructions per thread it took at
    64 x 64 tiles with masked pointer loads (323 since)."""
    run = subprocess.run(
        [sys.executable, str(TOOL)],
        capture_output=True,
        text=True,
        env={**os.environ, "TRITON_INTERPRET": "0"},
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    loops = [json.loads(line) for line in run.stdout.splitlines()]
    dkdv = [loop for loop in loops if loop["kernel"] == "dkdv"]
    assert len(dkdv) == 2, dkdv  # the diagonal band's masked loop, then the unmasked one
    for loop in dkdv:
        assert "LDGSTS" not in loop["mix"], loop
        assert loop["mix"]["MUFU.EX2"] == 32  # one exp2 per score: 64 x 64 over 128 threads
    assert dkdv[1]["instructions"] < 400, dkdv[1]
    assert {loop["kernel"] for loop in loops} == {"fwd", "dkdv", "dq"}
