"""Shared helpers for the bpe benchmarks: the corpus, machine load, memory, JSON lines."""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
CORPUS_FILES = ("books.txt", "web_mix.txt", "tech_docs.txt")  # 102 MB together
WORK = Path(os.environ.get("BPE_BENCH_DIR", "/tmp/bpe_bench"))


def corpus_path() -> Path:
    """`cat books.txt web_mix.txt tech_docs.txt` into a scratch file (never into the repo)."""
    missing = [name for name in CORPUS_FILES if not (DATA / name).is_file()]
    if missing:
        sys.exit(f"benchmark needs {DATA} with {', '.join(missing)}")
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "corpus.txt"
    size = sum((DATA / name).stat().st_size for name in CORPUS_FILES)
    if not path.is_file() or path.stat().st_size != size:
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as out:
            for name in CORPUS_FILES:
                out.write((DATA / name).read_bytes())
        os.replace(tmp, path)
    return path


def held_out_text() -> str:
    """Real English that is not in the corpus: TinyStories V1 (valid head + train head)."""
    parts = []
    for name in ("ts_v1_valid_head_cased_noeot.txt", "ts_v1_train_head_cased.txt"):
        text = (DATA / "tinystories" / name).read_text(encoding="utf-8")
        parts.append(text.replace("<|endoftext|>\n", "").replace("<|endoftext|>", ""))
    return "".join(parts)


def load() -> dict:
    """What else the 2-core machine is doing: load averages and this process's CPU count."""
    one, five, _ = os.getloadavg()
    return {"load_avg_1m": round(one, 2), "load_avg_5m": round(five, 2), "cpus": os.cpu_count()}


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return round(resource.getrusage(who).ru_maxrss / 1024, 1)  # ru_maxrss is in KiB on Linux


def emit(record: dict, out: Path | None) -> None:
    line = json.dumps(record)
    print(line, flush=True)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "a", encoding="utf-8") as f:
            f.write(line + "\n")
