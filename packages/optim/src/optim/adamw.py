"""AdamW: Adam with weight decay decoupled from the gradient (Loshchilov & Hutter, 2019)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch


class AdamW(torch.optim.Optimizer):
    """Adam with bias correction, plus decoupled weight decay theta <- theta - lr * wd * theta.

    Per parameter state: ``step`` (a float32 scalar tensor, as torch keeps it), ``exp_avg`` (first
    moment m) and ``exp_avg_sq`` (second moment v). The update follows torch.optim.AdamW term for
    term -- decay first, eps added after bias-correcting sqrt(v) -- so the two agree to rounding.
    (CS336's Algorithm 1 decays after the Adam step and adds eps before the correction; the two
    orderings differ by O(lr^2 * wd) and O(eps) per step.)

    ``foreach=True`` updates all parameters of a group with torch._foreach_* kernels: the same
    arithmetic in a handful of launches instead of ~10 per parameter, which matters on a GPU.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        foreach: bool = False,
    ):
        if not lr >= 0:
            raise ValueError(f"AdamW: lr must be >= 0, got {lr!r}")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"AdamW: betas must each be in [0, 1), got {betas!r}")
        if not eps >= 0:
            raise ValueError(f"AdamW: eps must be >= 0, got {eps!r}")
        if not weight_decay >= 0:
            raise ValueError(f"AdamW: weight_decay must be >= 0, got {weight_decay!r}")
        defaults = dict(
            lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, foreach=foreach
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                if p.grad.is_sparse:
                    raise RuntimeError("AdamW does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0, dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if group["foreach"]:
                self._update_foreach(group, params)
            else:
                for p in params:
                    self._update_one(group, p)
        return loss

    def _update_one(self, group: dict[str, Any], p: torch.Tensor) -> None:
        lr, (beta1, beta2), eps, wd = (
            group["lr"],
            group["betas"],
            group["eps"],
            group["weight_decay"],
        )
        state = self.state[p]
        state["step"] += 1
        t = state["step"].item()
        m, v, grad = state["exp_avg"], state["exp_avg_sq"], p.grad
        p.mul_(1 - lr * wd)  # decoupled decay: shrink theta, independent of the gradient scale
        m.lerp_(grad, 1 - beta1)  # m <- beta1 m + (1 - beta1) g
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)  # v <- beta2 v + (1 - beta2) g^2
        bias_correction1 = 1 - beta1**t
        bias_correction2 = 1 - beta2**t
        denom = (v.sqrt() / math.sqrt(bias_correction2)).add_(eps)
        p.addcdiv_(m, denom, value=-lr / bias_correction1)

    def _update_foreach(self, group: dict[str, Any], params: list[torch.Tensor]) -> None:
        lr, (beta1, beta2), eps, wd = (
            group["lr"],
            group["betas"],
            group["eps"],
            group["weight_decay"],
        )
        # Parameters of one group can have different step counts (e.g. one had no grad once),
        # so bucket them by step: each bucket shares its bias corrections.
        by_step: dict[float, list[torch.Tensor]] = {}
        for p in params:
            state = self.state[p]
            state["step"] += 1
            by_step.setdefault(state["step"].item(), []).append(p)
        for t, bucket in by_step.items():
            grads = [p.grad for p in bucket]
            ms = [self.state[p]["exp_avg"] for p in bucket]
            vs = [self.state[p]["exp_avg_sq"] for p in bucket]
            if wd != 0:
                torch._foreach_mul_(bucket, 1 - lr * wd)
            torch._foreach_lerp_(ms, grads, 1 - beta1)
            torch._foreach_mul_(vs, beta2)
            torch._foreach_addcmul_(vs, grads, grads, value=1 - beta2)
            bias_correction1 = 1 - beta1**t
            bias_correction2 = 1 - beta2**t
            denoms = torch._foreach_sqrt(vs)
            torch._foreach_div_(denoms, math.sqrt(bias_correction2))
            torch._foreach_add_(denoms, eps)
            torch._foreach_addcdiv_(bucket, ms, denoms, value=-lr / bias_correction1)
