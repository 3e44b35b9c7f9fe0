"""Training a byte-level BPE tokenizer (CS336 assignment 1, §2.4-2.5).

1. Pre-tokenize: special tokens split the text, the GPT-2 regex splits the rest, and only the
   count of each distinct pre-token is kept (`pretokenize.count_pretokens`, in parallel).
2. Merge: repeatedly replace the most frequent adjacent pair of tokens inside the pre-tokens by a
   new token; ties go to the lexicographically greater pair, compared as bytes.

Each merge only touches the pre-tokens that contain its pair, found through an index from pair to
pre-tokens, and the best pair comes from a heap whose stale entries are skipped when popped, so a
merge costs time in proportion to the pre-tokens it changes rather than to the corpus.
"""

from __future__ import annotations

import heapq
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from bpe.pretokenize import count_pretokens, special_tokens_regex
from bpe.progress import Progress

Pair = tuple[int, int]
_MAX_TOKENS = 0x110000  # one str character per token id during training


def train_bpe(
    input_path: str | os.PathLike,
    vocab_size: int,
    special_tokens: Sequence[str] = (),
    *,
    num_workers: int | None = None,
    progress: bool | None = None,
    errors: str = "strict",
) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """Train a byte-level BPE tokenizer on the UTF-8 text file `input_path`.

    Returns `(vocab, merges)`: `vocab` maps ids to bytes (0-255 the single bytes, then one id per
    merge in creation order, then the special tokens), `merges` lists the merged pairs in creation
    order. `vocab_size` counts all of them; training stops early if no pair is left to merge.

    num_workers: processes for pre-tokenization (default: all usable cores).
    progress: show progress bars on stderr (default: only when stderr is a terminal).
    errors: "strict" (default) raises on invalid UTF-8 naming the file and byte offset;
        "replace" substitutes U+FFFD.
    """
    special_tokens = _unique(special_tokens)
    special_tokens_regex(special_tokens)  # validates: non-empty strings
    _check_vocab_size(vocab_size, special_tokens)
    _check_input_file(input_path)
    if errors not in ("strict", "replace"):
        raise ValueError(f"errors={errors!r} is invalid: use 'strict' or 'replace'")

    counts = count_pretokens(
        input_path, special_tokens, num_workers=num_workers, errors=errors, progress=progress
    )
    num_merges = vocab_size - 256 - len(special_tokens)
    words, freqs = _words_and_freqs(counts)
    del counts  # the words hold the same text; free the counter before merging
    id_merges = _merge_words(words, freqs, num_merges, progress)
    return build_vocab_and_merges(id_merges, special_tokens)


def build_vocab_and_merges(
    id_merges: Iterable[Pair], special_tokens: Sequence[str] = ()
) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """The vocab and byte merges from merges given as id pairs (ids laid out as in train_bpe)."""
    vocab = {i: bytes([i]) for i in range(256)}
    merges = []
    for a, b in id_merges:
        merges.append((vocab[a], vocab[b]))
        vocab[len(vocab)] = vocab[a] + vocab[b]
    for token in special_tokens:
        vocab[len(vocab)] = token.encode("utf-8")
    return vocab, merges


def merge_pretoken_counts(
    counts: Mapping[str | bytes, int], num_merges: int, progress: bool | None = None
) -> list[Pair]:
    """The BPE merges (as id pairs; new ids start at 256) learned from pre-token counts."""
    words, freqs = _words_and_freqs(counts)
    return _merge_words(words, freqs, num_merges, progress)


def _words_and_freqs(counts: Mapping[str | bytes, int]) -> tuple[list[str], list[int]]:
    # Each word (distinct pre-token) is held as a str with one character per token, chr(id):
    # finding a pair is then `str.find` and merging it everywhere is `str.replace`, both in C,
    # and replace's greedy left-to-right rule is exactly BPE's rule for runs like "aaa".
    # A pair is the 2-character str of its tokens.
    # An ASCII str already is that (each character is its byte), so it is reused as it is.
    words = [w if isinstance(w, str) and w.isascii() else _as_byte_chars(w) for w in counts]
    freqs = [int(f) for f in counts.values()]
    return words, freqs


