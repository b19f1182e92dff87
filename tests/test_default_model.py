"""The default model shipped inside the package: present, small, safe to load, and a chat model
whose replies are well-formed turns. (Its accuracy is measured by
benchmarks/bench_default_model.py, not here.)"""

import json

import pytest
import torch

from charchat import preferences, store
from charchat.chat import ChatSession
from charchat.config import SamplingSettings

pytestmark = pytest.mark.real_bundle


@pytest.fixture(scope="module")
def bundled():
    # By its folder: a saved model of the user's called "default" must not stand in for it.
    return store.load_model(str(store.bundled_dir()))


def phases4_in(build: dict) -> list[dict]:
    """The phase-4 records a build rests on: its own, or each averaged member's."""
    if "average" not in build:
        return [build]
    members = build["average"]["members"]
    assert len(members) >= 2 and all(len(m["weights_sha256"]) == 64 for m in members)
    return [each for m in members for each in phases4_in(m["build"])]


def test_it_ships_in_the_package_within_10_mb():
    folder = store.bundled_dir()
    files = {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}
    assert store.WEIGHTS in files
    assert sum(files.values()) <= 10_000_000
    # Its folder records how it was made.
    for name in ("build.json", "train_args.json", "corpus.json", "metrics.jsonl", "meta.json"):
        assert name in files, name
    build = json.loads((folder / "build.json").read_text())
    assert build["command"].startswith("python corpora/build_default.py")
    assert build["corpus"]["generator"] == "corpora/make_dialogue.py"
    assert build["corpus"]["matches_generator"] is True
    assert build["corpus"]["options"] == "--wide-phrasings"
    # The shipped model is a phase 4 (issue 23): a fine-tune on the wide-phrasings corpus, from
    # a phase-3 model whose own record it keeps; or the mean of several such (--average), each
    # member's record kept whole.
    for each in phases4_in(build):
        assert each["corpus"]["options"] == "--wide-phrasings"
        phase4 = each["phase4"]
        assert len(phase4["started_from_weights_sha256"]) == 64
        start = phase4["phases_1_to_3_build"]
        if start is not None and "average" in start:
            # from a mean: each of its members was a phase 4 of the recipe
            assert all(m["recipe_matches"] is True for m in phases4_in(start))
        else:
            assert (phase4["phases_1_to_3_trained_by_this_script"]
                    or start["recipe_matches"] is True)
        assert each["recipe_matches"] is True and each["stop_reason"] == "max_steps"
    assert build["best_val_loss"] == pytest.approx(store.read_meta(folder)["best_val_loss"])


def test_it_is_what_a_fresh_install_opens(charchat_home):
    assert store.list_models() == []
    listed = store.list_models(include_bundled=True)
    assert [(m.name, m.bundled) for m in listed] == [(store.BUNDLED_NAME, True)]


def test_it_loads_as_a_float32_dialogue_model(bundled):
    assert bundled.kind == "dialogue"
    assert all(p.dtype == torch.float32 for p in bundled.model.parameters())
    assert bundled.model.config.vocab_size == bundled.tokenizer.vocab_size
    # The weights are stored as float16 to halve the file.
    raw = torch.load(store.bundled_dir() / store.WEIGHTS, weights_only=True)
    assert {v.dtype for v in raw["state_dict"].values()} == {torch.float16}


def test_its_recommended_sampling_is_valid_and_used(charchat_home):
    recommended = preferences.model_sampling(store.BUNDLED_NAME)
    assert recommended and preferences.check_sampling(recommended) is not None
    assert preferences.sampling_for(store.BUNDLED_NAME)["temperature"] == recommended["temperature"]


@pytest.mark.parametrize("question", [
    "hello!", "what is 23 + 45?", "what is the capital of Japan?", "spell house",
    "what comes after Monday?", "what is charchat?", "something it was never taught: purple ???",
])
def test_replies_are_well_formed_turns(bundled, question):
    session = ChatSession.from_loaded(bundled, SamplingSettings(temperature=0, max_new_chars=300))
    reply = session.reply(question)
    assert reply.strip()
    assert session.messages[-1].ended == "end_token"
