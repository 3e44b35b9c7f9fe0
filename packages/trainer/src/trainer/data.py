"""Token data: random windows over a flat array of token ids, and a prefetching loader.

A token file is a flat array of uint16 or uint32 ids (what `bpe`'s `encode_file` writes), opened
as an `np.memmap` so a 10 GB corpus costs no RAM: a batch touches only the windows it samples.

`get_batch` is the CS336 interface (one call, global NumPy RNG). `TokenLoader` is what the
training loop uses: it owns a seeded `np.random.Generator`, so its position is a small piece of
state that goes into every checkpoint, and it gathers the next batch on a background thread
while the accelerator works on the current one.

Sampling is world-size invariant: every rank draws the same *global* batch of window starts from
the same generator and keeps only its own slice of rows. Two ranks with batch 8 each therefore see
exactly the rows one process with batch 16 sees, which is what makes a DDP run comparable to (and
resumable as) a single-process run.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

# Scanning for the largest id reads the file in slices of this many tokens (32 MiB of uint16),
# so the up-front vocabulary check never holds a large file in RAM.
_SCAN_CHUNK_TOKENS = 1 << 24


def open_tokens(path: str | os.PathLike, dtype: str | np.dtype | None = None) -> np.ndarray:
    """Open a token file read-only as a 1-D memmap.

    `.npy` files carry their own dtype. Raw files (`.bin`, `.u16`, `.u32`, ...) are flat arrays
    of little-endian ids; their dtype comes from `dtype`, else from the suffix (`.u32`/`.uint32`
    mean uint32), else uint16 (enough for vocabularies up to 65,536).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"token file {str(path)!r} does not exist")
    if path.suffix == ".npy":
        array = np.load(path, mmap_mode="r")
        if array.ndim != 1:
            raise ValueError(f"token file {str(path)!r} holds shape {array.shape}, expected 1-D")
        return array
    if dtype is None:
        dtype = np.uint32 if path.suffix in (".u32", ".uint32") else np.uint16
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.uint16), np.dtype(np.uint32)):
        raise ValueError(f"token dtype must be uint16 or uint32, got {dtype}")
    size = path.stat().st_size
    if size % dtype.itemsize:
        raise ValueError(
            f"token file {str(path)!r} has {size} bytes, not a multiple of {dtype.itemsize} "
            f"({dtype}): truncated, or written with another dtype"
        )
    if size == 0:
        raise ValueError(f"token file {str(path)!r} is empty")
    return np.memmap(path, dtype=dtype.newbyteorder("<"), mode="r")


def _as_token_array(data: Any, name: str) -> np.ndarray:
    """Accept a path, a NumPy array / memmap or a 1-D torch tensor; return a 1-D NumPy array."""
    if isinstance(data, str | os.PathLike):
        return open_tokens(data)
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().numpy()
    if not isinstance(data, np.ndarray):
        data = np.asarray(data)
    if data.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of token ids, got shape {data.shape}")
    if not np.issubdtype(data.dtype, np.integer):
        raise ValueError(f"{name} must hold integer token ids, got dtype {data.dtype}")
    return data


def check_token_ids(data: np.ndarray, vocab_size: int, name: str = "data") -> None:
    """Raise ValueError unless every id in `data` is in [0, vocab_size); scans in slices."""
    largest, smallest = -1, 0
    for start in range(0, len(data), _SCAN_CHUNK_TOKENS):
        chunk = np.asarray(data[start : start + _SCAN_CHUNK_TOKENS])
        largest = max(largest, int(chunk.max()))
        if np.issubdtype(chunk.dtype, np.signedinteger):
            smallest = min(smallest, int(chunk.min()))
    if largest >= vocab_size:
        position = _first_index(data, lambda c: c >= vocab_size)
        raise ValueError(
            f"{name} holds token id {largest} but vocab_size is {vocab_size} "
            f"(first out-of-range id at position {position}): tokenizer and model disagree"
        )
    if smallest < 0:
        position = _first_index(data, lambda c: c < 0)
        raise ValueError(f"{name} holds negative token id {smallest} at position {position}")


def _first_index(data: np.ndarray, predicate) -> int:
    for start in range(0, len(data), _SCAN_CHUNK_TOKENS):
        hits = np.flatnonzero(predicate(np.asarray(data[start : start + _SCAN_CHUNK_TOKENS])))
        if len(hits):
            return start + int(hits[0])
    return -1


def _gather_windows(data: np.ndarray, starts: np.ndarray, context_length: int) -> np.ndarray:
    """Rows data[s : s + context_length + 1] for each start s, as int64."""
    offsets = np.arange(context_length + 1)
    return np.asarray(data[starts[:, None] + offsets[None, :]], dtype=np.int64)  # (B, T+1)


