"""Command line of `uv run apps/train` (placeholder until the pipeline lands)."""

from __future__ import annotations

import argparse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uv run apps/train",
        description="Train a BPE tokenizer and a small Transformer LM on raw text, then sample.",
    )
    sub = parser.add_subparsers(dest="command")
    for name, help_text in [
        ("tokenize", "train the BPE tokenizer and encode train/val token files"),
        ("train", "train the model on a tokenized run directory"),
        ("generate", "sample text from a trained run"),
        ("resume", "continue a run from its latest checkpoint"),
        ("info", "parameters, FLOPs/token and memory for a config"),
    ]:
        sub.add_parser(name, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    print(f"apps/train: the pipeline is not built yet (command={args.command!r}).")
    return 0
