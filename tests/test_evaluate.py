import math
import threading

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from charchat.evaluate import val_loss, window_starts, windows_loss

from conftest import tiny_gpt


def test_window_starts_rule():
    assert window_starts(33, 8).tolist() == [0, 8, 16, 24]  # the last window reads id 32
    assert window_starts(32, 8).tolist() == [0, 8, 16]
    assert window_starts(9, 8).tolist() == [0]
    assert window_starts(8, 8).tolist() == []
    assert window_starts(0, 8).tolist() == []


def test_capped_window_starts_are_evenly_spaced():
    starts = window_starts(1001, 10, max_windows=5)
    assert starts.tolist() == [0, 250, 500, 740, 990]
    assert window_starts(1001, 10, max_windows=500).tolist() == window_starts(1001, 10).tolist()


def manual_loss(model, ids, starts):
    bs = model.config.block_size
    losses = []
    with torch.no_grad():
        for s in starts:
            x = torch.tensor(ids[s : s + bs], dtype=torch.long)[None]
            y = torch.tensor(ids[s + 1 : s + bs + 1], dtype=torch.long)
            losses.append(F.cross_entropy(model(x)[0][0], y, reduction="sum").item())
    return sum(losses) / (len(starts) * bs)


@pytest.mark.parametrize("batch_tokens", [8, 24, 16384, None])  # None: the device default
def test_windows_loss_is_the_mean_cross_entropy(batch_tokens):
    model = tiny_gpt(block_size=8, dtype=torch.float64)
    ids = np.random.default_rng(0).integers(0, 12, size=100).astype(np.uint16)
    starts = window_starts(len(ids), 8)
    loss, n = windows_loss(model, ids, starts, batch_tokens=batch_tokens)
    assert n == len(starts) * 8 == 96
    assert loss == pytest.approx(manual_loss(model, ids, starts), rel=1e-6)  # float32 CE


def test_val_loss_figures():
    model = tiny_gpt(block_size=8)
    ids = np.random.default_rng(1).integers(0, 12, size=50).astype(np.uint16)
    r = val_loss(model, ids)
    assert set(r) == {"val_loss", "bpc", "ppl", "chars"}
    assert r["chars"] == 48
    assert r["bpc"] == pytest.approx(r["val_loss"] / math.log(2))
    assert r["ppl"] == pytest.approx(math.exp(r["val_loss"]))
    # An untrained model is close to uniform over its 12 ids.
    assert r["val_loss"] == pytest.approx(math.log(12), abs=0.1)


def test_too_short_and_cancelled():
    model = tiny_gpt(block_size=8)
    with pytest.raises(ValueError, match="one window of 9"):
        val_loss(model, np.zeros(8, dtype=np.uint16))
    cancel = threading.Event()
    cancel.set()
    loss, n = windows_loss(model, np.zeros(50, dtype=np.uint16), window_starts(50, 8), cancel=cancel)
    assert n == 0 and math.isnan(loss)


def test_training_mode_is_restored():
    model = tiny_gpt(block_size=8, dropout=0.5)
    model.train()
    ids = np.zeros(50, dtype=np.uint16)
    a = val_loss(model, ids)["val_loss"]
    assert model.training
    assert val_loss(model, ids)["val_loss"] == a  # no dropout while evaluating


def test_a_large_vocabulary_is_scored_in_smaller_batches(monkeypatch):
    """The logits of one batch stay under MAX_LOGITS floats, and the loss does not change."""
    import charchat.evaluate as ev
    from conftest import tiny_gpt

    model = tiny_gpt(vocab_size=64, block_size=8)
    ids = np.random.default_rng(0).integers(0, 64, 2000)
    starts = ev.window_starts(len(ids), 8)
    whole, n = ev.windows_loss(model, ids, starts, batch_tokens=4096)
    seen = []
    real = model.forward

    def forward(x, *a, **k):
        seen.append(x.numel())
        return real(x, *a, **k)

    monkeypatch.setattr(model, "forward", forward)
    monkeypatch.setattr(ev, "MAX_LOGITS", 64 * 20)  # 20 positions: two windows of 8
    cut, n2 = ev.windows_loss(model, ids, starts, batch_tokens=4096)
    assert max(seen) == 16 and n2 == n and cut == pytest.approx(whole, rel=1e-5)
