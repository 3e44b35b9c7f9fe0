"""BPE encoding throughput: bpe.Tokenizer vs tiktoken (Rust), same ranks, same text, same run.

The vocab: OpenAI's GPT-2 files cannot be fetched here (no hub access, and neither tiktoken nor
tokenizers ships them), so the tokenizer is one with GPT-2's size (50,000 merges + <|endoftext|>
= 50,257 ids) trained here on the corpus by bpe.train_bpe, saved in GPT-2's file format. tiktoken
gets the very same ranks (Tokenizer.tiktoken_mergeable_ranks) and GPT-2's pattern; the ids are
checked to be identical before anything is timed.

Figures (MB/s of UTF-8 input, ours / tiktoken / ratio):
  one process:  Tokenizer.encode_ordinary vs Encoding.encode_ordinary over the corpus in ~1 MB
                pieces, alternating piece by piece; our cache cold at the start.
  all cores:    Tokenizer.encode_file(num_workers=cores) (reads the file, writes uint16 ids) vs
                Encoding.encode_ordinary_batch(pieces, num_threads=cores) (in memory); run in
                the order ours, peer, peer, ours, best of each.

    python benchmarks/bench_bpe_encode.py [--tokenizer DIR] [--mb 102]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_bpe_common import WORK, corpus_path, emit, load

from bpe import GPT2_PATTERN, Tokenizer, train_bpe

SPECIAL = "<|endoftext|>"


def gpt2_sized_tokenizer(directory: Path, corpus: Path) -> Path:
    if not (directory / "vocab.json").is_file():
        print(f"training a 50,257-id tokenizer into {directory} ...", file=sys.stderr)
        vocab, merges = train_bpe(corpus, 50_257, [SPECIAL], progress=False)
        Tokenizer(vocab, merges, [SPECIAL]).save(directory)
    return directory


def pieces_of(text: str, size: int = 1 << 20) -> list[str]:
    """~1 MB pieces cut just before a special token, so they encode as the whole text does."""
    pieces, start = [], 0
    while start < len(text):
        cut = text.find(SPECIAL, start + size)
        cut = len(text) if cut == -1 else cut
        pieces.append(text[start:cut])
        start = cut
    return pieces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokenizer", type=Path, default=WORK / "tok50k")
    parser.add_argument("--mb", type=float, default=None, help="use only the first MB of text")
    parser.add_argument("--out", type=Path, default=None, help="append JSON lines here too")
    parser.add_argument("--code", default=None, help="tag the records with the code measured")
    args = parser.parse_args()
    import tiktoken

    corpus = corpus_path()
    directory = gpt2_sized_tokenizer(args.tokenizer, corpus)
    data = corpus.read_bytes()
    if args.mb:
        data = data[: int(args.mb * 1e6)]
        data = data[: data.rfind(b"\n") + 1]
        corpus = WORK / "corpus_head.txt"
        corpus.write_bytes(data)
    text = data.decode("utf-8")
    megabytes = len(data) / 1e6
    pieces = pieces_of(text)
    cores = len(os.sched_getaffinity(0))

    ours = Tokenizer.load(directory)
    encoding = tiktoken.Encoding(
        name="bpe-bench-50k",
        pat_str=GPT2_PATTERN,
        mergeable_ranks=ours.tiktoken_mergeable_ranks(),
        special_tokens=ours.special_ids,
    )
    check = pieces[0][:300_000]
    assert ours.encode_ordinary(check) == encoding.encode_ordinary(check), "ids differ"
    common = {
        "bench": "bpe_encode",
        "vocab": "50,257 ids trained here (GPT-2 size; OpenAI's files unavailable)",
        "corpus_mb": round(megabytes, 1),
        "peer": "tiktoken",
        **load(),
    }
    if args.code:
        common["code"] = args.code

    # One process, piece by piece: ours then tiktoken on each ~1 MB piece, so that both see the
    # same machine load (other jobs share these 2 cores). A fresh Tokenizer: our cache starts
    # cold and warms as it goes, as in real use.
    ours = Tokenizer.load(directory)
    ours_s = peer_s = 0.0
    ours_tokens = peer_tokens = 0
    for piece in pieces:
        start = time.perf_counter()
        ours_tokens += len(ours.encode_ordinary(piece))
        middle = time.perf_counter()
        peer_tokens += len(encoding.encode_ordinary(piece))
        ours_s += middle - start
        peer_s += time.perf_counter() - middle
    assert ours_tokens == peer_tokens, (ours_tokens, peer_tokens)
    emit(
        {
            **common,
            "metric": "encode_MB_per_s_1_process",
            "ours": round(megabytes / ours_s, 2),
            "peer_value": round(megabytes / peer_s, 2),
            "ratio": round(peer_s / ours_s, 3),
            "ratio_is": "ours/peer throughput, higher is better",
            "tokens": ours_tokens,
        },
        args.out,
    )

    # All cores, whole corpus, in the order ours, peer, peer, ours; the best time of each.
    # Ours reads the file and writes ids to disk (cold caches in fresh workers); tiktoken
    # encodes the in-memory pieces on as many threads.
    out = WORK / "corpus_ids.bin"
    times = {"ours": [], "peer": []}
    for who in ("ours", "peer", "peer", "ours"):
        if who == "ours":
            ours = Tokenizer.load(directory)
            start = time.perf_counter()
            count = ours.encode_file(corpus, out, num_workers=cores, progress=False)
        else:
            start = time.perf_counter()
            encoding.encode_ordinary_batch(pieces, num_threads=cores)
        times[who].append(time.perf_counter() - start)
    ours_s, peer_s = min(times["ours"]), min(times["peer"])
    # encode_file treats <|endoftext|> as the special token it is: compare with tiktoken's
    # encode allowing it (untimed), id for id.
    expected = encoding.encode_batch(pieces, num_threads=cores, allowed_special="all")
    ids = np.memmap(out, dtype=ours.token_dtype, mode="r")
    same = count == sum(map(len, expected)) and bool(
        (ids == np.fromiter((i for e in expected for i in e), dtype=np.int64)).all()
    )
    emit(
        {
            **common,
            **load(),
            "metric": f"encode_MB_per_s_{cores}_workers",
            "ours": round(megabytes / ours_s, 2),
            "peer_value": round(megabytes / peer_s, 2),
            "ratio": round(peer_s / ours_s, 3),
            "ratio_is": "ours (encode_file, to disk) / peer (encode_ordinary_batch, in memory)",
            "all_ours_s": [round(t, 2) for t in times["ours"]],
            "all_peer_s": [round(t, 2) for t in times["peer"]],
            "ids_identical_to_tiktoken": same,
            "tokens": count,
        },
        args.out,
    )
    del ids
    out.unlink()


if __name__ == "__main__":
    main()
