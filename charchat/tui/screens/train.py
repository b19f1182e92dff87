"""The training screen: choose a corpus, a name, a budget and a size, then watch the run.

The corpus is checked (and the core's default hyperparameters worked out) in thread workers as
the form changes. Start runs the core trainer in a thread worker; its events are coalesced by a
TrainFeed into at most ten screen updates a second, and the plot redraws at most twice a second.
Stop sets the trainer's cancel event: it ends within a step and keeps the best model.
"""

from __future__ import annotations

import math
import re
import shlex
import threading
from pathlib import Path
from typing import Callable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import (Button, Collapsible, Footer, Header, Input, Label, ProgressBar,
                             Select, Static)

from ... import store
from ...cli import HYPER
from ...corpus import too_short
from ..engine import (PRESET_CHOICES, SHAPE_KEYS, Cancelled, TrainFeed, TrainSpec,
                      check_new_name, describe_error, fmt_time, read_train_args,
                      resolved_defaults, run_training, suggest_name)
from ..widgets.loss_plot import LossPlot
from ..widgets.status import StatusLine
from ..widgets.train_stats import TrainStats
from .modals import PathPickerModal, shorten_path

# The advanced section: every hyperparameter of `charchat train`, in the CLI's order, and the
# step limit. (flag, TrainConfig field, parser, help)
ADVANCED = [*HYPER[:-1], ("--max-steps", "max_steps", HYPER[0][2], "stop after this many steps"),
            HYPER[-1]]
PRESET_HELP = {"auto": "auto (fits the budget)", "tiny": "tiny · 2×64", "small": "small · 3×128",
               "medium": "medium · 4×192", "large": "large · 6×384"}
DEFAULT_MINUTES = "2"


_FLAG = re.compile(r"--([a-z][a-z0-9-]*)")
_FIELDS = {flag[2:]: f"adv-{dest}" for flag, dest, _, _ in ADVANCED} | {"minutes": "minutes"}


def form_wording(text: str) -> str:
    """The core's messages name the command line's flags (--block-size); this form labels the
    same settings without the dashes."""
    return _FLAG.sub(lambda m: m.group(1) if m.group(1) in _FIELDS else m.group(0), text)


def field_at_fault(text: str, changed: set[str] = frozenset()) -> str | None:
    """The id of the form field a core message names: the first that the user changed (in
    "--n-embd must be divisible by --n-head", the one typed in), else the first named."""
    named = [_FIELDS[m.group(1)] for m in _FLAG.finditer(text) if m.group(1) in _FIELDS]
    return next((f for f in named if f in changed), named[0] if named else None)


TOO_SHORT = "Cannot train on this corpus"


# The name a training screen is installed under while its run goes on out of sight.
BACKGROUND = "training"


