import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import charchat.corpus
from charchat import store
from charchat.corpus import Corpus, CorpusError, corpus_from_text, inspect, load_corpus
from charchat.tokenizer import CharTokenizer


def text_of(corpus: Corpus) -> str:
    return corpus.tokenizer.decode(corpus.ids)


def corpus_error(paths, **kw) -> str:
    """The message of the CorpusError that loading paths raises; it must be one line."""
    with pytest.raises(CorpusError) as info:
        load_corpus([str(p) for p in paths], **kw)
    message = str(info.value)
    assert "\n" not in message
    return message


def jsonl(*conversations) -> str:
    return "".join(json.dumps({"messages": [{"role": r, "content": c} for r, c in conv]}) + "\n"
                   for conv in conversations)


# ---------------------------------------------------------------------------------------------
# Finding files


def test_files_and_folders_recursive_in_name_order(write_file, tmp_path):
    write_file("books/b.txt", "second\n")
    write_file("books/a.txt", "first")  # no final newline: one is added
    write_file("books/sub/c.txt", "third\n")
    write_file("books/.hidden.txt", "hidden\n")
    write_file("books/image.bin", b"\x89PNG\x00\x01\x02")
    write_file("books/empty.txt", "")
    single = write_file("single.txt", "alone\n")

    c = load_corpus([tmp_path / "data" / "books", single])

    names = [os.path.relpath(f, tmp_path / "data") for f in c.summary.files]
    assert names == ["books/a.txt", "books/b.txt", "books/sub/c.txt", "single.txt"]
    assert text_of(c) == "first\nsecond\nthird\nalone\n"
    notes = "\n".join(c.summary.notes)
    for skipped in ("hidden file", ".hidden.txt", "binary file", "image.bin", "empty file",
                    "empty.txt"):
        assert skipped in notes
    assert c.summary.kind == "prose"
    assert c.summary.chars == len(c.ids) == len("first\nsecond\nthird\nalone\n")
    assert c.summary.vocab_size == len(set("first\nsecond\nthird\nalone\n"))


def test_hidden_folders_are_skipped(write_file, tmp_path):
    write_file("books/a.txt", "visible\n")
    write_file("books/.git/config.txt", "hidden folder\n")
    write_file("books/.cache/deep/more.txt", "also hidden\n")
    c = load_corpus([tmp_path / "data" / "books"])
    assert any("hidden folder" in n and ".git" in n for n in c.summary.notes)
    assert [os.path.basename(f) for f in c.summary.files] == ["a.txt"]
    assert text_of(c) == "visible\n"


def test_a_file_named_twice_is_read_once(write_file, tmp_path):
    f = write_file("books/a.txt", "once\n")
    c = load_corpus([f, tmp_path / "data" / "books"])
    assert text_of(c) == "once\n"


def test_explicit_binary_file_is_an_error(write_file):
    f = write_file("x.txt", b"abc\x00def")
    message = corpus_error([f])
    assert str(f) in message and "binary" in message and "offset 3" in message


def test_missing_path(tmp_path):
    missing = tmp_path / "nope.txt"
    message = corpus_error([missing])
    assert str(missing) in message and "no such file" in message


def test_no_paths_at_all():
    with pytest.raises(CorpusError, match="no corpus given"):
        load_corpus([])


