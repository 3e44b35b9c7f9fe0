"""The numpy pre-tokenizer and the exact-key cache against the regex they replace.

fast_pretokenize derives pre-token starts from character classes by rules read off GPT-2's
pattern; here those starts must equal `regex.finditer(GPT2_PATTERN)`'s spans exactly, on random
text dense in the characters where the rules could go wrong and on real text. key_table's keys
must tell every pair of distinct short byte strings apart, and the encoder must give the ids of
the plain regex path even when every key lands in the same slot.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import regex

import bpe.tokenizer as tokenizer_module
from bpe import GPT2_PATTERN, Tokenizer
from bpe.fast_pretokenize import _class_table, pretoken_bytes
from bpe.key_table import LONG, MAX_BYTES, KeyTable, short_keys

PRETOKEN = regex.compile(GPT2_PATTERN)
DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"

# Every kind of boundary the rules distinguish: plain and other spaces (Unicode ones, \x85,
# \xa0, the \x1c-\x1f separators that \s matches), the apostrophe and the letters of every
# contraction in both cases, letters, digits and other numbers (², ½, Ⅻ), a combining mark
# (not a letter), CJK, emoji, astral letters and digits, NUL and punctuation.
ALPHABET = [
    *" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u2028\u3000",
    *"'sdmtlverSDMTLVER",
    *"abXyZ",
    *"09²½Ⅻ",
    "\u0301",
    *"中文",
    "😀",
    "\U0001d400",
    "\U0001d7ce",
    "\x00",
    *'.,-!"',
]
CHUNKS = ["'s", "'ll", "'ve", "'re", "'d", "'m", "'t", " 's", "\n's", ".'s", "''s", "'sam", "  "]


def random_text(rng: random.Random, length: int) -> str:
    parts = []
    for _ in range(length):
        roll = rng.random()
        if roll < 0.15:
            parts.append(rng.choice(CHUNKS))
        elif roll < 0.2:
            parts.append(rng.choice(ALPHABET) * rng.randrange(2, 20))  # runs: long pre-tokens
        else:
            parts.append(rng.choice(ALPHABET))
    return "".join(parts)


def regex_starts(text: str) -> list[int]:
    """The UTF-8 byte offset of each pre-token the regex finds."""
    starts, offset = [], 0
    for word in PRETOKEN.findall(text):
        starts.append(offset)
        offset += len(word.encode("utf-8"))
    assert offset == len(text.encode("utf-8"))  # the pre-tokens cover the text
    return starts


def fast_starts(text: str) -> list[int]:
    spans = pretoken_bytes(text)
    assert spans.lengths.tolist() == np.diff(spans.starts, append=len(text.encode())).tolist()
    return spans.starts.tolist()


def test_class_table_agrees_with_the_regex_module():
    table = _class_table()
    rng = random.Random(1)
    points = [rng.randrange(0x110000) for _ in range(20_000)]
    points = [c for c in points if not 0xD800 <= c < 0xE000]
    points += list(range(0x3000))  # all of Latin, Greek, Cyrillic, ... and their spaces
    for c in points:
        ch = chr(c)
        if regex.match(r"\p{L}", ch):
            want = 0
        elif regex.match(r"\p{N}", ch):
            want = 1
        elif ch == " ":
            want = 3
        elif regex.match(r"\s", ch):
            want = 4
        else:
            want = 2
        assert table[c] == want, hex(c)


def test_the_examples_of_the_rules():
    cases = {
        "'sam": ["'s", "am"],
        " 's": [" '", "s"],
        "\n's": ["\n", "'s"],
        ".'s": [".'", "s"],
        "''s": ["''", "s"],
        "we'll've'S": ["we", "'ll", "'ve", "'", "S"],
        "a  b": ["a", " ", " b"],
        "a\n b": ["a", "\n", " b"],
        "a \nb": ["a", " ", "\n", "b"],
        "x   ": ["x", "   "],
        "\u3000x": ["\u3000", "x"],
        "1½ Ⅻ²": ["1½", " Ⅻ²"],
    }
    for text, words in cases.items():
        assert PRETOKEN.findall(text) == words  # the examples are right...
        spans = pretoken_bytes(text)
        raw = spans.utf8.tobytes()
        got = [raw[s : s + n].decode() for s, n in zip(spans.starts, spans.lengths, strict=True)]
        assert got == words, text  # ...and the numpy pre-tokenizer gives them


def test_starts_equal_the_regex_on_random_text():
    rng = random.Random(0)
    for _ in range(4000):
        text = random_text(rng, rng.randrange(0, 40))
        assert fast_starts(text) == regex_starts(text), repr(text)


def test_starts_equal_the_regex_on_ascii_text():
    # ASCII text takes its own path (bytes are characters).
    rng = random.Random(2)
    ascii_alphabet = [ch for ch in ALPHABET if ch.isascii()]
    for _ in range(2000):
        text = "".join(rng.choice(ascii_alphabet + CHUNKS) for _ in range(rng.randrange(1, 40)))
        assert fast_starts(text) == regex_starts(text), repr(text)


@pytest.mark.parametrize("name", ["books.txt", "web_mix.txt", "tech_docs.txt"])
def test_starts_equal_the_regex_on_real_text(name):
    if not (DATA / name).is_file():
        pytest.skip(f"{DATA / name} is absent (real-text tests need ../shared/data)")
    with open(DATA / name, "rb") as f:
        data = f.read(600_000)
    text = data[: data.rindex(b"\n") + 1].decode("utf-8")
    for start in range(0, len(text), 150_000):  # slices, some not ASCII
        piece = text[start : start + 150_000]
        assert fast_starts(piece) == regex_starts(piece)


def test_fixed_spans_cut_the_text_into_texts_of_their_own():
    # Special tokens are fixed spans: one pre-token each, and the text between them
    # pre-tokenizes as if alone. Spans that begin with a contraction's letters, white space
    # (a plain space, a multi-byte one), a wide character, or sit side by side.
    rng = random.Random(7)
    specials = [
        "<|endoftext|>",
        "s",
        "l",
        "ll",
        "ve",
        "<'",
        " ",
        "\u3000",
        "\xa0x",
        "é",
        "😀",
        "\n",
    ]
    for _ in range(1500):
        parts, words, fixed, position = [], [], [], 0
        for k in range(rng.randrange(1, 6)):
            if k:
                special = rng.choice(specials)
                fixed.append((position, position + len(special)))
                parts.append(special)
                words.append(special)
                position += len(special)
            piece = random_text(rng, rng.randrange(0, 8))
            parts.append(piece)
            words += PRETOKEN.findall(piece)
            position += len(piece)
        text = "".join(parts)
        spans = pretoken_bytes(text, fixed)
        raw = spans.utf8.tobytes()
        got = [raw[s : s + n].decode() for s, n in zip(spans.starts, spans.lengths, strict=True)]
        assert got == words, (text, fixed)
        assert [got[i] for i in spans.fixed] == [text[s:e] for s, e in fixed]


def test_lone_surrogates_are_left_to_the_regex():
    assert pretoken_bytes("ab\ud800c") is None
    assert pretoken_bytes("abc") is not None


def test_keys_tell_short_strings_apart():
    # Trailing NULs, lengths 15 / 16 / 17, strings that differ in one byte only.
    pieces = [b"\x00" * n for n in range(1, 18)] + [b"a", b"a\x00", b"\x00a", b"\xff" * 15]
    pieces += [bytes([i % 7]) * 15 for i in range(14)] + [b"x" * 14 + b"y", b"x" * 15]
    pieces += [b"abcdefgh", b"abcdefghi", b"abcdefg"]
    utf8 = np.frombuffer(b"".join(pieces) + b"\x07" * 16, dtype=np.uint8)  # junk after the end
    lengths = np.array([len(p) for p in pieces], dtype=np.int64)
    starts = np.cumsum(lengths) - lengths
    key0, key1 = short_keys(utf8, starts, lengths)
    short = lengths <= MAX_BYTES
    assert (key1[~short] == LONG).all() and (key1[short] != 0).all() and (key1[short] != LONG).all()
    keys = set(zip(key0[short].tolist(), key1[short].tolist(), strict=True))
    assert len(keys) == len({p for p in pieces if len(p) <= MAX_BYTES})


def test_key_table_with_every_key_in_one_slot(monkeypatch):
    table = KeyTable(bits=4)  # tiny: it must grow, re-placing what it holds
    monkeypatch.setattr(KeyTable, "_slots", lambda self, key0, key1: np.zeros(len(key0), np.intp))
    rng = np.random.default_rng(0)
    key0 = rng.integers(0, 1 << 63, 300, dtype=np.uint64)
    key1 = rng.integers(1, 1 << 63, 300, dtype=np.uint64)
    table.insert(key0[:100], key1[:100], np.arange(100, dtype=np.int32))
    table.insert(key0[100:200], key1[100:200], np.arange(100, 200, dtype=np.int32))
    assert len(table) == 200
    codes = table.lookup(key0, key1)
    assert codes.tolist() == list(range(200)) + [-1] * 100
    # A key sharing key0 (or key1) with a stored one is still a miss.
    assert table.lookup(key0[:5], key1[5:10]).tolist() == [-1] * 5


@pytest.fixture(scope="module")
def tokenizer(train_tokenizer):
    rng = random.Random(3)
    corpus = "".join(random_text(rng, 30) + "<|endoftext|>" for _ in range(300))
    return train_tokenizer(corpus + "the cat's hat isn't the dog's. " * 100)


def regex_path_encode(tokenizer: Tokenizer, text: str) -> list[int]:
    """The plain path: the regex's pre-tokens, each through the per-pre-token BPE."""
    return [i for word in PRETOKEN.findall(text) for i in tokenizer._encode_piece(word)]


