"""Which optimizer trains which parameters of a GPT, under a TrainConfig."""

from __future__ import annotations

import torch

from .adamw import AdamW
from .config import TrainConfig
from .muon import Muon
from .optimizer import Optimizer


def make_optimizers(model: torch.nn.Module, c: TrainConfig, device_type: str) -> list[Optimizer]:
    """AdamW for everything (--optimizer adamw), or Muon for the matrices inside the blocks and
    AdamW for the rest (muon). Muon's param group carries "lr_scale": the schedule sets each
    group's rate to lr(t) * lr_scale."""
    named = list(model.named_parameters())  # the tied head appears once, as wte
    if c.optimizer == "muon":
        # The matrices inside the blocks (attention and MLP weights) go to Muon. The
        # embeddings (also the output head) are lookup tables rather than linear maps of
        # the residual stream, so they stay with AdamW, as do norm gains and biases.
        in_blocks = [(n, p) for n, p in named if p.dim() == 2 and n.startswith("transformer.h.")]
        matrices = [p for _, p in in_blocks]
        # The attention's fused projection stacks three maps (queries, keys, values):
        # Muon orthogonalises each on its own (see charchat.muon).
        row_blocks = [3 if n.endswith(".attn.c_attn.weight") else 1 for n, _ in in_blocks]
        taken = {n for n, _ in in_blocks}
        others = [(n, p) for n, p in named if n not in taken]
    else:
        matrices, others = [], named
    decay = [p for _, p in others if p.dim() >= 2]
    no_decay = [p for _, p in others if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": c.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = device_type in ("cuda", "cpu")
    opts: list[Optimizer] = [AdamW(groups, lr=c.lr, betas=(c.beta1, c.beta2), fused=fused)]
    if matrices:
        scale = c.muon_lr / c.lr
        # Decay per step is lr(t) * muon_weight_decay, lr(t) being AdamW's rate, so the
        # two decay settings are on the same scale.
        muon = Muon([{"params": matrices, "row_blocks": row_blocks}], lr=c.muon_lr,
                    momentum=c.muon_momentum, weight_decay=c.muon_weight_decay / scale)
        muon.param_groups[0]["lr_scale"] = scale  # the schedule sets lr(t) * lr_scale
        opts.append(muon)
    return opts
