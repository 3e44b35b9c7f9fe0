"""The pipeline on CUDA with every `auto` setting: bf16 autocast, torch.compile and the Triton
FlashAttention kernel (or SDPA after its one-line notice). Skipped without a GPU."""

import io
import json

import pytest
import torch

from train_app import accounting, cli

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

TINY_GPU = """
[data]
max_bytes = 120_000
[tokenizer]
vocab_size = 512
[model]
context_length = 64
d_model = 64
num_layers = 2
num_heads = 2  # head size 32: one the Triton kernel supports
d_ff = 192
[train]
max_steps = 60
batch_size = 16
eval_interval = 20
eval_batches = 4
log_interval = 10
[optim]
lr = 1e-2
min_lr = 1e-3
warmup_steps = 5
[sample]
max_new_tokens = 16
"""


def test_pipeline_on_cuda_with_auto_settings(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_GPU)
    out = io.StringIO()
    code = cli.main(["--run", str(tmp_path / "run"), "--config", str(config)], out=out)
    text = out.getvalue()
    assert code == 0, text
    assert "bf16, torch.compile" in text
    # auto times the Triton kernel against SDPA at the run's shape and says which it took
    assert "notice: attention auto -> " in text or "Triton FlashAttention unavailable" in text
    assert "attention flash (Triton)" in text or "attention sdpa (torch)" in text
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    val = [r["val_loss"] for r in records if "val_loss" in r]
    assert val[-1] < val[0] - 0.5, val
    if accounting.peak_flops(torch.cuda.get_device_name()):  # MFU needs a known peak
        assert all(r["mfu"] is not None for r in records if "tokens_per_s" in r)
    assert "sample     " in text


def test_pipeline_on_cuda_with_the_triton_kernel_pinned(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_GPU)
    out = io.StringIO()
    run = ["--run", str(tmp_path / "run"), "--config", str(config)]
    code = cli.main([*run, "--system.attention", "flash", "--train.max_steps", "30"], out=out)
    text = out.getvalue()
    assert code == 0, text
    assert "attention flash (Triton)" in text
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    val = [r["val_loss"] for r in records if "val_loss" in r]
    assert val[-1] < val[0], val
