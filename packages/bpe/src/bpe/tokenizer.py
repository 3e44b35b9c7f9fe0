"""The byte-level BPE Tokenizer: encode, decode, special tokens, files, and parallel encode_file.

Encoding is pre-tokenize (special tokens first, then GPT-2's pattern), then BPE inside each
pre-token. Text repeats itself: a 100 MB corpus has ~25 M pre-tokens but only ~400 K distinct
ones, so each distinct pre-token is encoded once and cached. The hot loop makes no Python object
per pre-token: numpy finds where the pre-tokens start (fast_pretokenize) and looks each up by an
exact key made of its bytes (key_table); the ids are gathered from the cache's table by numpy.
The BPE itself applies merges by rank: repeatedly merge the adjacent pair with the lowest rank
(earliest merge), never scanning the merge list.
"""

from __future__ import annotations

import gc
import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import chain, pairwise, repeat
from pathlib import Path

import numpy as np
import regex

from bpe import formats
from bpe.batch_bpe import BatchBPE, applies_to
from bpe.fast_pretokenize import PretokenBytes, prepare_tables, pretoken_bytes
from bpe.key_table import LONG, KeyTable, distinct, short_keys
from bpe.pretokenize import (
    _map_unordered,
    default_num_workers,
    iter_chunks,
    last_safe_cut,
    pretokens,
    read_text_chunk,
    safe_cut,
)
from bpe.progress import Progress

_NO_MERGE = 1 << 62  # rank of a pair that is not a merge
_ID_LIMIT = 1 << 31  # ids and cache codes are int32: half the memory traffic of int64 (~4%)
_BLOCK_CHARS = 1 << 20  # text is matched in blocks of this many characters to bound memory
_CACHE_LIMIT = 1 << 21  # distinct pre-tokens kept in the cache before it is cleared
_BATCH_MIN = 1024  # new pre-tokens at once from which the vectorized BPE beats the loop
_FILE_CHUNK_BYTES = 4 << 20  # encode_file: bytes of text per job


