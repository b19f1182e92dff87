"""The models screen: list, details, delete (confirmed), rename, set default, chat."""

import io
import json
import re
import shutil

from charchat import conversations, preferences, store
from charchat.tui.app import CharChatApp
from charchat.tui.screens.chat import ChatScreen
from charchat.tui.screens.models import ModelsScreen

from .conftest import key, settle


async def open_models(pilot) -> ModelsScreen:
    await settle(pilot)
    await pilot.press("ctrl+o")
    await settle(pilot)
    assert isinstance(pilot.app.screen, ModelsScreen)
    return pilot.app.screen


def plain(renderable) -> str:
    from rich.console import Console

    console = Console(width=100, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def rows(screen):
    table = screen.query_one("#models-table")
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


async def details_of(pilot, name: str) -> tuple[ModelsScreen, str]:
    """The models screen opened, its cursor on the first row that names `name`: the screen
    and its details pane as text."""
    screen = await open_models(pilot)
    table = screen.query_one("#models-table")
    table.move_cursor(row=[i for i, n in enumerate(rows(screen)) if name in n][0])
    await settle(pilot)
    return screen, plain(screen.query_one("#details").content)


async def test_list_and_details(tiny_model, tiny_model_dir, charchat_home):
    from charchat import locking

    shutil.copytree(tiny_model_dir, charchat_home / "models" / "other")
    app = CharChatApp()
    # "other" is being trained (by another process, say): the list says so.
    with locking.acquire(charchat_home / "models" / "other"):
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_models(pilot)
            names = rows(screen)
    assert len(names) == 2 and any(n.startswith("tiny") for n in names)
    training = [n for n in names if "(training)" in n]
    assert len(training) == 1 and training[0].startswith("other")
    app = CharChatApp()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_models(pilot)
        names = rows(screen)
        assert len(names) == 2 and not any("(training)" in n for n in names)
        table = screen.query_one("#models-table")
        row = table.get_row_at(0)
        assert re.fullmatch(r"[\d.]+k", row[1]) and row[2] == "char"
        assert re.fullmatch(r"\d\.\d{3}", row[3]) and row[4].endswith("kB")
        details = plain(screen.query_one("#details").content)
        for field in ("parameters", "tokenizer", "best val loss", "bits/char", "corpus",
                      "created", "on disk", "shape"):
            assert field in details
        assert "●" in " ".join(names)  # the model open in chat is marked


async def test_damaged_side_files_show_question_marks(tiny_model, tiny_model_dir, charchat_home):
    folder = charchat_home / "models" / "other"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "meta.json").write_text('{"params": "lots", "corpus_kind": 3, "created": 1e300}')
    (folder / "train_args.json").write_text(
        '{"config": {"minutes": "ten"}, "corpus_paths": [1, "a.txt"]}')
    app = CharChatApp()
    async with app.run_test(size=(120, 40)) as pilot:
        screen, details = await details_of(pilot, "other")
        assert "other" in details and "parameters" in details and "1, a.txt" in details
        assert screen.is_current  # nothing crashed
        await pilot.press("t")  # resume: refused with the file named, not a traceback
        await settle(pilot)
        notes = [n.message for n in app._notifications if n.title == "Cannot resume"]
        assert notes == [f"{folder / 'train_args.json'}: cannot resume, training record damaged"]
        assert app.return_code is None


async def test_the_footer_follows_the_row(tiny_model, tiny_model_dir, charchat_home,
                                          tmp_path, monkeypatch):
    """Delete, rename and resume are greyed out on the bundled model, as the cursor moves."""
    from textual.widgets._footer import FooterKey

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_model_dir, bundle)
    monkeypatch.setattr(store, "bundled_dir", lambda: bundle)
    app = CharChatApp()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_models(pilot)
        table = screen.query_one("#models-table")

        def greyed() -> set[str]:
            return {k.description for k in screen.query(FooterKey) if k.has_class("-disabled")}

        for name, expected in (("tiny", set()), ("default", {"Delete", "Rename", "Resume"}),
                               ("tiny", set())):
            table.move_cursor(row=[i for i, n in enumerate(rows(screen)) if name in n][0])
            await settle(pilot)
            assert greyed() == expected, name
        # Pressed anyway, they say why they do nothing.
        table.move_cursor(row=[i for i, n in enumerate(rows(screen)) if "default" in n][0])
        await settle(pilot)
        await key(pilot, "d", "r", "t", "delete")
        said = [n.message for n in app._notifications if "bundled" in n.message]
        assert len(said) == 4 and app.screen is screen
        for verb, message in zip(("deleted", "renamed", "resumed", "deleted"), said):
            assert f"The bundled model cannot be {verb}" in message
        assert (bundle / store.WEIGHTS).exists()


