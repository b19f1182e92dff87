"""AdamW: Adam with decoupled weight decay, on charchat's Optimizer base.

The arithmetic is torch's own: each step calls torch.optim.adamw.adamw, the functional form
behind torch.optim.AdamW, with the same state (a float32 step count, exp_avg, exp_avg_sq), so
the updates are torch's to the bit, fused kernel included, and states saved by
torch.optim.AdamW load. Only the class around it differs (see charchat.optimizer for why).
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch.optim.adamw import adamw

from .optimizer import Optimizer


class AdamW(Optimizer):
    """lr, betas, eps and weight_decay as torch.optim.AdamW's. fused=True uses torch's fused
    kernel (CPU and CUDA); otherwise torch picks its multi-tensor or per-tensor form."""

    def __init__(self, params: Iterable, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, fused: bool = False) -> None:
        if lr < 0:
            raise ValueError(f"AdamW lr must be non-negative, got {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"AdamW betas must be in [0, 1), got {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay))
        self.fused = fused

    def _cast(self, p: torch.Tensor, key: str, value: Any) -> Any:
        if key == "step" and isinstance(value, torch.Tensor):
            # The fused kernel reads the count on the parameter's device; the other forms want
            # it on the CPU (torch.optim.AdamW keeps it the same way).
            return value.to(dtype=torch.float32, device=p.device if self.fused else "cpu")
        return super()._cast(p, key, value)

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros(
                        (), dtype=torch.float32, device=p.device if self.fused else "cpu")
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                params.append(p)
                grads.append(p.grad)
                exp_avgs.append(state["exp_avg"])
                exp_avg_sqs.append(state["exp_avg_sq"])
                steps.append(state["step"])
            if not params:
                continue
            beta1, beta2 = group["betas"]
            adamw(params, grads, exp_avgs, exp_avg_sqs, [], steps,
                  fused=True if self.fused else None, amsgrad=False, beta1=beta1, beta2=beta2,
                  lr=group["lr"], weight_decay=group["weight_decay"], eps=group["eps"],
                  maximize=False)
