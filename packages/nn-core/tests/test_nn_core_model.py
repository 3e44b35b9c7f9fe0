"""TransformerLM: state-dict names, attention backends, ablations, checkpointing, overfitting."""

import dataclasses

import pytest
import torch
from torch.utils.checkpoint import checkpoint

import nn_core as nc

TINY = nc.ModelConfig(
    vocab_size=61, context_length=24, d_model=32, num_layers=2, num_heads=4, d_ff=48
)


def test_state_dict_uses_the_cs336_names():
    model = nc.TransformerLM(TINY)
    expected = {"token_embeddings.weight", "ln_final.weight", "lm_head.weight"}
    for i in range(TINY.num_layers):
        for name in ("q_proj", "k_proj", "v_proj", "output_proj"):
            expected.add(f"layers.{i}.attn.{name}.weight")
        for name in ("w1", "w2", "w3"):
            expected.add(f"layers.{i}.ffn.{name}.weight")
        expected |= {f"layers.{i}.ln1.weight", f"layers.{i}.ln2.weight"}
    state = model.state_dict()
    assert set(state) == expected
    assert state["lm_head.weight"].shape == (61, 32)
    assert state["layers.0.ffn.w1.weight"].shape == (48, 32)
    assert state["layers.0.ffn.w2.weight"].shape == (32, 48)
    # A state dict round-trips into a fresh model and reproduces its logits exactly.
    other = nc.TransformerLM(TINY)
    other.load_state_dict(state)
    ids = torch.randint(0, 61, (2, 9))
    torch.testing.assert_close(other(ids), model(ids), rtol=0, atol=0)


def test_forward_shapes_and_positions():
    torch.manual_seed(0)
    model = nc.TransformerLM(TINY)
    ids = torch.randint(0, 61, (3, 24))
    logits = model(ids)
    assert logits.shape == (3, 24, 61) and logits.dtype == torch.float32
    # Default positions are 0..T-1; passing them explicitly (per batch row) changes nothing.
    pos = torch.arange(24).expand(3, 24)
    torch.testing.assert_close(model(ids, token_positions=pos), logits)
    # Causal: the prefix's logits do not depend on later tokens.
    torch.testing.assert_close(model(ids[:, :10]), logits[:, :10], rtol=1e-5, atol=1e-5)


def test_attention_backends_agree_in_the_model():
    torch.manual_seed(0)
    model = nc.TransformerLM(TINY)
    ids = torch.randint(0, 61, (2, 24))
    reference = model(ids)
    calls = []

    def counting_attention(q, k, v, is_causal):
        calls.append((q.shape, is_causal))
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=is_causal)

    for fn in ("sdpa", "naive", counting_attention):
        model.set_attention_fn(fn)
        torch.testing.assert_close(model(ids), reference, rtol=1e-5, atol=1e-5)
    assert calls == [((2, 4, 24, 8), True)] * TINY.num_layers  # (batch, heads, seq, head_dim)
    built = nc.TransformerLM(TINY, attention_fn="sdpa")
    assert built.layers[0].attn.attention_fn is nc.sdpa_attention
    with pytest.raises(ValueError, match="attention_fn 'flash' is unknown"):
        nc.TransformerLM(TINY, attention_fn="flash")


def ablation_param_count(cfg: nc.ModelConfig) -> int:
    """Parameters derived by hand, matrix by matrix, for the ablation switches."""
    d, V, L = cfg.d_model, cfg.vocab_size, cfg.num_layers
    attention = 4 * d * d  # W_q, W_k, W_v, W_o
    if cfg.ffn == "swiglu":
        ffn = 3 * d * cfg.d_ff  # W1, W3: (d_ff, d); W2: (d, d_ff)
    else:
        ffn = 2 * d * (4 * d)  # SiLU MLP with d_ff = 4 d
    norms = 2 * d if cfg.norm != "none" else 0  # ln1, ln2 gains
    final_norm = d if cfg.norm != "none" else 0
    lm_head = 0 if cfg.tie_embeddings else d * V
    return V * d + L * (attention + ffn + norms) + final_norm + lm_head  # RoPE has no parameters


