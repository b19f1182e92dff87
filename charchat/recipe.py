"""Choosing hyperparameters nobody set, from the corpus size, the device and the budget.

The aim: `charchat train my.txt --minutes 5` should give about the best model those five minutes
can buy, without the user knowing any hyperparameter. The rules below were fitted by measuring
(see benchmarks/ and the notes in each rule); every value can still be set by hand.
"""

from __future__ import annotations

from dataclasses import replace

from .config import ConfigError, TrainConfig, label_of

# Size presets: (n_layer, n_head, n_embd). The TUI offers these by name.
PRESETS = {
    "tiny": (2, 2, 64),
    "small": (3, 4, 128),
    "medium": (4, 4, 192),
    "large": (6, 6, 384),
}

# Without --minutes or --max-steps, training runs until early stopping, under this cap.
DEFAULT_CAP_MINUTES = {"cpu": 30.0, "mps": 30.0, "cuda": 30.0}


def _shape_for(budget_s: float, n_tokens: int, device: str) -> tuple[int, int, int, int, int]:
    """(n_layer, n_head, n_embd, block_size, batch_size) for a compute budget in seconds.

    On a CPU the budget buys a few million tokens of training, so the model must stay small
    enough to see the corpus several times; a GPU affords GPT-2-small-like char models.
    """
    if device == "cuda":
        if n_tokens < 200_000:
            return 4, 4, 256, 128, 64
        return 6, 6, 384, 256, 64
    # CPU (and MPS, treated alike). On short budgets, a shallow, narrow model that takes many
    # steps beats a deeper one that takes fewer; by five minutes the deeper one has caught up
    # and passed it. Measured on tinyshakespeare (1.1M characters, 2 cores, Muon;
    # `bench_quality.py --skip-nanogpt --seconds S`, full validation loss, alternating runs):
    # - 45 s: 2 layers x 96, batch 24 1.6307 against 3 x 128, batch 16 (the earlier rule) 1.6818.
    # - 100 s: 4 x 128, batch 16 1.6137 / 1.6030; 2 x 128 1.5728 / 1.5628; 2 x 96
    #   1.5689 / 1.5596 / 1.5534 / 1.5488; 2 x 96, batch 24 1.5407 / 1.5543; batch 32 1.5609;
    #   2 x 128, batch 24 1.5550. At equal cost in fixed steps (seed 1): 1 x 128 1.601,
    #   2 x 128 1.557, 3 x 128 1.573, 4 x 128 1.582, 5 x 128 1.625, 2 x 160 1.578,
    #   2 x 192 1.586, 3 x 96 1.554, 2 x 96 1.547.
    # - 200 s: 4 x 128, batch 16 1.5158 against 2 x 96, batch 24 1.5130 (a tie).
    # - 300 s: 4 x 128, batch 16 1.4896 against 2 x 96, batch 24 1.5084.
    # Windows longer than 64 with few sequences per step lost (4 x 128, AdamW: block 128 x 8
    # 1.733; block 256 x 4 2.00): gradients of so few sequences are noisy.
    if budget_s <= 150:
        shape = (2, 4, 96, 64, 24)
    elif budget_s <= 300:
        shape = (4, 4, 128, 64, 16)
    elif budget_s <= 1200:
        shape = (4, 4, 192, 128, 32)
    else:
        shape = (6, 8, 256, 128, 32)
    # A small corpus would be overfitted by a bigger model whatever the budget: it gets 2 x 128,
    # batch 16 (with dropout, below), the shape measured on the bundled prose.
    if n_tokens < 50_000:
        shape = (2, 4, 128, min(shape[3], 64), 16)
    return shape