def _as_byte_chars(word: str | bytes) -> str:
    return (word.encode("utf-8") if isinstance(word, str) else bytes(word)).decode("latin-1")


def _merge_words(
    words: list[str], freqs: list[int], num_merges: int, progress: bool | None
) -> list[Pair]:
    """BPE merges over distinct pre-tokens held as one character per token (see above)."""
    pair_counts, byte_pair_words = _count_byte_pairs(words, freqs)

    # Heap order: highest count first, then the lexicographically greatest (bytes_a, bytes_b).
    # heapq is a min-heap, so each token carries `inverted[id]`, a str that sorts in the reverse
    # order of its bytes: byte x becomes chr(255 - x), and chr(256) ends it so that a prefix
    # sorts after its extensions. Comparisons then stay inside C, with no key functions.
    inverted = [chr(255 - x) + "\u0100" for x in range(256)]
    heap = [(-n, inverted[ord(p[0])], inverted[ord(p[1])], p) for p, n in pair_counts.items()]
    heapq.heapify(heap)

    # Which words hold a pair. Pairs of two bytes use the index built with numpy; a pair with a
    # merged token is indexed when that token is created, the only time such pairs can appear.
    # Lists, not sets: a word listed twice is merged on its first visit and skipped on the
    # second (find fails), and a list costs a fraction of a small set's memory.
    pair_words: dict[str, list[int]] = {}
    merges: list[Pair] = []
    bar = Progress(num_merges, "merges", enabled=progress)
    while len(merges) < num_merges and heap:
        neg_count, inv_a, inv_b, pair = heapq.heappop(heap)
        count = pair_counts.get(pair, 0)
        if count != -neg_count:  # stale entry: the pair lost occurrences since it was pushed
            if count > 0:
                heapq.heappush(heap, (-count, inv_a, inv_b, pair))
            continue
        a, b = ord(pair[0]), ord(pair[1])
        new_token = chr(256 + len(merges))
        merges.append((a, b))
        inverted.append(inv_a[:-1] + inv_b)
        if a < 256 and b < 256:
            candidates = byte_pair_words(a, b)
        else:
            candidates = pair_words.pop(pair)
        gains = _apply_merge(pair, new_token, candidates, words, freqs, pair_counts, pair_words)
        del pair_counts[pair]
        for p, n in gains.items():
            heapq.heappush(heap, (-n, inverted[ord(p[0])], inverted[ord(p[1])], p))
        bar.update()
    bar.close()
    return merges


def _apply_merge(
    pair: str,
    new_token: str,
    candidates: Iterable[int],
    words: list[str],
    freqs: list[int],
    pair_counts: dict[str, int],
    pair_words: dict[str, list[int]],
) -> dict[str, int]:
    """Merge `pair` into `new_token` in every candidate word; keep pair counts and index exact.

    Only the pairs next to each occurrence change: with occurrence x a b y becoming x C y,
    (x, a) and (b, y) lose the word's frequency and (x, C) and (C, y) gain it. Two occurrences
    back to back (a b a b -> C C) share the middle: (b, a) is lost once and (C, C) gained once.
    Every gained pair contains the brand-new token, so it is new: gains are gathered locally,
    then added to `pair_counts` and `pair_words` at once. Returns them (pair -> count).
    """
    a, b = pair
    c = new_token
    ba, cc = b + a, c + c
    gains: dict[str, int] = {}
    gain_words: defaultdict[str, list[int]] = defaultdict(list)
    gains_get = gains.get
    find = str.find
    for wi in candidates:
        word = words[wi]
        i = find(word, pair)
        if i < 0:
            continue  # an index entry left over from before an earlier merge changed the word
        f = freqs[wi]
        n = len(word)
        previous_end = -1
        while i >= 0:
            if i:
                if i == previous_end:
                    pair_counts[ba] -= f
                    gained = cc
                else:
                    left = word[i - 1]
                    pair_counts[left + a] -= f
                    gained = left + c
                gains[gained] = gains_get(gained, 0) + f
                gain_words[gained].append(wi)
            j = i + 2
            i = find(word, pair, j)
            if j < n and i != j:
                right = word[j]
                pair_counts[b + right] -= f
                gained = c + right
                gains[gained] = gains_get(gained, 0) + f
                gain_words[gained].append(wi)
            previous_end = j
        words[wi] = word.replace(pair, c)
    pair_counts.update(gains)
    pair_words.update(gain_words)
    return gains


