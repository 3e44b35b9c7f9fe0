"""bpe: byte-level BPE tokenizers, trained and run in pure Python (see README.md).

vocab, merges = train_bpe("corpus.txt", 10_000, ["<|endoftext|>"])
tok = Tokenizer(vocab, merges, ["<|endoftext|>"])
ids = tok.encode("Hello world<|endoftext|>")
tok.save("tokenizer/"); tok = Tokenizer.load("tokenizer/")
"""

from bpe.formats import bytes_to_unicode
from bpe.pretokenize import GPT2_PATTERN, count_pretokens
from bpe.simple_tokenizers import (
    ByteTokenizer,
    CharacterTokenizer,
    TokenizerLike,
    WordTokenizer,
    compression_ratio,
)
from bpe.tokenizer import Tokenizer
from bpe.train import train_bpe

__all__ = [
    "GPT2_PATTERN",
    "ByteTokenizer",
    "CharacterTokenizer",
    "Tokenizer",
    "TokenizerLike",
    "WordTokenizer",
    "bytes_to_unicode",
    "compression_ratio",
    "count_pretokens",
    "train_bpe",
]
