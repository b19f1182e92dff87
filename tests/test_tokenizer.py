import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charchat.tokenizer import SPECIAL_TOKENS, CharTokenizer, TokenizerError

# Any text, surrogates excluded (they cannot be written to a file or encoded as UTF-8).
any_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)


@st.composite
def vocab_and_text(draw):
    alphabet = draw(any_text)
    text = draw(st.text(st.sampled_from(sorted(set(alphabet))), max_size=80))
    return alphabet, text


@settings(deadline=None, max_examples=150)
@given(vocab_and_text())
def test_round_trip_over_the_vocabulary(drawn):
    alphabet, text = drawn
    tok = CharTokenizer(alphabet)
    ids = tok.encode(text)
    assert len(ids) == len(text)
    assert tok.decode(ids) == text
    assert tok.decode_text(ids) == text
    assert all(len(SPECIAL_TOKENS) <= i < tok.vocab_size for i in ids)


@settings(deadline=None, max_examples=100)
@given(any_text)
def test_json_round_trip(alphabet):
    tok = CharTokenizer(alphabet)
    again = CharTokenizer.from_json(tok.to_json())
    assert again == tok
    assert again.stoi == tok.stoi and again.itos == tok.itos


def test_ids_are_specials_then_sorted_characters():
    tok = CharTokenizer("cabca")
    assert tok.chars == ["a", "b", "c"]
    assert [tok.user_id, tok.assistant_id, tok.system_id, tok.end_id] == [0, 1, 2, 3]
    assert tok.itos[:4] == list(SPECIAL_TOKENS)
    assert tok.stoi == {"a": 4, "b": 5, "c": 6}
    assert tok.vocab_size == len(tok) == 7
    # Special ids never collide with a character, even one spelling a special token's name.
    tok2 = CharTokenizer("<|user>end")
    assert not set(tok2.special_ids.values()) & set(tok2.stoi.values())
    assert tok2.encode("<|user|>") == [tok2.stoi[c] for c in "<|user|>"]


def test_decode_text_leaves_out_special_tokens():
    tok = CharTokenizer("hi")
    ids = [tok.user_id, *tok.encode("hi"), tok.end_id]
    assert tok.decode(ids) == "<|user|>hi<|end|>"
    assert tok.decode_text(ids) == "hi"


def test_encode_raises_tokenizer_error_naming_the_unknown_character():
    tok = CharTokenizer("abc")
    with pytest.raises(TokenizerError, match="'z'"):
        tok.encode("abz")
    assert issubclass(TokenizerError, ValueError)


def test_multi_character_entries_are_refused():
    with pytest.raises(TokenizerError):
        CharTokenizer(["ab", "c"])


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        json.dumps({"format": "other", "version": 1}),
        json.dumps({"format": "charchat-tokenizer", "version": 2, "specials": list(SPECIAL_TOKENS),
                    "chars": "ab"}),
        json.dumps({"format": "charchat-tokenizer", "version": 1, "specials": ["<x>"],
                    "chars": "ab"}),
        json.dumps({"format": "charchat-tokenizer", "version": 1,
                    "specials": list(SPECIAL_TOKENS), "chars": 5}),
        json.dumps([1, 2]),
    ],
)
def test_from_json_rejects_foreign_or_damaged_files(text):
    with pytest.raises(TokenizerError):
        CharTokenizer.from_json(text)


# ---------------------------------------------------------------------------------------------
# The unknown-character rule


@pytest.mark.parametrize(
    "vocab, text, expected",
    [
        ("'\"ab ", "\u2018a\u2019 \u201cb\u201d", "'a' \"b\""),  # curly quotes -> straight
        ("-ab", "a\u2014b", "a-b"),  # em dash -> hyphen
        (".ab", "a\u2026", "a..."),  # ellipsis -> three dots
        ("cafe", "caf\u00e9", "cafe"),  # accented -> unaccented
        ("CAFE", "caf\u00e9", "CAFE"),  # accented -> unaccented, other case
        ("e\u00c9", "\u00e9", "e"),  # unaccented is tried before the other case
        ("E\u00e9", "\u00c9", "E"),
        ("abc", "ABC", "abc"),  # case swap
        ("ABC", "abc", "ABC"),
        ("fi", "\ufb01", "fi"),  # ligature (NFKC)
        ("ab", "a\u00e7b", "ab"),  # nothing close: dropped
        ("ab", "a\u4e2db", "ab"),
    ],
)
def test_encode_lenient_rule(vocab, text, expected):
    tok = CharTokenizer(vocab)
    res = tok.encode_lenient(text)
    assert tok.decode(res.ids) == expected
    assert res.unknown == {c for c in text if c not in tok.stoi}


def test_encode_lenient_known_text_is_unchanged_and_reports_nothing():
    tok = CharTokenizer("hello world")
    res = tok.encode_lenient("hello world")
    assert res.ids == tok.encode("hello world")
    assert res.unknown == set()


@settings(deadline=None, max_examples=100)
@given(vocab_and_text(), any_text)
def test_encode_lenient_only_emits_vocabulary_ids(drawn, noise):
    alphabet, text = drawn
    tok = CharTokenizer(alphabet)
    res = tok.encode_lenient(text + noise)
    assert all(len(SPECIAL_TOKENS) <= i < tok.vocab_size for i in res.ids)
    assert res.unknown == {c for c in text + noise if c not in tok.stoi}
    assert tok.encode_lenient(text).ids == tok.encode(text)


def test_encode_turn():
    tok = CharTokenizer("hi yo")
    res = tok.encode_turn("user", "hi")
    assert res.ids == [tok.user_id, *tok.encode("hi"), tok.end_id]
    assert tok.encode_turn("assistant", "yo").ids[0] == tok.assistant_id
    assert tok.encode_turn("system", "").ids == [tok.system_id, tok.end_id]
    lenient = tok.encode_turn("user", "HI\u00e9", lenient=True)
    assert lenient.ids == [tok.user_id, *tok.encode("hi"), tok.end_id]
    assert lenient.unknown == {"H", "I", "\u00e9"}
    with pytest.raises(TokenizerError):
        tok.encode_turn("user", "HI")
    with pytest.raises(TokenizerError, match="role"):
        tok.encode_turn("robot", "hi")
