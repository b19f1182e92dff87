import threading
from pathlib import Path

import pytest

from charchat.chat import ChatSession, Message, sample
from charchat.config import SamplingSettings
from charchat.store import LoadedModel
from charchat.tokenizer import CharTokenizer

from conftest import scripted_gpt, tiny_gpt

TOK = CharTokenizer("abcdefghijklmnopqrstuvwxyz .!?\n")
U, A, E = TOK.user_id, TOK.assistant_id, TOK.end_id
# Float weights: several models here are scripted by hand, and int8 rounding would blur them.
GREEDY = SamplingSettings(temperature=0, max_new_chars=20, quantize=None)


def ids(text: str) -> list[int]:
    return TOK.encode(text)


def session(kind="dialogue", block_size=64, bigram=None, settings=GREEDY, **kw) -> ChatSession:
    """A chat session with a tiny model. bigram: what follows what in its replies."""
    if bigram is None:
        model = tiny_gpt(vocab_size=TOK.vocab_size, block_size=block_size)
    else:
        model = scripted_gpt(TOK, bigram=bigram, block_size=block_size)
    return ChatSession(model, TOK, kind=kind, settings=settings, **kw)


def with_messages(s: ChatSession, *pairs) -> ChatSession:
    s.load_messages([{"role": r, "content": c} for r, c in pairs])
    return s


# ---------------------------------------------------------------------------------------------
# Prompts


def test_dialogue_prompt_format():
    s = with_messages(session(), ("user", "hi"), ("assistant", "ok"), ("user", "yo"))
    assert s.build_prompt() == [U, *ids("hi"), E, A, *ids("ok"), E, U, *ids("yo"), E, A]


def test_old_turns_are_dropped_whole_newest_kept():
    # block 24: the prompt may use 24 - 24 // 4 = 18 ids, the final assistant token included.
    # Three turns of 5 ids fit; the two ids left over are not filled with part of an old turn.
    s = with_messages(session(block_size=24), ("user", "aaa"), ("assistant", "bbb"),
                      ("user", "ccc"), ("assistant", "ddd"), ("user", "eee"))
    assert s.build_prompt() == [U, *ids("ccc"), E, A, *ids("ddd"), E, U, *ids("eee"), E, A]


def test_an_overlong_message_keeps_its_end_and_role_token():
    s = with_messages(session(block_size=16), ("user", "old"), ("assistant", "reply"),
                      ("user", "abcdefghijklmnopqrstuvwxyz"))
    prompt = s.build_prompt()
    assert len(prompt) == 16 - 16 // 4
    assert prompt == [U, *ids("rstuvwxyz"), E, A]


@pytest.mark.parametrize("block_size", [1, 2])
def test_prompt_fits_even_a_tiny_context(block_size):
    s = with_messages(session(block_size=block_size), ("user", "hello"))
    assert len(s.build_prompt()) <= block_size


