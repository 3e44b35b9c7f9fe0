"""python -m bpe train | encode | decode | compare, and their exit codes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from bpe import Tokenizer
from bpe.cli import main


def test_train_encode_decode(real_text_slices, tmp_path, capsys):
    corpus = real_text_slices["held_out"]
    out = tmp_path / "tok"
    args = [
        "train",
        "--input",
        str(corpus),
        "--vocab-size",
        "700",
        "--special-token",
        "<|endoftext|>",
    ]
    assert main([*args, "--out", str(out), "--hf-json", "--no-progress"]) == 0
    assert {p.name for p in out.iterdir()} == {
        "vocab.json", "merges.txt", "special_tokens.json", "tokenizer.json",
    }  # fmt: skip
    tokenizer = Tokenizer.load(out)
    assert tokenizer.vocab_size == 700

    ids_path = tmp_path / "ids.bin"
    args = ["encode", "--tokenizer", str(out), "--input", str(corpus), "--out", str(ids_path)]
    assert main([*args, "--no-progress"]) == 0
    text = corpus.read_text(encoding="utf-8")
    assert np.fromfile(ids_path, dtype=np.uint16).tolist() == tokenizer.encode(text)

    text_path = tmp_path / "decoded.txt"
    args = ["decode", "--tokenizer", str(out), "--input", str(ids_path), "--out", str(text_path)]
    assert main(args) == 0
    assert text_path.read_text(encoding="utf-8") == text


def test_compare_prints_the_lecture_table(real_text_slices, capsys):
    corpus = real_text_slices["held_out"]
    assert main(["compare", "--input", str(corpus), "--vocab-size", "500", "--json"]) == 0
    import json

    rows = {r["tokenizer"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert set(rows) == {"character", "byte", "word", "bpe"}
    assert rows["byte"]["bytes_per_token"] == 1.0 and rows["byte"]["round_trip_exact"]
    assert rows["bpe"]["round_trip_exact"] and rows["bpe"]["bytes_per_token"] > 1.1
    assert rows["word"]["unk_rate"] > 0 and not rows["word"]["round_trip_exact"]


def test_errors_exit_1_with_a_message(tmp_path, capsys):
    missing = str(tmp_path / "missing.txt")
    code = main(["train", "--input", missing, "--vocab-size", "300", "--out", str(tmp_path)])
    assert code == 1 and "missing.txt" in capsys.readouterr().err
    code = main(["encode", "--tokenizer", str(tmp_path / "x"), "--input", missing, "--out", "o"])
    assert code == 1 and "--tokenizer" in capsys.readouterr().err


def test_module_entry_point_usage_error():
    result = subprocess.run(
        [sys.executable, "-m", "bpe", "train"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2 and "--input" in result.stderr
