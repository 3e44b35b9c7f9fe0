"""The run directory: everything one run makes, in one place, named the same way every time.

runs/<name>/
  config.toml                    the full resolved config (what made this directory)
  tokenizer/                     vocab.json, merges.txt, special tokens (bpe)
  data/train.bin, data/val.bin   token ids, flat little-endian uint16 (uint32 past 65,536)
  data/meta.json                 their dtype and lengths, and where the text came from
  checkpoints/step_NNNNNNNN.safetensors   weights, optimizer, data position, RNGs (trainer)
  metrics.jsonl                  one JSON record per log / eval step (trainer)
  loss.png                       train and validation loss (trainer)
  samples.txt                    text generated at the end of each training session
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from train_app import config as cfg
from train_app.errors import UserError


def write_text_atomic(path: Path, text: str) -> None:
    """Write to a temporary name, then rename: a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class RunDir:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.config_path = self.root / "config.toml"
        self.tokenizer_dir = self.root / "tokenizer"
        self.data_dir = self.root / "data"
        self.train_bin = self.data_dir / "train.bin"
        self.val_bin = self.data_dir / "val.bin"
        self.meta_path = self.data_dir / "meta.json"
        self.checkpoint_dir = self.root / "checkpoints"
        self.metrics_path = self.root / "metrics.jsonl"
        self.loss_png = self.root / "loss.png"
        self.samples_path = self.root / "samples.txt"

    def __str__(self) -> str:
        return str(self.root)

    # --- config

    def load_config(self) -> cfg.Config | None:
        """The config saved in this run directory, or None if it has none yet."""
        if not self.config_path.exists():
            return None
        import tomllib

        try:
            table = tomllib.loads(self.config_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise UserError(
                f"{self.config_path} is not valid TOML ({e}); fix or delete it"
            ) from None
        try:
            return cfg.from_dict(table, str(self.config_path))
        except UserError as e:
            raise UserError(
                f"run directory {self.root} was made by a different version of this app: {e}"
            ) from None

    def save_config(self, config: cfg.Config) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        header = "The full resolved config of this run (written by `uv run apps/train`)."
        write_text_atomic(self.config_path, cfg.to_toml(config, header))

    def check_compatible(self, wanted: cfg.Config) -> None:
        """Refuse to reuse this directory's tokenizer, data or checkpoints for another model."""
        saved = self.load_config()
        if saved is None:
            return
        diffs = cfg.incompatibilities(saved, wanted)
        if diffs:
            listing = "; ".join(diffs[:4]) + ("; ..." if len(diffs) > 4 else "")
            raise UserError(
                f"run directory {self.root} was made with a different config ({listing}). "
                f"Use a new --run directory, or drop the changed options to continue this run."
            )

    # --- data

    def has_tokens(self) -> bool:
        return self.meta_path.exists() and self.train_bin.exists() and self.val_bin.exists()

    def load_meta(self) -> dict[str, Any]:
        if not self.meta_path.exists():
            raise UserError(
                f"run directory {self.root} has no token files yet: run "
                f"`uv run apps/train tokenize --run {self.root}` first"
            )
        return json.loads(self.meta_path.read_text(encoding="utf-8"))

    def save_meta(self, meta: dict[str, Any]) -> None:
        write_text_atomic(self.meta_path, json.dumps(meta, indent=2) + "\n")

    # --- checkpoints (named and listed by trainer.Checkpointer)

    def checkpoints(self) -> list[tuple[int, Path]]:
        """(step, path) of every complete checkpoint, oldest first."""
        from trainer import list_checkpoints

        return list_checkpoints(self.checkpoint_dir)

    def latest_checkpoint(self) -> tuple[int, Path] | None:
        found = self.checkpoints()
        return found[-1] if found else None

    # --- metrics

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        records = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                records.append(json.loads(line))
        return records