def test_empty_folder(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    message = corpus_error([folder])
    assert str(folder) in message and "no text files" in message


def test_folder_of_only_skipped_files(write_file, tmp_path):
    write_file("books/.hidden", "x\n")
    write_file("books/blob", b"\x00\x00")
    message = corpus_error([tmp_path / "data" / "books"])
    assert "no text files" in message


@pytest.mark.parametrize("content", ["", "   \n\n\t  \r\n"])
def test_empty_or_whitespace_only_file(write_file, content):
    f = write_file("blank.txt", content)
    message = corpus_error([f])
    assert str(f) in message and "empty or whitespace only" in message


def test_unreadable_file(write_file):
    if os.geteuid() == 0:
        pytest.skip("root can read any file")
    f = write_file("secret.txt", "text\n")
    f.chmod(0)
    try:
        message = corpus_error([f])
    finally:
        f.chmod(0o644)
    assert str(f) in message and "permission denied" in message


def test_permission_error_when_reading(write_file, monkeypatch):
    """The same as above for root too: opening the file is made to fail."""
    f = write_file("secret.txt", "text\n")
    real_open = open

    def guarded_open(path, *args, **kwargs):
        if os.fspath(path) == os.fspath(f):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(charchat.corpus, "open", guarded_open, raising=False)
    message = corpus_error([f])
    assert str(f) in message and "permission denied" in message


# ---------------------------------------------------------------------------------------------
# Decoding prose


def test_invalid_utf8_names_the_byte_offset(write_file):
    f = write_file("bad.txt", b"hello \xff world\n")
    message = corpus_error([f])
    assert str(f) in message and "byte offset 6" in message and "0xff" in message


@pytest.mark.parametrize("chunk", [1, 2, 16, 1 << 22])
def test_invalid_utf8_offset_counts_a_byte_order_mark(write_file, monkeypatch, chunk):
    monkeypatch.setattr(charchat.corpus, "CHUNK_BYTES", chunk)
    data = b"\xef\xbb\xbfhello \xff world\n"
    f = write_file("bom.txt", data)
    bad = data.index(b"\xff")  # 9, counting the mark's three bytes
    assert f"byte offset {bad} " in corpus_error([f])
    f.write_bytes(b"\xef\xbb\xbfhello\n")
    assert text_of(load_corpus([f])) == "hello\n"  # the mark itself is not text


@pytest.mark.parametrize(
    "data, offset",
    [
        (b"a" * 40 + b"\xff" + b"b" * 10, 40),  # in the third chunk
        (b"a" * 15 + b"\xe2\x82A" + b"b" * 20, 15),  # a broken sequence across a boundary
        (b"a" * 31 + b"\xc3" + b"bb", 31),  # the broken lead byte ends a chunk
        (b"a" * 33 + b"\xe2\x82", 33),  # the file ends inside a character
        (b"\xe2\x82\xac" * 10 + b"\x80", 30),  # a stray continuation byte after valid ones
    ],
)
def test_invalid_utf8_offset_across_chunks(write_file, monkeypatch, data, offset):
    monkeypatch.setattr(charchat.corpus, "CHUNK_BYTES", 16)
    f = write_file("bad.txt", data)
    assert f"byte offset {offset} " in corpus_error([f])


@pytest.mark.parametrize("shift", range(0, 17))
def test_multibyte_characters_split_across_chunks_are_valid(write_file, monkeypatch, shift):
    monkeypatch.setattr(charchat.corpus, "CHUNK_BYTES", 16)
    text = "a" * shift + "\u00e9\u20ac\U0001f600" * 4 + "\n"  # 2-, 3- and 4-byte characters
    c = load_corpus([write_file("ok.txt", text)])
    assert text_of(c) == text


@settings(max_examples=60)
@given(
    prefix=st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
    bad=st.sampled_from([b"\xff", b"\x80", b"\xc3(", b"\xe2\x28\xa1", b"\xf0\x90\x28", b"\xed\xa0\x80"]),
    chunk=st.integers(1, 9),
)
def test_invalid_utf8_offset_matches_python(tmp_path_factory, prefix, bad, chunk):
    data = prefix.encode() + bad + b"tail\n"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        expected = e.start
    f = tmp_path_factory.mktemp("utf8") / "bad.txt"
    f.write_bytes(data)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(charchat.corpus, "CHUNK_BYTES", chunk)
        with pytest.raises(CorpusError, match=f"byte offset {expected} "):
            inspect([f])


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 1 << 22])
def test_windows_and_old_mac_line_endings(write_file, monkeypatch, chunk):
    monkeypatch.setattr(charchat.corpus, "CHUNK_BYTES", chunk)
    f = write_file("crlf.txt", b"one\r\ntwo\rthree\r\n\r\nfour\r")
    assert text_of(load_corpus([f])) == "one\ntwo\nthree\n\nfour\n"


