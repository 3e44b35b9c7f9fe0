"""nn_core: a Llama-style Transformer language model written from its parts.

Table of contents (one concept per module):
  linear        Linear (bias-free, truncated-normal init)
  embedding     Embedding
  rmsnorm       RMSNorm
  activations   silu, softmax
  feedforward   SwiGLU, SiLUFeedForward, default_d_ff
  rope          RotaryEmbedding
  attention     scaled_dot_product_attention, MultiHeadSelfAttention, attention functions
  kv_cache      KVCache, LayerKVCache
  block         TransformerBlock
  config        ModelConfig
  model         TransformerLM
  loss          cross_entropy
  generate      generate, sample_next_token, top_p_filter
  accounting    count_parameters, forward_flops, training_flops_per_token, memory, mfu
See packages/nn-core/README.md.
"""

from nn_core.accounting import (
    PEAK_FLOPS,
    activation_elements,
    count_parameters,
    forward_flops,
    forward_flops_per_token,
    matmul_parameters,
    max_batch_size,
    mfu,
    training_flops,
    training_flops_per_token,
    training_memory_bytes,
)
from nn_core.activations import silu, softmax
from nn_core.attention import (
    ATTENTION_FUNCTIONS,
    AttentionFn,
    MultiHeadSelfAttention,
    get_attention_fn,
    naive_attention,
    scaled_dot_product_attention,
    sdpa_attention,
)
from nn_core.block import TransformerBlock
from nn_core.config import ModelConfig
from nn_core.embedding import Embedding
from nn_core.feedforward import SiLUFeedForward, SwiGLU, default_d_ff
from nn_core.generate import generate, sample_next_token, top_p_filter
from nn_core.kv_cache import KVCache, LayerKVCache
from nn_core.linear import Linear
from nn_core.loss import cross_entropy
from nn_core.model import TransformerLM
from nn_core.rmsnorm import RMSNorm
from nn_core.rope import RotaryEmbedding

__all__ = [
    "ATTENTION_FUNCTIONS",
    "PEAK_FLOPS",
    "AttentionFn",
    "Embedding",
    "KVCache",
    "LayerKVCache",
    "Linear",
    "ModelConfig",
    "MultiHeadSelfAttention",
    "RMSNorm",
    "RotaryEmbedding",
    "SiLUFeedForward",
    "SwiGLU",
    "TransformerBlock",
    "TransformerLM",
    "activation_elements",
    "count_parameters",
    "cross_entropy",
    "default_d_ff",
    "forward_flops",
    "forward_flops_per_token",
    "generate",
    "get_attention_fn",
    "matmul_parameters",
    "max_batch_size",
    "mfu",
    "naive_attention",
    "sample_next_token",
    "scaled_dot_product_attention",
    "sdpa_attention",
    "silu",
    "softmax",
    "top_p_filter",
    "training_flops",
    "training_flops_per_token",
    "training_memory_bytes",
]
