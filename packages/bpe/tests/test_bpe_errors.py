"""Bad input raises a clear error that names the input and what is wrong."""

from __future__ import annotations

import pytest

from bpe import Tokenizer, train_bpe


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.txt"):
        train_bpe(tmp_path / "nope.txt", 300, [])


def test_empty_file(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        train_bpe(path, 300, [])


def test_undecodable_bytes_name_file_and_offset(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"hello world\n" * 10 + b"caf\xe9 au lait\n")
    with pytest.raises(ValueError, match=r"bad\.txt.*byte offset 123"):
        train_bpe(path, 300, [])
    vocab, _ = train_bpe(path, 300, [], errors="replace")
    assert b"hello" in vocab.values()


def test_vocab_size_too_small(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("hello", encoding="utf-8")
    with pytest.raises(ValueError, match=r"vocab_size=257.*at least.*258"):
        train_bpe(path, 257, ["<a>", "<b>"])


def test_empty_special_token(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("hello", encoding="utf-8")
    with pytest.raises(ValueError, match="special token ''"):
        train_bpe(path, 300, [""])
    with pytest.raises(ValueError, match="special token ''"):
        Tokenizer({i: bytes([i]) for i in range(256)}, [], [""])


def test_out_of_range_ids_in_decode():
    tokenizer = Tokenizer({i: bytes([i]) for i in range(256)}, [])
    with pytest.raises(ValueError, match=r"ids\[1\] = 256 is not a token id"):
        tokenizer.decode([104, 256])
    with pytest.raises(ValueError, match=r"ids\[0\] = -1"):
        tokenizer.decode([-1])


def test_merge_with_unknown_token():
    vocab = {i: bytes([i]) for i in range(256)}
    with pytest.raises(ValueError, match=r"merges\[0\]"):
        Tokenizer(vocab, [(b"a", b"b")])


def test_vocab_missing_a_byte():
    with pytest.raises(ValueError, match="byte"):
        Tokenizer({i: bytes([i]) for i in range(255)}, [])


def test_bad_gpt2_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"vocab\.json"):
        Tokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    (tmp_path / "vocab.json").write_text("{not json", encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        Tokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt")


def test_vocab_size_too_large(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("hello", encoding="utf-8")
    with pytest.raises(ValueError, match="too large"):
        train_bpe(path, 2_000_000, [])


def test_decode_accepts_numpy_and_iterators_and_reports_bad_ids_in_them():
    import numpy as np

    tokenizer = Tokenizer({i: bytes([i]) for i in range(256)}, [])
    assert tokenizer.decode(np.array([104, 105], dtype=np.uint16)) == "hi"
    assert tokenizer.decode(iter([104, 105])) == "hi"
    with pytest.raises(ValueError, match=r"ids\[2\] = 300"):
        tokenizer.decode(iter([104, 105, 300]))


def test_vocab_id_beyond_int32_is_refused():
    vocab = {i: bytes([i]) for i in range(256)} | {1 << 31: b"<big>"}
    with pytest.raises(ValueError, match="id 2147483648 is too large"):
        Tokenizer(vocab, [])
    vocab = {i: bytes([i]) for i in range(256)} | {(1 << 31) - 1: b"<last>"}
    with pytest.raises(ValueError, match="too large"):  # the special token would get 2**31
        Tokenizer(vocab, [], ["<|endoftext|>"])
    assert Tokenizer(vocab, []).encode("<last>") == list(b"<last>")
