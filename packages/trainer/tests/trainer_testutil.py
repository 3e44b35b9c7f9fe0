"""Shared by the trainer tests: a tiny model, synthetic tokens, and a training script.

Run as a script (by the kill-and-resume and torchrun tests) it trains TinyLM through `Trainer`:
    python trainer_testutil.py --out DIR [--steps N] [--resume latest] [--sleep S] ...
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

VOCAB = 64


class TinyBlock(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.up = nn.Linear(d, 2 * d)
        self.down = nn.Linear(2 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(torch.tanh(self.up(x)))


class TinyLM(nn.Module):
    """Embedding -> a few residual MLP blocks (in .layers) -> Linear: ids (B, T) -> logits."""

    def __init__(self, vocab: int = VOCAB, d: int = 16, n_layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(TinyBlock(d) for _ in range(n_layers))
        self.head = nn.Linear(d, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)  # (B, T, d)
        for block in self.layers:
            x = block(x)
        return self.head(x)  # (B, T, V)


def make_tokens(n: int, seed: int = 0, vocab: int = VOCAB) -> np.ndarray:
    """A learnable stream: mostly `next = (3 * prev + 1) % vocab`, with 20% random tokens."""
    rng = np.random.default_rng(seed)
    tokens = np.empty(n, dtype=np.uint16)
    tokens[0] = 0
    noise = rng.integers(0, vocab, size=n)
    use_noise = rng.random(n) < 0.2
    for i in range(1, n):
        tokens[i] = noise[i] if use_noise[i] else (3 * int(tokens[i - 1]) + 1) % vocab
    return tokens


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--accum", type=int, default=1)
    parser.add_argument("--checkpoint-interval", type=int, default=5)
    parser.add_argument("--eval-interval", type=int, default=10)
    parser.add_argument("--resume", default=None)
    parser.add_argument(
        "--data-parallel",
        default="ddp",
        help="ddp, fsdp2, or both as 'ddp,fsdp2' (then one run each, into OUT/ddp and OUT/fsdp2)",
    )
    parser.add_argument("--sleep", type=float, default=0.0, help="seconds per step (slows a run)")
    parser.add_argument(
        "--then-resume-from",
        type=int,
        default=None,
        help="after the run, resume from its checkpoint at this step into OUT/resumed",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    modes = args.data_parallel.split(",")
    if len(modes) > 1:  # several runs in the same processes (one torchrun launch for all)
        out = args.out
        for mode in modes:
            args.data_parallel, args.out = mode, str(Path(out) / mode)
            run_once(args)
    else:
        run_once(args)
    if torch.distributed.is_initialized():
        # Left to interpreter shutdown, gloo's threads can outlive the process group and abort
        # the rank ("terminate called without an active exception"; seen once in CI).
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def run_once(args) -> None:
    train(args, args.out, args.resume)
    if args.then_resume_from is not None:
        checkpoint = (
            Path(args.out) / "checkpoints" / f"step_{args.then_resume_from:08d}.safetensors"
        )
        train(args, Path(args.out) / "resumed", checkpoint)


def train(args, out, resume) -> None:
    from trainer import TrainConfig, Trainer

    torch.manual_seed(1234)
    model = TinyLM()

    def optimizer(params):  # a factory: FSDP2 builds it after sharding the parameters
        return torch.optim.AdamW(params, lr=3e-3, weight_decay=0.1)

    def schedule(step: int) -> float:
        if args.sleep:
            time.sleep(args.sleep)
        return 3e-3 * min(1.0, (step + 1) / 10)

    config = TrainConfig(
        max_steps=args.steps,
        batch_size=args.batch_size,
        grad_accum_steps=args.accum,
        context_length=16,
        vocab_size=VOCAB,
        eval_interval=args.eval_interval,
        eval_batches=2,
        log_interval=1,
        checkpoint_interval=args.checkpoint_interval,
        keep_checkpoints=2,
        device="cpu",
        precision="fp32",
        data_parallel=args.data_parallel,
        progress_bar=False,
        plot=False,
    )
    trainer = Trainer(
        model,
        optimizer,
        make_tokens(4000, seed=1),
        make_tokens(1000, seed=2),
        config,
        lr_schedule=schedule,
        out_dir=out,
        resume_from=resume,
        console=None,
    )
    trainer.fit()


if __name__ == "__main__":
    main()
