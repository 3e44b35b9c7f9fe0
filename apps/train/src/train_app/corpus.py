"""Where the text comes from, and how it is split into training and validation text.

A corpus is a stream of documents. The built-in one is Python's own documentation
(`pydoc_data.topics`, about 465 KB of English prose and code in 79 topics) that ships with every
CPython, so the default run needs no download. A user's corpus is a UTF-8 text file whose
documents are separated by `<|endoftext|>` (the CS336 format), or a directory of .txt files (one
document each, or several separated the same way).

`write_splits` streams documents into `train.txt` and `val.txt`, holding out whole documents
(never split between the two, so validation text is text the model has not seen) spread evenly
over the corpus. With a single document there is nothing to hold out whole, so its last
`val_fraction` is held out instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from train_app.errors import UserError

DOC_SEPARATOR = "<|endoftext|>"
_READ_CHUNK = 1 << 20  # characters per read when streaming a large file


def builtin_documents() -> list[str]:
    """The topics of Python's documentation, in a fixed order (by topic name)."""
    from pydoc_data.topics import topics

    return [topics[name].strip() for name in sorted(topics)]


def _documents_in_file(path: Path) -> Iterator[str]:
    """One file's documents, streamed: split on the separator, stripped, empty ones skipped."""
    carry = ""
    try:
        with open(path, encoding="utf-8") as f:
            while chunk := f.read(_READ_CHUNK):
                parts = (carry + chunk).split(DOC_SEPARATOR)
                carry = parts.pop()  # may be the start of a document (or of a separator)
                for doc in parts:
                    if doc.strip():
                        yield doc.strip()
    except UnicodeDecodeError as e:
        raise UserError(
            f"data file {path} is not UTF-8 text (bad byte at offset {e.start} of a chunk); "
            "convert it to UTF-8 first"
        ) from None
    except OSError as e:
        raise UserError(f"cannot read data file {path}: {e.strerror}") from None
    if carry.strip():
        yield carry.strip()


def text_files(path: Path) -> list[Path]:
    """The text files a `--data` path names: the file itself, or a directory's .txt files."""
    if not path.exists():
        raise UserError(f"data path {path} does not exist")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise UserError(f"data directory {path} holds no .txt files")
    else:
        files = [path]
    if all(f.stat().st_size == 0 for f in files):
        raise UserError(f"data path {path} is empty: it holds no text")
    return files


def documents(paths: Iterable[Path]) -> Iterator[str]:
    for path in paths:
        yield from _documents_in_file(path)


@dataclass
class SplitStats:
    train_docs: int
    val_docs: int
    train_bytes: int
    val_bytes: int


class _DocWriter:
    """Appends documents to a text file, each followed by the separator (as CS336 files are)."""

    def __init__(self, path: Path, separator: str):
        self.path, self.tmp = path, path.with_name(path.name + ".tmp")
        self.f = open(self.tmp, "w", encoding="utf-8")  # noqa: SIM115 (closed by close())
        self.separator, self.docs, self.bytes = separator, 0, 0

    def write(self, doc: str) -> None:
        text = doc + self.separator
        self.f.write(text)
        self.docs += 1
        self.bytes += len(text.encode("utf-8"))

    def close(self) -> None:
        self.f.close()
        os.replace(self.tmp, self.path)


def write_splits(
    docs: Iterable[str],
    train_path: Path,
    val_path: Path,
    val_fraction: float,
    max_bytes: int = 0,
    separator: str = DOC_SEPARATOR,
) -> SplitStats:
    """Stream `docs` into two text files, holding out about `val_fraction` of the text.

    Each document goes to validation when that keeps the validation share of the bytes read so
    far at or below `val_fraction` (counting half the document): a systematic sample, spread
    over the whole corpus, that hits the share closely even when documents differ in size by
    100x (as the built-in corpus's do). The split is deterministic: the same on every machine.
    `max_bytes` > 0 stops once that much text has been read.
    """
    train, val = _DocWriter(train_path, separator), _DocWriter(val_path, separator)
    read = 0
    try:
        for doc in docs:
            if max_bytes and read >= max_bytes:
                break
            if max_bytes and read + len(doc) > max_bytes:
                doc = doc[: max_bytes - read]  # characters, close enough to bytes for a cap
            size = len(doc.encode("utf-8"))
            midpoint = read + size / 2
            read += size
            goes_to_val = val.bytes + size / 2 <= val_fraction * midpoint
            (val if goes_to_val else train).write(doc)
        if read and 0 in (train.docs, val.docs):
            # Too few documents to hold out whole ones: hold out the tail of the text instead.
            # (Only one of the two files has text, so reading it back keeps the order.)
            train.f.close()
            val.f.close()
            text = "\n\n".join(_read_back(train) + _read_back(val))
            train, val = _DocWriter(train_path, separator), _DocWriter(val_path, separator)
            cut = _whitespace_before(text, int(len(text) * (1 - val_fraction)))
            train.write(text[:cut].strip())
            val.write(text[cut:].strip())
    finally:
        train.close()
        val.close()
    if train.bytes == 0:
        raise UserError("the corpus is empty: it holds no text once documents are split")
    return SplitStats(train.docs, val.docs, train.bytes, val.bytes)


def _read_back(writer: _DocWriter) -> list[str]:
    """The documents a closed writer has written to its temporary file."""
    text = writer.tmp.read_text(encoding="utf-8")
    return [d.strip() for d in text.split(writer.separator) if d.strip()]


def _whitespace_before(text: str, index: int) -> int:
    """The last whitespace position at or before `index`, so no word is cut in two."""
    space = max(text.rfind(" ", 0, index), text.rfind("\n", 0, index))
    return space if space > 0 else index


def write_documents(
    docs: Iterable[str], path: Path, max_bytes: int = 0, separator: str = DOC_SEPARATOR
) -> tuple[int, int]:
    """Stream `docs` into one text file (at most `max_bytes` when > 0); (documents, bytes)."""
    writer = _DocWriter(path, separator)
    try:
        for doc in docs:
            if max_bytes and writer.bytes >= max_bytes:
                break
            writer.write(doc)
    finally:
        writer.close()
    return writer.docs, writer.bytes
