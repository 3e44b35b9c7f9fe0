"""Sampling: KV cache = recomputation, temperature, nucleus (top-p), end-of-sequence, seeds."""

import math

import pytest
import torch

import nn_core as nc

CFG = nc.ModelConfig(
    vocab_size=53, context_length=24, d_model=32, num_layers=2, num_heads=4, d_ff=48
)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = nc.TransformerLM(CFG)
    # Sharpen the output a little so greedy decoding is not decided by rounding-level gaps.
    with torch.no_grad():
        m.lm_head.weight.mul_(4)
    return m


def seeded(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(("temperature", "top_p"), [(0.0, 1.0), (1.0, 1.0), (0.7, 0.9), (1.3, 0.5)])
def test_kv_cache_gives_the_same_tokens_as_recomputing(model, temperature, top_p):
    prompt = [5, 17, 3, 41, 8]
    # 30 new tokens from a 5-token prompt: runs past context_length=24, so the sliding-window
    # path is covered too.
    kwargs = dict(max_new_tokens=30, temperature=temperature, top_p=top_p)
    cached = nc.generate(model, prompt, generator=seeded(1), use_kv_cache=True, **kwargs)
    uncached = nc.generate(model, prompt, generator=seeded(1), use_kv_cache=False, **kwargs)
    assert len(cached) == 30
    assert cached == uncached


def test_kv_cache_logits_match_full_forward(model):
    ids = torch.randint(0, 53, (2, 20))
    full = model(ids)
    cache = model.new_kv_cache(batch_size=2)
    pieces = [model(ids[:, :7], kv_cache=cache)]  # prefill
    pieces += [model(ids[:, t : t + 1], kv_cache=cache) for t in range(7, 12)]  # one at a time
    pieces.append(model(ids[:, 12:], kv_cache=cache))  # a chunk after the prefix
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=1e-5, atol=1e-5)
    assert cache.length == 20


def test_each_cached_step_feeds_one_position(model):
    seen = []
    handle = model.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.append(args[0].shape[1]), with_kwargs=True
    )
    try:
        nc.generate(model, [1, 2, 3, 4], max_new_tokens=6, temperature=0.0)
    finally:
        handle.remove()
    assert seen == [4, 1, 1, 1, 1, 1]


def test_temperature_zero_is_argmax(model):
    prompt = [7, 7, 1]
    greedy = nc.generate(model, prompt, max_new_tokens=10, temperature=0.0)
    ids = list(prompt)
    for _ in range(10):
        ids.append(int(model(torch.tensor([ids]))[0, -1].argmax()))
    assert greedy == ids[len(prompt) :]
    # A vanishing temperature turns sampling into argmax too.
    cold = nc.generate(model, prompt, max_new_tokens=10, temperature=1e-4, generator=seeded(3))
    assert cold == greedy


def test_top_p_never_samples_outside_the_nucleus():
    probs = torch.tensor([0.05, 0.5, 0.1, 0.2, 0.15])  # sorted: 0.5, 0.2, 0.15 | 0.1, 0.05
    logits = probs.log().expand(20_000, 5)  # many independent draws at once
    draws = nc.sample_next_token(logits, temperature=1.0, top_p=0.8, generator=seeded(0))
    counts = torch.bincount(draws, minlength=5).double()
    assert counts[0] == 0 and counts[2] == 0  # outside the nucleus: never
    nucleus = torch.tensor([0.0, 0.5, 0.0, 0.2, 0.15]) / 0.85
    expected = nucleus * 20_000
    sigma = (20_000 * nucleus * (1 - nucleus)).sqrt()
    assert ((counts - expected).abs() <= 5 * sigma + 1e-9).all(), counts
    # top_p no larger than the top token's mass keeps only that token.
    draws = nc.sample_next_token(probs.log().expand(1000, 5), top_p=0.5, generator=seeded(1))
    assert (draws == 1).all()


def test_top_p_filter_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([[0.1, 0.4, 0.3, 0.2]])
    kept = nc.top_p_filter(probs, 0.65)  # 0.4 + 0.3 = 0.7 >= 0.65
    torch.testing.assert_close(kept, torch.tensor([[0.0, 4 / 7, 3 / 7, 0.0]]))
    torch.testing.assert_close(nc.top_p_filter(probs, 1.0), probs)


def test_temperature_scales_the_distribution():
    logits = torch.tensor([1.0, 2.0, 0.0]).expand(40_000, 3)
    draws = nc.sample_next_token(logits, temperature=2.0, generator=seeded(0))
    freq = torch.bincount(draws, minlength=3).double() / 40_000
    expected = torch.softmax(torch.tensor([1.0, 2.0, 0.0], dtype=torch.float64) / 2.0, 0)
    assert (freq - expected).abs().max() < 5 * math.sqrt(0.25 / 40_000)


def test_stops_at_eos_and_includes_it(model):
    prompt = [2, 9]
    free = nc.generate(model, prompt, max_new_tokens=15, temperature=0.0)
    eos = free[4]
    first = free.index(eos)
    stopped = nc.generate(model, prompt, max_new_tokens=15, temperature=0.0, eos_id=eos)
    assert stopped == free[: first + 1]


def test_generator_makes_sampling_reproducible(model):
    a = nc.generate(model, [1], max_new_tokens=20, generator=seeded(5))
    b = nc.generate(model, [1], max_new_tokens=20, generator=seeded(5))
    c = nc.generate(model, [1], max_new_tokens=20, generator=seeded(6))
    assert a == b
    assert a != c


def test_generate_restores_training_mode_and_accepts_tensors(model):
    model.train()
    out = nc.generate(model, torch.tensor([3, 4]), max_new_tokens=3, temperature=0.0)
    assert model.training
    assert len(out) == 3 and all(0 <= t < 53 for t in out)
    model.eval()


def test_generate_rejects_bad_arguments(model):
    with pytest.raises(ValueError, match="top_p"):
        nc.generate(model, [1], 3, top_p=0.0)
    with pytest.raises(ValueError, match="temperature"):
        nc.generate(model, [1], 3, temperature=-1.0)
    with pytest.raises(ValueError, match="prompt_ids is empty"):
        nc.generate(model, [], 3)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        nc.generate(model, [1, 53], 3)
