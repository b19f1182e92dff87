"""The lean one-token decode step, in float and in int8, against GPT.forward."""

import pytest
import torch

from charchat import decoding
from charchat.decoding import DecodeStep, DecodeWeightsCache, int8_available
from charchat.config import SamplingSettings
from charchat.generation import generate_ids

from conftest import tiny_gpt


@torch.no_grad()
def _decode_logits(model, ids, quantize=None):
    """Logits after each position, reading the prompt's first token by forward and the rest
    one at a time through DecodeStep."""
    return _decode_batch_logits(model, [ids], quantize)[0]


@torch.no_grad()
def _decode_batch_logits(model, rows, quantize=None):
    """The same for a batch of equally long sequences: (B, T, vocab)."""
    ids = torch.tensor(rows)
    cache = model.new_cache(len(rows))
    step = DecodeStep(model, cache, quantize)
    out = [model(ids[:, :1], cache=cache)[0][:, -1]]
    for t in range(1, ids.size(1)):
        out.append(step(ids[:, t]))
    return torch.stack(out, dim=1)


def _with_random_biases(model):
    """GPT-2 initialises biases to zero, which would hide a bias the decode path forgot."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.1)
    return model


@pytest.mark.parametrize("bias", [True, False])
def test_decode_step_equals_forward(bias):
    model = _with_random_biases(tiny_gpt(bias=bias, dtype=torch.float64))
    ids = torch.randint(0, model.config.vocab_size, (model.config.block_size,)).tolist()
    full, _ = model(torch.tensor([ids]))
    torch.testing.assert_close(_decode_logits(model, ids), full[0], atol=1e-10, rtol=0)


@pytest.mark.parametrize("bias", [True, False])
def test_batched_decode_step_equals_forward(bias):
    """Several sequences at once: each row's keys and values land in its own cache rows."""
    model = _with_random_biases(tiny_gpt(bias=bias, dtype=torch.float64))
    rows = torch.randint(0, model.config.vocab_size, (3, model.config.block_size))
    full, _ = model(rows)
    torch.testing.assert_close(_decode_batch_logits(model, rows.tolist()), full, atol=1e-10,
                               rtol=0)


def test_the_step_is_scripted_on_this_torch():
    """A canary: on the torch this project pins, TorchScript works and the CPU uses it. On a
    torch without it the Python fallback is the intended behaviour and this test must change."""
    assert decoding._scripted() is not None
    model = tiny_gpt()
    assert DecodeStep(model, model.new_cache(1))._run is decoding._scripted()


def test_a_scripted_step_that_fails_when_run_falls_back_to_python(monkeypatch):
    """A graph that compiles but fails when run (a future torch) must not break generation:
    the step retries in Python, from the same position, and stays there."""
    model = tiny_gpt(dtype=torch.float64)
    ids = torch.randint(0, model.config.vocab_size, (8,)).tolist()
    want = _decode_logits(model, ids)
    calls = []

    def broken(*args):
        calls.append(1)
        raise RuntimeError("the graph failed")

    monkeypatch.setattr(decoding, "_SCRIPTED", [broken])
    cache = model.new_cache(1)
    step = DecodeStep(model, cache)
    assert step._run is broken
    got = [model(torch.tensor([ids[:1]]), cache=cache)[0][:, -1]]
    for t in ids[1:]:
        got.append(step(torch.tensor([t])))
    torch.testing.assert_close(torch.cat(got), want, atol=1e-10, rtol=0)
    assert calls == [1] and decoding._SCRIPTED == [None]
    assert cache.length == len(ids)


def test_two_threads_compile_the_step_once(monkeypatch):
    import threading

    monkeypatch.setattr(decoding, "_SCRIPTED", [])
    compiled = []
    real = torch.jit.script

    def counting(fn):
        compiled.append(fn)
        return real(fn)

    monkeypatch.setattr(torch.jit, "script", counting)
    start = threading.Barrier(2)
    got = []

    def worker():
        start.wait()
        got.append(decoding._scripted())

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(compiled) == 1 and got[0] is got[1] is not None


