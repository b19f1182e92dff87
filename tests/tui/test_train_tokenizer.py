"""The training form's tokenizer (char, gpt2, bpe:N): the corpus check counts tokens, the choice
reaches the run, the figures show bits per character, the models screen the tokenizer."""

import io
import math

from charchat import store
from charchat.corpus import load_corpus
from charchat.tui.app import CharChatApp
from charchat.tui.screens.models import ModelsScreen
from charchat.tui.widgets.train_stats import TrainStats

from conftest import pattern_text
from .conftest import key, settle, wait_for
from .test_train_screen import TINY_FORM, fill, open_training


def plain(renderable, width: int = 100) -> str:
    from rich.console import Console

    console = Console(width=width, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def summary_of(screen) -> str:
    return str(screen.query_one("#corpus-summary").content)


async def choose(pilot, screen, tokenizer: str) -> None:
    """Pick a tokenizer in the form's Select and wait for the corpus check it starts."""
    screen.query_one("#tokenizer").value = tokenizer
    await wait_for(pilot, lambda: screen.form.checked_spec == tokenizer, what="a new check")
    await settle(pilot)


async def test_choosing_gpt2_counts_tokens_and_checks_length_in_tokens(tmp_path, charchat_home):
    path = tmp_path / "words.txt"
    corpus_text = pattern_text(1500)
    path.write_text(corpus_text)
    n_tokens = len(load_corpus([path], spec="gpt2", cache_dir=tmp_path / "cache").ids)
    app = CharChatApp()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_training(pilot, path)
        fill(screen, block_size="100")
        await settle(pilot)
        # As characters, the corpus holds a window of 100 in both splits.
        assert summary_of(screen).startswith("✓") and "characters a token" not in summary_of(
            screen)
        shown = []
        summary = screen.query_one("#corpus-summary")
        update = summary.update
        summary.update = lambda content="", **kw: (shown.append(str(content)),
                                                   update(content, **kw))[1]
        await choose(pilot, screen, "gpt2")
        assert any(s.startswith("encoding the corpus into gpt2 tokens…") for s in shown), shown
        text = summary_of(screen)
        # Counted in gpt2 tokens the validation split is shorter than one window of 100: the
        # length check uses the token count, not the characters.
        assert "✗" in text and "corpus too short" in text, text
        assert screen.query_one("#adv-tokenizer").value == "gpt2"
        fill(screen, block_size="8")
        await wait_for(pilot, lambda: summary_of(screen).startswith("✓"), what="the count")
        shown_text = summary_of(screen)
        cpt = len(corpus_text) / n_tokens
        assert f"{n_tokens:,} gpt2 tokens ({cpt:.2f} characters a token)" in shown_text, (
            shown_text)
        # Any bpe:N typed in the advanced field is chosen above too, and checked.
        fill(screen, tokenizer="bpe:300")
        await wait_for(pilot, lambda: screen.form.checked_spec == "bpe:300", what="a check")
        await settle(pilot)
        assert screen.query_one("#tokenizer").value == "bpe:300"
        assert "bpe:300 tokens" in summary_of(screen), summary_of(screen)
        # A value out of range names the field, and the choice above stays as it was.
        fill(screen, tokenizer="bpe:5")
        await settle(pilot)
        assert screen.query_one("#tokenizer").value == "bpe:300"
        await key(pilot, "ctrl+s")
        await settle(pilot)
        assert screen.state == "idle" and "tokenizer: bpe:N needs N from 260" in (
            screen.status.text), screen.status.text
        assert app.focused.id == "adv-tokenizer"


async def test_a_bpe_run_saves_its_tokenizer_shows_bpc_and_is_listed(tiny_corpus,
                                                                    charchat_home):
    app = CharChatApp()
    async with app.run_test(size=(150, 40)) as pilot:
        screen = await open_training(pilot, tiny_corpus)
        fill(screen, tokenizer="bpe:300")  # typed: chosen in the Select as well
        await wait_for(pilot, lambda: screen.form.checked_spec == "bpe:300", what="a check")
        await settle(pilot)
        assert screen.query_one("#tokenizer").value == "bpe:300"
        assert "bpe:300 tokens" in summary_of(screen)
        fill(screen, max_steps="20", **TINY_FORM)
        screen.query_one("#name").value = "bytes"
        await key(pilot, "ctrl+s")
        await settle(pilot)
        assert screen.state == "done", screen.query_one("#outcome-text").content
        assert "bpe:300 tokens" in str(screen.query_one("#run-title").content)
        # The figures: bits per character beside the loss, from the evaluations.
        stats = screen.query_one(TrainStats)
        bpc = stats.values.get("bpc")
        assert isinstance(bpc, float) and 0 < bpc < 10
        assert f"bpc {bpc:.3f}" in plain(stats.content, stats.size.width)
        model = {m.name: m for m in store.list_models()}["bytes"]
        assert model.tokenizer == "bpe:300" and model.best_bpc is not None
        assert store.load_model("bytes").tokenizer.name == "bpe:300"

        # The models screen: the tokenizer and the best bits per character.
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("ctrl+o")
        await settle(pilot)
        models = app.screen
        assert isinstance(models, ModelsScreen)
        table = models.query_one("#models-table")
        row = table.get_row("bytes")
        assert row[2] == "bpe:300" and row[3] == f"{model.best_bpc:.3f}", row
        details = plain(models.query_one("#details").content)
        assert "bpe:300 (a BPE trained on its corpus)" in details
        assert f"bits/char {model.best_bpc:.3f}" in details, details

        # Resuming keeps the tokenizer, fixed like the shape; the check counts the corpus in
        # the model's own tokens.
        await pilot.press("t")
        await settle(pilot)
        screen = app.screen
        assert screen.resume_name == "bytes"
        assert screen.query_one("#tokenizer").value == "bpe:300"
        assert screen.query_one("#tokenizer").disabled
        assert screen.query_one("#adv-tokenizer").disabled
        await wait_for(pilot, lambda: summary_of(screen).startswith("✓"), what="the check")
        assert "bpe:300 tokens" in summary_of(screen)


async def test_char_models_show_their_bits_per_character(tiny_model, charchat_home):
    app = CharChatApp()
    async with app.run_test(size=(150, 40)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+o")
        await settle(pilot)
        model = {m.name: m for m in store.list_models()}["tiny"]
        row = app.screen.query_one("#models-table").get_row("tiny")
        assert row[2] == "char"
        assert row[3] == f"{model.best_val_loss / math.log(2):.3f}"