class FormError(Exception):
    def __init__(self, message: str, widget_id: str | None = None) -> None:
        super().__init__(message)
        self.widget_id = widget_id


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

    state = reactive("idle", bindings=True)  # idle, running, stopping, done

    class CorpusChecked(Message):
        def __init__(self, req: int, summary, error: str | None) -> None:
            super().__init__()
            self.req, self.summary, self.error = req, summary, error

    class DefaultsResolved(Message):
        def __init__(self, req: int, values: dict | None, notes: list[str], device: str,
                     error: str | None) -> None:
            super().__init__()
            self.req, self.values, self.notes, self.device, self.error = (
                req, values, notes, device, error)

    class Progress(Message):
        def __init__(self, batch) -> None:
            super().__init__()
            self.batch = batch

    class Finished(Message):
        def __init__(self, result) -> None:
            super().__init__()
            self.result = result

    class Failed(Message):
        def __init__(self, error: str, cancelled: bool = False) -> None:
            super().__init__()
            self.error, self.cancelled = error, cancelled

    class History(Message):
        def __init__(self, train: list, val: list) -> None:
            super().__init__()
            self.train, self.val = train, val

    # ------------------------------------------------------------------------------------------
    def __init__(self, resume: str | None = None) -> None:
        super().__init__()
        self.resume_name = resume
        self.cancel = threading.Event()
        self.summary = None
        self.corpus_error: str | None = None  # what the latest check found wrong, if anything
        self.length_error: str | None = None  # too short for the context, if so
        self.started = False  # whether the current run got as far as its first event
        self.auto: dict[str, str] = {}  # field -> the default last filled in
        self.name_auto = ""  # the name last suggested (replaced while untouched)
        self.req = 0
        self.defaults_req = 0
        self.result = None
        self.result_name: str | None = None
        self.spec: TrainSpec | None = None
        self._after_stop = None
        self._held = None  # progress that came while a dialog covered the screen, as one batch
        self._debounce_timers: dict[str, object] = {}
        self.show_setup = True
        self.max_steps = None

    @property
    def running(self) -> bool:
        return self.state in ("running", "stopping")

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        with Horizontal(id="train-body"):
            with VerticalScroll(id="setup"):
                yield Static("Corpus", classes="section-title first")
                with Horizontal(classes="row"):
                    yield Input(placeholder="files or folders, space-separated",
                                id="paths", compact=True)
                    yield Button("Browse…", id="browse", compact=True)
                yield Static(Text("Text files are prose; .jsonl files are dialogue. ctrl+b "
                                  "browses."), id="corpus-summary", classes="hint")
                with Grid(id="basics", classes="form-grid"):
                    yield Label("Model name")
                    yield Input(placeholder="from the corpus file's name", id="name", compact=True)
                    yield Label("Minutes", id="minutes-label")
                    yield Input(DEFAULT_MINUTES, placeholder="empty = until early stopping (≤ 30)",
                                id="minutes", compact=True)
                    yield Label("Size")
                    yield Select([(PRESET_HELP[p], p) for p in PRESET_CHOICES], value="auto",
                                 allow_blank=False, id="preset", compact=True)
                with Collapsible(title="Advanced hyperparameters", id="advanced"):
                    yield Static("Filled in with the defaults charchat picks for this corpus, "
                                 "budget and size; change any. Empty = automatic.",
                                 classes="hint")
                    with Grid(id="advanced-grid", classes="form-grid"):
                        for flag, dest, _, help_text in ADVANCED:
                            yield Label(flag[2:])
                            yield Input(placeholder="auto", id=f"adv-{dest}", compact=True,
                                        tooltip=help_text)
                with Horizontal(classes="row buttons"):
                    yield Button("Start training", id="start", variant="primary")
            with Vertical(id="run"):
                yield Static("Not started. Live progress appears here.", id="run-title")
                with Horizontal(id="progress-row"):
                    yield ProgressBar(total=1.0, show_eta=False, id="progress")
                yield TrainStats(id="stats")
                yield LossPlot(id="plot")
                yield Static(Text(""), id="sample")
                yield Static(id="outcome-text")
                with Horizontal(id="outcome"):
                    yield Button("Chat with this model", id="chat-with", variant="success",
                                 compact=True)
                    yield Button("Stop training", id="stop", variant="error", compact=True)
        yield StatusLine(id="train-status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = "charchat"
        self.sub_title = "train a model"
        self.query_one("#chat-with").display = False
        self.query_one("#stop").display = False
        self.query_one("#sample").border_title = "sample"
        self.query_one("#sample").display = False
        self._apply_view()
        if self.resume_name:
            self.prepare_resume(self.resume_name)
        else:
            self.query_one("#paths", Input).focus()
            self.status.set("Choose a corpus: type a path, or ctrl+b to browse.")

    @property
    def status(self) -> StatusLine:
        return self.query_one("#train-status", StatusLine)

    # -- the form ------------------------------------------------------------------------------
    def prepare_resume(self, name: str) -> None:
        """Fill the form to continue training a saved model."""
        if self.running:
            self.notify("Training is running; stop it first.", severity="warning")
            return
        try:
            saved = read_train_args(name)
        except store.StoreError as e:
            self.notify(str(e), severity="error", title="Cannot resume")
            return
        self.resume_name = name
        self.sub_title = f"resume {name}"
        paths = saved.get("corpus_paths") or []
        self.query_one("#paths", Input).value = " ".join(shlex.quote(p) for p in paths)
        name_input = self.query_one("#name", Input)
        name_input.value = name
        name_input.disabled = True
        self.query_one("#minutes-label", Label).update("More minutes")
        self.query_one("#preset", Select).disabled = True
        config = saved.get("config", {})
        for key in SHAPE_KEYS:
            field = self.query_one(f"#adv-{key}", Input)
            field.value = str(config.get(key, ""))
            field.disabled = True
        self.status.set(f"Resume {name}: it continues from its last step with its optimizer "
                        "state. Set how long, then ctrl+s.")
        self.query_one("#minutes", Input).focus()
        self._check_corpus_soon(0.0)

    def _debounce(self, key: str, delay: float, callback) -> None:
        timer = self._debounce_timers.pop(key, None)
        if timer is not None:
            timer.stop()
        if delay <= 0:
            # Now (after the messages already queued): Textual's timers fail on a zero delay
            # (ZeroDivisionError in the timer task), which silently lost the check.
            self.call_later(callback)
            return
        self._debounce_timers[key] = self.set_timer(delay, callback)

    def _check_corpus_soon(self, delay: float = 0.5) -> None:
        self._debounce("corpus", delay, self._check_corpus)

    @on(Input.Changed, "#paths")
    def _paths_changed(self) -> None:
        if self.state == "idle" or self.state == "done":
            self._check_corpus_soon()

    @on(Input.Changed, "#adv-block_size")
    def _block_size_changed(self) -> None:
        if not self.running and self.summary is not None:
            # The length check depends on the context (the corpus need not be read again).
            self._debounce("defaults", 0.4, self._resolve_defaults)

    @on(Input.Changed, "#minutes")
    def _minutes_changed(self) -> None:
        self._debounce("defaults", 0.4, self._resolve_defaults)

    @on(Select.Changed, "#preset")
    def _preset_changed(self) -> None:
        self._debounce("defaults", 0.1, self._resolve_defaults)

    @on(Input.Changed, "#name")
    def _name_changed(self, event: Input.Changed) -> None:
        if event.value != self.name_auto:
            self.name_auto = ""  # the user chose a name: leave it alone

    def _paths(self) -> list[str]:
        raw = self.query_one("#paths", Input).value.strip()
        try:
            return shlex.split(raw)
        except ValueError as e:
            raise FormError(f"corpus paths: {e} (quote paths that contain spaces)", "paths") from None

    def _check_corpus(self) -> None:
        self.req += 1
        # Forget the last result: a length check meanwhile must not show it for these paths.
        self.summary = None
        self.corpus_error = self.length_error = None
        summary_w = self.query_one("#corpus-summary", Static)
        try:
            paths = self._paths()
        except FormError as e:
            summary_w.update(Text(str(e)))
            summary_w.set_classes("error-text")
            return
        if not paths:
            self.summary = None
            summary_w.update(Text("Text files are prose; .jsonl files are dialogue. ctrl+b browses."))
            summary_w.set_classes("hint")
            return
        summary_w.update(Text("checking the corpus…"))
        summary_w.set_classes("hint")
        self._inspect(self.req, paths)

    @work(thread=True, group="inspect")
    def _inspect(self, req: int, paths: list[str]) -> None:
        from ...corpus import inspect

        try:
            summary, _, _ = inspect(paths)
            self.post_message(self.CorpusChecked(req, summary, None))
        except Exception as e:
            self.post_message(self.CorpusChecked(req, None, describe_error(e)))

    @on(CorpusChecked)
    def _corpus_checked(self, msg: CorpusChecked) -> None:
        if msg.req != self.req:
            return  # the paths changed meanwhile
        self.summary = msg.summary
        self.corpus_error = form_wording(msg.error) if msg.error else None
        self._show_summary()
        if msg.error:
            return
        name = self.query_one("#name", Input)
        if not self.resume_name and (not name.value or name.value == self.name_auto):
            self.name_auto = suggest_name(self._paths())
            name.value = self.name_auto
        self._resolve_defaults()

    def _show_summary(self) -> None:
        w = self.query_one("#corpus-summary", Static)
        problem = self.corpus_error or self.length_error
        if problem:
            w.update(Text("✗ " + problem))
            w.set_classes("error-text")
            return
        s = self.summary
        if s is None:
            return
        kind = {"prose": "prose: replies continue your text",
                "dialogue": "dialogue: replies are chat turns",
                "mixed": "prose and dialogue mixed"}.get(s.kind, s.kind)
        text = Text.assemble(("✓ ", "bold green"), (s.describe(), "bold"), f"\n{kind}")
        if s.notes:
            text.append(f"\n{len(s.notes)} note(s): {s.notes[0]}"
                        + (" …" if len(s.notes) > 1 else ""), style="dim")
        w.update(text)
        w.set_classes("corpus-ok")

    def _check_length(self, auto_block: int | None) -> None:
        """A corpus too short for the context: say so under the corpus, before a run fails."""
        if self.summary is None or self.corpus_error:
            return
        raw = self.query_one("#adv-block_size", Input).value.strip()
        block = int(raw) if raw.isdigit() and int(raw) > 0 else auto_block
        problem = too_short(self.summary.chars, block) if block else None
        worded = form_wording(problem) if problem else None
        if worded != self.length_error:  # redrawn only when it changes
            self.length_error = worded
            self._show_summary()

    def _spec_for_defaults(self) -> TrainSpec | None:
        try:
            minutes = self._minutes()
        except FormError:
            return None
        preset = self.query_one("#preset", Select).value
        return TrainSpec(paths=[], name=self.resume_name or "x", minutes=minutes,
                         preset=str(preset), resume=False)

    def _resolve_defaults(self) -> None:
        if self.summary is None or self.running:
            return
        spec = self._spec_for_defaults()
        if spec is None:
            return
        self.defaults_req += 1
        if self.resume_name:
            # Resuming goes on with the saved hyperparameters: those are the defaults.
            try:
                saved = dict(read_train_args(self.resume_name).get("config", {}))
            except store.StoreError as e:
                self.status.set(str(e), level="error")
                return
            device = read_train_args(self.resume_name).get("device", "")
            self.post_message(self.DefaultsResolved(self.defaults_req, saved, [], device, None))
            return
        self._defaults(self.defaults_req, spec, self.summary.chars, self.summary.kind)

    @work(thread=True, group="defaults")
    def _defaults(self, req: int, spec: TrainSpec, n_chars: int, kind: str) -> None:
        try:
            values, notes, device = resolved_defaults(spec, n_chars, kind)
            self.post_message(self.DefaultsResolved(req, values, notes, device, None))
        except Exception as e:
            self.post_message(self.DefaultsResolved(req, None, [], "", describe_error(e)))

    @on(DefaultsResolved)
    def _defaults_resolved(self, msg: DefaultsResolved) -> None:
        if msg.req != self.defaults_req or self.running:
            return
        if msg.error:
            self.status.set(msg.error, level="error")
            return
        for _, dest, _, _ in ADVANCED:
            field = self.query_one(f"#adv-{dest}", Input)
            if field.disabled:
                continue
            value = msg.values.get(dest)
            text = "" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))
            if field.value.strip() in ("", self.auto.get(dest, "")):
                field.value = text
            self.auto[dest] = text
            if dest == "eval_interval" and not text:
                field.placeholder = "auto (timed: ~12 per run, ≤ 30 s apart)"
        self._check_length(msg.values.get("block_size"))
        if self.length_error:
            self.status.set(f"{TOO_SHORT}: {self.length_error}", level="error")
            return
        if self.status.level == "error" and not self.status.text.startswith(TOO_SHORT):
            return  # keep the message about what to fix in view (one fixed just now goes)
        shape = f"{msg.values['n_layer']} layers × {msg.values['n_embd']} wide"
        self.status.set(f"Ready on {msg.device}: {shape}, context {msg.values['block_size']}. "
                        "ctrl+s starts.")

    def _minutes(self) -> float | None:
        raw = self.query_one("#minutes", Input).value.strip()
        if not raw:
            return None
        try:
            v = float(raw)
        except ValueError:
            raise FormError(f"minutes: {raw!r} is not a number", "minutes") from None
        if not (v > 0 and math.isfinite(v)):
            raise FormError("minutes must be a positive number (or empty: until early stopping)",
                            "minutes")
        return v

    def read_form(self) -> TrainSpec:
        """The spec the form describes, or FormError naming the field."""
        paths = self._paths()
        if not paths:
            raise FormError("choose a corpus: type a file or folder, or press ctrl+b to browse",
                            "paths")
        if self.resume_name:
            name = self.resume_name
        else:
            name = self.query_one("#name", Input).value.strip() or suggest_name(paths)
            try:
                check_new_name(name)
            except store.StoreError as e:
                raise FormError(str(e), "name") from None
        overrides = {}
        for flag, dest, parse, _ in ADVANCED:
            raw = self._user_value(dest)
            if raw is None:
                continue
            try:
                overrides[dest] = parse(raw)
            except Exception as e:  # argparse's validators raise ArgumentTypeError
                raise FormError(f"{flag[2:]}: {e}", f"adv-{dest}") from None
        max_steps = overrides.pop("max_steps", None)
        minutes = self._minutes()
        return TrainSpec(paths=paths, name=name, minutes=minutes, max_steps=max_steps,
                         preset=str(self.query_one("#preset", Select).value),
                         overrides=overrides, resume=bool(self.resume_name))

    def _user_value(self, dest: str) -> str | None:
        """What the user typed in an advanced field, or None where it is empty, disabled or
        still the default filled in."""
        field = self.query_one(f"#adv-{dest}", Input)
        raw = field.value.strip()
        return None if field.disabled or not raw or raw == self.auto.get(dest) else raw

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "paths":
            self._check_corpus_soon(0.0)
        self.focus_next()

    # -- running -------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("start", "browse"):
            return self.state in ("idle", "done")
        if action == "stop":
            return self.state == "running"
        if action == "chat_with":
            return self.state == "done" and self.result_name is not None
        if action == "toggle_view":
            return self.state != "idle" and self.has_class("-narrow")
        return True

    def action_start(self) -> None:
        if self.running:
            return
        try:
            spec = self.read_form()
            if self.corpus_error or self.length_error:
                raise FormError(f"corpus: {self.corpus_error or self.length_error}", "paths")
        except FormError as e:
            self.status.set(str(e), level="error")
            self.notify(str(e), severity="error", title="Cannot start")
            if e.widget_id:
                w = self.query_one(f"#{e.widget_id}")
                if e.widget_id.startswith("adv-"):
                    self.query_one("#advanced", Collapsible).collapsed = False
                w.focus()
            return
        self.spec = spec
        self.started = False
        self.cancel = threading.Event()
        self.result = None
        self.result_name = None
        self.max_steps = None
        self.state = "running"
        self.show_setup = False
        self._set_form_enabled(False)
        self.query_one(TrainStats).reset()
        self.query_one(LossPlot).clear()
        self.query_one("#progress", ProgressBar).update(total=1.0, progress=0)
        sample = self.query_one("#sample", Static)
        sample.update(Text(""))
        sample.display = False
        self.query_one("#outcome-text", Static).update("")
        self.query_one("#outcome-text").set_classes("")
        self.query_one("#chat-with").display = False
        self.query_one("#stop").display = True
        self.query_one("#run-title", Static).update(Text(f"Starting {spec.name}…", style="bold"))
        self.status.set("starting (loading torch and the corpus)…", busy=True)
        self._apply_view()
        self.query_one("#stop", Button).focus()
        self._train(spec)

    def _set_form_enabled(self, enabled: bool) -> None:
        for w in self.query("#setup Input, #setup Select, #setup Button"):
            if enabled and self.resume_name and (
                w.id == "name" or w.id == "preset" or w.id in {f"adv-{k}" for k in SHAPE_KEYS}
            ):
                continue
            w.disabled = not enabled

    @work(thread=True, group="train")
    def _train(self, spec: TrainSpec) -> None:
        feed = TrainFeed(lambda batch: self.post_message(self.Progress(batch)))
        try:
            if spec.resume:
                self._post_history(spec.name)
            result = run_training(spec, feed, self.cancel)
            feed.flush()
            self.post_message(self.Finished(result))
        except Cancelled:
            self.post_message(self.Failed("stopped before training began", cancelled=True))
        except BaseException as e:  # noqa: BLE001 - the app must never die with a traceback
            feed.flush()
            self.post_message(self.Failed(describe_error(e)))

    def _post_history(self, name: str) -> None:
        """The loss curves so far of a model being resumed (from its metrics.jsonl)."""
        train, val = [], []
        try:
            _, folder = store.resolve(name)
            for d in store.read_metrics(folder):
                if d.get("kind") == "step" and "train_loss" in d:
                    train.append((d.get("step", 0), d["train_loss"]))
                elif d.get("kind") == "eval" and "val_loss" in d:
                    val.append((d.get("step", 0), d["val_loss"]))
        except (OSError, store.StoreError):
            return
        self.post_message(self.History(train, val))

    @on(History)
    def _history(self, msg: History) -> None:
        plot = self.query_one(LossPlot)
        plot.add_train(msg.train)
        for step, loss in msg.val:
            plot.add_val(step, loss)

    @on(Progress)
    def _progress(self, msg: Progress) -> None:
        if self.app.screen is not self:
            # A dialog is over this screen (quit, leave, help, palette). Redrawing behind it
            # costs the app enough to slow the training thread (tokens/s fell from 30-38k to
            # 18-23k with the quit dialog open, two runs): hold the updates until it shows.
            self._held = msg.batch if self._held is None else self._held.merge(msg.batch)
            return
        self._show_progress(msg.batch)

    def on_screen_resume(self) -> None:
        self._show_held()

    def _show_held(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            self._show_progress(held)

    def _show_progress(self, b) -> None:
        stats = self.query_one(TrainStats)
        plot = self.query_one(LossPlot)
        for note in b.notes:
            self.status.set(note, busy=True)
        if b.start is not None:
            self.started = True
            ev = b.start
            c = ev.details.get("config", {})
            self.max_steps = ev.max_steps
            plot.x_max = ev.max_steps
            params = ev.details.get("params") or 0
            title = Text.assemble(
                (Path(ev.details.get("folder", "")).name, "bold"),
                f" · {params / 1e6:.2f}M params on {ev.details.get('device', '?')} · "
                f"{c.get('n_layer')}×{c.get('n_embd')}, {c.get('n_head')} heads, "
                f"context {c.get('block_size')}, batch {c.get('batch_size')}"
                + (" · resumed" if ev.details.get("resumed") else ""),
            )
            self.query_one("#run-title", Static).update(title)
            self.status.set("training… " + "; ".join(ev.details.get("notes", [])), busy=True)
            stats.set_values(step=ev.step, max_steps=ev.max_steps)
        if b.train_points:
            plot.add_train(b.train_points)
        if b.step is not None:
            ev = b.step
            stats.set_values(step=ev.step, max_steps=ev.max_steps, train=ev.train_loss,
                             lr=ev.lr, tps=ev.tokens_per_s, elapsed=ev.elapsed, eta=ev.eta,
                             best=ev.best_val_loss)
            self.query_one("#progress", ProgressBar).update(progress=ev.progress)
        for ev in b.evals:
            plot.add_val(ev.step, ev.val_loss)
            stats.set_values(step=ev.step, val=ev.val_loss, ppl=ev.ppl, best=ev.best_val_loss,
                             best_step=ev.step if ev.improved else None, elapsed=ev.elapsed)
            self.query_one("#progress", ProgressBar).update(progress=ev.progress)
            if self.state == "running":
                self.status.set(f"step {ev.step}: val loss {ev.val_loss:.4f}"
                                + (" · best so far, saved" if ev.improved else ""), busy=True)
        if b.sample is not None:
            sample = self.query_one("#sample", Static)
            sample.display = True
            sample.border_title = f"sample at step {b.sample.step}"
            sample.update(Text(b.sample.sample.strip("\n")[-400:]))
        if b.end is not None:
            stats.set_values(step=b.end.step, best=b.end.best_val_loss, elapsed=b.end.elapsed,
                             best_step=b.end.details.get("best_step"), eta=0.0)

    @on(Finished)
    def _finished(self, msg: Finished) -> None:
        self._show_held()  # before the outcome, which they must not overwrite
        r = msg.result
        self.result = r
        ok = r.best_val_loss is not None
        self.result_name = r.name if ok else None
        if r.stop_reason != "cancelled":
            self.query_one("#progress", ProgressBar).update(progress=1.0)
        level = "error" if r.stop_reason == "non_finite" else "success"
        head = {"cancelled": "Stopped", "non_finite": "Diverged"}.get(r.stop_reason, "Finished")
        # The core's message says why it stopped and where the best model is.
        text = Text.assemble((f"{head} · ", "bold"), r.message + ".")
        if ok:
            text.append(f" ({r.steps} steps in {fmt_time(r.elapsed)})", style="dim")
        self._end(text, level)
        self.notify(r.message + self._away_hint(), title=f"Training {head.lower()}",
                    severity="error" if level == "error" else "information")

    def _away_hint(self) -> str:
        """For a run that ended out of sight: how to get back to it."""
        return "" if self in self.app.screen_stack else " (ctrl+t shows the run)"

    @on(Failed)
    def _failed(self, msg: Failed) -> None:
        self._show_held()
        name = self.spec.name if self.spec else None
        # A new run that failed before its first event saved nothing: weights under its name
        # then belong to another run (one training that name), not to this one.
        ours = self.started or bool(self.spec and self.spec.resume)
        kept = bool(name) and ours and (store.models_dir() / name / store.WEIGHTS).exists()
        self.result_name = name if kept else None
        error = form_wording(msg.error)
        if not self.started and name:
            self.query_one("#run-title", Static).update(
                Text(f"{name} did not start", style="bold"))
        text = Text.assemble(("Stopped · " if msg.cancelled else "Training failed · ", "bold"),
                             error)
        if kept:
            text.append(f"\nThe best model so far is kept in {store.models_dir() / name}.")
        self._end(text, "warning" if msg.cancelled else "error")
        if not msg.cancelled:
            self.notify(error + self._away_hint(), severity="error", title="Training failed",
                        timeout=10)
            self._focus_fault(msg.error)  # the flags it names lead to the field

    def _focus_fault(self, error: str) -> None:
        """After a failed start: the cursor goes to the field the message names, else to the
        corpus (the usual culprit), so the fix can be typed at once."""
        changed = {f"adv-{dest}" for _, dest, _, _ in ADVANCED
                   if self._user_value(dest) is not None}
        field = field_at_fault(error, changed) or ("paths" if "corpus" in error
                                                   or not self.started else None)
        if field is None:
            return
        w = self.query_one(f"#{field}")
        if w.disabled:
            return
        if field.startswith("adv-"):
            self.query_one("#advanced", Collapsible).collapsed = False
        self.show_setup = True
        self._apply_view()
        w.focus()

    def _end(self, text: Text, level: str) -> None:
        self.state = "done"
        if self not in self.app.screen_stack:
            self.app.chat_screen.training_changed()  # its status line mentioned the run
        self._set_form_enabled(True)
        if not self.resume_name and self.name_auto:
            # The name is taken now: suggest the next free one for another run.
            self.name_auto = suggest_name(self._paths()) if self._paths_ok() else ""
            if self.name_auto:
                self.query_one("#name", Input).value = self.name_auto
        self.query_one("#stop").display = False
        outcome = self.query_one("#outcome-text", Static)
        outcome.update(text)
        outcome.set_classes(f"-{level}")
        chat = self.query_one("#chat-with", Button)
        chat.display = self.result_name is not None
        if self.result_name is not None:
            chat.focus()
        self.status.set("done · " + ("ctrl+l chats with the model · " if self.result_name else "")
                        + "ctrl+s trains again · Escape goes back", level=level)
        self._apply_view()
        callback, self._after_stop = self._after_stop, None
        if callback is not None:
            callback()

    def _paths_ok(self) -> bool:
        try:
            return bool(self._paths())
        except FormError:
            return False

    def action_stop(self) -> None:
        if self.state != "running":
            return
        self.cancel.set()
        self.state = "stopping"
        self.query_one("#stop", Button).disabled = True
        self.status.set("stopping after this step; the best model is kept…", busy=True)

    def stop_then(self, callback) -> None:
        """Stop training, then call callback (on the UI thread) once it has ended."""
        if not self.running:
            callback()
            return
        self._after_stop = callback
        self.action_stop()

    def action_chat_with(self) -> None:
        if self.result_name:
            self.app.chat_with(self.result_name)

    def action_back(self) -> None:
        app = self.app

        def pop_to_below() -> None:  # this screen, and any opened above it
            while self in app.screen_stack and len(app.screen_stack) > 1:
                app.pop_screen()

        self.leave(pop_to_below)

    def leave(self, pop: Callable[[], None]) -> None:
        """Leave this screen by pop() (which takes it off the stack). A run goes on: the
        screen, and the run in its worker, are kept out of sight until it is opened again
        (ctrl+t). With nothing running, the screen goes for good."""
        app = self.app
        if self.running and not app.is_screen_installed(self):
            app.install_screen(self, BACKGROUND)
            self.notify("Training goes on in the background; ctrl+t comes back to it.",
                        title=f"Training {self.spec.name if self.spec else ''}".strip())
        pop()
        if not self.running and app.is_screen_installed(self):
            # Uninstalled before the pops complete, so that they remove this screen.
            app.uninstall_screen(self)

    def action_browse(self) -> None:
        if self.running:
            return
        try:
            current = self._paths()
        except FormError:
            current = []

        def chosen(path: str | None) -> None:
            if not path:
                return
            paths_input = self.query_one("#paths", Input)
            quoted = shlex.quote(shorten_path(path))
            paths_input.value = (paths_input.value.rstrip() + " " + quoted).strip()
            self._check_corpus_soon(0.0)
            paths_input.focus()

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
        if self.result_name:
            yield ("Chat with the new model", f"Open {self.result_name} in chat (ctrl+l)",
                   self.action_chat_with)
