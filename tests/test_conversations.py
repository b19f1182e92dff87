import json
import os

import pytest

from charchat import conversations


def make(model="m", *pairs):
    conv = conversations.new(model, "prose")
    for user, reply in pairs:
        conv.messages.append({"role": "user", "content": user, "ended": ""})
        conv.messages.append({"role": "assistant", "content": reply, "ended": "stop"})
    return conv


def test_save_and_load(charchat_home):
    conv = make("m", ("hello", "hi there"))
    path = conversations.save(conv)
    assert path.parent == charchat_home / "conversations"
    back = conversations.load(conv.id)
    assert back.model == "m" and back.kind == "prose"
    assert back.messages == conv.messages
    assert back.title == "hello"
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp files


def test_empty_conversation_is_not_written(charchat_home):
    conv = conversations.new("m")
    conversations.save(conv)
    assert conversations.latest() is None
    assert not (charchat_home / "conversations").exists()


def test_latest_per_model(charchat_home):
    a1 = make("a", ("one", "1"))
    conversations.save(a1)
    b = make("b", ("two", "2"))
    conversations.save(b)
    os.utime(conversations.path_for(a1.id), (1, 1))  # a1 is older
    a2 = make("a", ("three", "3"))
    conversations.save(a2)
    assert conversations.latest().id == a2.id
    assert conversations.latest("b").id == b.id
    assert conversations.latest("a").id == a2.id
    assert conversations.latest("nobody") is None
    assert [c.id for c in conversations.list_conversations("a")] == [a2.id, a1.id]


def test_damaged_files_are_skipped(charchat_home):
    good = make("a", ("x", "y"))
    conversations.save(good)
    folder = charchat_home / "conversations"
    (folder / "broken.json").write_text("{not json")
    (folder / "list.json").write_text("[]")
    (folder / "junk.json").write_text(json.dumps(
        {"model": "a", "messages": [{"role": "robot", "content": "x"}, "nope",
                                    {"role": "user", "content": 5}]}))
    assert conversations.latest("a").id == good.id
    assert conversations.load("broken") is None
    assert conversations.load("../etc/passwd") is None


def test_damaged_files_are_reported_and_kept(charchat_home):
    good = make("a", ("x", "y"))
    conversations.save(good)
    folder = charchat_home / "conversations"
    (folder / "torn.json").write_text('{"model": "a", "messages": [{"role": "us')
    (folder / "empty.json").write_text("")
    (folder / "bytes.json").write_bytes(b"\xff\xfe{")
    damaged = []
    assert [c.id for c in conversations.list_conversations(damaged=damaged)] == [good.id]
    assert sorted(p.name for p in damaged) == ["bytes.json", "empty.json", "torn.json"]
    assert (folder / "torn.json").read_text().startswith('{"model": "a"')  # left as it is


def test_a_damaged_file_is_not_saved_over(charchat_home):
    conv = make("a", ("x", "y"))
    conversations.save(conv)
    path = conversations.path_for(conv.id)
    path.write_text('{"model": "a", "mess')  # damaged after it was loaded
    moved = []
    conversations.save(conv, moved)
    assert moved == [path.with_name(path.name + ".damaged")]
    assert moved[0].read_text() == '{"model": "a", "mess'
    assert conversations.load(conv.id).messages == conv.messages
    conversations.save(conv, moved)  # a readable file is saved over as before
    assert len(moved) == 1


def test_bad_ids_are_refused():
    with pytest.raises(ValueError):
        conversations.path_for("../x")


def test_rename_model_keeps_order(charchat_home):
    old = make("a", ("first", "1"))
    conversations.save(old)
    os.utime(conversations.path_for(old.id), (100, 100))
    conversations.save(make("z", ("second", "2")))
    assert conversations.rename_model("a", "b") == 1
    assert conversations.latest("b").messages[0]["content"] == "first"
    assert conversations.latest().model == "z"  # still the newest


def test_a_conversation_handed_over_keeps_who_wrote_its_replies(charchat_home):
    conv = make("gone", ("hi", "old reply"))
    conversations.hand_over(conv, "default")
    assert conv.model == "default" and conv.messages[1]["model"] == "gone"
    assert "model" not in conv.messages[0]
    conv.messages.append({"role": "assistant", "content": "new reply", "ended": "stop"})
    conversations.save(conv)
    back = conversations.load(conv.id)
    assert [m.get("model") for m in back.messages] == [None, "gone", None]
    conversations.hand_over(back, "default")  # the same model: nothing changes
    assert [m.get("model") for m in back.messages] == [None, "gone", None]
    # A rename follows the replies too; a bad "model" field is dropped.
    assert conversations.rename_model("gone", "went") == 1
    assert conversations.load(conv.id).messages[1]["model"] == "went"
    assert conversations.clean_messages([{"role": "assistant", "content": "x", "model": 5},
                                         {"role": "user", "content": "y", "model": "m"}]) == [
        {"role": "assistant", "content": "x", "ended": ""},
        {"role": "user", "content": "y", "ended": ""}]


def test_delete(charchat_home):
    conv = make("a", ("x", "y"))
    conversations.save(conv)
    conversations.delete(conv.id)
    assert conversations.load(conv.id) is None
    conversations.delete(conv.id)  # twice is fine


def test_long_titles_are_shortened():
    conv = make("a", ("word " * 40, "y"))
    assert len(conv.title) <= 60 and conv.title.endswith("…")
