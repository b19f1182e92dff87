"""The chat screen, driven with Pilot on a tiny model in a temporary data folder."""

import json
import os
import shutil
import subprocess
import sys

from charchat import conversations, preferences
from charchat.tui.app import CharChatApp
from charchat.tui.screens import chat as chat_module
from charchat.tui.screens.chat import ChatScreen
from charchat.tui.widgets.messages import MessageBubble

from .conftest import key, send, settle, wait_for


def bubbles(app):
    return [(b.role, b.text, b.ended) for b in app.screen.query(MessageBubble)]


def test_app_module_does_not_import_torch():
    code = ("import sys, charchat.tui.app, charchat.tui.screens.chat; "
            "bad = [m for m in ('torch', 'charchat.model', 'charchat.trainer', 'charchat.chat', "
            "'charchat.generation', 'numpy') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


async def test_empty_state_leads_to_training(charchat_home):
    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ChatScreen) and screen.state == "empty"
        assert "No model found" in str(screen.query_one("#empty-text").content)
        assert "missing from this install" in str(screen.query_one("#empty-text").content)
        assert screen.sub_title == "no model found"
        await send(pilot, "hello")  # nothing to answer: the text stays
        assert screen.query_one("#prompt").value == "hello"
        await pilot.press("ctrl+t")
        assert type(app.screen).__name__ == "TrainScreen"


async def test_send_streams_a_reply_and_saves_it(tiny_model, charchat_home):
    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert screen.state == "ready"
        assert screen.sub_title == "tiny · cpu"  # header: model and device
        await send(pilot, "The cat")
        await settle(pilot)
        got = bubbles(app)
        assert got[0] == ("user", "The cat", "")
        assert got[1][0] == "assistant" and 0 < len(got[1][1]) <= 30
        assert got[1][2] in ("length", "stop", "end_token")
        assert screen.query_one("#prompt").value == ""
        saved = conversations.latest("tiny")
        assert [m["content"] for m in saved.messages] == ["The cat", got[1][1]]
        assert preferences.last_model() == "tiny"
        # The conversation goes on.
        await send(pilot, "A dog")
        await settle(pilot)
        assert [b[0] for b in bubbles(app)] == ["user", "assistant", "user", "assistant"]
        assert len(conversations.latest("tiny").messages) == 4


async def test_stop_keeps_the_text(tiny_model, charchat_home, monkeypatch):
    monkeypatch.setattr(chat_module, "STREAM_INTERVAL", 0.0)
    # Greedy: this tiny model then writes spaces, never the blank line that ends a prose reply.
    preferences.save_sampling("tiny", {"max_new_chars": 100_000, "temperature": 0.0})
    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        await send(pilot, "The")
        await wait_for(pilot, lambda: len(screen.query(MessageBubble)[-1].text) >= 3,
                       what="streamed characters")
        assert screen.generating, bubbles(app)
        shown = [b.binding.action for b in app.active_bindings.values() if b.binding.show]
        assert "stop" in shown
        await key(pilot, "escape")
        await settle(pilot)
        reply = screen.query(MessageBubble)[-1]
        assert reply.ended == "cancelled" and not reply.streaming
        assert 3 <= len(reply.text) < 100_000
        assert reply.border_subtitle == "stopped"
        assert not screen.generating
        assert "stop" not in [b.binding.action for b in app.active_bindings.values()]
        saved = conversations.latest("tiny").messages[-1]
        assert saved["content"] == reply.text and saved["ended"] == "cancelled"


async def test_new_conversation_and_restore_on_restart(tiny_model, charchat_home):
    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await send(pilot, "first")
        await settle(pilot)
        first = bubbles(app)
    # Restart: the last conversation is back, and goes on.
    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert bubbles(app) == first
        assert len(app.engine.session.messages) == 2
        await key(pilot, "ctrl+n")
        await settle(pilot)
        assert bubbles(app) == []
        assert app.engine.session.messages == []
        await send(pilot, "second")
        await settle(pilot)
    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert bubbles(app)[0][1] == "second"
    assert len(conversations.list_conversations("tiny")) == 2  # the first one is still saved


