"""Dialogs close once, whatever keys follow: a second Enter arriving with the first (keys
sent together, or typed while a model loads) must not pop the screen below, nor an empty stack."""

import pytest

from charchat import conversations
from charchat.tui.app import CharChatApp
from charchat.tui.screens.chat import ChatScreen
from charchat.tui.screens.modals import (ConfirmModal, ConversationsModal, ModelPickerModal,
                                         PathPickerModal, RenameModal, SettingsModal)

from .conftest import settle, wait_for


async def together(pilot, *keys: str) -> None:
    """Keys that arrive in one read from the terminal: all queued before the app handles the
    first (Pilot's press waits for the app between keys, and so rarely shows the problem)."""
    for k in keys:
        pilot.app.simulate_key(k)
    await settle(pilot)


async def test_enter_twice_closes_each_chat_dialog_once(tiny_model, charchat_home):
    c = conversations.new("tiny", "prose")
    c.messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]
    conversations.save(c)
    app = CharChatApp()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        for keys, dialog in (("ctrl+s", SettingsModal), ("ctrl+l", ModelPickerModal),
                             ("ctrl+g", ConversationsModal)):
            await pilot.press(keys)
            assert isinstance(app.screen, dialog)
            await together(pilot, "enter", "enter")
            assert len(app.screen_stack) == 1 and isinstance(app.screen, ChatScreen), dialog
    assert app.return_code in (None, 0)


async def test_enter_twice_while_the_model_loads(tiny_model, charchat_home, held_load):
    app = CharChatApp()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.screen.state == "loading" and app.screen.model_name,
                       what="loading")
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, SettingsModal)
        for k in ("enter", "enter"):
            app.simulate_key(k)
        await wait_for(pilot, lambda: len(app.screen_stack) == 1, what="the dialog closed")
        held_load.set()
        await settle(pilot)
        assert len(app.screen_stack) == 1 and isinstance(app.screen, ChatScreen)
        assert app.screen.state == "ready"


@pytest.mark.parametrize("make", [
    lambda: ConfirmModal("t", "body"),
    lambda: ConfirmModal("t", "body", danger=True),
    lambda: RenameModal("tiny"),
    lambda: PathPickerModal("pick"),
])
async def test_every_dialog_dismisses_once(make, tiny_model, charchat_home, tmp_path,
                                           monkeypatch):
    (tmp_path / "pick").mkdir()
    (tmp_path / "pick" / "a.txt").write_text("text\n")
    monkeypatch.chdir(tmp_path)
    results = []
    app = CharChatApp()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        dialog = make()
        app.push_screen(dialog, results.append)
        await pilot.pause()
        # (No settle() while the path picker is open: its tree's loader worker never ends.)
        if isinstance(dialog, PathPickerModal):
            tree = dialog.query_one("#tree")
            await wait_for(pilot, lambda: tree.root.children, what="the folder listed")
            tree.move_cursor(tree.root.children[0])  # a.txt: Enter picks it
            await pilot.pause()
            keys = ("enter", "enter")
        else:  # Escape too: it reaches the dialog before the Enter's message does
            keys = ("enter", "enter", "escape", "escape")
        for k in keys:
            app.simulate_key(k)
        await wait_for(pilot, lambda: len(app.screen_stack) == 1, what="the dialog closed")
        for _ in range(5):
            await pilot.pause()
        assert len(app.screen_stack) == 1 and isinstance(app.screen, ChatScreen)
        # Called again, dismiss does nothing.
        dialog.dismiss("again")
        dialog.action_cancel()
        await pilot.pause()
        assert len(app.screen_stack) == 1
    assert len(results) == 1
    if isinstance(dialog, PathPickerModal):
        assert results[0].endswith("a.txt")


async def test_escape_twice_leaves_the_models_screen_once(tiny_model, charchat_home):
    app = CharChatApp()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+o")
        assert type(app.screen).__name__ == "ModelsScreen"
        for k in ("escape", "escape"):
            app.simulate_key(k)
        await settle(pilot)
        assert len(app.screen_stack) == 1 and isinstance(app.screen, ChatScreen)
