"""Pre-tokenization: special-token splitting, the GPT-2 regex, and parallel counting over a file.

BPE never merges across a pre-token boundary, so training only needs how often each distinct
pre-token occurs. A 100 MB corpus has about a million distinct pre-tokens, so the counts are small
even when the file is not: workers stream the file in chunks, and only counts come back.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from itertools import pairwise
from multiprocessing import get_all_start_methods, get_context

import regex

from bpe.progress import Progress

# GPT-2's pre-tokenization pattern (Radford et al., 2019), exactly as CS336 and tiktoken's
# "gpt2" encoding use it: contractions, letters, numbers, other symbols, each with an optional
# leading space; whitespace runs keep their last space for the next word (`\s+(?!\S)`).
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

PRETOKEN_RE = regex.compile(GPT2_PATTERN)

# A twin of the pattern for the stdlib `re` engine, which runs it about twice as fast as the
# `regex` module: `re` has no \p{..}, so the classes are spelled out as code-point ranges, taken
# from the `regex` module's own Unicode tables so that both engines agree by construction. Only
# the Basic Multilingual Plane is spelled out (`re` checks a BMP class with one table lookup,
# but tests astral ranges one by one), so text holding an astral letter or digit (rare: math
# alphanumerics, CJK extensions) goes to the `regex` pattern. Astral symbols such as emoji are
# neither letter, digit nor space in both patterns. Tests compare the two on random text.


def _bmp_class(prop: str) -> str:
    bmp = "".join(chr(c) for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF)
    members = [ord(ch) for ch in regex.findall(prop, bmp)]
    ranges, first, last = [], members[0], members[0]
    for c in members[1:]:
        if c != last + 1:
            ranges.append((first, last))
            first = c
        last = c
    ranges.append((first, last))
    return "".join(f"\\u{a:04x}" if a == b else f"\\u{a:04x}-\\u{b:04x}" for a, b in ranges)


_L, _N, _S = _bmp_class(r"\p{L}"), _bmp_class(r"\p{N}"), _bmp_class(r"\s")
# Each ` ?X+` is spelled ` X+|X+`: the same matches in the same order (an `X+` cannot start at
# a space), but now every branch starts with a literal or a class, which `re` checks before
# entering the branch; the regex runs ~9% faster.
BMP_PRETOKEN_RE = re.compile(
    rf"""'(?:[sdmt]|ll|ve|re)| [{_L}]+|[{_L}]+| [{_N}]+|[{_N}]+"""
    rf"""| [^{_S}{_L}{_N}]+|[^{_S}{_L}{_N}]+|[{_S}]+(?![^{_S}])|[{_S}]+"""
)
_ASTRAL_RE = re.compile("[\U00010000-\U0010ffff]")
_LETTER_OR_NUMBER_RE = regex.compile(r"[\p{L}\p{N}]")


def _needs_full_unicode(text: str, pos: int, endpos: int) -> bool:
    """Whether text[pos:endpos] holds an astral letter or number (BMP_PRETOKEN_RE's blind spot)."""
    if text.isascii():  # a flag of the str object: no scan (70% of the benchmark corpus)
        return False
    match = _ASTRAL_RE.search(text, pos, endpos)
    while match is not None:
        if _LETTER_OR_NUMBER_RE.match(match.group()):
            return True
        match = _ASTRAL_RE.search(text, match.end(), endpos)
    return False


# Safe cuts: places where the pattern ends a pre-token whatever text follows, and where the text
# before pre-tokenizes exactly as if it ended there. Cutting a long text at one (into blocks, or
# holding back the rest of a stream) changes no pre-token. Two kinds:
# - before a space followed by a non-space. That space can only start ` ?\p{L}+`, ` ?\p{N}+` or
#   ` ?[^\s\p{L}\p{N}]+`; what comes before ends there (letter, number and symbol runs hold no
#   space, a contraction holds none, and a whitespace run gives up its last character to
#   `(?!\S)` just as it does at the end of the text); and no branch tells that space from the
#   end of the text (each stops at it, or for `\s+(?!\S)` backs off to it, as at the end).
# - after a newline between two non-spaces: that newline is a pre-token by itself (`\s+(?!\S)`
#   fails on it, `\s+` takes it; at the end of the text `\s+(?!\S)` takes it), and nothing
#   else can reach across it.
# A cut anywhere else may not be safe: "we'l" + "l" pre-tokenizes as "we", "'", "l" + "l", not as
# "we", "'ll". "Space" is `\s` as the `regex` module defines it (_S; no astral character is one).
_SAFE_CUT = rf"(?= [^{_S}])|(?<=[^{_S}]\n)(?=[^{_S}])"
_SAFE_CUT_RE = re.compile(_SAFE_CUT)
_LAST_SAFE_CUT_RE = re.compile(rf"(?s:.*)(?:{_SAFE_CUT})")  # greedy: the last one