async def test_stop_gives_back_every_unanswered_message(tiny_model, charchat_home,
                                                       monkeypatch):
    import time

    from charchat.tui.engine import ChatEngine

    def endless(self, text, cancel, on_saved_error=None):  # a reply that ends only if stopped
        while not cancel.is_set():
            time.sleep(0.005)
            yield "x"

    monkeypatch.setattr(ChatEngine, "stream", endless)
    monkeypatch.setattr(chat_module, "STREAM_INTERVAL", 0.0)
    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        await send(pilot, "The")  # a long reply: what follows waits for it
        await wait_for(pilot, lambda: len(screen.query(MessageBubble)[-1].text) >= 3,
                       what="streamed characters")
        for text in ("one", "two", "three"):
            await send(pilot, text)
        await key(pilot, "escape")
        await settle(pilot)
        prompt = screen.query_one("#prompt")
        assert prompt.value == "one two three" and prompt.cursor_position == len(prompt.value)
        assert [b[1] for b in bubbles(app) if b[0] == "user"] == ["The"]
        assert any("did not answer 3 messages" in n.message for n in app._notifications)


async def test_typing_before_the_model_is_ready(tiny_model, charchat_home):
    preferences.remember_model("gone")  # deleted since: the app falls back to another model
    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        # The first message can be sent before the model has loaded; it is answered once
        # the model is ready.
        app.screen.query_one("#prompt").value = "early"
        await key(pilot, "enter")
        await pilot.pause()
        assert bubbles(app)[0][:2] == ("user", "early")
        await settle(pilot)
        got = bubbles(app)
        assert got[0][1] == "early" and got[1][0] == "assistant" and got[1][1]
        assert app.screen.model_name == "tiny" and app.screen.state == "ready"


def saved_conversation(*texts):
    c = conversations.new("tiny", "prose")
    c.messages = [{"role": r, "content": t} for r, t in zip(("user", "assistant") * 9, texts)]
    conversations.save(c)
    return c


async def test_new_conversation_while_loading_answers_nothing(tiny_model, charchat_home,
                                                              held_load):
    saved_conversation("old question", "old answer")
    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.state == "loading" and bubbles(app),
                       what="the last conversation shown")
        await send(pilot, "queued")  # waits for the model
        assert screen.queue
        # Enter and ctrl+n together (typed while the load held the interpreter): the Enter's
        # message reaches the screen after ctrl+n has started the new conversation.
        screen.query_one("#prompt").value = "late"
        app.simulate_key("enter")
        app.simulate_key("ctrl+n")
        await wait_for(pilot, lambda: not screen.queue and not bubbles(app), what="cleared")
        for _ in range(5):
            await pilot.pause()
        assert bubbles(app) == [] and not screen.queue
        held_load.set()
        await settle(pilot)
        assert screen.state == "ready"
        assert bubbles(app) == [] and app.engine.session.messages == []
        assert screen.query_one("#prompt").value == "late"  # not sent: still in the input


async def test_new_conversation_before_the_model_is_picked(tiny_model, charchat_home,
                                                           monkeypatch):
    import threading

    saved_conversation("old question", "old answer")
    gate = threading.Event()
    from charchat import runs

    pick = runs.model_to_open

    def held(requested):
        gate.wait(30)
        return pick(requested)

    monkeypatch.setattr(runs, "model_to_open", held)
    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.state == "loading", what="loading")
        assert screen.model_name is None  # not picked yet
        await key(pilot, "ctrl+n")
        gate.set()
        await settle(pilot)
        assert screen.state == "ready" and screen.model_name == "tiny"
        assert bubbles(app) == [] and app.engine.session.messages == []


async def test_regenerate_while_loading(tiny_model, charchat_home, held_load):
    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.state == "loading" and screen.model_name,
                       what="loading")
        await key(pilot, "ctrl+r")
        said = [n.message for n in app._notifications]
        assert any("still loading" in m for m in said), said
        assert not any("Nothing to regenerate" in m for m in said)
        held_load.set()
        await settle(pilot)
    # With a conversation restored, ctrl+r while loading writes its last reply again, once
    # the model is ready.
    saved_conversation("The cat", "ok")
    held_load.clear()
    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.state == "loading" and bubbles(app),
                       what="the last conversation shown")
        await key(pilot, "ctrl+r")
        held_load.set()
        await settle(pilot)
        got = bubbles(app)
        assert [b[0] for b in got] == ["user", "assistant"] and got[1][1] != "ok"
        assert app.engine.session.messages[-1].content == got[1][1]


