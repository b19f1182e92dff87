"""The training screen: a form (charchat.tui.widgets.train_form) and a run panel
(charchat.tui.widgets.run_panel) that view the app's training job.

The app owns the job (charchat.tui.engine.TrainingJob) and passes its progress here as
messages, coalesced into at most ten updates a second; the plot redraws at most twice a second.
Escape leaves the screen and the job goes on; ctrl+t opens a screen on it again, drawn from the
job's history. Stop sets the job's cancel event: it ends within a step and keeps the best model.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Button, Header

from ...formatting import fmt_time
from ..messages import JobChanged, JobEnded, JobProgress, OpenModel
from ..widgets.footer import Footer
from ..widgets.run_panel import RunPanel
from ..widgets.status import StatusLine
from ..widgets.train_form import FormError, TrainForm, widget_for
from .modals import PathPickerModal


class TrainScreen(Screen):
    CSS_PATH = "train.tcss"

    BINDINGS = [
        Binding("ctrl+s", "start", "Start"),
        Binding("ctrl+x", "stop", "Stop", priority=True),
        Binding("ctrl+b", "browse", "Browse"),
        Binding("ctrl+l", "chat_with", "Chat"),
        Binding("ctrl+e", "toggle_view", "Form/Run"),
        Binding("escape", "back", "Back"),
    ]

    state = reactive("idle", bindings=True)  # idle, running, stopping, done: the job's

    def __init__(self, job=None, resume: str | None = None) -> None:
        super().__init__()
        self.job = job
        self._resume = resume
        self._held = None  # progress that came while a dialog covered the screen, as one batch
        self.show_setup = True

    @property
    def running(self) -> bool:
        return self.state in ("running", "stopping")

    @property
    def form(self) -> TrainForm:
        return self.query_one(TrainForm)

    @property
    def panel(self) -> RunPanel:
        return self.query_one(RunPanel)

    @property
    def status(self) -> StatusLine:
        return self.query_one("#train-status", StatusLine)

    @property
    def resume_name(self) -> str | None:
        return self.form.resume_name

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        with Horizontal(id="train-body"):
            yield TrainForm(resume=self._resume, id="setup")
            yield RunPanel(id="run")
        yield StatusLine(id="train-status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = "charchat"
        self.sub_title = "train a model"
        if self.job is not None:  # a run that went on out of sight: draw it whole
            self.form.show_request(self.job.request)  # first: a resume fixes some fields
            self._view(self.job)
            self.panel.show(self.job.history)
            if self.job.running:
                self.status.set(f"training {self.job.name}…", busy=True)
            else:
                self._show_end(self.job)
        elif not self._resume:
            self.query_one("#paths").focus()
            self.status.set("Choose a corpus: type a path, or ctrl+b to browse.")
        self._apply_view()

    def prepare_resume(self, name: str) -> None:
        """Fill the form to continue training a saved model."""
        if self.running:
            self.notify("Training is running; stop it first.", severity="warning")
            return
        self.form.prepare_resume(name)

    # -- starting and stopping -----------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("start", "browse"):
            return self.state in ("idle", "done")
        if action == "stop":
            return self.state == "running"
        if action == "chat_with":
            return self.state == "done" and self.job is not None and self.job.kept is not None
        if action == "toggle_view":
            return self.state != "idle" and self.has_class("-narrow")
        return True

    def action_start(self) -> None:
        if self.running:
            return
        try:
            request = self.form.read_request()
        except FormError as e:
            self.status.set(str(e), level="error")
            self.notify(str(e), severity="error", title="Cannot start")
            self.form.focus_field(e.widget_id)
            return
        job = self.app.start_training(request)
        self.panel.reset(job.name)
        self._view(job)
        self.status.set("starting (loading torch and the corpus)…", busy=True)
        self.query_one("#stop", Button).focus()

    def _view(self, job) -> None:
        """Show this job: the form is locked while it runs."""
        self.job = job
        self.state = job.state
        self.show_setup = False
        self.form.set_enabled(not job.running)
        self.panel.show_state(job.state)
        self._apply_view()

    def action_stop(self) -> None:
        if self.state != "running" or self.job is None:
            return
        self.job.stop()
        self.state = "stopping"
        self.panel.stopping()
        self.status.set("stopping after this step; the best model is kept…", busy=True)

    # -- the job's progress --------------------------------------------------------------------
    @on(JobProgress)
    def _progress(self, msg: JobProgress) -> None:
        if self.app.screen is not self:
            # A dialog is over this screen (quit, help, palette). Redrawing behind it costs
            # the app enough to slow the training thread (tokens/s fell from 30-38k to 18-23k
            # with the quit dialog open, two runs): hold the updates until it shows.
            self._held = msg.batch if self._held is None else self._held.merge(msg.batch)
            return
        self._show(msg.batch)

    def on_screen_resume(self) -> None:
        self._show_held()

    def _show_held(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            self._show(held)

    def _show(self, batch) -> None:
        for line in self.panel.show(batch):
            if self.state == "running" or line.startswith("training"):
                self.status.set(line, busy=True)

    @on(JobEnded)
    def _ended(self, msg: JobEnded) -> None:
        self._show_held()  # before the outcome, which they must not overwrite
        self._show_end(msg.job)

    def _show_end(self, job) -> None:
        self.state = "done"
        job.seen_end = True
        self.form.set_enabled(True)
        self.form.name_taken()
        r = job.result
        if r is not None:
            level = "error" if r.stop_reason == "non_finite" else "success"
            head = {"cancelled": "Stopped", "non_finite": "Diverged"}.get(r.stop_reason,
                                                                           "Finished")
            # The core's message says why it stopped and where the best model is.
            text = Text.assemble((f"{head} · ", "bold"), r.message + ".")
            if r.best_val_loss is not None:
                text.append(f" ({r.steps} steps in {fmt_time(r.elapsed)})", style="dim")
            if self.app.screen is self or self in self.app.screen_stack:
                self.notify(r.message, title=f"Training {head.lower()}",
                            severity="error" if level == "error" else "information")
        else:
            level = "warning" if job.cancelled else "error"
            text = Text.assemble(("Stopped · " if job.cancelled else "Training failed · ",
                                  "bold"), job.error or "")
            if job.kept:
                text.append(f"\nThe best model so far is kept with {job.kept}.")
            if not job.started and job.name:
                self.panel.did_not_start(job.name)
            if not job.cancelled:
                self.notify(job.error or "", severity="error", title="Training failed",
                            timeout=10)
        self.panel.show_outcome(text, level, job.kept,
                                full=r is not None and r.stop_reason != "cancelled")
        self.status.set("done · " + ("ctrl+l chats with the model · " if job.kept else "")
                        + "ctrl+s trains again · Escape goes back", level=level)
        if r is None and not job.cancelled:
            self._focus_fault(job)
        self._apply_view()

    def _focus_fault(self, job) -> None:
        """After a failed start: the cursor goes to the field the error is about, else to the
        corpus (the usual culprit), so the fix can be typed at once."""
        field = widget_for(job.error_field)
        if field is None and not job.started:
            field = "paths"
        if field is not None:
            self.show_setup = True
            self._apply_view()
            self.form.focus_field(field)

    # -- leaving -------------------------------------------------------------------------------
    def action_chat_with(self) -> None:
        if self.job is not None and self.job.kept:
            self.app.forget_job(self.job)
            self.app.post_message(OpenModel(self.job.kept))

    def action_back(self) -> None:
        """Back to the screen below. A run goes on out of sight (ctrl+t comes back to it); an
        ended one, now seen, is forgotten."""
        if self.job is not None:
            if self.job.running:
                self.notify("Training goes on in the background; ctrl+t comes back to it.",
                            title=f"Training {self.job.name}")
            else:
                self.app.forget_job(self.job)
        app = self.app
        while self in app.screen_stack and len(app.screen_stack) > 1:
            app.pop_screen()
        app.post_message(JobChanged())

    # -- the form's buttons and the layout -----------------------------------------------------
    def action_browse(self) -> None:
        if self.running:
            return
        try:
            current = self.form.paths()
        except FormError:
            current = []

        def chosen(path: str | None) -> None:
            if path:
                self.form.add_path(path)

        self.app.push_screen(PathPickerModal(current[-1] if current else None), chosen)

    def action_toggle_view(self) -> None:
        self.show_setup = not self.show_setup
        self._apply_view()

    def _apply_view(self) -> None:
        """Narrow screens show the form or the run, not both."""
        setup, run = self.state == "idle" or self.show_setup, self.state != "idle"
        if (setup, run) != (self.has_class("-show-setup"), self.has_class("-show-run")):
            # One restyle of the screen for both classes.
            self.set_class(setup, "-show-setup", update=False)
            self.set_class(run, "-show-run", update=False)
            self.update_node_styles()
        self.refresh_bindings()

    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        self.action_start()

    @on(Button.Pressed, "#stop")
    def _stop_pressed(self) -> None:
        self.action_stop()

    @on(Button.Pressed, "#browse")
    def _browse_pressed(self) -> None:
        self.action_browse()

    @on(Button.Pressed, "#chat-with")
    def _chat_pressed(self) -> None:
        self.action_chat_with()

    def palette_commands(self):
        yield ("Start training", "Start with the settings in the form (ctrl+s)", self.action_start)
        yield ("Stop training", "Stop after this step, keep the best model (ctrl+x)",
               self.action_stop)
        yield ("Browse for a corpus…", "Add a file or folder to the corpus (ctrl+b)",
               self.action_browse)
        if self.job is not None and self.job.kept and not self.running:
            yield ("Chat with the new model", f"Open {self.job.kept} in chat (ctrl+l)",
                   self.action_chat_with)
