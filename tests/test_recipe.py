import dataclasses
import math
import re

import pytest

from charchat.recipe import resolve_config
from charchat.config import ConfigError, TrainConfig

FILLED_LATER = {"eval_interval"}  # chosen by the trainer once it has timed a few steps


@pytest.mark.parametrize("minutes, max_steps", [(None, None), (2.0, None), (None, 100), (1.0, 50)])
@pytest.mark.parametrize("n_tokens", [1_000, 100_000, 2_000_000])
@pytest.mark.parametrize("device", ["cpu", "cuda", "mps"])
def test_every_unset_value_is_filled(minutes, max_steps, n_tokens, device):
    user = TrainConfig(minutes=minutes, max_steps=max_steps)
    c, notes = resolve_config(user, n_tokens=n_tokens, device=device)
    unset = [f.name for f in dataclasses.fields(c) if getattr(c, f.name) is None]
    if max_steps is not None and minutes is None:
        assert set(unset) == {"minutes", "eval_interval"}
    else:
        assert set(unset) == ({"max_steps", "eval_interval"} if max_steps is None
                              else {"eval_interval"})
    assert c.n_embd % c.n_head == 0
    assert 0 < c.min_lr <= c.lr and 0 <= c.dropout < 1
    assert user == TrainConfig(minutes=minutes, max_steps=max_steps)  # a copy was changed
    if minutes is None and max_steps is None:
        assert c.minutes > 0 and any("early stopping" in n for n in notes)


def test_values_set_by_hand_are_kept():
    user = TrainConfig(n_layer=3, n_head=3, n_embd=48, block_size=20, batch_size=5, lr=1e-3,
                       min_lr=1e-5, warmup_steps=7, beta2=0.9, eval_tokens=100, dropout=0.2,
                       max_steps=10)
    c, _ = resolve_config(user, n_tokens=500, device="cpu")
    for f in dataclasses.fields(user):
        if getattr(user, f.name) is not None:
            assert getattr(c, f.name) == getattr(user, f.name), f.name


def test_a_short_corpus_shrinks_the_default_context():
    c, _ = resolve_config(TrainConfig(max_steps=10), n_tokens=300, device="cpu")
    assert c.block_size == 16
    c, _ = resolve_config(TrainConfig(max_steps=10), n_tokens=500, device="cpu")
    assert 500 * 0.1 >= c.block_size + 1 and c.block_size == 32


def test_head_count_divides_the_width():
    c, _ = resolve_config(TrainConfig(n_embd=30, max_steps=5), n_tokens=10_000, device="cpu")
    assert c.n_embd == 30 and 30 % c.n_head == 0 and c.n_head in (3, 5)


def test_narrow_models_get_a_larger_learning_rate():
    wide, _ = resolve_config(TrainConfig(n_embd=384, max_steps=5), 10_000, "cpu")
    narrow, _ = resolve_config(TrainConfig(n_embd=64, max_steps=5), 10_000, "cpu")
    assert narrow.lr > wide.lr
    assert resolve_config(TrainConfig(n_embd=128, max_steps=5), 10_000, "cpu")[0].lr == pytest.approx(4e-3)
    assert wide.min_lr == pytest.approx(wide.lr / 40)


