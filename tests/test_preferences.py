import json

import pytest

from charchat import cli, preferences


def test_nothing_remembered_yet(charchat_home):
    assert preferences.last_model() is None
    assert preferences.default_model() is None
    assert preferences.sampling_for("m") == preferences.SAMPLING_DEFAULTS
    assert preferences.theme() is None


def test_last_and_default_model(charchat_home):
    preferences.remember_model("a")
    assert preferences.last_model() == "a" and preferences.default_model() is None
    preferences.set_default_model("b")
    assert preferences.default_model() == "b" and preferences.last_model() == "a"
    preferences.set_default_model(None)
    assert preferences.default_model() is None
    preferences.remember_model("c")
    assert json.loads((charchat_home / "state.json").read_text())["last_model"] == "c"


def test_a_model_opened_by_path_is_not_remembered_by_name(charchat_home, tmp_path):
    folder = charchat_home / "models" / "m"
    folder.mkdir(parents=True)
    (folder / "model.pt").write_bytes(b"")
    outside = tmp_path / "elsewhere" / "m"
    outside.mkdir(parents=True)
    (outside / "model.pt").write_bytes(b"")
    cli._remember_model("m", outside)  # "m" would open the other model
    cli._remember_model("gone", tmp_path / "gone")  # and this name finds nothing
    assert preferences.last_model() is None
    cli._remember_model("m", folder)
    assert preferences.last_model() == "m"


def test_damaged_state_reads_as_nothing(charchat_home, monkeypatch):
    notes = []
    monkeypatch.setattr(preferences, "reporter", notes.append)
    charchat_home.mkdir(parents=True)
    (charchat_home / "state.json").write_text("[1, 2")
    assert preferences.last_model() is None
    assert notes == []  # reading says nothing and changes nothing
    # The next write does not replace it: the damaged file is moved aside, with one note.
    preferences.remember_model("x")
    assert preferences.last_model() == "x"
    assert (charchat_home / "state.json.damaged").read_text() == "[1, 2"
    assert len(notes) == 1 and "state.json" in notes[0] and "state.json.damaged" in notes[0]
    assert "\n" not in notes[0]
    preferences.remember_theme("t")  # once: the new file is fine
    assert len(notes) == 1 and preferences.read_state() == {"last_model": "x", "theme": "t"}
    (charchat_home / "state.json").write_text('["a list"]')
    assert preferences.read_state() == {}
    preferences.set_default_model("y")  # an earlier .damaged is kept too
    assert (charchat_home / "state.json.damaged-2").read_text() == '["a list"]'
    assert (charchat_home / "state.json.damaged").read_text() == "[1, 2"
    assert len(notes) == 2 and "state.json.damaged-2" in notes[1]


def test_check_state_moves_a_damaged_file_aside(charchat_home):
    assert preferences.check_state() is None  # no file
    charchat_home.mkdir(parents=True)
    (charchat_home / "state.json").write_bytes(b'{"theme": "x\xff')  # torn, not even UTF-8
    note = preferences.check_state()
    assert "state.json" in note and "moved aside as state.json.damaged" in note
    assert not (charchat_home / "state.json").exists()
    assert (charchat_home / "state.json.damaged").read_bytes() == b'{"theme": "x\xff'
    assert preferences.check_state() is None


def test_unwritable_home_is_ignored(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("CHARCHAT_HOME", str(blocker))
    preferences.remember_model("x")  # no exception
    assert preferences.last_model() is None


def test_sampling_per_model(charchat_home):
    saved = preferences.save_sampling("a", {"temperature": 0.3, "top_k": 0, "top_p": None})
    assert saved["temperature"] == 0.3 and saved["top_k"] is None and saved["top_p"] is None
    assert preferences.sampling_for("a")["temperature"] == 0.3
    assert preferences.sampling_for("b") == preferences.SAMPLING_DEFAULTS
    preferences.save_sampling("a", {"max_new_chars": 50})  # other values are kept
    assert preferences.sampling_for("a")["temperature"] == 0.3
    assert preferences.sampling_for("a")["max_new_chars"] == 50


@pytest.mark.parametrize("values, message", [
    ({"temperature": 6}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"temperature": True}, "temperature"),
    ({"top_k": -1}, "top-k"),
    ({"top_k": 2.5}, "top-k"),
    ({"top_p": 0}, "top-p"),
    ({"top_p": 1.5}, "top-p"),
    ({"max_new_chars": 0}, "max reply length"),
    ({"seed": "x"}, "seed"),
    ({"seed": 10**23}, "seed must be a whole number from -2\\*\\*63 to 2\\*\\*64 - 1"),
])
def test_bad_sampling_values(values, message):
    with pytest.raises(ValueError, match=message):
        preferences.check_sampling(values)


