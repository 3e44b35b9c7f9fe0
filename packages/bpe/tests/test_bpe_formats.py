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


def test_gpt2_byte_order_files_encode_like_tiktoken(real_tokenizer, real_text_slices, tmp_path):
    """OpenAI's vocab.json numbers the 256 bytes in bytes_to_unicode order (printable first), not
    0-255. Files laid out that way (our merges, GPT-2's byte ids) must load and match tiktoken."""
    tiktoken = pytest.importorskip("tiktoken")
    tokenizer, directory = real_tokenizer
    gpt2_byte_order = list(bytes_to_unicode())  # byte values in GPT-2's id order
    vocab = {i: bytes([b]) for i, b in enumerate(gpt2_byte_order)}
    vocab |= {i: t for i, t in tokenizer.vocab.items() if i >= 256}
    special = tokenizer.special_ids["<|endoftext|>"]
    (tmp_path / "merges.txt").write_text(
        (directory / "merges.txt").read_text(encoding="utf-8"), encoding="utf-8"
    )
    from bpe.formats import token_to_str

    encoder = {token_to_str(t) if i != special else t.decode(): i for i, t in vocab.items()}
    (tmp_path / "vocab.json").write_text(json.dumps(encoder), encoding="utf-8")
    loaded = Tokenizer.from_files(
        tmp_path / "vocab.json", tmp_path / "merges.txt", special_tokens=["<|endoftext|>"]
    )
    assert loaded.vocab[0] == b"!" and loaded.vocab[ord("!")] != b"!"
    encoding = tiktoken.Encoding(
        name="gpt2-layout",
        pat_str=GPT2_PATTERN,
        mergeable_ranks=loaded.tiktoken_mergeable_ranks(),
        special_tokens={"<|endoftext|>": special},
    )
    text = real_text_slices["held_out"].read_text(encoding="utf-8")
    ids = loaded.encode(text)
    assert ids == encoding.encode(text, allowed_special="all")
    assert loaded.decode(ids) == text
    # Same merges, other byte ids: the same segmentation as our own layout.
    ours = tokenizer.encode(text)
    assert [loaded.vocab[i] for i in ids] == [tokenizer.vocab[i] for i in ours]
