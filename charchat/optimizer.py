"""The part of torch.optim.Optimizer that charchat's optimizers (AdamW, Muon) need.

Why not torch.optim itself: its Optimizer imports torch._dynamo (the torch.compile front end)
the first time an optimizer is built or stepped, to keep compiled code out of optimizer steps.
That import took 1.3 s of the 3.4 s before a CPU training run started, time a time-budgeted run
loses and every `charchat train` waits for, and charchat never compiles an optimizer. This base
keeps torch's semantics where they matter: param_groups of dicts that the trainer's schedule
writes "lr" into, per-parameter state, zero_grad, and state_dict / load_state_dict in
torch.optim's format, so training states saved with torch.optim.AdamW still resume. Anything
that reads param_groups (torch.amp.GradScaler's unscale_ and step) works with it unchanged.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

import torch


class Optimizer:
    def __init__(self, params: Iterable, defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.state: defaultdict[torch.Tensor, dict] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict[str, Any]) -> None:
        group = dict(group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, torch.Tensor) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for p in group["params"]:
            if not isinstance(p, torch.Tensor) or not p.is_leaf:
                raise ValueError("an optimizer can only optimize leaf tensors")
            if id(p) in seen:
                raise ValueError("a parameter appears in more than one parameter group")
            seen.add(id(p))
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_().zero_()

    def state_dict(self) -> dict[str, Any]:
        """{"state": {index: {...}}, "param_groups": [{..., "params": [index, ...]}]}, the
        parameters numbered in group order, as torch.optim numbers them."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            ids = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("the saved state has a different number of parameter groups")
        for ours, saved in zip(self.param_groups, saved_groups):
            if len(ours["params"]) != len(saved["params"]):
                raise ValueError("the saved state's parameter groups differ in size")
        by_index = {
            i: p for ours, saved in zip(self.param_groups, saved_groups)
            for i, p in zip(saved["params"], ours["params"])
        }
        self.state = defaultdict(dict)
        for i, saved_state in state_dict["state"].items():
            p = by_index.get(int(i))
            if p is None:
                continue
            self.state[p] = {k: self._cast(p, k, v) for k, v in saved_state.items()}
        for ours, saved in zip(self.param_groups, saved_groups):
            params = ours["params"]
            ours.clear()
            ours.update({k: v for k, v in saved.items() if k != "params"}, params=params)

    def _cast(self, p: torch.Tensor, key: str, value: Any) -> Any:
        """Saved state onto the parameter's device, floating buffers in its dtype (as
        torch.optim loads them). Subclasses place their step counts (see AdamW)."""
        if not isinstance(value, torch.Tensor) or key == "step":
            return value
        if value.is_floating_point():
            return value.to(device=p.device, dtype=p.dtype)
        return value.to(device=p.device)
