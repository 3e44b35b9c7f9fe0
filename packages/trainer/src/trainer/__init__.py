"""trainer: data, the training loop, safetensors checkpoints, metrics and DDP for any
ids -> logits model. See packages/trainer/README.md.

Table of contents:
    data                      get_batch, TokenLoader, open_tokens, check_token_ids
    checkpoint                save_checkpoint, load_checkpoint, read_checkpoint, CheckpointError
    checkpointer              Checkpointer (keep-last-N, background writes), latest_checkpoint
    config                    TrainConfig
    trainer                   Trainer, NonFiniteLossError
    metrics                   MetricsLogger, read_metrics, plot_losses
    distributed               init_distributed, DistInfo, data_parallel
    activation_checkpointing  apply_activation_checkpointing
    precision                 autocast, grad_scaler
    rng                       capture_rng_state, restore_rng_state
"""

from trainer.activation_checkpointing import apply_activation_checkpointing
from trainer.checkpoint import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    model_state_dict,
    read_checkpoint,
    save_checkpoint,
    serialize_checkpoint,
    snapshot_checkpoint,
    unwrap_model,
)
from trainer.checkpointer import Checkpointer, latest_checkpoint, list_checkpoints
from trainer.config import TrainConfig
from trainer.data import TokenLoader, check_token_ids, get_batch, open_tokens
from trainer.distributed import DistInfo, data_parallel, init_distributed
from trainer.metrics import MetricsLogger, plot_losses, read_metrics
from trainer.precision import autocast, grad_scaler
from trainer.rng import capture_rng_state, restore_rng_state
from trainer.trainer import NonFiniteLossError, Trainer, default_loss

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "Checkpointer",
    "DistInfo",
    "MetricsLogger",
    "NonFiniteLossError",
    "TokenLoader",
    "TrainConfig",
    "Trainer",
    "apply_activation_checkpointing",
    "autocast",
    "capture_rng_state",
    "check_token_ids",
    "data_parallel",
    "default_loss",
    "get_batch",
    "grad_scaler",
    "init_distributed",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "model_state_dict",
    "open_tokens",
    "plot_losses",
    "read_checkpoint",
    "read_metrics",
    "restore_rng_state",
    "save_checkpoint",
    "serialize_checkpoint",
    "snapshot_checkpoint",
    "unwrap_model",
]
