"""Exact 128-bit keys for short byte strings, and a numpy hash table from key to code.

The encoder looks up ~25 M pre-tokens per 100 MB of text. Making each a Python string to look it
up in a dict costs more than tiktoken's whole encode, so pre-tokens of up to 15 UTF-8 bytes
(99.5% of the benchmark corpus' 23 M) are looked up as numbers instead, all of a block at once.

The key of a short pre-token is its bytes themselves, not a hash of them: bytes 0-7 in one
uint64, bytes 8-14 and the length in another (unused bytes zero). Two pre-tokens have the same
key exactly when they are the same bytes, so a hit never needs checking against the stored
text: the ids are exact by construction, at no extra cost. The hash below only chooses a slot.

The table is open addressing with linear probing, kept at most half full; an empty slot has
key1 == 0, which no key has (its length byte is at least 1). A slot is one row (key0, key1,
code), so that a probe reads one place in memory, not three (~20% faster lookups). Lookups and
inserts are vectorized: one gather for all keys, then another round only for the few keys whose
slot held a different key.
"""

from __future__ import annotations

import numpy as np

MAX_BYTES = 15  # the longest pre-token that has a key (the 16th byte holds the length)
LONG = np.uint64(0xFF << 56)  # key1 of a longer string: a length no key has, so never found
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing (2**64 / golden ratio)
_MIXER = np.uint64(0xC2B2AE3D27D4EB4F)  # spreads key1 before it is combined with key0
# _LOW_BYTES[k]: a mask of the low k bytes of a uint64.
_LOW_BYTES = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=np.uint64)


def short_keys(
    utf8: np.ndarray, starts: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The keys (key0, key1) of the byte strings utf8[starts[j] : starts[j] + lengths[j]].

    utf8 must have at least 16 bytes after every start (readable, any value). Strings longer
    than MAX_BYTES get key1 == LONG, which no key has: look them up some other way.
    """
    # Unaligned little-endian 8-byte reads at any byte offset: a uint64 view of `utf8` whose
    # elements overlap (stride 1 byte). Byte k of a string lands in bits 8k..8k+7.
    windows = np.ndarray((len(utf8) - 7,), dtype="<u8", buffer=utf8, strides=(1,))
    key0 = windows[starts]  # (n,) bytes 0-7, and whatever follows
    key0 &= _LOW_BYTES[np.minimum(lengths, 8)]
    key1 = lengths.astype(np.uint64) << np.uint64(56)  # the length (at least 1) as byte 15
    # Bytes 8-14, read only where there are some (most pre-tokens have at most 8 bytes).
    longer = np.flatnonzero(lengths > 8)
    key1[longer] |= windows[starts[longer] + 8] & _LOW_BYTES[np.minimum(lengths[longer] - 8, 7)]
    key1[lengths > MAX_BYTES] = LONG
    return key0, key1


def distinct(key0: np.ndarray, key1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(one index of each distinct key, the distinct key of each key as an index into those).

    A numeric two-key sort: 2.5x faster than np.unique over the keys as 16-byte voids.
    """
    order = np.lexsort((key1, key0))  # (n,) by key0, then key1
    sorted0, sorted1 = key0[order], key1[order]
    opens = np.empty(len(order), dtype=bool)  # (n,) the first of a run of equal keys
    opens[:1] = True
    opens[1:] = (sorted0[1:] != sorted0[:-1]) | (sorted1[1:] != sorted1[:-1])
    inverse = np.empty(len(order), dtype=np.intp)
    inverse[order] = np.cumsum(opens) - 1
    return order[opens], inverse


class KeyTable:
    """key (key0, key1) -> int32 code, for keys from `short_keys` (key1 not 0 nor LONG)."""

    def __init__(self, bits: int = 16):
        self._allocate(bits)

    def _allocate(self, bits: int) -> None:
        self._bits = bits
        self._mask = (1 << bits) - 1
        self._rows = np.zeros((1 << bits, 3), dtype=np.uint64)  # key0, key1 (0: empty), code
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        return self._rows.nbytes

    def _slots(self, key0: np.ndarray, key1: np.ndarray) -> np.ndarray:
        """The first slot to probe for each key (the top bits of a multiplicative hash)."""
        mixed = key1 * _MIXER  # wraps modulo 2**64, as intended
        mixed ^= key0
        mixed *= _MULTIPLIER
        return (mixed >> np.uint64(64 - self._bits)).astype(np.intp)

    def lookup(self, key0: np.ndarray, key1: np.ndarray) -> np.ndarray:
        """(n,) int32 the code of each key, -1 where the table does not hold it."""
        slots = self._slots(key0, key1)
        rows = np.take(self._rows, slots, axis=0)  # (n, 3)
        hit = rows[:, 1] == key1
        hit &= rows[:, 0] == key0
        codes = np.where(hit, rows[:, 2].astype(np.int32), np.int32(-1))
        # A key is absent once its probe reaches an empty slot; one that met another key
        # probes the next slot.
        going = np.flatnonzero(~hit & (rows[:, 1] != 0))
        where = going  # the index in `codes` of each key still probed
        while len(going):
            slots = (slots[going] + 1) & self._mask
            key0, key1 = key0[going], key1[going]
            rows = np.take(self._rows, slots, axis=0)  # (still probed, 3)
            hit = rows[:, 1] == key1
            hit &= rows[:, 0] == key0
            codes[where[hit]] = rows[hit, 2]
            going = np.flatnonzero(~hit & (rows[:, 1] != 0))
            where = where[going]
        return codes

    def insert(self, key0: np.ndarray, key1: np.ndarray, codes: np.ndarray) -> None:
        """Add keys the table does not hold, distinct from one another, with their codes."""
        if 2 * (self._count + len(key0)) > len(self._rows):  # keep it at most half full
            old = self._rows[self._rows[:, 1] != 0]
            self._allocate(int(4 * (self._count + len(key0)) - 1).bit_length())
            self._place(old[:, 0], old[:, 1], old[:, 2])
        self._place(key0, key1, codes.astype(np.uint64))

    def _place(self, key0: np.ndarray, key1: np.ndarray, codes: np.ndarray) -> None:
        self._count += len(key0)
        slots = self._slots(key0, key1)
        while len(key0):
            # Each round, every key whose slot is free takes it, the first of several keys
            # aiming at the same slot winning; the others probe on.
            _, first = np.unique(slots, return_index=True)
            placed = np.zeros(len(key0), dtype=bool)
            placed[first] = True
            placed &= self._rows[slots, 1] == 0
            self._rows[slots[placed]] = np.stack((key0, key1, codes), axis=1)[placed]
            left = ~placed
            key0, key1, codes, slots = key0[left], key1[left], codes[left], slots[left]
            slots[self._rows[slots, 1] != 0] += 1
            slots &= self._mask
