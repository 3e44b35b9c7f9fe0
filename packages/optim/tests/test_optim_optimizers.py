"""Optimizers against torch.optim on the same gradients, step for step."""

import copy

import pytest
import torch

import optim


def make_params(seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    shapes = [(5, 7), (13,), (3, 4, 6)]  # a matrix, a vector (a norm gain), a 3-d tensor
    return [torch.randn(s, generator=g, dtype=dtype).requires_grad_(True) for s in shapes]


def run_side_by_side(make_ours, make_theirs, steps=100, dtype=torch.float32, skip_grad=None):
    """Apply identical random gradients to two copies of the parameters; return both copies."""
    ours, theirs = make_params(dtype=dtype), make_params(dtype=dtype)
    opt_a, opt_b = make_ours(ours), make_theirs(theirs)
    g = torch.Generator().manual_seed(1)
    for step in range(steps):
        for i, (a, b) in enumerate(zip(ours, theirs)):
            if skip_grad is not None and skip_grad(step, i):
                a.grad = b.grad = None  # this parameter got no gradient this step
                continue
            grad = torch.randn(a.shape, generator=g, dtype=dtype)
            a.grad, b.grad = grad.clone(), grad.clone()
        opt_a.step()
        opt_b.step()
    return ours, theirs


def assert_params_equal(ours, theirs, atol=1e-6):
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=0, atol=atol)


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize(
    "hp",
    [
        dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01),
        dict(lr=3e-2, betas=(0.9, 0.95), eps=1e-6, weight_decay=0.1),
        dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-8, weight_decay=0.0),
    ],
)
def test_adamw_matches_torch_adamw_over_100_steps(hp, foreach):
    ours, theirs = run_side_by_side(
        lambda p: optim.AdamW(p, foreach=foreach, **hp), lambda p: torch.optim.AdamW(p, **hp)
    )
    assert_params_equal(ours, theirs, atol=1e-6)


@pytest.mark.parametrize("foreach", [False, True])
def test_adamw_param_groups_and_missing_grads(foreach):
    # Parameter 1 skips every third step: its step count (and bias correction) falls behind.
    def groups(ps):
        return [{"params": ps[:2]}, {"params": ps[2:], "weight_decay": 0.0, "lr": 5e-3}]

    ours, theirs = run_side_by_side(
        lambda p: optim.AdamW(groups(p), lr=1e-2, weight_decay=0.1, foreach=foreach),
        lambda p: torch.optim.AdamW(groups(p), lr=1e-2, weight_decay=0.1),
        steps=60,
        skip_grad=lambda step, i: i == 1 and step % 3 == 0,
    )
    assert_params_equal(ours, theirs)


def test_adamw_state_keys_and_state_dict_round_trip():
    ps = make_params()
    opt = optim.AdamW(ps, lr=1e-2)
    for p in ps:
        p.grad = torch.ones_like(p)
    opt.step()
    opt.step()
    state = opt.state[ps[0]]
    assert set(state) == {"step", "exp_avg", "exp_avg_sq"}
    assert state["step"].item() == 2
    # Resume from a state dict: the continued run equals an uninterrupted one.
    saved = copy.deepcopy(opt.state_dict())  # as a checkpoint file would hold it
    clones = [p.detach().clone().requires_grad_(True) for p in ps]
    resumed = optim.AdamW(clones, lr=1e-2)
    resumed.load_state_dict(saved)
    for a, b in zip(ps, clones):
        a.grad = torch.full_like(a, 0.3)
        b.grad = torch.full_like(b, 0.3)
    opt.step()
    resumed.step()
    assert_params_equal(ps, clones, atol=0)


def test_adamw_bfloat16_parameters_track_float64_reference():
    # bf16 parameters round every update (unit roundoff 2^-9); over 20 small steps the drift from
    # a float64 run is a few bf16 ulps of O(1) values.
    ours = [p.detach().to(torch.bfloat16).requires_grad_(True) for p in make_params()]
    theirs = [p.detach().double().requires_grad_(True) for p in ours]  # same starting values
    opt_a, opt_b = optim.AdamW(ours, lr=1e-2), torch.optim.AdamW(theirs, lr=1e-2)
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        for a, b in zip(ours, theirs):
            grad = torch.randn(a.shape, generator=g, dtype=torch.float64)
            a.grad, b.grad = grad.to(torch.bfloat16), grad.to(torch.bfloat16).double()
        opt_a.step()
        opt_b.step()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.double(), b, rtol=2**-6, atol=2**-6)


@pytest.mark.parametrize(
    "hp",
    [
        dict(lr=0.1),
        dict(lr=0.05, momentum=0.9),
        dict(lr=0.05, momentum=0.5, weight_decay=0.01),
    ],
)
def test_sgd_matches_torch_sgd(hp):
    ours, theirs = run_side_by_side(
        lambda p: optim.SGD(p, **hp),
        lambda p: torch.optim.SGD(p, **hp),
        skip_grad=lambda step, i: i == 2 and step % 4 == 1,
    )
    assert_params_equal(ours, theirs, atol=1e-5)


@pytest.mark.parametrize(
    "hp",
    [dict(lr=0.1), dict(lr=0.05, eps=1e-6, weight_decay=0.01, initial_accumulator_value=0.1)],
)
def test_adagrad_matches_torch_adagrad(hp):
    ours, theirs = run_side_by_side(
        lambda p: optim.AdaGrad(p, **hp),
        lambda p: torch.optim.Adagrad(p, **hp),
        skip_grad=lambda step, i: i == 0 and step % 5 == 2,
    )
    assert_params_equal(ours, theirs, atol=1e-6)


def test_optimizers_reduce_a_quadratic():
    target = torch.tensor([1.0, -2.0, 3.0])
    for make in (
        lambda p: optim.AdamW(p, lr=0.1, weight_decay=0.0),
        lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
        lambda p: optim.AdaGrad(p, lr=0.5),
    ):
        x = torch.zeros(3, requires_grad=True)
        opt = make([x])
        for _ in range(200):
            opt.zero_grad()
            loss = ((x - target) ** 2).sum()
            loss.backward()
            opt.step()
        assert ((x - target) ** 2).sum().item() < 1e-3


def test_closure_is_evaluated_and_returned():
    x = torch.ones(2, requires_grad=True)
    seen = []

    def closure():
        x.grad = None
        loss = (x**2).sum()
        loss.backward()
        seen.append(loss)
        return loss

    for opt in (optim.AdamW([x]), optim.SGD([x], lr=0.1), optim.AdaGrad([x])):
        before = x.detach().clone()
        returned = opt.step(closure)
        assert returned is seen[-1]  # the closure ran once, inside step, and its loss came back
        assert not torch.equal(x.detach(), before)  # ... and its gradient was used


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: optim.AdamW(p, lr=-1.0), "AdamW: lr must be >= 0"),
        (lambda p: optim.AdamW(p, betas=(0.9, 1.0)), r"betas must each be in \[0, 1\)"),
        (lambda p: optim.AdamW(p, eps=-1e-8), "eps must be >= 0"),
        (lambda p: optim.AdamW(p, weight_decay=-0.1), "weight_decay must be >= 0"),
        (lambda p: optim.SGD(p, momentum=1.5), r"momentum must be in \[0, 1\)"),
        (lambda p: optim.AdaGrad(p, lr=-0.1), "AdaGrad: lr must be >= 0"),
    ],
)
def test_bad_hyperparameters_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make([torch.zeros(2, requires_grad=True)])
