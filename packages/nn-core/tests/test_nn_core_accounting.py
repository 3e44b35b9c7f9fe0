"""Accounting against hand-derived GPT-2 figures and against torch's own FLOP counter."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import nn_core as nc


def gpt2(d_model, num_layers, num_heads):
    # CS336 transformer_accounting: GPT-2 shapes with our architecture (SwiGLU, d_ff = 4 d_model).
    return nc.ModelConfig(
        vocab_size=50_257,
        context_length=1024,
        d_model=d_model,
        num_layers=num_layers,
        num_heads=num_heads,
        d_ff=4 * d_model,
    )


GPT2 = {
    "small": gpt2(768, 12, 12),
    "medium": gpt2(1024, 24, 16),
    "large": gpt2(1280, 36, 20),
    "xl": gpt2(1600, 48, 25),
}
CS336_17M = nc.ModelConfig(
    vocab_size=10_000, context_length=256, d_model=512, num_layers=4, num_heads=16, d_ff=1344
)

# Worked out by hand (2 m n p FLOPs per matmul, T = 1024, V = 50257, d_ff = 4 d), e.g. for XL:
#   parameters: 2 V d (embedding + lm_head) + L (4 d^2 + 3 d d_ff + 2 d) + d
#             = 160,822,400 + 48 * 40,963,200 + 1,600 = 2,127,057,600
#   attention projections (Q, K, V, O): L * 4 * 2 T d^2       = 1,006,632,960,000
#   Q K^T and attention-weighted V:     L * 2 * 2 T^2 d       =   322,122,547,200
#   SwiGLU (W1, W3, W2):                L * 3 * 2 T d d_ff    = 3,019,898,880,000
#   lm_head:                            2 T d V               =   164,682,137,600
HAND = {
    "small": (190_460_160, 57_982_058_496, 38_654_705_664, 173_946_175_488, 79_047_426_048),
    "medium": (505_629_696, 206_158_430_208, 103_079_215_104, 618_475_290_624, 105_396_568_064),
    "large": (1_072_469_760, 483_183_820_800, 193_273_528_320, 1_449_551_462_400, 131_745_710_080),
    "xl": (2_127_057_600, 1_006_632_960_000, 322_122_547_200, 3_019_898_880_000, 164_682_137_600),
}


@pytest.mark.parametrize("name", list(GPT2))
def test_gpt2_parameters_and_forward_flops_match_hand_derivation(name):
    params, attn_proj, attn_scores, ffn, lm_head = HAND[name]
    cfg = GPT2[name]
    assert nc.count_parameters(cfg)["total"] == params
    flops = nc.forward_flops(cfg)
    assert flops["attention_qkv"] + flops["attention_output"] == attn_proj
    assert flops["attention_scores"] + flops["attention_values"] == attn_scores
    assert flops["ffn"] == ffn
    assert flops["lm_head"] == lm_head
    assert flops["total"] == attn_proj + attn_scores + ffn + lm_head


def test_gpt2_xl_headline_figures():
    cfg = GPT2["xl"]
    assert nc.count_parameters(cfg)["total"] * 4 / 1e9 == pytest.approx(8.508, abs=1e-3)  # GB fp32
    assert nc.forward_flops(cfg)["total"] == 4_513_336_524_800  # ~4.51 TFLOPs per 1024 tokens
    # FFN dominates; its share grows with size while the lm_head's shrinks.
    shares = {k: nc.forward_flops(c)["ffn"] / nc.forward_flops(c)["total"] for k, c in GPT2.items()}
    assert shares["small"] < shares["medium"] < shares["large"] < shares["xl"]
    # At 16,384 tokens the T^2 attention terms take over a much larger share.
    long = nc.ModelConfig(**{**cfg.to_dict(), "context_length": 16_384})
    f = nc.forward_flops(long)
    # 48 (8 T d^2 + 4 T^2 d + 6 T d d_ff) + 2 T d V at T = 16384
    assert f["total"] == 149_522_795_724_800  # 33x the FLOPs for 16x the tokens
    assert (f["attention_scores"] + f["attention_values"]) / f["total"] == pytest.approx(
        0.5515, abs=1e-4
    )


def test_cs336_17m_config():
    counts = nc.count_parameters(CS336_17M)
    # 2 * 10000 * 512 + 4 * (4 * 512^2 + 3 * 512 * 1344 + 2 * 512) + 512
    assert counts["total"] == 22_696_448
    assert counts["non_embedding"] == 22_696_448 - 5_120_000
    assert counts["per_layer"] == 3_113_984
    # forward at T = 256: 4 * (8 T d^2 + 4 T^2 d + 6 T d d_ff) + 2 T d V
    assert (
        nc.forward_flops(CS336_17M)["total"]
        == 4 * (8 * 256 * 512**2 + 4 * 256**2 * 512 + 6 * 256 * 512 * 1344) + 2 * 256 * 512 * 10_000
    )


@pytest.mark.parametrize("name", ["small", "xl"])
def test_parameter_count_matches_a_built_model(name):
    # Built on the meta device: shapes only, no memory, so even XL is instant.
    model = nc.TransformerLM(GPT2[name], device="meta")
    assert model.num_parameters() == nc.count_parameters(GPT2[name])["total"]


@pytest.mark.parametrize("config", [GPT2["small"], CS336_17M], ids=["gpt2-small", "cs336-17m"])
def test_forward_flops_match_torch_flop_counter(config):
    model = nc.TransformerLM(config, device="meta")
    ids = torch.zeros(2, config.context_length, dtype=torch.long, device="meta")
    with FlopCounterMode(display=False) as counter:
        model(ids)
    assert counter.get_total_flops() == nc.forward_flops(config, batch_size=2)["total"]


def test_training_flops_are_three_forwards_and_6n_plus_attention():
    cfg = nc.ModelConfig(vocab_size=97, context_length=32, d_model=64, num_layers=2, num_heads=4)
    model = nc.TransformerLM(cfg, device="meta")
    ids = torch.zeros(3, 32, dtype=torch.long, device="meta")
    with FlopCounterMode(display=False) as counter:
        model(ids).sum().backward()
    per_token = nc.training_flops_per_token(cfg)
    assert counter.get_total_flops() == 3 * 32 * per_token
    n = nc.matmul_parameters(cfg)
    assert per_token == 6 * n + 12 * cfg.num_layers * 32 * cfg.d_model  # PaLM's formula
    assert nc.training_flops(cfg, 1_000) == 1_000 * per_token


def test_memory_accounting():
    cfg = GPT2["xl"]
    n = 2_127_057_600
    mem = nc.training_memory_bytes(cfg, batch_size=1)
    assert mem["parameters"] == mem["gradients"] == 4 * n
    assert mem["optimizer_state"] == 8 * n
    # Activations for one sequence, per layer (T=1024, d=1600, H=25, d_ff=6400):
    # 2Td (norms) + 3Td (QKV) + 2HT^2 (scores, softmax) + 2Td (attn out, proj) + 4T d_ff + Td,
    # plus Td (final norm) + 2TV (logits, softmax).
    T, d, H, f, V = 1024, 1600, 25, 6400, 50_257
    per_layer = 8 * T * d + 2 * H * T * T + 4 * T * f
    assert mem["activations"] == 4 * (48 * per_layer + T * d + 2 * T * V)
    assert mem["total"] == sum(v for k, v in mem.items() if k != "total")
    # Activations scale linearly with the batch; the rest does not.
    mem8 = nc.training_memory_bytes(cfg, batch_size=8)
    assert mem8["activations"] == 8 * mem["activations"]
    assert mem8["parameters"] == mem["parameters"]


def test_max_batch_size():
    cfg = GPT2["xl"]
    mem = nc.training_memory_bytes(cfg, batch_size=1)
    fixed = mem["total"] - mem["activations"]
    # fixed: 16 bytes per parameter (weights, grads, m, v) = 34.0 GB; each sequence adds 18.0 GB.
    assert fixed == 16 * 2_127_057_600
    assert nc.max_batch_size(cfg, 80e9) == int((80e9 - fixed) // mem["activations"]) == 2
    assert (
        nc.training_memory_bytes(cfg, 2)["total"]
        <= 80e9
        < nc.training_memory_bytes(cfg, 3)["total"]
    )
    assert nc.max_batch_size(cfg, 1e9) == 0  # not even the weights fit


def test_mfu():
    cfg = CS336_17M
    per_token = nc.training_flops_per_token(cfg)
    # Exactly half the peak: tokens/s chosen so that achieved FLOP/s = peak / 2.
    peak = nc.PEAK_FLOPS["h100_sxm_bf16"]
    assert nc.mfu(peak / 2 / per_token, cfg, peak) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="peak_flops_per_second must be > 0"):
        nc.mfu(1.0, cfg, 0.0)
