"""BPE tokenizers (charchat.bpe): GPT-2's vocabulary, ones trained on a corpus, and how both go
through the corpus, the store, training, sampling and the command line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from charchat import bpe, corpus as corpus_mod, idcache, store, tokenizers
from charchat.corpus import load_corpus
from charchat.generation import generate_ids
from charchat.model import GPT, GPTConfig
from charchat.tokenizer import TokenizerError

from conftest import TINY_FLAGS, pattern_text, run_cli, tiny_train_config

TINY = TINY_FLAGS


@pytest.fixture(scope="module")
def small_bpe():
    text = pattern_text(20000, seed=4)
    return bpe.train_bpe(iter([text]), 300)


# ---------------------------------------------------------------------------------------------
# GPT-2's vocabulary


def test_gpt2_is_r50k_base_with_the_turn_tokens_after_it():
    g = bpe.gpt2()
    assert g.n_ranks == 50256 and g.eot_id == 50256
    assert [g.user_id, g.assistant_id, g.system_id, g.end_id] == [50257, 50258, 50259, 50260]
    assert g.vocab_size == 50261 and g.padded_vocab_size == 50304
    # ids GPT-2 gives these words (they are in every GPT-2 tutorial)
    assert g.encode("Hello world") == [15496, 995]
    assert g.decode([15496, 995, g.eot_id]) == "Hello world<|endoftext|>"
    assert g.decode_text([15496, 995, g.eot_id]) == "Hello world"


def test_typed_control_tokens_are_text():
    g = bpe.gpt2()
    ids = g.encode("a <|endoftext|> b <|user|>")
    assert not set(ids) & set(g.special_ids.values())
    assert g.decode(ids) == "a <|endoftext|> b <|user|>"
    turn = g.encode_turn("user", "<|end|>").ids
    assert turn[0] == g.user_id and turn[-1] == g.end_id and g.end_id not in turn[1:-1]


@pytest.mark.parametrize("damage", ["flip", "truncate", "append"])
def test_a_changed_gpt2_file_is_refused(tmp_path, damage):
    data = bytearray(bpe.GPT2_FILE.read_bytes())
    if damage == "flip":
        data[1000] ^= 1
    elif damage == "truncate":
        data = data[:-10]
    else:
        data += b"IQ== 50256\n"
    path = tmp_path / "gpt2.tiktoken"
    path.write_bytes(bytes(data))
    with pytest.raises(TokenizerError) as e:
        bpe.read_gpt2_ranks(path)
    msg = str(e.value)
    assert str(path) in msg and "not GPT-2's vocabulary" in msg and "\n" not in msg


@pytest.mark.parametrize("data, problem", [
    (b"IQ==\n", "is not '<base64> <rank>'"),
    (b"IQ== 1\n", "has rank 1, expected 0"),
    (b"!!! 0\n", "is not '<base64> <rank>'"),
    (b"IQ== 0\nIQ== 1\n", "repeats a token"),
    (b"IQ== 0\n", "has no token"),
])
def test_a_bad_ranks_file_is_named_with_the_line(data, problem):
    with pytest.raises(TokenizerError, match=problem):
        bpe.parse_ranks(data, "x.tiktoken")


def test_ranks_round_trip():
    g = bpe.gpt2()
    assert bpe.format_ranks(g.enc._mergeable_ranks) == bpe.GPT2_FILE.read_bytes()


# ---------------------------------------------------------------------------------------------
# Trained vocabularies


def test_training_is_deterministic_and_round_trips(small_bpe, tmp_path):
    text = pattern_text(20000, seed=4)
    again = bpe.train_bpe(iter([text]), 300)
    assert again.ranks_sha256 == small_bpe.ranks_sha256 and again == small_bpe
    # twelve words leave fewer merges to learn than asked for: training stops when none is left
    assert 256 < small_bpe.n_ranks <= 300 and small_bpe.padded_vocab_size == 320
    # inside a model file: the ranks travel in the record
    back = tokenizers.from_json(small_bpe.to_json(inline_ranks=True))
    assert back == small_bpe and back.encode(text[:500]) == small_bpe.encode(text[:500])
    # in a model folder: tokenizer.json names the ranks file and its hash
    for name, data in tokenizers.folder_files(small_bpe).items():
        (tmp_path / name).write_bytes(data)
    assert "ranks" not in json.loads((tmp_path / "tokenizer.json").read_text())
    assert tokenizers.read_folder(tmp_path) == small_bpe
    # an edited ranks file is refused
    ranks = tmp_path / bpe.RANKS_FILE
    ranks.write_bytes(ranks.read_bytes() + b"\n")  # even a blank line changes the hash
    with pytest.raises(TokenizerError, match="SHA-256"):
        tokenizers.read_folder(tmp_path)


def test_a_size_out_of_range_is_refused():
    with pytest.raises(TokenizerError, match="from 260"):
        bpe.train_bpe(iter(["abc"]), 100)


# ---------------------------------------------------------------------------------------------
# Encoding in pieces gives the ids of the whole


_ALPHABET = st.sampled_from(list("ab cd\n\n  \t.,'!?0123456789éü日本 \u00a0\u2028") +
                            ["'s", "'ll", " the", "\r\n", "<|endoftext|>", "🙂", "x\ny"])


@given(st.lists(_ALPHABET, min_size=1, max_size=400), st.integers(1, 60))
def test_cutting_at_safe_places_keeps_the_ids(pieces, step):
    text = "".join(pieces)
    for tok in (bpe.gpt2(), bpe_for_property()):
        whole = tok.encode(text)
        parts, rest = [], text
        while rest:
            cut = idcache.safe_cut(rest, step)
            parts.append(rest[:cut])
            rest = rest[cut:]
        assert "".join(parts) == text
        assert [i for p in parts for i in tok.encode(p)] == whole


def test_safe_places_are_found_in_lines_and_between_words():
    text = "one two\nthree  four\n five"
    cuts = [idcache.safe_cut(text, n) for n in range(len(text))]
    assert set(cuts) == {3, 8, len(text)}  # "one| two\n|three"; none in "  " or "\n "


_PROPERTY_BPE = []


def bpe_for_property():
    """A small trained BPE (GPT-4's split pattern), built once."""
    if not _PROPERTY_BPE:
        _PROPERTY_BPE.append(bpe.train_bpe(iter([pattern_text(5000) + "é日本 🙂 123 'll"]), 320))
    return _PROPERTY_BPE[0]


@pytest.mark.parametrize("processes", [False, True])
def test_a_large_file_is_encoded_in_pieces(write_file, tmp_path, monkeypatch, processes,
                                           small_bpe):
    """Cut into pieces (and, past PROCESS_BYTES, encoded by worker processes), the ids are
    those of the whole text, in order, for GPT-2's vocabulary and a trained one."""
    monkeypatch.setattr(corpus_mod, "PIECE_CHARS", 500)
    monkeypatch.setattr(idcache, "PROCESS_BYTES", 0 if processes else 1 << 40)
    monkeypatch.setattr(corpus_mod, "CONVERSATIONS_PER_TASK", 3)
    text = pattern_text(30000, seed=2).replace(".\n", ". ")  # long lines: cuts between words
    conv = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    paths = [write_file("big.txt", text), write_file("d.jsonl", (json.dumps(conv) + "\n") * 10)]
    for tok in (bpe.gpt2(), small_bpe):
        c = load_corpus(paths, tokenizer=tok, cache_dir=tmp_path / "cache")
        dialogue = [tok.user_id, *tok.encode("hi"), tok.end_id,
                    tok.assistant_id, *tok.encode("yo"), tok.end_id] * 10
        assert np.asarray(c.ids).tolist() == tok.encode(text) + dialogue
        assert c.ids.dtype == np.uint16 and c.summary.tokens == len(c.ids)


# ---------------------------------------------------------------------------------------------
# Streaming


def test_a_character_split_across_tokens_is_never_shown_half():
    g = bpe.gpt2()
    text = "日本語 🙂 naïve"
    ids = g.encode(text)
    assert any(len(g.token_bytes(i).decode("utf-8", "ignore")) == 0 for i in ids)  # split
    d = g.stream_decoder()
    pieces = [d.feed(i) for i in ids] + [d.flush()]
    assert "".join(pieces) == text and not any("\ufffd" in p for p in pieces)


def test_stream_text_uses_the_decoder(monkeypatch):
    """Sampling through stream_text shows no U+FFFD for a split character."""
    from charchat.config import SamplingSettings
    from charchat import generation

    g = bpe.gpt2()
    want = g.encode("日本")
    monkeypatch.setattr(generation, "generate_ids",
                        lambda *a, **k: iter(torch.tensor([t]) for t in want))
    model = GPT(GPTConfig(vocab_size=g.padded_vocab_size, block_size=8, n_layer=1, n_head=1,
                          n_embd=8))
    pieces = list(generation.stream_text(model, g, [g.eot_id], SamplingSettings(max_new_chars=8)))
    assert "".join(pieces) == "日本" and all("\ufffd" not in p for p in pieces)


def test_padded_ids_are_never_sampled():
    """Padding rows made the likeliest tokens by hand: with the limit they are never picked."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=64, block_size=8, n_layer=1, n_head=2, n_embd=16,
                          bias=True)).eval()
    with torch.no_grad():
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.fill_(1.0)
        model.lm_head.weight[50:] = 5.0  # logits 80 for ids 50..63, |a few| for the rest
    idx = torch.tensor([[1, 2, 3]])
    for temperature in (0.0, 1.0):
        free = [int(t) for t in generate_ids(model, idx, 12, temperature)]
        assert all(t >= 50 for t in free)  # the test can fail: unmasked, padding wins
        kept = [int(t) for t in generate_ids(model, idx, 12, temperature, vocab_limit=50)]
        assert all(t < 50 for t in kept)


# ---------------------------------------------------------------------------------------------
# Corpora


def test_gpt2_corpus_ids_and_sizes(write_file, tmp_path):
    text = "Hello world. Ünïcode 日本語\n" * 200
    path = write_file("a.txt", text)
    c = load_corpus([path], spec="gpt2", cache_dir=tmp_path / "cache")
    g = bpe.gpt2()
    assert np.asarray(c.ids).tolist() == g.encode(text)
    val = g.decode(np.asarray(c.val_ids).tolist())
    assert c.val_chars == len(val) and c.val_bytes == len(val.encode())
    assert c.chars_per_token == pytest.approx(len(val) / len(c.val_ids))
    assert c.summary.tokenizer == "gpt2" and c.summary.chars == len(text)
    assert "gpt2 tokens" in c.summary.describe()
    again = load_corpus([path], spec="gpt2", cache_dir=tmp_path / "cache")  # from the cache
    assert again.cache_path == c.cache_path and again.val_chars == c.val_chars


def test_dialogue_turns_are_special_tokens(write_file, tmp_path):
    g = bpe.gpt2()
    conv = {"messages": [{"role": "user", "content": "hi <|endoftext|>"},
                         {"role": "assistant", "content": "héllo"}]}
    path = write_file("d.jsonl", (json.dumps(conv) + "\n") * 30)
    c = load_corpus([path], spec="gpt2", cache_dir=tmp_path / "cache")
    one = [g.user_id, *g.encode("hi <|endoftext|>"), g.end_id,
           g.assistant_id, *g.encode("héllo"), g.end_id]
    assert np.asarray(c.ids).tolist() == one * 30
    assert g.eot_id not in np.asarray(c.ids)


def test_a_trained_vocabulary_is_kept_in_the_cache(write_file, tmp_path, monkeypatch):
    path = write_file("a.txt", pattern_text(8000))
    c = load_corpus([path], spec="bpe:300", cache_dir=tmp_path / "cache")
    assert c.tokenizer.name == "bpe:300" and 256 < c.tokenizer.n_ranks <= 300
    assert np.asarray(c.ids).tolist() == c.tokenizer.encode(path.read_text())
    monkeypatch.setattr(bpe, "train_bpe", lambda *a, **k: pytest.fail("trained again"))
    again = load_corpus([path], spec="bpe:300", cache_dir=tmp_path / "cache")
    assert again.tokenizer == c.tokenizer


def test_a_character_corpus_is_written_without_a_map(write_file, tmp_path, monkeypatch):
    """The id file is written with plain writes (a writable map of it held ~2x the text in
    memory); its header is right for numpy."""
    real = np.memmap

    def read_only(*a, **k):
        assert k.get("mode", "r+") == "r", "mapped for writing"
        return real(*a, **k)

    monkeypatch.setattr(np, "memmap", read_only)
    text = pattern_text(5000)
    c = load_corpus([write_file("a.txt", text)], cache_dir=tmp_path / "cache")
    assert c.tokenizer.decode(np.asarray(c.ids)) == text
    assert c.val_chars == len(c.val_ids) and c.chars_per_token == 1.0


def test_corpus_from_text_refuses_a_lone_surrogate():
    with pytest.raises(corpus_mod.CorpusError, match="unpaired surrogate"):
        corpus_mod.corpus_from_text("abc\ud800def")


# ---------------------------------------------------------------------------------------------
# Training, listing, evaluating, resuming


def test_training_a_bpe_model_reports_bits_per_character(write_file, tmp_path):
    from charchat.trainer import Trainer

    text = pattern_text(12000)
    c = load_corpus([write_file("a.txt", text)], spec="bpe:300", cache_dir=tmp_path / "cache")
    events = []
    result = Trainer(c, tiny_train_config(max_steps=10, eval_interval=5, tokenizer="bpe:300"),
                     name="b", on_event=events.append).run()
    evals = [e for e in events if e.kind == "eval"]
    assert evals
    for e in evals:
        assert e.bpc == pytest.approx(e.val_loss / math.log(2) / c.chars_per_token)
        assert e.bpb == pytest.approx(e.val_loss / math.log(2) / c.bytes_per_token)
    assert c.chars_per_token > 1.5  # a BPE token holds several characters of this text
    folder = result.path
    assert (folder / bpe.RANKS_FILE).exists()
    loaded = store.load_model("b")
    assert loaded.tokenizer == c.tokenizer
    assert loaded.model.config.vocab_size == 320
    listed = {m.name: m for m in store.list_models()}["b"]
    assert listed.tokenizer == "bpe:300"
    assert listed.best_bpc == pytest.approx(listed.best_val_loss / math.log(2) / c.chars_per_token)


cli = run_cli


def test_the_command_line_trains_lists_evaluates_samples_and_resumes(capsys, write_file):
    text = write_file("t.txt", pattern_text(12000))
    code, out, err = cli(capsys, "train", text, "--name", "g", "--tokenizer", "bpe:300",
                         "--max-steps", "10", *TINY)
    assert code == 0, err
    assert "bpe:300 tokens" in out and "bpc" in out
    code, out, _ = cli(capsys, "models", "--json")
    m = json.loads(out)
    assert m["tokenizer"] == "bpe:300" and m["best_bpc"] > 0
    code, out, err = cli(capsys, "eval", "--model", "g", text)
    r = json.loads(out)
    assert code == 0 and r["chars"] > r["tokens"] and r["bpc"] < r["val_loss"] / math.log(2)
    code, out, err = cli(capsys, "sample", "--model", "g", "--prompt", "The", "--chars", "20")
    # (an untrained byte-level model may write bytes that are not UTF-8: those show as U+FFFD)
    assert code == 0 and out.startswith("The") and len(out) > 4
    code, out, err = cli(capsys, "train", "--resume", "g", "--max-steps", "5", "--quiet")
    assert code == 0, err
    # the tokenizer is part of the model's shape: resuming cannot change it
    code, _, err = cli(capsys, "train", "--resume", "g", "--tokenizer", "gpt2", "--max-steps", "5")
    assert code != 0 and "tokenizer" in err and err.count("\n") == 1


@pytest.mark.parametrize("value, message", [
    ("bpe:10", "bpe:N needs N from 260"),
    ("words", "unknown tokenizer 'words': use char, gpt2 or bpe:N"),
])
def test_a_bad_tokenizer_is_refused_as_bad_usage(capsys, write_file, value, message):
    """As argparse refuses every flag's bad value: the usage, then one line saying why."""
    text = write_file("t.txt", pattern_text(3000))
    with pytest.raises(SystemExit) as e:
        cli(capsys, "train", text, "--tokenizer", value, "--max-steps", "3", *TINY)
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err.splitlines()[-1]


def test_resume_refuses_a_changed_ranks_file(capsys, write_file, charchat_home):
    text = write_file("t.txt", pattern_text(12000))
    assert cli(capsys, "train", text, "--name", "r", "--tokenizer", "bpe:300", "--max-steps",
               "5", "--quiet", *TINY)[0] == 0
    ranks = charchat_home / "models" / "r" / bpe.RANKS_FILE
    ranks.write_bytes(ranks.read_bytes()[:-20])
    code, _, err = cli(capsys, "train", "--resume", "r", "--max-steps", "5")
    assert code == 1 and str(ranks.parent / "tokenizer.json") in err and "SHA-256" in err
    assert err.count("\n") == 1


def test_a_bpe_reply_is_cut_at_the_longest_reply_in_characters(monkeypatch):
    """max_new_chars counts characters for a BPE model too (a token holds several)."""
    from charchat.config import SamplingSettings
    from charchat import generation

    g = bpe.gpt2()
    want = g.encode(" the cat sat on the mat and the dog ran") * 3
    monkeypatch.setattr(generation, "generate_ids",
                        lambda model, idx, n, *a, **k: iter(torch.tensor([t]) for t in want[:n]))
    model = GPT(GPTConfig(vocab_size=g.padded_vocab_size, block_size=8, n_layer=1, n_head=1,
                          n_embd=8))
    outcome = {}
    text = "".join(generation.stream_text(model, g, [g.eot_id],
                                          SamplingSettings(max_new_chars=10), outcome=outcome))
    assert text == " the cat s" and outcome["reason"] == "length"


def test_ids_fit_the_smallest_type():
    assert idcache.id_dtype(65536) is np.uint16 and idcache.id_dtype(65537) is np.uint32
    assert idcache.id_dtype(bpe.gpt2().vocab_size) is np.uint16


def test_a_dialogue_bpe_model_chats(write_file, tmp_path):
    """A dialogue model on a trained BPE: the prompt holds turn tokens, and what the user typed
    is text, even a turn marker."""
    from charchat.chat import ChatSession
    from charchat.config import SamplingSettings

    tok = bpe_for_property()
    model = GPT(GPTConfig(vocab_size=tok.padded_vocab_size, block_size=64, n_layer=1, n_head=2,
                          n_embd=16)).eval()
    session = ChatSession(model, tok, "dialogue", SamplingSettings(temperature=0.0,
                                                                   max_new_chars=30))
    session.messages.clear()
    session.reply("hi <|end|>")
    typed = [tok.user_id, *tok.encode("hi <|end|>"), tok.end_id, tok.assistant_id]
    assert session.build_prompt()[:len(typed)] == typed
    assert tok.end_id not in typed[1:-2]  # the typed marker is text
    assert session.messages[-1].role == "assistant"