async def test_regenerate_copy_and_unknown_characters(tiny_model, charchat_home):
    preferences.save_sampling("tiny", {"max_new_chars": 30, "seed": None})
    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await key(pilot, "ctrl+r")  # nothing yet: told so
        await send(pilot, "The")
        await settle(pilot)
        await key(pilot, "ctrl+r")
        await settle(pilot)
        got = bubbles(app)
        assert len(got) == 2 and got[1][1]
        assert app.engine.session.messages[-1].content == got[1][1]
        copied = []
        app.copy_to_clipboard = copied.append
        await key(pilot, "ctrl+y")
        assert copied == [got[1][1]]
        # A bubble can be focused and copied too.
        app.screen.query(MessageBubble)[0].focus()
        await pilot.pause()
        await key(pilot, "c")
        assert copied[-1] == "The"
        # Characters the model never saw: the core's rule applies, and the user is told once.
        app.screen.query_one("#prompt").focus()
        await send(pilot, "Zebra!")
        await settle(pilot)
        notes = [n.message for n in app._notifications if "never saw" in n.message]
        assert len(notes) == 1 and "'!'" in notes[0]
        await send(pilot, "Zoo!")
        await settle(pilot)
        assert len([n for n in app._notifications if "never saw" in n.message]) == 1


async def test_settings_modal_changes_and_remembers(tiny_model, charchat_home):
    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+s")
        assert type(app.screen).__name__ == "SettingsModal"
        temp = app.screen.query_one("#s-temperature")
        temp.value = "9"
        await pilot.press("enter")
        assert type(app.screen).__name__ == "SettingsModal"  # refused, with a message
        assert "temperature" in str(app.screen.query_one("#settings-error").content)
        temp.value = "0.2"
        for field, value, said in (("top_k", "2.5", "'2.5' is not a whole number"),
                                   ("temperature", "1e400", "'1e400' is not a finite number"),
                                   ("seed", "99999999999999999999999", "from -2**63 to 2**64 - 1")):
            before = app.screen.query_one(f"#s-{field}").value
            app.screen.query_one(f"#s-{field}").value = value
            await pilot.press("enter")
            assert said in str(app.screen.query_one("#settings-error").content)
            app.screen.query_one(f"#s-{field}").value = before
        temp.value = "0.2"
        app.screen.query_one("#s-top_k").value = "5"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ChatScreen)
        assert app.engine.session.settings.temperature == 0.2
        assert app.engine.session.settings.top_k == 5
        assert preferences.sampling_for("tiny")["temperature"] == 0.2
        assert "temperature 0.2" in app.screen.query_one("#chat-status").text


async def test_a_models_own_sampling_is_used_and_is_what_defaults_restores(tiny_model, charchat_home):
    from charchat import store

    store.write_meta(charchat_home / "models" / "tiny", sampling={"temperature": 0, "top_p": None})
    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.engine.session.settings.temperature == 0  # the model's own, not 0.8
        assert app.engine.session.settings.top_p is None
        await pilot.press("ctrl+s")
        modal = app.screen
        assert modal.query_one("#s-temperature").value == "0.0"
        modal.query_one("#s-temperature").value = "1.5"
        modal.query_one("#s-max_new_chars").value = "77"
        await pilot.click("#defaults")
        assert modal.query_one("#s-temperature").value == "0.0"  # the model's, not 0.8
        assert modal.query_one("#s-top_p").value == ""
        assert modal.query_one("#s-max_new_chars").value == "400"
        modal.query_one("#s-temperature").value = "0.3"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.engine.session.settings.temperature == 0.3
    # Only what the user changed is stored: the model's own settings stay its own.
    saved = json.loads((charchat_home / "state.json").read_text())["sampling"]["tiny"]
    assert saved["temperature"] == 0.3 and "top_p" not in saved

