"""Command line: `python -m bpe train | encode | decode | compare`.

Exit status: 0 on success, 1 on a bad input (the message names it), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from bpe.simple_tokenizers import (
    ByteTokenizer,
    CharacterTokenizer,
    WordTokenizer,
    compression_ratio,
)
from bpe.tokenizer import Tokenizer
from bpe.train import train_bpe


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (FileNotFoundError, ValueError, TypeError, OSError) as e:
        print(f"bpe {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"bpe {args.command}: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bpe", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a byte-level BPE tokenizer on a text file")
    train.add_argument("--input", required=True, help="UTF-8 text file")
    train.add_argument("--vocab-size", type=int, required=True, help="total ids, specials included")
    train.add_argument(
        "--special-token", action="append", default=[], help="repeatable, e.g. '<|endoftext|>'"
    )
    train.add_argument("--out", required=True, help="directory for vocab.json, merges.txt, ...")
    train.add_argument("--num-workers", type=int, default=None, help="default: all cores")
    train.add_argument("--errors", choices=["strict", "replace"], default="strict")
    train.add_argument("--hf-json", action="store_true", help="also write HF tokenizer.json")
    _progress_flags(train)
    train.set_defaults(run=_train)

    encode = commands.add_parser("encode", help="encode a text file into a flat id array")
    encode.add_argument("--tokenizer", required=True, help="directory written by train/save")
    encode.add_argument("--input", required=True, help="UTF-8 text file")
    encode.add_argument("--out", required=True, help="output .bin (uint16, or uint32 if needed)")
    encode.add_argument("--num-workers", type=int, default=None, help="default: all cores")
    encode.add_argument("--errors", choices=["strict", "replace"], default="strict")
    _progress_flags(encode)
    encode.set_defaults(run=_encode)

    decode = commands.add_parser("decode", help="decode an id array back into text")
    decode.add_argument("--tokenizer", required=True, help="directory written by train/save")
    decode.add_argument("--input", required=True, help=".bin written by encode")
    decode.add_argument("--out", default="-", help="output text file (default: stdout)")
    decode.add_argument(
        "--dtype", choices=["uint16", "uint32"], default=None, help="default: as encode wrote it"
    )
    decode.set_defaults(run=_decode)

    compare = commands.add_parser(
        "compare", help="compare character, byte, word and BPE tokenizers on a file"
    )
    compare.add_argument("--input", required=True, help="UTF-8 text file")
    compare.add_argument("--tokenizer", default=None, help="a trained BPE (default: train one)")
    compare.add_argument("--vocab-size", type=int, default=10_000, help="BPE and word vocab size")
    compare.add_argument(
        "--held-out", type=float, default=0.1, help="fraction of the file measured (the end)"
    )
    compare.add_argument("--json", action="store_true", help="print JSON lines, not a table")
    compare.set_defaults(run=_compare)
    return parser


def _progress_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--progress", dest="progress", action="store_true", default=None)
    group.add_argument("--no-progress", dest="progress", action="store_false")


def _train(args) -> int:
    start = time.perf_counter()
    vocab, merges = train_bpe(
        args.input,
        args.vocab_size,
        args.special_token,
        num_workers=args.num_workers,
        progress=args.progress,
        errors=args.errors,
    )
    tokenizer = Tokenizer(vocab, merges, args.special_token)
    tokenizer.save(args.out)
    if args.hf_json:
        tokenizer.save_hf_json(Path(args.out) / "tokenizer.json")
    seconds = time.perf_counter() - start
    print(f"trained {tokenizer!r} in {seconds:.1f}s -> {args.out}", file=sys.stderr)
    return 0


def _encode(args) -> int:
    tokenizer = Tokenizer.load(_tokenizer_dir(args.tokenizer))
    start = time.perf_counter()
    count = tokenizer.encode_file(
        args.input, args.out, args.num_workers, progress=args.progress, errors=args.errors
    )
    seconds = time.perf_counter() - start
    megabytes = os.path.getsize(args.input) / 1e6
    print(
        f"{count} ids ({np.dtype(tokenizer.token_dtype).name}) -> {args.out} "
        f"in {seconds:.1f}s ({megabytes / seconds:.1f} MB/s)",
        file=sys.stderr,
    )
    return 0


def _decode(args) -> int:
    tokenizer = Tokenizer.load(_tokenizer_dir(args.tokenizer))
    if not os.path.isfile(args.input):
        raise FileNotFoundError(f"--input {args.input!r} does not exist")
    dtype = np.dtype(args.dtype) if args.dtype else np.dtype(tokenizer.token_dtype)
    if os.path.getsize(args.input) % dtype.itemsize:
        raise ValueError(f"--input {args.input!r}: size is not a multiple of {dtype.name}")
    ids = np.fromfile(args.input, dtype=dtype).tolist()
    text = tokenizer.decode(ids)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        from bpe.formats import write_text_atomic

        write_text_atomic(args.out, text)
    return 0


def _tokenizer_dir(path: str) -> str:
    if not os.path.isdir(path):
        raise FileNotFoundError(f"--tokenizer {path!r} is not a directory written by train")
    return path


def _compare(args) -> int:
    if not 0 < args.held_out < 1:
        raise ValueError(f"--held-out {args.held_out} must be between 0 and 1")
    train_text, test_text = _split_file(args.input, args.held_out)
    if args.tokenizer:
        bpe = Tokenizer.load(_tokenizer_dir(args.tokenizer))
    else:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            train_path = Path(tmp) / "train.txt"
            train_path.write_text(train_text, encoding="utf-8")
            vocab, merges = train_bpe(train_path, args.vocab_size, ["<|endoftext|>"])
        bpe = Tokenizer(vocab, merges, ["<|endoftext|>"])
    tokenizers = {
        "character": CharacterTokenizer(),
        "byte": ByteTokenizer(),
        "word": WordTokenizer.train(train_text, args.vocab_size),
        "bpe": bpe,
    }
    rows = []
    for name, tokenizer in tokenizers.items():
        ids = tokenizer.encode(test_text)
        unk = sum(i == tokenizer.unk_id for i in ids) if name == "word" else 0
        rows.append(
            {
                "tokenizer": name,
                "bytes_per_token": round(compression_ratio(test_text, ids), 3),
                "vocab_size": tokenizer.vocab_size,
                "unk_rate": round(unk / len(ids), 5),
                "round_trip_exact": tokenizer.decode(ids) == test_text,
                "tokens": len(ids),
            }
        )
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    held_out_mb = len(test_text.encode("utf-8")) / 1e6
    print(f"{args.input}: trained on the first part, measured on the last {held_out_mb:.2f} MB")
    print(f"{'tokenizer':<10} {'bytes/token':>11} {'vocab size':>10} {'UNK rate':>9} round-trip")
    for r in rows:
        print(
            f"{r['tokenizer']:<10} {r['bytes_per_token']:>11.3f} {r['vocab_size']:>10} "
            f"{r['unk_rate']:>9.2%} {'exact' if r['round_trip_exact'] else 'lossy'}"
        )
    return 0


def _split_file(path: str, held_out: float) -> tuple[str, str]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--input {path!r} does not exist")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if not text:
        raise ValueError(f"--input {path!r} is empty")
    cut = int(len(text) * (1 - held_out))
    newline = text.find("\n", cut)
    cut = newline + 1 if newline != -1 else cut
    return text[:cut], text[cut:]