def test_sampling_bounds_match_the_core():
    from charchat.config import SamplingSettings

    for values in ({"temperature": 0.0}, {"temperature": 5}, {"top_k": 3}, {"top_p": 1.0},
                   {"max_new_chars": 1}, {"seed": 7}):
        SamplingSettings(**preferences.check_sampling(values))


def test_damaged_sampling_entries_are_skipped(charchat_home):
    charchat_home.mkdir(parents=True)
    (charchat_home / "state.json").write_text(json.dumps(
        {"sampling": {"a": {"temperature": "hot", "top_p": 0.5, "unknown": 1}}}))
    s = preferences.sampling_for("a")
    assert s["temperature"] == 0.8 and s["top_p"] == 0.5 and "unknown" not in s


def test_rename_and_forget(charchat_home):
    preferences.remember_model("a")
    preferences.set_default_model("a")
    preferences.save_sampling("a", {"temperature": 0.1})
    preferences.rename_model("a", "b")
    assert preferences.last_model() == "b" and preferences.default_model() == "b"
    assert preferences.sampling_for("b")["temperature"] == 0.1
    preferences.forget_model("b")
    assert preferences.last_model() is None and preferences.default_model() is None
    assert preferences.sampling_for("b") == preferences.SAMPLING_DEFAULTS


def test_theme(charchat_home):
    preferences.remember_theme("textual-light")
    assert preferences.theme() == "textual-light"


def test_a_model_can_recommend_its_own_sampling(charchat_home):
    from charchat import store

    folder = store.model_dir("greedy")
    folder.mkdir(parents=True)
    (folder / store.WEIGHTS).write_bytes(b"")  # resolve() only needs the file to exist
    store.write_meta(folder, sampling={"temperature": 0, "max_new_chars": 300, "top_p": "bad"})
    got = preferences.sampling_for("greedy")
    assert got["temperature"] == 0.0 and got["max_new_chars"] == 300
    assert got["top_p"] == preferences.SAMPLING_DEFAULTS["top_p"]  # a bad entry is ignored
    assert preferences.sampling_for("other") == preferences.SAMPLING_DEFAULTS
    preferences.save_sampling("greedy", {"temperature": 0.7})  # what the user sets wins
    assert preferences.sampling_for("greedy")["temperature"] == 0.7
    assert preferences.sampling_for("greedy")["max_new_chars"] == 300


def test_a_loaded_models_recommendation_can_be_passed_in(charchat_home):
    # A model opened from a folder path has no saved name to look up: its meta is passed in.
    got = preferences.sampling_for("some-folder", {"temperature": 0.1})
    assert got["temperature"] == 0.1
    saved = preferences.save_sampling("some-folder", {"top_k": 5}, {"temperature": 0.1})
    assert saved["temperature"] == 0.1 and saved["top_k"] == 5
    stored = json.loads((charchat_home / "state.json").read_text())["sampling"]["some-folder"]
    assert stored == {"top_k": 5}
    assert preferences.base_sampling("some-folder", {"temperature": 0.1})["top_k"] is None


def test_a_change_that_cannot_be_saved_is_reported(charchat_home, monkeypatch):
    """A full disk (or another write error) loses the change, but says so, naming the file."""
    import errno

    from charchat import store

    preferences.set_default_model("kept")
    notes = []
    monkeypatch.setattr(preferences, "reporter", notes.append)

    def full(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "atomic_write_json", full)
    preferences.set_default_model("lost")
    preferences.remember_theme("nord")
    assert len(notes) == 2 and all("no space left on the disk" in n for n in notes)
    assert str(preferences.state_file()) in notes[0] and "\n" not in notes[0]
    assert preferences.default_model() == "kept"  # the file as it was
