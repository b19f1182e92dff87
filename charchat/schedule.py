"""The arithmetic of a run's schedule: learning rate, progress and time left (pure functions).

A run ends at --max-steps or when --minutes are used up, whichever its settings name (both may).
The learning rate warms up linearly over warmup_steps, then follows a cosine from lr down to
min_lr over what is left of the run after warmup, measured in steps or in time.
"""

from __future__ import annotations

import math


def lr_at(step: int, progress: float, warmup_steps: int, lr: float, min_lr: float) -> float:
    """The rate at step, where progress (0..1) is how far the cosine has gone."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    p = min(1.0, max(0.0, progress))
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * p))


def cosine_progress(step: int, elapsed: float, warmup_steps: int, max_steps: int | None,
                    minutes: float | None, warmup_elapsed: float) -> float:
    """How far the cosine has gone (0..1): the larger of the step and time fractions of the
    part of the run after warmup."""
    parts = []
    if max_steps:
        w = min(warmup_steps, max_steps - 1)
        parts.append((step - w) / max(1, max_steps - w))
    if minutes:
        budget = minutes * 60.0
        parts.append((elapsed - warmup_elapsed) / max(1e-9, budget - warmup_elapsed))
    return min(1.0, max(0.0, max(parts))) if parts else 0.0


def done_fraction(step: int, elapsed: float, max_steps: int | None,
                  minutes: float | None) -> float:
    """How much of the run is done, for progress bars: the larger of the step and time
    fractions. (The cosine's progress starts after warmup, so a bar drawn from it lagged the
    clock: 40% done with a third of the time left.)"""
    parts = [0.0]
    if max_steps:
        parts.append(step / max_steps)
    if minutes:
        parts.append(elapsed / (minutes * 60.0))
    return min(1.0, max(parts))


def eta(step: int, elapsed: float, max_steps: int | None, minutes: float | None,
        per_step: float | None, eval_interval: int, eval_cost: float) -> float | None:
    """Seconds left, best guess: the budget's rest, or the steps left at per_step seconds
    each plus the evaluations still due; None when neither is known."""
    if minutes:
        return max(0.0, minutes * 60.0 - elapsed)
    if max_steps and per_step is not None:
        left = max_steps - step
        evals_left = left // eval_interval + 1
        return max(0.0, left * per_step + evals_left * eval_cost)
    return None


def timed_eval_interval(per_step: float, eval_period: float) -> int:
    """Steps between evaluations so that they come about every eval_period seconds, from the
    measured seconds per step: from 10 to 2,000, a multiple of 10."""
    steps = max(10, min(2000, round(eval_period / max(per_step, 1e-6))))
    return max(1, steps // 10 * 10)


def eval_period(minutes: float | None) -> float:
    """Seconds between evaluations when no interval is set: eight in a time budget, at most
    30 s apart. Each costs about as much as four training steps of a small CPU model, and
    twelve took ~4% of a two-minute run."""
    return min(minutes * 60.0 / 8.0, 30.0) if minutes else 30.0


def step_eval_interval(max_steps: int) -> int:
    """Steps between evaluations in a run set by --max-steps alone: about twelve in all."""
    return max(1, min(1000, max_steps // 12))
