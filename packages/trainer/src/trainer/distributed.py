"""Several processes, one model: `torchrun` set-up, DDP wrapping, and the FSDP2 switch.

Model code is written for one device; parallelism is applied from outside (torchtitan's rule):

- `init_distributed()` reads the variables `torchrun` sets (RANK, WORLD_SIZE, LOCAL_RANK),
  joins the process group (NCCL on GPUs, gloo on CPU) and picks this rank's device.
- `data_parallel(model, dist, "ddp")` wraps the model in DistributedDataParallel: every rank
  holds all weights, gradients are averaged in buckets during backward.
- `data_parallel(model, dist, "fsdp2")` shards each block of `model.layers`, then the root, with
  `torch.distributed.fsdp.fully_shard`: parameters become DTensors, gathered per block for
  forward/backward, so a model larger than one GPU fits. Sharding replaces the parameters, so
  the optimizer must be built *after* it (pass `Trainer` an optimizer factory).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as torch_dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True when a process group is in use (any torchrun launch, even with one process)."""
        return torch_dist.is_available() and torch_dist.is_initialized()


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} asked for, but CUDA is not available")
    return resolved


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group when launched by torchrun; else describe a single process.

    A torchrun launch with one process still joins a (one-member) group and trains under DDP,
    so `torchrun --nproc_per_node 1` exercises exactly the code path of N processes.
    """
    base = resolve_device(device)
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return DistInfo(device=base)
    world_size = int(os.environ["WORLD_SIZE"])
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if base.type == "cuda":
        device_obj = torch.device("cuda", local_rank)
        torch.cuda.set_device(device_obj)
        backend = "nccl"
    else:
        device_obj = base
        backend = "gloo"
    if not torch_dist.is_initialized():
        kwargs = {"device_id": device_obj} if backend == "nccl" else {}
        torch_dist.init_process_group(backend=backend, **kwargs)
    return DistInfo(rank, world_size, local_rank, device_obj)


def data_parallel(model: torch.nn.Module, dist: DistInfo, mode: str = "ddp") -> torch.nn.Module:
    """Wrap (DDP) or shard (FSDP2) `model` for `dist`; a no-op in a single process."""
    if not dist.enabled:
        return model
    if mode == "ddp":
        device_ids = [dist.device.index] if dist.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    if mode == "fsdp2":
        from torch.distributed.fsdp import fully_shard

        layers = getattr(model, "layers", None)
        if layers is None:
            raise ValueError("FSDP2 sharding needs the model's blocks in `model.layers`")
        for block in layers:
            fully_shard(block)
        fully_shard(model)
        return model
    raise ValueError(f"data-parallel mode must be 'ddp' or 'fsdp2', got {mode!r}")


def all_reduce_mean(values: torch.Tensor, dist: DistInfo) -> torch.Tensor:
    """Average a tensor over ranks (gloo has no AVG op, so SUM then divide)."""
    if dist.enabled:
        torch_dist.all_reduce(values, op=torch_dist.ReduceOp.SUM)
        values = values / dist.world_size
    return values


def barrier(dist: DistInfo) -> None:
    if dist.enabled:
        torch_dist.barrier()