async def test_command_palette_and_theme(tiny_model, charchat_home):
    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        titles = {c.title: c for c in app.get_system_commands(app.screen)}
        for title in ("New conversation", "Regenerate last reply", "Copy last reply",
                      "Sampling settings…", "Switch model…", "Temperature 0.5", "Top-k 20",
                      "Top-p 0.9", "Max reply length 200", "Train a model", "Models"):
            assert title in titles, title
        titles["Temperature 0.5"].callback()
        await settle(pilot)
        assert preferences.sampling_for("tiny")["temperature"] == 0.5
        assert app.engine.session.settings.temperature == 0.5
        await pilot.press("ctrl+p")
        assert type(app.screen).__name__ == "CommandPalette"
        await pilot.press("escape")
        # Narrow and short at 80x24; the theme is remembered.
        assert app.screen.has_class("-narrow") and app.screen.has_class("-short")
        app.theme = "textual-light"
        await pilot.pause()
        assert json.loads((charchat_home / "state.json").read_text())["theme"] == "textual-light"
    assert CharChatApp().theme == "textual-light"


async def test_switch_model_with_picker(tiny_model, tiny_model_dir, charchat_home):
    shutil.copytree(tiny_model_dir, charchat_home / "models" / "other")
    preferences.remember_model("tiny")
    app = CharChatApp()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await send(pilot, "hi")
        await settle(pilot)
        await pilot.press("ctrl+l")
        picker = app.screen
        assert type(picker).__name__ == "ModelPickerModal"
        options = [o.id for o in picker.query_one("#model-options").options]
        assert set(options) == {"tiny", "other"}
        prompt = str(picker.query_one("#model-options").get_option("tiny").prompt)
        assert "params" in prompt and "val" in prompt
        picker.query_one("#model-options").highlighted = options.index("other")
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen.sub_title == "other · cpu"
        assert bubbles(app) == []  # other has no conversation yet
        assert preferences.last_model() == "other"
        # Back to tiny: its conversation comes back.
        app.screen.switch_model("tiny")
        await settle(pilot)
        assert bubbles(app)[0][1] == "hi"
        # Cleared (ctrl+n), away and back: still cleared, not the old conversation again.
        await key(pilot, "ctrl+n")
        await settle(pilot)
        app.screen.switch_model("other")
        await settle(pilot)
        app.screen.switch_model("tiny")
        await settle(pilot)
        assert bubbles(app) == []
        await send(pilot, "again")  # the new one is saved, and comes back from now on
        await settle(pilot)
        app.screen.switch_model("other")
        await settle(pilot)
        app.screen.switch_model("tiny")
        await settle(pilot)
        assert bubbles(app)[0][1] == "again"


async def test_corrupted_model_is_an_error_message(tiny_model, charchat_home):
    (charchat_home / "models" / "tiny" / "model.pt").write_bytes(b"\x00not a model")
    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert screen.state == "failed"
        text = str(screen.query_one("#empty-text").content)
        assert "Could not load the model tiny" in text and "not a readable model file" in text
        assert "not loaded" in screen.sub_title
        await send(pilot, "hello")
        assert bubbles(app) == []
        assert app.return_code is None  # still running, no traceback


async def test_view_follows_the_reply_only_at_the_bottom(tiny_model, charchat_home):
    conv = conversations.new("tiny")
    for i in range(15):
        conv.messages += [{"role": "user", "content": f"message {i}", "ended": ""},
                          {"role": "assistant", "content": f"reply {i}", "ended": "stop"}]
    conversations.save(conv)
    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        view = app.screen.conversation
        assert view.max_scroll_y > 0 and view.scroll_y == view.max_scroll_y  # restored, at the end
        await send(pilot, "The cat")
        await settle(pilot)
        assert view.scroll_y == view.max_scroll_y  # followed the reply
        reply = view.last_reply()
        # The user scrolls up: text streaming in does not move the view...
        view.scroll_home(animate=False)
        await pilot.pause()
        app.screen.post_message(ChatScreen.Chunk(reply, "more\n" * 10))
        await pilot.pause()
        assert view.scroll_y == 0
        # ...until they are back at the bottom: then it follows again.
        view.scroll_end(animate=False)
        await pilot.pause()
        app.screen.post_message(ChatScreen.Chunk(reply, "even more\n" * 10))
        await pilot.pause()
        assert view.scroll_y == view.max_scroll_y


