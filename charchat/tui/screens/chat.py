"""The chat screen: the conversation with the current model, and an input.

Slow work runs in thread workers and reports back with messages: loading the model (torch is
imported there, after the first paint) and generating replies, which stream in as they are
sampled. A message typed while the model loads waits in a queue and is answered as soon as the
model is ready.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Center, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Button, Header, Input, Static

from ... import conversations, preferences, runs, store
from ..engine import ChatEngine, LoadedInfo, describe_error
from ..messages import ConversationDeleted, JobChanged, ModelRemoved, ModelRenamed, OpenModel
from ..widgets.footer import Footer
from ..widgets.messages import ConversationView, MessageBubble
from ..widgets.status import StatusLine

STREAM_INTERVAL = 0.02  # seconds between screen updates while a reply streams


HISTORY_LIMIT = 200  # conversations listed by ctrl+g (reading each file takes time)


@dataclass
class _Pending:
    text: str | None  # None: regenerate
    bubble: MessageBubble  # the reply's
    asked: MessageBubble | None = None  # the message's own


class PromptInput(Input):
    """The message line. A pasted text of several lines arrives whole, its lines joined by
    spaces (Textual's Input keeps only the first line of a paste). A message sent is stamped
    with the conversation it was written in (see ChatScreen.epoch)."""

    def post_message(self, message: Message) -> bool:
        if isinstance(message, Input.Submitted):
            message.epoch = getattr(self.screen, "epoch", 0)
        return super().post_message(message)

    def _on_paste(self, event: events.Paste) -> None:
        parts = event.text.splitlines()  # every line break, not only \n and \r
        lines = [line.strip() for line in parts if line.strip()]
        if len(parts) > 1:
            # Input's own handler (the first line only, even a blank one) must not run too.
            event.prevent_default()
            event.stop()
            if not lines:
                return
            text = " ".join(lines)
            if self.selection.is_empty:
                self.insert_text_at_cursor(text)
            else:
                self.replace(text, *self.selection)
            if len(lines) > 1:
                self.app.notify(f"Pasted {len(lines)} lines as one: a message is one line here.",
                                timeout=3)


class ChatScreen(Screen):
    CSS_PATH = "chat.tcss"
    AUTO_FOCUS = "#prompt"

    BINDINGS = [
        Binding("escape", "stop", "Stop"),
        Binding("ctrl+n", "new_conversation", "New"),
        Binding("ctrl+r", "regenerate", "Retry"),
        Binding("ctrl+y", "copy_reply", "Copy", show=False),
        Binding("ctrl+s", "settings", "Settings"),
        Binding("ctrl+l", "pick_model", "Model"),
        Binding("ctrl+t", "app.open_training", "Train"),
        Binding("ctrl+o", "app.open_models", "Models"),
        Binding("ctrl+g", "history", "History", show=False),
        Binding("up", "recall(-1)", "Previous message", show=False),
        Binding("down", "recall(1)", "Next message", show=False),
    ]

    generating = reactive(False, bindings=True)
    state = reactive("starting", bindings=True)  # starting, loading, ready, failed, empty

    # -- messages from workers -----------------------------------------------------------------
    class Loading(Message):
        def __init__(self, load_id: int, name: str) -> None:
            super().__init__()
            self.load_id, self.name = load_id, name

    class Loaded(Message):
        def __init__(self, load_id: int, info: LoadedInfo, conversation) -> None:
            super().__init__()
            self.load_id, self.info, self.conversation = load_id, info, conversation

    class LoadFailed(Message):
        def __init__(self, load_id: int, name: str | None, error: str) -> None:
            super().__init__()
            self.load_id, self.name, self.error = load_id, name, error

    class Chunk(Message):
        def __init__(self, bubble: MessageBubble, text: str) -> None:
            super().__init__()
            self.bubble, self.text = bubble, text

    class ReplyDone(Message):
        def __init__(self, bubble: MessageBubble, ended: str, error: str | None) -> None:
            super().__init__()
            self.bubble, self.ended, self.error = bubble, ended, error

    class Notice(Message):
        def __init__(self, text: str, severity: str = "information", title: str = "") -> None:
            super().__init__()
            self.text, self.severity, self.title = text, severity, title

    class Cleared(Message):
        pass

    class SamplingApplied(Message):
        def __init__(self, values: dict | None, error: str | None) -> None:
            super().__init__()
            self.values, self.error = values, error

    # ------------------------------------------------------------------------------------------
    def __init__(self, engine: ChatEngine, requested: str | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.requested = requested
        self.model_name: str | None = None  # the model shown (loading, loaded or failed)
        self.queue: list[_Pending] = []
        self.current: _Pending | None = None
        self.cancel = threading.Event()
        self.sampling: dict = {}
        self.sampling_defaults: dict = {}  # the loaded model's own settings (Defaults button)
        self.device = ""
        self.kind = "prose"
        self.history: list[str] = []  # messages sent, for up/down in the input
        # Models whose conversation was cleared (ctrl+n) and is still empty: an empty one is
        # not saved, so coming back to the model must not bring the old one back.
        self.cleared: set[str] = set()
        self.history_pos = 0
        self.load_id = 0
        self._load_lock = threading.Lock()
        # The conversation to continue once the model is loaded (None: a new one). The loader
        # reads it when the model is ready, so ctrl+n while loading is honoured.
        self.to_restore = None
        # ctrl+n before the loader has picked the model: it starts a new conversation too.
        self.fresh_load = False
        # Counts new conversations (ctrl+n): a message sent before one (Enter, then ctrl+n,
        # both handled after) belongs to the conversation that was cleared, and is not sent.
        self.epoch = 0

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        with Vertical(id="chat-main"):
            yield ConversationView(id="conversation")
            with Center(id="empty"):
                with Vertical(id="empty-box"):
                    yield Static(id="empty-text")
                    yield Button("Train a model", id="empty-train", variant="primary")
        yield StatusLine(id="chat-status")
        yield PromptInput(placeholder="Write a message… (Enter sends)", id="prompt")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = "charchat"
        self.sub_title = "starting…"
        self.query_one("#empty").display = False
        self.query_one(StatusLine).set("starting…", busy=True)
        # Start loading once the first frame is on screen: the import of torch holds the
        # interpreter for a while, and the user should see the app (and type) meanwhile.
        self.call_after_refresh(self.open_model, self.requested, None, True)

    # -- state helpers -------------------------------------------------------------------------
    @property
    def conversation(self) -> ConversationView:
        return self.query_one(ConversationView)

    @property
    def status(self) -> StatusLine:
        return self.query_one(StatusLine)

    def _header(self) -> None:
        if self.state == "ready":
            self.sub_title = f"{self.model_name} · {self.device}"
        elif self.state == "loading":
            self.sub_title = f"{self.model_name or 'model'} · loading…"
        elif self.state == "failed":
            self.sub_title = f"{self.model_name or 'no model'} · not loaded"
        elif self.state == "empty":
            self.sub_title = "no model found"

    def _show_empty(self, text: Text | None) -> None:
        empty = self.query_one("#empty")
        if text is None:
            empty.display = False
            self.conversation.display = True
            return
        self.query_one("#empty-text", Static).update(text)
        empty.display = True
        self.conversation.display = False

    def _ready_status(self) -> None:
        s = self.sampling
        parts = [f"temperature {s.get('temperature', 0.8):g}"]
        if s.get("top_k"):
            parts.append(f"top-k {s['top_k']}")
        if s.get("top_p"):
            parts.append(f"top-p {s['top_p']:g}")
        parts.append(f"max {s.get('max_new_chars', 400)} chars")
        if s.get("seed") is not None:
            parts.append(f"seed {s['seed']}")
        text = "ready · " + ", ".join(parts)
        if self.app.job_out_of_sight():
            # Its run shares the CPU with replies: say so, and how to get back to it.
            text += f" · training {self.app.job.name} in the background (ctrl+t)"
        self.status.set(text)

    @on(JobChanged)
    def training_changed(self) -> None:
        """A run went out of sight or ended there: the status line mentions it while it runs."""
        if self.state == "ready" and self.current is None:
            self._ready_status()

    # -- loading -------------------------------------------------------------------------------
    def open_model(self, name: str | None, conversation=None, keep_queue: bool = False) -> None:
        """Load a model in the background, with `conversation` or else its newest one.
        Messages typed meanwhile wait for it (keep_queue: also those typed before)."""
        if not keep_queue:
            self._drop_queue()
            self.fresh_load = False  # another model, or conversation, asked for
        if conversation is not None:
            self.cleared.discard(conversation.model)  # one picked from the history
        self.cancel.set()
        self.state = "loading"
        self.model_name = name
        self.load_id += 1
        self._header()
        self._load(self.load_id, name, conversation)

    @work(thread=True, group="load")
    def _load(self, load_id: int, name: str | None, conversation) -> None:
        # One load at a time, and only the newest request: a model asked for and then
        # replaced by another before it loaded is skipped.
        with self._load_lock:
            if load_id != self.load_id:
                return
            try:
                name = runs.model_to_open(name)
                if name is None:
                    self.post_message(self.LoadFailed(load_id, None, ""))
                    return
                damaged: list = []
                self.to_restore = None if self.fresh_load else conversation or (
                    None if name in self.cleared else conversations.latest(name, damaged))
                if damaged:  # newer than the one reopened: it may be the one the user wanted
                    n = len(damaged)
                    self._notice_from_worker(
                        f"{n} saved conversation file{'s' if n > 1 else ''} could not be read "
                        f"and {'were' if n > 1 else 'was'} passed over: "
                        f"{', '.join(p.name for p in damaged[:3])}{' …' if n > 3 else ''} in "
                        f"{damaged[0].parent} (kept as they are; ctrl+g lists them)")
                self.post_message(self.Loading(load_id, name))
                info = self.engine.load(name, on_notice=self._notice_from_worker)
                if load_id != self.load_id:
                    return  # the newer request loads next
                conv = self.engine.attach(self.to_restore)
                self.post_message(self.Loaded(load_id, info, conv))
            except Exception as e:  # every error is a message on screen, never a traceback
                self.post_message(self.LoadFailed(load_id, name, describe_error(e)))

    def _notice_from_worker(self, text: str) -> None:
        self.post_message(self.Notice(text, "warning", "Note"))

    @on(Loading)
    def _on_loading(self, msg: Loading) -> None:
        if msg.load_id != self.load_id:
            return
        self.model_name = msg.name
        if self.fresh_load:
            self.cleared.add(msg.name)
        self.state = "loading"
        self._header()
        self._show_empty(None)
        self.status.set(f"loading model {msg.name}… (you can type already)", busy=True)
        conv = self.to_restore
        # Messages typed before this point stay after the restored ones.
        self.conversation.show(conv.messages if conv else [], msg.name)

    @on(Loaded)
    def _on_loaded(self, msg: Loaded) -> None:
        if msg.load_id != self.load_id:
            return
        info = msg.info
        self.fresh_load = False
        self.model_name, self.device, self.sampling = info.name, info.device, dict(info.sampling)
        self.sampling_defaults = dict(info.sampling_defaults)
        self.state = "ready"
        self._header()
        self._ready_status()
        if msg.conversation.messages and not self.queue:
            self.notify(f"Restored your last conversation with {info.name} "
                        f"({len(msg.conversation.messages)} messages). ctrl+n starts a new one.",
                        timeout=4)
        self.kind = info.kind
        sent = [m["content"] for m in msg.conversation.messages if m["role"] == "user"]
        self.history = sent + [t for t in self.history if t not in sent][-50:]
        self.history_pos = len(self.history)
        self._hint()
        self._pump()

    def _hint(self) -> None:
        """What to do in an empty conversation, for the kind of model."""
        if self.kind == "dialogue":
            text = (f"{self.model_name} learned from conversations: say something, it answers "
                    "turn by turn.")
        elif self.kind == "framed":
            text = (f"{self.model_name} is a base model, not trained to chat: your messages go "
                    "to it as the lines of a written conversation (User: … / Assistant: …), "
                    "and it writes the next line.")
        else:
            text = (f"{self.model_name} learned from prose: write the start of a text and it "
                    "carries on. A reply ends at a blank line or the length limit.")
        self.conversation.set_hint(text)

    @on(LoadFailed)
    def _on_load_failed(self, msg: LoadFailed) -> None:
        if msg.load_id != self.load_id:
            return
        self.fresh_load = False
        if msg.name is None:
            self.state = "empty"
            self.model_name = None
            self._header()
            self.status.set("no model found: ctrl+t opens training")
            self._show_empty(Text.assemble(
                ("No model found\n\n", "bold"),
                "The default model that ships with charchat is missing from this install "
                "(reinstall charchat to restore it), and you have not trained one. charchat "
                "trains on files or folders of prose (.txt, .md, …) or dialogue (.jsonl); a "
                "first model takes a couple of minutes on a CPU.\n\nPress ctrl+t (or the "
                "button) to open training.",
            ))
            self.query_one("#empty-train").display = True
        else:
            self.state = "failed"
            self._header()
            self.status.set(f"could not load {msg.name}: {msg.error}", level="error")
            self._show_empty(Text.assemble(
                (f"Could not load the model {msg.name}\n\n", "bold"),
                (msg.error + "\n\n", ""),
                "Switch to another model (ctrl+l), manage models (ctrl+o) or train one (ctrl+t).",
            ))
            self.query_one("#empty-train").display = True
        self._drop_queue()

    # -- sending and streaming -----------------------------------------------------------------
    @on(Input.Submitted, "#prompt")
    def _submitted(self, event: Input.Submitted) -> None:
        text = event.value
        if not text.strip():
            return
        if getattr(event, "epoch", self.epoch) != self.epoch:
            # Sent just before ctrl+n, and reaching here after it: not sent (it stays in the
            # input), as the messages still waiting were taken out of the conversation.
            self.notify("A new conversation started: your message was not sent; it is still in "
                        "the input.", severity="warning")
            return
        if self.state in ("empty", "failed"):
            self.notify("There is no model to answer: switch model (ctrl+l) or train one (ctrl+t).",
                        severity="warning")
            return
        event.input.value = ""
        self.history.append(text)
        self.history_pos = len(self.history)
        self.send(text)

    def send(self, text: str) -> None:
        self.cleared.discard(self.model_name)  # saved from now on: the latest again
        asked = self.conversation.add("user", text)
        bubble = self.conversation.add("assistant", author=self.model_name or "", streaming=True)
        if not self.engine.ready:
            bubble.wait("… waiting for the model to load")
        self.conversation.follow()
        self.queue.append(_Pending(text, bubble, asked))
        self._pump()

    def _pump(self) -> None:
        """Start the next queued reply, if the model is ready and nothing is generating."""
        if self.current is not None or not self.queue or self.state != "ready":
            self.generating = self.current is not None or bool(self.queue)
            return
        self.current = self.queue.pop(0)
        self.cancel = threading.Event()
        self.generating = True
        self.status.set(f"{self.model_name} is writing… (Escape stops)", busy=True)
        self.current.bubble.wait("…")
        self._generate(self.current.text, self.current.bubble, self.cancel)

    @work(thread=True, group="generate")
    def _generate(self, text: str | None, bubble: MessageBubble, cancel: threading.Event) -> None:
        buf: list[str] = []
        last = time.monotonic()
        error = None
        ended = "cancelled"
        try:
            for piece in self.engine.stream(text, cancel, self._save_error):
                buf.append(piece)
                now = time.monotonic()
                if now - last >= STREAM_INTERVAL:
                    self.post_message(self.Chunk(bubble, "".join(buf)))
                    buf.clear()
                    last = now
                if cancel.is_set():
                    break
            session = self.engine.session
            if session is not None and session.messages and session.messages[-1].role == "assistant":
                ended = session.messages[-1].ended
        except Exception as e:
            error = describe_error(e)
        if buf:
            self.post_message(self.Chunk(bubble, "".join(buf)))
        self.post_message(self.ReplyDone(bubble, ended, error))

    def _save_error(self, text: str) -> None:
        if "moved aside" in text:  # saved, over no damaged file (see ChatEngine.save)
            self.post_message(self.Notice(text, "warning", "Conversation file"))
        else:
            self.post_message(self.Notice(text, "error", "Not saved"))

    @on(Chunk)
    def _on_chunk(self, msg: Chunk) -> None:
        if msg.bubble.is_attached:
            msg.bubble.append(msg.text)

    @on(ReplyDone)
    def _on_reply_done(self, msg: ReplyDone) -> None:
        if msg.bubble.is_attached:
            msg.bubble.finish(msg.ended)
        if msg.error:
            self.notify(msg.error, severity="error", title="Reply failed")
        if self.current is not None and self.current.bubble is msg.bubble:
            self.current = None
        if self.state == "ready":
            self._ready_status()
        self._pump()

    @on(Notice)
    def _on_notice(self, msg: Notice) -> None:
        self.notify(msg.text, severity=msg.severity, title=msg.title, timeout=8)

    def _drop_queue(self) -> None:
        """Unsent messages leave the view; their texts go back into the input (if empty)."""
        if not self.queue:
            return
        texts = []
        for p in self.queue:
            if p.text is not None:
                texts.append(p.text)
            for b in (p.asked, p.bubble):
                if b is not None:
                    b.remove()
        self.queue.clear()
        prompt = self.query_one("#prompt", Input)
        if texts and not prompt.value:
            # Every unanswered message comes back (one input line: joined, to edit or send).
            prompt.value = " ".join(texts)
            prompt.cursor_position = len(prompt.value)
            self.notify("The model did not answer yet; your message is back in the input."
                        if len(texts) == 1 else
                        f"The model did not answer {len(texts)} messages; they are back in the "
                        "input, joined (↑ recalls them one by one).", severity="warning")
        elif texts:
            self.notify(f"{len(texts)} unanswered message(s) left the conversation; ↑ in the "
                        "input recalls them.", severity="warning")
        self.generating = self.current is not None

    # -- actions -------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return True if self.generating else False
        if action in ("regenerate", "new_conversation"):
            return self.state in ("ready", "loading", "starting")
        if action in ("settings", "copy_reply"):
            return self.state in ("ready", "loading")
        return True

    def action_recall(self, step: int) -> None:
        """Up and down in the input bring back the messages sent before."""
        prompt = self.query_one("#prompt", Input)
        if not self.history or self.focused is not prompt:
            return
        self.history_pos = max(0, min(len(self.history), self.history_pos + step))
        prompt.value = self.history[self.history_pos] if self.history_pos < len(self.history) else ""
        prompt.cursor_position = len(prompt.value)

    def action_stop(self) -> None:
        if not self.generating:
            return
        self.cancel.set()
        self._drop_queue()
        self.status.set("stopping…")

    def action_new_conversation(self) -> None:
        self.epoch += 1
        if self.model_name:
            self.cleared.add(self.model_name)
        self.cancel.set()
        self._drop_queue()
        self.conversation.remove_children()
        if self.state in ("starting", "loading"):
            self.to_restore = None  # the loader starts a new conversation
            self.fresh_load = True  # even if it has not picked the model yet
            self.notify("New conversation.", timeout=2)
            return
        self._new_conversation()

    @work(thread=True, group="session")
    def _new_conversation(self) -> None:
        self.engine.new_conversation()  # waits for a stopped reply to finish
        self.post_message(self.Cleared())

    @on(Cleared)
    def _on_cleared(self) -> None:
        self.conversation.remove_children()
        self._hint()
        self.notify("New conversation.", timeout=2)
        self.query_one("#prompt").focus()

    def action_regenerate(self) -> None:
        if self.generating:
            self.notify("Wait for the reply, or stop it (Escape), first.", severity="warning")
            return
        bubble = self.conversation.last_reply()
        bubbles = self.conversation.bubbles()
        if bubble is None or bubbles[-1] is not bubble:
            if self.state in ("starting", "loading"):
                self.notify("The model is still loading: press ctrl+r again once it is ready.",
                            severity="warning")
            else:
                self.notify("Nothing to regenerate: send a message first.", severity="warning")
            return
        bubble.restart()
        bubble.border_title = self.model_name or bubble.border_title  # written again by it
        self.conversation.follow()
        self.queue.append(_Pending(None, bubble))
        self._pump()

    def action_copy_reply(self) -> None:
        bubble = self.conversation.last_reply()
        if bubble is None or not bubble.text:
            self.notify("No reply to copy yet.", severity="warning")
            return
        bubble.action_copy()

    def action_settings(self) -> None:
        from .modals import SettingsModal

        if not self.model_name:
            return
        values = self.sampling or preferences.sampling_for(self.model_name)
        defaults = self.sampling_defaults or preferences.base_sampling(self.model_name)
        self.app.push_screen(SettingsModal(self.model_name, values, defaults), self.apply_sampling)

    def apply_sampling(self, values: dict | None) -> None:
        if values is None or not self.model_name:
            return
        if self.engine.ready:
            self._apply_sampling(values)
        else:
            try:
                self.sampling = preferences.save_sampling(self.model_name, values)
            except ValueError as e:
                self.notify(str(e), severity="error")
                return
            self.notify("Sampling settings saved.", timeout=2)

    @work(thread=True, group="session")
    def _apply_sampling(self, values: dict) -> None:
        try:
            self.post_message(self.SamplingApplied(self.engine.set_sampling(values), None))
        except Exception as e:
            self.post_message(self.SamplingApplied(None, describe_error(e)))

    @on(SamplingApplied)
    def _on_sampling(self, msg: SamplingApplied) -> None:
        if msg.error:
            self.notify(msg.error, severity="error", title="Settings not changed")
            return
        self.sampling = msg.values
        if self.state == "ready" and not self.generating:
            self._ready_status()
        self.notify("Sampling settings saved for " + (self.model_name or "the model") + ".",
                    timeout=2)

    def action_pick_model(self) -> None:
        from .modals import ModelPickerModal

        def chosen(name: str | None) -> None:
            if name:
                self.switch_model(name)

        self.app.push_screen(ModelPickerModal(self.model_name), chosen)

    def switch_model(self, name: str, conversation=None) -> None:
        """Open another model (its last conversation), stopping any reply first."""
        if self.current is not None:
            self.cancel.set()
        self._drop_queue()
        self.conversation.remove_children()
        self.open_model(name, conversation)

    def action_history(self) -> None:
        from .modals import ConversationsModal

        def chosen(conv) -> None:
            if conv is None:
                return
            names = {m.name for m in store.list_models(include_bundled=True)}
            if conv.model not in names and self.model_name:
                self.notify(f"Its model {conv.model} is gone: the conversation goes on with "
                            f"{self.model_name}.", severity="warning")
                conversations.hand_over(conv, self.model_name)
            self.switch_model(conv.model, conv)

        damaged: list = []
        items = conversations.list_conversations(limit=HISTORY_LIMIT + 1, damaged=damaged)
        more = len(items) > HISTORY_LIMIT
        self.app.push_screen(ConversationsModal(items[:HISTORY_LIMIT], more, damaged), chosen)

    # -- models changed elsewhere (models and training screens) -------------------------------
    def on_screen_resume(self) -> None:
        if self.state == "empty":
            self.open_model(None)  # a model may have been trained meanwhile
        self.training_changed()  # a run may go on out of sight

    @on(ConversationDeleted)
    def _conversation_deleted(self, msg: ConversationDeleted) -> None:
        """A saved conversation was deleted (ctrl+g list): if it is the one open here, the
        chat starts a new one, or the next message would save it again, whole."""
        current = self.engine.conversation
        if current is not None and current.id == msg.conv_id:
            self.action_new_conversation()

    @on(ModelRemoved)
    def _model_removed(self, msg: ModelRemoved) -> None:
        if msg.name == self.model_name:
            self.cancel.set()
            self.conversation.remove_children()
            self.open_model(None)

    @on(ModelRenamed)
    def _model_renamed(self, msg: ModelRenamed) -> None:
        if msg.old == self.model_name:
            self.switch_model(msg.new)

    @on(OpenModel)
    def _open_model(self, msg: OpenModel) -> None:
        self.switch_model(msg.name)

    @on(Button.Pressed, "#empty-train")
    def _train(self) -> None:
        self.app.action_open_training()

    # -- command palette -----------------------------------------------------------------------
    def palette_commands(self):
        """(title, help, callback) for the command palette."""
        yield ("New conversation", "Start a new conversation (ctrl+n)", self.action_new_conversation)
        yield ("Regenerate last reply", "Write the last reply again (ctrl+r)", self.action_regenerate)
        yield ("Copy last reply", "Copy the last reply to the clipboard (ctrl+y)", self.action_copy_reply)
        yield ("Stop reply", "Stop the reply being written (Escape)", self.action_stop)
        yield ("Sampling settings…", "Temperature, top-k, top-p, max reply length (ctrl+s)",
               self.action_settings)
        yield ("Switch model…", "Pick a saved model (ctrl+l)", self.action_pick_model)
        yield ("Saved conversations…", "Open an earlier conversation (ctrl+g)", self.action_history)
        for t in (0.0, 0.3, 0.5, 0.8, 1.0, 1.2):
            yield (f"Temperature {t:g}", "Sampling: " + ("greedy, always the likeliest character"
                   if t == 0 else "lower is safer, higher is bolder"),
                   lambda t=t: self.apply_sampling({**self._current_sampling(), "temperature": t}))
        for k in (0, 5, 20, 40):
            yield (f"Top-k {'off' if k == 0 else k}", "Sampling: keep the k likeliest characters",
                   lambda k=k: self.apply_sampling({**self._current_sampling(), "top_k": k or None}))
        for p in (None, 0.8, 0.9, 0.95):
            yield (f"Top-p {'off' if p is None else p}", "Sampling: nucleus threshold",
                   lambda p=p: self.apply_sampling({**self._current_sampling(), "top_p": p}))
        for n in (100, 200, 400, 1000):
            yield (f"Max reply length {n}", "Sampling: longest reply in characters",
                   lambda n=n: self.apply_sampling({**self._current_sampling(), "max_new_chars": n}))
        for m in store.list_models(include_bundled=True):
            if m.name != self.model_name:
                yield (f"Chat with {m.name}", "Switch model", lambda n=m.name: self.switch_model(n))

    def _current_sampling(self) -> dict:
        if self.sampling:
            return dict(self.sampling)
        return preferences.sampling_for(self.model_name) if self.model_name else {}
