import io
import json
import os
import pickle
import random

import pytest
import torch

from charchat import store
from charchat.store import StoreError
from charchat.tokenizer import CharTokenizer

from conftest import tiny_gpt

TOK = CharTokenizer("abcdefgh")  # 12 ids, the vocabulary of tiny_gpt()


def save(name="m", seed=0, info=None, **meta):
    """A tiny model saved under the data folder, as the trainer leaves one."""
    folder = store.model_dir(name)
    store.save_model(folder, tiny_gpt(seed=seed), TOK, info or {"step": 3})
    store.write_meta(folder, name=name, **meta)
    return folder


def store_error(path) -> str:
    """The StoreError that reading path raises; its message is one line naming the path."""
    with pytest.raises(StoreError) as info:
        store.read_weights(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def payload(folder) -> dict:
    return torch.load(folder / store.WEIGHTS, weights_only=True)


def test_home_is_charchat_home(charchat_home):
    assert store.home() == charchat_home
    assert store.models_dir() == charchat_home / "models"
    assert store.cache_dir() == charchat_home / "cache"


def test_save_and_load_round_trip():
    model = tiny_gpt(seed=4)
    folder = store.model_dir("m")
    store.save_model(folder, model, TOK, {"step": 7, "val_loss": 1.5, "corpus_kind": "dialogue"})
    loaded = store.load_model("m")
    assert loaded.name == "m" and loaded.path == folder
    assert loaded.tokenizer == TOK
    assert loaded.info == {"step": 7, "val_loss": 1.5, "corpus_kind": "dialogue"}
    assert loaded.kind == "dialogue"
    assert loaded.model.config == model.config
    assert not loaded.model.training
    assert loaded.model.transformer.wte.weight is loaded.model.lm_head.weight
    got, want = loaded.model.state_dict(), model.state_dict()
    assert got.keys() == want.keys()
    for k in want:
        assert torch.equal(got[k], want[k]), k
    # The tied weight is stored once.
    assert "transformer.wte.weight" not in payload(folder)["state_dict"]


def test_load_by_folder_or_file_path():
    folder = save("m")
    assert store.load_model(str(folder)).name == "m"
    assert store.load_model(str(folder / store.WEIGHTS)).path == folder
    with pytest.raises(StoreError, match="no charchat model there"):
        store.load_model(str(folder.parent / "nothing"))


def test_kind_defaults_to_meta_then_prose():
    folder = save("m", info={"step": 1})
    assert store.load_model("m").kind == "prose"
    store.write_meta(folder, corpus_kind="dialogue")
    assert store.load_model("m").kind == "dialogue"


# ---------------------------------------------------------------------------------------------
# Files that must not load


def test_truncated_file():
    folder = save("m")
    path = folder / store.WEIGHTS
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "not a readable model file" in store_error(path)


def test_random_bytes(tmp_path):
    # Seeded, and many of them: random bytes trip the unpickler in many different ways
    # ("pop from empty list", bad load keys, bare KeyErrors); every one is broken, not hostile.
    path = tmp_path / "model.pt"
    for seed in range(60):
        path.write_bytes(random.Random(seed).randbytes(5000))
        message = store_error(path)
        assert "damaged" in message and "refused" not in message, (seed, message)


def test_json_renamed_model_pt(tmp_path):
    path = tmp_path / "model.pt"
    path.write_text(json.dumps({"format": "charchat-model", "version": 1}))
    store_error(path)


class Evil:
    """Unpickling this writes a marker file: what a hostile model file would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('pwned')",)


@pytest.mark.parametrize("fmt", ["torch", "plain pickle"])
def test_malicious_pickle_is_refused_without_running_code(tmp_path, fmt):
    marker = tmp_path / "marker"
    path = tmp_path / "model.pt"
    obj = {"format": "charchat-model", "version": 1, "state_dict": {"x": Evil(marker)}}
    if fmt == "torch":
        torch.save(obj, path)
    else:
        path.write_bytes(pickle.dumps(obj, protocol=2))
    message = store_error(path)
    assert not marker.exists()
    if fmt == "torch":
        assert "refused" in message
    # The payload does run code when unpickled blindly: the test above means something.
    pickle.loads(pickle.dumps(Evil(marker)))
    assert marker.exists()


def test_torch_file_of_another_format(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    assert "not a charchat model file" in store_error(path)
    torch.save([torch.zeros(3)], path)
    assert "not a charchat model file" in store_error(path)


def rewrite(folder, **changes):
    p = payload(folder)
    p.update(changes)
    buf = io.BytesIO()
    torch.save(p, buf)
    (folder / store.WEIGHTS).write_bytes(buf.getvalue())
    return folder / store.WEIGHTS


def test_unsupported_version():
    path = rewrite(save("m"), version=99)
    assert "version 99" in store_error(path)


def test_weights_with_wrong_shapes():
    folder = save("m")
    config = payload(folder)["config"]
    path = rewrite(folder, config={**config, "n_embd": 32, "n_head": 2})
    assert "do not fit" in store_error(path)


def test_missing_weights():
    folder = save("m")
    sd = payload(folder)["state_dict"]
    sd.pop("transformer.ln_f.bias")
    assert "do not fit" in store_error(rewrite(folder, state_dict=sd))


def test_vocabulary_and_config_disagree():
    folder = save("m")
    path = rewrite(folder, tokenizer=CharTokenizer("abc").to_json())
    assert "vocabulary" in store_error(path)


@pytest.mark.parametrize(
    "change",
    [dict(config="nonsense"), dict(config={"vocab_size": 12, "n_head": 5}),
     dict(tokenizer="{}"), dict(info="{not json"), dict(state_dict={"a": "b"})],
)
def test_damaged_fields(change):
    store_error(rewrite(save("m"), **change))


def test_config_far_larger_than_the_weights():
    folder = save("m")
    config = payload(folder)["config"]
    path = rewrite(folder, config={**config, "n_embd": 2**21, "n_head": 1})
    assert "do not fit" in store_error(path)


def test_non_finite_weights():
    folder = save("m")
    sd = payload(folder)["state_dict"]
    sd["transformer.wpe.weight"][0, 0] = float("nan")
    assert "non-finite" in store_error(rewrite(folder, state_dict=sd))


def test_missing_file_and_folder(tmp_path):
    assert "not found" in store_error(tmp_path / "model.pt")
    (tmp_path / "dir.pt").mkdir()
    store_error(tmp_path / "dir.pt")


# ---------------------------------------------------------------------------------------------
# Names, listing and managing


@pytest.mark.parametrize("name", ["m", "My-model_2.1", "0abc", "a" * 64, "é", "日本", "Ελληνικά",
                                  "हिन्दी", "e\u0301te\u0301", "日" * 64, "confused", "com10"])
def test_valid_names(name):
    assert store.check_name(name) == name
    assert store.valid_name(name)


@pytest.mark.parametrize("name", ["", ".hidden", "-x", "a/b", "a\\b", "a b", "../x", "..", "a" * 65,
                                  "日" * 65, 5, "m\n", "a:b", "a*b", "x\u200b", "\u0301x", "a\udcff",
                                  # unsafe as folder names: too many bytes, a trailing dot, or
                                  # a Windows device name (superscript digits too)
                                  "\U0001d400" * 64, "model.", "con", "NUL", "nul.txt", "Com1",
                                  "LPT\u00b9", "com\u00b2.x"])
def test_invalid_names(name):
    with pytest.raises(StoreError, match="invalid model name"):
        store.check_name(name)
    with pytest.raises(StoreError):
        store.model_dir(name)
    assert not store.valid_name(name)


@pytest.mark.parametrize("base, name", [("日本", "日本"), ("My Story", "My-Story"),
                                        ("été", "été"), ("e\u0301te\u0301", "été"),
                                        ("..hidden", "hidden"), ("a.b.", "a.b"), ("", "model"),
                                        ("!!!", "model"), ("con", "con-model"),
                                        ("LPT\u00b2", "LPT\u00b2-model"), ("_x", "x"),
                                        ("a\u2028b", "a-b"), ("\udcffab", "ab")])
def test_unique_name_keeps_the_letters_of_any_script(base, name):
    assert store.unique_name(base) == name
    assert store.check_name(name) == name
    (store.models_dir() / name).mkdir(parents=True)
    assert store.unique_name(base) == name + "-2"


def test_a_model_named_in_another_script_is_listed_and_loaded():
    save("日本")
    assert [m.name for m in store.list_models()] == ["日本"]
    assert store.load_model("日本").name == "日本"


def test_unique_name_of_a_long_name_fits_a_folder_name():
    for base in ("x" * 300, "日" * 300, "\U0001d400" * 300):
        name = store.unique_name(base)
        assert store.check_name(name) == name and len(name.encode()) <= store.NAME_MAX_BYTES - 16


def test_list_models():
    save("beta", params=123, best_val_loss=1.25, corpus="3 files")
    save("alpha")
    (store.models_dir() / "empty-folder").mkdir()
    (store.models_dir() / ".deleting-x").mkdir()
    models = store.list_models()
    assert [m.name for m in models] == ["alpha", "beta"]
    beta = models[1]
    assert (beta.params, beta.best_val_loss, beta.corpus) == (123, 1.25, "3 files")
    assert beta.size_bytes > (beta.path / store.WEIGHTS).stat().st_size
    assert not beta.bundled


@pytest.mark.parametrize("meta", ['[1, 2]', '{"params": "lots", "best_val_loss": "low", '
                                  '"corpus": 7}', '{"best_val_loss": NaN, "params": true}'])
def test_a_damaged_meta_file_does_not_break_the_listing(meta):
    save("good", params=123, best_val_loss=1.25, corpus="3 files")
    save("bad")
    (store.models_dir() / "bad" / "meta.json").write_text(meta)
    good, bad = sorted(store.list_models(), key=lambda m: m.name)[::-1]
    assert (good.params, good.best_val_loss, good.corpus) == (123, 1.25, "3 files")
    assert (bad.params, bad.best_val_loss, bad.corpus) == (None, None, "")
    assert isinstance(store.read_meta(bad.path), dict)


def test_list_models_with_nothing_saved():
    assert store.list_models() == []


def test_remove_model():
    save("a")
    save("b")
    store.remove_model("a")
    assert [m.name for m in store.list_models()] == ["b"]
    assert not store.model_dir("a").exists()
    assert [p.name for p in store.models_dir().iterdir()] == ["b"]
    with pytest.raises(StoreError, match="no model named 'a'"):
        store.remove_model("a")
    with pytest.raises(StoreError):
        store.remove_model("../b")
    with pytest.raises(StoreError):
        store.load_model("a")


def test_rename_model():
    save("a", seed=1)
    save("b", seed=2)
    with pytest.raises(StoreError, match="already exists"):
        store.rename_model("a", "b")
    with pytest.raises(StoreError, match="no model named"):
        store.rename_model("zz", "c")
    with pytest.raises(StoreError, match="invalid"):
        store.rename_model("a", "bad name")
    store.rename_model("a", "c")
    assert [m.name for m in store.list_models()] == ["b", "c"]
    assert store.load_model("c").name == "c"


@pytest.mark.real_bundle
def test_unknown_name_lists_the_bundled_model_too():
    assert (store.bundled_dir() / store.WEIGHTS).exists()
    with pytest.raises(StoreError, match=r"no model named 'nope' \(models: default\)"):
        store.load_model("nope")
    save("mine")
    with pytest.raises(StoreError, match=r"\(models: mine, default\)"):
        store.load_model("nope")


@pytest.mark.real_bundle
def test_the_bundled_model_cannot_be_deleted_or_renamed():
    with pytest.raises(StoreError, match="'default' is the model that comes with charchat: "
                                         "it cannot be deleted"):
        store.remove_model("default")
    with pytest.raises(StoreError, match="cannot be renamed"):
        store.rename_model("default", "mine")
    assert (store.bundled_dir() / store.WEIGHTS).exists()
    with pytest.raises(StoreError, match=r"no model named 'nope' \(models: default\)"):
        store.remove_model("nope")


def test_default_without_a_bundled_model(monkeypatch, tmp_path):
    monkeypatch.setattr(store, "bundled_dir", lambda: tmp_path / "no-bundle")
    with pytest.raises(StoreError, match="no model named 'default'.*none saved yet"):
        store.load_model("default")
    save("mine")
    with pytest.raises(StoreError, match="models: mine"):
        store.load_model("default")
    assert [m.name for m in store.list_models(include_bundled=True)] == ["mine"]



def test_weights_stored_in_half_precision_load_as_float32():
    model = tiny_gpt(seed=5)
    folder = store.model_dir("half")
    store.save_model(folder, model, TOK, {"step": 1}, dtype=torch.float16)
    stored = payload(folder)["state_dict"]
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}
    loaded = store.load_model("half")
    got, want = loaded.model.state_dict(), model.state_dict()
    for k in want:
        assert got[k].dtype == torch.float32, k
        assert torch.equal(got[k], want[k].half().float()), k
    assert (folder / store.WEIGHTS).stat().st_size < 0.7 * _float32_size(model)


def _float32_size(model) -> int:
    folder = store.model_dir("full")
    store.save_model(folder, model, TOK, {"step": 1})
    return (folder / store.WEIGHTS).stat().st_size

def test_default_with_a_bundled_model(monkeypatch, tmp_path):
    bundle = tmp_path / "bundle"
    store.save_model(bundle, tiny_gpt(), TOK)
    monkeypatch.setattr(store, "bundled_dir", lambda: bundle)
    loaded = store.load_model("default")
    assert loaded.name == "default" and loaded.path == bundle
    listed = store.list_models(include_bundled=True)
    assert [(m.name, m.bundled) for m in listed] == [("default", True)]
    assert store.list_models() == []


# ---------------------------------------------------------------------------------------------
# Atomic writes


def leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("crash_in", ["replace", "fsync", "write"])
def test_a_crash_while_saving_keeps_the_old_model(monkeypatch, crash_in):
    folder = save("m", seed=1)
    before = (folder / store.WEIGHTS).read_bytes()

    def crash(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as mp, pytest.raises(OSError):
        if crash_in == "write":
            mp.setattr(torch, "save", lambda obj, f, *a, **k: (f.write(b"half"), crash()))
        else:
            mp.setattr(os, crash_in, crash)
        store.save_model(folder, tiny_gpt(seed=2), TOK, {"step": 9})
    assert (folder / store.WEIGHTS).read_bytes() == before
    assert leftovers(folder) == []
    assert store.load_model("m").info == {"step": 3}


def watch_fsyncs(monkeypatch, target):
    """Record each os.fsync as ("file", size, in_folder) or ("dir", is_target_folder,
    target's bytes then): what a crash at that moment would find on disk."""
    import stat

    real = os.fsync
    seen = []

    def fsync(fd):
        st = os.fstat(fd)
        folder = os.stat(target.parent)
        if stat.S_ISDIR(st.st_mode):
            now = target.read_bytes() if target.exists() else None
            seen.append(("dir", (st.st_dev, st.st_ino) == (folder.st_dev, folder.st_ino), now))
        else:
            # Is the file being written an entry of the target's own folder?
            here = any((e.stat().st_dev, e.stat().st_ino) == (st.st_dev, st.st_ino)
                       for e in os.scandir(target.parent))
            seen.append(("file", st.st_size, here))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


@pytest.mark.parametrize("existed", [False, True])
def test_an_atomic_write_is_synced_in_full_then_its_folder(tmp_path, monkeypatch, existed):
    """The file is fsynced at its full size (flushed first: a small write sits in Python's
    buffer), as a temporary file in the target's own folder (a rename across file systems
    fails), and once it is renamed into place the folder is fsynced too."""
    target = tmp_path / "sub" / "x.bin"
    if existed:
        target.parent.mkdir()
        target.write_bytes(b"old")
    data = b"0123456789" * 10
    seen = watch_fsyncs(monkeypatch, target)
    store.atomic_write_bytes(target, data)
    assert seen == [("file", len(data), True), ("dir", True, data)]
    assert target.read_bytes() == data and leftovers(target.parent) == []


def test_atomic_write_json_and_meta(tmp_path):
    path = tmp_path / "sub" / "x.json"
    store.atomic_write_json(path, {"a": "\u00e9"})
    assert json.loads(path.read_text(encoding="utf-8")) == {"a": "\u00e9"}
    store.write_meta(tmp_path / "sub", a=1)
    meta = store.write_meta(tmp_path / "sub", b=2)
    assert meta == {"a": 1, "b": 2} == store.read_meta(tmp_path / "sub")
    assert leftovers(tmp_path / "sub") == []
    (tmp_path / "sub" / "meta.json").write_text("{broken")
    assert store.read_meta(tmp_path / "sub") == {}


def test_read_metrics_skips_damaged_lines(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"kind": "step", "step": 1}\n{"kind": "ev\n[1]\n'
                                            '{"kind": "end", "step": 2}\n')
    assert [e["step"] for e in store.read_metrics(tmp_path)] == [1, 2]
    with pytest.raises(OSError):
        list(store.read_metrics(tmp_path / "missing"))


def test_read_metrics_skips_a_torn_last_line(tmp_path):
    # A kill mid-write: the last line stops inside an event, even inside a character.
    (tmp_path / "metrics.jsonl").write_bytes(
        b'{"kind": "step", "step": 1}\n{"kind": "step", "step": 2}\n{"kind": "sample", "sa'
        b'mple": "caf\xc3')
    assert [e["step"] for e in store.read_metrics(tmp_path)] == [1, 2]
    (tmp_path / "metrics.jsonl").write_bytes(b'{"kind": "step", "step": 1}\n\xe2\x80\n'
                                             b'{"kind": "end", "step": 2}\n')
    assert [e["step"] for e in store.read_metrics(tmp_path)] == [1, 2]


def test_move_aside_never_replaces_an_earlier_one(tmp_path):
    for text in ("one", "two"):
        (tmp_path / "f.json").write_text(text)
        moved = store.move_aside(tmp_path / "f.json")
        assert moved.read_text() == text and not (tmp_path / "f.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.json.damaged", "f.json.damaged-2"]


def test_a_damaged_file_named_directly_is_the_one_reported(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(StoreError) as info:
        store.load_model(str(bad))
    assert str(bad) in str(info.value) and "model.pt" not in str(info.value)
    good = tmp_path / "elsewhere" / "renamed.pt"
    good.parent.mkdir()
    store.save_model(tmp_path / "src", tiny_gpt(), TOK)
    (tmp_path / "src" / store.WEIGHTS).rename(good)
    assert store.load_model(str(good)).path == good.parent
