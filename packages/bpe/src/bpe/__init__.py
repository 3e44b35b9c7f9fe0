"""bpe: see packages/bpe/README.md."""

__all__: list[str] = []
