"""The work behind the app's screens, without Textual: a model and its conversation, training
jobs, and pacing the trainer's events for a screen.

The app calls what needs torch from thread workers, so torch is imported inside the functions
below, never at module level: importing this module stays instant (the first screen paints
before torch is even loaded).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from .. import conversations, locking, preferences, store
from ..conversations import Conversation
from ..recipe import PRESETS
from ..formatting import fmt_time  # noqa: F401  (re-exported for the screens)

log = logging.getLogger("charchat.tui")


def describe_error(e: BaseException) -> str:
    """One line for any exception: the core's messages are already one line; anything else is
    named by its type, and its traceback goes to the app's log file, never to the screen."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    # CorpusError and TokenizerError are ValueErrors; TrainingError is named, not imported
    # (importing charchat.trainer would import torch).
    if isinstance(e, (store.StoreError, ValueError)) or type(e).__name__ == "TrainingError":
        return text or e.__class__.__name__
    if type(e).__name__ == "OutOfMemoryError" or isinstance(e, MemoryError):
        return "out of memory: try a smaller model (preset, batch size or context length)"
    if isinstance(e, OSError):
        return f"{e.filename + ': ' if getattr(e, 'filename', None) else ''}{e.strerror or text}"
    where = log_exception(e)
    return f"unexpected error ({e.__class__.__name__}: {text[:160]}); details in {where}"


def log_file() -> Path:
    return store.home() / "logs" / "app.log"


def log_exception(e: BaseException) -> Path:
    path = log_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(time.strftime("%Y-%m-%d %H:%M:%S ") + "".join(
                traceback.format_exception(type(e), e, e.__traceback__)) + "\n")
    except OSError:
        pass
    return path


# ---------------------------------------------------------------------------------------------
# Chat


@dataclass
class ModelInfo:
    name: str
    device: str  # cpu, cuda (autocast bf16), ...
    kind: str  # prose or dialogue
    params: int
    block_size: int
    sampling: dict  # the settings in force
    sampling_defaults: dict = field(default_factory=dict)  # the model's own, before any change


