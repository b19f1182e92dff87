import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from charchat.config import SamplingSettings
from charchat.generation import (
    _longest_stop_prefix,
    context_after,
    generate_ids,
    refill_keep,
    sample_next,
    stream_text,
)
from charchat.tokenizer import CharTokenizer

import charchat.generation
from conftest import scripted_gpt, tiny_gpt


def sharp_gpt(block_size=8, vocab_size=12, seed=0, bias=True):
    """A float64 GPT with large random weights (embeddings std 1, the rest 0.5), so that its
    greedy choices depend on the context and are never near-ties: cached and uncached runs
    must agree token for token."""
    model = tiny_gpt(seed=seed, dtype=torch.float64, block_size=block_size, vocab_size=vocab_size,
                     n_layer=2, n_embd=32, n_head=4, bias=bias)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "wte" in name or "wpe" in name:
                p.normal_(0.0, 1.0, generator=gen)
            elif ".ln_" not in name:
                p.normal_(0.0, 0.5, generator=gen)
    return model


def reference_generate(model, prompt, n, pick):
    """Generation without a cache: a full forward pass over context_after's context per token."""
    bs = model.config.block_size
    ctx = list(prompt[-bs:])
    out = []
    for _ in range(n):
        logits, _ = model(torch.tensor([ctx]))
        tok = int(pick(logits[:, -1, :])[0])
        out.append(tok)
        ctx = context_after(ctx, tok, bs)
    return out


def greedy(logits):
    return logits.argmax(-1)


# ---------------------------------------------------------------------------------------------
# The context rule and cached generation


def test_context_after_rule():
    assert refill_keep(8) == 4 and refill_keep(1) == 1 and refill_keep(256) == 128
    assert context_after([1, 2], 3, 8) == [1, 2, 3]
    full = list(range(8))
    assert context_after(full, 99, 8) == [5, 6, 7, 99]
    assert len(context_after(full, 99, 8)) == refill_keep(8)


@pytest.mark.parametrize("prompt_len, n_new", [(1, 7), (3, 5), (8, 1)])
def test_cached_greedy_equals_uncached_within_block(prompt_len, n_new):
    model = sharp_gpt(block_size=8)
    prompt = [(3 * i + 1) % 12 for i in range(prompt_len)]
    expected = reference_generate(model, prompt, n_new, greedy)
    got = model.generate(torch.tensor([prompt]), n_new, temperature=0)[0, prompt_len:].tolist()
    assert got == expected


@pytest.mark.parametrize("block_size, prompt_len", [(8, 3), (8, 13), (5, 1), (2, 2), (1, 1)])
def test_cached_greedy_equals_uncached_past_block_size(block_size, prompt_len):
    # seed 3: a model whose greedy output does not fall into a 2-cycle for these prompts (the
    # check below), so that every refill is exercised on varied tokens.
    model = sharp_gpt(block_size=block_size, seed=3)
    prompt = [(5 * i + 2) % 12 for i in range(prompt_len)]
    n_new = 5 * block_size + 3  # several refills
    expected = reference_generate(model, prompt, n_new, greedy)
    assert len(set(expected)) > 2 or block_size < 3  # the model does not just repeat itself
    got = list(generate_ids(model, torch.tensor([prompt]), n_new, temperature=0))
    assert [int(t[0]) for t in got] == expected


@pytest.mark.parametrize("block_size", [4, 7, 8])
def test_cached_sampling_equals_uncached_past_block_size(block_size):
    model = sharp_gpt(block_size=block_size, seed=1)
    prompt = [3, 1, 4]
    gen = torch.Generator().manual_seed(11)
    expected = reference_generate(model, prompt, 60, lambda lg: sample_next(lg, 1.0, None, None, gen))
    got = model.generate(torch.tensor([prompt]), 60, temperature=1.0,
                         generator=torch.Generator().manual_seed(11))
    assert got[0, 3:].tolist() == expected


def test_cached_generation_without_biases():
    model = sharp_gpt(block_size=8, bias=False, seed=2)
    prompt = [1, 5, 9]
    expected = reference_generate(model, prompt, 30, greedy)
    assert len(set(expected)) > 2
    assert model.generate(torch.tensor([prompt]), 30, temperature=0)[0, 3:].tolist() == expected


def test_cached_sampling_equals_uncached_sampling():
    model = sharp_gpt(block_size=6)
    prompt = [4, 5]
    gen = torch.Generator().manual_seed(7)
    expected = reference_generate(
        model, prompt, 30, lambda lg: sample_next(lg, 1.0, None, 0.9, gen))
    out = model.generate(torch.tensor([prompt]), 30, temperature=1.0, top_p=0.9,
                         generator=torch.Generator().manual_seed(7))
    assert out[0, 2:].tolist() == expected


