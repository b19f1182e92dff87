import pytest

from charchat import conversations, modelops, preferences, store


@pytest.fixture
def saved(charchat_home):
    """A model 'm' (only its weights file matters here), remembered, the default, with one
    saved conversation."""
    folder = store.model_dir("m")
    folder.mkdir(parents=True)
    (folder / store.WEIGHTS).write_bytes(b"weights")
    preferences.remember_model("m")
    preferences.set_default_model("m")
    conv = conversations.new("m", "prose")
    conv.messages = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}]
    conversations.save(conv)
    return conv


def test_rename_takes_the_preferences_and_conversations_along(saved):
    path = modelops.rename("m", "n")
    assert path == store.model_dir("n") and (path / store.WEIGHTS).read_bytes() == b"weights"
    assert not store.model_dir("m").exists()
    assert preferences.last_model() == "n" and preferences.default_model() == "n"
    assert conversations.load(saved.id).model == "n"


def test_delete_forgets_the_model_and_keeps_its_conversations(saved):
    assert modelops.delete("m") == store.model_dir("m")
    assert not store.model_dir("m").exists()
    assert preferences.last_model() is None and preferences.default_model() is None
    assert conversations.load(saved.id).messages[0]["content"] == "hello"


def test_a_refused_rename_changes_nothing(saved):
    store.model_dir("n").mkdir()
    with pytest.raises(store.StoreError, match="already exists"):
        modelops.rename("m", "n")
    assert preferences.last_model() == "m" and conversations.load(saved.id).model == "m"
