"""The training form: corpus, name, minutes, size and every setting, checked as they change.

The corpus is checked, and the defaults the core would choose are worked out, in thread workers
as the form changes. The advanced section is built from charchat.config.SETTINGS, as the
command line's flags are; read_request() gives the RunRequest the form describes, or FormError
naming the field at fault.
"""

from __future__ import annotations

import os
import shlex
import threading
import time

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Collapsible, Input, Label, Select, Static
from textual.worker import get_current_worker

from ... import runs, store
from ...config import SETTING, SETTINGS, SHAPE_KEYS, ConfigError
from ...corpus import too_short
from ...formatting import fmt_params, short_path
from ...runs import PRESET_CHOICES, RunRequest, check_new_name
from ..engine import describe_error
from .status import StatusLine

# The advanced section: every setting of `charchat train` the form offers, in their order.
ADVANCED = [s for s in SETTINGS if s.form]
PRESET_HELP = {"auto": "auto (fits the budget)", "tiny": "tiny · 2×64", "small": "small · 3×128",
               "medium": "medium · 4×192", "large": "large · 6×384"}
DEFAULT_MINUTES = "2"
TOO_SHORT = "Cannot train on this corpus"
CORPUS_HINT = "Text files are prose; .jsonl files are dialogue. ctrl+b browses."
# The tokenizer's choices (any other bpe:N can be typed in the advanced field of that name).
TOKENIZER_HELP = {"char": "char · a token a character", "gpt2": "gpt2 · GPT-2's 50,257 tokens",
                  **{f"bpe:{n}": f"bpe:{n} · trained on the corpus" for n in (1024, 4096, 8192)}}
TYPED_TOKENIZER = "{} · trained on the corpus"  # one typed in the advanced field
# Start from: nothing (a new model), or a saved model's weights, whose shape and tokenizer the
# run keeps (fixed in the form, as resuming fixes them).
FROM_NOTHING = ""
FROM_HELP = "nothing (a new model)"
FROM_SHAPE = ("n_layer", "n_head", "n_embd")  # the shape fields it fixes (and the tokenizer)
PROGRESS_EVERY = 0.1  # seconds between progress messages of an encoding check
# One encoding check at a time: two of the same corpus and tokenizer would write the same
# temporary cache file (a stale one stops at its next progress call, see _inspect).
_ENCODING = threading.Lock()


class _Stale(Exception):
    """A check whose paths or tokenizer changed meanwhile: stopped, its result unwanted."""


class FormError(Exception):
    def __init__(self, message: str, widget_id: str | None = None) -> None:
        super().__init__(message)
        self.widget_id = widget_id


def source_label(m: store.SavedModel) -> str:
    """A model to start from, as the Start from select shows it: "gpt2 · gpt2, 124.44M"."""
    return f"{m.name} · {m.tokenizer}, {fmt_params(m.params)}"


def widget_for(field: str | None) -> str | None:
    """The id of the form's widget for a setting (ConfigError.field), or None."""
    if field in SETTING and SETTING[field].form:
        return f"adv-{field}"
    return field if field in ("name", "minutes", "paths", "preset") else None