def safe_cut(text: str, pos: int, endpos: int) -> int | None:
    """The first safe cut c with pos <= c < endpos that text[:endpos] shows to be safe."""
    match = _SAFE_CUT_RE.search(text, pos, endpos)
    return None if match is None else match.start()


def last_safe_cut(text: str, pos: int, endpos: int) -> int | None:
    """The last safe cut c with pos <= c < endpos that text[:endpos] shows to be safe."""
    match = _LAST_SAFE_CUT_RE.match(text, pos, endpos)
    return None if match is None else match.end()


def pretokens(text: str, pos: int = 0, endpos: int | None = None) -> list[str]:
    """GPT-2 pre-tokens of text[pos:endpos] (as if the text ended at endpos)."""
    endpos = len(text) if endpos is None else min(endpos, len(text))
    if _needs_full_unicode(text, pos, endpos):
        return PRETOKEN_RE.findall(text, pos, endpos)
    return BMP_PRETOKEN_RE.findall(text, pos, endpos)


# Chunks handed to a worker: large enough that process overhead is negligible, small enough
# that a worker's text and its list of pre-tokens stay well below a gigabyte.
DEFAULT_CHUNK_BYTES = 16 << 20
_SCAN_BYTES = 1 << 16


def special_tokens_regex(special_tokens: Sequence[str]) -> regex.Pattern | None:
    """A regex matching any special token, longest first so overlapping tokens prefer the longest.

    `<|endoftext|><|endoftext|>` as a special token therefore wins over two `<|endoftext|>`.
    Returns None when there are no special tokens.
    """
    if not special_tokens:
        return None
    for token in special_tokens:
        if not isinstance(token, str) or token == "":
            raise ValueError(f"special token {token!r} is invalid: must be a non-empty string")
    ordered = sorted(set(special_tokens), key=lambda t: (-len(t), t))
    return regex.compile("|".join(regex.escape(t) for t in ordered))


def split_on_special_tokens(text: str, special_re: regex.Pattern | None) -> list[str]:
    """The pieces of `text` between special tokens (the special tokens themselves dropped)."""
    if special_re is None:
        return [text]
    return special_re.split(text)


def count_pretokens_in_text(text: str, special_re: regex.Pattern | None = None) -> Counter[str]:
    """How often each pre-token occurs in `text`, special tokens removed first."""
    counts: Counter[str] = Counter()
    for piece in split_on_special_tokens(text, special_re):
        if piece:
            counts.update(pretokens(piece))
    return counts


def _is_safe_newline_cut(window: bytes, i: int) -> bool:
    # A cut right after "\n" is invisible to the GPT-2 regex when both neighbours are printable
    # ASCII: no pre-token contains "\n" followed by a non-space, and the whitespace run before
    # the cut is the "\n" alone, so `\s+(?!\S)` cannot match differently on either side.
    if not 0 < i < len(window) - 1:
        return False
    return 0x21 <= window[i - 1] <= 0x7E and 0x21 <= window[i + 1] <= 0x7E


def find_chunk_boundaries(
    path: str | os.PathLike, target_chunk_bytes: int, special_tokens: Sequence[str] = ()
) -> list[int]:
    """Byte offsets that cut `path` into chunks of about `target_chunk_bytes` each.

    A cut lies just before a special token (which splits the text anyway) or, when there are none
    nearby, just after a newline between two printable ASCII characters, so each chunk
    pre-tokenizes exactly as it would inside the whole file and never splits a UTF-8 character.
    Returned offsets start with 0 and end with the file size.
    """
    size = os.path.getsize(path)
    specials = [t.encode("utf-8") for t in special_tokens]
    boundaries = [0]
    with open(path, "rb") as f:
        position = target_chunk_bytes
        while position < size:
            cut = _find_cut(f, position, size, specials)
            if cut is None or cut >= size:
                break
            if cut > boundaries[-1]:
                boundaries.append(cut)
            position = max(cut, position) + target_chunk_bytes
    boundaries.append(size)
    return boundaries


