"""Every random number generator a training step can touch, captured and restored for resume.

Torch's CPU and CUDA generator states are byte tensors (they go into the checkpoint's tensor
section); NumPy's and Python's global states are small tuples of ints (JSON metadata).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def capture_rng_state() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Return (JSON-able states, tensor states) of python, numpy, torch and CUDA generators."""
    kind, keys, pos, has_gauss, cached_gauss = np.random.get_state()
    json_state = {
        "python": random.getstate(),
        "numpy": (kind, keys.tolist(), int(pos), int(has_gauss), float(cached_gauss)),
    }
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{index}"] = state
    return json_state, tensors


def restore_rng_state(json_state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    version, internal, gauss = json_state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached_gauss = json_state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached_gauss))
    torch.set_rng_state(tensors["torch"])
    cuda_states = [tensors[f"cuda.{i}"] for i in range(len(tensors)) if f"cuda.{i}" in tensors]
    if cuda_states and torch.cuda.is_available():
        count = min(len(cuda_states), torch.cuda.device_count())
        for index in range(count):
            torch.cuda.set_rng_state(cuda_states[index], index)
