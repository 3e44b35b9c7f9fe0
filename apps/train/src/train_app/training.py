"""`train`: build the model (nn_core) and optimizer (optim), hand them to trainer.Trainer.

This module is where the packages meet: the run directory's token files and tokenizer size,
nn_core's TransformerLM with the attention kernel `device.place` chose, optim's AdamW (weight
decay on matrices only) with its cosine schedule and gradient clipping, and the trainer's loop,
checkpoints, metrics and DDP. What it adds is the user-facing part: a clean stop on Ctrl-C
(finish the step, save, exit), and out-of-memory turned into advice.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import statistics
import sys
from dataclasses import dataclass
from typing import Any, TextIO

import torch

from train_app import accounting
from train_app.config import Config
from train_app.device import Placement, place, resolve_device
from train_app.errors import UserError
from train_app.prepare import check_enough_tokens
from train_app.rundir import RunDir


class StopRequested(Exception):
    """Raised at the start of a step after Ctrl-C, so the stop happens between steps."""


@dataclass
class TrainResult:
    model: torch.nn.Module  # the trained, unwrapped model (for sampling)
    step: int
    summary: dict[str, Any]
    placement: Placement
    interrupted: bool = False
    is_main: bool = True  # rank 0 (or the only process): the one that reports


def model_config(config: Config, vocab_size: int):
    import nn_core

    m = config.model
    return nn_core.ModelConfig(
        vocab_size=vocab_size,
        context_length=m.context_length,
        d_model=m.d_model,
        num_layers=m.num_layers,
        num_heads=m.num_heads,
        d_ff=m.d_ff,
        rope_theta=m.rope_theta,
        norm=m.norm,
        ffn=m.ffn,
        pos=m.pos,
        tie_embeddings=m.tie_embeddings,
    )


def build_model(config: Config, vocab_size: int, attention: Any = "sdpa") -> torch.nn.Module:
    import nn_core

    return nn_core.TransformerLM(model_config(config, vocab_size), attention_fn=attention)


class _StopFlag:
    """Ctrl-C (or SIGTERM) sets the flag: the step in flight finishes, then the run saves and
    stops. A second Ctrl-C stops at once."""

    def __init__(self):
        self.set = False
        self.previous: dict = {}

    def __enter__(self):
        # SIGTERM (a job scheduler's "please stop") is treated as Ctrl-C.
        self.previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            # (outside the main thread, e.g. under a test runner's thread, signals stay as they are)
            with contextlib.suppress(ValueError):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.set:
            raise KeyboardInterrupt
        self.set = True
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(
            f"\n{name}: finishing this step, saving a checkpoint (Ctrl-C again to quit now)",
            file=sys.stderr,
            flush=True,
        )

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False


def _oom_advice(config: Config, world_size: int) -> UserError:
    t = config.train
    micro = t.batch_size // (t.grad_accum_steps * world_size)
    return UserError(
        f"out of GPU memory with {micro} sequences x {config.model.context_length} tokens per "
        f"micro-step. Same batch, less memory: --train.grad_accum_steps {t.grad_accum_steps * 2} "
        f"(or --model.context_length / --train.batch_size smaller, or a smaller model)",
        exit_code=3,
    )


def train(
    config: Config,
    run: RunDir,
    out: TextIO,
    *,
    resume: bool = True,
) -> TrainResult:
    """Train `run` to config.train.max_steps, resuming from its latest checkpoint if `resume`."""
    import optim
    import trainer as tr

    meta = run.load_meta()
    check_enough_tokens(meta, config.model.context_length)
    vocab_size = meta["vocab_size"]

    resolve_device(config.system.device)  # a clear error before torchrun's process group
    dist = tr.init_distributed(config.system.device)
    if not dist.is_main:
        out = open(os.devnull, "w")  # noqa: SIM115 (only rank 0 speaks)
    head_dim = config.model.d_model // config.model.num_heads
    micro_batch = config.train.batch_size // (config.train.grad_accum_steps * dist.world_size)
    shape = (max(micro_batch, 1), config.model.num_heads, config.model.context_length, head_dim)
    placement = place(config.system, head_dim, dist.device, attention_shape=shape)
    for notice in placement.notices:
        print(notice, file=out)

    latest = tr.latest_checkpoint(run.checkpoint_dir) if resume else None
    start_step = tr.read_checkpoint(latest).iteration if latest else 0
    t = config.train
    if start_step >= t.max_steps:
        print(
            f"train      already at step {start_step:,} of train.max_steps={t.max_steps:,}: "
            f"nothing to do (raise --train.max_steps to train longer)",
            file=out,
        )
        model = build_model(config, vocab_size, placement.attention)
        tr.load_checkpoint(latest, model)
        return TrainResult(model.to(dist.device), start_step, {}, placement, False, dist.is_main)

    if dist.is_main:
        run.save_config(config)
    torch.manual_seed(t.seed)
    model = build_model(config, vocab_size, placement.attention)
    o = config.optim
    optimizer = optim.AdamW(
        optim.weight_decay_param_groups(model, o.weight_decay),
        lr=o.lr,
        betas=(o.beta1, o.beta2),
        eps=o.eps,
        foreach=True,
    )
    cost = accounting.model_cost(config, vocab_size)
    peak = None
    if placement.device.type == "cuda":
        peak = accounting.peak_flops(
            torch.cuda.get_device_name(placement.device), placement.precision
        )

    stop = _StopFlag()

    def lr_at(step: int) -> float:
        # Called by the trainer at the start of every step: the one place a stop can happen
        # without leaving a half-made step behind.
        requested = stop.set
        if dist.enabled and step % 10 == 0:
            # Every rank must stop at the same step, or the others would hang in all-reduce:
            # agree on it every 10 steps (each agreement is a host sync the trainer avoids).
            flag = torch.tensor([float(requested)], device=dist.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            requested = bool(flag.item())
        elif dist.enabled:
            requested = False
        if requested:
            raise StopRequested
        # (a run shorter than its warmup warms up over all of it)
        return optim.cosine_lr(step, o.lr, o.min_lr, min(o.warmup_steps, t.max_steps), t.max_steps)

    train_config = tr.TrainConfig(
        max_steps=t.max_steps,
        batch_size=t.batch_size,
        grad_accum_steps=t.grad_accum_steps,
        context_length=config.model.context_length,
        vocab_size=vocab_size,
        max_grad_norm=t.max_grad_norm or None,
        eval_interval=t.eval_interval,
        eval_batches=t.eval_batches,
        log_interval=t.log_interval,
        checkpoint_interval=t.checkpoint_interval or t.max_steps,
        keep_checkpoints=t.keep_checkpoints,
        seed=t.seed,
        device=str(dist.device),
        precision=placement.precision,
        compile=placement.compile,
        compile_mode=placement.compile_mode,
    )
    dtype = meta["dtype"]
    train_data = tr.open_tokens(run.train_bin, dtype)
    val_data = tr.open_tokens(run.val_bin, dtype)

    print(
        f"model      TransformerLM · {cost.params / 1e6:.2f}M parameters "
        f"({cost.non_embedding_params / 1e6:.2f}M besides embeddings) · {config.model.num_layers} "
        f"layers · d_model {config.model.d_model} · context {config.model.context_length}\n"
        f"device     {placement.describe()}"
        + (f" · {dist.world_size} processes (DDP)" if dist.enabled else ""),
        file=out,
    )
    tokens = t.batch_size * config.model.context_length
    epochs = t.max_steps * tokens / max(1, meta["train_tokens"])
    where = f"from step {start_step:,}" if start_step else "from scratch"
    print(
        f"train      {where} to {t.max_steps:,} steps x {t.batch_size} x "
        f"{config.model.context_length} tokens ({t.max_steps * tokens / 1e6:.1f}M tokens, "
        f"{epochs:.1f} epochs) · AdamW lr {o.lr:g} cosine to {o.min_lr:g}",
        file=out,
        flush=True,
    )

    try:
        trainer = tr.Trainer(
            model,
            optimizer,
            train_data,
            val_data,
            train_config,
            lr_schedule=lr_at,
            clip_grad=optim.clip_grad_norm_,
            flops_per_token=cost.flops_per_token_train,
            peak_flops=peak,
            out_dir=run.root,
            resume_from=latest,
            dist=dist,
            console=out,
        )
    except tr.CheckpointError as e:
        raise UserError(f"cannot resume {run.root}: {e}") from None

    interrupted = False
    try:
        with stop:
            summary = trainer.fit()
    except StopRequested:
        interrupted = True
        path = trainer.save()
        if dist.is_main:
            tr.plot_losses(run.metrics_path, run.loss_png)
        summary = {"step": trainer.step, "last_checkpoint": str(path), "val_loss": None}
        print(
            f"stopped    at step {trainer.step:,}; saved {path}. Continue with: "
            f"uv run apps/train resume --run {run.root}",
            file=out,
        )
    except torch.OutOfMemoryError:
        raise _oom_advice(config, dist.world_size) from None
    except tr.NonFiniteLossError as e:
        raise UserError(str(e)) from None

    summary["session_tokens_per_s"], summary["session_mfu"] = _throughput(run, start_step)
    return TrainResult(trainer.model, trainer.step, summary, placement, interrupted, dist.is_main)


def _throughput(run: RunDir, start_step: int) -> tuple[float | None, float | None]:
    """Median tokens/s and MFU over this session's logged steps, the first window left out
    (it holds torch.compile's and the allocator's warm-up)."""
    records = [r for r in run.read_metrics() if "tokens_per_s" in r and r["step"] > start_step]
    if len(records) > 2:
        records = records[1:]
    if not records:
        return None, None
    tps = statistics.median(r["tokens_per_s"] for r in records)
    mfus = [r["mfu"] for r in records if r.get("mfu") is not None]
    return tps, (statistics.median(mfus) if mfus else None)


def perplexity(loss: float | None) -> str:
    return f"{math.exp(loss):,.1f}" if loss is not None and loss < 50 else "-"
