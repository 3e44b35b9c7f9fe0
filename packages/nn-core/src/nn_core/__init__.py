"""nn_core: see packages/nn-core/README.md."""

__all__: list[str] = []