# ---------------------------------------------------------------------------------------------
# Dialogue


def test_jsonl_dialogue_encoding(write_file):
    f = write_file("chat.jsonl", jsonl([("user", "hi"), ("assistant", "yo")],
                                       [("system", "be\r\nbrief"), ("user", "a")]) + "\n\n")
    c = load_corpus([f])
    tok = c.tokenizer
    expected = [tok.user_id, *tok.encode("hi"), tok.end_id,
                tok.assistant_id, *tok.encode("yo"), tok.end_id,
                tok.system_id, *tok.encode("be\nbrief"), tok.end_id,
                tok.user_id, *tok.encode("a"), tok.end_id]
    assert c.ids.tolist() == expected
    assert c.summary.kind == "dialogue"
    assert c.summary.conversations == 2
    assert c.summary.chars == len(expected)
    assert "(2 conversations)" in c.summary.describe()


def test_jsonl_with_windows_line_endings(write_file):
    f = write_file("chat.jsonl", jsonl([("user", "a")], [("assistant", "b")]).replace("\n", "\r\n"))
    c = load_corpus([f])
    tok = c.tokenizer
    assert c.ids.tolist() == [tok.user_id, *tok.encode("a"), tok.end_id,
                              tok.assistant_id, *tok.encode("b"), tok.end_id]


def test_prose_and_dialogue_together_are_mixed(write_file):
    c = load_corpus([write_file("a.txt", "prose\n"), write_file("b.jsonl", jsonl([("user", "x")]))])
    assert c.summary.kind == "mixed"
    tok = c.tokenizer
    assert c.ids.tolist() == [*tok.encode("prose\n"), tok.user_id, *tok.encode("x"), tok.end_id]


@pytest.mark.parametrize(
    "lines, expected",
    [
        ([jsonl([("user", "ok")]), "{not json\n"], "line 2 is not valid JSON"),
        (["\n", jsonl([("user", "ok")]), "\n", "[1, 2]\n"], 'line 4: expected an object'),
        ([json.dumps({"messages": [{"role": "bot", "content": "x"}]}) + "\n"],
         "line 1: message 0 has role 'bot'"),
        ([json.dumps({"messages": [{"role": "user", "content": 3}]}) + "\n"],
         "line 1: message 0 has no text content"),
        ([json.dumps({"messages": []}) + "\n"], "line 1: conversation has no messages"),
        ([json.dumps({"messages": ["hi"]}) + "\n"], "line 1: message 0 is not an object"),
    ],
)
def test_jsonl_errors_name_file_and_line(write_file, lines, expected):
    f = write_file("chat.jsonl", "".join(lines))
    message = corpus_error([f])
    assert str(f) in message and expected in message


def test_jsonl_invalid_utf8(write_file):
    data = jsonl([("user", "ok")]).encode() + b'{"messages": [{"role": "user", "content": "\xff"}]}\n'
    f = write_file("chat.jsonl", data)
    message = corpus_error([f])
    bad = data.index(b"\xff")
    assert f"byte offset {bad} " in message and "line 2" in message


def test_jsonl_unpaired_surrogate(write_file):
    line = '{"messages": [{"role": "user", "content": "hi \\ud800"}]}\n'  # valid JSON
    message = corpus_error([write_file("chat.jsonl", line)])
    assert "line 1: message 0 has an unpaired surrogate (\\ud800)" in message


def test_a_file_name_that_is_not_utf8(tmp_path):
    name = os.fsdecode(b"lat\xe9.txt")  # a Latin-1 name, as old archives have
    (tmp_path / name).write_text("some text to learn from\n" * 40)
    c = load_corpus([tmp_path], cache_dir=tmp_path / "cache")
    assert c.summary.files == [str(tmp_path / name)]
    # The summary goes into JSON files next to the model, and comes back as the same name.
    store.atomic_write_json(tmp_path / "corpus.json", c.summary.to_dict())
    assert json.loads((tmp_path / "corpus.json").read_text())["files"] == c.summary.files


