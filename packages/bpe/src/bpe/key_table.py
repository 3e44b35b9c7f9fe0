"""Exact 128-bit keys for short byte strings, and a numpy hash table from key to code.

The encoder looks up ~25 M pre-tokens per 100 MB of text. Making each a Python string to look it
up in a dict costs more than tiktoken's whole encode, so pre-tokens of up to 15 UTF-8 bytes
(~99% of them in English text) are looked up as numbers instead, all of a block at once.

The key of a short pre-token is its bytes themselves, not a hash of them: bytes 0-7 in one
uint64, bytes 8-14 and the length in another (unused bytes zero). Two pre-tokens have the same
key exactly when they are the same bytes, so a hit never needs checking against the stored
text: the ids are exact by construction, at no extra cost. The hash below only chooses a slot.

The table is open addressing with linear probing, kept at most half full; an empty slot has
key1 == 0, which no key has (its length byte is at least 1). Lookups and inserts are vectorized:
one gather per array for all keys, then another round only for the few keys whose slot held a
different key.
"""

from __future__ import annotations

import numpy as np

MAX_BYTES = 15  # the longest pre-token that has a key (the 16th byte holds the length)
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing (2**64 / golden ratio)
_MIXER = np.uint64(0xC2B2AE3D27D4EB4F)  # spreads key1 before it is combined with key0
# _LOW_BYTES[k]: a mask of the low k bytes of a uint64.
_LOW_BYTES = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=np.uint64)


def short_keys(
    utf8: np.ndarray, starts: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The keys (key0, key1) of the byte strings utf8[starts[j] : starts[j] + lengths[j]].

    utf8 must have at least 16 bytes after every start (readable, any value). Strings longer
    than MAX_BYTES get key1 == 0, which is no key: look them up some other way.
    """
    # Unaligned little-endian 8-byte reads at any byte offset: a uint64 view of `utf8` whose
    # elements overlap (stride 1 byte). Byte k of a string lands in bits 8k..8k+7.
    windows = np.ndarray((len(utf8) - 7,), dtype="<u8", buffer=utf8, strides=(1,))
    key0 = windows[starts]  # (n,) bytes 0-7, and whatever follows
    key1 = windows[starts + 8]  # (n,) bytes 8-15, and whatever follows
    key0 &= _LOW_BYTES[np.minimum(lengths, 8)]
    key1 &= _LOW_BYTES[np.clip(lengths - 8, 0, 7)]
    key1 |= lengths.astype(np.uint64) << np.uint64(56)  # the length (at least 1) as byte 15
    key1[lengths > MAX_BYTES] = 0
    return key0, key1


class KeyTable:
    """key (key0, key1) -> int32 code, for keys from `short_keys` (key1 != 0)."""

    def __init__(self, bits: int = 16):
        self._allocate(bits)

    def _allocate(self, bits: int) -> None:
        self._bits = bits
        self._mask = (1 << bits) - 1
        self._key0 = np.zeros(1 << bits, dtype=np.uint64)
        self._key1 = np.zeros(1 << bits, dtype=np.uint64)  # 0: the slot is empty
        self._code = np.zeros(1 << bits, dtype=np.int32)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        return self._key0.nbytes + self._key1.nbytes + self._code.nbytes

    def _slots(self, key0: np.ndarray, key1: np.ndarray) -> np.ndarray:
        """The first slot to probe for each key (the top bits of a multiplicative hash)."""
        mixed = key1 * _MIXER  # wraps modulo 2**64, as intended
        mixed ^= key0
        mixed *= _MULTIPLIER
        return (mixed >> np.uint64(64 - self._bits)).astype(np.intp)

    def lookup(self, key0: np.ndarray, key1: np.ndarray) -> np.ndarray:
        """(n,) int32 the code of each key, -1 where the table does not hold it."""
        codes = np.full(len(key0), -1, dtype=np.int32)
        slots = self._slots(key0, key1)
        where = None  # the index in `codes` of each key still probed (None: all of them)
        while True:
            found1 = self._key1[slots]
            hit = found1 == key1
            hit &= self._key0[slots] == key0
            if where is None:
                codes[hit] = self._code[slots[hit]]
            else:
                codes[where[hit]] = self._code[slots[hit]]
            # A key is absent once its probe reaches an empty slot; one that met another key
            # probes the next slot.
            going = np.flatnonzero(~hit & (found1 != 0))
            if not len(going):
                return codes
            where = going if where is None else where[going]
            slots = (slots[going] + 1) & self._mask
            key0, key1 = key0[going], key1[going]

    def insert(self, key0: np.ndarray, key1: np.ndarray, codes: np.ndarray) -> None:
        """Add keys the table does not hold, distinct from one another, with their codes."""
        if 2 * (self._count + len(key0)) > len(self._key1):  # keep it at most half full
            used = self._key1 != 0
            old = self._key0[used], self._key1[used], self._code[used]
            self._allocate(int(4 * (self._count + len(key0)) - 1).bit_length())
            self._place(*old)
        self._place(key0, key1, codes)

    def _place(self, key0: np.ndarray, key1: np.ndarray, codes: np.ndarray) -> None:
        self._count += len(key0)
        slots = self._slots(key0, key1)
        while len(key0):
            # Each round, every key whose slot is free takes it, the first of several keys
            # aiming at the same slot winning; the others probe on.
            _, first = np.unique(slots, return_index=True)
            placed = np.zeros(len(key0), dtype=bool)
            placed[first] = True
            placed &= self._key1[slots] == 0
            at = slots[placed]
            self._key0[at], self._key1[at] = key0[placed], key1[placed]
            self._code[at] = codes[placed]
            left = ~placed
            key0, key1, codes, slots = key0[left], key1[left], codes[left], slots[left]
            slots[self._key1[slots] != 0] += 1
            slots &= self._mask
