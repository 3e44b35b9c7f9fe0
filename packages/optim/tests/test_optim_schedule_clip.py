"""cosine_lr, clip_grad_norm_ and weight_decay_param_groups."""

import itertools
import math

import pytest
import torch

import optim


def test_cosine_lr_matches_the_cs336_definition():
    max_lr, min_lr, tw, tc = 1.0, 0.1, 7, 21
    # The CS336 reference values for these arguments (t = 0 .. 24).
    expected = [
        0, 0.14285714285714285, 0.2857142857142857, 0.42857142857142855, 0.5714285714285714,
        0.7142857142857143, 0.8571428571428571, 1.0, 0.9887175604818206, 0.9554359905560885,
        0.9018241671106134, 0.8305704108364301, 0.7452476826029011, 0.6501344202803414,
        0.55, 0.44986557971965857, 0.3547523173970989, 0.26942958916356996,
        0.19817583288938662, 0.14456400944391146, 0.11128243951817937, 0.1, 0.1, 0.1, 0.1,
    ]  # fmt: skip
    got = [optim.cosine_lr(t, max_lr, min_lr, tw, tc) for t in range(25)]
    assert got == pytest.approx(expected, abs=1e-12)


def test_cosine_lr_shape():
    lrs = [optim.cosine_lr(t, 3e-4, 3e-5, 100, 1000) for t in range(1200)]
    assert lrs[0] == 0.0 and lrs[100] == 3e-4 and lrs[1000] == pytest.approx(3e-5)
    assert all(a < b for a, b in itertools.pairwise(lrs[:101]))  # warm-up rises
    assert all(a >= b for a, b in itertools.pairwise(lrs[100:1001]))  # decay falls
    assert set(lrs[1001:]) == {3e-5}  # flat minimum after the cycle
    assert lrs[550] == pytest.approx(3e-5 + 0.5 * (3e-4 - 3e-5))  # halfway: the midpoint


def test_cosine_lr_edge_cases():
    assert optim.cosine_lr(0, 1.0, 0.1, 0, 10) == 1.0  # no warm-up
    assert optim.cosine_lr(5, 1.0, 0.1, 5, 5) == 1.0  # zero-length cycle
    assert optim.cosine_lr(6, 1.0, 0.1, 5, 5) == 0.1
    with pytest.raises(ValueError, match="warmup_iters <= cosine_cycle_iters"):
        optim.cosine_lr(0, 1.0, 0.1, 10, 5)
    with pytest.raises(ValueError, match="t must be >= 0"):
        optim.cosine_lr(-1, 1.0, 0.1, 1, 5)


def grads_of(seed, with_none=False):
    g = torch.Generator().manual_seed(seed)
    params = [torch.zeros(s, requires_grad=True) for s in [(4, 5), (7,), (2, 3, 2)]]
    for p in params:
        p.grad = torch.randn(p.shape, generator=g) * 3
    if with_none:
        params.append(torch.zeros(3, requires_grad=True))  # no gradient: skipped
    return params


def test_clip_grad_norm_matches_torch_and_returns_the_pre_clip_norm():
    ours, theirs = grads_of(0, with_none=True), grads_of(0, with_none=True)
    norm = optim.clip_grad_norm_(ours, 1.0)
    ref_norm = torch.nn.utils.clip_grad_norm_(theirs, 1.0)  # also eps = 1e-6
    torch.testing.assert_close(norm, ref_norm)
    expected = math.sqrt(sum((p.grad.double() ** 2).sum().item() for p in grads_of(0)))
    assert norm.item() == pytest.approx(expected, rel=1e-6)
    for a, b in zip(ours, theirs):
        if a.grad is None:
            assert b.grad is None
        else:
            torch.testing.assert_close(a.grad, b.grad)
    clipped = math.sqrt(sum((p.grad.double() ** 2).sum().item() for p in ours[:3]))
    assert clipped == pytest.approx(1.0 * expected / (expected + 1e-6), rel=1e-6)  # just under M
    # The direction is kept: every gradient is scaled by the same factor.
    for a, b in zip(ours[:3], grads_of(0)):
        torch.testing.assert_close(a.grad, b.grad * (1.0 / (expected + 1e-6)))


def test_clip_grad_norm_leaves_small_gradients_alone():
    params = grads_of(1)
    before = [p.grad.clone() for p in params]
    norm = optim.clip_grad_norm_(params, 1e6)
    assert norm.item() < 1e6
    for p, b in zip(params, before):
        assert torch.equal(p.grad, b)


def test_clip_grad_norm_in_bfloat16_reduces_in_float32():
    params = [torch.zeros(1000, dtype=torch.bfloat16, requires_grad=True)]
    params[0].grad = torch.full((1000,), 0.1, dtype=torch.bfloat16)
    norm = optim.clip_grad_norm_(params, 1.0)
    assert norm.dtype == torch.float32
    exact = math.sqrt(1000) * float(torch.tensor(0.1, dtype=torch.bfloat16))
    assert norm.item() == pytest.approx(exact, rel=1e-6)


def test_clip_grad_norm_rejects_bad_max():
    with pytest.raises(ValueError, match="max_l2_norm must be > 0"):
        optim.clip_grad_norm_(grads_of(0), 0.0)


def test_weight_decay_param_groups_decays_only_matrices():
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))
    model[2].weight.requires_grad_(False)  # frozen: left out
    decay, no_decay = optim.weight_decay_param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert [p.shape for p in decay["params"]] == [(8, 4)]
    assert {tuple(p.shape) for p in no_decay["params"]} == {(8,), (2,)}
    assert len(no_decay["params"]) == 4  # two biases, LayerNorm weight and bias
    opt = optim.AdamW(optim.weight_decay_param_groups(model, 0.1), lr=1e-3)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        optim.weight_decay_param_groups(model, -1.0)


def test_public_names_exist():
    for name in optim.__all__:
        assert hasattr(optim, name), name