ABLATIONS = {
    "baseline": {},
    "post_norm": {"norm": "post"},
    "no_norm": {"norm": "none"},
    "silu_ffn": {"ffn": "silu"},
    "nope": {"pos": "nope"},
    "tied": {"tie_embeddings": True},
}


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_ablations_build_run_and_have_the_derived_parameter_count(name):
    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY, **ABLATIONS[name])
    model = nc.TransformerLM(cfg)
    n = sum(p.numel() for p in model.parameters())
    assert n == ablation_param_count(cfg) == nc.count_parameters(cfg)["total"]
    ids = torch.randint(0, 61, (2, 24))
    loss = nc.cross_entropy(model(ids)[:, :-1], ids[:, 1:])
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_ablation_details():
    silu = nc.TransformerLM(dataclasses.replace(TINY, ffn="silu"))
    assert silu.layers[0].ffn.w1.weight.shape == (4 * 32, 32)
    assert not hasattr(silu.layers[0].ffn, "w3")
    none = nc.TransformerLM(dataclasses.replace(TINY, norm="none"))
    assert none.ln_final is None and not hasattr(none.layers[0], "ln1")
    nope = nc.TransformerLM(dataclasses.replace(TINY, pos="nope"))
    assert nope.layers[0].attn.rope is None
    tied = nc.TransformerLM(dataclasses.replace(TINY, tie_embeddings=True))
    assert "lm_head.weight" not in tied.state_dict()
    # Tied: the logits are the final hidden states against the embedding table.
    ids = torch.randint(0, 61, (1, 5))
    hidden = tied.token_embeddings(ids)
    for layer in tied.layers:
        hidden = layer(hidden)
    logits = tied.ln_final(hidden) @ tied.token_embeddings.weight.T
    torch.testing.assert_close(tied(ids), logits)
    # ... and the smaller init keeps those logits O(1) at the start (std ~ 1, not ~ sqrt(d)).
    big = nc.TransformerLM(dataclasses.replace(TINY, d_model=256, num_heads=4, tie_embeddings=True))
    assert big(torch.randint(0, 61, (4, 24))).std().item() < 2.0


def test_post_norm_block_normalises_its_output():
    torch.manual_seed(0)
    block = nc.TransformerBlock(32, 4, 48, norm="post")
    out = block(torch.randn(2, 7, 32) * 10)
    rms = out.pow(2).mean(-1).sqrt()
    torch.testing.assert_close(rms, torch.ones_like(rms), rtol=1e-4, atol=1e-4)


def test_activation_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = nc.TransformerLM(TINY)
    ids = torch.randint(0, 61, (2, 24))

    def grads():
        model.zero_grad()
        nc.cross_entropy(model(ids)[:, :-1], ids[:, 1:]).backward()
        return [p.grad.clone() for p in model.parameters()]

    plain = grads()
    model.activation_checkpointing = True
    checkpointed = grads()
    for a, b in zip(plain, checkpointed):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # Blocks are plain modules, so a trainer can also wrap them itself.
    model.activation_checkpointing = False
    x = model.token_embeddings(ids)
    out = checkpoint(model.layers[0], x, use_reentrant=False)
    torch.testing.assert_close(out, model.layers[0](x))


def test_compiles_without_graph_breaks():
    torch.manual_seed(0)
    model = nc.TransformerLM(TINY)
    ids = torch.randint(0, 61, (2, 24))
    compiled = torch.compile(model, backend="eager", fullgraph=True)  # fullgraph: breaks raise
    torch.testing.assert_close(compiled(ids), model(ids))


def test_model_in_bfloat16_runs_and_stays_close_to_float32():
    torch.manual_seed(0)
    model = nc.TransformerLM(TINY)
    ids = torch.randint(0, 61, (2, 24))
    reference = model(ids).double()
    logits = model.to(torch.bfloat16)(ids)
    assert logits.dtype == torch.bfloat16
    # Two layers of bf16 rounding (unit roundoff 2^-9) on O(1) logits: a few 1e-2 at most.
    err = (logits.double() - reference).abs().max().item()
    assert err < 0.1, err


def test_overfits_one_batch():
    torch.manual_seed(0)
    cfg = nc.ModelConfig(vocab_size=32, context_length=16, d_model=32, num_layers=2, num_heads=2)
    model = nc.TransformerLM(cfg)
    ids = torch.randint(0, 32, (4, 17))
    x, y = ids[:, :-1], ids[:, 1:]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    for _ in range(300):
        loss = nc.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if loss.item() < 0.05:
            break
    assert loss.item() < 0.1
