"""Train a small nn_core model through the trainer under torchrun (NCCL on GPUs, gloo on CPU).

    torchrun --nproc_per_node N benchmarks/bench_trainer_ddp.py [--steps 40]

Every rank: joins the process group, trains under DDP to `--steps` with a checkpoint halfway,
then builds a fresh model + optimizer, resumes from the halfway checkpoint and trains the second
half again. Rank 0 prints JSON lines: the backend, the loss curve's ends, and how far the resumed
losses are from the first pass (0.0 means bit-identical).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

import nn_core
import optim
import trainer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--out", default=None)
    parser.add_argument("--data-parallel", default="ddp", choices=["ddp", "fsdp2"])
    args = parser.parse_args()

    info = trainer.init_distributed("auto")
    cuda = info.device.type == "cuda"
    config = nn_core.ModelConfig(
        vocab_size=512, context_length=64, d_model=128, num_layers=2, num_heads=4, d_ff=352
    )
    # Rank 0 names the run directory; every rank must resume from the same checkpoint file.
    shared = [args.out or (tempfile.mkdtemp() if info.is_main else None)]
    dist.broadcast_object_list(shared, src=0)
    tmp = Path(shared[0])
    tokens = np.random.default_rng(0).integers(0, 512, size=200_000, dtype=np.uint16)
    half = args.steps // 2

    def train(out_dir, resume_from=None):
        torch.manual_seed(0)
        model = nn_core.TransformerLM(config, attention_fn="sdpa")

        def optimizer(params):  # a factory: FSDP2 builds it after sharding
            return optim.AdamW(params, lr=3e-3, betas=(0.9, 0.95), foreach=True)

        cfg = trainer.TrainConfig(
            max_steps=args.steps,
            batch_size=16 * info.world_size,
            context_length=64,
            vocab_size=512,
            eval_interval=half,
            eval_batches=4,
            log_interval=1,
            checkpoint_interval=half,
            device=str(info.device),
            precision="bf16" if cuda else "fp32",
            progress_bar=False,
            plot=False,
            data_parallel=args.data_parallel,
        )
        run = trainer.Trainer(
            model,
            optimizer,
            tokens,
            tokens[:20_000],
            cfg,
            out_dir=out_dir,
            resume_from=resume_from,
            dist=info,
            console=None,
            lr_schedule=lambda t: optim.cosine_lr(t, 3e-3, 3e-4, 5, args.steps),
        )
        run.fit()
        if not info.is_main:
            return []
        return [
            r for r in trainer.read_metrics(Path(out_dir) / "metrics.jsonl") if "train_loss" in r
        ]

    first = train(tmp / "first")
    ckpt = tmp / "first" / "checkpoints" / trainer.checkpointer.checkpoint_name(half)
    dist.barrier()
    second = train(tmp / "resumed", resume_from=ckpt)
    if info.is_main:
        backend = dist.get_backend() if dist.is_initialized() else None
        first_tail = [r["train_loss"] for r in first[half:]]
        resumed = [r["train_loss"] for r in second]
        print(
            json.dumps(
                {
                    "figure": f"{args.data_parallel}_train",
                    "backend": backend,
                    "world_size": info.world_size,
                    "device": torch.cuda.get_device_name(info.device) if cuda else "cpu",
                    "process_group": info.enabled,
                    "loss_first": first[0]["train_loss"],
                    "loss_last": first[-1]["train_loss"],
                    "steps": len(first),
                }
            ),
            flush=True,
        )
        print(
            json.dumps(
                {
                    "figure": f"{args.data_parallel}_resume_max_abs_diff",
                    "ours": max(abs(a - b) for a, b in zip(first_tail, resumed)),
                    "steps_compared": len(resumed),
                    "bit_identical": first_tail == resumed,
                }
            ),
            flush=True,
        )
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
