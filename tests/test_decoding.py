"""The lean one-token decode step, in float and in int8, against GPT.forward."""

import pytest
import torch

from charchat.decoding import DecodeStep, int8_available
from charchat.generation import SamplingSettings, generate_ids

from conftest import tiny_gpt


@torch.no_grad()
def _decode_logits(model, ids, quantize=None):
    """Logits after each position, reading the prompt's first token by forward and the rest
    one at a time through DecodeStep."""
    cache = model.new_cache(1)
    step = DecodeStep(model, cache, quantize)
    out = [model(torch.tensor([ids[:1]]), cache=cache)[0][0, -1]]
    for t in ids[1:]:
        out.append(step(torch.tensor([t]))[0])
    return torch.stack(out)


@pytest.mark.parametrize("bias", [True, False])
def test_decode_step_equals_forward(bias):
    model = tiny_gpt(bias=bias, dtype=torch.float64)
    ids = torch.randint(0, model.config.vocab_size, (model.config.block_size,)).tolist()
    full, _ = model(torch.tensor([ids]))
    torch.testing.assert_close(_decode_logits(model, ids), full[0], atol=1e-10, rtol=0)


def test_decode_step_refuses_a_full_cache():
    model = tiny_gpt()
    cache = model.new_cache(1)
    model(torch.zeros(1, model.config.block_size, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="full"):
        DecodeStep(model, cache)(torch.tensor([0]))


@pytest.mark.skipif(not int8_available(torch.device("cpu")), reason="no int8 kernel in this torch")
def test_int8_decode_is_close_to_float():
    torch.manual_seed(0)
    model = tiny_gpt(n_embd=64, n_head=4)
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


def test_quantize_setting_is_validated():
    assert SamplingSettings(quantize="int8").quantize == "int8"
    with pytest.raises(ValueError, match="quantize"):
        SamplingSettings(quantize="int4")
    with pytest.raises(ValueError, match="quantize"):
        DecodeStep(tiny_gpt(), tiny_gpt().new_cache(1), "fp8")