def _find_cut(f, start: int, size: int, specials: list[bytes]) -> int | None:
    """The first safe cut at or after `start`: before a special token, else a safe newline."""
    longest = max((len(s) for s in specials), default=1)
    position = start
    while position < size:
        # The window starts up to `longest - 1` bytes early, so that a special token running
        # across `position` is seen whole (and never cut).
        base = max(0, position - longest + 1)
        f.seek(base)
        window = f.read(position - base + _SCAN_BYTES + longest)
        if len(window) <= position - base:
            return None
        first = position - base
        hit = _first_special(window, specials, first)
        while hit is not None and _cuts_a_special(window, hit, specials):
            hit = _first_special(window, specials, hit + 1)
        if hit is not None:
            return base + hit
        newline = window.find(b"\n", first)
        while newline != -1:
            cut = newline + 1
            if _is_safe_newline_cut(window, newline) and not _cuts_a_special(window, cut, specials):
                return base + cut
            newline = window.find(b"\n", cut)
        position += _SCAN_BYTES
    return None


def _first_special(window: bytes, specials: list[bytes], start: int) -> int | None:
    hits = [h for h in (window.find(s, start) for s in specials) if h != -1]
    return min(hits) if hits else None


def _cuts_a_special(window: bytes, cut: int, specials: list[bytes]) -> bool:
    """Whether some special token in `window` starts before `cut` and ends after it.

    E.g. with `<|endoftext|>` and `<|endoftext|><|endoftext|>` both special, the start of the
    second `<|endoftext|>` of a pair is no place to cut: the pair is one token.
    """
    for s in specials:
        for j in range(max(0, cut - len(s) + 1), cut):
            if window.startswith(s, j):
                return True
    return False


def read_text_chunk(path: str | os.PathLike, start: int, end: int, errors: str = "strict") -> str:
    """Bytes [start, end) of `path` decoded as UTF-8; a decoding error names the file and offset."""
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{os.fspath(path)}: invalid UTF-8 at byte offset {start + e.start} ({e.reason}); "
            "pass errors='replace' to substitute U+FFFD"
        ) from None


def _count_chunk(args: tuple) -> tuple[Counter[str], int]:
    path, start, end, special_tokens, errors = args
    text = read_text_chunk(path, start, end, errors)
    return count_pretokens_in_text(text, special_tokens_regex(special_tokens)), end - start


def iter_chunks(
    path: str | os.PathLike,
    special_tokens: Sequence[str] = (),
    num_workers: int = 1,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> list[tuple[int, int]]:
    """(start, end) byte ranges covering `path`: at least one per worker, at most chunk_bytes."""
    size = os.path.getsize(path)
    per_worker = -(-size // max(1, num_workers))
    target = max(1 << 16, min(chunk_bytes, per_worker))
    cuts = find_chunk_boundaries(path, target, special_tokens)
    return list(pairwise(cuts))


def count_pretokens(
    path: str | os.PathLike,
    special_tokens: Sequence[str] = (),
    num_workers: int | None = None,
    errors: str = "strict",
    progress: bool | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> Counter[str]:
    """Pre-token counts of a whole file, computed by `num_workers` processes over its chunks."""
    num_workers = default_num_workers(num_workers)
    special_tokens = list(special_tokens)
    special_tokens_regex(special_tokens)  # validate here, before any worker starts
    chunks = iter_chunks(path, special_tokens, num_workers, chunk_bytes)
    jobs = [(os.fspath(path), s, e, special_tokens, errors) for s, e in chunks]
    total: Counter[str] = Counter()
    bar = Progress(os.path.getsize(path), "pre-tokenize", unit="B", enabled=progress)
    for counts, nbytes in _map_unordered(_count_chunk, jobs, num_workers):
        if not total:
            total = counts  # the first result is adopted, not copied
        else:
            total.update(counts)
        bar.update(nbytes)
    bar.close()
    return total


def default_num_workers(num_workers: int | None) -> int:
    if num_workers is None:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if num_workers < 1:
        raise ValueError(f"num_workers={num_workers} is invalid: must be at least 1")
    return num_workers


def _map_unordered(
    fn, jobs: list, num_workers: int, initializer=None, initargs: tuple = ()
) -> Iterator:
    """fn over jobs in worker processes (in this process when one worker or one job suffices).

    `initializer(*initargs)` runs once in each worker (or here), e.g. to hand over a tokenizer
    once instead of with every job.
    """
    if num_workers == 1 or len(jobs) <= 1:
        if initializer is not None:
            initializer(*initargs)
        yield from map(fn, jobs)
        return
    # "fork" starts workers in milliseconds and shares the already imported modules; the workers
    # only read the file and return plain data, so fork's usual hazards do not apply.
    ctx = get_context("fork") if "fork" in get_all_start_methods() else get_context()
    with ctx.Pool(min(num_workers, len(jobs)), initializer, initargs) as pool:
        yield from pool.imap_unordered(fn, jobs)
