"""Property tests over what users feed in: JSONL dialogue files, prose files and tokenizer
files with arbitrary Unicode (lone surrogates, NUL, BOM, CRLF, U+2028, very long lines).
Each input either loads or gets a one-line error (CorpusError, TokenizerError), never a
traceback. Derandomized (tests/conftest.py) and kept small, so they run in seconds."""

import json

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from charchat.corpus import CorpusError, load_corpus
from charchat.tokenizer import CharTokenizer, TokenizerError

# The awkward characters, often; any other character (surrogates included) now and then.
AWKWARD = ["\x00", "\ufeff", "\r", "\n", "\r\n", "\u2028", "\u2029", "\ud800", "\udfff",
           "\U0001f600", "é", "e\u0301", '"', "\\", "\t", "\x85", "\ufffd", "a"]
odd_text = st.lists(st.one_of(st.sampled_from(AWKWARD), st.characters()),
                    max_size=30).map("".join)
clean_text = st.lists(st.one_of(st.sampled_from([a for a in AWKWARD if a not in "\ud800\udfff"]),
                                st.characters(blacklist_categories=("Cs",))),
                      min_size=1, max_size=30).map("".join)
long_text = st.builds(lambda s, n: s * n, st.sampled_from(["ab", "\u2028x", "\x00"]),
                      st.integers(1, 5000))
content = st.one_of(odd_text, long_text)

message = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "bot"]),
                                 "content": st.one_of(content, st.integers(), st.none())})
good_line = st.builds(lambda ms, ascii_: json.dumps({"messages": ms}, ensure_ascii=ascii_),
                      st.lists(message, max_size=4), st.booleans())
valid_message = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system"]),
                                       "content": st.one_of(clean_text, long_text)})
valid_line = st.builds(lambda ms, ascii_: json.dumps({"messages": ms}, ensure_ascii=ascii_),
                       st.lists(valid_message, min_size=1, max_size=3), st.booleans())
line = st.one_of(valid_line, valid_line, valid_line, valid_line, good_line, odd_text,
                 st.sampled_from(["", "[]", "{}", '{"messages": []}', "null", "{"]))

FUZZ = settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                        HealthCheck.too_slow])


def one_line_error(e: Exception) -> None:
    event(f"error: {type(e).__name__}")  # (--hypothesis-show-statistics: both outcomes occur)
    text = str(e)
    assert text and "\n" not in text and "Traceback" not in text


def encode_file(text: str, bom: bool, errors: str) -> bytes:
    data = text.encode("utf-8", errors=errors)  # "surrogatepass": lone surrogates as bytes
    return (b"\xef\xbb\xbf" if bom else b"") + data


def load_or_one_line(tmp_path_factory, name: str, data: bytes):
    """Load a file of these bytes: the corpus, or None after checking that the CorpusError
    is one line."""
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / name
    path.write_bytes(data)
    try:
        corpus = load_corpus([path], cache_dir=folder / "cache")
    except CorpusError as e:
        one_line_error(e)
        return None
    event("loaded")
    return corpus


@FUZZ
@given(lines=st.lists(line, min_size=1, max_size=6), newline=st.sampled_from(["\n", "\r\n"]),
       bom=st.booleans(), errors=st.sampled_from(["surrogatepass", "replace"]))
def test_jsonl_dialogue_loads_or_says_why_in_one_line(tmp_path_factory, lines, newline, bom,
                                                      errors):
    corpus = load_or_one_line(tmp_path_factory, "chat.jsonl",
                              encode_file(newline.join(lines), bom, errors))
    if corpus is None:
        return
    assert len(corpus.ids) == corpus.summary.chars > 0
    text = corpus.tokenizer.decode(corpus.ids)
    assert "\ud800" not in text and "\udfff" not in text  # never a non-character


@FUZZ
@given(text=st.one_of(odd_text, long_text), bom=st.booleans(),
       errors=st.sampled_from(["surrogatepass", "replace"]), tail=st.binary(max_size=3))
def test_prose_loads_or_says_why_in_one_line(tmp_path_factory, text, bom, errors, tail):
    corpus = load_or_one_line(tmp_path_factory, "story.txt",
                              encode_file(text, bom, errors) + tail)
    if corpus is None:
        return
    decoded = corpus.tokenizer.decode(corpus.ids)
    assert "\r" not in decoded and "\ufeff" not in decoded[:1]
    assert decoded.endswith("\n")


@FUZZ
@given(chars=odd_text, text=content)
def test_tokenizer_with_any_characters(chars, text):
    tok = CharTokenizer(chars)
    again = CharTokenizer.from_json(tok.to_json())
    assert again == tok
    result = tok.encode_lenient(text)  # what a person types: never an error
    assert all(0 <= i < tok.vocab_size for i in result.ids)
    try:
        ids = tok.encode(text)
    except TokenizerError as e:
        one_line_error(e)
    else:
        assert tok.decode(ids) == text


@FUZZ
@given(raw=st.one_of(odd_text, st.builds(lambda c: json.dumps(
    {"format": "charchat-tokenizer", "version": 1,
     "specials": ["<|user|>", "<|assistant|>", "<|system|>", "<|end|>"], "chars": c}),
    st.one_of(odd_text, st.lists(odd_text, max_size=3), st.integers()))))
def test_tokenizer_file_loads_or_says_why_in_one_line(raw):
    try:
        CharTokenizer.from_json(raw)
    except TokenizerError as e:
        one_line_error(e)