def test_jsonl_invalid_utf8_after_a_byte_order_mark(write_file):
    data = b'\xef\xbb\xbf{"messages": [{"role": "user", "content": "\xff"}]}\n'
    message = corpus_error([write_file("chat.jsonl", data)])
    bad = data.index(b"\xff")
    assert f"byte offset {bad} " in message and "line 1" in message


def test_jsonl_with_only_blank_lines(write_file):
    f = write_file("chat.jsonl", "\n\n")
    assert "empty" in corpus_error([f])


# ---------------------------------------------------------------------------------------------
# Cache, split and storage


def test_cache_is_reused(corpus_file, charchat_home):
    first = load_corpus([corpus_file])
    stamp = first.cache_path.stat().st_mtime_ns
    cached = sorted(p.name for p in (charchat_home / "cache").iterdir())
    second = load_corpus([corpus_file])
    assert second.cache_path == first.cache_path
    assert second.cache_path.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in (charchat_home / "cache").iterdir()) == cached
    np.testing.assert_array_equal(second.ids, first.ids)
    assert second.summary == first.summary


def test_cache_is_invalidated_when_a_file_changes(write_file):
    f = write_file("a.txt", "abc\n")
    first = load_corpus([f])
    f.write_text("abd\n")  # same size: only the modification time tells
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    second = load_corpus([f])
    assert second.cache_path != first.cache_path
    assert text_of(second) == "abd\n"
    f.write_text("longer text\n")
    assert text_of(load_corpus([f])) == "longer text\n"


def test_damaged_cache_entry_is_rebuilt(corpus_file):
    first = load_corpus([corpus_file])
    expected = np.array(first.ids)
    path = first.cache_path
    del first
    path.write_bytes(b"garbage")
    np.testing.assert_array_equal(load_corpus([corpus_file]).ids, expected)


def test_ids_are_a_read_only_memmap(corpus_file):
    c = load_corpus([corpus_file])
    assert isinstance(c.ids, np.memmap)
    assert not c.ids.flags.writeable
    with pytest.raises(ValueError):
        c.ids[0] = 1
    assert c.ids.dtype == np.uint16


@pytest.mark.parametrize("n", [2, 9, 10, 11, 19, 99, 100, 101, 1234, 99999])
def test_split_is_int_n_times_0_9(n):
    c = corpus_from_text(("abcdefghij" * n)[:n])
    assert c.split == int(n * 0.9)
    np.testing.assert_array_equal(c.train_ids, c.ids[: int(n * 0.9)])
    np.testing.assert_array_equal(c.val_ids, c.ids[int(n * 0.9):])
    assert len(c.train_ids) + len(c.val_ids) == n


def test_split_of_a_loaded_corpus(corpus_file):
    c = load_corpus([corpus_file])
    n = len(c.ids)
    assert c.split == int(n * 0.9)
    np.testing.assert_array_equal(c.val_ids, c.ids[int(n * 0.9):])


def test_check_window_names_block_size():
    c = corpus_from_text("x" * 100)  # 10 validation characters
    c.check_window(9)
    with pytest.raises(CorpusError) as info:
        c.check_window(10)
    message = str(info.value)
    assert "block_size 10" in message and "\n" not in message
    assert message.startswith("<text>: corpus too short")  # names the corpus


def _too_short_counting_up(block_size: int) -> int:
    """The fewest ids that hold a validation window, found as the old code did: one at a time."""
    need = block_size + 1
    total = need
    while total - int(total * 0.9) < need:
        total += 1
    return total


class _CountedFraction(float):
    """VAL_FRACTION, counting how often it is read in arithmetic (once per loop of the old
    count-up): a huge block size must not take more than a few dozen."""

    uses = 0

    def __rsub__(self, other):
        type(self).uses += 1
        if type(self).uses > 10_000:
            raise AssertionError("too_short counts up one at a time")
        return other - float(self)


