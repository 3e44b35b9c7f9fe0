"""Checkpoints as one safetensors file: weights, optimizer state and trainer state, no pickle.

Layout of a checkpoint file:

    tensors   model.<name>                 the uncompiled, unwrapped module's state dict
              optim.<param index>.<key>    every tensor in the optimizer's per-parameter state
              extra.<key>                  tensors the caller adds (RNG states, ...)
    metadata  format        "trainer-checkpoint/1"
              iteration     optimizer steps taken, as a decimal string
              optimizer     JSON: param_groups and the non-tensor per-parameter state
              aliases       JSON: {tensor key: key it shares storage with} (tied weights)
              extra         JSON: whatever the caller adds (trainer state, config, ...)

Safetensors metadata is a flat str -> str map, so structured values are JSON. JSON has no
tuples, and optimizers keep `betas` as a tuple, so tuples are written as {"__tuple__": [...]}
and come back as tuples: the loaded optimizer's `state_dict()` equals the saved one.

Writes go to a temporary file beside the target, are fsynced, then renamed over it: a crash at
any point leaves either the old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import io
import json
import os
import struct
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes

FORMAT = "trainer-checkpoint/1"
_MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors library's own limit


class CheckpointError(RuntimeError):
    """A checkpoint is unreadable (truncated, corrupt) or does not fit the model/optimizer."""


# ----------------------------------------------------------------------------------------------
# JSON with tuples


def _encode(value: Any) -> Any:
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        raise TypeError("tensors belong in the tensor section, not in JSON metadata")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in checkpoint metadata: {value!r}")


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__tuple__"}:
            return tuple(_decode(v) for v in value["__tuple__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def to_json(value: Any) -> str:
    return json.dumps(_encode(value))


def from_json(text: str) -> Any:
    return _decode(json.loads(text))


# ----------------------------------------------------------------------------------------------
# Model and optimizer state


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module underneath torch.compile (`_orig_mod`) and DDP (`module`) wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):  # torch.compile's OptimizedModule
            model = model._orig_mod
        elif isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


_WRAPPER_NAMES = {"_orig_mod", "_checkpoint_wrapped_module", "_fsdp_wrapped_module"}


def _clean_key(key: str) -> str:
    # Compiling or wrapping a *submodule* (per-block compile, checkpoint wrappers) puts the
    # wrapper's attribute name inside the key; the saved names are the plain module's.
    if "_mod" not in key:
        return key
    return ".".join(part for part in key.split(".") if part not in _WRAPPER_NAMES)


def model_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Full, unwrapped state dict. FSDP2 shards (DTensors) are all-gathered into full tensors,
    a collective: under FSDP2 every rank must call this, in step."""
    state = unwrap_model(model).state_dict()
    return {_clean_key(k): v.full_tensor() if _is_dtensor(v) else v for k, v in state.items()}