class ChatEngine:
    """The loaded model, its chat session and the conversation being saved.

    Methods run in worker threads, one at a time (`lock`): a new reply waits for the previous
    one to finish, which it does at once once its cancel event is set.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.loaded = None
        self.session = None
        self.device_label = ""
        self.conversation: Conversation | None = None

    @property
    def name(self) -> str | None:
        return self.loaded.name if self.loaded is not None else None

    @property
    def ready(self) -> bool:
        return self.session is not None

    def load(self, name: str, device: str = "auto",
             on_notice: Callable[[str], None] | None = None) -> ModelInfo:
        """Load a model (imports torch the first time). Raises StoreError, ValueError."""
        from ..chat import ChatSession
        from ..device import pick_device
        from ..generation import SamplingSettings

        dev = pick_device(device)
        loaded = store.load_model(name, dev.device)
        recommended = loaded.meta.get("sampling")
        recommended = recommended if isinstance(recommended, dict) else {}
        sampling = preferences.sampling_for(loaded.name, recommended)
        session = ChatSession.from_loaded(loaded, SamplingSettings(**sampling), on_notice)
        with self.lock:
            self.loaded, self.session, self.device_label = loaded, session, dev.label
            self.conversation = conversations.new(loaded.name, session.kind)
        preferences.remember_model(loaded.name, loaded.path)
        return ModelInfo(loaded.name, dev.label, session.kind, loaded.model.num_params(),
                         loaded.model.config.block_size, sampling,
                         preferences.base_sampling(loaded.name, recommended))

    def unload(self) -> None:
        with self.lock:
            self.loaded = self.session = self.conversation = None

    def attach(self, conv: Conversation | None) -> Conversation:
        """Continue a saved conversation (or a new one when conv is None or another model's)."""
        with self.lock:
            if conv is None or self.loaded is None or conv.model != self.loaded.name:
                conv = conversations.new(self.name or "", self.session.kind if self.session else "")
            if self.session is not None:
                self.session.load_messages(conv.messages)
            self.conversation = conv
            return conv

    def new_conversation(self) -> None:
        with self.lock:
            if self.session is not None:
                self.session.reset()
            self.conversation = conversations.new(self.name or "", self.session.kind if self.session else "")

    def save(self) -> str | None:
        """Save the conversation; returns an error message, or None."""
        with self.lock:
            if self.session is None or self.conversation is None:
                return None
            self.conversation.messages = self.session.to_dict()["messages"]
            try:
                conversations.save(self.conversation)
            except OSError as e:
                return f"could not save the conversation: {describe_error(e)}"
        return None

    def stream(self, text: str | None, cancel: threading.Event,
               on_saved_error: Callable[[str], None] | None = None) -> Iterator[str]:
        """Reply to text (or, with None, regenerate the last reply) piece by piece. The
        conversation is saved when the user's message is added and when the reply ends,
        finished or stopped."""
        with self.lock:
            if self.session is None:
                raise ValueError("no model is loaded")
            if text is None:
                pieces = self.session.regenerate(cancel)
            else:
                pieces = self.session.stream_reply(text, cancel)
                err = self.save()
                if err and on_saved_error:
                    on_saved_error(err)
            try:
                yield from pieces
            finally:
                pieces.close()
                err = self.save()
                if err and on_saved_error:
                    on_saved_error(err)

    def set_sampling(self, values: dict) -> dict:
        """Check, apply and remember sampling settings for the loaded model. ValueError."""
        from ..generation import SamplingSettings

        with self.lock:
            if self.loaded is None:
                raise ValueError("no model is loaded")
            recommended = self._recommended()
            clean = {**preferences.sampling_for(self.loaded.name, recommended),
                     **preferences.check_sampling(values)}
            settings = SamplingSettings(**clean)
            if self.session is not None:
                self.session.settings = settings
            return preferences.save_sampling(self.loaded.name, clean, recommended)

    def _recommended(self) -> dict:
        entry = self.loaded.meta.get("sampling") if self.loaded is not None else None
        return entry if isinstance(entry, dict) else {}


# ---------------------------------------------------------------------------------------------
# Models


def fmt_params(n: int | None) -> str:
    """0.41M, 3.8k, 950: a parameter count at a glance."""
    if not n:
        return "?"
    if n >= 1e5:
        return f"{n / 1e6:.2f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}k"
    return str(n)


def model_label(m) -> str:
    """One line about a saved model (store.ModelInfo): params, best val loss."""
    params = f"{fmt_params(m.params)} params"
    val = f"val {m.best_val_loss:.3f}" if m.best_val_loss is not None else "not evaluated"
    return f"{params}, {val}"


def suggest_name(paths: list[str]) -> str:
    """A free model name from the first corpus path (as `charchat train` picks one)."""
    stem = Path(paths[0]).expanduser().stem if paths else "model"
    return store.unique_name(stem)


def read_train_args(name: str) -> dict:
    """What a saved model was trained with: {"config": {...}, "corpus_paths": [...], ...}."""
    return store.read_train_args(store.resolve(name)[1])


# ---------------------------------------------------------------------------------------------
# Training

PRESET_CHOICES = ("auto", *PRESETS)
SHAPE_KEYS = ("n_layer", "n_head", "n_embd", "block_size")


@dataclass
class TrainSpec:
    """What the training screen asks for."""

    paths: list[str]
    name: str
    minutes: float | None = None  # time budget (resuming: minutes more)
    max_steps: int | None = None  # (resuming: steps more)
    preset: str = "auto"
    overrides: dict = field(default_factory=dict)  # TrainConfig fields set by hand
    resume: bool = False
    sample_every: int = 2  # evaluations between text samples


def build_config(spec: TrainSpec):
    """The TrainConfig for a spec (and, resuming, the folder and tokenizer). Imports torch."""
    from ..tokenizer import CharTokenizer
    from ..trainer import TrainConfig

    overrides = dict(spec.overrides)
    if spec.resume:
        name, folder = store.resolve(spec.name)
        saved = read_train_args(name)
        try:
            tokenizer = CharTokenizer.from_json((folder / "tokenizer.json").read_text())
        except (OSError, ValueError) as e:
            raise store.StoreError(f"{folder}: cannot resume, vocabulary unreadable ({e})") from None
        base = dict(saved.get("config", {}))
        done_s, done_steps = _progress_so_far(folder)
        if spec.minutes or spec.max_steps:
            base["minutes"] = done_s / 60.0 + spec.minutes if spec.minutes else None
            base["max_steps"] = done_steps + spec.max_steps if spec.max_steps else None
        base.update({k: v for k, v in overrides.items() if k not in SHAPE_KEYS})
        base["sample_every"] = spec.sample_every
        try:
            return TrainConfig.from_dict(base), folder, tokenizer
        except ValueError as e:
            raise store.StoreError(f"{folder / 'train_args.json'}: cannot resume ({e})") from None
    if spec.preset != "auto":
        if spec.preset not in PRESETS:
            raise ValueError(f"unknown size preset {spec.preset!r}")
        n_layer, n_head, n_embd = PRESETS[spec.preset]
        for k, v in (("n_layer", n_layer), ("n_head", n_head), ("n_embd", n_embd)):
            overrides.setdefault(k, v)
    config = TrainConfig(minutes=spec.minutes, max_steps=spec.max_steps,
                         sample_every=spec.sample_every, **overrides)
    return config, None, None


def _progress_so_far(folder: Path) -> tuple[float, int]:
    """(seconds, steps) a saved model has trained, from its training state."""
    path = folder / store.STATE
    if not path.exists():
        return 0.0, 0
    st = store.safe_torch_load(path, "training state")
    try:
        return float(st.get("elapsed", 0.0)), int(st.get("step", 0))
    except (AttributeError, TypeError, ValueError):
        return 0.0, 0


def resolved_defaults(spec: TrainSpec, n_chars: int, kind: str) -> tuple[dict, list[str], str]:
    """The hyperparameters the core would pick for this spec and corpus (resolve_config), the
    notes it gives, and the device label. Imports torch."""
    from ..device import pick_device
    from ..recipe import resolve_config

    config, _, _ = build_config(spec)
    dev = pick_device(config.device)
    c, notes = resolve_config(config, n_tokens=n_chars, device=dev.device.type, kind=kind)
    return c.to_dict(), notes, dev.label


def check_new_name(name: str) -> str:
    store.check_name(name)
    locking.check_free(name, store.models_dir() / name, store.StoreError)
    if (store.models_dir() / name / store.WEIGHTS).exists():
        raise store.StoreError(f"a model named {name!r} already exists: pick another name, "
                               "or resume it from the models screen")
    return name


def run_training(spec: TrainSpec, on_event: Callable, cancel: threading.Event):
    """Load the corpus and train; returns the core's TrainResult. Raises the core's errors."""
    from ..corpus import load_corpus
    from ..trainer import Trainer, TrainingError

    config, folder, tokenizer = build_config(spec)
    if spec.resume:
        locking.check_free(spec.name, folder, TrainingError)
    else:
        check_new_name(spec.name)
    on_event(_Note("reading the corpus…"))
    corpus = load_corpus(spec.paths, tokenizer=tokenizer)
    if cancel.is_set():
        raise Cancelled()
    trainer = Trainer(corpus, config, name=spec.name, out_dir=folder, on_event=on_event,
                      cancel=cancel, resume=spec.resume, corpus_paths=[str(p) for p in spec.paths])
    return trainer.run()


class Cancelled(Exception):
    """Stopped before training began."""


@dataclass
class _Note:
    """A status line from the job itself (not from the trainer)."""

    message: str
    kind: str = "note"


@dataclass
class TrainBatch:
    """Trainer events gathered for one screen update."""

    start: object | None = None  # the start event
    step: object | None = None  # the newest step event
    train_points: list[tuple[int, float]] = field(default_factory=list)
    evals: list = field(default_factory=list)  # eval events, oldest first
    sample: object | None = None  # the newest sample event
    end: object | None = None
    notes: list[str] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.start or self.step or self.train_points or self.evals or self.sample
                    or self.end or self.notes)

    def merge(self, later: "TrainBatch") -> "TrainBatch":
        """This batch followed by a later one, as one batch (lists joined, newest kept)."""
        self.start = self.start or later.start
        self.step = later.step or self.step
        self.train_points.extend(later.train_points)
        self.evals.extend(later.evals)
        self.sample = later.sample or self.sample
        self.end = later.end or self.end
        self.notes.extend(later.notes)
        return self