def test_too_short_is_fast_for_a_huge_block_size(monkeypatch):
    monkeypatch.setattr(charchat.corpus, "VAL_FRACTION", _CountedFraction(0.1))
    message = charchat.corpus.too_short(41_514, 100_000_000)
    assert message == ("corpus too short: 41,514 characters give a 4,152-character validation "
                       "split, but one window needs 100000001 (block_size 100000000 + 1); add "
                       "text (at least 1,000,000,001 characters) or use a smaller block size")
    assert "at least" in charchat.corpus.too_short(10, 10**15)
    assert _CountedFraction.uses < 1_000


@pytest.mark.parametrize("block_size", [0, 1, 7, 8, 9, 10, 11, 99, 100, 255, 256, 1000, 4095])
def test_too_short_asks_for_the_fewest_characters(block_size):
    need = _too_short_counting_up(block_size)
    assert f"(at least {need:,} characters)" in charchat.corpus.too_short(0, block_size)


def test_given_tokenizer_is_used(corpus_file):
    tok = CharTokenizer(corpus_file.read_text() + "XYZ")
    c = load_corpus([corpus_file], tokenizer=tok)
    assert c.tokenizer is tok
    assert text_of(c) == corpus_file.read_text()


def test_tokenizer_missing_characters(write_file):
    f = write_file("a.txt", "abcz\n")
    message = corpus_error([f], tokenizer=CharTokenizer("abc\n"))
    assert "'z'" in message and "lacks" in message


def test_tokenizer_missing_characters_names_the_file(write_file):
    ok = write_file("a.txt", "abc\n")
    bad = write_file("b.txt", "abz\n")
    message = corpus_error([ok, bad], tokenizer=CharTokenizer("abc\n"))
    assert str(bad) in message


def test_corpus_from_text():
    c = corpus_from_text("hello\n")
    assert text_of(c) == "hello\n"
    assert c.summary.chars == 6 and c.summary.kind == "prose"
    with pytest.raises(CorpusError):
        corpus_from_text(" \n ")


def test_progress_is_reported(corpus_file):
    calls = []
    load_corpus([corpus_file], progress=lambda stage, done, total: calls.append((stage, done, total)))
    size = corpus_file.stat().st_size
    assert ("checking", size, size) in calls and ("encoding", size, size) in calls


def test_a_folder_holding_charchats_own_data_folder_skips_it(tmp_path, monkeypatch):
    """CHARCHAT_HOME inside a corpus folder: models, logs and caches are not text to learn."""
    home = tmp_path / "notes" / "charchat-data"
    monkeypatch.setenv("CHARCHAT_HOME", str(home))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("words to learn\n" * 20)
    (home / "models" / "m").mkdir(parents=True)
    (home / "models" / "m" / "metrics.jsonl").write_text('{"kind": "step"}\n')
    (home / "models" / "m" / "config.json").write_text("{}\n")
    files, notes = charchat.corpus.discover([tmp_path / "notes"])
    assert files == [tmp_path / "notes" / "a.txt"]
    assert notes == [f"skipped charchat's data folder {home}"]


def test_the_trainer_reads_the_id_cache_with_pread_as_the_map_would(write_file, tmp_path):
    from charchat.idcache import IdReader
    from conftest import pattern_text

    corpus = load_corpus([str(write_file("r.txt", pattern_text(20000)))],
                         cache_dir=tmp_path / "cache")
    assert IdReader.usable(corpus.ids)
    assert not IdReader.usable(corpus.ids[5:]) and not IdReader.usable(np.arange(9))
    split = corpus.split
    train, val = IdReader(corpus.ids, 0, split), IdReader(corpus.ids, split)
    assert len(train) == len(corpus.train_ids) and len(val) == len(corpus.val_ids)
    assert train.dtype == corpus.ids.dtype
    starts = np.array([0, 17, len(val) - 9])
    index = starts[:, None] + np.arange(9)
    assert np.array_equal(val[index], corpus.val_ids[index])
    assert np.array_equal(train[index[:2]], corpus.train_ids[index[:2]])
    assert np.array_equal(val[:16], corpus.val_ids[:16])
    assert np.array_equal(val[np.array([4, 2])], corpus.val_ids[[4, 2]])  # (any other index)
    train.close()
    val.close()