def resolve_config(config: TrainConfig, n_tokens: int, device: str, kind: str = "prose"):
    """A copy of config with every None filled in, and notes for the user on what was chosen.
    ConfigError names the setting at fault."""
    notes: list[str] = []
    c = replace(config)
    c.check()  # every value set is in its range (NaN included: it would poison the run)
    dev = "cuda" if device == "cuda" else "cpu"
    budget_s = c.minutes * 60.0 if c.minutes else DEFAULT_CAP_MINUTES.get(device, 30.0) * 60.0
    if c.max_steps and not c.minutes:
        budget_s = min(budget_s, 60.0 + c.max_steps * 0.1)
    n_layer, n_head, n_embd, block, batch = _shape_for(budget_s, n_tokens, dev)
    if c.n_layer is None:
        c.n_layer = n_layer
    if c.n_embd is None:
        c.n_embd = n_embd
    if c.n_head is None:
        c.n_head = n_head if c.n_embd % n_head == 0 else _divisor_near(c.n_embd, n_head)
    if c.block_size is None:
        c.block_size = block
    # The corpus must hold a window in both splits: shrink the default context if it is short.
    from .corpus import too_short  # here: the app imports this module at start, numpy later

    while config.block_size is None and c.block_size > 16 and too_short(n_tokens, c.block_size):
        c.block_size //= 2
    if c.batch_size is None:
        c.batch_size = batch
    if c.lr is None:
        # Narrow models tolerate (and need) larger steps: 4e-3 measured best at 128 wide
        # (3e-3 at 192, as nanoGPT's tuned recipe; 5e-3 there was worse).
        lr = 4e-3 * (128 / c.n_embd) ** 0.7
        c.lr = round(lr, 6) or float(f"{lr:.3g}")  # very wide models: not rounded to 0
    if c.muon_lr is None:
        # Measured on tinyshakespeare, 4L x 128, ~105 s on 2 cores (bench_quality.py): 0.02
        # reached 1.62; 0.015 and 0.03 were worse (1.65, 1.64), 0.04 much worse. AdamW's rate
        # for the embeddings hardly mattered between 4e-3 and 8e-3 (1.61-1.62).
        c.muon_lr = 0.02
    if c.muon_momentum is None:
        # Measured like the decay below (seeds 1, 2, 3): 0.95 (the usual value) 1.5894 /
        # 1.6115 / 1.6006, 0.9 1.5853 / 1.5991 / 1.5948; 0.85 1.5829 / - / 1.5949, 0.8
        # 1.5936, 0.97 1.6029.
        c.muon_momentum = 0.9
    if c.muon_weight_decay is None:
        # Measured at 4L x 128 on tinyshakespeare, 1,450 steps, full validation loss, seeds 1
        # and 3: 0.1 (AdamW's) 1.6156 / 1.6079, 0.2 1.5894 / 1.6006, 0.3 1.5933 / 1.6083.
        c.muon_weight_decay = 0.2
    if c.min_lr is None:
        c.min_lr = c.lr / 40
    if c.beta2 is None:
        # Small batches give noisy gradients: a longer second-moment average steadies them.
        c.beta2 = 0.99 if c.batch_size * c.block_size < 8192 else 0.95
    if c.warmup_steps is None:
        c.warmup_steps = 50 if not c.max_steps else max(1, min(100, c.max_steps // 20))
    if c.eval_tokens is None:
        c.eval_tokens = 16384 if dev == "cpu" else 65536
    if c.dropout is None:
        # Between 50k and 500k characters the best value depends on the text (2 x 96, 120 s,
        # bench_quality.py): on 250k characters of Shakespeare 0 beat 0.1 by 0.025, on 282k of
        # Python modules 0.1 beat 0 by 0.075, and 0.2 lost 0.14 on the Shakespeare.
        c.dropout = 0.0 if n_tokens >= 500_000 else 0.1
    if c.max_steps is None and c.minutes is None:
        cap_min = DEFAULT_CAP_MINUTES.get(device, 30.0)
        c.minutes = cap_min
        notes.append(
            f"no --minutes or --max-steps: training runs until early stopping, "
            f"at most {cap_min:g} minutes"
        )
    if c.n_embd % c.n_head:
        # The one the user set is at fault (the other was chosen to fit it, or set too).
        if config.n_head is not None and config.n_embd is None:
            raise ConfigError("n_head", f"must divide {label_of('n_embd')} ({c.n_embd}), "
                                        f"got {c.n_head}")
        raise ConfigError("n_embd", f"must be divisible by {label_of('n_head')} ({c.n_head}), "
                                    f"got {c.n_embd}")
    if c.min_lr > c.lr:
        raise ConfigError("min_lr", f"must not be above {label_of('lr')} ({c.lr:g}), "
                                    f"got {c.min_lr:g}")
    c.check()  # the values chosen here too
    return c, notes


def _divisor_near(n: int, want: int) -> int:
    best = 1
    for h in range(1, n + 1):
        if n % h == 0 and abs(h - want) <= abs(best - want):
            best = h
    return best