def _shard_like(full: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`full` cut the way `like` is (FSDP2 DTensor), else `full` itself. Every rank holds the
    full tensor (read from the file), so each keeps its own shard: no communication."""
    if not _is_dtensor(like):
        return full
    from torch.distributed.tensor import distribute_tensor

    full = full.to(device=like.device, dtype=like.dtype)
    return distribute_tensor(full, like.device_mesh, like.placements, src_data_rank=None)


def _is_dtensor(t: Any) -> bool:
    return type(t).__name__ == "DTensor"


def _flatten_optimizer(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors and a JSON-able remainder."""
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    # Sorted: under FSDP2 each full_tensor() is a collective, so every rank must go in one order.
    for index, param_state in sorted(state_dict["state"].items()):
        for key, value in sorted(param_state.items()):
            if isinstance(value, torch.Tensor):
                if _is_dtensor(value):
                    value = value.full_tensor()
                tensors[f"optim.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: Mapping[str, torch.Tensor], meta: dict[str, Any]) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        if name.startswith("optim."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = tensor
    for index, values in meta["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


# ----------------------------------------------------------------------------------------------
# Writing


class HostStaging:
    """Page-locked host buffers that a CUDA state is copied into on a side stream, kept from one
    checkpoint to the next.

    Copying tensor by tensor with `.to("cpu")` blocks the host on every copy, and the first one
    also waits for all the GPU work already queued, so the GPU runs dry while the snapshot is
    taken. Here the whole copy is queued at once on a stream of its own, behind the work queued so
    far: the host goes straight back to queueing steps, the GPU runs the next forward and backward
    while the bytes travel, and only the next optimizer step (the first thing that changes the
    saved tensors) must wait for `ready`, on the GPU, through `hold_writes_until_copied()`.

    Whoever reads the host tensors calls `wait()` first. The buffers are reused by the next
    `copy()`, so the previous snapshot must be written (or dropped) before it.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}
        self._streams: dict[torch.device, torch.cuda.Stream] = {}
        self.ready: torch.cuda.Event | None = None
        self._copying: list[torch.Tensor] = []  # sources of the snapshot being queued
        self._held: list[torch.Tensor] = []  # sources kept alive until their copy has read them
        self._writes_held = True

    def reserve(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> None:
        """Allocate the buffers a snapshot of (model, optimizer) needs now, by taking one and
        dropping it."""
        snapshot_checkpoint(model, optimizer, 0, staging=self)
        self.hold_writes_until_copied()
        self.wait()

    def copy(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        """Queue the copy of CUDA `tensor` into this name's pinned buffer; return the buffer."""
        buffer = self._buffers.get(name)
        if buffer is None or buffer.shape != tensor.shape or buffer.dtype != tensor.dtype:
            buffer = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
            self._buffers[name] = buffer
        stream = self._streams.get(tensor.device)
        if stream is None:
            stream = self._streams[tensor.device] = torch.cuda.Stream(tensor.device)
        if not self._copying:  # the first tensor of this snapshot: start behind queued work
            stream.wait_stream(torch.cuda.current_stream(tensor.device))
        with torch.cuda.stream(stream):
            buffer.copy_(tensor.detach(), non_blocking=True)
        self._copying.append(tensor)
        return buffer

    def finish(self) -> None:
        """Mark the end of one snapshot's copies (sets `ready`)."""
        self.ready = None
        self._held, self._copying = self._copying, []
        self._writes_held = not self._held
        if self._held:
            self.ready = torch.cuda.Event()
            for stream in self._streams.values():
                self.ready.record(stream)  # one device per process: one stream in practice

    def hold_writes_until_copied(self) -> None:
        """Make the current stream wait (on the GPU, not the host) until the copy has read the
        live tensors; call before anything modifies them (the optimizer step). Cheap to call
        every step: only the first call after a snapshot does anything."""
        if not self._writes_held:
            for device in self._streams:
                torch.cuda.current_stream(device).wait_event(self.ready)
            self._writes_held = True

    def wait(self) -> None:
        """Block the calling thread until the host buffers hold the snapshot."""
        if self.ready is not None:
            self.ready.synchronize()
        self._held = []


def _detach_for_save(
    tensors: dict[str, torch.Tensor], staging: HostStaging | None = None
) -> tuple[dict, dict[str, str]]:
    """Private CPU copies; tensors that share storage (tied weights) are stored once.

    With `staging`, CUDA tensors go to its pinned buffers asynchronously (see HostStaging)."""
    out: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name, tensor in tensors.items():
        key = (tensor.device, tensor.data_ptr(), tensor.dtype, tuple(tensor.shape), tensor.stride())
        if tensor.numel() and key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        if staging is not None and tensor.is_cuda:
            out[name] = staging.copy(name, tensor)
        else:
            # copy=True: a CPU tensor would otherwise be shared with the live model, and a
            # checkpoint written in the background must not see later optimizer steps.
            out[name] = tensor.detach().to("cpu", copy=True).contiguous()
    if staging is not None:
        staging.finish()
    return out, aliases


def write_atomic(path: Path, write: Callable[[IO[bytes]], None] | bytes) -> None:
    """Write to a temporary file beside `path`, fsync, rename over `path`.

    `write` is the content (bytes) or a function that writes it to the open file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; a checkpoint is an ordinary file
        with os.fdopen(fd, "wb") as f:
            if isinstance(write, bytes | bytearray):
                f.write(write)
            else:
                write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


# ----------------------------------------------------------------------------------------------
# The safetensors container, written as a stream


_SAFETENSORS_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def write_safetensors(f: IO[bytes], tensors: dict[str, torch.Tensor], metadata: dict[str, str]):
    """Write `tensors` (contiguous, CPU) and `metadata` to `f` in the safetensors format.

    The format is an 8-byte little-endian header length, a JSON header (name -> dtype, shape,
    byte offsets; "__metadata__" -> str map) padded with spaces to 8 bytes, then the raw bytes.
    Each tensor goes to the file straight from its own memory: no second copy of the whole
    checkpoint is built, and the file writes release the GIL, so a background write barely
    slows the training thread. Larger elements come first, keeping every tensor aligned.
    """
    order = sorted(tensors, key=lambda name: (-tensors[name].element_size(), name))
    header: dict[str, Any] = {"__metadata__": metadata}
    offset = 0
    for name in order:
        tensor = tensors[name]
        if tensor.dtype not in _SAFETENSORS_DTYPES:
            raise TypeError(f"cannot store tensor {name!r} of dtype {tensor.dtype} in safetensors")
        size = tensor.numel() * tensor.element_size()
        header[name] = {
            "dtype": _SAFETENSORS_DTYPES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    f.write(struct.pack("<Q", len(encoded)))
    f.write(encoded)
    for name in order:
        tensor = tensors[name]
        if tensor.numel():
            f.write(memoryview(tensor.reshape(-1).view(torch.uint8).numpy()))


def snapshot_checkpoint(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    iteration: int,
    *,
    extra: dict[str, Any] | None = None,
    extra_tensors: dict[str, torch.Tensor] | None = None,
    staging: HostStaging | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a checkpoint: private CPU copies, safe to serialize later on
    another thread while training goes on. Under FSDP2 gathering the full weights is a
    collective: every rank must call this.

    With `staging` (a HostStaging) CUDA tensors are copied asynchronously into its pinned
    buffers: call `staging.wait()` before reading the returned tensors, and
    `staging.hold_writes_until_copied()` before the model or optimizer change.
    """
    if int(iteration) != iteration or iteration < 0:
        raise ValueError(f"iteration must be a non-negative integer, got {iteration!r}")
    tensors = {f"model.{k}": v for k, v in model_state_dict(model).items()}
    optimizer_meta: dict[str, Any] | None = None
    if optimizer is not None:
        optim_tensors, optimizer_meta = _flatten_optimizer(optimizer)
        tensors.update(optim_tensors)
    for name, tensor in (extra_tensors or {}).items():
        tensors[f"extra.{name}"] = tensor
    tensors, aliases = _detach_for_save(tensors, staging)
    metadata = {
        "format": FORMAT,
        "iteration": str(int(iteration)),
        "optimizer": to_json(optimizer_meta),
        "aliases": to_json(aliases),
        "extra": to_json(extra or {}),
    }
    return tensors, metadata


def serialize_checkpoint(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """The bytes of a checkpoint file (see the module docstring for the layout)."""
    buffer = io.BytesIO()
    write_safetensors(buffer, tensors, metadata)
    return buffer.getvalue()


def save_checkpoint(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    iteration: int,
    out: str | os.PathLike | IO[bytes],
    *,
    extra: dict[str, Any] | None = None,
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write model weights, optimizer state and `iteration` to `out` (a path or a binary file).

    `extra` (JSON-able, tuples allowed) and `extra_tensors` carry anything else the caller needs
    to resume, e.g. the trainer's data-loader and RNG states. A path is written atomically.
    """
    tensors, metadata = snapshot_checkpoint(
        model, optimizer, iteration, extra=extra, extra_tensors=extra_tensors
    )
    if isinstance(out, str | os.PathLike):
        write_atomic(Path(out), lambda f: write_safetensors(f, tensors, metadata))
    else:
        write_safetensors(out, tensors, metadata)
        if hasattr(out, "flush"):
            out.flush()


# ----------------------------------------------------------------------------------------------
# Reading


@dataclass
class Checkpoint:
    """A checkpoint read into memory (CPU tensors)."""

    iteration: int
    model: dict[str, torch.Tensor]
    optimizer: dict | None  # a torch optimizer state dict, or None if none was saved
    extra: dict[str, Any] = field(default_factory=dict)
    extra_tensors: dict[str, torch.Tensor] = field(default_factory=dict)


def _parse(payload: bytes, source: str) -> Checkpoint:
    if len(payload) < 8:
        raise CheckpointError(f"checkpoint {source} is truncated: {len(payload)} bytes")
    (header_len,) = struct.unpack("<Q", payload[:8])
    if header_len > _MAX_HEADER_BYTES or 8 + header_len > len(payload):
        raise CheckpointError(
            f"checkpoint {source} is truncated or not a safetensors file: header says "
            f"{header_len} bytes, file has {len(payload)}"
        )
    try:
        header = json.loads(payload[8 : 8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint {source} has a corrupt header: {e}") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"checkpoint {source} has a corrupt header (not a JSON object)")
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + header_len + end != len(payload):
        raise CheckpointError(
            f"checkpoint {source} is truncated or corrupt: tensors need "
            f"{8 + header_len + end} bytes, file has {len(payload)}"
        )
    metadata = header.get("__metadata__") or {}
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{source} is a safetensors file but not a trainer checkpoint "
            f"(format {metadata.get('format')!r}, expected {FORMAT!r})"
        )
    try:
        # The library returns tensors in no fixed order; fix one (file order) for every rank.
        tensors = dict(sorted(load_safetensors_bytes(payload).items()))
        iteration = int(metadata["iteration"])
        optimizer_meta = from_json(metadata["optimizer"])
        aliases = from_json(metadata["aliases"])
        extra = from_json(metadata["extra"])
    except (SafetensorError, KeyError, ValueError) as e:
        raise CheckpointError(f"checkpoint {source} is corrupt: {e}") from None
    for alias, target in aliases.items():
        tensors[alias] = tensors[target]
    model = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    extra_tensors = {k[len("extra.") :]: v for k, v in tensors.items() if k.startswith("extra.")}
    optimizer = None if optimizer_meta is None else _unflatten_optimizer(tensors, optimizer_meta)
    return Checkpoint(iteration, model, optimizer, extra, extra_tensors)


def read_checkpoint(src: str | os.PathLike | IO[bytes]) -> Checkpoint:
    """Read and validate a checkpoint without touching any model."""
    if isinstance(src, str | os.PathLike):
        path = Path(src)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
        return _parse(path.read_bytes(), repr(str(path)))
    payload = src.read()
    if not isinstance(payload, bytes | bytearray):
        raise TypeError(f"src must be a path or a binary file object, got {type(src).__name__}")
    return _parse(bytes(payload), f"<{type(src).__name__}>")


def _check_model_fits(model: torch.nn.Module, weights: dict[str, torch.Tensor], source: str):
    # The module's own state dict, not gathered: a DTensor's .shape is already the full shape.
    expected = {_clean_key(k): v for k, v in unwrap_model(model).state_dict().items()}
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    wrong_shape = [
        f"{k}: checkpoint {tuple(weights[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in weights and tuple(weights[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or wrong_shape:
        problems = []
        if missing:
            problems.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            problems.append(f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        if wrong_shape:
            problems.append(f"wrong shapes {wrong_shape[:5]}")
        raise CheckpointError(
            f"checkpoint {source} does not fit this model (another model or config?): "
            + "; ".join(problems)
        )


def load_model_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], source: str):
    _check_model_fits(model, weights, source)
    target = unwrap_model(model)
    # Keys were cleaned of wrapper names; map them back onto the module's own keys.
    own = target.state_dict()
    target.load_state_dict(
        {key: _shard_like(weights[_clean_key(key)], tensor) for key, tensor in own.items()},
        strict=True,
    )


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict | None, source: str):
    if state is None:
        raise CheckpointError(f"checkpoint {source} holds no optimizer state")
    groups = optimizer.state_dict()["param_groups"]
    saved_sizes = [len(g["params"]) for g in state["param_groups"]]
    own_sizes = [len(g["params"]) for g in groups]
    if saved_sizes != own_sizes:
        raise CheckpointError(
            f"checkpoint {source} has optimizer param groups of sizes {saved_sizes}, "
            f"this optimizer has {own_sizes}"
        )
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if any(_is_dtensor(p) for p in params):  # FSDP2: keep this rank's shard of each moment
        state = {
            "state": {
                index: {
                    key: _shard_like(value, params[index])
                    if isinstance(value, torch.Tensor) and value.shape == params[index].shape
                    else value
                    for key, value in values.items()
                }
                for index, values in state["state"].items()
            },
            "param_groups": state["param_groups"],
        }
    try:
        optimizer.load_state_dict(state)
    except (ValueError, RuntimeError, KeyError) as e:
        raise CheckpointError(f"checkpoint {source}: optimizer state does not fit: {e}") from None


def load_checkpoint(
    src: str | os.PathLike | IO[bytes],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
) -> int:
    """Restore `model` (and `optimizer`, if given) from `src`; return the saved iteration."""
    ckpt = read_checkpoint(src)
    source = repr(str(src)) if isinstance(src, str | os.PathLike) else f"<{type(src).__name__}>"
    load_model_weights(model, ckpt.model, source)
    if optimizer is not None:
        load_optimizer_state(optimizer, ckpt.optimizer, source)
    return ckpt.iteration