class Tokenizer:
    """A byte-level BPE tokenizer.

    vocab: id -> token bytes; merges: (left bytes, right bytes) in the order they were learned;
    special_tokens: strings always encoded as one id (added to the vocab if absent). Where
    special tokens overlap, the longest match wins.
    """

    def __init__(
        self,
        vocab: Mapping[int, bytes],
        merges: Sequence[tuple[bytes, bytes]],
        special_tokens: Sequence[str] | None = None,
    ):
        self.vocab: dict[int, bytes] = _checked_vocab(vocab)
        self.merges: list[tuple[bytes, bytes]] = [(bytes(a), bytes(b)) for a, b in merges]
        self.special_tokens: list[str] = _checked_special_tokens(special_tokens)

        # Special tokens: reuse an id already holding their bytes, else append one.
        by_bytes = {}
        for i in sorted(self.vocab, reverse=True):
            by_bytes[self.vocab[i]] = i  # bytes held by several ids map to the lowest
        self.special_ids: dict[str, int] = {}
        for token in self.special_tokens:
            raw = token.encode("utf-8")
            if raw not in by_bytes:
                by_bytes[raw] = max(self.vocab, default=-1) + 1
                self.vocab[by_bytes[raw]] = raw
            self.special_ids[token] = by_bytes[raw]
        special_id_set = set(self.special_ids.values())
        if max(self.vocab) >= _ID_LIMIT:
            raise ValueError(
                f"vocab: id {max(self.vocab)} is too large (ids, special tokens' included, must "
                f"be below {_ID_LIMIT}: the encoder keeps them as int32)"
            )

        # Regular tokens by bytes (specials excluded: BPE must never produce them).
        self._encoder = {}
        for i in sorted(self.vocab, reverse=True):
            if i not in special_id_set:
                self._encoder[self.vocab[i]] = i
        try:
            self._byte_ids = [self._encoder[bytes([b])] for b in range(256)]
        except KeyError as e:
            missing = e.args[0]
            raise ValueError(f"vocab: byte {missing!r} has no id; all 256 need one") from None

        self._bytes_are_ids = self._byte_ids == list(range(256))  # true unless GPT-2's files

        # Merge rank r joins ids (a, b) into id _merged[r].
        self._ranks: dict[tuple[int, int], int] = {}
        self._merged: list[int] = []
        for rank, (left, right) in enumerate(self.merges):
            try:
                pair = (self._encoder[left], self._encoder[right])
                merged = self._encoder[left + right]
            except KeyError:
                raise ValueError(
                    f"merges[{rank}] = ({left!r}, {right!r}): "
                    "a part or the result is not in the vocab"
                ) from None
            self._ranks.setdefault(pair, rank)  # a repeated merge keeps its first rank
            self._merged.append(merged)

        self._special_re = _special_split_regex(self.special_tokens)
        # Proper prefixes of special tokens: encode_iterable holds back text ending in one.
        self._special_prefixes = {t[:k] for t in self.special_tokens for k in range(1, len(t))}
        # The vectorized BPE: built on first use; False where it would not be exact.
        self._batch_bpe: BatchBPE | bool | None = None
        # One pre-token cache per thread: while a call is under way a cache holds codes whose
        # ids are not computed yet (see _PieceCache), which another thread must never read.
        self._local = threading.local()

    # ---- properties -------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Number of ids (the largest id + 1)."""
        return max(self.vocab) + 1

    @property
    def token_dtype(self) -> type[np.unsignedinteger]:
        """The smallest unsigned dtype holding every id: what encode_file writes."""
        return np.uint16 if self.vocab_size <= 1 << 16 else np.uint32

    def __repr__(self) -> str:
        return (
            f"Tokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
            f"special_tokens={self.special_tokens})"
        )

    # ---- encoding ---------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """The ids of `text`; special tokens in it become their single ids."""
        return self._encode_array(text, specials=True).tolist()

    def encode_ordinary(self, text: str) -> list[int]:
        """The ids of `text` with special tokens treated as plain text."""
        return self._encode_array(text, specials=False).tolist()

    def _encode_array(self, text: str, specials: bool) -> np.ndarray:
        """The ids of `text` as an int32 array (`specials`: whether special tokens count)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        cache = self._cache()
        codes: list[np.ndarray] = []
        if not specials or self._special_re is None:
            self._look_up(text, codes, 0, len(text))
            return cache.ids_of(codes)
        # Documents are often short (a 100 MB corpus holds ~15 K <|endoftext|>), and a numpy
        # pass has a fixed cost: so the text between special tokens is pre-tokenized in groups
        # of ~_BLOCK_CHARS characters, special tokens included as fixed spans (see
        # fast_pretokenize.pretoken_bytes), not piece by piece (which cost ~40% more here).
        # Ordinary text longer than a block goes on its own, in blocks (`_look_up`).
        group_start, group = 0, []  # the special tokens of text[group_start:], in order
        position = 0  # where the text after the last special token starts
        for start, end, token in self._special_spans(text):
            if start - position > _BLOCK_CHARS:
                self._look_up_group(text, codes, group_start, position, group)
                self._look_up(text, codes, position, start)
                group_start, group = start, []
            group.append((start, end, token))
            position = end
            if position - group_start >= _BLOCK_CHARS:
                self._look_up_group(text, codes, group_start, position, group)
                group_start, group = position, []
        if len(text) - position > _BLOCK_CHARS:
            self._look_up_group(text, codes, group_start, position, group)
            self._look_up(text, codes, position, len(text))
        else:
            self._look_up_group(text, codes, group_start, len(text), group)
        return cache.ids_of(codes)

    def _look_up_group(
        self,
        text: str,
        codes: list[np.ndarray],
        start: int,
        end: int,
        group: list[tuple[int, int, str]],
    ) -> None:
        """Append to `codes` the codes of text[start:end], whose special tokens are `group`."""
        if not group:
            self._look_up(text, codes, start, end)
            return
        cache = self._cache()
        spans = pretoken_bytes(text[start:end], [(s - start, e - start) for s, e, _ in group])
        if spans is None:  # a lone surrogate: piece by piece, through the regex
            position = start
            for special_start, special_end, token in group:
                self._look_up(text, codes, position, special_start)
                codes.append(cache.special_codes[token])
                position = special_end
            self._look_up(text, codes, position, end)
            return
        # The special tokens' spans are looked up too, as ordinary pre-tokens of their bytes
        # (whose cached ids are those bytes' BPE: right wherever ordinary text makes such a
        # pre-token), then replaced by the special tokens' codes.
        group_codes = cache.codes_of(spans)
        group_codes[spans.fixed] = [cache.special_code[token] for _, _, token in group]
        codes.append(group_codes)

    def _look_up(self, text: str, codes: list[np.ndarray], start: int, end: int) -> None:
        """Append to `codes` the cache code of each pre-token of text[start:end], as one array
        per block.

        The pre-tokens are found and looked up by numpy (`_PieceCache.codes_of`). Text holding
        a lone surrogate, which the fast path cannot read, goes through the regex and one dict
        lookup per pre-token (and fails where the BPE encodes it to UTF-8, as it always has).
        A pre-token met for the first time gets a new code at once; its ids are computed later
        (`_PieceCache.ids_of`) together with all the other new ones, so that many new
        pre-tokens at once go through the vectorized BPE.
        """
        cache = self._cache()
        # A long text goes in blocks so that the arrays per block stay small. A block ends at a
        # safe cut (pretokenize.safe_cut), where the pre-tokens are the same whether the text
        # goes on or not; a text with none after the block's size stays one block.
        while start < end:
            stop = safe_cut(text, start + _BLOCK_CHARS, end) if end - start > _BLOCK_CHARS else None
            stop = end if stop is None else stop
            spans = pretoken_bytes(text[start:stop])  # no copy when the block is the whole text
            if spans is not None:
                codes.append(cache.codes_of(spans))
            else:
                words = pretokens(text, start, stop)
                lookup = cache.__getitem__
                codes.append(np.fromiter(map(lookup, words), dtype=np.int32, count=len(words)))
            start = stop

    def _special_spans(self, text: str) -> Iterator[tuple[int, int, str]]:
        """(start, end, token) of each special token in `text`, left to right."""
        if self._special_re is None:
            return
        if len(self.special_tokens) == 1:
            # One special token cannot overlap another: str.find gives the same matches as the
            # regex (leftmost, not overlapping), faster.
            token = self.special_tokens[0]
            start = text.find(token)
            while start != -1:
                yield start, start + len(token), token
                start = text.find(token, start + len(token))
            return
        for match in self._special_re.finditer(text):
            yield match.start(), match.end(), match.group()

    def _cache(self) -> _PieceCache:
        """This thread's pre-token cache."""
        try:
            return self._local.cache
        except AttributeError:
            self._local.cache = _PieceCache(self)
            return self._local.cache

    def encode_iterable(self, iterable: Iterable[str]) -> Iterator[int]:
        """Lazily yield the ids of the concatenated strings (e.g. the lines of an open file).

        Memory stays constant: text is gathered into blocks and each block is encoded up to its
        last safe cut (pretokenize.safe_cut) after its last special token; the rest waits for
        the next block. Only a stretch of text with no safe cut at all (no space before a
        non-space, no newline between non-spaces, no special token) is held whole; the buffer
        is then retried only once it has doubled, so the work stays linear.
        The ids equal encode("".join(iterable)).
        """
        buffer = ""
        threshold = _BLOCK_CHARS
        for chunk in iterable:
            if not isinstance(chunk, str):
                raise TypeError(f"encode_iterable needs str items, got {type(chunk).__name__}")
            buffer += chunk
            if len(buffer) >= threshold:
                ids, buffer = self._encode_prefix(buffer)
                yield from ids
                threshold = max(_BLOCK_CHARS, 2 * len(buffer))
        if buffer:
            yield from self.encode(buffer)

    def _encode_prefix(self, text: str) -> tuple[list[int], str]:
        """Encode the part of `text` that more text cannot change; return (ids, the rest).

        That part ends at the last safe cut (pretokenize.safe_cut) after the last special
        token, or at the last special token where there is none; text ending in a possible
        start of a special token waits too.
        """
        hold = len(text)
        for k in range(min(len(text), max(map(len, self._special_prefixes), default=0)), 0, -1):
            if text[-k:] in self._special_prefixes:
                hold = len(text) - k
                break
        spans = list(self._special_spans(text[:hold]))
        after = spans[-1][1] if spans else 0  # the ordinary text after the last special token
        cut = last_safe_cut(text, after, hold)
        cut = after if cut is None else cut
        return (self.encode(text[:cut]) if cut else []), text[cut:]

    def _batch(self) -> BatchBPE | None:
        """The vectorized BPE, or None where it would not be exact (see batch_bpe.applies_to)."""
        if self._batch_bpe is None:
            exact = applies_to(self._ranks, self._merged)
            batch = BatchBPE(self._ranks, self._merged, self._byte_ids) if exact else False
            self._batch_bpe = batch
        return self._batch_bpe or None

    def _encode_piece(self, piece: str) -> tuple[int, ...]:
        """BPE on one pre-token: merge the lowest-ranked adjacent pair until none is a merge.

        `ranks[i]` is the rank of the pair (ids[i], ids[i+1]). Each step finds the lowest rank
        and its leftmost position with min() and list.index() (in C), merges there, and
        re-ranks only the two neighbouring pairs. Equal ranks merge leftmost first, which is
        the left-to-right rule for runs such as "a a a" with the merge (a, a).
        """
        return self._encode_bytes(piece.encode("utf-8"))

    def _encode_bytes(self, raw: bytes) -> tuple[int, ...]:
        """_encode_piece on the UTF-8 bytes of a pre-token."""
        ids = list(raw) if self._bytes_are_ids else [self._byte_ids[b] for b in raw]
        if len(ids) < 2:
            return tuple(ids)
        get = self._ranks.get
        ranks = list(map(get, pairwise(ids), repeat(_NO_MERGE)))
        merged_ids = self._merged
        rank = min(ranks)
        while rank != _NO_MERGE:
            i = ranks.index(rank)
            merged = merged_ids[rank]
            ids[i : i + 2] = (merged,)
            del ranks[i]
            if i:
                ranks[i - 1] = get((ids[i - 1], merged), _NO_MERGE)
            if i < len(ranks):
                ranks[i] = get((merged, ids[i + 1]), _NO_MERGE)
            elif not i:
                break  # one id left: no pair to rank
            rank = min(ranks)
        return tuple(ids)

    # ---- decoding ---------------------------------------------------------------------------

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids`; bytes that are not valid UTF-8 become U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes of `ids` (any iterable of ints, numpy arrays included)."""
        if isinstance(ids, np.ndarray):
            ids = ids.tolist()
        elif not isinstance(ids, list | tuple):
            ids = list(ids)  # an iterator is read once; the error path below reads it again
        vocab = self.vocab
        try:
            return b"".join([vocab[i] for i in ids])
        except (KeyError, TypeError):
            for position, i in enumerate(ids):
                if i not in vocab or isinstance(i, bool):
                    raise ValueError(
                        f"ids[{position}] = {i!r} is not a token id "
                        f"(valid: 0..{self.vocab_size - 1})"
                    ) from None
            raise

    # ---- files ------------------------------------------------------------------------------

    def encode_file(
        self,
        input_path: str | os.PathLike,
        output_path: str | os.PathLike,
        num_workers: int | None = None,
        progress: bool | None = None,
        errors: str = "strict",
    ) -> int:
        """Encode a UTF-8 text file into a flat array of ids (`token_dtype`) at `output_path`.

        Chunks cut at special tokens (or safe newlines) are encoded by `num_workers` processes
        and written in order; the file appears under its name only once complete. Open it with
        `np.memmap(output_path, dtype=tok.token_dtype, mode="r")`. Returns the number of ids.
        """
        if not os.path.isfile(input_path):
            raise FileNotFoundError(f"input_path {os.fspath(input_path)!r} does not exist")
        num_workers = default_num_workers(num_workers)
        # Build what every worker needs here, once: forked workers inherit it.
        self._batch()
        prepare_tables()
        chunks = iter_chunks(input_path, self.special_tokens, num_workers, _FILE_CHUNK_BYTES)
        jobs = [(i, os.fspath(input_path), s, e, errors) for i, (s, e) in enumerate(chunks)]
        output_path = Path(output_path)
        tmp = output_path.with_name(f".{output_path.name}.tmp-{os.getpid()}")
        dtype = self.token_dtype
        total = 0
        bar = Progress(os.path.getsize(input_path), "encode", unit="B", enabled=progress)
        try:
            with open(tmp, "wb") as out:
                # Results arrive out of order; each is written once everything before it is.
                pending: dict[int, np.ndarray] = {}
                next_index = 0
                results = _map_unordered(
                    _encode_chunk, jobs, num_workers, _set_worker_tokenizer, (self,)
                )
                for index, ids, nbytes in results:
                    pending[index] = ids
                    bar.update(nbytes)
                    while next_index in pending:
                        array = pending.pop(next_index)
                        out.write(array.astype(dtype, copy=False).tobytes())
                        total += len(array)
                        next_index += 1
            os.replace(tmp, output_path)
        finally:
            if tmp.exists():
                tmp.unlink()
        bar.close()
        return total

    def save(self, directory: str | os.PathLike) -> None:
        """Write vocab.json + merges.txt (GPT-2 format) and special_tokens.json to `directory`."""
        formats.save_gpt2_files(directory, self.vocab, self.merges, self.special_tokens)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Tokenizer:
        """Read a tokenizer written by `save`."""
        directory = Path(directory)
        special_path = directory / "special_tokens.json"
        special_tokens = []
        if special_path.is_file():
            special_tokens = json.loads(special_path.read_text(encoding="utf-8"))
        return cls.from_files(directory / "vocab.json", directory / "merges.txt", special_tokens)

    @classmethod
    def from_files(
        cls,
        vocab_path: str | os.PathLike,
        merges_path: str | os.PathLike,
        special_tokens: Sequence[str] | None = None,
    ) -> Tokenizer:
        """Read GPT-2 style vocab.json + merges.txt (OpenAI's GPT-2 files load as they are)."""
        vocab, merges = formats.load_gpt2_files(vocab_path, merges_path, special_tokens or ())
        return cls(vocab, merges, special_tokens)

    def to_hf_json(self) -> dict:
        """HF `tokenizers` tokenizer.json content (json.dump it; Tokenizer.from_file loads it)."""
        return formats.hf_tokenizer_json(self.vocab, self.merges, self.special_tokens)

    def save_hf_json(self, path: str | os.PathLike) -> None:
        formats.write_text_atomic(path, json.dumps(self.to_hf_json(), ensure_ascii=False))

    def tiktoken_mergeable_ranks(self) -> dict[bytes, int]:
        """tiktoken's mergeable_ranks; with `special_ids` and GPT2_PATTERN builds an Encoding."""
        return formats.tiktoken_mergeable_ranks(self.vocab, self.special_tokens)

    # Pickling (for worker processes) leaves the cache behind.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_local"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local = threading.local()


class _PieceCache(dict):
    """pre-token -> code; the ids of code c are flat[start[c] : start[c] + length[c]].

    A pre-token's code is found three ways: pre-tokens of up to 15 UTF-8 bytes by their exact
    key in a numpy table (`_short`, key_table.KeyTable: all of a block at once, no Python
    object each), longer ones by their bytes in a dict (`_long`: ~0.5% of pre-tokens), and the
    strings of the regex path (text with lone surrogates) in this dict itself. A pre-token may
    hold a code in more than one of them; each code's ids are the same.

    Codes are handed out in order, so the pre-tokens still to be encoded (`pending`, as UTF-8
    bytes) hold exactly the codes from `_codes` (the number of codes in the table) on: a new
    pre-token gets the next code at once, and `fill_pending` runs the BPE on all of them
    together and appends their ids to the table. The output is gathered from the table by numpy
    (`ids_of`) instead of concatenating one sequence of ids per pre-token in Python.
    """

    def __init__(self, tokenizer: Tokenizer):
        super().__init__()
        self._tokenizer = tokenizer
        self.pending: list[bytes] = []
        self._short = KeyTable()
        self._long: dict[bytes, int] = {}
        # Growable arrays: only [:self._codes] of start/length and [:self._used] of flat count.
        self._flat = np.empty(1 << 16, dtype=np.int32)
        self._start = np.empty(1 << 14, dtype=np.int32)
        self._length = np.empty(1 << 14, dtype=np.int32)
        self._first = np.empty(1 << 14, dtype=np.int32)  # flat[start[c]]: the first id
        self._codes = self._used = 0
        # The special tokens take the first codes, outside the dict: the text of a special
        # token is also ordinary text, whose pre-tokens the dict holds.
        special_ids = list(tokenizer.special_ids.values())
        self.special_codes = {
            token: np.array([code], dtype=np.int32)
            for code, token in enumerate(tokenizer.special_ids)
        }
        self.special_code = {token: int(code[0]) for token, code in self.special_codes.items()}
        self._next_code = len(special_ids)
        self._append(np.array(special_ids, dtype=np.int32), np.ones(len(special_ids), np.int32))

    def __missing__(self, piece: str) -> int:
        raw = piece.encode("utf-8")  # first: if it raises (a surrogate), nothing has changed
        code = self[piece] = self._next_code
        self._next_code = code + 1
        self.pending.append(raw)
        return code

    def held(self) -> int:
        """Pre-tokens held, in all three maps (what the memory bound counts)."""
        return len(self) + len(self._long) + len(self._short)

    def codes_of(self, spans: PretokenBytes) -> np.ndarray:
        """(pre-tokens,) int32 the code of each pre-token of `spans`; new ones get new codes."""
        key0, key1 = short_keys(spans.utf8, spans.starts, spans.lengths)
        codes = self._short.lookup(key0, key1)  # -1: new, or longer than key_table.MAX_BYTES
        long = np.flatnonzero(key1 == LONG)
        if len(long):
            codes[long] = self._long_codes(spans, long)
        new = np.flatnonzero(codes < 0)
        if len(new):
            # Each distinct new key once: one pre-token holding it gives its bytes.
            first, inverse = distinct(key0[new], key1[new])
            at = new[first]  # (distinct new,) a pre-token of each
            view = memoryview(spans.utf8)
            starts, lengths = spans.starts[at].tolist(), spans.lengths[at].tolist()
            pieces = [bytes(view[s : s + n]) for s, n in zip(starts, lengths, strict=True)]
            fresh = np.arange(self._next_code, self._next_code + len(pieces), dtype=np.int32)
            self._short.insert(key0[at], key1[at], fresh)
            self._next_code += len(pieces)
            self.pending += pieces
            codes[new] = fresh[inverse]
        return codes

    def _long_codes(self, spans: PretokenBytes, which: np.ndarray) -> list[int]:
        """The codes of the long pre-tokens `which` of `spans`, by their bytes in a dict."""
        view, long, codes = memoryview(spans.utf8), self._long, []
        starts, lengths = spans.starts[which].tolist(), spans.lengths[which].tolist()
        for start, length in zip(starts, lengths, strict=True):
            piece = bytes(view[start : start + length])
            code = long.get(piece)
            if code is None:
                code = long[piece] = self._next_code
                self._next_code += 1
                self.pending.append(piece)
            codes.append(code)
        return codes

    def ids_of(self, codes: list[np.ndarray]) -> np.ndarray:
        """The ids of a sequence of codes (given as a list of arrays), in one int32 array."""
        if self.pending:
            self.fill_pending()
        codes = codes[0] if len(codes) == 1 else np.concatenate(codes or [np.zeros(0, np.int32)])
        # Most pre-tokens are one token: repeat each pre-token's first id as many times as it
        # has ids, then write the second and later ids of the others over the repeats.
        lengths = self._length[codes]
        ids = self._first[codes]
        longer = np.flatnonzero(lengths > 1)
        if len(longer):
            ids = np.repeat(ids, lengths)
            rest = lengths[longer] - 1  # ids after the first, per longer pre-token
            # Where its second id goes in the output: its own index, plus the ids after the
            # first of the longer pre-tokens before it, plus one.
            to = longer + np.cumsum(rest) - rest + 1
            source = self._start[codes[longer]] + 1 - to  # flat index minus output index
            to = np.repeat(to - np.cumsum(rest) + rest, rest)
            to += np.arange(len(to))  # (ids after the first,) output positions
            ids[to] = self._flat[to + np.repeat(source, rest)]
        if self.held() > _CACHE_LIMIT:
            self._reset()  # memory bound; nothing is pending here, and `codes` are used up
        return ids

    def fill_pending(self) -> None:
        """Run the BPE on the pending pre-tokens and append their ids to the table."""
        pieces = self.pending
        tokenizer = self._tokenizer
        batch = tokenizer._batch() if len(pieces) >= _BATCH_MIN else None
        # If the BPE raises, nothing has changed: the pre-tokens stay pending (with their codes)
        # and the next call encodes them.
        if batch is None:
            encoded = list(map(tokenizer._encode_bytes, pieces))
            flat = np.fromiter(chain.from_iterable(encoded), dtype=np.int32)
            lengths = np.fromiter(map(len, encoded), dtype=np.int32, count=len(encoded))
        else:
            flat, lengths = batch.encode_flat(pieces)
        self._append(flat, lengths)
        self.pending = []

    def _append(self, flat: np.ndarray, lengths: np.ndarray) -> None:
        codes, used = self._codes + len(lengths), self._used + len(flat)
        if codes > len(self._start):
            size = max(codes, 2 * len(self._start))
            self._start = np.resize(self._start, size)
            self._length = np.resize(self._length, size)
            self._first = np.resize(self._first, size)
        if used > len(self._flat):
            self._flat = np.resize(self._flat, max(used, 2 * len(self._flat)))
        self._flat[self._used : used] = flat
        self._length[self._codes : codes] = lengths
        self._start[self._codes : codes] = np.cumsum(lengths) - lengths + self._used
        self._first[self._codes : codes] = self._flat[self._start[self._codes : codes]]
        self._codes, self._used = codes, used

    def _reset(self) -> None:
        specials = len(self.special_codes)
        self.clear()
        self._long.clear()
        self._short = KeyTable()
        self._codes = self._next_code = specials
        self._used = int(self._length[:specials].sum())


_worker_tokenizer: Tokenizer | None = None


def _set_worker_tokenizer(tokenizer: Tokenizer) -> None:
    global _worker_tokenizer
    _worker_tokenizer = tokenizer


def _encode_chunk(job: tuple) -> tuple[int, np.ndarray, int]:
    index, path, start, end, errors = job
    text = read_text_chunk(path, start, end, errors)
    # Encoding a chunk makes hundreds of thousands of strings and ints that live until it is
    # done and form no cycles, so the garbage collector's passes are pure cost (~2% here).
    # Scoped, so that a one-worker encode_file (run in the caller's process) leaves it as it was.
    collecting = gc.isenabled()
    gc.disable()
    try:
        ids = _worker_tokenizer._encode_array(text, specials=True)
    finally:
        if collecting:
            gc.enable()
    return index, ids.astype(_worker_tokenizer.token_dtype), end - start


def _special_split_regex(special_tokens: Sequence[str]) -> regex.Pattern | None:
    if not special_tokens:
        return None
    ordered = sorted(set(special_tokens), key=lambda t: (-len(t), t))  # longest match wins
    return regex.compile("(" + "|".join(regex.escape(t) for t in ordered) + ")")


def _checked_vocab(vocab: Mapping[int, bytes]) -> dict[int, bytes]:
    if not isinstance(vocab, Mapping) or not vocab:
        raise ValueError("vocab must be a non-empty mapping id -> bytes")
    checked = {}
    for i, token in vocab.items():
        if not isinstance(i, int) or isinstance(i, bool) or i < 0:
            raise ValueError(f"vocab: id {i!r} is not a non-negative int")
        if not isinstance(token, bytes | bytearray):
            raise ValueError(f"vocab[{i}] = {token!r} is not bytes")
        checked[i] = bytes(token)
    return checked


def _checked_special_tokens(special_tokens: Sequence[str] | None) -> list[str]:
    if special_tokens is None:
        return []
    if isinstance(special_tokens, str):
        raise TypeError(f"special_tokens={special_tokens!r} must be a list of strings, not a str")
    for token in special_tokens:
        if not isinstance(token, str) or token == "":
            raise ValueError(f"special token {token!r} is invalid: must be a non-empty string")
    return list(dict.fromkeys(special_tokens))
