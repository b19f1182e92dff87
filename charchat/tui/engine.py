"""The work behind the app's screens, without Textual: a model and its conversation, the
training job, and pacing the trainer's events for a screen.

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

from .. import conversations, preferences, runs, store
from ..config import ConfigError, CorpusError, TrainEvent, TrainingError, label_of
from ..conversations import Conversation
from ..runs import RunRequest

log = logging.getLogger("charchat.tui")


def describe_error(e: BaseException) -> str:
    """One line for any exception: the core's messages are already one line; anything else is
    named by its type, and its traceback goes to the app's log file, never to the screen."""
    if isinstance(e, runs.NameTaken):
        return f"{e.reason}: pick another name, or resume it from the models screen"
    if isinstance(e, ConfigError):  # as the form labels the field; a path names itself
        return e.reason if e.field in ("file", "paths") else f"{label_of(e.field)}: {e.reason}"
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    # CorpusError, ConfigError and TokenizerError are ValueErrors.
    if isinstance(e, (store.StoreError, ValueError, TrainingError)):
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
class LoadedInfo:
    """What the chat screen shows of the model it has loaded."""

    name: str
    device: str  # cpu, cuda (autocast bf16), ...
    kind: str  # prose, dialogue or framed (charchat.chat)
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
             on_notice: Callable[[str], None] | None = None) -> LoadedInfo:
        """Load a model (imports torch the first time). Raises StoreError, ValueError."""
        from ..chat import ChatSession
        from ..config import SamplingSettings
        from ..device import pick_device

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
        return LoadedInfo(loaded.name, dev.label, session.kind, loaded.model.num_params(),
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
        """Save the conversation; returns an error message (or a note: a damaged file in its
        place was moved aside), or None."""
        moved: list = []
        with self.lock:
            if self.session is None or self.conversation is None:
                return None
            self.conversation.messages = self.session.to_dict()["messages"]
            try:
                conversations.save(self.conversation, moved)
            except OSError as e:
                return f"could not save the conversation: {describe_error(e)}"
        if moved:
            return (f"{moved[0].with_suffix('').name} could not be read (damaged): moved aside "
                    f"as {moved[0].name}; the conversation is saved anew")
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
        from ..config import SamplingSettings

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
# Training


class TrainingJob:
    """The one training run the app owns: planned and run in a worker thread, shown by any
    training screen that is open on it (and by none while it goes on out of sight).

    `history` holds everything the run has reported, merged into one batch, so that a screen
    opened later draws the whole run; `post` (from the app) passes each new batch on.
    """

    def __init__(self, request: RunRequest) -> None:
        self.request = request
        self.cancel = threading.Event()
        self.state = "running"  # running, stopping, done
        self.started = False  # the trainer reported its start (so it holds the name's folder)
        self.result = None  # the core's TrainResult, when it ended normally
        self.error: str | None = None  # one line, when it failed or was stopped before it began
        self.error_field: str | None = None  # the setting (or "paths", "name") it is about
        self.cancelled = False  # stopped before training began
        self.seen_end = False  # a screen has shown how it ended
        self.history = TrainBatch()
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.request.resume or self.request.name or ""

    @property
    def running(self) -> bool:
        return self.state in ("running", "stopping")

    def stop(self) -> None:
        """Stop after the current step; the best model is kept."""
        if self.state == "running":
            self.cancel.set()
            self.state = "stopping"

    @property
    def kept(self) -> str | None:
        """The name of the model this run leaves, if it saved one."""
        if self.result is not None:
            return self.result.name if self.result.best_val_loss is not None else None
        # A new run that failed before its start saved nothing: weights under its name then
        # belong to another run (one training that name), not to this one.
        ours = self.started or bool(self.request.resume)
        if ours and self.name and (store.models_dir() / self.name / store.WEIGHTS).exists():
            return self.name
        return None

    def run(self, post: Callable[["TrainBatch"], None]) -> None:
        """Plan and train (in a worker thread); every batch of progress goes to post, and the
        job is done when this returns. Never raises."""
        feed = TrainFeed(lambda batch: self._record(batch, post))
        try:
            plan = runs.plan(self.request)
            if plan.resume:
                feed(_history(plan.folder))
            if self.request.gpus > 1:  # torchrun's processes, followed by their events
                result = runs.train_in_processes(self.request, feed, self.cancel)
            else:
                result = runs.train(plan, feed, self.cancel)
            feed.flush()
            self.result = result
        except runs.Cancelled:
            self.cancelled, self.error = True, "stopped before training began"
        except BaseException as e:  # noqa: BLE001 - the app must never die with a traceback
            feed.flush()
            self.error = describe_error(e)
            self.error_field = e.field if isinstance(e, ConfigError) else (
                "paths" if isinstance(e, CorpusError) else None)
        finally:
            self.state = "done"

    def _record(self, batch: "TrainBatch", post: Callable[["TrainBatch"], None]) -> None:
        with self._lock:
            if batch.start is not None:
                self.started = True
            self.history.merge(batch.copy())
        post(batch)


def _history(folder) -> "TrainBatch":
    """The loss curves so far of a model being resumed (from its metrics.jsonl)."""
    batch = TrainBatch()
    try:
        for d in store.read_metrics(folder):
            if d.get("kind") == "step" and "train_loss" in d:
                batch.train_points.append((d.get("step", 0), d["train_loss"]))
            elif d.get("kind") == "eval" and "val_loss" in d:
                batch.evals.append(TrainEvent("eval", step=d.get("step", 0),
                                              val_loss=d["val_loss"]))
    except (OSError, store.StoreError):
        pass
    batch.past = True
    return batch


@dataclass
class TrainBatch:
    """Trainer events gathered for one screen update."""

    past: bool = False  # the curves of earlier sessions of a resumed run (not this one's)
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

    def copy(self) -> "TrainBatch":
        return TrainBatch(self.past, self.start, self.step, list(self.train_points),
                          list(self.evals), self.sample, self.end, list(self.notes))

    def merge(self, later: "TrainBatch") -> "TrainBatch":
        """This batch followed by a later one, as one batch (lists joined, newest kept)."""
        self.past = self.past and later.past
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
            if isinstance(ev, TrainBatch):  # whole (a resumed run's history)
                self._flush()
                self.post(ev)
                return
            if ev.kind == "note":
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
