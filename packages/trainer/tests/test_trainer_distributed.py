"""Two real gloo processes under torchrun against one process with the same global batch."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from trainer import read_checkpoint, read_metrics

sys.path.insert(0, str(Path(__file__).parent))
import trainer_testutil

SCRIPT = Path(__file__).parent / "trainer_testutil.py"


def run_here(out, *args):
    """The single-process reference, in this process (saves a Python + torch start-up)."""
    threads = torch.get_num_threads()
    try:
        trainer_testutil.main(["--out", str(out), *args])
    finally:
        torch.set_num_threads(threads)


def run(out, *args, nproc):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    launcher += [f"--nproc_per_node={nproc}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [*launcher, str(SCRIPT), "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def losses(out, key):
    return [r[key] for r in read_metrics(Path(out) / "metrics.jsonl") if key in r]


def test_two_gloo_ranks_match_one_process_and_resume(tmp_path):
    args = [
        "--steps",
        "10",
        "--batch-size",
        "8",
        "--accum",
        "2",
        "--checkpoint-interval",
        "5",
        "--eval-interval",
        "5",
    ]
    run_here(tmp_path / "single", *args)
    # The two ranks train, then both resume from the step-5 checkpoint into ddp/resumed.
    run(tmp_path / "ddp", *args, "--then-resume-from", "5", nproc=2)

    single, ddp = losses(tmp_path / "single", "train_loss"), losses(tmp_path / "ddp", "train_loss")
    assert len(single) == len(ddp) == 10
    # Same samples, same averaged gradients; only the summation order differs.
    np.testing.assert_allclose(ddp, single, rtol=1e-5, atol=0)
    np.testing.assert_allclose(
        losses(tmp_path / "ddp", "val_loss"), losses(tmp_path / "single", "val_loss"), rtol=1e-5
    )
    assert single[-1] < single[0]
    # Only rank 0 wrote: one metrics file, one set of checkpoints.
    checkpoints = sorted(p.name for p in (tmp_path / "ddp" / "checkpoints").iterdir())
    assert checkpoints == ["ckpt_00000005.safetensors", "ckpt_00000010.safetensors"]

    # Both ranks resume from the step-5 checkpoint and retrace steps 6..10 exactly.
    resume = str(tmp_path / "ddp" / "checkpoints" / "ckpt_00000005.safetensors")
    run(tmp_path / "ddp_resumed", *args, "--resume", resume, nproc=2)
    assert losses(tmp_path / "ddp_resumed", "train_loss") == ddp[5:]
    assert (
        losses(tmp_path / "ddp_resumed", "grad_norm") == losses(tmp_path / "ddp", "grad_norm")[5:]
    )


def test_two_gloo_ranks_with_fsdp2_sharding_match_one_process_and_resume(tmp_path):
    args = ["--steps", "6", "--batch-size", "8", "--checkpoint-interval", "3"]
    run_here(tmp_path / "single", *args)
    run(tmp_path / "fsdp2", *args, "--data-parallel", "fsdp2", "--then-resume-from", "3", nproc=2)
    single, sharded = (
        losses(tmp_path / "single", "train_loss"),
        losses(tmp_path / "fsdp2", "train_loss"),
    )
    np.testing.assert_allclose(sharded, single, rtol=1e-5, atol=0)
    # The checkpoint holds full (gathered) tensors: it loads into an unsharded model.
    ckpt = read_checkpoint(tmp_path / "fsdp2" / "checkpoints" / "ckpt_00000006.safetensors")
    assert set(ckpt.model) == set(trainer_testutil.TinyLM().state_dict())
    # Each rank took its own shard of the full weights and moments, and retraced steps 4..6.
    assert losses(tmp_path / "fsdp2" / "resumed", "train_loss") == sharded[3:]
