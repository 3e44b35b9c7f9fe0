"""The lecture's character, byte and word tokenizers, and compression_ratio."""

from __future__ import annotations

import pytest

from bpe import (
    ByteTokenizer,
    CharacterTokenizer,
    Tokenizer,
    TokenizerLike,
    WordTokenizer,
    compression_ratio,
)

TEXT = "Hello, 🌍! naïve café, 中文. It's fine."


def test_character_tokenizer():
    tokenizer = CharacterTokenizer()
    ids = tokenizer.encode(TEXT)
    assert ids[:2] == [72, 101] and 127757 in ids
    assert tokenizer.decode(ids) == TEXT and tokenizer.vocab_size == 0x110000
    with pytest.raises(ValueError, match="not a code point"):
        tokenizer.decode([0x110000])


def test_byte_tokenizer():
    tokenizer = ByteTokenizer()
    ids = tokenizer.encode("🌍")
    assert ids == [0xF0, 0x9F, 0x8C, 0x8D] and tokenizer.decode(ids) == "🌍"
    assert tokenizer.decode([0xF0, 0x9F]) == "\ufffd"
    assert compression_ratio(TEXT, tokenizer.encode(TEXT)) == 1.0


def test_word_tokenizer_caps_vocab_and_maps_unseen_words_to_unk():
    tokenizer = WordTokenizer.train(["the cat sat on the mat the end"], max_vocab_size=4)
    assert tokenizer.vocab_size == 4 and tokenizer.id_to_word[0] == "<|unk|>"
    assert tokenizer.id_to_word[1] == " the"  # the most frequent segment
    ids = tokenizer.encode("the dog sat")
    assert ids.count(tokenizer.unk_id) >= 1
    assert tokenizer.decode(tokenizer.encode(" the the")) == " the the"


def test_all_share_the_protocol():
    bpe = Tokenizer({i: bytes([i]) for i in range(256)}, [])
    for tokenizer in (CharacterTokenizer(), ByteTokenizer(), WordTokenizer.train(TEXT, 10), bpe):
        assert isinstance(tokenizer, TokenizerLike)


def test_compression_ratio():
    assert compression_ratio("abcd", [1, 2]) == 2.0
    with pytest.raises(ValueError, match="empty"):
        compression_ratio("abc", [])
