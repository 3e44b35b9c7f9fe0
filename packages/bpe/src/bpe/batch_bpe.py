"""BPE on many pre-tokens at once, in numpy: the encoder's path for the pre-tokens it meets first.

A large text brings tens of thousands of pre-tokens the cache has not seen; running the per-token
loop (`Tokenizer._encode_piece`) on each costs ~8 Python-level steps per merge. Here all of them
go in one flat array of ids, every adjacent pair is ranked once (a vectorized hash-table lookup),
and each round does, for every pre-token at once: take its lowest rank, merge every occurrence of
that pair in it, leftmost first where occurrences overlap (`a a a` -> `aa a`), drop the pre-tokens
with nothing left to merge, and re-rank only the pairs on either side of a merged id (every other
pair is unchanged; re-ranking them all each round made the BPE ~40% slower).

Merging every occurrence of the lowest pair in one round is what the one-merge-at-a-time loop
does too, provided a pair that involves a freshly merged token never ranks below the merge that
made it: then nothing can come between the occurrences. That holds for merges learned by BPE
training (a merge comes after the merges that made its parts), GPT-2's included; `applies_to`
checks it, and the tokenizer keeps the loop for merge lists where it fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# Ids and ranks are int32 (the tokenizer refuses ids from 2**31 on): half the memory traffic of
# int64 in every pass of every round (~4% faster). Pair keys (left * base + right) are int64.
_NO_MERGE = np.int32((1 << 31) - 1)
_EMPTY = np.int64(-1)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing multiplier (2**64 / golden ratio)


def applies_to(ranks: Mapping[tuple[int, int], int], merged: Sequence[int]) -> bool:
    """Whether every merge ranks after every merge that makes one of its parts (see above)."""
    last_made: dict[int, int] = {}
    for rank, token in enumerate(merged):
        last_made[token] = rank
    return all(
        last_made.get(left, -1) < rank and last_made.get(right, -1) < rank
        for (left, right), rank in ranks.items()
    )


class BatchBPE:
    """Vectorized BPE over a merge table: `encode(list of bytes) -> list of id lists`.

    ranks: (left id, right id) -> rank; merged[rank]: the id that merge makes; byte_ids[b]: the
    id of byte b.
    """

    def __init__(
        self,
        ranks: Mapping[tuple[int, int], int],
        merged: Sequence[int],
        byte_ids: Sequence[int],
    ):
        self._byte_ids = np.array(byte_ids, dtype=np.int32)
        self._base = max([max(pair) for pair in ranks] + list(merged) + list(byte_ids)) + 1
        keys = np.array([a * self._base + b for a, b in ranks], dtype=np.int64)
        values = np.array(list(ranks.values()), dtype=np.int32)
        self._merged = np.array(merged, dtype=np.int32)
        # Open addressing with linear probing, at most 1/4 full so that probes are short.
        self._bits = max(4, int(4 * max(1, len(keys)) - 1).bit_length())
        size = 1 << self._bits
        self._mask = size - 1
        table_keys = np.full(size, _EMPTY, dtype=np.int64)
        table_values = np.full(size, _NO_MERGE, dtype=np.int32)
        slots = self._hash(keys)
        for key, value, slot in zip(keys.tolist(), values.tolist(), slots.tolist(), strict=True):
            while table_keys[slot] != _EMPTY:
                slot = (slot + 1) & self._mask
            table_keys[slot], table_values[slot] = key, value
        self._table_keys, self._table_values = table_keys, table_values
        # The few keys that a first probe does not settle are looked up by binary search.
        order = np.argsort(keys)
        self._sorted_keys, self._sorted_values = keys[order], values[order]

    def _hash(self, keys: np.ndarray) -> np.ndarray:
        mixed = keys.astype(np.uint64) * _GOLDEN  # wraps modulo 2**64, as intended
        return (mixed >> np.uint64(64 - self._bits)).astype(np.int64)

    def _pair_keys(self, ids: np.ndarray, at: np.ndarray) -> np.ndarray:
        """The int64 key of each pair (ids[at[k]], ids[at[k] + 1])."""
        keys = ids[at].astype(np.int64)
        keys *= self._base
        keys += ids[at + 1]
        return keys

    def _rank(self, keys: np.ndarray) -> np.ndarray:
        """The rank of each pair key, _NO_MERGE where it is not a merge."""
        slots = self._hash(keys)
        found = self._table_keys[slots]
        ranks = np.where(found == keys, self._table_values[slots], _NO_MERGE)
        # A key is absent if its slot is empty; one whose slot holds another key may sit
        # further on. Those are rare (the table is at most 1/4 full): one binary search for all
        # of them costs less than probing on, one numpy pass per probe.
        unsettled = np.flatnonzero((found != keys) & (found != _EMPTY))
        if len(unsettled):
            wanted = keys[unsettled]
            at = np.searchsorted(self._sorted_keys, wanted)
            at[at == len(self._sorted_keys)] = 0
            hit = self._sorted_keys[at] == wanted
            ranks[unsettled[hit]] = self._sorted_values[at[hit]]
        return ranks

    def encode(self, pieces: Sequence[bytes]) -> list[list[int]]:
        """The ids of each piece (the UTF-8 bytes of one pre-token each; none empty)."""
        flat, lengths = self.encode_flat(pieces)
        flat, ends = flat.tolist(), np.cumsum(lengths).tolist()
        return [flat[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]

    def encode_flat(self, pieces: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """The ids of all pieces one after the other, and how many ids each piece has."""
        count = len(pieces)
        lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=count)
        ids = self._byte_ids[np.frombuffer(b"".join(pieces), dtype=np.uint8)]  # (n,) all pieces
        n = len(ids)
        # is_start[j]: ids[j] is the first id of its piece; is_start[n] closes the last piece.
        is_start = np.zeros(n + 1, dtype=bool)
        is_start[np.cumsum(lengths) - lengths] = True
        is_start[n] = True
        # rank[j]: rank of the pair (ids[j], ids[j+1]); _NO_MERGE at the last id of a piece.
        rank = np.full(n, _NO_MERGE, dtype=np.int32)
        inside = np.flatnonzero(~is_start[1:])
        rank[inside] = self._rank(self._pair_keys(ids, inside))
        piece = np.arange(count)  # the index of each piece still being merged
        sizes = lengths  # (pieces,) how many ids each has now
        starts = np.cumsum(sizes) - sizes  # (pieces,) where its ids begin in `ids`
        finished_ids, finished_owner = [], []
        while n:
            lowest = np.minimum.reduceat(rank, starts)  # (pieces,)
            done = lowest == _NO_MERGE
            any_done = done.any()
            if any_done:
                lowest[done] = -1  # equals no rank: nothing merges in a finished piece
            at = np.flatnonzero(rank == np.repeat(lowest, sizes))  # merge (ids[j], ids[j+1])
            # Overlapping occurrences (a run `a a a` of the pair (a, a)) sit at consecutive
            # positions: leftmost first, so keep every other one of each run.
            if len(at) > 1:
                follows = np.diff(at) == 1
                if follows.any():
                    index = np.arange(len(at))
                    run_start = np.where(np.append(True, ~follows), index, 0)
                    at = at[(index - np.maximum.accumulate(run_start)) % 2 == 0]
            ids[at] = self._merged[rank[at]]
            owner = np.searchsorted(starts, at, side="right") - 1  # (merges,) piece of each
            # Drop the right half of each merged pair and the finished pieces; `at` moves to
            # where the merged ids are afterwards: back by one per merge before it, and by the
            # ids of the finished pieces before it (which merge nothing).
            if any_done:
                keep = np.repeat(~done, sizes)
                finished_ids.append(ids[~keep])
                finished_owner.append(np.repeat(piece[done], sizes[done]))
                gone = np.where(done, sizes, 0)
                at_after = at - np.arange(len(at)) - (np.cumsum(gone) - gone)[owner]
            else:
                keep = np.ones(n, dtype=bool)
                at_after = at - np.arange(len(at))
            keep[at + 1] = False
            sizes = sizes - np.bincount(owner, minlength=len(sizes))  # a merge drops one id
            if any_done:
                live = ~done
                owner = (np.cumsum(live) - 1)[owner]
                piece, sizes = piece[live], sizes[live]
            at = at_after
            ids, rank = ids[keep], rank[keep]
            n = len(ids)
            starts = np.cumsum(sizes) - sizes
            # Only the pairs on either side of a merged id change: re-rank those alone.
            rank[at] = _NO_MERGE
            first = starts[owner]  # (merges,) the first id of each merged id's piece
            changed = np.concatenate((at[at != first] - 1, at[at != first + sizes[owner] - 1]))
            rank[changed] = self._rank(self._pair_keys(ids, changed))
        if not finished_ids:
            return np.zeros(0, dtype=np.int32), np.zeros(count, dtype=np.int64)
        all_owner = np.concatenate(finished_owner)
        order = np.argsort(all_owner, kind="stable")  # ids of a pre-token stay in order
        return np.concatenate(finished_ids)[order], np.bincount(all_owner, minlength=count)
