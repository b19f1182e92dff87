"""Faults the app must not keep quiet about (issue 18): settings it could not save, and saved
conversations it could not read when it reopens the newest one."""

from __future__ import annotations

import errno
import os

from charchat import conversations, store
from charchat.tui.app import CharChatApp

from .conftest import settle, wait_for


async def test_settings_that_cannot_be_saved_are_reported(tiny_model, charchat_home,
                                                          monkeypatch):
    app = CharChatApp()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)

        def full(path, obj):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(store, "atomic_write_json", full)
        app.theme = "nord"  # remembered by the app: the write fails
        await wait_for(pilot, lambda: any("could not save your settings" in n.message
                                          for n in app._notifications), what="a note")
        note = next(n.message for n in app._notifications if "could not save" in n.message)
        assert "no space left on the disk" in note and "state.json" in note


async def test_a_damaged_newer_conversation_is_named_when_the_older_one_reopens(
        tiny_model, charchat_home):
    c = conversations.new("tiny", "prose")
    c.messages = [{"role": "user", "content": "an older chat"},
                  {"role": "assistant", "content": "ok"}]
    path = conversations.save(c)
    os.utime(path, (1_000_000_000, 1_000_000_000))
    torn = path.parent / "20990101-000000-zzzz.json"
    torn.write_text('{"model": "tiny", "messages": [{"ro')  # newer, and cut off
    app = CharChatApp()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await wait_for(pilot, lambda: app.screen.engine.conversation is not None,
                       what="a conversation")
        assert app.screen.engine.conversation.id == c.id  # the readable one reopened
        notes = [n.message for n in app._notifications]
        assert any(torn.name in n and "could not be read" in n for n in notes), notes
    assert torn.read_text().endswith('[{"ro')  # kept as it was
