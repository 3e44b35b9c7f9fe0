"""Mixed precision: the autocast context for the forward pass and, for fp16, a gradient scaler.

bf16 has fp32's exponent range, so gradients never underflow and no scaler is needed. fp16
(for GPUs without bf16) has a narrow range: the loss is multiplied by a large factor before
backward and the gradients divided by it before the optimizer step; steps whose gradients
overflowed are skipped and the factor shrinks (torch.amp.GradScaler).
"""

from __future__ import annotations

import contextlib

import torch

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context to run forward passes in (parameters stay fp32; matmuls run in low precision)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_DTYPES[precision])


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None
