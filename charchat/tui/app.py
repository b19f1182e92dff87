"""The charchat app: chat with your models, train new ones, manage them.

Start-up must paint within a second: this module imports no torch, and neither do the screens
at import time. The chat screen loads the model in a thread worker after the first frame.
Training and models screens are imported when first opened.
"""

from __future__ import annotations

from typing import Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from .. import preferences
from .engine import ChatEngine
from .screens.chat import ChatScreen


class CharChatApp(App):
    # The chat screen is the default screen, whose own CSS_PATH Textual does not read: its
    # stylesheet is listed here.
    CSS_PATH = ["app.tcss", "widgets/widgets.tcss", "screens/chat.tcss"]
    TITLE = "charchat"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (36, "-tall")]
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("f1", "toggle_keys", "Keys", show=False),
        # Only while the keys panel is open (see check_action): Escape closes it first.
        Binding("escape", "hide_help_panel", "Hide keys", show=False, priority=True),
    ]

    def __init__(self, model: str | None = None) -> None:
        super().__init__()
        self.start_model = model
        self.engine = ChatEngine()
        theme = preferences.theme()
        if theme and theme in self.available_themes:
            self.theme = theme
        self._theme_ready = True

    def get_default_screen(self) -> Screen:
        return ChatScreen(self.engine, self.start_model)

    def watch_theme(self, theme: str) -> None:
        if getattr(self, "_theme_ready", False):
            preferences.remember_theme(theme)

    # -- screens -------------------------------------------------------------------------------
    @property
    def chat_screen(self) -> ChatScreen:
        return self.screen_stack[0]  # the default screen stays at the bottom

    def train_screen(self):
        """The training screen: on the stack, or kept out of sight while its run goes on."""
        from .screens.train import BACKGROUND, TrainScreen

        for s in self.screen_stack:
            if isinstance(s, TrainScreen):
                return s
        if self.is_screen_installed(BACKGROUND):
            return self.get_screen(BACKGROUND)
        return None

    def back_to_chat(self, then=None) -> None:
        """Close the other screens, then call `then` if given. A training run goes on."""

        def pop_all() -> None:
            while len(self.screen_stack) > 1:
                self.pop_screen()

        train = self.train_screen()
        if train is not None and train in self.screen_stack:
            train.leave(pop_all)  # as its Escape does
        else:
            pop_all()
        if then is not None:
            then()

    def action_open_training(self, resume: str | None = None) -> None:
        from .screens.train import TrainScreen

        existing = self.train_screen()
        if existing is not None:
            if existing in self.screen_stack:
                while self.screen is not existing:
                    self.pop_screen()
            else:  # its run went on out of sight
                self.push_screen(existing)
            if resume:
                existing.prepare_resume(resume)
            return
        self.push_screen(TrainScreen(resume=resume))

    def action_open_models(self) -> None:
        from .screens.models import ModelsScreen

        for s in self.screen_stack:
            if isinstance(s, ModelsScreen):
                while self.screen is not s:
                    self.pop_screen()
                return
        self.push_screen(ModelsScreen())

    def chat_with(self, name: str) -> None:
        """Go back to the chat screen and open a model."""
        self.back_to_chat(lambda: self.chat_screen.switch_model(name))

    def action_toggle_keys(self) -> None:
        """F1: show or hide the panel listing the keys of the current screen."""
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def action_show_help_panel(self) -> None:
        """The keys panel, the screen's own keys first (also the command palette's "Keys")."""
        from .widgets.keys import KeysHelpPanel

        if not self.screen.query("HelpPanel"):
            self.screen.mount(KeysHelpPanel())

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "hide_help_panel":
            # False: Escape goes on to the screen (stop a reply, close a dialog, go back).
            return bool(self.screen.query("HelpPanel"))
        return True

    # -- quitting ------------------------------------------------------------------------------
    async def action_quit(self) -> None:
        train = self.train_screen()
        if train is not None and train.running:
            from .screens.modals import ConfirmModal

            asking = getattr(self, "_quit_dialog", None)
            if asking is not None and asking in self.screen_stack:
                return  # ctrl+q again: the question is already on screen, once

            def answer(yes: bool | None) -> None:
                self._quit_dialog = None
                if yes:
                    train.stop_then(self.exit)

            self._quit_dialog = ConfirmModal(
                "Training is running",
                "Quit now? Training stops after the current step; the best model so far is "
                "kept, and you can resume it later from the models screen.",
                yes="Stop and quit", no="Keep training", danger=True)
            self.push_screen(self._quit_dialog, answer)
            return
        self.shutdown()
        self.exit()

    def shutdown(self) -> None:
        """Ask every background job to stop (they finish within a step)."""
        try:
            self.chat_screen.cancel.set()
        except Exception:
            pass
        train = self.train_screen()
        if train is not None:
            train.cancel.set()

    # -- command palette -----------------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        target = screen
        if target.is_modal:
            return
        commands = getattr(target, "palette_commands", None)
        if commands is not None:
            for title, help_text, callback in commands():
                yield SystemCommand(title, help_text, callback)
        if not isinstance(target, ChatScreen):
            yield SystemCommand("Chat", "Back to the chat screen", self.back_to_chat)
        if type(target).__name__ != "TrainScreen":
            yield SystemCommand("Train a model", "Open the training screen (ctrl+t)",
                                self.action_open_training)
        if type(target).__name__ != "ModelsScreen":
            yield SystemCommand("Models", "List, rename, delete and resume models (ctrl+o)",
                                self.action_open_models)
        yield SystemCommand("Light theme", "Switch to the light theme",
                            lambda: setattr(self, "theme", "textual-light"))
        yield SystemCommand("Dark theme", "Switch to the dark theme",
                            lambda: setattr(self, "theme", "textual-dark"))


def run(model: str | None = None) -> int:
    """Run the app; returns the exit code."""
    app = CharChatApp(model)
    try:
        app.run()
    finally:
        app.shutdown()
    return app.return_code or 0