def test_batched_generation_equals_one_by_one():
    model = sharp_gpt(block_size=8)
    prompts = [[1, 2, 3], [9, 8, 7]]
    out = model.generate(torch.tensor(prompts), 20, temperature=0)
    for row, prompt in zip(out.tolist(), prompts):
        assert row == prompt + reference_generate(model, prompt, 20, greedy)


def test_generate_shape_and_stream():
    model = sharp_gpt(block_size=8)
    idx = torch.tensor([[1, 2, 3]])
    out = model.generate(idx, 12, temperature=0)
    assert out.shape == (1, 15) and out[:, :3].tolist() == [[1, 2, 3]]
    stream = list(model.generate_stream(idx, 12, temperature=0))
    assert all(isinstance(t, int) for t in stream)
    assert stream == out[0, 3:].tolist()
    sampled = model.generate(idx, 12, temperature=1.0, generator=torch.Generator().manual_seed(3))
    streamed = list(model.generate_stream(idx, 12, temperature=1.0,
                                          generator=torch.Generator().manual_seed(3)))
    assert streamed == sampled[0, 3:].tolist()
    assert model.generate(idx, 0).tolist() == [[1, 2, 3]]
    assert model.generate(torch.zeros(4, 2, dtype=torch.long), 5).shape == (4, 7)
    with pytest.raises(ValueError):
        list(model.generate_stream(torch.zeros(2, 2, dtype=torch.long), 3))
    with pytest.raises(ValueError):
        list(generate_ids(model, torch.zeros(1, 0, dtype=torch.long), 3))


def test_generation_restores_training_mode():
    model = sharp_gpt()
    model.train()
    model.generate(torch.tensor([[1]]), 3)
    assert model.training
    model.eval()
    model.generate(torch.tensor([[1]]), 3)
    assert not model.training


# ---------------------------------------------------------------------------------------------
# Choosing tokens

LOGITS = torch.tensor([[2.0, 0.5, 3.0, -1.0, 1.0, 0.0], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]])


