"""trainer: see packages/trainer/README.md."""

__all__: list[str] = []
