"""GPT-2 pre-tokenization without the regex: where each pre-token starts, found by numpy.

The regex makes one Python string per pre-token (~25 M for a 100 MB corpus), and those strings,
plus a dict lookup each, cost more than tiktoken's whole encode. Yet which pre-token a position
belongs to depends only on the characters' classes, so the starts can be computed for a whole
block at once: code points -> class per character (one table lookup) -> a start flag per
character from its own class and its two neighbours' (one more table lookup) -> the few
contractions adjusted -> `flatnonzero`. No Python object per pre-token.

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

`pretoken_bytes` also gives each pre-token's bytes as offsets into the UTF-8 text, which is what
the encoder keys its cache on. Text holding lone surrogates (which no encoding accepts) gives
None: callers fall back to the regex (`pretokenize.pretokens`), which stays the reference.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import regex

# Character classes; END marks the position after the text (and is no character).
_LETTER, _NUMBER, _OTHER, _SPACE, _WHITE, _END = range(6)  # _SPACE: U+0020; _WHITE: other \s
_APOSTROPHE = ord("'")
_PAD = 16  # zero bytes after the UTF-8 text, so 16-byte reads at any pre-token start stay inside


class PretokenBytes(NamedTuple):
    """The pre-tokens of a text as spans of its UTF-8 bytes."""

    utf8: np.ndarray  # (bytes + _PAD,) uint8: the text's UTF-8 bytes, then _PAD zeros
    starts: np.ndarray  # (pre-tokens,) int64 byte offset of each pre-token
    lengths: np.ndarray  # (pre-tokens,) int64 its length in bytes (at least 1)


@functools.cache
def _class_table() -> np.ndarray:
    """(0x110000,) uint8: bits 0-2 the class of each code point, bits 4-5 its UTF-8 length - 1.

    Built once (~0.2 s) by the `regex` module over all code points. Surrogates (never seen:
    text holding them goes to the regex) are left as _OTHER.
    """
    everything = "".join(map(chr, range(0xD800))) + "".join(map(chr, range(0xE000, 0x110000)))
    table = np.full(0x110000, _OTHER, dtype=np.uint8)
    for pattern, cls in ((r"\p{L}+", _LETTER), (r"\p{N}+", _NUMBER), (r"\s+", _WHITE)):
        members = "".join(regex.findall(pattern, everything))
        table[np.frombuffer(members.encode("utf-32-le"), dtype=np.uint32)] = cls
    table[ord(" ")] = _SPACE
    code_points = np.arange(0x110000)
    utf8_extra = (code_points >= 0x80).astype(np.uint8)
    utf8_extra += code_points >= 0x800
    utf8_extra += code_points >= 0x10000
    table |= utf8_extra << 4
    return table


@functools.cache
def _start_rule() -> np.ndarray:
    """(216,) bool: whether i starts a pre-token, at index 36*class[i-1] + 6*class[i] + class[i+1].

    The two rules of the module docstring, spelled out for every triple of classes.
    """
    rule = np.zeros(216, dtype=bool)
    white = (_SPACE, _WHITE)
    for before in range(_END):  # i - 1 is a character of the text
        for here in range(_END):
            for after in range(_END + 1):
                if here in white:
                    starts = before not in white or after not in (*white, _END)
                else:
                    starts = here != before and before != _SPACE
                rule[36 * before + 6 * here + after] = starts
    return rule


def _start_flags(classes: np.ndarray, units: np.ndarray, n: int) -> np.ndarray:
    """(n + 3,) bool, True where a pre-token starts (only [:n] counts).

    classes: (n + 3,) uint8 class of each character, then _END three times; units: (n + 3,)
    the code points (or ASCII bytes), then three that are no letter (contractions look ahead
    two characters).
    """
    triple = classes[: n - 1] * np.uint8(36)  # (n - 1,) for i = 1 .. n - 1
    triple += classes[1:n] * np.uint8(6)
    triple += classes[2 : n + 1]
    flags = np.empty(n + 3, dtype=bool)
    flags[0] = True
    np.take(_start_rule(), triple, out=flags[1:n])
    flags[n:] = False
    # Contractions: only at a `'` that starts a pre-token; the letters after it are no start
    # (the class change put one there), the character after the contraction is.
    quotes = np.flatnonzero(units[:n] == _APOSTROPHE)
    quotes = quotes[flags[quotes]]
    if len(quotes):
        first, second = units[quotes + 1], units[quotes + 2]
        one = (first == ord("s")) | (first == ord("d")) | (first == ord("m")) | (first == ord("t"))
        two = (
            ((first == ord("l")) & (second == ord("l")))
            | ((first == ord("v")) & (second == ord("e")))
            | ((first == ord("r")) & (second == ord("e")))
        )
        flags[quotes[one | two] + 1] = False
        flags[quotes[one] + 2] = True
        flags[quotes[two] + 3] = True
    return flags


def pretoken_starts(text: str) -> np.ndarray | None:
    """(pre-tokens,) int64 character offset of each GPT-2 pre-token of `text`.

    The starts of `regex.finditer(GPT2_PATTERN, text)`; None if `text` holds a lone surrogate.
    """
    if not text:
        return np.zeros(0, dtype=np.int64)
    try:
        units = np.frombuffer((text + "\0\0\0").encode("utf-32-le"), dtype=np.uint32)
    except UnicodeEncodeError:
        return None
    classes = _class_table()[units] & np.uint8(7)
    classes[len(text) :] = _END
    return np.flatnonzero(_start_flags(classes, units, len(text))[: len(text)])


def pretoken_bytes(text: str) -> PretokenBytes | None:
    """The GPT-2 pre-tokens of `text` as UTF-8 byte spans; None if it holds a lone surrogate."""
    n = len(text)
    if not n:
        empty = np.zeros(0, dtype=np.int64)
        return PretokenBytes(np.zeros(_PAD, dtype=np.uint8), empty, empty)
    if text.isascii():  # a flag of the str object: bytes are characters (70% of the corpus)
        utf8 = np.frombuffer((text + "\0" * _PAD).encode("ascii"), dtype=np.uint8)
        classes = _class_table()[:128][utf8[: n + 3]]  # (n + 3,) a copy, small table
        classes[n:] = _END
        starts = np.flatnonzero(_start_flags(classes, utf8, n)[:n])
        return PretokenBytes(utf8, starts, np.diff(starts, append=n))
    try:
        units = np.frombuffer((text + "\0\0\0").encode("utf-32-le"), dtype=np.uint32)
    except UnicodeEncodeError:
        return None
    utf8 = np.frombuffer((text + "\0" * _PAD).encode("utf-8"), dtype=np.uint8)
    packed = _class_table()[units]  # (n + 3,) class | (UTF-8 length - 1) << 4
    classes = packed & np.uint8(7)
    classes[n:] = _END
    starts = np.flatnonzero(_start_flags(classes, units, n)[:n])
    # Byte offset of character i: i + the extra UTF-8 bytes of the characters before it. Few
    # characters are not ASCII even here, so the sum runs over those alone (a cumsum over
    # every character cost ~3x more): `wide` are their positions, `extra[k]` the extra bytes
    # of wide[:k].
    wide = np.flatnonzero(units[:n] > 0x7F)  # (w,) sorted
    extra = np.zeros(len(wide) + 1, dtype=np.int64)
    np.cumsum(packed[wide] >> np.uint8(4), out=extra[1:])
    byte_starts = starts + extra[np.searchsorted(wide, starts)]
    return PretokenBytes(utf8, byte_starts, np.diff(byte_starts, append=len(utf8) - _PAD))
