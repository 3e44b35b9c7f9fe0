"""train_bpe against a slow, obviously right reference implementation."""

from __future__ import annotations

import random
from collections import Counter
from itertools import pairwise

import pytest
import regex

from bpe import GPT2_PATTERN, count_pretokens, train_bpe
from bpe.pretokenize import (
    BMP_PRETOKEN_RE,
    count_pretokens_in_text,
    pretokens,
    special_tokens_regex,
)
from bpe.train import build_vocab_and_merges, merge_pretoken_counts


def reference_train(text: str, vocab_size: int, special_tokens: list[str]):
    """CS336 BPE, recounting every pair before every merge: slow and plainly correct."""
    pieces = [text]
    if special_tokens:
        pattern = "|".join(regex.escape(t) for t in sorted(special_tokens, key=len, reverse=True))
        pieces = regex.split(pattern, text)
    word_counts = Counter()
    for piece in pieces:
        word_counts.update(regex.findall(GPT2_PATTERN, piece))
    words = {tuple(bytes([b]) for b in w.encode("utf-8")): n for w, n in word_counts.items()}
    merges = []
    while 256 + len(merges) + len(special_tokens) < vocab_size:
        pairs = Counter()
        for word, n in words.items():
            for pair in pairwise(word):
                pairs[pair] += n
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], p))  # ties: the greater pair, as bytes
        merges.append(best)
        merged_words = {}
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged_words[tuple(out)] = merged_words.get(tuple(out), 0) + n
        words = merged_words
    vocab = {i: bytes([i]) for i in range(256)}
    for a, b in merges:
        vocab[len(vocab)] = a + b
    for token in special_tokens:
        vocab[len(vocab)] = token.encode("utf-8")
    return vocab, merges


def test_sennrich_example_from_cs336():
    # Whitespace pre-tokenization: low x5, lower x2, widest x3, newest x6.
    counts = {"low": 5, "lower": 2, "widest": 3, "newest": 6}
    vocab, merges = build_vocab_and_merges(merge_pretoken_counts(counts, 12))
    got = [f"{a.decode()} {b.decode()}" for a, b in merges]
    assert got == [
        "s t", "e st", "o w", "l ow", "w est", "n e",
        "ne west", "w i", "wi d", "wid est", "low e", "lowe r",
    ]  # fmt: skip
    assert vocab[256 + 11] == b"lower"


def test_stdlib_twin_pattern_splits_like_gpt2_pattern():
    rng = random.Random(0)
    alphabet = "ab Z9'’\n\r\t\x0b\x1c\x85\xa0\u2028\u3000  .,!é中😀🇫\u0301\x00-_٣Ⅻ²"
    alphabet += "ll ve re d m t"
    reference = regex.compile(GPT2_PATTERN)
    for _ in range(3000):
        text = "".join(
            rng.choice(alphabet) if rng.random() < 0.8 else chr(rng.randrange(0x20, 0x10FFFF))
            for _ in range(rng.randrange(0, 40))
        )
        text = "".join(ch for ch in text if not 0xD800 <= ord(ch) <= 0xDFFF)
        expected = reference.findall(text)
        assert pretokens(text) == expected, repr(text)
        if not any(ord(ch) > 0xFFFF for ch in text):
            assert BMP_PRETOKEN_RE.findall(text) == expected, repr(text)
    # Astral letters and digits (math bold A, CJK extension B, Osmanya digit) use the full pattern.
    for text in ["x𝐀𝐁 y", "𠀀𠀁 a", "n𐒠𐒡 1", "😀 a𝐀"]:
        assert pretokens(text) == reference.findall(text)


CORPORA = {
    # Many equal counts, so the tie rule decides most merges.
    "ties": "ab ba ab ba cd dc cd dc ef fe ef fe " * 3 + "xy yx zz zzz zzzz",
    "special_tokens": "the cat<|endoftext|>the hat<|endoftext|><|endoftext|>that cat sat " * 5,
    "multi_byte": "naïve café 中文 中文字 😀😀 😀x émigré façade Ünïcödé ñ ñ ñ " * 4,
    "repeats": "aaaa aaa aa a abababab ababab " * 5,
}


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_matches_reference_on_small_corpora(name, tmp_path):
    text = CORPORA[name]
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    specials = ["<|endoftext|>"] if "<|" in text else []
    expected = reference_train(text, 340, specials)
    assert train_bpe(path, 340, specials, num_workers=1) == expected


def test_matches_reference_on_random_text(tmp_path):
    rng = random.Random(1)
    syllables = ["th", "e", " ", "an", "d", "ing", "é", "中", "😀", "\n", "'s", "1", "2", ".", "x"]
    text = "".join(rng.choice(syllables) for _ in range(4000))
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    assert train_bpe(path, 420, [], num_workers=1) == reference_train(text, 420, [])


def test_matches_reference_on_real_text(real_text_slices, tmp_path):
    text = real_text_slices["held_out"].read_text(encoding="utf-8")[:120_000]
    path = tmp_path / "slice.txt"
    path.write_text(text, encoding="utf-8")
    got = train_bpe(path, 500, ["<|endoftext|>"], num_workers=1)
    assert got == reference_train(text, 500, ["<|endoftext|>"])


def test_layout_of_ids(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("hello hello world<|endoftext|>hello", encoding="utf-8")
    vocab, merges = train_bpe(path, 262, ["<|endoftext|>", "<pad>"])
    assert [vocab[i] for i in range(256)] == [bytes([i]) for i in range(256)]
    assert [vocab[256 + k] for k in range(len(merges))] == [a + b for a, b in merges]
    assert vocab[260] == b"<|endoftext|>" and vocab[261] == b"<pad>"
    assert len(vocab) == 262


def test_stops_early_when_nothing_is_left_to_merge(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("ab ab", encoding="utf-8")
    vocab, merges = train_bpe(path, 1000, [])
    assert merges == [(b"a", b"b"), (b" ", b"ab")] and len(vocab) == 258


def test_parallel_chunks_count_like_one_pass(real_text_slices):
    path = real_text_slices["train"]
    text = path.read_text(encoding="utf-8")
    whole = count_pretokens_in_text(text, special_tokens_regex(["<|endoftext|>"]))
    # Small chunks force many cuts, at special tokens and at newlines.
    for specials in (["<|endoftext|>"], []):
        chunked = count_pretokens(path, specials, num_workers=2, chunk_bytes=100_000)
        if specials:
            assert chunked == whole
        else:
            assert chunked == count_pretokens_in_text(text)


def test_parallel_training_equals_serial(real_text_slices):
    path = real_text_slices["held_out"]
    serial = train_bpe(path, 600, ["<|endoftext|>"], num_workers=1)
    assert train_bpe(path, 600, ["<|endoftext|>"], num_workers=2) == serial