def test_ids_equal_the_regex_path(tokenizer):
    rng = random.Random(4)
    texts = [random_text(rng, rng.randrange(1, 300)) for _ in range(300)]
    fresh = Tokenizer(tokenizer.vocab, tokenizer.merges, tokenizer.special_tokens)
    for text in texts:
        assert fresh.encode_ordinary(text) == regex_path_encode(tokenizer, text)
    # All at once too: thousands of new pre-tokens, short and long, go through the batch BPE.
    joined = "".join(texts)
    fresh = Tokenizer(tokenizer.vocab, tokenizer.merges, tokenizer.special_tokens)
    assert fresh.encode_ordinary(joined) == regex_path_encode(tokenizer, joined)


def test_the_regex_fallback_gives_the_same_ids(tokenizer, monkeypatch):
    rng = random.Random(5)
    texts = [random_text(rng, rng.randrange(1, 200)) + "<|endoftext|>" for _ in range(50)]
    expected = [tokenizer.encode(text) for text in texts]
    # Always fall back (the numpy path declines text holding a lone surrogate so).
    monkeypatch.setattr(tokenizer_module, "pretoken_bytes", lambda text, fixed=(): None)
    fresh = Tokenizer(tokenizer.vocab, tokenizer.merges, tokenizer.special_tokens)
    assert [fresh.encode(text) for text in texts] == expected