async def test_a_mean_of_models_says_so(tiny_model_dir, charchat_home, tmp_path, monkeypatch):
    """The bundled model made as a mean of weights (build_default.py --average) names its
    members, and says the training record shown is its last member's; a damaged build.json
    shows the plain card."""
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_model_dir, bundle)
    monkeypatch.setattr(store, "bundled_dir", lambda: bundle)
    members = [{"folder": "runs/phase4-tenth-try", "val_loss": 0.35203},
               {"folder": "runs/phase4-twelfth-try/", "val_loss": 0.3403},
               {"folder": "runs/third", "val_loss": "?"}]
    builds = ({"average": {"members": members}}, {"average": {"members": "three"}},
              {"average": {"members": [{"folder": 3}]}}, {})
    shown = []
    for build in builds:
        (bundle / "build.json").write_text(json.dumps(build))
        app = CharChatApp()
        async with app.run_test(size=(140, 40)) as pilot:
            _, details = await details_of(pilot, "default")
            shown.append(" ".join(details.split()))
    assert "made as the mean of 3 models' weights, with no training of its own" in shown[0]
    assert "members phase4-tenth-try (0.3520), phase4-twelfth-try (0.3403), third" in shown[0]
    assert "trained with its last member: batch" in shown[0]
    for plain_card in shown[1:]:
        assert "made as" not in plain_card and "members" not in plain_card
        assert "trained with batch" in plain_card


async def test_delete_asks_first(tiny_model, tiny_model_dir, charchat_home):
    shutil.copytree(tiny_model_dir, charchat_home / "models" / "other")
    preferences.remember_model("tiny")
    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_models(pilot)
        screen.query_one("#models-table").move_cursor(row=rows(screen).index(
            next(n for n in rows(screen) if n.startswith("tiny"))))
        await pilot.press("d")
        assert type(app.screen).__name__ == "ConfirmModal"
        await pilot.press("enter")  # the focused button is "Keep it"
        await settle(pilot)
        assert (charchat_home / "models" / "tiny" / "model.pt").exists()
        await pilot.press("d")
        await pilot.press("y")
        await settle(pilot)
        assert not (charchat_home / "models" / "tiny").exists()
        assert [n.split()[0] for n in rows(screen)] == ["other"]
        assert preferences.last_model() != "tiny"
        # The chat screen had tiny open: it moves to another model.
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, ChatScreen) and app.screen.model_name == "other"


async def test_rename_and_default(tiny_model, charchat_home):
    conv = conversations.new("tiny")
    conv.messages = [{"role": "user", "content": "hi", "ended": ""}]
    conversations.save(conv)
    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_models(pilot)
        await pilot.press("r")
        modal = app.screen
        modal.query_one("#new-name").value = "bad name!"
        await pilot.press("enter")
        assert "invalid model name" in str(modal.query_one("#rename-error").content)
        modal.query_one("#new-name").value = "renamed"
        await pilot.press("enter")
        await settle(pilot)
        assert (charchat_home / "models" / "renamed" / "model.pt").exists()
        assert rows(screen)[0].startswith("renamed")
        assert conversations.latest("renamed").messages[0]["content"] == "hi"
        await key(pilot, "s")
        await settle(pilot)
        assert preferences.default_model() == "renamed"
        assert "★" in rows(screen)[0]
        await pilot.press("enter")  # chat with it
        await settle(pilot)
        assert isinstance(app.screen, ChatScreen) and app.screen.model_name == "renamed"
        assert app.screen.state == "ready"


async def test_empty_list(charchat_home):
    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_models(pilot)
        assert rows(screen) == []
        assert "No models yet" in plain(screen.query_one("#details").content)
        await key(pilot, "d")  # nothing to delete: nothing happens
        assert app.screen is screen


def test_the_corpus_column_reads_the_summary_as_data(tiny_model, charchat_home):
    """The corpus is kept as data (meta.json, else corpus.json), not parsed from a sentence."""
    from charchat.config import CorpusSummary
    from charchat.formatting import corpus_label

    assert corpus_label(CorpusSummary(chars=41_514, kind="prose")) == "41.5k chars, prose"
    assert corpus_label(CorpusSummary(chars=6_000, kind="dialogue")) == "6.0k chars, dialogue"
    assert corpus_label(CorpusSummary(chars=2_500_000, kind="mixed")) == "2.5M chars, mixed"
    assert corpus_label(None) == "?"
    (m,) = store.list_models()
    assert m.corpus_summary.chars == 6000 and m.corpus_summary.kind == "prose"
    assert store.read_meta(m.path)["corpus_summary"]["chars"] == 6000
    # A model saved before the summary went into meta.json: its corpus.json has it.
    meta = store.read_meta(m.path)
    del meta["corpus_summary"]
    (m.path / "meta.json").write_text(json.dumps(meta))
    (m,) = store.list_models()
    assert m.corpus_summary.chars == 6000
    (m.path / "corpus.json").write_text('{"chars": "many", "kind": 3}')  # hand-edited
    (m,) = store.list_models()
    assert m.corpus_summary.chars == 0 and corpus_label(m.corpus_summary) == "?"


def test_store_listing_is_untouched_by_the_app(tiny_model):
    assert [m.name for m in store.list_models()] == ["tiny"]


async def test_a_model_being_trained_is_not_deleted_renamed_or_resumed(tiny_model,
                                                                       charchat_home):
    import os

    from charchat import locking

    folder = charchat_home / "models" / "tiny"
    app = CharChatApp()
    with locking.acquire(folder):  # a run trains it (in another terminal, say)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_models(pilot)
            for k, verb in (("d", "deleted"), ("r", "renamed"), ("t", "resumed")):
                await pilot.press(k)
                await settle(pilot)
                assert app.screen is screen, k  # no dialog, no training screen
                assert any(f"is being trained by process {os.getpid()}; stop that run before "
                           f"it can be {verb}" in n.message for n in app._notifications), k
    assert (folder / "model.pt").exists()
