"""Resource accounting for a TransformerLM: parameters, FLOPs, memory and MFU (CS336 lecture 2).

Counting rules (those of CS336's ``transformer_accounting`` problem):
- A matmul of (m, n) @ (n, p) costs 2 m n p FLOPs (one multiply and one add per term).
- Only matmuls are counted. RMSNorm, RoPE, SiLU, softmax and residual adds are O(T d) per layer
  against O(T d^2) for the projections, so they change the total by well under 1 %.
- Attention scores are counted for the full T x T matrix, which is what a masked matmul
  computes; a causal kernel that skips the upper triangle (FlashAttention) does about half.
- Backward costs twice the forward (a gradient for the input and one for the weight of every
  matmul), so a training step is 3x the forward: 6 N + 12 L T d per token (PaLM, appendix B).
"""

from __future__ import annotations

from nn_core.config import ModelConfig

# Dense (non-sparse) peak throughput of common accelerators, FLOP/s, from vendor datasheets.
PEAK_FLOPS: dict[str, float] = {
    "h100_sxm_bf16": 989.4e12,
    "h100_sxm_tf32": 494.7e12,
    "h100_sxm_fp32": 66.9e12,  # without tensor cores
    "h100_pcie_bf16": 756.5e12,
    "h100_pcie_tf32": 378e12,
    "h100_pcie_fp32": 51.2e12,
    "a100_bf16": 312e12,
    "a100_tf32": 156e12,
    "a100_fp32": 19.5e12,
}


def count_parameters(config: ModelConfig) -> dict[str, int]:
    """Trainable parameters by component, from the config alone (no model is built).

    Keys: token_embeddings, attention, ffn, norms (ln1 + ln2 of all layers), ln_final, lm_head,
    per_layer, total, non_embedding (total minus the token embedding table).
    """
    d, L, V = config.d_model, config.num_layers, config.vocab_size
    d_ff = config.ffn_dim
    ffn_matrices = 3 if config.ffn == "swiglu" else 2  # SwiGLU: w1, w2, w3; SiLU MLP: w1, w2
    counts = {
        "token_embeddings": V * d,
        "attention": L * 4 * d * d,  # q, k, v, output projections
        "ffn": L * ffn_matrices * d * d_ff,
        "norms": L * 2 * d if config.norm != "none" else 0,
        "ln_final": d if config.norm != "none" else 0,
        "lm_head": 0 if config.tie_embeddings else d * V,
    }
    counts["per_layer"] = (counts["attention"] + counts["ffn"] + counts["norms"]) // L
    counts["total"] = sum(v for k, v in counts.items() if k != "per_layer")
    counts["non_embedding"] = counts["total"] - counts["token_embeddings"]
    return counts


def matmul_parameters(config: ModelConfig) -> int:
    """N in "6 N": weights that take part in a matmul per token (lm_head counts even when tied).

    The embedding lookup is a gather, not a matmul; norm gains are element-wise.
    """
    counts = count_parameters(config)
    return counts["attention"] + counts["ffn"] + config.d_model * config.vocab_size


def forward_flops(
    config: ModelConfig, seq_len: int | None = None, batch_size: int = 1
) -> dict[str, int]:
    """Matmul FLOPs of one forward pass over ``batch_size`` sequences of ``seq_len`` tokens.

    seq_len defaults to config.context_length. Keys: attention_qkv (Q, K, V projections),
    attention_scores (Q K^T), attention_values (softmax(.) V), attention_output (output
    projection), ffn, lm_head, total; all layers summed.
    """
    T = config.context_length if seq_len is None else seq_len
    if not 0 < T <= config.context_length:
        raise ValueError(f"seq_len={T} must be in [1, context_length={config.context_length}]")
    d, L, V, d_ff = config.d_model, config.num_layers, config.vocab_size, config.ffn_dim
    ffn_matrices = 3 if config.ffn == "swiglu" else 2
    B = batch_size
    flops = {
        "attention_qkv": L * 3 * 2 * B * T * d * d,  # three (T, d) @ (d, d)
        "attention_scores": L * 2 * B * T * T * d,  # per head (T, hd) @ (hd, T), over d/hd heads
        "attention_values": L * 2 * B * T * T * d,  # per head (T, T) @ (T, hd)
        "attention_output": L * 2 * B * T * d * d,  # (T, d) @ (d, d)
        "ffn": L * ffn_matrices * 2 * B * T * d * d_ff,  # (T, d) @ (d, d_ff) and back
        "lm_head": 2 * B * T * d * V,  # (T, d) @ (d, V)
    }
    flops["total"] = sum(flops.values())
    return flops


