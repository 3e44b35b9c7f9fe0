"""Parameters, FLOPs per token and memory of a model config, counted from its shapes alone
(no model is built, so `info` answers instantly even for a config that would not fit).

FLOPs follow the usual convention (Kaplan et al. 2020; PaLM appendix B; nanoGPT): a matmul of an
(m, k) by a (k, n) matrix costs 2mkn; training costs 3x the forward (the backward pass computes
gradients for both inputs and weights); attention's two matmuls are counted over the whole
T x T score matrix, as if there were no causal mask, so MFU figures compare with published ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from train_app.config import Config

# Dense bf16 peak of the accelerators MFU is reported against, in FLOP/s (vendor datasheets).
PEAK_FLOPS = {
    "H100": 989e12,  # H100 SXM, bf16 dense
    "H200": 989e12,  # same compute as the H100 SXM
    "A100": 312e12,
}


@dataclass
class ModelCost:
    params: int  # every trainable parameter
    embedding_params: int  # the token embedding table
    non_embedding_params: int  # params - embedding_params (lm_head counts as non-embedding)
    matmul_params: int  # weights that multiply activations: blocks' projections and lm_head
    flops_per_token_forward: int
    flops_per_token_train: int  # forward + backward
    train_memory_bytes: int  # an estimate: weights, grads, AdamW state, activations

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def ffn_width(config: Config) -> int:
    return 4 * config.model.d_model if config.model.ffn == "silu" else config.model.d_ff


def model_cost(config: Config, vocab_size: int | None = None) -> ModelCost:
    m = config.model
    V = vocab_size or config.tokenizer.vocab_size
    d, L, T, F = m.d_model, m.num_layers, m.context_length, ffn_width(config)
    ffn_mats = 3 if m.ffn == "swiglu" else 2  # SwiGLU: w1, w3 (d -> F) and w2 (F -> d)
    per_layer_matmul = 4 * d * d + ffn_mats * d * F  # q, k, v, output projections + FFN
    per_layer_norms = 2 * d if m.norm != "none" else 0
    lm_head = 0 if m.tie_embeddings else V * d
    embedding = V * d
    final_norm = d if m.norm != "none" else 0
    params = embedding + L * (per_layer_matmul + per_layer_norms) + final_norm + lm_head
    matmul_params = L * per_layer_matmul + V * d  # the logits matmul happens tied or not
    attention_flops = 2 * 2 * L * T * d  # q k^T and (scores) v, per token, full T x T
    forward = 2 * matmul_params + attention_flops
    train = 3 * forward

    # Memory while training (fp32 weights; activations at the autocast width, 2 bytes under
    # bf16). Weights + grads + AdamW's two moments: 16 bytes a parameter. Activations, per
    # layer and token, about 34 d + 5 H T values (Korthikanti et al. 2022) with F = 4d; SwiGLU's
    # wider hidden is folded in by scaling the FFN share. Logits: B T V in fp32, about 3 copies
    # (logits, their softmax in the loss, the gradient).
    B = config.train.batch_size // config.train.grad_accum_steps
    act_bytes = 2 if config.system.precision != "fp32" else 4
    ffn_share = (ffn_mats * F) / (2 * 4 * d)
    per_token_layer = (10 + 24 * ffn_share) * d + 5 * m.num_heads * T  # bytes at 2 bytes a value
    activations = B * T * L * per_token_layer * act_bytes / 2  # the formula counts 2-byte values
    logits = 3 * B * T * V * 4
    memory = 16 * params + int(activations) + logits
    return ModelCost(
        params=params,
        embedding_params=embedding,
        non_embedding_params=params - embedding,
        matmul_params=matmul_params,
        flops_per_token_forward=forward,
        flops_per_token_train=train,
        train_memory_bytes=memory,
    )


def peak_flops(device_name: str) -> float | None:
    """The bf16 peak of a CUDA device by its name ('NVIDIA H100 80GB HBM3'), when known."""
    for key, flops in PEAK_FLOPS.items():
        if key in device_name:
            return flops
    return None


def mfu(tokens_per_second: float, flops_per_token_train: int, peak: float | None) -> float | None:
    """Model FLOPs utilisation: the share of the device's peak the training step achieves."""
    if not peak:
        return None
    return tokens_per_second * flops_per_token_train / peak