class TrainForm(VerticalScroll):
    class CorpusChecked(Message):
        def __init__(self, req: int, summary, error: str | None) -> None:
            super().__init__()
            self.req, self.summary, self.error = req, summary, error

    class CorpusProgress(Message):
        def __init__(self, req: int, stage: str, done: int, total: int) -> None:
            super().__init__()
            self.req, self.stage, self.done, self.total = req, stage, done, total

    class SpeedMeasured(Message):
        def __init__(self, req: int, tokens_per_s: float | None) -> None:
            super().__init__()
            self.req, self.tokens_per_s = req, tokens_per_s

    class GpusCounted(Message):
        def __init__(self, n: int) -> None:
            super().__init__()
            self.n = n

    class DefaultsResolved(Message):
        def __init__(self, req: int, values: dict | None, notes: list[str], device: str,
                     error: str | None) -> None:
            super().__init__()
            self.req, self.values, self.notes, self.device, self.error = (
                req, values, notes, device, error)

    def __init__(self, resume: str | None = None, id: str | None = None) -> None:
        super().__init__(id=id)
        self.resume_name = resume
        self.summary = None
        self.corpus_error: str | None = None  # what the latest check found wrong, if anything
        self.length_error: str | None = None  # too short for the context, if so
        self.auto: dict[str, str] = {}  # field -> the default last filled in
        self._about_from = ""  # starting from a model: what the run is, before the speed
        self._checked_value: str | None = None  # the paths field's text at the last check
        self.name_auto = ""  # the name last suggested (replaced while untouched)
        self.req = 0
        self.defaults_req = 0
        self.locked = False  # a run is going: the form neither changes nor checks
        self.checked_spec = "char"  # the tokenizer of the latest check (pending or done)
        self.encoding = False  # a check that encodes the corpus (gpt2, bpe:N) is under way
        self.start_from: str | None = None  # the model a new run starts from, if any
        self.sources: dict[str, store.SavedModel] = {}  # the models it can start from
        self._tokenizer_before = "char"  # chosen before a model fixed it (back on "nothing")
        self._debounce_timers: dict[str, object] = {}

    def compose(self) -> ComposeResult:
        yield Static("Corpus", classes="section-title first")
        with Horizontal(classes="row"):
            yield Input(placeholder="files or folders, space-separated", id="paths", compact=True)
            yield Button("Browse…", id="browse", compact=True)
        yield Static(Text(CORPUS_HINT), id="corpus-summary", classes="hint")
        with Grid(id="basics", classes="form-grid"):
            yield Label("Model name")
            yield Input(placeholder="from the corpus file's name", id="name", compact=True)
            yield Label("Minutes", id="minutes-label")
            yield Input(DEFAULT_MINUTES, placeholder="empty = until early stopping (≤ 30)",
                        id="minutes", compact=True, tooltip=SETTING["minutes"].help)
            yield Label("Size")
            yield Select([(PRESET_HELP[p], p) for p in PRESET_CHOICES], value="auto",
                         allow_blank=False, id="preset", compact=True)
            yield Label("Tokenizer")
            yield Select(list((v, k) for k, v in TOKENIZER_HELP.items()), value="char",
                         allow_blank=False, id="tokenizer", compact=True,
                         tooltip=SETTING["tokenizer"].help + ". Any bpe:N can be typed in "
                         "the advanced section.")
            yield Label("Start from")
            yield Select([(FROM_HELP, FROM_NOTHING)], value=FROM_NOTHING, allow_blank=False,
                         id="start-from", compact=True,
                         tooltip="Fine-tune: start from a saved or imported model's weights, "
                         "with its shape and tokenizer (charchat train --from MODEL)")
            # Shown where the machine has more than one CUDA GPU (see _count_gpus).
            yield Label("GPUs", id="gpus-label")
            yield Select([("1", 1)], value=1, allow_blank=False, id="gpus", compact=True,
                         tooltip="Train across this machine's GPUs: one process a GPU, "
                         "started with torchrun's engine (DistributedDataParallel over NCCL; "
                         "charchat train --gpus N). The batch size is per GPU.")
        yield Static("", id="from-note", classes="hint")
        with Collapsible(title="Advanced hyperparameters", id="advanced"):
            yield Static("Filled in with the defaults charchat picks for this corpus, "
                         "budget and size; change any. Empty = automatic.", classes="hint")
            with Grid(id="advanced-grid", classes="form-grid"):
                for s in ADVANCED:
                    yield Label(s.label)
                    yield Input(placeholder="auto", id=f"adv-{s.name}", compact=True,
                                tooltip=s.help)
        with Horizontal(classes="row buttons"):
            yield Button("Start training", id="start", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#from-note", Static).display = False
        for w in self.query("#gpus-label, #gpus"):
            w.display = False
        self._count_gpus()
        self.refresh_sources()
        if self.resume_name:
            self.prepare_resume(self.resume_name)

    @work(thread=True, group="gpus")
    def _count_gpus(self) -> None:
        try:
            n = runs.cuda_devices()  # (imports torch: not on the app's first screen)
        except Exception:  # noqa: BLE001 (no count: one process, as without GPUs)
            n = 0
        self.post_message(self.GpusCounted(n))

    @on(GpusCounted)
    def _gpus_counted(self, msg: GpusCounted) -> None:
        if msg.n < 2:
            return
        select = self.query_one("#gpus", Select)
        select.set_options([("1 (this process)", 1)] + [
            (f"{k} (torchrun: {k} processes)" if k < msg.n else f"all {k} (torchrun)", k)
            for k in range(2, msg.n + 1)])
        select.value = msg.n
        for w in self.query("#gpus-label, #gpus"):
            w.display = True

    @property
    def gpus(self) -> int:
        select = self.query_one("#gpus", Select)
        return int(select.value) if select.display and isinstance(select.value, int) else 1

    @property
    def status(self) -> StatusLine:
        return self.screen.query_one("#train-status", StatusLine)

    # -- resuming ------------------------------------------------------------------------------
    def prepare_resume(self, name: str) -> None:
        """Fill the form to continue training a saved model."""
        try:
            paths = runs.saved_paths(name)
            config, _, _ = runs.saved_settings(name)
        except store.StoreError as e:
            self.notify(str(e), severity="error", title="Cannot resume")
            return
        self.query_one("#paths", Input).value = " ".join(shlex.quote(short_path(p))
                                                         for p in paths)
        # What was typed for another run goes: the model's own settings fill the fields.
        self.auto = {}
        for s in ADVANCED:
            self.query_one(f"#adv-{s.name}", Input).value = ""
        self._fix_for_resume(name, config)
        self.status.set(f"Resume {name}: it continues from its last step with its optimizer "
                        "state. Set how much longer, then ctrl+s.")
        self.query_one("#minutes", Input).focus()
        self.check_corpus_soon(0.0)

    def _fix_for_resume(self, name: str, config: dict) -> None:
        """Resuming: the name, the size and the shape are the model's, shown and fixed."""
        self.resume_name = name
        self.screen.sub_title = f"resume {name}"
        name_input = self.query_one("#name", Input)
        name_input.value = self.name_auto = name
        name_input.disabled = True
        self.query_one("#minutes-label", Label).update("More minutes")
        # Resuming goes on from the model's own weights: nothing else to start from.
        self.start_from = None
        self.query_one("#from-note", Static).display = False
        start_from = self.query_one("#start-from", Select)
        start_from.value = FROM_NOTHING
        start_from.disabled = True
        preset = self.query_one("#preset", Select)
        preset.value = "auto"  # the shape is the saved one: a size set before does not apply
        preset.disabled = True
        for key in SHAPE_KEYS:
            if SETTING[key].form:
                field = self.query_one(f"#adv-{key}", Input)
                field.value = str(config.get(key, ""))
                field.disabled = True
        self.set_tokenizer(str(config.get("tokenizer", "char")))
        self.query_one("#tokenizer", Select).disabled = True

    def show_request(self, req: RunRequest) -> None:
        """Fill the form with what a run was started with (a screen opened on a running or
        ended job shows what it is)."""
        self.query_one("#paths", Input).value = " ".join(shlex.quote(short_path(p))
                                                         for p in req.paths)
        self.query_one("#minutes", Input).value = f"{req.minutes:g}" if req.minutes else ""
        if req.resume:
            try:
                self._fix_for_resume(req.resume, runs.saved_settings(req.resume)[0])
            except store.StoreError:
                self._fix_for_resume(req.resume, {})
        else:
            # The name is taken once the run has saved a model: name_taken() then suggests
            # the next free one, as after a run started here.
            self.query_one("#name", Input).value = self.name_auto = req.name or ""
            if req.preset in PRESET_CHOICES:
                self.query_one("#preset", Select).value = req.preset
        if not req.resume:
            self.set_tokenizer(str(req.overrides.get("tokenizer", "char")))
        if req.start_from and not req.resume:
            try:
                self._fix_from(req.start_from)
            except store.StoreError:
                pass
            else:
                if req.start_from in self.sources:
                    self.query_one("#start-from", Select).value = req.start_from
        values = dict(req.overrides, max_steps=req.max_steps)
        for s in ADVANCED:
            value = values.get(s.name)
            if value is not None:
                self.query_one(f"#adv-{s.name}", Input).value = (
                    f"{value:g}" if isinstance(value, float) else str(value))

    # -- starting from a saved model ----------------------------------------------------------
    def refresh_sources(self) -> None:
        """List the models a run can start from (again after a run saved one)."""
        self.sources = {m.name: m for m in store.list_models(include_bundled=True)}
        select = self.query_one("#start-from", Select)
        current = self.start_from
        select.set_options([(FROM_HELP, FROM_NOTHING),
                            *((source_label(m), m.name) for m in self.sources.values())])
        select.value = current if current in self.sources else FROM_NOTHING

    @on(Select.Changed, "#start-from")
    def _from_chosen(self) -> None:
        # The current value, not the event's (set_options posts a change to the first choice).
        select = self.query_one("#start-from", Select)
        name = None if select.value == FROM_NOTHING or self.resume_name else str(select.value)
        if name == self.start_from:
            return
        if name is None:
            self._unfix_from()
        else:
            try:
                self._fix_from(name)
            except store.StoreError as e:
                self.status.set(str(e), level="error")
                select.value = FROM_NOTHING
                return
        self.defaults_req += 1  # defaults on the way are the other choice's
        if not self.locked:
            self.check_corpus_soon(0.1)  # in the model's tokens, then its defaults

    def _fix_from(self, name: str) -> None:
        """Starting from a model: its shape and tokenizer are shown and fixed, the size too."""
        folder = store.resolve(name)[1]
        shape = store.read_shape(folder)
        source = self.sources.get(name)
        tokenizer = source.tokenizer if source else store.read_tokenizer(folder).name
        if self.start_from is None:
            self._tokenizer_before = self.tokenizer
        self.start_from = name
        preset = self.query_one("#preset", Select)
        preset.value = "auto"  # the shape is the model's: a size set before does not apply
        preset.disabled = True
        for key in FROM_SHAPE:
            field = self.query_one(f"#adv-{key}", Input)
            field.value = str(shape.get(key, ""))
            field.disabled = True
        self.set_tokenizer(tokenizer)
        self.query_one("#tokenizer", Select).disabled = True
        self.query_one("#adv-tokenizer", Input).disabled = True
        note = self.query_one("#from-note", Static)
        note.update(Text(f"Starts from the weights of {name}: its shape and {tokenizer} "
                         "tokenizer are fixed."))
        note.display = True

    def _unfix_from(self) -> None:
        """Back to a new model: the size, shape and tokenizer are free (and automatic) again."""
        self.start_from = None
        self.query_one("#preset", Select).disabled = False
        for key in FROM_SHAPE:
            field = self.query_one(f"#adv-{key}", Input)
            field.value = ""
            field.disabled = False
            self.auto.pop(key, None)
        self.query_one("#tokenizer", Select).disabled = False
        self.query_one("#adv-tokenizer", Input).disabled = False
        self.set_tokenizer(self._tokenizer_before)
        self.query_one("#from-note", Static).display = False

    def _describe_from(self, values: dict, device: str) -> str:
        """What a run from the chosen model is: its parameters, shape and fine-tuning."""
        source = self.sources.get(self.start_from or "")
        params = fmt_params(source.params) if source else "?"
        lr = values.get("lr")
        rate = f" at lr {lr:g}" if isinstance(lr, (int, float)) else ""
        return (f"Starts from the weights of {self.start_from} ({params} parameters, "
                f"{values['n_layer']} layers × {values['n_embd']} wide, "
                f"{values.get('tokenizer')} tokens): fine-tunes with "
                f"{values.get('optimizer')}{rate}, context {values['block_size']}, on {device}.")

    # -- checking as it changes ----------------------------------------------------------------
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

    def check_corpus_soon(self, delay: float = 0.5) -> None:
        self._debounce("corpus", delay, self.check_corpus)

    @on(Input.Changed, "#paths")
    def _paths_changed(self) -> None:
        if self.locked:
            return
        if (self.query_one("#paths", Input).value == self._checked_value
                and self.checked_spec == self.tokenizer):
            return  # checked already (the change came in after a check asked for directly)
        self.check_corpus_soon()

    @on(Input.Changed, "#adv-block_size")
    def _block_size_changed(self) -> None:
        if not self.locked and self.summary is not None:
            # The length check depends on the context (the corpus need not be read again).
            self._debounce("defaults", 0.4, self.resolve_defaults)

    @on(Input.Changed, "#minutes")
    def _minutes_changed(self) -> None:
        self._debounce("defaults", 0.4, self.resolve_defaults)

    @on(Select.Changed, "#preset")
    def _preset_changed(self) -> None:
        self._debounce("defaults", 0.1, self.resolve_defaults)

    # -- the tokenizer: a choice above, or any value typed in its advanced field -----------------
    @property
    def tokenizer(self) -> str:
        return str(self.query_one("#tokenizer", Select).value)

    def set_tokenizer(self, value: str) -> None:
        """Choose a tokenizer (one not among the choices is added to them), in both fields."""
        select = self.query_one("#tokenizer", Select)
        if value not in TOKENIZER_HELP:
            select.set_options([*((v, k) for k, v in TOKENIZER_HELP.items()),
                                (TYPED_TOKENIZER.format(value), value)])
        select.value = value
        field = self.query_one("#adv-tokenizer", Input)
        if (field.value.strip().lower() or "char") != value:  # empty: automatic, char
            field.value = value

    @on(Select.Changed, "#tokenizer")
    def _tokenizer_chosen(self) -> None:
        # The current value, not the event's: set_options posts a change to the first choice
        # just before the one set.
        value = self.tokenizer
        field = self.query_one("#adv-tokenizer", Input)
        if (field.value.strip().lower() or "char") != value and not field.disabled:
            field.value = value
        if self.locked:
            return
        if value != self.checked_spec:
            # The token count is the new tokenizer's. Typed, bpe:300 is on the way to
            # bpe:3000: wait for the typing to pause.
            self.check_corpus_soon(0.5 if self.app.focused is field else 0.1)
        else:
            self._debounce("defaults", 0.1, self.resolve_defaults)

    @on(Input.Changed, "#adv-tokenizer")
    def _tokenizer_typed(self) -> None:
        field = self.query_one("#adv-tokenizer", Input)
        if field.disabled or self.locked:
            return
        raw = field.value.strip()
        try:
            value = SETTING["tokenizer"].parse(raw) if raw else "char"
        except ValueError:
            return  # read_request names the field and why
        if value != self.tokenizer:
            self.set_tokenizer(value)

    @on(Input.Changed, "#name")
    def _name_changed(self, event: Input.Changed) -> None:
        if event.value != self.name_auto:
            self.name_auto = ""  # the user chose a name: leave it alone

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "paths":
            self.check_corpus_soon(0.0)
        self.screen.focus_next()

    def paths(self) -> list[str]:
        raw = self.query_one("#paths", Input).value.strip()
        try:
            paths = shlex.split(raw)
        except ValueError as e:
            raise FormError(f"corpus paths: {e} (quote paths that contain spaces)",
                            "paths") from None
        if len(paths) > 1 and os.path.exists(os.path.expanduser(raw)):
            # One file or folder whose name has spaces, typed without quotes: say so, rather
            # than "no such file" for its first word.
            raise FormError(f"{raw!r} is one path with spaces in its name: put it in quotes "
                            f"({shlex.quote(raw)}), or browse for it with ctrl+b", "paths")
        return paths

    def paths_ok(self) -> bool:
        try:
            return bool(self.paths())
        except FormError:
            return False

    def check_corpus(self) -> None:
        # A check asked for now makes a pending one (from typing) moot: left to fire, it would
        # start over and clear this one's result, and a ctrl+s between the two started a run
        # on a corpus already found bad (a flaky test showed it).
        pending = self._debounce_timers.pop("corpus", None)
        if pending is not None:
            pending.stop()
        self._checked_value = self.query_one("#paths", Input).value
        self.req += 1
        # Forget the last result: a length check meanwhile must not show it for these paths.
        self.summary = None
        self.corpus_error = self.length_error = None
        self.encoding = False
        summary_w = self.query_one("#corpus-summary", Static)
        try:
            paths = self.paths()
        except FormError as e:
            summary_w.update(Text(str(e)))
            summary_w.set_classes("error-text")
            return
        if not paths:
            summary_w.update(Text(CORPUS_HINT))
            summary_w.set_classes("hint")
            return
        spec = self.checked_spec = self.tokenizer
        self.encoding = spec != "char"
        summary_w.update(Text("checking the corpus…" if spec == "char"
                              else f"checking the corpus and counting its {spec} tokens…"))
        summary_w.set_classes("hint")
        self._inspect(self.req, paths, spec, self.resume_name, self.start_from)

    @work(thread=True, group="inspect")
    def _inspect(self, req: int, paths: list[str], spec: str, resume: str | None,
                 start_from: str | None = None) -> None:
        """Check the corpus. For gpt2 or bpe:N, encode it (training bpe:N's vocabulary first)
        to count its tokens: the ids and the vocabulary are cached, so the run that follows
        starts at once. Resuming, the model's own vocabulary encodes it; starting from a
        model, that model's (even a char one: a character it lacks is found here)."""
        from ...corpus import inspect, load_corpus

        worker = get_current_worker()
        try:
            if spec == "char" and not start_from and not resume:
                summary, _, _ = inspect(paths)
            else:
                last = [0.0]

                def progress(stage: str, done: int, total: int) -> None:
                    if req != self.req or worker.is_cancelled:  # changed, or screen gone
                        raise _Stale
                    now = time.monotonic()
                    if now - last[0] >= PROGRESS_EVERY or done >= total:
                        last[0] = now
                        self.post_message(self.CorpusProgress(req, stage, done, total))

                model = resume or start_from
                tokenizer = (store.read_tokenizer(store.resolve(model)[1]) if model
                             else None)
                with _ENCODING:
                    if req != self.req:
                        return
                    summary = load_corpus(paths, tokenizer=tokenizer, spec=spec,
                                          progress=progress).summary
            self.post_message(self.CorpusChecked(req, summary, None))
        except _Stale:
            return
        except Exception as e:
            self.post_message(self.CorpusChecked(req, None, describe_error(e)))

    @on(CorpusProgress)
    def _corpus_progress(self, msg: CorpusProgress) -> None:
        if msg.req != self.req:
            return
        what = ("checking the corpus" if msg.stage == "checking"
                else f"encoding the corpus into {self.checked_spec} tokens"
                if msg.stage == "encoding"
                else f"training the {self.checked_spec} vocabulary on the corpus"
                if msg.stage.startswith("training") else msg.stage)
        pct = f" {100 * msg.done / msg.total:.0f}%" if msg.total else ""
        self.query_one("#corpus-summary", Static).update(Text(f"{what}…{pct}"))

    @on(CorpusChecked)
    def _corpus_checked(self, msg: CorpusChecked) -> None:
        if msg.req != self.req:
            return  # the paths changed meanwhile
        self.encoding = False
        self.summary = msg.summary
        self.corpus_error = msg.error
        self._show_summary()
        if msg.error:
            return
        name = self.query_one("#name", Input)
        if not self.resume_name and (not name.value or name.value == self.name_auto):
            self.name_auto = runs.suggest_name(self.paths())
            name.value = self.name_auto
        self.resolve_defaults()

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
        unit = "character" if self.summary.tokenizer == "char" else "token"
        problem = too_short(self.summary.ids, block, unit) if block else None
        if problem != self.length_error:  # redrawn only when it changes
            self.length_error = problem
            self._show_summary()

    # -- the defaults the core would choose ----------------------------------------------------
    def resolve_defaults(self) -> None:
        if self.summary is None or self.locked:
            return
        try:
            minutes = self._minutes()
        except FormError:
            return
        self.defaults_req += 1
        if self.resume_name:
            # Resuming goes on with the saved hyperparameters: those are the defaults.
            try:
                values, notes, device = runs.saved_settings(self.resume_name)
            except store.StoreError as e:
                self.status.set(str(e), level="error")
                return
            self.post_message(self.DefaultsResolved(self.defaults_req, values, notes, device,
                                                    None))
            return
        if self.start_from:
            # The fine-tune plan's settings: the model's shape and tokenizer, AdamW, ...
            request = RunRequest(minutes=minutes, start_from=self.start_from)
        else:
            request = RunRequest(minutes=minutes,
                                 preset=str(self.query_one("#preset", Select).value),
                                 overrides={"tokenizer": self.tokenizer})
        # The corpus's length in tokens of the tokenizer chosen (characters for char).
        self._defaults(self.defaults_req, request, self.summary.ids, self.summary.kind)

    @work(thread=True, group="defaults")
    def _defaults(self, req: int, request: RunRequest, n_ids: int, kind: str) -> None:
        try:
            values, notes, device = runs.resolved_defaults(request, n_ids, kind)
            self.post_message(self.DefaultsResolved(req, values, notes, device, None))
        except Exception as e:
            self.post_message(self.DefaultsResolved(req, None, [], "", describe_error(e)))

    @work(thread=True, exclusive=True, group="speed")
    def _speed(self, req: int, start_from: str, block_size: int, device: str) -> None:
        """What the budget buys when starting from a model: its training speed on this machine,
        measured (a few seconds for GPT-2 124M on a CPU)."""
        try:
            tps = runs.fine_tune_speed(start_from, block_size, device)
        except Exception:  # a rough figure: without it the note says the rest
            tps = None
        self.post_message(self.SpeedMeasured(req, tps))

    @on(SpeedMeasured)
    def _speed_measured(self, msg: SpeedMeasured) -> None:
        if msg.req != self.defaults_req or not self.start_from or not msg.tokens_per_s:
            return
        try:
            minutes = self._minutes()
        except FormError:
            minutes = None
        text = f"{self._about_from} On this machine: about {msg.tokens_per_s:,.0f} tokens/s"
        if minutes:
            tokens = msg.tokens_per_s * minutes * 60
            corpus = self.summary.ids if self.summary is not None else 0
            passes = f", {tokens / corpus:.1f}× your corpus" if corpus else ""
            text += f", so ~{tokens:,.0f} tokens in {minutes:g} minutes{passes}"
        self.query_one("#from-note", Static).update(Text(text + "."))

    @on(DefaultsResolved)
    def _defaults_resolved(self, msg: DefaultsResolved) -> None:
        if msg.req != self.defaults_req or self.locked:
            return
        if msg.error:
            self.status.set(msg.error, level="error")
            return
        for s in ADVANCED:
            field = self.query_one(f"#adv-{s.name}", Input)
            if field.disabled:
                continue
            value = msg.values.get(s.name)
            text = "" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))
            if field.value.strip() in ("", self.auto.get(s.name, "")):
                field.value = text
            self.auto[s.name] = text
            if s.name == "eval_interval" and not text:
                field.placeholder = "auto (timed: ~12 per run, ≤ 30 s apart)"
        self._check_length(msg.values.get("block_size"))
        if self.length_error:
            self.status.set(f"{TOO_SHORT}: {self.length_error}", level="error")
            return
        if self.status.level == "error" and not self.status.text.startswith(TOO_SHORT):
            return  # keep the message about what to fix in view (one fixed just now goes)
        if self.start_from:
            about = self._describe_from(msg.values, msg.device)
            self.query_one("#from-note", Static).update(Text(about))
            self.status.set(f"Ready: {about} ctrl+s starts.")
            self._about_from = about
            self._speed(msg.req, self.start_from, int(msg.values["block_size"]),
                        str(msg.values.get("device") or "auto"))
            return
        shape = f"{msg.values['n_layer']} layers × {msg.values['n_embd']} wide"
        self.status.set(f"Ready on {msg.device}: {shape}, context {msg.values['block_size']}. "
                        "ctrl+s starts.")

    # -- reading it ----------------------------------------------------------------------------
    def _minutes(self) -> float | None:
        raw = self.query_one("#minutes", Input).value.strip()
        if not raw:
            return None
        try:
            return SETTING["minutes"].parse(raw)
        except ValueError as e:
            raise FormError(f"minutes: {e}", "minutes") from None

    def read_request(self) -> RunRequest:
        """The run the form describes, or FormError naming the field."""
        if self.corpus_error or self.length_error:
            raise FormError(f"corpus: {self.corpus_error or self.length_error}", "paths")
        if self.encoding:
            raise FormError(f"the corpus is still being encoded into {self.checked_spec} "
                            "tokens: start once its check shows the token count")
        paths = self.paths()
        if not paths:
            raise FormError("choose a corpus: type a file or folder, or press ctrl+b to browse",
                            "paths")
        name = None
        if not self.resume_name:
            name = self.query_one("#name", Input).value.strip() or runs.suggest_name(paths)
            try:
                check_new_name(name)
            except ConfigError as e:
                raise FormError(describe_error(e), "name") from None
        overrides = {}
        for s in ADVANCED:
            raw = self.user_value(s.name)
            if raw is None:
                continue
            try:
                overrides[s.name] = s.parse(raw)
            except ValueError as e:
                raise FormError(f"{s.label}: {e}", f"adv-{s.name}") from None
        max_steps = overrides.pop("max_steps", None)
        if not self.resume_name and not self.start_from:
            overrides["tokenizer"] = self.tokenizer  # the choice (a typed one is in it too)
        return RunRequest(paths=paths, name=name, minutes=self._minutes(), max_steps=max_steps,
                          preset=str(self.query_one("#preset", Select).value),
                          overrides=overrides, resume=self.resume_name, sample_every=2,
                          start_from=self.start_from, gpus=self.gpus)

    def user_value(self, name: str) -> str | None:
        """What the user typed in an advanced field, or None where it is empty, disabled or
        still the default filled in."""
        field = self.query_one(f"#adv-{name}", Input)
        raw = field.value.strip()
        return None if field.disabled or not raw or raw == self.auto.get(name) else raw

    # -- around a run --------------------------------------------------------------------------
    def set_enabled(self, enabled: bool) -> None:
        self.locked = not enabled
        fixed = {"name", "preset", "tokenizer", "start-from", *(f"adv-{k}" for k in SHAPE_KEYS)}
        from_fixed = {"preset", "tokenizer", "adv-tokenizer", *(f"adv-{k}" for k in FROM_SHAPE)}
        for w in self.query("Input, Select, Button"):
            if enabled and self.resume_name and w.id in fixed:
                continue
            if enabled and self.start_from and w.id in from_fixed:
                continue
            w.disabled = not enabled

    def focus_field(self, widget_id: str | None) -> bool:
        """Put the cursor in a field (opening the advanced section for one of its fields);
        False when there is no such field or it cannot take the cursor."""
        if widget_id is None:
            return False
        w = self.query_one(f"#{widget_id}")
        if w.disabled:
            return False
        if widget_id.startswith("adv-"):
            self.query_one("#advanced", Collapsible).collapsed = False
        w.focus()
        return True

    def name_taken(self) -> None:
        """After a run: its name is taken now; suggest the next free one for another run."""
        self.refresh_sources()  # the run saved a model: it can be started from
        if not self.resume_name and self.name_auto:
            self.name_auto = runs.suggest_name(self.paths()) if self.paths_ok() else ""
            if self.name_auto:
                self.query_one("#name", Input).value = self.name_auto

    def add_path(self, path: str) -> None:
        paths_input = self.query_one("#paths", Input)
        quoted = shlex.quote(short_path(path))
        paths_input.value = (paths_input.value.rstrip() + " " + quoted).strip()
        self.check_corpus_soon(0.0)
        paths_input.focus()