def test_ids_with_many_short_documents_equal_the_regex_path(tokenizer):
    # Special tokens are matched with the text around them in one numpy pass (groups of
    # documents), as fixed spans; here groups of every size, cut in random places.
    rng = random.Random(8)
    docs = [random_text(rng, rng.randrange(0, 30)) for _ in range(400)]
    text = "<|endoftext|>".join(docs) + "<|endoftext|><|endoftext|>"
    expected = []
    for doc in text.split("<|endoftext|>"):
        expected += [*regex_path_encode(tokenizer, doc), tokenizer.special_ids["<|endoftext|>"]]
    expected.pop()
    for block in (50, 400, 1 << 20):
        fresh = Tokenizer(tokenizer.vocab, tokenizer.merges, tokenizer.special_tokens)
        original, tokenizer_module._BLOCK_CHARS = tokenizer_module._BLOCK_CHARS, block
        try:
            assert fresh.encode(text) == expected
        finally:
            tokenizer_module._BLOCK_CHARS = original


def test_a_lone_surrogate_fails_as_before_and_leaves_the_cache_sound(tokenizer):
    fresh = Tokenizer(tokenizer.vocab, tokenizer.merges, tokenizer.special_tokens)
    with pytest.raises(UnicodeEncodeError):
        fresh.encode("fine text, then \ud800 a surrogate")
    with pytest.raises(UnicodeEncodeError):  # in a group of documents
        fresh.encode("fine<|endoftext|>text, then \ud800 a surrogate<|endoftext|>")
    text = "fine text, then a surrogate's absence"
    assert fresh.encode(text) == regex_path_encode(tokenizer, text)


def test_ids_stay_exact_when_every_key_collides(tokenizer, monkeypatch):
    monkeypatch.setattr(KeyTable, "_slots", lambda self, key0, key1: np.zeros(len(key0), np.intp))
    rng = random.Random(6)
    texts = [random_text(rng, 25) for _ in range(12)]  # ~250 distinct pre-tokens, one chain
    fresh = Tokenizer(tokenizer.vocab, tokenizer.merges, tokenizer.special_tokens)
    for text in texts + texts:  # the second round finds them all in the table
        assert fresh.encode_ordinary(text) == regex_path_encode(tokenizer, text)
