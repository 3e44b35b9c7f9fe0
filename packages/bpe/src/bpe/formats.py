"""File formats: GPT-2's vocab.json + merges.txt, HF tokenizer.json, tiktoken mergeable ranks.

GPT-2 stores tokens as text through a byte-to-unicode table: the 188 printable bytes stand for
themselves and the 68 others (space, control bytes, ...) are shifted to code points 256 and up,
so `Ġ` (U+0120) is a space. Every token's bytes then become a string with no spaces or control
characters, and a merge is written as one line "left right".
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

MERGES_HEADER = "#version: 0.2"


@cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible table from each byte (0-255) to a printable character."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    table = {b: chr(b) for b in printable}
    shifted = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shifted)
            shifted += 1
    return table


@cache
def unicode_to_bytes() -> dict[str, int]:
    return {ch: b for b, ch in bytes_to_unicode().items()}


def token_to_str(token: bytes) -> str:
    """A token's bytes as GPT-2's printable string (b" the" -> "Ġthe")."""
    table = bytes_to_unicode()
    return "".join(table[b] for b in token)


def str_to_token(text: str, where: str = "token") -> bytes:
    """Inverse of token_to_str; a character outside the table raises, naming `where`."""
    table = unicode_to_bytes()
    try:
        return bytes(table[ch] for ch in text)
    except KeyError as e:
        raise ValueError(
            f"{where}: {text!r} holds {e.args[0]!r}, which is not in GPT-2's byte-to-unicode "
            "table (and the token is not a listed special token)"
        ) from None


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_gpt2_files(
    directory: str | os.PathLike,
    vocab: Mapping[int, bytes],
    merges: Sequence[tuple[bytes, bytes]],
    special_tokens: Sequence[str] = (),
) -> None:
    """Write `vocab.json`, `merges.txt` and `special_tokens.json` into `directory`.

    Special tokens are stored in vocab.json as their literal text, as GPT-2 stores
    `<|endoftext|>`; special_tokens.json lists which entries those are.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    special_ids = _special_ids(vocab, special_tokens)
    encoder = {}
    for i in sorted(vocab):
        key = vocab[i].decode("utf-8") if i in special_ids else token_to_str(vocab[i])
        if key in encoder:
            raise ValueError(f"vocab: ids {encoder[key]} and {i} both hold {vocab[i]!r}")
        encoder[key] = i
    lines = [MERGES_HEADER] + [f"{token_to_str(a)} {token_to_str(b)}" for a, b in merges]
    write_text_atomic(directory / "vocab.json", json.dumps(encoder, ensure_ascii=False) + "\n")
    write_text_atomic(directory / "merges.txt", "\n".join(lines) + "\n")
    write_text_atomic(
        directory / "special_tokens.json", json.dumps(list(special_tokens), ensure_ascii=False)
    )


def load_gpt2_files(
    vocab_path: str | os.PathLike,
    merges_path: str | os.PathLike,
    special_tokens: Sequence[str] = (),
) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """Read GPT-2 style `vocab.json` + `merges.txt` into (vocab: id -> bytes, merges)."""
    for path in (vocab_path, merges_path):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"tokenizer file {os.fspath(path)!r} does not exist")
    with open(vocab_path, encoding="utf-8") as f:
        try:
            encoder = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{os.fspath(vocab_path)}: not valid JSON ({e})") from None
    if not isinstance(encoder, dict):
        raise ValueError(f"{os.fspath(vocab_path)}: expected a JSON object token -> id")
    specials = set(special_tokens)
    vocab: dict[int, bytes] = {}
    for text, i in encoder.items():
        if not isinstance(i, int) or i < 0:
            raise ValueError(f"{os.fspath(vocab_path)}: token {text!r} has invalid id {i!r}")
        if i in vocab:
            raise ValueError(f"{os.fspath(vocab_path)}: id {i} appears twice")
        if text in specials:
            vocab[i] = text.encode("utf-8")
        else:
            vocab[i] = str_to_token(text, f"{os.fspath(vocab_path)}")
    merges = []
    with open(merges_path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line or (line_number == 1 and line.startswith("#version")):
                continue
            parts = line.split(" ")
            if len(parts) != 2 or not parts[0] or not parts[1]:
                raise ValueError(
                    f"{os.fspath(merges_path)}:{line_number}: expected 'left right', got {line!r}"
                )
            where = f"{os.fspath(merges_path)}:{line_number}"
            merges.append((str_to_token(parts[0], where), str_to_token(parts[1], where)))
    return vocab, merges


def hf_tokenizer_json(
    vocab: Mapping[int, bytes],
    merges: Sequence[tuple[bytes, bytes]],
    special_tokens: Sequence[str] = (),
) -> dict:
    """The HF `tokenizers` tokenizer.json for this tokenizer, as a dict (json.dump it).

    A byte-level BPE model with GPT-2's ByteLevel pre-tokenizer (the same regex) and decoder;
    special tokens are added tokens, matched in the raw text before pre-tokenization.
    """
    special_ids = _special_ids(vocab, special_tokens)
    model_vocab = {token_to_str(vocab[i]): i for i in sorted(vocab) if i not in special_ids}
    added = [
        {
            "id": special_ids[token],
            "content": token,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for token in special_tokens
    ]
    byte_level = {"add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", **byte_level},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", **byte_level},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": model_vocab,
            "merges": [f"{token_to_str(a)} {token_to_str(b)}" for a, b in merges],
        },
    }


def tiktoken_mergeable_ranks(
    vocab: Mapping[int, bytes], special_tokens: Sequence[str] = ()
) -> dict[bytes, int]:
    """tiktoken's `mergeable_ranks` (token bytes -> rank) for every non-special token.

    tiktoken merges by the rank of the merged token's bytes, so ranks must follow merge order:
    true of ids from train_bpe and of GPT-2's own vocab.json.
    """
    special_ids = set(_special_ids(vocab, special_tokens).values())
    ranks = {vocab[i]: i for i in sorted(vocab) if i not in special_ids}
    if len(ranks) != len(vocab) - len(special_ids):
        raise ValueError("vocab: two ids hold the same bytes; tiktoken ranks must be unique")
    return ranks


def _special_ids(vocab: Mapping[int, bytes], special_tokens: Sequence[str]) -> dict[str, int]:
    """Each special token's id: the highest id holding its bytes (special tokens come last)."""
    by_bytes = {}
    for i in sorted(vocab):
        by_bytes[vocab[i]] = i
    ids = {}
    for token in special_tokens:
        i = by_bytes.get(token.encode("utf-8"))
        if i is None:
            raise ValueError(f"special token {token!r} is not in the vocab")
        ids[token] = i
    return ids
