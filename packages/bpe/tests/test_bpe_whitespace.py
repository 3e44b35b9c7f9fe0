"""Whitespace-rich text: every kind of space, runs of them, contractions, astral letters.

Where pre-tokens begin and end is decided by spaces (`\\s+(?!\\S)` hands a run's last space to
the next word), so text dense in Unicode spaces, lone spaces and indentation is where an encoder
that takes shortcuts around the regex would go wrong. The ids are compared with tiktoken's
(built from the same ranks and GPT-2's pattern) and with the plain regex + per-pre-token BPE.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import regex

from bpe import GPT2_PATTERN, Tokenizer, train_bpe
from bpe.pretokenize import BMP_PRETOKEN_RE, PRETOKEN_RE, last_safe_cut, safe_cut

SPACES = [
    " ",
    "\n",
    "\t",
    "\r",
    "\x0b",
    "\x0c",
    "\x85",
    "\u00a0",
    "\u1680",
    "\u2000",
    "\u2007",
    "\u200a",
    "\u2028",
    "\u2029",
    "\u202f",
    "\u205f",
    "\u3000",
]
# Characters near whitespace that \s does not match (or str.isspace and \s disagree on).
NEAR_SPACES = ["\x1c", "\x1d", "\x1e", "\x1f", "\u200b", "\u180e", "\ufeff", "\x00"]
WORDS = ["the", "cat", "Hello", "élan", "日本", "x", "a", "I", "ok"]
OTHERS = [*"0123456789.,;:!?-()'\"", "'s", "'ll", "'ve", "'re", "'d", "'m", "'t", "'S"]
ASTRAL = ["\U0001d400", "\U0001d7ce", "\U00020000", "😀", "👍🏽", "🇫🇷"]
SPECIAL = "<|endoftext|>"


def whitespace_rich(rng: random.Random, length: int) -> str:
    pools = [SPACES, SPACES, [" "] * 4 + ["  ", "    ", " \n", "\n    "], NEAR_SPACES]
    pools += [WORDS, WORDS, OTHERS, ASTRAL]
    text = "".join(rng.choice(rng.choice(pools)) for _ in range(length))
    if rng.random() < 0.3:
        text = " " * rng.randrange(1, 4) + text
    if rng.random() < 0.3:
        text += " " * rng.randrange(1, 4)
    return text


@pytest.fixture(scope="module")
def tokenizer_and_peer(tmp_path_factory):
    """A 900-id tokenizer trained on whitespace-rich text (merges of spaces included), and
    tiktoken's Encoding over the same ranks."""
    tiktoken = pytest.importorskip("tiktoken")
    rng = random.Random(0)
    corpus = "".join(whitespace_rich(rng, 30) + SPECIAL for _ in range(300))
    corpus += "    def f(x):\n        return x  # indented\n\n" * 50
    path = tmp_path_factory.mktemp("whitespace") / "corpus.txt"
    path.write_text(corpus, encoding="utf-8")
    vocab, merges = train_bpe(path, 900, [SPECIAL], num_workers=1)
    tokenizer = Tokenizer(vocab, merges, [SPECIAL])
    assert any(b" " in a + b and (a + b).strip() == b"" for a, b in tokenizer.merges)
    peer = tiktoken.Encoding(
        name="whitespace-test",
        pat_str=GPT2_PATTERN,
        mergeable_ranks=tokenizer.tiktoken_mergeable_ranks(),
        special_tokens=tokenizer.special_ids,
    )
    return tokenizer, peer


def plain_encode(tokenizer: Tokenizer, text: str) -> list[int]:
    """The `regex` module's GPT-2 pattern, then BPE on each pre-token by itself."""
    return [i for word in PRETOKEN_RE.findall(text) for i in tokenizer._encode_piece(word)]


def test_whitespace_rich_text_encodes_like_tiktoken(tokenizer_and_peer):
    tokenizer, peer = tokenizer_and_peer
    rng = random.Random(1)
    for _ in range(3000):
        text = whitespace_rich(rng, rng.randrange(0, 40))
        expected = peer.encode_ordinary(text)
        assert tokenizer.encode_ordinary(text) == expected, repr(text)
        assert plain_encode(tokenizer, text) == expected, repr(text)


def test_whitespace_rich_text_with_special_tokens(tokenizer_and_peer):
    tokenizer, peer = tokenizer_and_peer
    rng = random.Random(2)
    for _ in range(500):
        parts = [whitespace_rich(rng, rng.randrange(0, 12)) for _ in range(rng.randrange(1, 5))]
        text = SPECIAL.join(parts)
        assert tokenizer.encode(text) == peer.encode(text, allowed_special="all"), repr(text)


