"""kernels_triton: see packages/kernels-triton/README.md."""

__all__: list[str] = []