async def test_opens_the_bundled_default_model(tiny_model_dir, charchat_home, tmp_path,
                                               monkeypatch):
    from charchat import store

    bundled = tmp_path / "package-data" / "default"
    shutil.copytree(tiny_model_dir, bundled)
    monkeypatch.setattr(store, "bundled_dir", lambda: bundled)
    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.screen.state == "ready" and app.screen.sub_title == "default · cpu"
        await pilot.press("ctrl+l")
        options = app.screen.query_one("#model-options")
        assert "(bundled)" in str(options.get_option("default").prompt)
        await pilot.press("escape")
        await pilot.press("ctrl+o")
        await settle(pilot)
        assert not app.screen.check_action("delete", ())  # the bundled model is read-only


async def test_hint_and_input_history(tiny_model, charchat_home):
    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        hint = app.screen.query(".conversation-hint")
        assert hint and "learned from prose" in str(hint.first().content)
        await send(pilot, "one")
        await settle(pilot)
        assert not app.screen.query(".conversation-hint")
        await send(pilot, "two")
        await settle(pilot)
        prompt = app.screen.query_one("#prompt")
        await pilot.press("up")
        assert prompt.value == "two"
        await pilot.press("up", "up")
        assert prompt.value == "one"
        await pilot.press("down", "down")
        assert prompt.value == ""
        await key(pilot, "ctrl+n")
        await settle(pilot)
        assert app.screen.query(".conversation-hint")


async def test_a_pasted_text_of_several_lines_arrives_whole(tiny_model, charchat_home):
    from textual import events

    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        prompt = app.screen.query_one("#prompt")
        prompt.post_message(events.Paste("The first line\n\nThe second line\r\nthe third\n"))
        await settle(pilot)
        assert prompt.value == "The first line The second line the third"
        assert any("Pasted 3 lines as one" in n.message for n in app._notifications)
        for pasted in ("one line\n", "\none line\n", "\r\n  one line", "one\u2028line",
                       "one\x0cline"):  # Input's own paste keeps "one" of the last two
            prompt.value = ""
            prompt.post_message(events.Paste(pasted))
            await settle(pilot)
            assert prompt.value == "one line", repr(pasted)


async def test_saved_conversations_open_with_ctrl_g(tiny_model, charchat_home, monkeypatch):
    import os
    import time

    then = time.time() - 1000
    for i, text in enumerate(("first chat", "second chat", "third chat")):
        c = conversations.new("tiny", "prose")
        c.messages = [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]
        conversations.save(c)
        # Newest first goes by file time: set it, a minute apart, rather than wait for it.
        os.utime(conversations.path_for(c.id), (then + 60 * i, then + 60 * i))
    monkeypatch.setattr(chat_module, "HISTORY_LIMIT", 2)
    app = CharChatApp()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+g")
        await settle(pilot)
        modal = app.screen
        options = modal.query_one("#conversation-options")
        assert options.option_count == 2  # the newest two
        hint = " ".join(str(w.content) for w in modal.query(".hint"))
        assert "The newest 2 are listed; older ones stay in" in hint
        # d deletes the highlighted one, after asking (Cancel is focused: Enter keeps it).
        options.highlighted = 0
        await pilot.press("d")
        await settle(pilot)
        assert type(app.screen).__name__ == "ConfirmModal"
        await pilot.press("enter")
        await settle(pilot)
        assert len(conversations.list_conversations()) == 3
        await pilot.press("d")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert [c.title for c in conversations.list_conversations()] == ["second chat",
                                                                        "first chat"]
        assert options.option_count == 1
        # It was the one open in chat: the chat starts afresh, and does not save it again.
        chat = app.chat_screen
        assert not chat.query(MessageBubble) and app.engine.session.messages == []
        options.highlighted = 0
        await pilot.press("enter")
        await settle(pilot)
        assert bubbles(app)[0][1] == "second chat"


