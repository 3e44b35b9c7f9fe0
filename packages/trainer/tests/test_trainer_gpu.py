"""The trainer on a CUDA device (run on the lent GPU: pytest -m gpu)."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer import TokenLoader, TrainConfig, Trainer, get_batch, read_checkpoint, read_metrics

sys.path.insert(0, str(Path(__file__).parent))
from trainer_testutil import VOCAB, TinyLM, make_tokens

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
TRAIN, VAL = make_tokens(5000, seed=1), make_tokens(1000, seed=2)


def test_get_batch_and_loader_on_cuda():
    data = np.arange(1000, dtype=np.uint16)
    x, y = get_batch(data, 4, 16, "cuda")
    assert x.device.type == "cuda" and x.dtype == torch.int64
    assert torch.equal(y, x + 1)
    on_gpu = TokenLoader(data, 4, 16, "cuda", seed=3)
    on_cpu = TokenLoader(data, 4, 16, "cpu", seed=3)
    for _ in range(5):
        assert torch.equal(on_gpu.next()[0].cpu(), on_cpu.next()[0])
    on_gpu.close()
    on_cpu.close()


def run(out, precision, resume_from=None, **overrides):
    torch.manual_seed(0)
    model = TinyLM(d=64)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    values = dict(
        max_steps=20,
        batch_size=16,
        context_length=32,
        vocab_size=VOCAB,
        eval_interval=10,
        eval_batches=2,
        log_interval=1,
        checkpoint_interval=10,
        device="cuda",
        precision=precision,
        progress_bar=False,
        plot=False,
    )
    values.update(overrides)
    Trainer(
        model,
        optimizer,
        TRAIN,
        VAL,
        TrainConfig(**values),
        out_dir=out,
        resume_from=resume_from,
        console=None,
    ).fit()
    return [r["train_loss"] for r in read_metrics(Path(out) / "metrics.jsonl") if "train_loss" in r]


@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
def test_cuda_training_learns_and_resumes(tmp_path, precision):
    full = run(tmp_path / "full", precision)
    assert full[-1] < full[0] - 0.3
    resumed = run(
        tmp_path / "resumed",
        precision,
        resume_from=tmp_path / "full/checkpoints/step_00000010.safetensors",
    )
    # Same kernels, same inputs, same state: the GPU retraces the run (deterministic here).
    np.testing.assert_allclose(resumed, full[10:], rtol=1e-6, atol=0)


def test_compile_and_activation_checkpointing_on_cuda(tmp_path):
    losses = run(
        tmp_path,
        "bf16",
        max_steps=8,
        compile=True,
        activation_checkpointing=True,
        checkpoint_interval=8,
    )
    assert all(np.isfinite(losses))
    ckpt = read_checkpoint(tmp_path / "checkpoints/step_00000008.safetensors")
    assert not any("_orig_mod" in k for k in ckpt.model)
    assert set(ckpt.model) == set(TinyLM(d=64).state_dict())


def test_compile_mode_reduce_overhead_trains_like_the_default_mode(tmp_path):
    """CUDA graphs replay the compiled step: same kernels, same losses (up to the last bits of
    bf16 autocast, where the two modes may fuse differently), eval and checkpoints included."""
    default = run(tmp_path / "default", "bf16", max_steps=12, compile=True)
    graphs = run(
        tmp_path / "graphs", "bf16", max_steps=12, compile=True, compile_mode="reduce-overhead"
    )
    assert all(np.isfinite(graphs)) and graphs[-1] < graphs[0] - 0.3
    np.testing.assert_allclose(graphs, default, rtol=2e-2)
    assert (
        read_checkpoint(tmp_path / "graphs/checkpoints/step_00000010.safetensors").iteration == 10
    )


def test_host_staging_snapshot_is_taken_before_later_writes():
    # A 256 MB state takes milliseconds to cross to the host. The snapshot must hold the values
    # of the moment it was taken, although the host goes on at once and the next write to the
    # live tensor is queued right behind the copy.
    from trainer.checkpoint import HostStaging, snapshot_checkpoint

    model = torch.nn.Module()
    model.big = torch.nn.Parameter(torch.randn(64 << 20, device="cuda"))
    staging = HostStaging()
    for round_ in range(2):  # the second snapshot reuses the first one's pinned buffers
        expected = model.big.detach().cpu()
        tensors, _ = snapshot_checkpoint(model, None, round_, staging=staging)
        staging.hold_writes_until_copied()
        with torch.no_grad():
            model.big.add_(1.0)  # what the optimizer step does next
        staging.wait()
        assert tensors["model.big"].is_pinned()
        assert torch.equal(tensors["model.big"], expected)
    assert not torch.equal(tensors["model.big"], model.big.detach().cpu())
