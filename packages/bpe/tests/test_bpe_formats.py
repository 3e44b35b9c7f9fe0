"""GPT-2 files, HF tokenizer.json and tiktoken ranks: peers give the very same ids."""

from __future__ import annotations

import json

import pytest

from bpe import GPT2_PATTERN, Tokenizer, bytes_to_unicode


def test_bytes_to_unicode_is_gpt2s_table():
    table = bytes_to_unicode()
    assert len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("A")] == "A"
    assert all(not ch.isspace() for ch in table.values())


def test_save_load_round_trip(real_tokenizer, tmp_path):
    tokenizer, directory = real_tokenizer
    loaded = Tokenizer.load(directory)
    assert loaded.vocab == tokenizer.vocab and loaded.merges == tokenizer.merges
    assert loaded.special_tokens == ["<|endoftext|>"]
    assert (directory / "merges.txt").read_text(encoding="utf-8").startswith("#version: 0.2\n")
    vocab_json = json.loads((directory / "vocab.json").read_text(encoding="utf-8"))
    assert vocab_json["<|endoftext|>"] == 4999 and vocab_json["Ġ"] == 32


def from_gpt2_files(directory):
    return Tokenizer.from_files(
        directory / "vocab.json", directory / "merges.txt", special_tokens=["<|endoftext|>"]
    )


def _tiktoken_encoding(directory, special_ids):
    tiktoken = pytest.importorskip("tiktoken")
    # Built from the GPT-2 style files alone, as one would from OpenAI's (no download).
    loaded = from_gpt2_files(directory)
    return tiktoken.Encoding(
        name="bpe-test",
        pat_str=GPT2_PATTERN,
        mergeable_ranks=loaded.tiktoken_mergeable_ranks(),
        special_tokens=special_ids,
    )


def test_gpt2_files_encode_like_tiktoken(real_tokenizer, real_text_slices):
    tokenizer, directory = real_tokenizer
    encoding = _tiktoken_encoding(directory, tokenizer.special_ids)
    loaded = from_gpt2_files(directory)
    text = real_text_slices["held_out"].read_text(encoding="utf-8")
    assert loaded.encode_ordinary(text) == encoding.encode_ordinary(text)
    assert loaded.encode(text) == encoding.encode(text, allowed_special="all")
    assert "<|endoftext|>" in text  # so the line above checked special tokens too


def test_hf_tokenizer_json_encodes_identically(real_tokenizer, real_text_slices, tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    tokenizer, _ = real_tokenizer
    path = tmp_path / "tokenizer.json"
    tokenizer.save_hf_json(path)
    hf = tokenizers.Tokenizer.from_file(str(path))
    text = real_text_slices["held_out"].read_text(encoding="utf-8")
    documents = text.split("\n\n")
    ours = [tokenizer.encode(d) for d in documents]
    theirs = [e.ids for e in hf.encode_batch(documents, add_special_tokens=False)]
    assert ours == theirs
    assert hf.encode(text).ids == tokenizer.encode(text)
    assert hf.decode(ours[1], skip_special_tokens=False) == documents[1]
