"""Shared fixtures for the bpe tests: the data directory and one tokenizer trained on real text."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DATA = REPO.parent / "shared" / "data"


def data_file(name: str) -> Path:
    path = DATA / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (real-text tests need ../shared/data beside the repo)")
    return path


@pytest.fixture(scope="session")
def real_text_slices(tmp_path_factory) -> dict[str, Path]:
    """A 3 MB training slice and a 300 KB held-out slice of real English (prose, web, docs)."""
    out = tmp_path_factory.mktemp("real_text")
    train, held_out = [], []
    for name in ("books.txt", "web_mix.txt", "tech_docs.txt"):
        with open(data_file(name), "rb") as f:
            data = f.read(1_200_000)
        train.append(_whole_lines(data, 0, 1_000_000))
        held_out.append(_whole_lines(data, 1_000_000, 1_100_000))
    paths = {"train": out / "train.txt", "held_out": out / "held_out.txt"}
    paths["train"].write_bytes(b"".join(train))
    paths["held_out"].write_bytes(b"".join(held_out))
    return paths


def _whole_lines(data: bytes, start: int, end: int) -> bytes:
    """data[start:end] widened to whole lines, so no UTF-8 character is cut."""
    if start:
        start = data.index(b"\n", start) + 1
    return data[start : data.index(b"\n", end) + 1]


@pytest.fixture(scope="session")
def real_tokenizer(real_text_slices, tmp_path_factory):
    """A 5,000-id tokenizer trained here on real text and saved in GPT-2's file format."""
    from bpe import Tokenizer, train_bpe

    vocab, merges = train_bpe(real_text_slices["train"], 5000, ["<|endoftext|>"], num_workers=2)
    tokenizer = Tokenizer(vocab, merges, ["<|endoftext|>"])
    directory = tmp_path_factory.mktemp("tokenizer")
    tokenizer.save(directory)
    return tokenizer, directory


@pytest.fixture(scope="session")
def train_tokenizer(tmp_path_factory):
    """`train_tokenizer(corpus, vocab_size=600)`: a Tokenizer with <|endoftext|> trained (one
    worker) on the string `corpus`, written to a file first as train_bpe reads files."""
    from bpe import Tokenizer, train_bpe

    def train(corpus: str, vocab_size: int = 600):
        path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
        path.write_text(corpus, encoding="utf-8")
        vocab, merges = train_bpe(path, vocab_size, ["<|endoftext|>"], num_workers=1)
        return Tokenizer(vocab, merges, ["<|endoftext|>"])

    return train