def _to_device(windows: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Split (B, T+1) windows into inputs and next-token targets on `device`."""
    host = torch.from_numpy(windows)
    if device.type == "cuda":
        # Pinned memory lets the copy run asynchronously; the forward pass that reads x is
        # queued on the same stream, so it waits for the copy without blocking the host.
        host = host.pin_memory()
        batch = host.to(device, non_blocking=True)
    else:
        batch = host.to(device)
    return batch[:, :-1].contiguous(), batch[:, 1:].contiguous()  # (B, T), (B, T)


def get_batch(
    data: np.ndarray,
    batch_size: int,
    context_length: int,
    device: str | torch.device,
    generator: np.random.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample `batch_size` random windows; return (x, y), y shifted by one, int64 on `device`.

    Window starts are uniform over every position that leaves room for the target
    (0 .. len(data) - context_length - 1). Without a `generator` the global NumPy RNG is used,
    as in CS336.
    """
    data = _as_token_array(data, "data")
    if batch_size < 1 or context_length < 1:
        raise ValueError(
            f"batch_size and context_length must be >= 1, got {batch_size}, {context_length}"
        )
    if len(data) < context_length + 1:
        raise ValueError(
            f"data has {len(data)} tokens, fewer than context_length + 1 = {context_length + 1}"
        )
    high = len(data) - context_length
    if generator is None:
        starts = np.random.randint(0, high, size=batch_size)
    else:
        starts = generator.integers(0, high, size=batch_size)
    return _to_device(_gather_windows(data, starts, context_length), torch.device(device))


class TokenLoader:
    """Endless random batches for one rank, prefetched on a background thread.

    Each call to `next()` draws the window starts of one *global* batch
    (`batch_size * world_size` rows) from the loader's own generator, keeps rows
    `[rank * batch_size, (rank + 1) * batch_size)`, and returns (x, y) on `device`.

    `state_dict()` captures the generator as of the next batch `next()` will return (the
    prefetched batch is drawn but not yet consumed, so its pre-draw state is what is saved);
    `load_state_dict()` restores it and discards any prefetched batch.
    """

    def __init__(
        self,
        data: Any,
        batch_size: int,
        context_length: int,
        device: str | torch.device = "cpu",
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        vocab_size: int | None = None,
        prefetch: bool = True,
        name: str = "data",
    ) -> None:
        self.data = _as_token_array(data, name)
        if batch_size < 1 or context_length < 1:
            raise ValueError(
                f"batch_size and context_length must be >= 1, got {batch_size}, {context_length}"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        if len(self.data) < context_length + 1:
            raise ValueError(
                f"{name} has {len(self.data)} tokens, fewer than context_length + 1 = "
                f"{context_length + 1}"
            )
        if vocab_size is not None:
            check_token_ids(self.data, vocab_size, name)
        self.batch_size = batch_size
        self.context_length = context_length
        self.device = torch.device(device)
        self.rank = rank
        self.world_size = world_size
        self.name = name
        self.generator = np.random.default_rng(seed)
        self._pool = (
            ThreadPoolExecutor(1, thread_name_prefix=f"{name}-prefetch") if prefetch else None
        )
        self._pending: Future | None = None
        self._pending_state: dict | None = None  # generator state before the pending draw
        # On CUDA, batches are gathered straight into a ring of pinned host buffers that are
        # allocated once: no pinning per batch, and the copy to the GPU never blocks the host.
        # A slot is refilled only after the event recorded behind its last copy has passed.
        self._pinned: list[torch.Tensor] = []
        self._copied: list[torch.cuda.Event | None] = []
        self._slot = 0
        if self.device.type == "cuda":
            shape = (batch_size, context_length + 1)
            self._pinned = [torch.empty(shape, dtype=torch.int64).pin_memory() for _ in range(3)]
            self._copied = [None] * len(self._pinned)

    def _draw_starts(self) -> np.ndarray:
        high = len(self.data) - self.context_length
        starts = self.generator.integers(0, high, size=self.batch_size * self.world_size)
        return starts[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]

    def _gather(self, starts: np.ndarray, slot: int | None):
        """Windows for `starts`: an int64 array, or (CUDA) the index of the filled pinned slot."""
        if slot is None:
            return _gather_windows(self.data, starts, self.context_length)
        if self._copied[slot] is not None:
            self._copied[slot].synchronize()  # the GPU has finished reading this buffer
        offsets = np.arange(self.context_length + 1)
        self._pinned[slot].numpy()[...] = self.data[starts[:, None] + offsets[None, :]]
        return slot

    def _submit(self) -> None:
        self._pending_state = self.generator.bit_generator.state
        starts = self._draw_starts()
        slot = None
        if self._pinned:
            slot, self._slot = self._slot, (self._slot + 1) % len(self._pinned)
        if self._pool is None:
            self._pending = Future()
            self._pending.set_result(self._gather(starts, slot))
        else:
            self._pending = self._pool.submit(self._gather, starts, slot)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next (x, y), each (batch_size, context_length) int64 on the loader's device."""
        if self._pending is None:
            self._submit()
        gathered = self._pending.result()
        self._pending = None
        self._pending_state = None
        if self._pinned:
            batch = self._pinned[gathered].to(self.device, non_blocking=True)  # (B, T+1)
            event = torch.cuda.Event()
            event.record()
            self._copied[gathered] = event
            x, y = batch[:, :-1].contiguous(), batch[:, 1:].contiguous()  # (B, T), (B, T)
        else:
            x, y = _to_device(gathered, self.device)
        if self._pool is not None:
            self._submit()  # gather the following batch while this one trains
        return x, y

    __next__ = next

    def __iter__(self):
        return self

    def state_dict(self) -> dict:
        """The generator state that reproduces every batch from the next one on."""
        state = self._pending_state if self._pending is not None else None
        return {"generator": state or self.generator.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        if self._pending is not None:
            self._pending.result()  # let the worker finish before the state changes under it
        self._pending = None
        self._pending_state = None
        self.generator.bit_generator.state = state["generator"]

    def reseed(self, seed: int) -> None:
        """Restart the stream from `seed` (used to give every evaluation the same batches)."""
        self.load_state_dict({"generator": np.random.default_rng(seed).bit_generator.state})

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