def test_prompt_never_exceeds_its_budget():
    for block_size in range(3, 40):
        s = with_messages(session(block_size=block_size), ("user", "hello there"),
                          ("assistant", "hi"), ("user", "abcdefghijklmnopqrstuvwxyz" * 2))
        prompt = s.build_prompt()
        assert len(prompt) <= block_size - max(1, block_size // 4)
        assert prompt[-1] == A


def test_prose_prompt_joins_turns():
    s = with_messages(session("prose"), ("user", "hello"), ("assistant", " there."),
                      ("user", "more"))
    assert s.build_prompt() == ids("hello there.\n\nmore")


def test_prose_prompt_keeps_the_end_of_an_overlong_message():
    s = with_messages(session("prose", block_size=16), ("user", "abcdefghijklmnopqrstuvwxyz"))
    assert s.build_prompt() == ids("opqrstuvwxyz")


def test_mixed_corpus_chats_as_dialogue():
    assert session("mixed").kind == "dialogue"
    assert session("prose").kind == "prose"


# ---------------------------------------------------------------------------------------------
# Replies


def test_dialogue_reply_ends_at_the_end_token():
    s = session(bigram={"<|assistant|>": "o", "o": "k", "k": "<|end|>"})
    assert s.reply("hi") == "ok"
    assert s.messages == [Message("user", "hi"), Message("assistant", "ok", "end_token")]
    assert s.reply("again") == "ok"
    assert s.build_prompt()[-7:] == [U, *ids("again"), E, A, *ids("ok"), E, A][-7:]


@pytest.mark.parametrize("token", ["<|user|>", "<|system|>"])
def test_dialogue_reply_stops_at_another_special_token(token):
    # After the token the model would go on writing "x": a reply "ox" means it did not stop.
    s = session(bigram={"<|assistant|>": "o", "o": token, token: "x"})
    assert s.reply("hi") == "o"
    assert s.messages[-1].ended == "stop"


def test_reply_at_the_length_limit():
    s = session(bigram={"<|assistant|>": "a", "a": "b", "b": "a"},
                settings=SamplingSettings(temperature=0, max_new_chars=5, quantize=None))
    assert s.reply("hi") == "ababa"
    assert s.messages[-1].ended == "length"


def test_prose_reply_stops_at_a_blank_line():
    s = session("prose", bigram={"i": " ", " ": "x", "x": "\n", "\n": "\n"})
    assert s.reply("hi") == " x"
    assert s.messages[-1] == Message("assistant", " x", "stop")
    # The stop rule is added for the reply, not stored in the settings.
    assert s.settings.stop == ()


@pytest.mark.parametrize("text", ["\u4e2d\u6587", ""])
def test_prose_reply_to_a_message_with_nothing_known(text):
    s = session("prose", bigram={"\n": "o", "o": "k", "k": "."})
    assert isinstance(s.reply(text), str)
    assert s.messages[-1].role == "assistant" and s.messages[-1].ended != "cancelled"


def test_one_notice_per_new_set_of_unknown_characters():
    notices = []
    s = session(on_notice=notices.append)
    s.reply("h\u00e9\u00e9 \u00e9")
    # The message is kept as typed; the prompt uses the replacement characters.
    assert s.messages[0].content == "h\u00e9\u00e9 \u00e9"
    assert s.build_prompt()[:7] == [U, *ids("hee e"), E]
    s.reply("again \u00e9")
    assert len(notices) == 1 and "'\u00e9'" in notices[0]
    s.reply("\u00fc and \u00e9 and \u00fc")
    assert len(notices) == 2 and "'\u00fc'" in notices[1] and "\u00e9" not in notices[1]
    assert s.notices == notices


def test_the_unknown_characters_are_listed_as_typed_and_none_goes_unmentioned():
    notices = []
    s = session(on_notice=notices.append)
    s.reply("\u00fc\u00e9\u00e0\u00e2\u00ea\u00ee\u00f4\u00fb\u00e7\u00eb \u00ef \u00fc")
    assert notices[0].startswith(
        "The model never saw '\u00fc' '\u00e9' '\u00e0' '\u00e2' '\u00ea' '\u00ee' '\u00f4' '\u00fb' and 3 more:")


def test_cancel_event_records_the_partial_reply():
    cancel = threading.Event()
    s = session(bigram={"<|assistant|>": "a", "a": "b", "b": "a"})
    got = []
    for piece in s.stream_reply("hi", cancel=cancel):
        got.append(piece)
        if len(got) == 3:
            cancel.set()
    assert "".join(got) == "aba"
    assert s.messages[-1] == Message("assistant", "aba", "cancelled")


def test_closing_the_stream_records_the_partial_reply():
    s = session(bigram={"<|assistant|>": "a", "a": "b", "b": "a"})
    stream = s.stream_reply("hi")
    assert next(stream) + next(stream) == "ab"
    stream.close()
    assert s.messages[-1] == Message("assistant", "ab", "cancelled")
    assert len(s.messages) == 2


def test_regenerate_replaces_the_last_reply():
    s = session(bigram={"<|assistant|>": "a", "a": "b", "b": "a"})
    s.reply("first")
    s.reply("second")
    assert s.messages[-1].content == "ababababababababababa"[:20]
    s.settings = SamplingSettings(temperature=0, max_new_chars=3, quantize=None)
    assert "".join(s.regenerate()) == "aba"
    assert [m.role for m in s.messages] == ["user", "assistant", "user", "assistant"]
    assert s.messages[-1] == Message("assistant", "aba", "length")
    assert s.messages[-2].content == "second"
    # After a cancelled reply too, and with no reply at all.
    s.messages.pop()
    assert "".join(s.regenerate()) == "aba"
    assert len(s.messages) == 4


def test_regenerate_needs_a_message():
    with pytest.raises(ValueError):
        list(session().regenerate())


def test_to_dict_and_load_messages_round_trip():
    s = session(bigram={"<|assistant|>": "o", "o": "k", "k": "<|end|>"})
    s.reply("hi")
    s.reply("yo")
    d = s.to_dict()
    assert d["kind"] == "dialogue"
    other = session()
    other.load_messages(d["messages"] + [{"role": "system", "content": "x"},
                                         {"role": "user", "content": 5}, "junk"])
    assert other.messages == s.messages
    assert other.build_prompt() == s.build_prompt()
    other.reset()
    assert other.messages == []


def test_the_model_that_wrote_a_reply_is_kept():
    s = session(bigram={"<|assistant|>": "o", "o": "k", "k": "<|end|>"})
    s.load_messages([{"role": "user", "content": "hi"},
                     {"role": "assistant", "content": "yo", "ended": "stop", "model": "gone"}])
    s.reply("again")
    assert [m.get("model") for m in s.to_dict()["messages"]] == [None, "gone", None, None]


def test_sample_continues_a_prompt():
    model = scripted_gpt(TOK, bigram={"a": "b", "b": "c", "c": "a"})
    loaded = LoadedModel(model, TOK, "m", Path("."))
    exact = dict(temperature=0, quantize=None)  # float: the model is scripted by hand
    assert sample(loaded, "a", chars=7, **exact) == "bcabcab"
    # Unknown characters are replaced; an empty prompt starts from a newline.
    assert sample(loaded, "A", chars=2, **exact) == "bc"
    assert sample(loaded, "", chars=3, **exact) == "\n\n\n"


def test_replies_reuse_the_prepared_decode_weights(monkeypatch):
    import charchat.decoding as decoding

    built = []
    real = decoding.DecodeWeights.__init__

    def counting(self, model, int8):
        built.append(int8)
        real(self, model, int8)

    monkeypatch.setattr(decoding.DecodeWeights, "__init__", counting)
    s = session()
    first = s.reply("hi")
    s.reply("more")
    assert built == [False]  # prepared once for both replies
    s.weights_changed()
    s.reset()
    assert s.reply("hi") == first
    assert built == [False, False]


@pytest.mark.parametrize("kind, fits", [("dialogue", 45), ("prose", 48)])
def test_a_message_longer_than_the_context_is_noted_once(kind, fits):
    notices = []
    s = session(kind, block_size=64, on_notice=notices.append)
    s.reply("hello " * 3)
    assert notices == []
    s.stream_reply("a" * fits + "z")  # one more than fits beside the turn markers
    assert notices == [f"This message has {fits + 1} characters, more than the model reads at "
                       f"once: it replies to the last {fits} (its context is 64 characters)."]
    # The prompt holds the end of it (the last `fits` characters), as long as the budget
    # allows: 48 of the 64, the rest left for the reply.
    prompt = s.build_prompt()
    assert len(prompt) == 48
    text = TOK.decode(prompt)
    assert text.endswith("a" * (fits - 1) + "z" + ("<|end|><|assistant|>" if kind == "dialogue"
                                                     else ""))
    s.reply("more")
    s.reply("b" * 500)
    assert len(notices) == 1  # told once
    s2 = session(kind, block_size=64, on_notice=notices.append)
    s2.reply("a" * fits)
    assert len(notices) == 1  # what fits is not noted


def test_prompt_ids_read_written_out_turn_markers():
    from charchat.chat import prompt_ids
    from charchat.tokenizer import ASSISTANT, END, USER

    got, unknown = prompt_ids(TOK, f"{USER}hi{END}{ASSISTANT}", turns=True)
    assert got == [TOK.user_id, *ids("hi"), TOK.end_id, TOK.assistant_id] and not unknown
    got, unknown = prompt_ids(TOK, f"{END}hi")  # a prose model: plain characters
    assert TOK.end_id not in got and {"<", "|", ">"} <= unknown
    got, unknown = prompt_ids(TOK, "<|user hi")  # not a whole marker: plain characters
    assert "<" in unknown or "|" in unknown
