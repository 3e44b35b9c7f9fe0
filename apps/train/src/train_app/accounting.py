"""Parameters, FLOPs per token and training memory of a run's config (for `info`, MFU and the
console), from nn_core's accounting: counted from the shapes alone, so `info` answers at once
even for a model that would not fit this machine."""

from __future__ import annotations

from dataclasses import dataclass

from train_app.config import Config


@dataclass
class ModelCost:
    params: int  # every trainable parameter
    embedding_params: int  # the token embedding table
    non_embedding_params: int  # params - embedding_params (lm_head counts as non-embedding)
    flops_per_token_train: float  # forward + backward: 6 N + 12 L T d
    memory: dict[str, int]  # bytes by part: parameters, gradients, optimizer_state, activations

    @property
    def train_memory_bytes(self) -> int:
        return self.memory["total"]


def model_cost(config: Config, vocab_size: int | None = None) -> ModelCost:
    """Counts for the config's model with `vocab_size` (default: the tokenizer's target size)."""
    import nn_core
    from train_app.training import model_config  # one place builds nn_core.ModelConfig

    mc = model_config(config, vocab_size or config.tokenizer.vocab_size)
    counts = nn_core.count_parameters(mc)
    micro_batch = config.train.batch_size // config.train.grad_accum_steps
    # fp32 weights, gradients and AdamW moments; activations at the autocast width.
    act_bytes = 4 if config.system.precision == "fp32" else 2
    memory = nn_core.training_memory_bytes(mc, micro_batch, bytes_per_activation=act_bytes)
    return ModelCost(
        params=counts["total"],
        embedding_params=counts["token_embeddings"],
        non_embedding_params=counts["non_embedding"],
        flops_per_token_train=nn_core.training_flops_per_token(mc),
        memory=memory,
    )


def peak_flops(device_name: str, precision: str = "bf16") -> float | None:
    """Dense peak FLOP/s of a CUDA device by its name ('NVIDIA H100 80GB HBM3'), when known."""
    import nn_core

    name = device_name.upper()
    kind = "bf16" if precision in ("bf16", "fp16") else "tf32"
    if "H100" in name or "H200" in name:  # the H200 has the H100 SXM's compute
        key = f"h100_pcie_{kind}" if "PCIE" in name else f"h100_sxm_{kind}"
        return nn_core.PEAK_FLOPS.get(key)
    if "A100" in name:
        return nn_core.PEAK_FLOPS.get(f"a100_{kind}")
    return None