def forward_flops_per_token(config: ModelConfig, seq_len: int | None = None) -> float:
    """Forward matmul FLOPs per token at sequence length ``seq_len`` (default: context_length)."""
    T = config.context_length if seq_len is None else seq_len
    return forward_flops(config, T)["total"] / T


def training_flops_per_token(config: ModelConfig, seq_len: int | None = None) -> float:
    """Forward + backward FLOPs per token: 3 x forward = 6 N + 12 L T d (N = matmul_parameters)."""
    return 3 * forward_flops_per_token(config, seq_len)


def training_flops(config: ModelConfig, num_tokens: int, seq_len: int | None = None) -> float:
    """FLOPs to train on ``num_tokens`` tokens at sequence length ``seq_len``."""
    return num_tokens * training_flops_per_token(config, seq_len)


def activation_elements(config: ModelConfig, batch_size: int, seq_len: int | None = None) -> int:
    """Activations kept for backward, in elements, per CS336's adamwAccounting component list.

    Per layer: the RMSNorm outputs, Q, K and V, the scores Q K^T and their softmax
    (heads x T x T each), the attention output and its projection, and the FFN's hidden tensors
    (SwiGLU: W1 x, W3 x, SiLU(W1 x), the gated product; SiLU MLP: W1 x, SiLU(W1 x)) and its
    output. Then the final RMSNorm, the logits and the cross-entropy's softmax. An estimate:
    a real framework also keeps inputs of element-wise ops and may recompute some of these.
    """
    T = config.context_length if seq_len is None else seq_len
    d, H, L, V, d_ff = (
        config.d_model,
        config.num_heads,
        config.num_layers,
        config.vocab_size,
        config.ffn_dim,
    )
    BT = batch_size * T
    norms = 2 * BT * d if config.norm != "none" else 0
    attention = 3 * BT * d + 2 * batch_size * H * T * T + BT * d + BT * d
    ffn_hidden = 4 if config.ffn == "swiglu" else 2
    ffn = ffn_hidden * BT * d_ff + BT * d
    final_norm = BT * d if config.norm != "none" else 0
    return L * (norms + attention + ffn) + final_norm + BT * V + BT * V


def training_memory_bytes(
    config: ModelConfig,
    batch_size: int,
    seq_len: int | None = None,
    bytes_per_param: int = 4,
    bytes_per_grad: int = 4,
    bytes_per_optimizer_value: int = 4,
    bytes_per_activation: int = 4,
) -> dict[str, int]:
    """Peak memory of an AdamW training step, by part (defaults: everything in float32).

    parameters + gradients (one per parameter) + AdamW state (m and v: two per parameter)
    + activations (``activation_elements``). Excludes temporary buffers and allocator slack.
    """
    n = count_parameters(config)["total"]
    memory = {
        "parameters": n * bytes_per_param,
        "gradients": n * bytes_per_grad,
        "optimizer_state": 2 * n * bytes_per_optimizer_value,
        "activations": activation_elements(config, batch_size, seq_len) * bytes_per_activation,
    }
    memory["total"] = sum(memory.values())
    return memory


def max_batch_size(
    config: ModelConfig, memory_bytes: float, seq_len: int | None = None, **bytes_per
):
    """Largest batch whose ``training_memory_bytes`` fits in ``memory_bytes`` (0 if none does).

    Memory is a + b * batch_size (activations grow with the batch, the rest does not), so this is
    floor((memory - a) / b). ``bytes_per`` passes through to ``training_memory_bytes``.
    """
    fixed = training_memory_bytes(config, 1, seq_len, **bytes_per)
    per_sequence = fixed["activations"]
    available = memory_bytes - (fixed["total"] - per_sequence)
    return max(0, int(available // per_sequence))


def mfu(
    tokens_per_second: float,
    config: ModelConfig,
    peak_flops_per_second: float,
    seq_len: int | None = None,
) -> float:
    """Model FLOPs utilisation: achieved training FLOP/s over the hardware's peak FLOP/s.

    Counts only the model's FLOPs (not recomputation from activation checkpointing), so it is
    comparable across implementations (Chowdhery et al., 2022).
    """
    if not peak_flops_per_second > 0:
        raise ValueError(f"peak_flops_per_second must be > 0, got {peak_flops_per_second!r}")
    return tokens_per_second * training_flops_per_token(config, seq_len) / peak_flops_per_second
