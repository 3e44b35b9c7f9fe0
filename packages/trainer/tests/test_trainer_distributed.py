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


def test_two_gloo_ranks_ddp_and_fsdp2_match_one_process_and_resume(tmp_path):
    args = ["--steps", "8", "--batch-size", "8", "--accum", "2", "--checkpoint-interval", "4"]
    args += ["--eval-interval", "4"]
    run_here(tmp_path / "single", *args)
    # One torchrun launch, two ranks: a DDP run, then an FSDP2 run; after each, both ranks
    # resume from its step-4 checkpoint into <run>/resumed.
    run(tmp_path, *args, "--data-parallel", "ddp,fsdp2", "--then-resume-from", "4", nproc=2)
    single = losses(tmp_path / "single", "train_loss")
    assert len(single) == 8 and single[-1] < single[0]
    for mode in ("ddp", "fsdp2"):
        out = tmp_path / mode
        distributed = losses(out, "train_loss")
        # Same samples, same averaged gradients; only the summation order differs.
        np.testing.assert_allclose(distributed, single, rtol=1e-5, atol=0, err_msg=mode)
        np.testing.assert_allclose(
            losses(out, "val_loss"), losses(tmp_path / "single", "val_loss"), rtol=1e-5
        )
        # Only rank 0 wrote: one metrics file, one set of checkpoints, full (unsharded) tensors.
        checkpoints = sorted(p.name for p in (out / "checkpoints").iterdir())
        assert checkpoints == ["step_00000004.safetensors", "step_00000008.safetensors"], mode
        ckpt = read_checkpoint(out / "checkpoints" / checkpoints[-1])
        assert {k: tuple(v.shape) for k, v in ckpt.model.items()} == {
            k: tuple(v.shape) for k, v in trainer_testutil.TinyLM().state_dict().items()
        }
        # Both ranks resumed from step 4 and retraced steps 5..8 exactly.
        assert losses(out / "resumed", "train_loss") == distributed[4:], mode
        assert losses(out / "resumed", "grad_norm") == losses(out, "grad_norm")[4:], mode