class TrainFeed:
    """The trainer's on_event callback, pacing its events for a screen.

    Step events are coalesced: `post` gets at most one batch every `interval` seconds with the
    newest step and every (step, train loss) point since the last batch. Start, eval, sample
    and end events are passed on at once (they are rare). Runs in the trainer's thread.
    """

    def __init__(self, post: Callable[[TrainBatch], None], interval: float = 0.1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.post = post
        self.interval = interval
        self.clock = clock
        self.batch = TrainBatch()
        self.last = -math.inf
        self._lock = threading.Lock()

    def __call__(self, ev) -> None:
        with self._lock:
            b = self.batch
            urgent = True
            if isinstance(ev, _Note):
                b.notes.append(ev.message)
            elif ev.kind == "start":
                b.start = ev
            elif ev.kind == "step":
                b.step = ev
                if ev.train_loss is not None and math.isfinite(ev.train_loss):
                    b.train_points.append((ev.step, ev.train_loss))
                urgent = False
            elif ev.kind == "eval":
                b.evals.append(ev)
            elif ev.kind == "sample":
                b.sample = ev
            elif ev.kind == "end":
                b.end = ev
            if urgent or self.clock() - self.last >= self.interval:
                self._flush()

    def flush(self) -> None:
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        if self.batch.empty():
            return
        batch, self.batch = self.batch, TrainBatch()
        self.last = self.clock()
        self.post(batch)


def fmt_size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
