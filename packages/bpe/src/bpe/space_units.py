"""Encoding by space-separated units: str.split(" ") and one dict lookup per word, no regex.

GPT-2's pattern always starts a pre-token at a space that is followed by a character other than
whitespace (`\\s` as the `regex` module defines it): such a space can only begin ` ?\\p{L}+`,
` ?\\p{N}+` or ` ?[^\\s\\p{L}\\p{N}]+`, and whatever comes before it ends there (letter, number and
symbol runs hold no space; a whitespace run gives up its last character to the `(?!\\S)`
lookahead exactly as it does at the end of the text; a contraction holds no space). Nor can any
match before that space tell the space from the end of the text: every branch stops at it (or,
for `\\s+(?!\\S)`, backs off to it) as it stops at the end. So the text between two such "clean"
spaces pre-tokenizes exactly as it does alone.

Split the text on " ": text = p0 + " " + p1 + " " + ... + " " + pn. A piece p_i (i >= 1) that is
non-empty and starts with a non-space character is *good*: the unit " " + p_i sits between clean
boundaries, and its ids (all its pre-tokens, BPE'd) can be cached under the key p_i. A piece that
is empty (two spaces in a row) or starts with whitespace (" \\n", indentation) is *bad*: the space
before it is not a boundary one can trust, so the bad pieces join the good unit before them into
one *region*, " " + p_(i-1) + " " + p_i + ..., which is again between clean boundaries and is
cached under its text without the leading space (the same meaning as a unit's key: the ids of " "
+ key). The head p0 (with any bad pieces after it) has no leading space and is a region of its
own kind, cached in a second dict under its own text.

Whether a piece is bad depends on the piece alone, so it is decided once, when the piece enters
the cache, and kept as a per-code flag; the regions are then found with numpy. The hot loop is
`str.split`, one C-level dict lookup per piece and a numpy gather of the ids, instead of the
regex and one lookup per pre-token.
"""

from __future__ import annotations

import re
from itertools import compress, repeat
from operator import itemgetter

import numpy as np
import regex

from bpe.pretokenize import pretokens

# Distinct keys (units, regions, heads) and their total characters kept before the cache is
# cleared: a memory bound (~1.3 M distinct units in the 102 MB benchmark corpus).
_UNIT_CACHE_LIMIT = 1 << 22
_UNIT_CHARS_LIMIT = 1 << 26


def _whitespace() -> frozenset[str]:
    """Every character the `regex` module's `\\s` matches (none lies beyond the BMP)."""
    everything = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    return frozenset(regex.findall(r"\s", everything))


WHITESPACE = _whitespace()
# A piece is bad when its first character (`piece[:1]`, "" for an empty piece) is in here.
_BAD_START = WHITESPACE | {""}
_FIRST_CHAR = itemgetter(slice(0, 1))
# A clean boundary: a space followed by a character that is not whitespace.
CLEAN_SPACE_RE = re.compile(" [^" + "".join(f"\\u{ord(c):04x}" for c in sorted(WHITESPACE)) + "]")


def clean_cut(text: str, pos: int, endpos: int) -> int | None:
    """The first clean space in text[pos:endpos] with its next character before endpos."""
    match = CLEAN_SPACE_RE.search(text, pos, endpos)
    return None if match is None else match.start()


def last_clean_cut(text: str, pos: int, endpos: int) -> int | None:
    """The last clean space in text[pos:endpos] with its next character before endpos."""
    space = text.rfind(" ", pos, endpos - 1)
    while space != -1 and text[space + 1] in WHITESPACE:
        space = text.rfind(" ", pos, space)
    return None if space == -1 else space


class IdTable:
    """code -> ids, as flat[start[c] : start[c] + length[c]] in growable numpy arrays.

    `first[c]` is flat[start[c]] (garbage where length[c] is 0), for the gather below.
    """

    def __init__(self):
        self.flat = np.empty(1 << 16, dtype=np.int64)
        self.start = np.empty(1 << 14, dtype=np.int64)
        self.length = np.empty(1 << 14, dtype=np.int64)
        self.first = np.empty(1 << 14, dtype=np.int64)
        self.codes = self.used = 0

    def append(self, flat: np.ndarray, lengths: np.ndarray) -> int:
        """Add one code per entry of `lengths`; returns the first new code."""
        first_code = self.codes
        codes, used = self.codes + len(lengths), self.used + len(flat)
        if codes > len(self.start):
            size = max(codes, 2 * len(self.start))
            self.start = _grown(self.start, size)
            self.length = _grown(self.length, size)
            self.first = _grown(self.first, size)
        if used >= len(self.flat):  # one spare slot: `first` of an empty code reads it
            self.flat = _grown(self.flat, max(used + 1, 2 * len(self.flat)))
        self.flat[self.used : used] = flat
        self.length[first_code:codes] = lengths
        self.start[first_code:codes] = np.cumsum(lengths) - lengths + self.used
        self.first[first_code:codes] = self.flat[self.start[first_code:codes]]
        self.codes, self.used = codes, used
        return first_code

    def truncate(self, codes: int) -> None:
        """Forget every code from `codes` on."""
        self.codes = codes
        self.used = int(self.start[codes - 1] + self.length[codes - 1]) if codes else 0

    def gather(self, codes: np.ndarray) -> np.ndarray:
        """The ids of a sequence of codes, concatenated, as one int64 array."""
        # Most codes have one id: take each code's first id, repeated as many times as it has
        # ids (dropping the empty ones), then write the second and later ids of the others
        # over the repeats.
        lengths = self.length[codes]
        ids = self.first[codes]
        if (lengths == 1).all():
            return ids
        ids = np.repeat(ids, lengths)
        longer = np.flatnonzero(lengths > 1)
        if len(longer):
            ends = np.cumsum(lengths)
            rest = lengths[longer] - 1  # ids after the first, per longer code
            to = ends[longer] - rest  # where its second id goes in the output
            source = self.start[codes[longer]] + 1 - to  # flat index minus output index
            to = np.repeat(to - np.cumsum(rest) + rest, rest)
            to += np.arange(len(to))  # (ids after the first,) output positions
            ids[to] = self.flat[to + np.repeat(source, rest)]
        return ids


