"""GPT-2 pre-tokenization without the regex: where each pre-token starts, found by numpy.

The regex makes one Python string per pre-token (~25 M for a 100 MB corpus), and those strings,
plus a dict lookup each, cost more than tiktoken's whole encode. Yet which pre-token a position
belongs to depends only on the characters' classes, so the starts can be computed for a whole
block at once: the UTF-8 bytes -> class per byte (`bytes.translate`, for ASCII; the few
multi-byte characters are decoded and looked up apart) -> a start flag per byte from its own
class and its two neighbours' (one more `translate`) -> the few contractions adjusted ->
`flatnonzero`. No Python object per pre-token, and the starts come out as byte offsets, which
is what the encoder keys its cache on.

The pattern is `'(?:[sdmt]|ll|ve|re)| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+`.
Every character is in exactly one of four classes: a letter (`\\p{L}`), a number (`\\p{N}`),
white space (`\\s`), or other (the third branch's class: punctuation, symbols, marks, emoji...).
The table is made by the `regex` module itself over every code point, so it agrees with the
pattern by construction. White space is split in two, the plain space U+0020 and the rest,
because only U+0020 is the optional ` ` of ` ?X+`. The pattern then starts a pre-token at i > 0
exactly when:

- i is not white space: when the class changes at i (a letter, number or other run ends where
  its class does), except after a plain space, which the pattern joins to the run that follows
  (` ?X+` takes it; no branch could stop between them).
- i is white space: when i - 1 is not (a run of white space starts), or when i + 1 is not white
  space and exists, i.e. i is the last of a white-space run followed by a non-space: `\\s+(?!\\S)`
  matches the run greedily, then backs off one character so that a non-space does not follow,
  leaving that last character to be a pre-token of its own (or, if it is U+0020, the ` ` of
  the next run, by the rule above). At the end of the text nothing follows: the whole trailing
  run is one pre-token.

Both rules read three classes (i - 1, i, i + 1; an END class past the text), hence one lookup in
a 6 x 6 x 6 table. Then contractions: the first branch wins wherever a pre-token starts with `'`
and the next characters are s, d, m, t, ll, ve or re (case-sensitive): `'s` is a pre-token of its
own and a new one starts right after it ("'sam" is "'s", "am"). This applies only where `'`
starts a pre-token after the rules above: " 's" is " '", "s" (the space joined the `'`, a symbol
run) and ".'s" is ".'", "s" (the `'` is inside a symbol run). A `'` inside a run is never
checked, and a contraction's letters are no start: so the check runs once, on the starts found.

The work is on bytes, not characters: every byte of a multi-byte character gets that character's
class, so runs and class changes are the same, and a start can only fall on a character's first
byte (the flags of the others are cleared). One rule looks past a character: a white-space
character before a non-space. For a multi-byte one (U+00A0, U+3000, ...) the byte after its
first is its own, so those few are settled apart, from the byte after the character.

Special tokens are matched with the text around them as fixed spans whose bytes get the END
class: every rule then ends the text before one as at the end of a text, and the rule table
starts a pre-token after END whatever follows, as at the start of a text. Text holding lone
surrogates (which UTF-8 cannot encode) gives None: callers fall back to the regex
(`pretokenize.pretokens`), which stays the reference.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import regex

# Character classes; END marks the position after the text and the bytes of fixed spans.
_LETTER, _NUMBER, _OTHER, _SPACE, _WHITE, _END = range(6)  # _SPACE: U+0020; _WHITE: other \s
_APOSTROPHE = ord("'")
_PAD = 16  # zero bytes after the UTF-8 text, so 16-byte reads at any pre-token start stay inside
_NOT_UTF8 = b"\xff"  # a byte UTF-8 never holds: marks the end of the text for the class table


class PretokenBytes(NamedTuple):
    """The pre-tokens of a text as spans of its UTF-8 bytes."""

    utf8: np.ndarray  # (bytes + _PAD,) uint8: the text's UTF-8 bytes, then _PAD zeros
    starts: np.ndarray  # (pre-tokens,) int64 byte offset of each pre-token
    lengths: np.ndarray  # (pre-tokens,) int64 its length in bytes (at least 1)
    fixed: np.ndarray  # (fixed spans,) int64 the pre-token that is each fixed span (see below)


@functools.cache
def _class_table() -> np.ndarray:
    """(0x110000,) uint8: the class of each code point (surrogates, never seen, are _OTHER).

    Built once (~0.2 s) by the `regex` module over all code points.
    """
    everything = "".join(map(chr, range(0xD800))) + "".join(map(chr, range(0xE000, 0x110000)))
    table = np.full(0x110000, _OTHER, dtype=np.uint8)
    for pattern, cls in ((r"\p{L}+", _LETTER), (r"\p{N}+", _NUMBER), (r"\s+", _WHITE)):
        members = "".join(regex.findall(pattern, everything))
        table[np.frombuffer(members.encode("utf-32-le"), dtype=np.uint32)] = cls
    table[ord(" ")] = _SPACE
    return table


@functools.cache
def _byte_classes() -> bytes:
    """A `bytes.translate` table: the class of each ASCII byte, _END for _NOT_UTF8.

    Bytes of multi-byte characters get _OTHER here and their character's class afterwards.
    """
    return (_class_table()[:128].tobytes() + bytes([_OTHER]) * 127) + bytes([_END])


@functools.cache
def _start_rule() -> bytes:
    """A `bytes.translate` table: at 36*class[i-1] + 6*class[i] + class[i+1], 1 if i starts a
    pre-token, else 0.

    The two rules of the module docstring, spelled out for every triple of classes.
    """
    rule = bytearray(256)
    rule[36 * _END : 36 * _END + 36] = b"\x01" * 36  # after a fixed span the text starts anew
    white = (_SPACE, _WHITE)
    for before in range(_END):  # i - 1 is a character of the text
        for here in range(_END):
            for after in range(_END + 1):
                if here in white:
                    starts = before not in white or after not in (*white, _END)
                else:
                    starts = here != before and before != _SPACE
                rule[36 * before + 6 * here + after] = starts
    return bytes(rule)


def prepare_tables() -> None:
    """Build the tables now (~0.1 s), e.g. before forking workers that would each build them."""
    _byte_classes()
    _start_rule()


def _start_flags(classes: np.ndarray, units: np.ndarray, n: int) -> np.ndarray:
    """(n,) bool, True where a pre-token starts, from the rules and the contractions.

    classes: (n + 3,) uint8 the class of each unit, then _END (also _END: the bytes of fixed
    spans); units: (n + 3,) the units (bytes) then three that are no letter (contractions look
    ahead two characters).
    """
    triple = classes[: n - 1] * np.uint8(36)  # (n - 1,) for i = 1 .. n - 1
    triple += classes[1:n] * np.uint8(6)
    triple += classes[2 : n + 1]
    flags = bytearray(b"\x01") + triple.tobytes().translate(_start_rule())
    flags = np.frombuffer(flags, dtype=bool)  # (n,) writable: the bytearray is
    # Contractions: only at a `'` that starts a pre-token; the letters after it are no start
    # (the class change put one there), the character after the contraction is.
    quotes = np.flatnonzero(units[:n] == _APOSTROPHE)
    quotes = quotes[flags[quotes] & (classes[quotes] != _END)]  # a fixed span's `'` is none
    if len(quotes):
        first, second = units[quotes + 1], units[quotes + 2]
        one = (first == ord("s")) | (first == ord("d")) | (first == ord("m")) | (first == ord("t"))
        two = (
            ((first == ord("l")) & (second == ord("l")))
            | ((first == ord("v")) & (second == ord("e")))
            | ((first == ord("r")) & (second == ord("e")))
        )
        letter = classes[quotes + 1] == _LETTER  # not a fixed span's (its "l" + "l" is no "ll")
        one &= letter
        two &= letter & (classes[quotes + 2] == _LETTER)
        flags[quotes[one | two] + 1] = False
        ends = np.concatenate((quotes[one] + 2, quotes[two] + 3))
        flags[ends[ends < n]] = True
    return flags


def pretoken_bytes(text: str, fixed: Sequence[tuple[int, int]] = ()) -> PretokenBytes | None:
    """The GPT-2 pre-tokens of `text` as UTF-8 byte spans; None if it holds a lone surrogate.

    `fixed`: character spans (start, end), sorted, not overlapping and not empty, that are each
    one pre-token, and that the pattern does not see: the text between them is pre-tokenized
    piece by piece, as if each piece were a text of its own (special tokens). Their bytes get
    the class _END, which ends the text before them for every rule, and the start rule starts
    anew after _END; `PretokenBytes.fixed` tells which pre-tokens they are.
    """
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:
        return None
    n = len(raw)
    utf8 = np.frombuffer(raw + bytes(_PAD), dtype=np.uint8)  # (n + _PAD,)
    no_fixed = np.zeros(0, dtype=np.int64)
    if not n:
        return PretokenBytes(
            utf8, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), no_fixed
        )
    bounds = np.array(fixed, dtype=np.int64).reshape(-1, 2)  # (fixed spans, 2) start, end
    classes = (raw + _NOT_UTF8 * 3).translate(_byte_classes())  # (n + 3,) ends in _END
    if text.isascii():  # a flag of the str object: every byte is a character
        classes = np.frombuffer(bytearray(classes) if len(bounds) else classes, dtype=np.uint8)
        rest = white_lead = None
    else:
        classes = np.frombuffer(bytearray(classes), dtype=np.uint8)  # writable
        # The first byte of each multi-byte character (0b11xxxxxx), its length (2 for
        # 0b110xxxxx, 3 for 0b1110xxxx, 4 for 0b11110xxx) and its code point.
        lead = np.flatnonzero(utf8[:n] >= 0xC0)  # (wide,)
        b0, b1, b2, b3 = (utf8[lead + k].astype(np.uint32) for k in range(4))
        size = 2 + (b0 >= 0xE0) + (b0 >= 0xF0)
        payload = (b1 & 0x3F) << 6
        point = np.where(size == 2, ((b0 & 0x1F) << 6) | (b1 & 0x3F), 0)
        three = (b0 & 0x0F) << 12 | payload | (b2 & 0x3F)
        point = np.where(size == 3, three, point)
        four = (b0 & 0x07) << 18 | (b1 & 0x3F) << 12 | (b2 & 0x3F) << 6 | (b3 & 0x3F)
        point = np.where(size == 4, four, point)
        cls = _class_table()[point]  # (wide,)
        # Every byte of the character gets its class; only the first may start a pre-token.
        rest = np.concatenate([lead[size > k] + k for k in (1, 2, 3)])  # the other bytes
        classes[lead] = cls
        classes[rest] = np.concatenate([cls[size > k] for k in (1, 2, 3)])
        white = np.flatnonzero(cls == _WHITE)
        white_lead, white_size = lead[white], size[white]
        if len(bounds):
            # Character offsets to byte offsets: add the extra bytes of the wide characters
            # before each (lead_char: the character offset of each wide character).
            extra = np.zeros(len(lead) + 1, dtype=np.int64)
            np.cumsum(size - 1, out=extra[1:])
            lead_char = lead - extra[:-1]
            bounds = bounds + extra[np.searchsorted(lead_char, bounds)]
    spans = bounds.tolist()
    for start, end in spans:
        classes[start:end] = _END
    flags = _start_flags(classes, utf8, n)
    if rest is not None:
        flags[rest] = False
        # A multi-byte white-space character whose run goes on (a space before it) starts a
        # pre-token where the character after it is no space: the rule saw its second byte.
        after = classes[white_lead + white_size]
        flags[white_lead[(after != _WHITE) & (after != _SPACE) & (after != _END)]] = True
    for start, end in spans:
        flags[start] = True
        flags[start + 1 : end] = False
    starts = np.flatnonzero(flags)
    fixed_at = np.searchsorted(starts, bounds[:, 0]) if len(bounds) else no_fixed
    return PretokenBytes(utf8, starts, np.diff(starts, append=n), fixed_at)
