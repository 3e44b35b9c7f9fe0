"""torch.autograd.gradcheck in float64 on small instances of every layer.

gradcheck compares our analytic backward (autograd through our forward) against central
finite differences, for the inputs and, via a functional wrapper, for the weights too.
"""

import pytest
import torch
from torch.func import functional_call

import nn_core as nc


def check_module(module: torch.nn.Module, *inputs: torch.Tensor, fast: bool = False) -> None:
    """gradcheck w.r.t. the float inputs and every parameter of ``module``.

    ``fast`` uses gradcheck's fast mode (checks u^T J v for random u, v instead of every column
    of the Jacobian): the whole-block and whole-model checks would otherwise need one pair of
    forward passes per parameter element.
    """
    module = module.double()
    names = [n for n, _ in module.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for _, p in module.named_parameters())
    float_inputs = tuple(x.double().requires_grad_(True) for x in inputs if x.is_floating_point())
    other_inputs = [x for x in inputs if not x.is_floating_point()]

    def fn(*args):
        xs, ps = args[: len(float_inputs)], args[len(float_inputs) :]
        return functional_call(module, dict(zip(names, ps)), (*xs, *other_inputs))

    assert torch.autograd.gradcheck(
        fn, float_inputs + params, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=fast
    )


def test_gradcheck_linear():
    torch.manual_seed(0)
    check_module(nc.Linear(5, 3), torch.randn(2, 4, 5))


def test_gradcheck_embedding():
    torch.manual_seed(0)
    check_module(nc.Embedding(7, 3), torch.randint(0, 7, (2, 5)))


def test_gradcheck_rmsnorm():
    torch.manual_seed(0)
    check_module(nc.RMSNorm(6), torch.randn(2, 3, 6))


def test_gradcheck_swiglu_and_silu_ffn():
    torch.manual_seed(0)
    check_module(nc.SwiGLU(4, 6), torch.randn(2, 3, 4))
    check_module(nc.SiLUFeedForward(4, 6), torch.randn(2, 3, 4))


def test_gradcheck_rope():
    torch.manual_seed(0)
    rope = nc.RotaryEmbedding(100.0, 6, max_seq_len=8)
    x = torch.randn(2, 5, 6, dtype=torch.float64, requires_grad=True)
    pos = torch.tensor([0, 3, 1, 7, 2])
    assert torch.autograd.gradcheck(lambda t: rope(t, pos), (x,))


def test_gradcheck_functions():
    torch.manual_seed(0)
    x = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(nc.silu, (x,))
    assert torch.autograd.gradcheck(lambda t: nc.softmax(t, dim=-1), (x,))
    assert torch.autograd.gradcheck(lambda t: nc.softmax(t, dim=0), (x,))
    targets = torch.tensor([0, 4, 2])
    assert torch.autograd.gradcheck(lambda t: nc.cross_entropy(t, targets), (x,))


def test_gradcheck_scaled_dot_product_attention():
    torch.manual_seed(0)
    q = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 0, 1, 1, 0], [1, 1, 0, 0, 0], [0, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.autograd.gradcheck(
        lambda a, b, c: nc.scaled_dot_product_attention(a, b, c, mask), (q, k, v)
    )


@pytest.mark.parametrize("use_rope", [True, False])
def test_gradcheck_multihead_self_attention(use_rope):
    torch.manual_seed(0)
    rope = nc.RotaryEmbedding(100.0, 4, max_seq_len=8) if use_rope else None
    check_module(nc.MultiHeadSelfAttention(8, 2, rope=rope), torch.randn(2, 5, 8), fast=True)


@pytest.mark.parametrize("norm", ["pre", "post", "none"])
def test_gradcheck_transformer_block(norm):
    torch.manual_seed(0)
    rope = nc.RotaryEmbedding(100.0, 4, max_seq_len=8)
    block = nc.TransformerBlock(8, 2, 12, rope=rope, norm=norm)
    check_module(block, torch.randn(1, 4, 8), fast=True)


def test_gradcheck_transformer_lm():
    torch.manual_seed(0)
    cfg = nc.ModelConfig(
        vocab_size=7, context_length=6, d_model=8, num_layers=1, num_heads=2, d_ff=8
    )
    check_module(nc.TransformerLM(cfg), torch.randint(0, 7, (1, 5)), fast=True)
