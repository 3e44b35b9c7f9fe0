"""Downloading the CS336 datasets once, into a cache, resuming a transfer that broke off.

`--dataset tinystories` or `--dataset owt` fetches the files the CS336 assignment uses from their
public URLs. A transfer is written to `NAME.part` and renamed only when it is complete and checked:
its size against the server's announced length (and the size we expect, when known), its SHA-256
against the expected digest (when known). A `.part` left by an interrupted run is resumed with an
HTTP Range request; a server that ignores Range gets the file again from the start. The digest of
every finished file is kept beside it (`NAME.sha256`): it marks the download complete, and
`verify_cached` can re-check the file against it without the network (hashing gigabytes takes a
while, so reuse does not do it on every run).

Nothing here runs unless a dataset is asked for: the default run never touches the network.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from train_app.errors import UserError
from train_app.progress import ProgressBar

HF = "https://huggingface.co/datasets"


@dataclass(frozen=True)
class RemoteFile:
    url: str
    name: str  # the file name in the cache, after decompression
    gzipped: bool = False
    size: int | None = None  # bytes of the download, when known: checked after the transfer
    sha256: str | None = None  # of the download, when known


# The CS336 (2025) assignment 1 data. Sizes and digests are not pinned here: they are checked
# against what the server announces, and recorded on first download (NAME.sha256).
DATASETS: dict[str, dict[str, RemoteFile]] = {
    "tinystories": {
        "train": RemoteFile(
            f"{HF}/roneneldan/TinyStories/resolve/main/TinyStoriesV2-GPT4-train.txt",
            "TinyStoriesV2-GPT4-train.txt",
        ),
        "valid": RemoteFile(
            f"{HF}/roneneldan/TinyStories/resolve/main/TinyStoriesV2-GPT4-valid.txt",
            "TinyStoriesV2-GPT4-valid.txt",
        ),
    },
    "owt": {
        "train": RemoteFile(
            f"{HF}/stanford-cs336/owt-sample/resolve/main/owt_train.txt.gz", "owt_train.txt", True
        ),
        "valid": RemoteFile(
            f"{HF}/stanford-cs336/owt-sample/resolve/main/owt_valid.txt.gz", "owt_valid.txt", True
        ),
    },
}


def default_cache_dir() -> Path:
    env = os.environ.get("LM_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "lm-from-scratch"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _total_size(response, offset: int) -> int | None:
    """The whole file's size from a 206's Content-Range or a 200's Content-Length."""
    if response.status == 206:
        content_range = response.headers.get("Content-Range", "")  # "bytes 100-999/1000"
        total = content_range.rsplit("/", 1)[-1]
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def _transfer(url: str, part: Path, timeout: float, progress: bool) -> int | None:
    """One attempt: resume `part` from its current size; returns the announced total size."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "lm-from-scratch"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # asked past the end: the .part is already whole (or bad)
            return offset
        raise
    with response:
        if offset and response.status != 206:
            offset = 0  # the server ignored Range and sends everything: start over
        total = _total_size(response, offset)
        mode = "ab" if offset else "wb"
        bar = ProgressBar(total, desc=part.name.removesuffix(".part"), unit="B", enabled=progress)
        bar.update(offset)
        with open(part, mode) as f:
            while block := response.read(1 << 16):
                f.write(block)
                bar.update(len(block))
        bar.close()
    return total


def fetch(
    remote: RemoteFile,
    dest: Path,
    retries: int = 3,
    timeout: float = 60.0,
    progress: bool = True,
    retry_wait: float = 1.0,
) -> Path:
    """Download `remote.url` to `dest` (resuming `dest.part`), check it, and return `dest`.

    A dropped connection is retried `retries` times, each resuming where the last stopped.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest_file = dest.with_name(dest.name + ".sha256")
    if dest.exists() and digest_file.exists():
        return dest  # finished and checked by an earlier run (verify_cached re-checks it)
    part = dest.with_name(dest.name + ".part")
    total = None
    for attempt in range(retries + 1):
        try:
            total = _transfer(remote.url, part, timeout, progress)
            size = part.stat().st_size
            if total is None or size >= total:
                break
            raise ConnectionError(f"connection closed at {size:,} of {total:,} bytes")
        except (OSError, http.client.HTTPException) as e:  # URLError, timeouts, cut connections
            if isinstance(e, urllib.error.HTTPError) and e.code < 500:
                raise UserError(
                    f"download of {remote.url} failed: HTTP {e.code} {e.reason}"
                ) from None
            if attempt == retries:
                have = part.stat().st_size if part.exists() else 0
                raise UserError(
                    f"download of {remote.url} failed after {retries + 1} tries ({e}); "
                    f"{have:,} bytes are kept in {part} and the next run resumes from there"
                ) from None
            print(f"download interrupted ({e}); resuming", file=sys.stderr)
            time.sleep(retry_wait * (attempt + 1))
    size = part.stat().st_size
    if total is not None and size != total:
        part.unlink()
        raise UserError(f"download of {remote.url} is {size:,} bytes, the server said {total:,}")
    if remote.size is not None and size != remote.size:
        part.unlink()
        raise UserError(f"download of {remote.url} is {size:,} bytes, expected {remote.size:,}")
    digest = sha256_of(part)
    if remote.sha256 is not None and digest != remote.sha256:
        part.unlink()
        raise UserError(f"download of {remote.url} has SHA-256 {digest}, expected {remote.sha256}")
    os.replace(part, dest)
    digest_file.write_text(digest + "\n")
    return dest


def verify_cached(path: Path) -> None:
    """Re-check a cached file against the digest recorded when it was downloaded."""
    digest_file = path.with_name(path.name + ".sha256")
    recorded = digest_file.read_text().strip()
    if sha256_of(path) != recorded:
        digest_file.unlink()
        raise UserError(f"cached file {path} is damaged (SHA-256 changed); run again to refetch")


def _gunzip(src: Path, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".tmp")
    with gzip.open(src, "rb") as fin, open(tmp, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
    os.replace(tmp, dest)


def fetch_dataset(
    name: str, cache_dir: Path | None = None, progress: bool = True
) -> dict[str, Path]:
    """{"train": path, "valid": path} of a CS336 dataset, downloading what the cache lacks."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    folder = (cache_dir or default_cache_dir()) / name
    paths = {}
    for split, remote in DATASETS[name].items():
        final = folder / remote.name
        if final.exists():
            paths[split] = final
            continue
        download_name = Path(remote.url).name
        print(f"downloading {remote.url} -> {folder}", file=sys.stderr)
        got = fetch(remote, folder / download_name, progress=progress)
        if remote.gzipped:
            _gunzip(got, final)
        paths[split] = final
    return paths
