"""AdaGrad (Duchi et al., 2011): per-coordinate step sizes from the sum of squared gradients."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch


class AdaGrad(torch.optim.Optimizer):
    """s <- s + g^2;  theta <- theta - lr * g / (sqrt(s) + eps).

    The lecture sketch, done right: the update runs under no_grad and in place on the parameter
    (not on ``.data``), parameters without a gradient are skipped, the state lives in
    ``self.state`` from the first step (key ``sum``, as torch names it) so it is saved with
    ``state_dict``, and eps sits outside the square root so it only guards the division.
    Matches torch.optim.Adagrad with lr_decay=0.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-2,
        eps: float = 1e-10,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
    ):
        if not lr >= 0:
            raise ValueError(f"AdaGrad: lr must be >= 0, got {lr!r}")
        if not eps >= 0:
            raise ValueError(f"AdaGrad: eps must be >= 0, got {eps!r}")
        if not weight_decay >= 0:
            raise ValueError(f"AdaGrad: weight_decay must be >= 0, got {weight_decay!r}")
        if not initial_accumulator_value >= 0:
            raise ValueError(
                "AdaGrad: initial_accumulator_value must be >= 0, "
                f"got {initial_accumulator_value!r}"
            )
        defaults = dict(
            lr=lr,
            eps=eps,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad if wd == 0 else p.grad.add(p, alpha=wd)
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0, dtype=torch.float32)
                    state["sum"] = torch.full_like(p, group["initial_accumulator_value"])
                state["step"] += 1
                state["sum"].addcmul_(grad, grad)
                p.addcdiv_(grad, state["sum"].sqrt().add_(eps), value=-lr)
        return loss
