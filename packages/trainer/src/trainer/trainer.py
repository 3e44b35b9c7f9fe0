"""The training loop: `Trainer(model, optimizer, train_data, val_data, config, ...).fit()`.

It composes the swappable parts of this package — `TokenLoader` (data), `snapshot_checkpoint` +
`Checkpointer` (state on disk), `MetricsLogger` (reports), `data_parallel` (DDP/FSDP2) — around
one readable step:

    for each of grad_accum_steps micro-batches:      forward under autocast, loss / accum, backward
    unscale (fp16), measure the global grad norm, clip
    one host sync: (loss, grad norm) averaged over ranks -> NaN/inf check -> optimizer step

The loop knows nothing about the model beyond "token ids (B, T) -> logits (B, T, V)"; the
caller passes the optimizer, the LR schedule and (optionally) the clipping function.
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import torch
import torch.distributed as torch_dist
import torch.nn.functional as F

from trainer.activation_checkpointing import apply_activation_checkpointing
from trainer.checkpoint import (
    CheckpointError,
    HostStaging,
    load_model_weights,
    load_optimizer_state,
    read_checkpoint,
    snapshot_checkpoint,
)
from trainer.checkpointer import Checkpointer, latest_checkpoint
from trainer.config import TrainConfig
from trainer.data import TokenLoader
from trainer.distributed import DistInfo, all_reduce_mean, barrier, data_parallel, init_distributed
from trainer.metrics import MetricsLogger, plot_losses
from trainer.precision import autocast, grad_scaler
from trainer.rng import capture_rng_state, restore_rng_state

# A step's loss and grad norm are read back (and checked for NaN/inf) once this many later steps
# are queued behind it, so the GPU always has that much work queued while the host waits: a host
# hiccup shorter than that (a garbage-collector pass, a log write) never leaves it idle. The
# check still names the step that went bad, and runs before any evaluation or checkpoint of a
# later state.
_READ_BACK_LAG = 2

# The validation stream restarts from this seed at every evaluation, so every validation loss
# of a run (and of a resumed run) is measured on the same batches.
_VAL_SEED_OFFSET = 1_000_003


class NonFiniteLossError(RuntimeError):
    """Loss or grad norm became NaN/inf; names the step and the last good checkpoint."""

    def __init__(self, step: int, loss: float, grad_norm: float, last_checkpoint: Path | None):
        self.step, self.loss, self.grad_norm = step, loss, grad_norm
        self.last_checkpoint = last_checkpoint
        where = str(last_checkpoint) if last_checkpoint else "none written yet"
        super().__init__(
            f"non-finite training loss at step {step} (loss={loss}, grad_norm={grad_norm}); "
            f"last good checkpoint: {where}. Lower the learning rate, check the data, or set "
            f"TrainConfig.on_nonfinite='skip'."
        )


def default_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy, computed in float32 whatever the logits' dtype."""
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())  # (B*T, V), (B*T,)


def _total_grad_norm(params: list[torch.nn.Parameter]) -> torch.Tensor:
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads, norm_type=2.0)
    return norm.full_tensor() if hasattr(norm, "full_tensor") else norm


@dataclass
class _StepNumbers:
    """One step's (loss, grad norm), copied device -> host without blocking the host, and when
    the step ended: on a GPU the event that follows its last kernel (timed on the device's own
    clock, so it does not matter how late the host reads it), on the CPU the host clock (the
    step ran synchronously)."""

    step: int
    tokens_seen: int
    tokens: int
    lr: float
    host: torch.Tensor
    copied: torch.cuda.Event | None
    skipped: bool
    ended_at: float  # host clock when the step was queued: its end on the CPU

    @classmethod
    def start_copy(cls, step, tokens_seen, tokens, lr, stats: torch.Tensor, skipped: bool):
        if stats.device.type != "cuda":
            return cls(step, tokens_seen, tokens, lr, stats, None, skipped, time.perf_counter())
        host = stats.to("cpu", non_blocking=True)  # lands in pinned memory
        copied = torch.cuda.Event(enable_timing=True)
        copied.record()
        return cls(step, tokens_seen, tokens, lr, host, copied, skipped, time.perf_counter())

    @property
    def end_mark(self) -> torch.cuda.Event | float:
        return self.copied if self.copied is not None else self.ended_at

    def seconds_since(self, mark: torch.cuda.Event | float) -> float:
        """Seconds from `mark` (an earlier step's end_mark, or _clock_mark's) to this step's end."""
        if self.copied is not None:
            return mark.elapsed_time(self.copied) / 1e3
        return self.ended_at - mark

    def values(self) -> tuple[float, float]:
        if self.copied is not None:
            self.copied.synchronize()
        loss, grad_norm = self.host.tolist()
        return loss, grad_norm