def test_texts_of_only_spaces_and_edge_strings(tokenizer_and_peer):
    tokenizer, peer = tokenizer_and_peer
    texts = [" " * n for n in range(25)]
    texts += [c * n for c in SPACES + NEAR_SPACES for n in (1, 2, 3, 7)]
    texts += [a + b + c for a in SPACES[:8] for b in (" ", "x", "'s") for c in SPACES[:8]]
    texts += ["x 's", " 's", "  's", "it's  ll", "'ll", " 'll x", "a \U0001d400 b", " \U0001d400"]
    texts += ["\n    return x", "a\u00a0 b", "a \u00a0b", "a  \u3000 b ", " \n \n ", "x \x1c y"]
    for text in texts:
        assert tokenizer.encode_ordinary(text) == peer.encode_ordinary(text), repr(text)


def test_long_whitespace_rich_text_in_blocks_and_streams(tokenizer_and_peer):
    tokenizer, peer = tokenizer_and_peer
    rng = random.Random(3)
    text = "".join(whitespace_rich(rng, 60) for _ in range(300))
    expected = peer.encode_ordinary(text)
    import bpe.tokenizer as module

    block = module._BLOCK_CHARS
    module._BLOCK_CHARS = 97  # many blocks, cut wherever the encoder may cut
    try:
        assert tokenizer.encode_ordinary(text) == expected
        cuts = sorted(rng.sample(range(len(text)), 200))
        chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        assert list(tokenizer.encode_iterable(chunks)) == expected
    finally:
        module._BLOCK_CHARS = block


def test_whitespace_rich_file_encodes_like_tiktoken(tokenizer_and_peer, tmp_path):
    tokenizer, peer = tokenizer_and_peer
    rng = random.Random(4)
    lines = [whitespace_rich(rng, 40).replace("\r", "") for _ in range(3000)]
    text = "\n".join(line + (SPECIAL if rng.random() < 0.1 else "") for line in lines)
    path = tmp_path / "text.txt"
    path.write_text(text, encoding="utf-8", newline="")
    out = tmp_path / "ids.bin"
    import bpe.tokenizer as module

    chunk = module._FILE_CHUNK_BYTES
    module._FILE_CHUNK_BYTES = 4096  # many chunks, cut at safe newlines
    try:
        count = tokenizer.encode_file(path, out, num_workers=2, progress=False)
    finally:
        module._FILE_CHUNK_BYTES = chunk
    expected = peer.encode(text, allowed_special="all")
    assert count == len(expected)
    assert np.fromfile(out, dtype=tokenizer.token_dtype).tolist() == expected


def test_bmp_pattern_twin_agrees_on_whitespace_rich_text():
    rng = random.Random(5)
    for _ in range(2000):
        text = whitespace_rich(rng, 30)
        if not regex.search(r"[\U00010000-\U0010ffff]", text):
            assert BMP_PRETOKEN_RE.findall(text) == PRETOKEN_RE.findall(text), repr(text)


def all_safe_cuts(text: str) -> list[int]:
    cuts, cut = [], safe_cut(text, 0, len(text))
    while cut is not None:
        cuts.append(cut)
        cut = safe_cut(text, cut + 1, len(text))
    return cuts


def test_safe_cuts_change_no_pretoken():
    # Blocks and streams are cut only there: the pre-tokens of the two sides, each matched
    # alone, must be those of the whole text, whatever the text.
    rng = random.Random(6)
    seen = 0
    for _ in range(1500):
        text = whitespace_rich(rng, rng.randrange(1, 60))
        whole = PRETOKEN_RE.findall(text)
        cuts = all_safe_cuts(text)
        for cut in cuts:
            assert PRETOKEN_RE.findall(text[:cut]) + PRETOKEN_RE.findall(text[cut:]) == whole, (
                repr(text),
                cut,
            )
        seen += len(cuts)
        assert last_safe_cut(text, 0, len(text)) == (cuts[-1] if cuts else None)
    assert seen > 3000
    # ... while a cut elsewhere may change them (which is why encode must not cut anywhere).
    text = "we'll go"
    assert 4 not in all_safe_cuts(text)
    assert PRETOKEN_RE.findall(text[:4]) + PRETOKEN_RE.findall(text[4:]) != PRETOKEN_RE.findall(
        text
    )


def test_no_astral_character_is_whitespace():
    # The safe-cut and BMP patterns spell `\s` out over the BMP only.
    astral = "".join(map(chr, range(0x10000, 0x110000)))
    assert regex.search(r"\s", astral) is None


def test_blocks_and_streams_never_cut_inside_a_contraction():
    # A block or stream boundary inside "'ll" once split it into "'" + "ll" ("we'l" alone
    # pre-tokenizes as "we", "'", "l"). The merge (', l) makes the difference visible in ids.
    vocab = {i: bytes([i]) for i in range(256)} | {256: b"'l"}
    tokenizer = Tokenizer(vocab, [(b"'", b"l")])
    text = "we'll go, they've been"
    expected = tokenizer.encode(text)
    assert 256 in expected
    import bpe.tokenizer as module

    block = module._BLOCK_CHARS
    try:
        for size in range(1, len(text) + 1):
            module._BLOCK_CHARS = size
            assert tokenizer.encode(text) == expected, size
            chunks = [text[i : i + size] for i in range(0, len(text), size)]
            assert list(tokenizer.encode_iterable(chunks)) == expected, size
    finally:
        module._BLOCK_CHARS = block
