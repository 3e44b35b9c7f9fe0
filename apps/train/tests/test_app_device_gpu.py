"""Placement on a CUDA GPU: the attention timing `auto` relies on, eager and as CUDA graphs."""

import math

import pytest
import torch

from train_app import config as cfg
from train_app.device import _fwd_bwd_ms, _sdpa, place

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
SHAPE = (8, 4, 256, 32)  # (B, H, T, D)


@pytest.mark.parametrize("graphed", [False, True])
def test_fwd_bwd_timing_of_both_kernels(graphed):
    from kernels_triton import flash_attention

    device = torch.device("cuda")
    for attention in (flash_attention, _sdpa):
        ms = _fwd_bwd_ms(attention, SHAPE, device, graphed)
        assert math.isfinite(ms) and 0 < ms < 50, (attention, ms)


def test_auto_under_reduce_overhead_compares_graph_replays():
    config = cfg.load("demo", {"system.compile": "reduce-overhead"})
    placement = place(config.system, head_dim=32, attention_shape=SHAPE)
    assert placement.compile and placement.compile_mode == "reduce-overhead"
    assert "reduce-overhead" in placement.describe()
    (notice,) = placement.notices
    assert "replayed as CUDA graphs" in notice, notice