async def test_a_conversation_whose_model_is_gone_keeps_its_replies_names(tiny_model,
                                                                          charchat_home):
    c = conversations.new("gone", "prose")
    c.messages = [{"role": "user", "content": "The cat", "ended": ""},
                  {"role": "assistant", "content": "sat on", "ended": "stop"}]
    conversations.save(c)

    def names(app):
        return [b.border_title for b in app.screen.query(MessageBubble)]

    app = CharChatApp()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+g")
        await pilot.press("enter")  # the only one: with "gone", deleted
        await settle(pilot)
        assert app.screen.model_name == "tiny"
        assert names(app) == ["you", "gone"]
        await send(pilot, "A dog")
        await settle(pilot)
        assert names(app) == ["you", "gone", "you", "tiny"]
    saved = conversations.load(c.id)
    assert saved.model == "tiny"
    assert [m.get("model") for m in saved.messages] == [None, "gone", None, None]
    c.id = conversations.new("gone").id  # a second one, older: its last reply by "gone"
    c.model = "gone"
    conversations.save(c)
    os.utime(conversations.path_for(c.id), (100, 100))
    app = CharChatApp()  # restored on start: still signed by the model that wrote them
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert names(app) == ["you", "gone", "you", "tiny"]
        await pilot.press("ctrl+g")
        app.screen.query_one("#conversation-options").highlighted = 1
        await pilot.press("enter")
        await settle(pilot)
        assert names(app) == ["you", "gone"]
        await key(pilot, "ctrl+r")  # written again, by tiny
        await settle(pilot)
        assert names(app) == ["you", "tiny"]
    assert [m.get("model") for m in conversations.load(c.id).messages] == [None, None]


async def test_a_status_too_long_for_the_screen_ends_in_an_ellipsis(charchat_home):
    app = CharChatApp()
    async with app.run_test(size=(60, 20)) as pilot:
        await settle(pilot)
        status = app.screen.query_one("#chat-status")
        status.set("ready · temperature 0.7, top-k 20, top-p 0.95, max 1000 chars, seed 42")
        await pilot.pause()
        line = status.render_line(0).text.rstrip()
        assert line.endswith("…") and len(line) <= 60


async def test_damaged_conversation_files_are_named_in_the_list(tiny_model, charchat_home):
    c = conversations.new("tiny", "prose")
    c.messages = [{"role": "user", "content": "a readable chat"},
                  {"role": "assistant", "content": "ok"}]
    conversations.save(c)
    folder = conversations.conversations_dir()
    (folder / "20250101-000000-aaaa.json").write_text('{"model": "tiny", "messages": [{"ro')
    (folder / "20250101-000000-bbbb.json").write_text("")
    app = CharChatApp()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+g")
        await settle(pilot)
        modal = app.screen
        assert modal.query_one("#conversation-options").option_count == 1
        note = str(modal.query_one("#damaged-note").content)
        assert "2 saved conversation files could not be read" in note
        assert "20250101-000000-" in note and str(folder) in note
        assert any("could not be read" in n.message for n in app._notifications)
    assert (folder / "20250101-000000-bbbb.json").exists()  # kept as they were
    assert (folder / "20250101-000000-aaaa.json").read_text().endswith("[{\"ro")


async def test_only_damaged_conversation_files_are_not_no_conversations(charchat_home):
    folder = conversations.conversations_dir()
    folder.mkdir(parents=True)
    (folder / "20250101-000000-aaaa.json").write_text("{")
    app = CharChatApp()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+g")
        await settle(pilot)
        texts = " ".join(str(w.content) for w in app.screen.query("Static"))
        assert "No saved conversations yet" not in texts
        assert "1 saved conversation file could not be read" in texts
        assert "20250101-000000-aaaa.json" in texts


async def test_a_damaged_state_file_is_moved_aside_and_named(tiny_model, charchat_home):
    state = charchat_home / "state.json"
    state.write_text('{"theme": "nord", "last_model": "ti')  # torn
    app = CharChatApp()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        assert app.theme == "textual-dark"  # the defaults
        assert app.screen.model_name == "tiny"
        notes = [n.message for n in app._notifications]
        assert any(str(state) in n and "state.json.damaged" in n for n in notes), notes
    assert (charchat_home / "state.json.damaged").read_text() == \
        '{"theme": "nord", "last_model": "ti'
    assert preferences.last_model() == "tiny"  # a new file, written beside it
