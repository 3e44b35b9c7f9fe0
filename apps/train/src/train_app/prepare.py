"""`tokenize`: text -> train/validation split -> BPE tokenizer -> token files in the run directory.

    corpus (built-in, --data PATH, or --dataset NAME)
      -> data/train.txt, data/val.txt        whole documents, a seeded share held out
      -> tokenizer/                          bpe.train_bpe on (at most tokenizer.train_bytes of)
                                             the training text; validation text is never seen
      -> data/train.bin, data/val.bin        the ids, uint16 (uint32 for vocabularies > 65,536)
      -> data/meta.json                      what was made, from what, how long it took

The text splits are deleted once encoded: the token files are what training reads.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from train_app import corpus, download
from train_app.config import Config
from train_app.errors import UserError
from train_app.rundir import RunDir


def _human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


def _separator(config: Config) -> str:
    specials = config.tokenizer.special_tokens
    return specials[0] if specials else "\n\n"


def write_text_splits(config: Config, run: RunDir, out: TextIO) -> dict[str, Any]:
    """The corpus the config names, as data/train.txt and data/val.txt; returns their stats."""
    data = config.data
    sep = _separator(config)
    run.data_dir.mkdir(parents=True, exist_ok=True)
    train_txt, val_txt = run.data_dir / "train.txt", run.data_dir / "val.txt"
    if data.source in download.DATASETS:
        cache = Path(data.cache_dir) if data.cache_dir else None
        files = download.fetch_dataset(data.source, cache)
        description = f"{data.source} (CS336 files in {files['train'].parent})"
        train_docs, train_bytes = corpus.write_documents(
            corpus.documents([files["train"]]), train_txt, data.max_bytes, sep
        )
        # The dataset's own validation file, no larger than the held-out share would be.
        val_cap = int(train_bytes * data.val_fraction / (1 - data.val_fraction))
        val_docs, val_bytes = corpus.write_documents(
            corpus.documents([files["valid"]]), val_txt, val_cap, sep
        )
        return dict(
            source=description,
            train_docs=train_docs,
            val_docs=val_docs,
            train_bytes=train_bytes,
            val_bytes=val_bytes,
        )
    if data.source == "builtin":
        docs = corpus.builtin_documents()
        description = f"Python's documentation (pydoc_data.topics, {len(docs)} documents)"
    else:
        files = corpus.text_files(Path(data.source))
        docs = corpus.documents(files)
        description = (
            f"{files[0]}" if len(files) == 1 else f"{len(files)} .txt files in {data.source}"
        )
    stats = corpus.write_splits(docs, train_txt, val_txt, data.val_fraction, data.max_bytes, sep)
    return dict(
        source=description,
        train_docs=stats.train_docs,
        val_docs=stats.val_docs,
        train_bytes=stats.train_bytes,
        val_bytes=stats.val_bytes,
    )


def check_enough_tokens(meta: dict[str, Any], context_length: int) -> None:
    """A corpus must hold at least one window (context + the next token) in each split."""
    need = context_length + 1
    for split in ("train", "val"):
        have = meta[f"{split}_tokens"]
        if have < need:
            raise UserError(
                f"the corpus is smaller than one context window: {have:,} {split} tokens, but "
                f"model.context_length={context_length} needs at least {need:,}. Give more text "
                f"(--data), or lower --model.context_length (and --data.val_fraction if the "
                f"validation split is the short one)"
            )


def tokenize(
    config: Config, run: RunDir, out: TextIO, progress: bool | None = None
) -> dict[str, Any]:
    """Build tokenizer/ and data/*.bin for `run` (skipped when they already exist)."""
    import bpe

    if run.has_tokens():
        meta = run.load_meta()
        print(
            f"tokens     already in {run.data_dir}/ ({meta['train_tokens']:,} train, "
            f"{meta['val_tokens']:,} val): reusing them",
            file=out,
        )
        return meta
    run.save_config(config)
    t0 = time.perf_counter()
    stats = write_text_splits(config, run, out)
    print(
        f"data       {stats['source']}\n"
        f"           train {stats['train_docs']:,} documents ({_human_bytes(stats['train_bytes'])})"
        f" · validation {stats['val_docs']:,} ({_human_bytes(stats['val_bytes'])})",
        file=out,
        flush=True,
    )
    train_txt, val_txt = run.data_dir / "train.txt", run.data_dir / "val.txt"

    # BPE learns from the training text only (or its first train_bytes, for huge corpora).
    bpe_input = train_txt
    if stats["train_bytes"] > config.tokenizer.train_bytes:
        bpe_input = run.data_dir / "bpe_sample.txt"
        corpus.write_documents(
            corpus.documents([train_txt]),
            bpe_input,
            config.tokenizer.train_bytes,
            _separator(config),
        )
    t_bpe = time.perf_counter()
    specials = list(config.tokenizer.special_tokens)
    vocab, merges = bpe.train_bpe(
        bpe_input, config.tokenizer.vocab_size, specials, progress=progress
    )
    tokenizer = bpe.Tokenizer(vocab, merges, specials)
    run.tokenizer_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(run.tokenizer_dir)
    bpe_seconds = time.perf_counter() - t_bpe
    if bpe_input != train_txt:
        bpe_input.unlink()
    short = (
        f" (the corpus had room for only {len(vocab):,})"
        if len(vocab) < config.tokenizer.vocab_size
        else ""
    )
    print(
        f"tokenizer  byte-level BPE, {len(vocab):,} tokens{short}, trained in {bpe_seconds:.1f} s"
        f" -> {run.tokenizer_dir}/",
        file=out,
        flush=True,
    )

    t_enc = time.perf_counter()
    dtype = np.dtype(tokenizer.token_dtype)
    train_tokens = tokenizer.encode_file(train_txt, run.train_bin, progress=progress)
    val_tokens = tokenizer.encode_file(val_txt, run.val_bin, progress=progress)
    encode_seconds = time.perf_counter() - t_enc
    train_txt.unlink()
    val_txt.unlink()
    meta = dict(
        stats,
        dtype=dtype.name,
        vocab_size=tokenizer.vocab_size,
        train_tokens=train_tokens,
        val_tokens=val_tokens,
        bytes_per_token=round(
            (stats["train_bytes"] + stats["val_bytes"]) / max(1, train_tokens + val_tokens), 3
        ),
        bpe_seconds=round(bpe_seconds, 2),
        encode_seconds=round(encode_seconds, 2),
        total_seconds=round(time.perf_counter() - t0, 2),
    )
    run.save_meta(meta)
    print(
        f"tokens     train {train_tokens:,} · validation {val_tokens:,} "
        f"({meta['bytes_per_token']:.2f} bytes/token, encoded in {encode_seconds:.1f} s)"
        f" -> {run.data_dir}/",
        file=out,
        flush=True,
    )
    check_enough_tokens(meta, config.model.context_length)  # after saving: nothing is lost
    return meta
