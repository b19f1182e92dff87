"""The training form's "Start from": a new run that starts from a saved model's weights, with
its shape and tokenizer fixed in the form (issue 20)."""

import json

import torch

from charchat import store
from charchat.formatting import fmt_params
from charchat.tui.app import CharChatApp

from .conftest import key, settle, wait_for
from .test_train_screen import fill, open_training

SHAPE = ("n_layer", "n_head", "n_embd")


async def start_from(pilot, screen, name: str) -> None:
    """Choose a model (or "" for nothing) and wait for the check and defaults it starts."""
    screen.query_one("#start-from").value = name
    await wait_for(pilot, lambda: screen.form.start_from == (name or None), what="the choice")
    ready = f"Ready: Starts from the weights of {name}" if name else "Ready on"
    await wait_for(pilot, lambda: screen.status.text.startswith(ready), what="the defaults")
    await settle(pilot)


def field(screen, name: str):
    return screen.query_one(f"#adv-{name}")


async def test_choosing_a_model_fixes_its_shape_and_tokenizer_and_nothing_frees_them(
        tiny_corpus, tiny_model, charchat_home):
    source = {m.name: m for m in store.list_models()}["tiny"]
    app = CharChatApp()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_training(pilot, tiny_corpus)
        form = screen.form
        new_shape = {k: field(screen, k).value for k in SHAPE}
        assert new_shape["n_layer"] == "2" and field(screen, "optimizer").value == "muon"
        assert "tiny" in form.sources
        screen.query_one("#tokenizer").value = "gpt2"  # a choice the model overrides
        await pilot.pause()
        await start_from(pilot, screen, "tiny")
        # The model's shape and tokenizer, shown and fixed; the size too.
        assert {k: field(screen, k).value for k in SHAPE} == {
            "n_layer": "1", "n_head": "2", "n_embd": "16"}
        assert all(field(screen, k).disabled for k in SHAPE)
        assert screen.query_one("#tokenizer").value == "char"
        assert screen.query_one("#tokenizer").disabled and field(screen, "tokenizer").disabled
        assert screen.query_one("#preset").value == "auto" and screen.query_one(
            "#preset").disabled
        # The fine-tune plan's defaults: AdamW at a small rate, the model's context.
        assert field(screen, "optimizer").value == "adamw"
        assert field(screen, "lr").value == "6e-05"
        assert field(screen, "block_size").value == "16"
        # What the run is, before it starts: the parameters and where it starts from.
        note = str(screen.query_one("#from-note").content)
        assert screen.query_one("#from-note").display
        assert "Starts from the weights of tiny" in note
        assert f"{fmt_params(source.params)} parameters" in note, note
        assert "starts from the weights of tiny" in screen.status.text.lower()
        request = form.read_request()
        assert request.start_from == "tiny" and "tokenizer" not in request.overrides
        assert not set(SHAPE) & set(request.overrides)

        # Nothing: a new model again, its size, shape and tokenizer free and automatic.
        await start_from(pilot, screen, "")
        assert not any(field(screen, k).disabled for k in SHAPE)
        assert not screen.query_one("#preset").disabled
        assert screen.query_one("#tokenizer").value == "gpt2"  # the choice before
        assert not screen.query_one("#tokenizer").disabled
        assert not field(screen, "tokenizer").disabled
        assert field(screen, "optimizer").value != "adamw"
        assert field(screen, "n_layer").value == form.auto["n_layer"] != ""
        assert not screen.query_one("#from-note").display
        assert form.read_request().start_from is None

        # Resuming continues the model's own weights: nothing else to start from.
        form.prepare_resume("tiny")
        await pilot.pause()
        assert screen.query_one("#start-from").disabled
        assert screen.query_one("#start-from").value == "" and form.start_from is None


async def test_a_run_started_from_a_model_starts_at_its_weights(tiny_corpus, tiny_model,
                                                                charchat_home):
    app = CharChatApp()
    async with app.run_test(size=(150, 40)) as pilot:
        screen = await open_training(pilot, tiny_corpus)
        await start_from(pilot, screen, "tiny")
        # A learning rate too small to move anything: the model saved is the one it started
        # from.
        fill(screen, lr="1e-12", max_steps="5", batch_size="8", eval_interval="5",
             eval_tokens="512", device="cpu")
        screen.query_one("#name").value = "ft"
        await key(pilot, "ctrl+s")
        await settle(pilot)
        assert screen.state == "done", screen.query_one("#outcome-text").content
        assert screen.job.request.start_from == "tiny"
        a, b = store.load_model("tiny").model, store.load_model("ft").model
        for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            torch.testing.assert_close(x, y, atol=1e-6, rtol=0, msg=k)
        record = json.loads((store.models_dir() / "ft" / "train_args.json").read_text())
        assert record["config"]["optimizer"] == "adamw" and record["config"]["lr"] == 1e-12
        assert any("starting from the weights of tiny" in n for n in record["notes"])
        # The model it saved can be started from in turn; the form stays on "tiny".
        assert "ft" in screen.form.sources and screen.form.start_from == "tiny"
        assert field(screen, "n_layer").disabled


async def test_resuming_checks_the_corpus_with_the_models_vocabulary(tiny_model, charchat_home,
                                                                     tmp_path):
    """A character model resumed on a text with characters it never saw: the check says so
    before the run starts (it used to count the text's own characters and pass)."""
    other = tmp_path / "other.txt"
    other.write_text("Zebras \u00f1 quietly.\n" * 400)
    app = CharChatApp()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.action_open_training(resume="tiny")
        await settle(pilot)
        screen = app.screen
        screen.query_one("#paths").value = str(other)
        screen.form.check_corpus()
        await wait_for(pilot, lambda: "vocabulary lacks" in str(
            screen.query_one("#corpus-summary").content), what="the check's error")


async def test_the_note_says_what_the_budget_buys(tiny_corpus, tiny_model, charchat_home,
                                                  monkeypatch):
    """Starting from a model, its training speed is measured on this machine and the note
    says how many tokens the minutes buy, against the corpus's size."""
    from charchat import runs

    monkeypatch.setattr(runs, "fine_tune_speed", lambda *a, **k: 1234.0)
    app = CharChatApp()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_training(pilot, tiny_corpus)
        screen.query_one("#minutes").value = "2"
        await start_from(pilot, screen, "tiny")
        note = screen.query_one("#from-note")
        await wait_for(pilot, lambda: "tokens/s" in str(note.content), what="the speed")
        ids = screen.form.summary.ids
        text = str(note.content)
        assert "about 1,234 tokens/s, so ~148,080 tokens in 2 minutes" in text, text
        assert f"{148080 / ids:.1f}× your corpus" in text


def test_fine_tune_speed_is_measured(tiny_model, charchat_home):
    from charchat import runs

    assert runs.fine_tune_speed("tiny", 16) > 0
