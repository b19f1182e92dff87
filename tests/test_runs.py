"""The use cases both front ends call (charchat.runs): planning runs, names, the model to
open, scoring a file."""

import json

import pytest

from charchat import preferences, runs, store
from charchat.config import ConfigError
from conftest import pattern_text

SHAPE = dict(n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=8, eval_interval=10,
             eval_tokens=512, device="cpu")


def test_suggest_name(charchat_home):
    assert runs.suggest_name(["/x/My Story.txt"]) == "My-Story"
    (charchat_home / "models" / "My-Story").mkdir(parents=True)
    assert runs.suggest_name(["/x/My Story.txt"]) == "My-Story-2"
    assert runs.suggest_name(["/x/.hidden"]) == "hidden"


def test_a_new_plan_with_a_preset_and_overrides(charchat_home):
    plan = runs.plan(runs.RunRequest(["a.txt"], "n", minutes=1.5, preset="small",
                                     overrides={"n_layer": 5, "lr": 1e-3}))
    c = plan.config
    assert (c.n_layer, c.n_head, c.n_embd) == (5, 4, 128)  # by hand beats the preset
    assert c.lr == 1e-3 and c.minutes == 1.5 and plan.folder is None and not plan.resume
    with pytest.raises(ConfigError) as info:
        runs.plan(runs.RunRequest(["a.txt"], "n", preset="huge"))
    assert info.value.field == "preset"
    with pytest.raises(ConfigError) as info:
        runs.plan(runs.RunRequest(["a.txt"], "n", overrides={"lr": -1.0}))
    assert info.value.field == "lr" and info.value.reason == "must be positive, got -1.0"
    with pytest.raises(ConfigError) as info:
        runs.plan(runs.RunRequest(["a.txt"], "n", overrides={"speed": 2}))
    assert info.value.field == "speed"


@pytest.mark.parametrize("name, code", [("", 2), ("a/b", 2), (".x", 2)])
def test_invalid_names_are_bad_usage(charchat_home, name, code):
    with pytest.raises(ConfigError) as info:
        runs.check_new_name(name)
    assert info.value.field == "name" and info.value.code == code


def test_resolved_defaults_fill_every_field():
    values, notes, device = runs.resolved_defaults(runs.RunRequest(minutes=2), 40_000, "prose")
    assert device == "cpu" or device.startswith("cuda") or device == "mps"
    for key in ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "lr", "min_lr",
                "warmup_steps", "beta2", "dropout", "eval_tokens"):
        assert values[key] is not None, key


def test_train_then_resume_with_more_steps_and_minutes(tiny_corpus, charchat_home,
                                                       monkeypatch, tmp_path):
    """Resuming, --max-steps and --minutes mean that much more, in the CLI and the app alike;
    the corpus paths are recorded absolute, so a resume from another folder finds them."""
    monkeypatch.chdir(tiny_corpus.parent)
    plan = runs.plan(runs.RunRequest([tiny_corpus.name], "story", max_steps=20,
                                     overrides=SHAPE))
    result = runs.train(plan)
    assert result.stop_reason == "max_steps" and result.steps == 20
    record = store.read_training_record(charchat_home / "models" / "story")
    assert record["corpus_paths"] == [str(tiny_corpus)]
    with pytest.raises(runs.NameTaken):
        runs.plan(runs.RunRequest([str(tiny_corpus)], "story"))
    monkeypatch.chdir(tmp_path)
    more = runs.plan(runs.RunRequest(max_steps=10, resume="story"))
    assert more.resume and more.paths == [str(tiny_corpus)] and more.config.max_steps == 30
    assert runs.train(more).steps == 30
    timed = runs.plan(runs.RunRequest(minutes=0.5, resume="story"))
    state = store.safe_torch_load(charchat_home / "models" / "story" / store.STATE)
    assert timed.config.minutes == pytest.approx(state["elapsed"] / 60 + 0.5)
    assert timed.config.max_steps is None
    kept = runs.plan(runs.RunRequest(resume="story"))  # neither: the saved schedule goes on
    assert kept.config.max_steps == 30


def test_resume_refuses_a_new_shape_naming_the_setting(tiny_model, charchat_home):
    for key, value in (("n_embd", 64), ("optimizer", "adamw"), ("bias", True)):
        with pytest.raises(ConfigError) as info:
            runs.plan(runs.RunRequest(resume="tiny", overrides={key: value}))
        assert info.value.field == key
        assert info.value.reason.startswith("cannot change when resuming 'tiny': it was ")
    same = runs.plan(runs.RunRequest(resume="tiny", overrides={"n_embd": 16, "lr": 1e-3}))
    assert same.config.lr == 1e-3  # settings that may change do
    with pytest.raises(ConfigError) as info:
        runs.plan(runs.RunRequest(resume="tiny", name="other"))
    assert info.value.field == "name" and info.value.code == 2


def test_model_to_open(charchat_home, tiny_model, tiny_model_dir):
    import shutil

    assert runs.model_to_open("x") == "x"
    assert runs.model_to_open() == "tiny"  # the newest saved (no bundled one in tests)
    shutil.copytree(tiny_model_dir, charchat_home / "models" / "other")
    preferences.remember_model("tiny")
    assert runs.model_to_open() == "tiny"  # the last used beats the newest
    preferences.set_default_model("other")
    assert runs.model_to_open() == "other"  # the pinned default beats the last used
    preferences.set_default_model("gone")  # a pinned default deleted since: passed over
    assert runs.model_to_open() == "tiny"


def test_saved_settings_leave_the_budget_to_the_resume(tiny_model):
    """Prefilled for a resume, minutes and steps would read as that much more: left out."""
    values, _, device = runs.saved_settings("tiny")
    assert values["n_embd"] == 16 and "max_steps" not in values and "minutes" not in values
    assert device == "cpu"


def test_evaluate_file_maps_the_vocabulary_and_refuses_unknown_characters(tiny_model,
                                                                          write_file):
    loaded = store.load_model(tiny_model)
    text = pattern_text(3000, seed=5)  # the kind of text it was trained on
    r = runs.evaluate_file(loaded, write_file("ok.txt", text), "cpu")
    assert set(r) == {"val_loss", "bpc", "bpb", "ppl", "tokens", "chars"} and r["chars"] > 0
    with pytest.raises(ConfigError, match="never saw"):
        runs.evaluate_file(loaded, write_file("bad.txt", text + "\u4e2d" * 400), "cpu")
    assert json.dumps(r)
