"""TrainConfig: every knob of a training run, as plain data (it is saved in each checkpoint).

Callables (the LR schedule, the clipping function, the loss) are not config: they are passed to
`Trainer` directly, so a config always round-trips through JSON.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal


@dataclass
class TrainConfig:
    # --- what one optimizer step sees
    max_steps: int = 1000  # optimizer steps; the run ends after step `max_steps`
    batch_size: int = 32  # sequences per optimizer step, summed over ranks and micro-steps
    grad_accum_steps: int = 1  # micro-steps per optimizer step (same global batch, less memory)
    context_length: int = 256
    vocab_size: int | None = None  # if set, the data is checked once, up front, to be < this

    # --- optimization
    max_grad_norm: float | None = 1.0  # clip the global L2 grad norm to this; None: no clipping
    on_nonfinite: Literal["stop", "skip"] = "stop"  # NaN/inf loss: stop the run, or skip step

    # --- evaluation, logging, checkpoints
    eval_interval: int = 100  # steps between validation losses (and one at the end)
    eval_batches: int = 20  # batches (of batch_size sequences) per validation loss
    log_interval: int = 10  # steps between console lines / metrics records
    checkpoint_interval: int = 500  # steps between checkpoints (and one at the end); 0: never
    keep_checkpoints: int = 3  # the most recent N are kept; older ones are deleted
    async_checkpoint: bool = True  # write files on a background thread (snapshot stays exact)
    progress_bar: bool | None = None  # None: draw one when stderr is a terminal
    plot: bool = True  # write loss.png at the end

    # --- reproducibility and hardware
    seed: int = 0  # data order (train loader) and torch RNG (dropout, if any)
    device: str = "auto"  # "auto" (cuda if present), "cpu", "cuda", "cuda:1", ...
    precision: Literal["bf16", "fp16", "fp32"] = "bf16"  # fp16 adds a gradient scaler
    compile: bool = False  # torch.compile the model for the training step
    # torch.compile's mode: "reduce-overhead" replays the compiled forward and backward as CUDA
    # graphs (one launch each instead of one per kernel: for small models whose step is bound
    # by the host's launches); "max-autotune" also searches matmul configs (slow to compile).
    compile_mode: Literal[
        "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"
    ] = "default"
    activation_checkpointing: bool = False  # recompute each block of model.layers in backward
    data_parallel: Literal["ddp", "fsdp2"] = "ddp"  # how ranks share work under torchrun
    prefetch: bool = True  # gather the next batch on a background thread

    def __post_init__(self) -> None:
        positive = ["max_steps", "batch_size", "grad_accum_steps", "context_length"]
        positive += ["eval_interval", "eval_batches", "log_interval", "keep_checkpoints"]
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {value!r}")
        if self.checkpoint_interval < 0:
            raise ValueError(
                f"TrainConfig.checkpoint_interval must be >= 0, got {self.checkpoint_interval!r}"
            )
        if self.batch_size % self.grad_accum_steps:
            raise ValueError(
                f"TrainConfig.batch_size ({self.batch_size}) must be divisible by "
                f"grad_accum_steps ({self.grad_accum_steps})"
            )
        if self.precision not in ("bf16", "fp16", "fp32"):
            raise ValueError(
                f"TrainConfig.precision must be bf16, fp16 or fp32, got {self.precision!r}"
            )
        if self.on_nonfinite not in ("stop", "skip"):
            raise ValueError(
                f"TrainConfig.on_nonfinite must be 'stop' or 'skip', got {self.on_nonfinite!r}"
            )
        if self.data_parallel not in ("ddp", "fsdp2"):
            raise ValueError(
                f"TrainConfig.data_parallel must be 'ddp' or 'fsdp2', got {self.data_parallel!r}"
            )
        modes = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
        if self.compile_mode not in modes:
            raise ValueError(
                f"TrainConfig.compile_mode must be one of {', '.join(modes)}, "
                f"got {self.compile_mode!r}"
            )
        if self.compile_mode != "default" and not self.compile:
            raise ValueError(f"TrainConfig.compile_mode={self.compile_mode!r} needs compile=True")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ValueError(
                f"TrainConfig.max_grad_norm must be > 0 or None, got {self.max_grad_norm!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {unknown}")
        return cls(**values)
