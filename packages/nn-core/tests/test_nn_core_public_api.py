"""The package __init__ is the table of contents: every exported name exists."""

import nn_core


def test_every_name_in_all_exists():
    missing = [name for name in nn_core.__all__ if not hasattr(nn_core, name)]
    assert not missing
    for name in ("Linear", "Embedding", "RMSNorm", "SwiGLU", "RotaryEmbedding", "silu", "softmax"):
        assert name in nn_core.__all__
    for name in ("scaled_dot_product_attention", "MultiHeadSelfAttention", "TransformerBlock"):
        assert name in nn_core.__all__
    for name in ("ModelConfig", "TransformerLM", "cross_entropy", "generate"):
        assert name in nn_core.__all__
