"""The other tokenizers of CS336 lecture 1, beside BPE: characters, bytes and words.

All share the small protocol `TokenizerLike` (encode, decode, vocab_size), so one table can
compare them (`python -m bpe compare`). They show why BPE wins: characters need a huge vocab,
bytes give one token per byte, and words leave unseen words as <|unk|>.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from bpe.pretokenize import pretokens

UNK = "<|unk|>"
_MAX_CODE_POINT = 0x10FFFF


@runtime_checkable
class TokenizerLike(Protocol):
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Iterable[int]) -> str: ...


def compression_ratio(text: str, ids: list[int]) -> float:
    """UTF-8 bytes per token (higher is better compression)."""
    if not ids:
        raise ValueError("compression_ratio: ids is empty")
    return len(text.encode("utf-8")) / len(ids)


class CharacterTokenizer:
    """One token per Unicode code point; the id is the code point."""

    vocab_size = _MAX_CODE_POINT + 1

    def encode(self, text: str) -> list[int]:
        return list(map(ord, text))

    def decode(self, ids: Iterable[int]) -> str:
        ids = list(ids)
        for position, i in enumerate(ids):
            if not isinstance(i, int) or not 0 <= i <= _MAX_CODE_POINT:
                raise ValueError(f"ids[{position}] = {i!r} is not a code point (0..0x10FFFF)")
        return "".join(map(chr, ids))


class ByteTokenizer:
    """One token per UTF-8 byte; the id is the byte."""

    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Iterable[int]) -> str:
        ids = list(ids)
        for position, i in enumerate(ids):
            if not isinstance(i, int) or not 0 <= i <= 255:
                raise ValueError(f"ids[{position}] = {i!r} is not a byte (0..255)")
        return bytes(ids).decode("utf-8", errors="replace")


class WordTokenizer:
    """One token per GPT-2 regex segment seen in training; anything else is <|unk|> (id 0).

    Build with `WordTokenizer.train(texts, max_vocab_size)`: the most frequent segments win.
    """

    def __init__(self, words: Iterable[str]):
        self.id_to_word = [UNK, *(w for w in dict.fromkeys(words) if w != UNK)]
        self.word_to_id = {w: i for i, w in enumerate(self.id_to_word)}
        self.unk_id = 0

    @classmethod
    def train(cls, texts: str | Iterable[str], max_vocab_size: int) -> WordTokenizer:
        if max_vocab_size < 1:
            raise ValueError(f"max_vocab_size={max_vocab_size} must be at least 1 (the <|unk|>)")
        counts: Counter[str] = Counter()
        for text in [texts] if isinstance(texts, str) else texts:
            counts.update(pretokens(text))
        return cls(w for w, _ in counts.most_common(max_vocab_size - 1))

    @property
    def vocab_size(self) -> int:
        return len(self.id_to_word)

    def encode(self, text: str) -> list[int]:
        get = self.word_to_id.get
        return [get(w, 0) for w in pretokens(text)]

    def decode(self, ids: Iterable[int]) -> str:
        words = self.id_to_word
        out = []
        for position, i in enumerate(ids):
            if not isinstance(i, int) or not 0 <= i < len(words):
                raise ValueError(f"ids[{position}] = {i!r} is not a word id (0..{len(words) - 1})")
            out.append(words[i])
        return "".join(out)
