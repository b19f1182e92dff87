"""F1's keys panel: the screen's own keys first, and Escape closes it (before anything else)."""

import io

from rich.console import Console

from charchat.tui.app import CharChatApp
from charchat.tui.screens.chat import ChatScreen

from .conftest import settle


def panel_text(screen) -> str:
    from textual.widgets._key_panel import BindingsTable

    table = screen.query_one(BindingsTable)
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(table.render_bindings_table())
    return console.export_text()


async def test_f1_lists_the_screens_keys_first_and_escape_closes_it(tiny_model, charchat_home):
    app = CharChatApp()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        chat = app.screen
        await pilot.press("f1")
        assert chat.query("HelpPanel")
        text = panel_text(chat)
        # The chat's keys come before the message line's 35 editing keys.
        assert text.index("New") < text.index("Move cursor left")
        assert text.index("Quit") < text.index("Move cursor left")
        await pilot.press("escape")
        assert not chat.query("HelpPanel") and app.screen is chat
        await pilot.press("f1", "f1")  # F1 still toggles it
        assert not chat.query("HelpPanel")
        # On the models screen, Escape closes the panel first, then goes back.
        await pilot.press("ctrl+o")
        await settle(pilot)
        models = app.screen
        await pilot.press("f1")
        assert models.query("HelpPanel")
        assert panel_text(models).index("Delete") < panel_text(models).index("Quit")
        await pilot.press("escape")
        assert app.screen is models and not models.query("HelpPanel")
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, ChatScreen)