class UnitCache:
    """The ids of units, regions and heads (see the module docstring), under integer codes.

    units: key -> code, where the code's ids are those of " " + key (good keys), or a code with
    no ids flagged bad (bad pieces, which never reach the output themselves); heads: text ->
    code of the text's own ids. Special tokens have fixed codes under the keys (token,), which
    no piece of text can equal. `pieces` is the tokenizer's pre-token cache, which encodes new
    keys: `pieces[word]` gives a pre-token's code and `pieces.ids_and_lengths(codes)` its ids.
    """

    def __init__(self, special_ids: dict[str, int], pieces):
        self._pieces = pieces
        self.table = IdTable()
        self._char_length = np.empty(1 << 14, dtype=np.int64)
        self._bad = np.empty(1 << 14, dtype=bool)
        self._chars = 0
        self.special_keys = {token: (token,) for token in special_ids}
        tokens = list(special_ids)
        self._fixed_units = {(token,): code for code, token in enumerate(tokens)}
        self._append(
            np.array([special_ids[t] for t in tokens], dtype=np.int64),
            np.ones(len(tokens), dtype=np.int64),
            np.array([len(t) for t in tokens], dtype=np.int64),
            np.zeros(len(tokens), dtype=bool),
        )
        # The empty head (text that starts with a clean space, or between two special tokens).
        self._fixed_heads = {"": self._append(*_no_ids(1), np.zeros(1, np.int64), _false(1))}
        self._fixed_codes = self.table.codes
        self.units: dict = {}
        self.heads: dict[str, int] = {}
        self.reset()

    def __len__(self) -> int:
        return len(self.units) + len(self.heads)

    def reset(self) -> None:
        """Clear the cache (memory bound), keeping the special tokens and the empty head."""
        self.units.clear()
        self.units.update(self._fixed_units)
        self.heads.clear()
        self.heads.update(self._fixed_heads)
        self.table.truncate(self._fixed_codes)
        self._chars = 0

    def _append(
        self, flat: np.ndarray, lengths: np.ndarray, char_lengths: np.ndarray, bad: np.ndarray
    ) -> int:
        first = self.table.append(flat, lengths)
        if self.table.codes > len(self._bad):
            size = len(self.table.start)
            self._char_length = _grown(self._char_length, size)
            self._bad = _grown(self._bad, size)
        self._char_length[first : self.table.codes] = char_lengths
        self._bad[first : self.table.codes] = bad
        self._chars += int(char_lengths.sum())
        return first

    # ---- encoding -----------------------------------------------------------------------------

    def encode(self, text: str, spans: list[tuple[int, int, str | None]]) -> np.ndarray:
        """The ids of text[spans[0][0] : end of the last span], as one int64 array.

        spans: contiguous (start, end, special): ordinary text[start:end], then the special
        token `special` (or nothing) right after it. Each start is the start of the text, the
        end of a special token or a clean space, so each span pre-tokenizes alone.
        """
        if len(self) > _UNIT_CACHE_LIMIT or self._chars > _UNIT_CHARS_LIMIT:
            self.reset()
        pieces: list = []
        heads: list[int] = []  # index of each span's first piece
        unspaced: list[int] = []  # pieces with no space after them (ends of spans, specials)
        for start, end, special in spans:
            heads.append(len(pieces))
            pieces += text[start:end].split(" ")
            unspaced.append(len(pieces) - 1)
            if special is not None:
                unspaced.append(len(pieces))
                pieces.append(self.special_keys[special])
        count = len(pieces)

        # One C-level lookup per piece; new pieces (-1) are encoded together, then looked up.
        codes = np.fromiter(map(self.units.get, pieces, repeat(-1)), np.int64, count)
        new = np.flatnonzero(codes < 0).tolist()
        if new:
            self._add_units(list(dict.fromkeys(map(pieces.__getitem__, new))))
            found = map(self.units.__getitem__, map(pieces.__getitem__, new))
            codes[new] = np.fromiter(found, np.int64, len(new))

        # Runs of bad pieces, each led by a head or by the good unit just before it.
        is_head = np.zeros(count, dtype=bool)
        is_head[heads] = True
        bad = self._bad[codes] | is_head
        after_good = np.ones(count, dtype=bool)
        after_good[1:] = ~bad[:-1]
        run_starts = np.flatnonzero(bad & (after_good | is_head))
        stops = np.append(np.flatnonzero(~bad | is_head), count)
        run_ends = stops[np.searchsorted(stops, run_starts, side="right")]

        # Where each piece starts in `text`: pieces are separated by one space, except after
        # the end of a span and after a special token.
        char_length = self._char_length[codes]
        step = char_length + 1
        step[unspaced] -= 1
        offset = np.cumsum(step) - step + spans[0][0]
        run_is_head = is_head[run_starts]
        leader = np.where(run_is_head, run_starts, run_starts - 1)  # a head, or the good unit
        key_starts = offset[leader]  # a unit's key starts after its space
        key_ends = offset[run_ends - 1] + char_length[run_ends - 1]
        keys = list(map(text.__getitem__, map(slice, key_starts.tolist(), key_ends.tolist())))
        codes[leader] = self._region_codes(keys, run_is_head)

        keep = ~bad
        keep[leader] = True
        return self.table.gather(codes[keep])

    def _region_codes(self, keys: list[str], is_head: np.ndarray) -> np.ndarray:
        """Codes of region keys (units' meaning) and head texts (their own meaning)."""
        codes = np.empty(len(keys), dtype=np.int64)
        for cache, mask, add in (
            (self.units, ~is_head, self._add_units),
            (self.heads, is_head, self._add_heads),
        ):
            chosen = list(compress(keys, mask.tolist()))
            found = np.fromiter(map(cache.get, chosen, repeat(-1)), np.int64, len(chosen))
            new = np.flatnonzero(found < 0).tolist()
            if new:
                add(list(dict.fromkeys(map(chosen.__getitem__, new))))
                found[new] = [cache[chosen[i]] for i in new]
            codes[mask] = found
        return codes

    def _add_units(self, keys: list[str]) -> None:
        """Give new unit keys codes: the ids of " " + key for good keys, none for bad ones."""
        n = len(keys)
        bad = np.fromiter(map(_BAD_START.__contains__, map(_FIRST_CHAR, keys)), bool, n)
        good = list(compress(keys, (~bad).tolist()))
        lengths = np.zeros(n, dtype=np.int64)
        flat = np.zeros(0, dtype=np.int64)
        if good:
            # Good units joined are separated by clean spaces: one pre-tokenization for all.
            words = pretokens(" " + " ".join(good))
            ends = np.cumsum(np.fromiter(map(len, good), np.int64, len(good)) + 1)
            flat, lengths[~bad] = self._encode_words(words, ends)
        char_lengths = np.fromiter(map(len, keys), np.int64, n)
        first = self._append(flat, lengths, char_lengths, bad)
        self.units.update(zip(keys, range(first, first + n)))

    def _add_heads(self, keys: list[str]) -> None:
        """Give new head texts codes: the ids of each text alone."""
        words: list[str] = []
        ends = []
        for key in keys:  # no space may be trusted between heads: each is pre-tokenized alone
            words += pretokens(key)
            ends.append(len(words))
        flat, lengths = self._encode_words(words, np.array(ends, dtype=np.int64), by_words=True)
        char_lengths = np.fromiter(map(len, keys), np.int64, len(keys))
        first = self._append(flat, lengths, char_lengths, _false(len(keys)))
        self.heads.update(zip(keys, range(first, first + len(keys))))

    def _encode_words(
        self, words: list[str], ends: np.ndarray, by_words: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """(flat ids, ids per group) of pre-tokens `words` cut into groups at `ends`.

        `ends`: each group's end as a character offset into "".join(words), or, `by_words`,
        as a count of words.
        """
        pieces = self._pieces
        codes = np.fromiter(map(pieces.__getitem__, words), np.int64, len(words))
        ids, id_lengths = pieces.ids_and_lengths(codes)
        id_ends = np.zeros(len(words) + 1, dtype=np.int64)
        np.cumsum(id_lengths, out=id_ends[1:])
        if by_words:
            word_index = ends
        else:  # each group ends where some pre-token ends
            char_ends = np.cumsum(np.fromiter(map(len, words), np.int64, len(words)))
            word_index = np.searchsorted(char_ends, ends) + 1
        group_ends = id_ends[word_index]
        return ids, np.diff(group_ends, prepend=0)


def _grown(array: np.ndarray, size: int) -> np.ndarray:
    """`array` copied into a larger uninitialized one (np.resize would fill the rest, slowly)."""
    grown = np.empty(size, dtype=array.dtype)
    grown[: len(array)] = array
    return grown


def _no_ids(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(0, dtype=np.int64), np.zeros(n, dtype=np.int64)


def _false(n: int) -> np.ndarray:
    return np.zeros(n, dtype=bool)
