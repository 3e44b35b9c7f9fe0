"""kernels_triton: FlashAttention-2 in Triton (forward and backward) and its PyTorch reference.

    flash_attention(q, k, v, is_causal=False)   Triton on CUDA, tiled PyTorch elsewhere
    FlashAttentionTriton                         autograd.Function, Triton kernels
    FlashAttentionTorch                          autograd.Function, tiled pure PyTorch

See packages/kernels-triton/README.md.
"""

from kernels_triton.attention_inputs import check_attention_inputs
from kernels_triton.dispatch import flash_attention
from kernels_triton.flash_attention_torch import FlashAttentionTorch

try:
    from kernels_triton.flash_attention_triton import FlashAttentionTriton
except (
    ImportError
) as _triton_missing:  # no Triton wheel for this platform: the CPU path still works
    _reason = str(_triton_missing)

    class FlashAttentionTriton:  # type: ignore[no-redef]
        """Placeholder: Triton is not installed on this machine."""

        @staticmethod
        def apply(*args, **kwargs):
            raise RuntimeError(
                f"FlashAttentionTriton needs Triton, which failed to import: {_reason}"
            )


__all__ = [
    "FlashAttentionTorch",
    "FlashAttentionTriton",
    "check_attention_inputs",
    "flash_attention",
]
