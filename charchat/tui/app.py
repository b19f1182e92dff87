"""The charchat app: chat with your models, train new ones, manage them.

Start-up must paint within a second: this module imports no torch, and neither do the screens
at import time. The chat screen loads the model in a thread worker after the first frame.
Training and models screens are imported when first opened.
"""

from __future__ import annotations

import copy
from typing import Iterable

from textual import on
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen

from .. import preferences
from .engine import ChatEngine, TrainingJob
from .messages import (ConversationDeleted, JobChanged, JobEnded, JobProgress, ModelRemoved,
                       ModelRenamed, OpenModel)
from .screens.chat import ChatScreen

QUIT_TITLE = "Training is running"


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
        self.job: TrainingJob | None = None  # the training run, in sight or not
        self._exit_after_job = False
        self._job_worker = None
        # A damaged state.json is moved aside before anything reads or writes it; the app
        # says so once it is on screen, and goes on with defaults.
        self._state_note = preferences.check_state()
        theme = preferences.theme()
        if theme and theme in self.available_themes:
            self.theme = theme
        self._theme_ready = True

    def on_mount(self) -> None:
        preferences.reporter = self._preferences_note
        if self._state_note:
            self._preferences_note(self._state_note)

    def on_unmount(self) -> None:
        if preferences.reporter == self._preferences_note:
            preferences.reporter = preferences.print_note

    def _preferences_note(self, text: str) -> None:
        """A note about the settings file (damaged, moved aside), from any thread."""
        self.notify(text, title="Settings file", severity="warning", timeout=12, markup=False)

    def get_default_screen(self) -> Screen:
        return ChatScreen(self.engine, self.start_model)

    def watch_theme(self, theme: str) -> None:
        if getattr(self, "_theme_ready", False):
            preferences.remember_theme(theme)

    # -- screens -------------------------------------------------------------------------------
    @property
    def chat_screen(self) -> ChatScreen:
        return self.screen_stack[0]  # the default screen stays at the bottom

    def _train_screens(self) -> list:
        return [s for s in self.screen_stack if type(s).__name__ == "TrainScreen"]

    def back_to_chat(self, then=None) -> None:
        """Close the other screens, then call `then` if given. A training job goes on."""
        while len(self.screen_stack) > 1:
            self.pop_screen()
        if then is not None:
            self.call_later(then)

    def action_open_training(self, resume: str | None = None) -> None:
        """The training screen: the one open, else one on the job (running, or ended and not
        yet seen), else a new form (to resume `resume`)."""
        from .screens.train import TrainScreen

        open_ = self._train_screens()
        job = self.job
        if job is not None and job.running and resume:
            self.notify(f"Training {job.name} is running; stop it first.", severity="warning")
            resume = None
        if open_:
            while self.screen is not open_[-1]:
                self.pop_screen()
            if resume:
                open_[-1].prepare_resume(resume)
            return
        if job is not None and (job.running or not job.seen_end) and not resume:
            self.push_screen(TrainScreen(job=job))
        else:
            self.push_screen(TrainScreen(resume=resume))

    def action_open_models(self) -> None:
        from .screens.models import ModelsScreen

        for s in self.screen_stack:
            if isinstance(s, ModelsScreen):
                while self.screen is not s:
                    self.pop_screen()
                return
        self.push_screen(ModelsScreen())

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

    # -- messages from the screens -------------------------------------------------------------
    @on(OpenModel)
    def _open_model(self, msg: OpenModel) -> None:
        self.back_to_chat(lambda: self.chat_screen.post_message(OpenModel(msg.name)))

    @on(ModelRemoved)
    @on(ModelRenamed)
    @on(ConversationDeleted)
    @on(JobChanged)
    def _to_chat(self, msg: Message) -> None:
        if self.screen_stack:  # (not while the app closes)
            self.chat_screen.post_message(copy.copy(msg))  # a message is handled once

    # -- the training job ----------------------------------------------------------------------
    def start_training(self, request) -> TrainingJob:
        """Start a training job (one at a time) in a worker thread; screens view it."""
        if self.job is not None and self.job.running:
            raise RuntimeError("a training job is running")
        job = self.job = TrainingJob(request)

        def work() -> None:
            job.run(lambda batch: self.post_message(JobProgress(job, batch)))
            self.post_message(JobEnded(job))

        self._job_worker = self.run_worker(work, thread=True, group="train", exit_on_error=False)
        return job

    def job_out_of_sight(self) -> bool:
        """Whether the job is running with no training screen open."""
        return self.job is not None and self.job.running and not self._train_screens()

    def forget_job(self, job: TrainingJob) -> None:
        """An ended job whose end has been seen: ctrl+t opens a new form from now on."""
        if self.job is job and not job.running:
            self.job = None

    @on(JobProgress)
    def _job_progress(self, msg: JobProgress) -> None:
        for screen in self._train_screens():
            if screen.job is msg.job:
                screen.post_message(JobProgress(msg.job, msg.batch))

    @on(JobEnded)
    async def _job_ended(self, msg: JobEnded) -> None:
        viewers = [s for s in self._train_screens() if s.job is msg.job]
        for screen in viewers:
            screen.post_message(JobEnded(msg.job))
        if not viewers:  # it ended out of sight: say how, and how to see it
            job = msg.job
            if job.result is not None:
                r = job.result
                head = {"cancelled": "stopped", "non_finite": "diverged"}.get(
                    r.stop_reason, "finished")
                self.notify(r.message + " (ctrl+t shows the run)", title=f"Training {head}",
                            severity="error" if r.stop_reason == "non_finite" else "information")
            elif not job.cancelled:
                self.notify(f"{job.error} (ctrl+t shows the run)", title="Training failed",
                            severity="error", timeout=10)
        self._to_chat(JobChanged())
        if self._exit_after_job:
            await self._job_worker.wait()  # its thread returns at once: exiting would cancel it
            self.exit()

    # -- quitting ------------------------------------------------------------------------------
    async def action_quit(self) -> None:
        job = self.job
        if job is not None and job.running:
            from .screens.modals import ConfirmModal

            asking = getattr(self, "_quit_dialog", None)
            if asking is not None and asking in self.screen_stack:
                return  # ctrl+q again: the question is already on screen, once

            def answer(yes: bool | None) -> None:
                self._quit_dialog = None
                if yes:
                    self._exit_after_job = True
                    job.stop()
                    if not job.running:
                        self.exit()

            self._quit_dialog = ConfirmModal(
                QUIT_TITLE,
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
        if self.job is not None:
            self.job.stop()

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
