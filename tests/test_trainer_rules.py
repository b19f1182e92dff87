"""Rules of the training loop, checked through the public API only.

These tests drive a whole (tiny) run through Trainer and TrainConfig and watch what comes out:
events, the result, and the model's weights. The only things patched are on the model
(GPT.forward), never the trainer's own methods, so they hold however the loop is organised.
"""

import math

import pytest

from charchat.corpus import corpus_from_text
from charchat.model import GPT
from charchat.trainer import TrainConfig, Trainer

from conftest import pattern_text

TEXT = pattern_text(4000)


def tiny_run_config(**overrides) -> TrainConfig:
    d = dict(n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=8, dropout=0.0,
             max_steps=3, eval_interval=3, eval_tokens=256, log_interval=1, warmup_steps=1,
             device="cpu", seed=1)
    d.update(overrides)
    return TrainConfig(**d)


def run(folder, monkeypatch, **overrides):
    """Train a tiny model; returns (result, events, the weights before the first step, the
    model trained). The weights are read off the model at its first training forward pass."""
    real_forward = GPT.forward
    seen = {}

    def forward(self, idx, targets=None, **kw):
        if targets is not None and "before" not in seen:
            seen["model"] = self
            seen["before"] = {k: v.detach().clone() for k, v in self.state_dict().items()}
        return real_forward(self, idx, targets, **kw)

    monkeypatch.setattr(GPT, "forward", forward)
    events = []
    result = Trainer(corpus_from_text(TEXT), tiny_run_config(**overrides), out_dir=folder,
                     on_event=events.append).run()
    monkeypatch.setattr(GPT, "forward", real_forward)
    return result, events, seen["before"], seen["model"]


def largest_change(before, model) -> float:
    after = model.state_dict()
    return max(float((after[k] - v).abs().max()) for k, v in before.items()
               if v.is_floating_point())


def test_gradients_are_clipped_and_the_norm_reported_is_the_one_before(tmp_path, monkeypatch):
    """AdamW moves a weight by at most lr * |g| / eps per step (|m_hat| <= max |g|), so with the
    global norm clipped to 1e-12 (eps is 1e-8) no weight moves by more than lr * 1e-4 a step,
    where an unclipped step moves weights by about lr."""
    lr, clip, steps = 0.1, 1e-12, 3
    plain = dict(optimizer="adamw", weight_decay=0.0, lr=lr, min_lr=lr, max_steps=steps)
    result, events, before, model = run(tmp_path / "clipped", monkeypatch, grad_clip=clip,
                                        **plain)
    assert result.steps == steps and result.stop_reason == "max_steps"
    moved = largest_change(before, model)
    assert moved <= steps * lr * clip / 1e-8 * 1.01, f"a weight moved by {moved}"
    # The norm reported is the gradient's own, not the clipped one (which would be 1e-12).
    norms = [e.grad_norm for e in events if e.kind == "step"]
    assert len(norms) == steps
    assert all(math.isfinite(g) and g > 1e-3 for g in norms), norms

    # The same run without clipping to speak of moves the weights by about lr: the bound
    # above is the clipping's doing.
    _, events, before, model = run(tmp_path / "free", monkeypatch, grad_clip=1e9, **plain)
    moved = largest_change(before, model)
    assert moved > lr / 2, f"the largest change was {moved}"
    assert [e.grad_norm for e in events if e.kind == "step"][0] == pytest.approx(norms[0])


def test_an_infinite_loss_stops_the_run_like_nan(tmp_path, monkeypatch):
    real_forward = GPT.forward

    def forward(self, idx, targets=None, **kw):
        logits, loss = real_forward(self, idx, targets, **kw)
        if targets is not None:  # training batches; evaluation computes its own loss
            loss = loss + float("inf")  # the gradients stay finite: only the loss is off
        return logits, loss

    monkeypatch.setattr(GPT, "forward", forward)
    events = []
    result = Trainer(corpus_from_text(TEXT), tiny_run_config(max_steps=5, eval_interval=5),
                     out_dir=tmp_path / "m", on_event=events.append).run()
    assert result.stop_reason == "non_finite" and result.steps == 1
    assert "diverged" in result.message and "no model was saved" in result.message
    assert [e for e in events if e.kind == "step"] == []  # no inf loss is reported as a step
    assert not (tmp_path / "m").exists()
