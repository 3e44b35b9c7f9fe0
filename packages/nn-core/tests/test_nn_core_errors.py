"""Bad input raises a clear error that names the input and what is wrong."""

import dataclasses

import pytest
import torch

import nn_core as nc

CFG = nc.ModelConfig(
    vocab_size=50, context_length=16, d_model=32, num_layers=1, num_heads=4, d_ff=48
)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_heads": 5}, "d_model=32 is not divisible by num_heads=5"),
        ({"d_model": 0}, "d_model must be a positive int"),
        ({"vocab_size": 10.5}, "vocab_size must be a positive int"),
        ({"context_length": -1}, "context_length must be a positive int"),
        ({"d_ff": 0}, "d_ff must be a positive int or None"),
        ({"norm": "layer"}, r"norm='layer'; choose one of \('pre', 'post', 'none'\)"),
        ({"ffn": "gelu"}, "ffn='gelu'"),
        ({"pos": "alibi"}, "pos='alibi'"),
        ({"d_model": 36, "num_heads": 12}, "RoPE needs an even head dim, got 3"),
        ({"rope_theta": 0.0}, "rope_theta must be > 0"),
        ({"tie_embeddings": "yes"}, "tie_embeddings must be a bool"),
    ],
)
def test_model_config_rejects_bad_values(change, message):
    with pytest.raises((ValueError, TypeError), match=message):
        dataclasses.replace(CFG, **change)


def test_odd_head_dim_is_fine_without_rope():
    dataclasses.replace(CFG, d_model=36, num_heads=12, pos="nope")


def test_config_round_trips_through_a_dict():
    assert nc.ModelConfig.from_dict(CFG.to_dict()) == CFG
    with pytest.raises(ValueError, match=r"unknown keys \['n_embd'\]"):
        nc.ModelConfig.from_dict({**CFG.to_dict(), "n_embd": 3})


def test_model_rejects_bad_token_ids():
    model = nc.TransformerLM(CFG)
    with pytest.raises(ValueError, match="sequence length 17 exceeds context_length=16"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(
        ValueError, match=r"token_ids contains id 50, outside the vocabulary \[0, 50\)"
    ):
        model(torch.tensor([[1, 50, 2]]))
    with pytest.raises(ValueError, match="token_ids contains id -1"):
        model(torch.tensor([[1, -1, 2]]))
    with pytest.raises(TypeError, match=r"token_ids must be an integer tensor.*torch.float32"):
        model(torch.zeros(1, 4))
    with pytest.raises(ValueError, match=r"token_ids must be a \(batch, seq\) tensor, got \(4,\)"):
        model(torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="config must be a ModelConfig"):
        nc.TransformerLM({"vocab_size": 50})


def test_kv_cache_overflow_is_reported():
    model = nc.TransformerLM(CFG)
    cache = model.new_kv_cache()
    model(torch.zeros(1, 10, dtype=torch.long), kv_cache=cache)
    with pytest.raises(ValueError, match="sequence length 17 exceeds context_length=16"):
        model(torch.zeros(1, 7, dtype=torch.long), kv_cache=cache)


def test_layers_reject_bad_shapes_and_dtypes():
    with pytest.raises(ValueError, match="d_model=30 is not divisible by num_heads=4"):
        nc.MultiHeadSelfAttention(30, 4)
    with pytest.raises(ValueError, match="in_features must be a positive int"):
        nc.Linear(0, 3)
    with pytest.raises(ValueError, match="input's last dim is 5, expected in_features=4"):
        nc.Linear(4, 3)(torch.randn(2, 5))
    with pytest.raises(ValueError, match="RMSNorm: input's last dim is 7, expected 8"):
        nc.RMSNorm(8)(torch.randn(2, 7))
    with pytest.raises(ValueError, match="d_k must be a positive even int"):
        nc.RotaryEmbedding(1e4, 7, 16)
    with pytest.raises(ValueError, match="position 16 is beyond max_seq_len=16"):
        nc.RotaryEmbedding(1e4, 8, 16)(torch.randn(3, 8), torch.tensor([0, 5, 16]))
    with pytest.raises(TypeError, match="token_positions must be integers"):
        nc.RotaryEmbedding(1e4, 8, 16)(torch.randn(3, 8), torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(TypeError, match="mask must be a boolean tensor"):
        q = torch.randn(2, 3, 4)
        nc.scaled_dot_product_attention(q, q, q, torch.ones(3, 3))
    with pytest.raises(ValueError, match="q's head dim 4 != k's head dim 5"):
        nc.scaled_dot_product_attention(torch.randn(2, 4), torch.randn(2, 5), torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"expected input \(\.\.\., seq, 8\)"):
        nc.MultiHeadSelfAttention(8, 2)(torch.randn(3, 6))


def test_cross_entropy_rejects_bad_targets():
    logits = torch.randn(2, 3, 10)
    with pytest.raises(
        ValueError, match=r"targets contains id 10, outside the vocabulary \[0, 10\)"
    ):
        nc.cross_entropy(logits, torch.full((2, 3), 10))
    with pytest.raises(TypeError, match="targets must be an integer tensor"):
        nc.cross_entropy(logits, torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"logits \(2, 3, 10\) must be targets \(2,\)"):
        nc.cross_entropy(logits, torch.zeros(2, dtype=torch.long))
