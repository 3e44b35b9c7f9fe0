"""BPE training: bpe.train_bpe vs HF `tokenizers` BpeTrainer (Rust) on the same 102 MB file.

Corpus: `cat books.txt web_mix.txt tech_docs.txt` from ../shared/data. Each trainer runs in a
fresh process (so peak RSS is its own), the two alternating, with `<|endoftext|>` as a special
token and the same number of merges (vocab_size - 257). Peer setup: BPE model, ByteLevel
pre-tokenizer (GPT-2 regex, no prefix space), the 256-byte initial alphabet, all threads.

Printed, one JSON line per figure: seconds and peak RSS (ours, HF's, ratio ours/HF), and the
compression (UTF-8 bytes per token) of both trained tokenizers on held-out TinyStories text.

    python benchmarks/bench_bpe_train.py [--vocab-sizes 10000 32000] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_bpe_common import WORK, corpus_path, emit, held_out_text, load, peak_rss_mb

SPECIAL = "<|endoftext|>"


def train_ours(corpus: Path, vocab_size: int, save_dir: Path) -> dict:
    from bpe import Tokenizer, train_bpe

    start = time.perf_counter()
    vocab, merges = train_bpe(corpus, vocab_size, [SPECIAL], num_workers=2, progress=False)
    seconds = time.perf_counter() - start
    Tokenizer(vocab, merges, [SPECIAL]).save(save_dir)
    return {
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),  # the main process: counts and merges
        "workers_peak_rss_mb": peak_rss_mb(resource.RUSAGE_CHILDREN),  # largest worker
        "vocab_size": len(vocab),
    }


def train_hf(corpus: Path, vocab_size: int, save_dir: Path) -> dict:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[SPECIAL],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=0,
        show_progress=False,
    )
    start = time.perf_counter()
    tokenizer.train([str(corpus)], trainer)
    seconds = time.perf_counter() - start
    save_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(save_dir / "tokenizer.json"))
    return {
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "vocab_size": tokenizer.get_vocab_size(),
    }


def run_child(which: str, corpus: Path, vocab_size: int, save_dir: Path) -> dict:
    command = [sys.executable, __file__, "--child", which, "--vocab-sizes", str(vocab_size)]
    command += ["--corpus", str(corpus), "--save", str(save_dir)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"{which} trainer failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def compression(save_ours: Path, save_hf: Path, text: str) -> tuple[float, float]:
    import tokenizers

    from bpe import Tokenizer

    ours = Tokenizer.load(save_ours)
    hf = tokenizers.Tokenizer.from_file(str(save_hf / "tokenizer.json"))
    nbytes = len(text.encode("utf-8"))
    return nbytes / len(ours.encode(text)), nbytes / len(hf.encode(text).ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vocab-sizes", type=int, nargs="+", default=[10_000, 32_000])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="append JSON lines here too")
    parser.add_argument("--child", choices=["ours", "hf"], help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--save", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        train = train_ours if args.child == "ours" else train_hf
        print(json.dumps(train(args.corpus, args.vocab_sizes[0], args.save)))
        return

    corpus = corpus_path()
    megabytes = corpus.stat().st_size / 1e6
    held_out = held_out_text()
    for vocab_size in args.vocab_sizes:
        runs = {"ours": [], "hf": []}
        conditions = load()
        for repeat in range(args.repeats):
            order = ["ours", "hf"] if repeat % 2 == 0 else ["hf", "ours"]
            for which in order:
                save = WORK / f"train_{which}_{vocab_size}"
                runs[which].append(run_child(which, corpus, vocab_size, save))
        best = {k: min(v, key=lambda r: r["seconds"]) for k, v in runs.items()}
        common = {
            "bench": "bpe_train",
            "vocab_size": vocab_size,
            "corpus_mb": round(megabytes, 1),
            "peer": "HF tokenizers BpeTrainer",
            "repeats": args.repeats,
            **conditions,
        }
        ours_s, hf_s = best["ours"]["seconds"], best["hf"]["seconds"]
        emit(
            {
                **common,
                "metric": "train_seconds",
                "ours": round(ours_s, 2),
                "peer_value": round(hf_s, 2),
                "ratio": round(ours_s / hf_s, 3),
                "ratio_is": "ours/peer, lower is better",
                "all_ours": [round(r["seconds"], 2) for r in runs["ours"]],
                "all_peer": [round(r["seconds"], 2) for r in runs["hf"]],
            },
            args.out,
        )
        ours_mb, hf_mb = best["ours"]["peak_rss_mb"], best["hf"]["peak_rss_mb"]
        emit(
            {
                **common,
                "metric": "peak_rss_mb",
                "ours": ours_mb,
                "ours_workers_peak_rss_mb": best["ours"]["workers_peak_rss_mb"],
                "peer_value": hf_mb,
                "ratio": round(ours_mb / hf_mb, 3),
                "ratio_is": "ours/peer (main process; workers listed apart), lower is better",
            },
            args.out,
        )
        ours_c, hf_c = compression(
            WORK / f"train_ours_{vocab_size}", WORK / f"train_hf_{vocab_size}", held_out
        )
        emit(
            {
                **common,
                "metric": "held_out_bytes_per_token",
                "held_out": "TinyStories V1 valid head + train head (not in the corpus)",
                "ours": round(ours_c, 4),
                "peer_value": round(hf_c, 4),
                "ratio": round(ours_c / hf_c, 4),
                "ratio_is": "ours/peer, higher is better; target within 1%",
            },
            args.out,
        )


if __name__ == "__main__":
    main()
