"""The run's checkpoint directory: numbered files, the latest one, and keep-last-N pruning.

Files are `ckpt_<step, 8 digits>.safetensors`; anything else (a temporary file left by a crash
mid-write, say) is ignored, so `latest()` always names a complete checkpoint.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_NAME = re.compile(r"^ckpt_(\d{8,})\.safetensors$")


def checkpoint_name(step: int) -> str:
    return f"ckpt_{step:08d}.safetensors"


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
    """Writes payloads (bytes) as numbered checkpoints and keeps the newest `keep` of them."""

    def __init__(self, directory: str | os.PathLike, keep: int = 3) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory = Path(directory)
        self.keep = keep

    def path_for(self, step: int) -> Path:
        return self.directory / checkpoint_name(step)

    def latest(self) -> Path | None:
        return latest_checkpoint(self.directory)

    def prune(self) -> None:
        for _, path in list_checkpoints(self.directory)[: -self.keep]:
            path.unlink(missing_ok=True)