@pytest.mark.parametrize(
    "bad, field, reason",
    [
        (dict(n_embd=30, n_head=4), "n_embd", r"^must be divisible by n-head \(4\), got 30$"),
        (dict(n_head=4, n_embd=None, max_steps=10), None, None),  # chosen to fit: fine
        (dict(minutes=0), "minutes", "^must be positive, got 0$"),
        (dict(minutes=-1), "minutes", "positive"),
        (dict(max_steps=0), "max_steps", "^must be at least 1, got 0$"),
        (dict(dropout=1.0), "dropout", r"^must be in \[0, 1\), got 1.0$"),
        (dict(dropout=-0.1), "dropout", None),
        (dict(lr=0.0), "lr", "positive"),
        (dict(lr=-1e-3), "lr", "positive"),
        (dict(lr=1e-3, min_lr=2e-3), "min_lr", r"^must not be above lr \(0.001\), got 0.002$"),
        (dict(min_lr=-1.0), "min_lr", "^must not be negative"),
        (dict(grad_clip=0.0), "grad_clip", None),
        (dict(n_layer=-1), "n_layer", None),
        (dict(grad_accum=0), "grad_accum", None),
        (dict(batch_size=-2), "batch_size", None),
        (dict(optimizer="sgd"), "optimizer", "^must be muon or adamw, got 'sgd'$"),
        (dict(muon_lr=0.0), "muon_lr", None),
        (dict(weight_decay=-0.1), "weight_decay", "^must not be negative, got -0.1$"),
        (dict(muon_weight_decay=-1.0), "muon_weight_decay", "^must not be negative, got -1.0$"),
        (dict(muon_momentum=1.0), "muon_momentum", r"^must be in \[0, 1\), got 1.0$"),
        (dict(muon_momentum=-0.1), "muon_momentum", None),
        (dict(min_lr=math.nan), "min_lr", "^must be a finite number, got nan$"),
        (dict(weight_decay=math.nan), "weight_decay", "^must be a finite number"),
        (dict(muon_weight_decay=math.inf), "muon_weight_decay", "^must be a finite number"),
        (dict(min_delta=math.nan), "min_delta", "^must be a finite number"),
        (dict(min_delta=-0.01), "min_delta", "^must not be negative"),
        (dict(beta2=1.0), "beta2", r"^must be in \[0, 1\), got 1.0$"),
        (dict(seed=-1), "seed", r"^must be a whole number from 0 to 2\*\*63 - 1, got -1$"),
        (dict(log_interval=0), "log_interval", "^must be at least 1, got 0$"),  # Python API
        (dict(beta1=1.5), "beta1", r"^must be in \[0, 1\), got 1.5$"),
    ],
)
def test_bad_values_raise_config_error_naming_the_field(bad, field, reason):
    """The error carries the field (the CLI prints its flag, the form marks the field) and a
    reason that names no flag."""
    config = TrainConfig(**{"max_steps": 10, **bad})
    if field is None:
        resolve_config(config, n_tokens=10_000, device="cpu")
        return
    with pytest.raises(ConfigError) as info:
        resolve_config(config, n_tokens=10_000, device="cpu")
    assert info.value.field == field and "--" not in info.value.reason
    assert str(info.value) == f"{field}: {info.value.reason}"
    if reason:
        assert re.search(reason, info.value.reason), info.value.reason


def test_only_a_head_count_set_by_hand_that_cannot_divide_is_named():
    with pytest.raises(ConfigError) as info:
        resolve_config(TrainConfig(n_head=7, max_steps=10), n_tokens=10_000, device="cpu")
    assert info.value.field == "n_head" and info.value.reason.startswith("must divide n-embd")


def test_a_very_wide_model_gets_a_learning_rate_above_zero():
    c, _ = resolve_config(TrainConfig(max_steps=10, n_embd=2**27, n_head=1), n_tokens=10_000,
                          device="cpu")
    assert 0 < c.lr < 1e-6 and c.min_lr > 0


@pytest.mark.parametrize("field", ["n_head", "n_layer", "n_embd", "block_size", "batch_size"])
def test_zero_sizes_raise_config_error(field):
    with pytest.raises(ConfigError, match=f"^{field}: must be at least 1, got 0$"):
        resolve_config(TrainConfig(max_steps=10, **{field: 0}), n_tokens=10_000, device="cpu")


def test_muon_is_the_default_optimizer_with_its_own_rate():
    c, _ = resolve_config(TrainConfig(max_steps=10), n_tokens=10_000, device="cpu")
    assert c.optimizer == "muon" and c.muon_lr == 0.02 and c.lr < c.muon_lr
    assert c.muon_weight_decay == 0.2 and c.weight_decay == 0.1 and c.muon_momentum == 0.9
    c, _ = resolve_config(TrainConfig(max_steps=10, muon_weight_decay=0.0), n_tokens=10_000,
                          device="cpu")
    assert c.muon_weight_decay == 0.0
    c, _ = resolve_config(TrainConfig(max_steps=10, optimizer="adamw", muon_lr=0.01),
                          n_tokens=10_000, device="cpu")
    assert c.optimizer == "adamw" and c.muon_lr == 0.01


def test_a_short_budget_on_a_cpu_buys_a_shallow_narrow_model():
    """Measured (see charchat.recipe): in 100 s, 2 layers x 96 taking many steps beat 4 x 128
    taking fewer; by 300 s the deeper model was better. Small corpora keep their shape."""
    def shape(minutes, n_tokens):
        c, _ = resolve_config(TrainConfig(minutes=minutes), n_tokens=n_tokens, device="cpu")
        return c.n_layer, c.n_head, c.n_embd, c.block_size, c.batch_size

    assert shape(0.5, 1_000_000) == shape(1.7, 1_000_000) == (2, 4, 96, 64, 24)
    assert shape(5, 1_000_000) == (4, 4, 128, 64, 16)
    assert shape(15, 1_000_000)[0] >= 4 and shape(15, 1_000_000)[2] > 128
    assert shape(1.7, 40_000) == (2, 4, 128, 64, 16)