def test_temperature_zero_and_top_k_one_are_argmax():
    expected = LOGITS.argmax(-1)
    assert torch.equal(sample_next(LOGITS, temperature=0), expected)
    for seed in range(20):
        got = sample_next(LOGITS, 1.0, top_k=1, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(got, expected)


def test_tiny_top_p_keeps_only_the_likeliest():
    many = LOGITS.repeat(500, 1)
    got = sample_next(many, 1.5, top_p=1e-6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(got, many.argmax(-1))


def test_top_p_keeps_the_fewest_tokens_reaching_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    many = probs.log().repeat(4000, 1)
    got = sample_next(many, 1.0, top_p=0.8, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(got, minlength=4)
    assert counts[2] == 0 and counts[3] == 0
    assert counts[0] / 4000 == pytest.approx(0.5 / 0.8, abs=0.03)
    got = sample_next(many, 1.0, top_p=0.81, generator=torch.Generator().manual_seed(0))
    assert set(got.tolist()) == {0, 1, 2}


@pytest.mark.parametrize("top_p, kept", [(0.25, 1), (0.5, 2), (0.6, 3), (0.75, 3)])
def test_top_p_counts_a_token_that_reaches_p_exactly_once(top_p, kept):
    # Four equal logits: probabilities of exactly 0.25, so sums reach 0.25, 0.5 and 0.75
    # exactly. The smallest set reaching p has ceil(p / 0.25) tokens; the next token, whose
    # likelier tokens already sum to p exactly, is left out. (Which of the tied tokens are kept
    # is up to the sort, the same for every row.)
    many = torch.zeros(2000, 4)
    got = sample_next(many, 1.0, top_p=top_p, generator=torch.Generator().manual_seed(0))
    assert len(set(got.tolist())) == kept


def test_mass_outside_top_k_is_never_sampled():
    logits = torch.randn(1, 20, generator=torch.Generator().manual_seed(0)) * 0.1
    top3 = set(torch.topk(logits, 3).indices[0].tolist())
    got = sample_next(logits.repeat(5000, 1), 1.0, top_k=3, generator=torch.Generator().manual_seed(1))
    assert set(got.tolist()) == top3


def test_sampling_follows_the_softmax_at_temperature():
    logits = torch.tensor([[1.0, 0.0, -1.0]])
    n = 20000
    got = sample_next(logits.repeat(n, 1), 2.0, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(got, minlength=3).double() / n
    torch.testing.assert_close(freq, torch.softmax(logits[0].double() / 2.0, -1), atol=0.015, rtol=0)


def test_seeded_sampling_is_reproducible():
    many = LOGITS.repeat(50, 1)
    a = sample_next(many, 1.0, generator=torch.Generator().manual_seed(42))
    b = sample_next(many, 1.0, generator=torch.Generator().manual_seed(42))
    c = sample_next(many, 1.0, generator=torch.Generator().manual_seed(43))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize(
    "bad", [dict(temperature=-0.1), dict(temperature=6), dict(top_k=-1), dict(top_k=1.5),
            dict(top_p=0), dict(top_p=1.1), dict(max_new_chars=0), dict(max_new_chars=2.0),
            dict(seed=2**64), dict(seed=-2**63 - 1), dict(seed=1.5)],
)
def test_sampling_settings_validation(bad):
    with pytest.raises(ValueError):
        SamplingSettings(**bad)
    for seed in (-2**63, -1, 2**64 - 1):  # a generator's whole range
        torch.Generator().manual_seed(SamplingSettings(seed=seed).seed)


def test_sampling_settings_dict_round_trip():
    s = SamplingSettings(temperature=0.5, top_k=7, top_p=None, max_new_chars=9, stop=["x"], seed=3)
    assert s.stop == ("x",)
    assert SamplingSettings.from_dict(s.to_dict()) == s


# ---------------------------------------------------------------------------------------------
# Streaming text

TOK = CharTokenizer("abcdefghijklmnopqrstuvwxyz .\n")


def run_stream(model, stop=(), max_new_chars=100, stop_ids=(), **kw):
    """Greedy text from a scripted model. Float weights: int8 rounding would blur the script's
    hand-set weights, and these tests are about the text rules, not the arithmetic."""
    outcome = {}
    kw.setdefault("quantize", None)
    s = SamplingSettings(temperature=0, max_new_chars=max_new_chars, stop=stop, **kw)
    pieces = list(stream_text(model, TOK, [TOK.stoi["a"]], s, stop_ids, outcome=outcome))
    assert all(pieces), "no empty pieces"
    return "".join(pieces), outcome


@pytest.mark.parametrize(
    "text, stops, expected",
    [
        ("", ["abc"], 0),
        ("xxab", ["abc"], 2),
        ("xxa", ["abc", "ab"], 1),
        ("xab", ["abc", "b"], 2),
        ("abc", ["abc"], 0),  # a whole stop is not a proper prefix
        ("xab", ["abc"], 2),
        ("xyz", ["abc"], 0),
        ("aa", ["aab"], 2),
        ("a", ["a"], 0),
    ],
)
def test_longest_stop_prefix(text, stops, expected):
    assert _longest_stop_prefix(text, stops) == expected


def test_stream_without_stops_runs_to_the_length_limit():
    text, outcome = run_stream(scripted_gpt(TOK, "hello world. more text"), max_new_chars=11)
    assert text == "hello world" and outcome == {"reason": "length"}


def test_stop_sequence_cuts_before_it():
    model = scripted_gpt(TOK, "hello world. more text")
    text, outcome = run_stream(model, stop=["o w", "zz"])
    assert text == "hell" and outcome["reason"] == "stop"
    # Both stops end at the same character, so both are in the held-back text at once: the
    # earliest wins, whatever their order.
    for stops in (["world", "o world"], ["o world", "world"]):
        text, _ = run_stream(model, stop=stops)
        assert text == "hell", stops
    text, _ = run_stream(model, stop=["he"])
    assert text == ""


@pytest.mark.parametrize("stops", [["abc", "bc"], ["bc", "abc"]])
def test_of_overlapping_stops_the_earliest_wins(stops):
    text, outcome = run_stream(scripted_gpt(TOK, "xabcabc"), stop=stops)
    assert text == "x" and outcome["reason"] == "stop"


def test_text_that_only_looks_like_a_stop_is_released():
    text, outcome = run_stream(scripted_gpt(TOK, "abab.abx"), stop=["abc", "."], max_new_chars=20)
    assert text == "abab" and outcome["reason"] == "stop"
    text, outcome = run_stream(scripted_gpt(TOK, "abab abx"), stop=["abc"], max_new_chars=8)
    assert text == "abab abx" and outcome["reason"] == "length"


def test_stop_id_ends_the_stream():
    model = scripted_gpt(TOK, ["h", "i", "<|end|>"])
    text, outcome = run_stream(model, stop_ids={TOK.end_id})
    assert text == "hi" and outcome == {"reason": "stop_id", "token": TOK.end_id}


@settings(max_examples=80)
@given(
    text=st.text("abc.", min_size=1, max_size=30),
    stops=st.lists(st.text("abc.", min_size=1, max_size=4), max_size=3),
    limit=st.integers(1, 35),
)
def test_stream_text_property(text, stops, limit):
    shown = (text + "\n" * limit)[:limit]  # the script's last character repeats
    hits = [shown.find(s) for s in stops if s in shown]
    expected = shown[: min(hits)] if hits else shown
    got, outcome = run_stream(scripted_gpt(TOK, text + "\n"), stop=stops, max_new_chars=limit)
    assert got == expected
    assert outcome["reason"] == ("stop" if hits else "length")


def test_sampling_defaults_to_int8_which_is_float_off_the_cpu():
    assert SamplingSettings().quantize == "int8"
    assert SamplingSettings(quantize=None).quantize is None
    with pytest.raises(ValueError, match="quantize"):
        SamplingSettings(quantize="int4")
    # Off the CPU the int8 setting falls back to float weights (no int8 kernel there).
    from charchat import GPT, GPTConfig
    from charchat.decoding import DecodeStep, int8_available

    assert not int8_available(torch.device("meta")) and not int8_available(torch.device("cuda"))
    with torch.device("meta"):
        model = GPT(GPTConfig(vocab_size=8, block_size=8, n_layer=1, n_head=1, n_embd=8))
    assert DecodeStep(model, model.new_cache(1), "int8").int8 is False


def test_turn_markers_are_left_out_unless_asked_for():
    from charchat.tokenizer import ASSISTANT, END, USER

    model = scripted_gpt(TOK, ["h", "i", END, ASSISTANT, "y", "o", END, USER])
    s = SamplingSettings(temperature=0, max_new_chars=8, quantize=None)
    assert "".join(stream_text(model, TOK, [TOK.stoi["a"]], s)) == "hiyo"
    shown = "".join(stream_text(model, TOK, [TOK.stoi["a"]], s, show_turns=True))
    assert shown == f"hi{END}{ASSISTANT}yo{END}{USER}"


def test_stream_text_with_a_real_model_cuts_before_a_stop():
    model = sharp_gpt(block_size=16, vocab_size=TOK.vocab_size).float()
    settings_ = SamplingSettings(temperature=0, max_new_chars=40)
    prompt = TOK.encode("the ")
    full = "".join(stream_text(model, TOK, prompt, settings_))
    assert len(full) >= 12
    stop = full[8:11]
    cut = full.find(stop)
    outcome = {}
    s = SamplingSettings(temperature=0, max_new_chars=40, stop=[stop])
    assert "".join(stream_text(model, TOK, prompt, s, outcome=outcome)) == full[:cut]
    assert outcome["reason"] == "stop"


def test_stream_text_seed_is_reproducible():
    model = sharp_gpt(block_size=16, vocab_size=TOK.vocab_size).float()
    s = SamplingSettings(temperature=1.0, top_p=None, max_new_chars=30, seed=5)
    a = "".join(stream_text(model, TOK, [5], s))
    b = "".join(stream_text(model, TOK, [5], s))
    c = "".join(stream_text(model, TOK, [5], SamplingSettings(**{**s.to_dict(), "seed": 6})))
    assert a == b and a != c


def test_closing_the_stream_stops_generation(monkeypatch):
    picks = []
    real = charchat.generation.sample_next
    monkeypatch.setattr(charchat.generation, "sample_next",
                        lambda *a, **k: picks.append(1) or real(*a, **k))
    stream = stream_text(scripted_gpt(TOK, "abcdefghij"), TOK, [4],
                         SamplingSettings(temperature=0, max_new_chars=50))
    assert next(stream) == "a" and next(stream) == "b"
    stream.close()
    assert len(picks) == 2


@pytest.mark.parametrize("limit", [1, 5, 9])
def test_max_new_chars_is_a_limit_on_characters(limit):
    model = scripted_gpt(TOK, "abcdefghijkl")
    text, outcome = run_stream(model, max_new_chars=limit)
    assert text == "abcdefghijkl"[:limit] and outcome == {"reason": "length"}
    # Text held back as the possible start of a stop is released at the limit, no more.
    text, _ = run_stream(model, max_new_chars=limit, stop=["abcdefghijkz"])
    assert text == "abcdefghijkl"[:limit]
