"""optim: see packages/optim/README.md."""

__all__: list[str] = []