class Trainer:
    """Trains `model` (ids (B, T) -> logits (B, T, V)) on a flat token array.

    Arguments:
        model: any nn.Module; moved to the run's device. Keep your own reference: the trainer
            saves this uncompiled, unwrapped module's weights.
        optimizer: a torch.optim.Optimizer over model.parameters(), or a factory
            `params -> Optimizer` (needed for FSDP2, which replaces the parameters).
        train_data, val_data: token arrays, memmaps, token-file paths or ready `TokenLoader`s.
        config: a TrainConfig.
        lr_schedule: `step -> lr` (step counts from 0), applied to every param group before each
            step; None leaves the optimizer's lr alone.
        clip_grad: `(params, max_norm) -> total norm or None`; default
            torch.nn.utils.clip_grad_norm_. Called only when config.max_grad_norm is set.
        loss_fn: `(logits, targets) -> scalar`; default float32 cross-entropy.
        flops_per_token: training FLOPs per token (forward + backward, e.g. 6N + attention) for
            MFU; peak_flops: one device's peak FLOP/s at the run's precision.
        out_dir: where metrics.jsonl, loss.png and checkpoints go (None: nothing is written).
        resume_from: a checkpoint path, "latest" (newest in out_dir; a fresh start if none), or
            None.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer | Callable[[Iterable[torch.nn.Parameter]], Any],
        train_data: Any,
        val_data: Any = None,
        config: TrainConfig | None = None,
        *,
        lr_schedule: Callable[[int], float] | None = None,
        clip_grad: Callable[..., Any] | None = None,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        flops_per_token: float | None = None,
        peak_flops: float | None = None,
        out_dir: str | os.PathLike | None = None,
        resume_from: str | os.PathLike | None = None,
        dist: DistInfo | None = None,
        console: TextIO | None = sys.stdout,
    ) -> None:
        self.config = config = config or TrainConfig()
        self.dist = dist = dist or init_distributed(config.device)
        self.device = dist.device
        self.lr_schedule = lr_schedule
        self.clip_grad = clip_grad or torch.nn.utils.clip_grad_norm_
        self.loss_fn = loss_fn or default_loss
        self.flops_per_token, self.peak_flops = flops_per_token, peak_flops
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.resume_from = resume_from

        per_step = config.grad_accum_steps * dist.world_size
        if config.batch_size % per_step:
            raise ValueError(
                f"TrainConfig.batch_size ({config.batch_size}) must be divisible by "
                f"grad_accum_steps x world_size ({config.grad_accum_steps} x {dist.world_size})"
            )
        self.micro_batch = config.batch_size // per_step  # sequences per rank per micro-step

        # --- the model: device, activation checkpointing, sharding/compile/DDP (in that order)
        self.model = model.to(self.device)
        if config.activation_checkpointing:
            apply_activation_checkpointing(self.model)
        if config.data_parallel == "fsdp2":
            data_parallel(self.model, dist, "fsdp2")  # shards in place; params become DTensors
        self.optimizer = (
            optimizer
            if isinstance(optimizer, torch.optim.Optimizer)
            else optimizer(self.model.parameters())
        )
        mode = config.compile_mode
        compiled = torch.compile(self.model, mode=mode) if config.compile else self.model
        # The loss is compiled too (nanoGPT gets the same by computing it inside the compiled
        # forward): fused, the float32 upcast of the (B, T, V) logits and the softmax never
        # materialise, which on a small model is a quarter of the step.
        self._loss = torch.compile(self.loss_fn, mode=mode) if config.compile else self.loss_fn
        self.eval_module = compiled
        self.train_module = (
            data_parallel(compiled, dist, "ddp") if config.data_parallel == "ddp" else compiled
        )
        self.scaler = grad_scaler(config.precision, self.device)

        # --- data
        self.train_loader = self._loader(train_data, config.seed, "train_data")
        self.val_loader = (
            None
            if val_data is None
            else self._loader(val_data, config.seed + _VAL_SEED_OFFSET, "val_data", prefetch=False)
        )

        # --- outputs (rank 0 only writes)
        # Checkpoints leave the GPU through reusable pinned buffers on a side stream, so taking
        # one does not stall training (see HostStaging).
        self._staging = HostStaging() if self.device.type == "cuda" else None
        self._staging_reserved = self._staging is None  # reserved after the first step
        self.checkpointer = (
            Checkpointer(
                self.out_dir / "checkpoints",
                config.keep_checkpoints,
                background=config.async_checkpoint,
            )
            if self.out_dir is not None and config.checkpoint_interval > 0
            else None
        )
        self.logger = MetricsLogger(
            self.out_dir,
            total_steps=config.max_steps,
            enabled=dist.is_main,
            console=console,
            progress_bar=config.progress_bar,
        )

        # --- run state (what a checkpoint restores)
        self.step = 0  # optimizer steps completed
        self.tokens_seen = 0
        self.wall_offset = 0.0  # wall-clock seconds of earlier runs of this run (resume)
        self.last_checkpoint: Path | None = None
        # Host seconds by activity: "step" queues work (it includes "data"); "wait" is the host
        # waiting for the device to finish a step (not overhead: the device is busy).
        self.timings = dict.fromkeys(("step", "data", "wait", "log", "eval", "checkpoint"), 0.0)
        self._wall_start = time.perf_counter()
        # The throughput window: (where it starts: a step's end mark, tokens since, seconds of
        # evaluation and checkpointing inside it, which do not count).
        self._window = (self._clock_mark(), 0, 0.0)

    def _loader(self, data: Any, seed: int, name: str, prefetch: bool | None = None):
        if hasattr(data, "next") and hasattr(data, "state_dict"):
            return data  # a ready loader (anything with next/state_dict/load_state_dict)
        return TokenLoader(
            data,
            self.micro_batch,
            self.config.context_length,
            self.device,
            seed=seed,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            vocab_size=self.config.vocab_size,
            prefetch=self.config.prefetch if prefetch is None else prefetch,
            name=name,
        )

    # ------------------------------------------------------------------------------------------
    # the run

    def fit(self) -> dict[str, Any]:
        """Train until config.max_steps; return a summary (last losses, timings)."""
        config = self.config
        self._start()
        self.model.train()
        self._wall_start = time.perf_counter()
        self._window = (self._clock_mark(), 0, 0.0)
        self._last_train_loss = self._last_val_loss = None
        pending: collections.deque[_StepNumbers] = collections.deque()
        try:
            while self.step < config.max_steps:
                finished = False
                try:
                    t0 = time.perf_counter()
                    current = self._train_step()
                    self.timings["step"] += time.perf_counter() - t0
                    finished = True
                finally:
                    # Report the oldest step once _READ_BACK_LAG newer ones are queued behind it
                    # (or, if this step raised, every step, so that none goes unreported).
                    while pending and (len(pending) >= _READ_BACK_LAG or not finished):
                        self._report(pending.popleft())
                pending.append(current)
                if not self._staging_reserved:
                    self._reserve_checkpoint_buffers()
                at_end = self.step == config.max_steps
                eval_due = self.val_loader is not None and (
                    self.step % config.eval_interval == 0 or at_end
                )
                save_due = self.checkpointer is not None and (
                    self.step % config.checkpoint_interval == 0 or at_end
                )
                if eval_due or save_due or current.skipped:
                    while pending:  # never evaluate or save a step not yet checked
                        self._report(pending.popleft())
                if eval_due:
                    self._timed("eval", self._evaluate_and_log)
                if save_due:
                    self._timed("checkpoint", lambda: self.save(block=False))
            while pending:
                self._report(pending.popleft())
        finally:
            if self.checkpointer is not None:
                self.checkpointer.wait()  # the last checkpoint is on disk when fit() returns
            self.logger.close()
            for loader in (self.train_loader, self.val_loader):
                if loader is not None and hasattr(loader, "close"):
                    loader.close()
        if self.dist.is_main and self.out_dir is not None and config.plot:
            try:
                plot_losses(self.out_dir / "metrics.jsonl", self.out_dir / "loss.png")
            except ImportError as e:  # a bare GPU box without matplotlib: the run still counts
                self.logger.note(f"loss.png skipped ({e}); metrics.jsonl has every figure")
        return {
            "step": self.step,
            "tokens": self.tokens_seen,
            "train_loss": self._last_train_loss,
            "val_loss": self._last_val_loss,
            "wall_s": self._wall(),
            "timings_s": dict(self.timings),
            "last_checkpoint": str(self.last_checkpoint) if self.last_checkpoint else None,
        }

    def _reserve_checkpoint_buffers(self) -> None:
        """Allocate the pinned buffers checkpoints are copied through, once, after the first
        step (the optimizer state exists from then on), instead of inside the first checkpoint:
        page-locking a few hundred MB takes a noticeable fraction of a second, a cost every run
        pays once and better paid at start-up, beside compilation, than in the middle of it."""
        fsdp2 = self.config.data_parallel == "fsdp2"  # a snapshot there is a collective
        if self.dist.is_main and self.checkpointer is not None and not fsdp2:
            self._timed("checkpoint", lambda: self._staging.reserve(self.model, self.optimizer))
        self._staging_reserved = True

    def _timed(self, name: str, fn: Callable[[], Any]) -> None:
        """Run `fn`, book its time under `name`, and keep it out of the throughput window."""
        t0 = time.perf_counter()
        fn()
        spent = time.perf_counter() - t0
        self.timings[name] += spent
        window_start, window_tokens, excluded = self._window
        self._window = (window_start, window_tokens, excluded + spent)

    def _clock_mark(self) -> torch.cuda.Event | float:
        """Now, on the clock the steps' ends are measured on (see _StepNumbers)."""
        if self.device.type != "cuda":
            return time.perf_counter()
        mark = torch.cuda.Event(enable_timing=True)
        mark.record()
        return mark

    def _evaluate_and_log(self) -> None:
        self._last_val_loss = self.evaluate()
        record = {"step": self.step, "tokens": self.tokens_seen, "val_loss": self._last_val_loss}
        self.logger.log({**record, "wall_s": self._wall()})

    def _start(self) -> None:
        source = self.resume_from
        if source == "latest":
            source = latest_checkpoint(self.out_dir / "checkpoints") if self.out_dir else None
        if source is not None:
            self.load(source)
        else:
            torch.manual_seed(self.config.seed + self.dist.rank)
        self.logger.start(self.step)
        if self.step:
            self.logger.note(f"resumed from {source} at step {self.step}")

    def _wall(self) -> float:
        return self.wall_offset + time.perf_counter() - self._wall_start

    def _train_step(self) -> _StepNumbers:
        """Queue one optimizer step; return its (loss, grad norm) on their way to the host.

        With on_nonfinite="stop" nothing here waits for the device: the numbers are read
        _READ_BACK_LAG steps later (`_report`), while the device works on the steps queued
        since, so the host never leaves the accelerator idle. A NaN/inf is still caught with
        the step it happened in, and before any evaluation or checkpoint of a later state.
        "skip" must know before the optimizer steps, so it reads the numbers at once (one host
        sync per step).
        """
        config, optimizer = self.config, self.optimizer
        if self.lr_schedule is not None:
            lr = self.lr_schedule(self.step)
            for group in optimizer.param_groups:
                group["lr"] = lr
        lr = optimizer.param_groups[0]["lr"]

        loss_sum = torch.zeros((), device=self.device)
        accum = config.grad_accum_steps
        for micro in range(accum):
            if config.compile_mode == "reduce-overhead":
                # A new iteration: CUDA graph outputs of the last one may be overwritten.
                torch.compiler.cudagraph_mark_step_begin()
            t0 = time.perf_counter()
            x, y = self.train_loader.next()  # (B, T), (B, T)
            self.timings["data"] += time.perf_counter() - t0
            # DDP all-reduces gradients in backward; only the last micro-step needs to.
            sync = micro == accum - 1 or not hasattr(self.train_module, "no_sync")
            with contextlib.nullcontext() if sync else self.train_module.no_sync():
                with autocast(config.precision, self.device):
                    logits = self.train_module(x)  # (B, T, V)
                loss = self._loss(logits, y)
                loss_sum += loss.detach()
                scaled = loss / accum
                (self.scaler.scale(scaled) if self.scaler else scaled).backward()

        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        params = [p for p in self.model.parameters() if p.grad is not None]
        grad_norm = self._clip(params)
        # The loss averaged over ranks (every rank then takes the same NaN decision), and the
        # grad norm (already global after DDP's all-reduce).
        stats = all_reduce_mean(torch.stack([loss_sum / accum, grad_norm.float()]), self.dist)

        if self._staging is not None:  # a checkpoint still being copied off the GPU
            self._staging.hold_writes_until_copied()
        skipped = False
        if config.on_nonfinite == "skip":
            loss_value, norm_value = stats.tolist()  # host sync: decide before stepping
            skipped = not self._finite(loss_value, norm_value)
        if skipped:
            optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.update()  # consumes the unscale_ bookkeeping of this step
        else:
            if self.scaler is not None:
                self.scaler.step(optimizer)
                self.scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        self.step += 1
        step_tokens = config.batch_size * config.context_length
        self.tokens_seen += step_tokens
        return _StepNumbers.start_copy(self.step, self.tokens_seen, step_tokens, lr, stats, skipped)

    def _finite(self, loss: float, grad_norm: float) -> bool:
        # With fp16 an inf grad norm is the scaler's business (it skips the step and shrinks the
        # scale); a non-finite *loss* is always a real problem.
        return math.isfinite(loss) and (self.scaler is not None or math.isfinite(grad_norm))

    def _report(self, numbers: _StepNumbers) -> None:
        """Wait for a step's numbers, check them, and log them (every log_interval steps)."""
        t0 = time.perf_counter()
        loss, grad_norm = numbers.values()
        t1 = time.perf_counter()
        self.timings["wait"] += t1 - t0
        if not numbers.skipped and not self._finite(loss, grad_norm):
            if self.checkpointer is not None:
                self.checkpointer.wait()  # the last good checkpoint is complete
            raise NonFiniteLossError(numbers.step, loss, grad_norm, self.last_checkpoint)
        self._last_train_loss = loss
        window_start, window_tokens, excluded = self._window
        window_tokens += numbers.tokens
        at_end = numbers.step == self.config.max_steps
        if numbers.step % self.config.log_interval == 0 or at_end or numbers.skipped:
            # From the end of the window's first step to the end of this one, not to now: the
            # host reads steps back late, and in bursts before an evaluation, a checkpoint or
            # the end, so its own clock would stretch one window and shrink the next.
            seconds = numbers.seconds_since(window_start) - excluded
            tokens_per_s = window_tokens / max(seconds, 1e-9)
            record = self._train_record(numbers, loss, grad_norm, tokens_per_s)
            self.logger.log(record)
            window_start, window_tokens, excluded = numbers.end_mark, 0, 0.0
        self._window = (window_start, window_tokens, excluded)
        self.logger.progress(numbers.step, loss)
        self.timings["log"] += time.perf_counter() - t1

    def _train_record(self, numbers: _StepNumbers, loss, grad_norm, tokens_per_s) -> dict:
        mfu = None
        if self.flops_per_token and self.peak_flops:
            mfu = tokens_per_s * self.flops_per_token / (self.peak_flops * self.dist.world_size)
        record = {
            "step": numbers.step,
            "tokens": numbers.tokens_seen,
            "lr": numbers.lr,
            "train_loss": loss,
            "grad_norm": grad_norm,
            "tokens_per_s": tokens_per_s,
            "mfu": mfu,
            "wall_s": self._wall(),
        }
        if numbers.skipped:
            record["skipped"] = True
        return record

    def _clip(self, params: list[torch.nn.Parameter]) -> torch.Tensor:
        """Clip if configured; return the global grad norm *before* clipping."""
        if self.config.max_grad_norm is None:
            return _total_grad_norm(params)
        if self.clip_grad is torch.nn.utils.clip_grad_norm_:  # it returns the pre-clip norm
            norm = self.clip_grad(params, self.config.max_grad_norm)
            return norm.full_tensor() if hasattr(norm, "full_tensor") else norm
        # A caller's clip function (CS336's returns nothing): measure first, then clip.
        norm = _total_grad_norm(params)
        self.clip_grad(params, self.config.max_grad_norm)
        return norm

    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean validation loss over config.eval_batches batches (the same batches every time)."""
        if self.val_loader is None:
            raise ValueError("evaluate() needs val_data")
        self.val_loader.reseed(self.config.seed + _VAL_SEED_OFFSET)
        self.model.eval()
        total = torch.zeros((), device=self.device)
        for _ in range(self.config.eval_batches):
            x, y = self.val_loader.next()
            with autocast(self.config.precision, self.device):
                logits = self.eval_module(x)
            total += self._loss(logits, y)
        self.model.train()
        return all_reduce_mean(total / self.config.eval_batches, self.dist).item()

    # ------------------------------------------------------------------------------------------
    # checkpoints

    def _trainer_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        rng_json, rng_tensors = capture_rng_state()
        per_rank = [(rng_json, rng_tensors)]
        if self.dist.enabled:  # every rank's generators, so every rank resumes exactly
            per_rank = [None] * self.dist.world_size
            torch_dist.all_gather_object(per_rank, (rng_json, rng_tensors))
        state = {
            "step": self.step,
            "tokens_seen": self.tokens_seen,
            "wall_s": self._wall(),
            "world_size": self.dist.world_size,
            "train_loader": self.train_loader.state_dict(),
            "rng": [json_state for json_state, _ in per_rank],
            "grad_scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "config": self.config.to_dict(),
        }
        tensors = {
            f"rng.{rank}.{name}": tensor
            for rank, (_, rank_tensors) in enumerate(per_rank)
            for name, tensor in rank_tensors.items()
        }
        return state, tensors

    def save(self, *, block: bool = True) -> Path:
        """Checkpoint the run now (rank 0 writes; under FSDP2 every rank helps gather).

        The snapshot is taken before this returns; with `block=False` (what the loop uses when
        config.async_checkpoint is set) the file is written by a background thread.
        """
        if self.checkpointer is None:
            raise ValueError("save() needs out_dir and config.checkpoint_interval > 0")
        state, tensors = self._trainer_state()
        path = self.checkpointer.path_for(self.step)
        if self.dist.is_main or self.config.data_parallel == "fsdp2":
            staging = self._staging if self.dist.is_main else None
            if staging is not None:
                self.checkpointer.wait()  # the staging buffers hold the previous snapshot
            snapshot = snapshot_checkpoint(
                self.model,
                self.optimizer,
                self.step,
                extra={"trainer": state},
                extra_tensors=tensors,
                staging=staging,
            )
            if self.dist.is_main:
                ready = staging.wait if staging is not None else None
                self.checkpointer.write(self.step, *snapshot, ready=ready)
                if block:
                    self.checkpointer.wait()
        barrier(self.dist)
        self.last_checkpoint = path
        return path

    def load(self, source: str | os.PathLike) -> int:
        """Restore model, optimizer, data position, RNGs and counters from a checkpoint."""
        ckpt = read_checkpoint(source)
        name = repr(str(source))
        load_model_weights(self.model, ckpt.model, name)
        load_optimizer_state(self.optimizer, ckpt.optimizer, name)
        state = ckpt.extra.get("trainer")
        if state is None:
            raise CheckpointError(
                f"checkpoint {name} holds weights but no trainer state (written by "
                f"save_checkpoint, not Trainer): load it with load_checkpoint() and start fresh"
            )
        self.step = state["step"]
        self.tokens_seen = state["tokens_seen"]
        self.wall_offset = state["wall_s"]
        self.train_loader.load_state_dict(state["train_loader"])
        if self.scaler is not None and state["grad_scaler"]:
            self.scaler.load_state_dict(state["grad_scaler"])
        rank = self.dist.rank
        if rank < len(state["rng"]):
            prefix = f"rng.{rank}."
            rank_tensors = {
                k[len(prefix) :]: v for k, v in ckpt.extra_tensors.items() if k.startswith(prefix)
            }
            restore_rng_state(state["rng"][rank], rank_tensors)
        else:  # resumed on more ranks than were saved: fresh generators for the new ranks
            torch.manual_seed(self.config.seed + rank)
        self.last_checkpoint = Path(source)
        return self.step
