"""The run's checkpoint directory: numbered files, the latest one, keep-last-N, background writes.

Files are `step_<step, 8 digits>.safetensors`; anything else (a temporary file left by a crash
mid-write, say) is ignored, so `latest_checkpoint()` always names a complete checkpoint.

Writing a checkpoint has two halves. Taking the snapshot (copying weights and optimizer state to
host memory) must happen between two steps, on the training thread. Serializing and writing the
file (the slow half: hundreds of MB through the page cache and fsync) only reads that private
snapshot, so with `background=True` it runs on a writer thread while training continues, as in
torchtitan's async checkpointing. At most one write is in flight; `wait()` joins it.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

import torch

from trainer.checkpoint import write_atomic, write_safetensors

_NAME = re.compile(r"^step_(\d{8,})\.safetensors$")


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}.safetensors"


def list_checkpoints(directory: str | os.PathLike) -> list[tuple[int, Path]]:
    """(step, path) of every complete checkpoint in `directory`, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        match = _NAME.match(entry.name)
        if match and entry.is_file():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    checkpoints = list_checkpoints(directory)
    return checkpoints[-1][1] if checkpoints else None


class Checkpointer:
    """Writes snapshots as numbered checkpoints and keeps the newest `keep` of them."""

    def __init__(self, directory: str | os.PathLike, keep: int = 3, background: bool = False):
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory = Path(directory)
        self.keep = keep
        self.background = background
        self._writer: threading.Thread | None = None
        self._error: BaseException | None = None

    def path_for(self, step: int) -> Path:
        return self.directory / checkpoint_name(step)

    def latest(self) -> Path | None:
        return latest_checkpoint(self.directory)

    def write(
        self,
        step: int,
        tensors: dict[str, torch.Tensor],
        metadata: dict[str, str],
        ready: Callable[[], None] | None = None,
    ):
        """Write a snapshot (from `snapshot_checkpoint`) as the checkpoint of `step`.

        `ready`, if given, is called (on the writing thread) before the tensors are read: the
        `wait` of the HostStaging the snapshot was copied through."""
        self.wait()  # one write at a time, in order
        path = self.path_for(step)
        if not self.background:
            self._write(path, tensors, metadata, ready)
            return path
        self._writer = threading.Thread(
            target=self._write_catching,
            args=(path, tensors, metadata, ready),
            name="checkpoint-writer",
        )
        self._writer.start()
        return path

    def wait(self) -> None:
        """Block until the background write (if any) is on disk; re-raise its error."""
        if self._writer is not None:
            self._writer.join()
            self._writer = None
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"writing a checkpoint in {self.directory} failed: {error}") from (
                error
            )

    def _write_catching(self, path, tensors, metadata, ready) -> None:
        try:
            self._write(path, tensors, metadata, ready)
        except BaseException as e:  # surfaced by the next wait()
            self._error = e

    def _write(self, path: Path, tensors, metadata, ready=None) -> None:
        if ready is not None:
            ready()
        write_atomic(path, lambda f: write_safetensors(f, tensors, metadata))
        self.prune()

    def prune(self) -> None:
        for _, path in list_checkpoints(self.directory)[: -self.keep]:
            path.unlink(missing_ok=True)