@pytest.mark.parametrize("quantize", [None, "int8"])
@pytest.mark.parametrize("batch", [1, 2])
def test_python_step_equals_scripted_step(monkeypatch, quantize, batch):
    """The Python function (used off the CPU, or where TorchScript fails) computes what its
    TorchScript compilation does (to float rounding: the graph may fuse an add into addmm)."""
    if quantize and not int8_available(torch.device("cpu")):
        pytest.skip("no int8 kernel in this torch")
    torch.manual_seed(3)
    model = _with_random_biases(tiny_gpt(n_layer=2, n_embd=64, n_head=4))
    rows = torch.randint(0, 12, (batch, 12)).tolist()
    scripted = _decode_batch_logits(model, rows, quantize)
    monkeypatch.setattr(decoding, "_scripted", lambda: None)
    python = _decode_batch_logits(model, rows, quantize)
    torch.testing.assert_close(python, scripted, atol=1e-5, rtol=0)


def test_decode_step_refuses_a_full_cache():
    model = tiny_gpt()
    cache = model.new_cache(1)
    model(torch.zeros(1, model.config.block_size, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="full"):
        DecodeStep(model, cache)(torch.tensor([0]))


needs_int8 = pytest.mark.skipif(not int8_available(torch.device("cpu")),
                                reason="no int8 kernel in this torch")


@needs_int8
@pytest.mark.parametrize("bias", [True, False])
def test_int8_decode_is_close_to_float(bias):
    torch.manual_seed(0)
    model = _with_random_biases(tiny_gpt(n_embd=64, n_head=4, bias=bias))
    ids = torch.randint(0, model.config.vocab_size, (model.config.block_size,)).tolist()
    exact = torch.log_softmax(_decode_logits(model, ids), -1)
    approx = torch.log_softmax(_decode_logits(model, ids, "int8"), -1)
    # int8 weights and bf16 activations: close, not equal.
    assert not torch.equal(exact, approx)
    kl = (exact.exp() * (exact - approx)).sum(-1)
    assert float(kl.max()) < 1e-2
    # Generation runs end to end through it, honouring the length.
    out = list(generate_ids(model, torch.tensor([[1]]), 20, temperature=0, quantize="int8"))
    assert len(out) == 20


@needs_int8
@pytest.mark.parametrize("bias", [True, False])
def test_int8_decode_equals_forward_with_the_rounded_weights(bias):
    """What int8 computes: GPT.forward with every block matrix rounded to int8 per output row
    (and the attention scale folded in first), up to bfloat16 rounding of the activations
    around each product. Much tighter than the float comparison above, so a slip in the int8
    path itself (a missed bias, a wrong dtype route) shows."""
    model = _with_random_biases(tiny_gpt(n_layer=2, n_embd=64, n_head=4, bias=bias))
    rounded = tiny_gpt(n_layer=2, n_embd=64, n_head=4, bias=bias)
    rounded.load_state_dict(model.state_dict())
    hd = 64 // 4
    with torch.no_grad():
        for block in rounded.transformer.h:
            for lin in (block.attn.c_attn, block.attn.c_proj, block.mlp.c_fc, block.mlp.c_proj):
                w = lin.weight
                if lin is block.attn.c_attn:  # int8 rounds the query rows after scaling them
                    w[:64] /= hd ** 0.5
                scale = w.abs().amax(dim=1, keepdim=True) / 127.0
                w.copy_(torch.round(w / scale).clamp(-127, 127) * scale.bfloat16().float())
                if lin is block.attn.c_attn:
                    w[:64] *= hd ** 0.5
    ids = torch.randint(0, 12, (16,)).tolist()
    want = torch.log_softmax(rounded(torch.tensor([ids]))[0][0], -1)
    got = torch.log_softmax(_decode_logits(model, ids, "int8"), -1)
    torch.testing.assert_close(got, want, atol=2e-2, rtol=0)
    assert (got - want).abs().mean() < 3e-3


@needs_int8
def test_int8_is_used_only_where_the_kernel_is_right():
    """torch's int8 CPU kernel gave wrong numbers for inner sizes that are not multiples of 16
    (and crashed on some): such models read tokens through float weights, the same logits."""
    torch.manual_seed(0)
    odd = tiny_gpt(n_layer=1, n_embd=24, n_head=2)
    assert not int8_available(torch.device("cpu"), 24) and int8_available(torch.device("cpu"), 32)
    assert DecodeStep(odd, odd.new_cache(1), "int8").int8 is False
    rows = [[1, 2, 3, 4, 5, 6]]
    torch.testing.assert_close(_decode_batch_logits(odd, rows, "int8"),
                               _decode_batch_logits(odd, rows, None), atol=0, rtol=0)
    wide = tiny_gpt(n_embd=32, n_head=2)
    assert DecodeStep(wide, wide.new_cache(1), "int8").int8 is True


def test_batched_int8_decode_equals_one_row_at_a_time():
    torch.manual_seed(1)
    model = _with_random_biases(tiny_gpt(n_layer=2, n_embd=64, n_head=4))
    rows = torch.randint(0, 12, (3, 16)).tolist()
    batched = _decode_batch_logits(model, rows, "int8")
    alone = torch.stack([_decode_logits(model, r, "int8") for r in rows])
    torch.testing.assert_close(batched, alone, atol=1e-2, rtol=0)
    # The rows differ, so a mix-up between them would not pass unseen.
    assert (alone[0] - alone[1]).abs().max() > 0.1


def _greedy(model, quantize, weights=None):
    return [int(t) for t in generate_ids(model, torch.tensor([[1]]), 12, temperature=0,
                                         quantize=quantize, weights=weights)]


def _fused_adamw_step(model):
    """A training step whose in-place writes torch's version counters do not see."""
    opt = torch.optim.AdamW(model.parameters(), lr=0.5, fused=True)
    model(torch.tensor([[1, 2, 3]]), torch.tensor([[2, 3, 4]]))[1].backward()
    opt.step()


@pytest.mark.parametrize("quantize", [None, "int8"])
def test_plain_generation_always_reads_the_current_weights(quantize):
    if quantize and not int8_available(torch.device("cpu")):
        pytest.skip("no int8 kernel in this torch")
    model = tiny_gpt()
    before = _greedy(model, quantize)
    _fused_adamw_step(model)
    fresh = tiny_gpt()
    fresh.load_state_dict(model.state_dict())
    assert _greedy(model, quantize) == _greedy(fresh, quantize) != before


@pytest.mark.parametrize("quantize", [None, "int8"])
def test_a_weights_cache_is_reused_until_the_model_changes(quantize):
    if quantize and not int8_available(torch.device("cpu")):
        pytest.skip("no int8 kernel in this torch")
    int8 = quantize == "int8"
    model = tiny_gpt()
    cache = DecodeWeightsCache()
    first = cache.get(model, int8)
    assert cache.get(model, int8) is first  # unchanged: reused
    before = _greedy(model, quantize, cache)
    assert before == _greedy(model, quantize)
    # Writes that bump version counters (no_grad in-place ops, load_state_dict) are seen.
    model.load_state_dict(tiny_gpt(seed=5).state_dict())
    assert cache.get(model, int8) is not first
    assert _greedy(model, quantize, cache) == _greedy(tiny_gpt(seed=5), quantize)
    # Another model: other weights.
    assert _greedy(tiny_gpt(seed=7), quantize, cache) == _greedy(tiny_gpt(seed=7), quantize)
    # A fused optimizer step is not seen by the counters: clear() is the holder's duty.
    stale = _greedy(model, quantize, cache)
    _fused_adamw_step(model)
    cache.clear()
    assert _greedy(model, quantize, cache) == _greedy(model, quantize) != stale


def test_quantize_setting_is_validated():
    assert SamplingSettings(quantize="int8").quantize == "int8"
    with pytest.raises(ValueError, match="quantize"):
        SamplingSettings(quantize="int4")
    with pytest.raises(ValueError, match="quantize"):
        DecodeStep(tiny_gpt(), tiny_gpt().new_cache(1), "fp8")