def _count_byte_pairs(words: list[str], freqs: list[int]):
    """Initial counts of all adjacent byte pairs, and an index pair -> words, with numpy.

    `words` hold one character per byte (latin-1). Counting a million pre-tokens pair by pair in
    Python takes seconds; here it is one bincount. Returns (pair_counts keyed by 2-character str,
    function (a, b) -> indices of the words holding (a, b); a word may be listed twice).
    """
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    flat = np.frombuffer("".join(words).encode("latin-1"), dtype=np.uint8).astype(np.int32)
    word_of_byte = np.repeat(np.arange(len(words), dtype=np.int32), lengths)
    # Position p starts a pair (flat[p], flat[p+1]) when both bytes belong to the same word.
    same_word = word_of_byte[:-1] == word_of_byte[1:]
    codes = (flat[:-1] * 256 + flat[1:])[same_word]  # (num_pairs,) pair as a*256+b
    pair_word = word_of_byte[:-1][same_word]  # (num_pairs,) word index of each pair
    weights = np.asarray(freqs, dtype=np.float64)[pair_word]
    totals = np.bincount(codes, weights=weights, minlength=65536)
    nonzero = np.flatnonzero(totals).tolist()
    pair_counts = {chr(c >> 8) + chr(c & 255): int(totals[c]) for c in nonzero}

    order = np.argsort(codes, kind="stable")
    words_by_code = pair_word[order]
    ends = np.cumsum(np.bincount(codes, minlength=65536))
    starts = ends - np.bincount(codes, minlength=65536)

    def byte_pair_words(a: int, b: int) -> list[int]:
        code = a * 256 + b
        return words_by_code[starts[code] : ends[code]].tolist()

    return pair_counts, byte_pair_words


def _unique(special_tokens: Sequence[str] | None) -> list[str]:
    if special_tokens is None:
        return []
    if isinstance(special_tokens, str):
        raise TypeError(f"special_tokens={special_tokens!r} must be a list of strings, not a str")
    return list(dict.fromkeys(special_tokens))


def _check_vocab_size(vocab_size: int, special_tokens: Sequence[str]) -> None:
    minimum = 256 + len(special_tokens)
    if not isinstance(vocab_size, int) or vocab_size < minimum:
        raise ValueError(
            f"vocab_size={vocab_size!r} is too small: it must be at least 256 bytes + "
            f"{len(special_tokens)} special tokens = {minimum}"
        )
    if vocab_size - len(special_tokens) > _MAX_TOKENS:
        # Training holds each token as one character, chr(id).
        raise ValueError(
            f"vocab_size={vocab_size} is too large: at most {_MAX_TOKENS} merges+bytes"
        )


def _check_input_file(input_path: str | os.PathLike) -> None:
    if not os.path.exists(input_path):
        raise FileNotFoundError(f"input_path {os.fspath(input_path)!r} does not exist")
    if not os.path.isfile(input_path):
        raise ValueError(f"input_path {os.fspath(input_path)!r} is not a regular file")
    if os.path.getsize(input_path) == 0:
        raise ValueError(f"input_path {os.fspath(input_path)!r} is empty: nothing to train on")
