"""The models screen: every saved model (and the bundled default) with its size, parameters,
tokenizer, best validation score in bits per character (which compares across tokenizers), corpus
and date; chat with one, delete, rename, resume training, or pin it
as the default for chat."""

from __future__ import annotations


from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from ... import locking, modelops, preferences, store
from ...formatting import corpus_label, fmt_date, fmt_params, fmt_size
from ..engine import describe_error
from ..messages import ModelRemoved, ModelRenamed, OpenModel
from ..widgets.footer import Footer
from ..widgets.status import StatusLine
from .modals import ConfirmModal, RenameModal


def mean_members(build: dict) -> list[str]:
    """The members of a model made as a mean of weights (corpora/build_default.py --average
    writes them into its build.json), each as "FOLDER (val loss)"; [] for any other model, or
    a build.json too damaged to say."""
    average = build.get("average")
    members = average.get("members") if isinstance(average, dict) else None
    if not isinstance(members, list):
        return []
    out = []
    for member in members:
        if not isinstance(member, dict) or not isinstance(member.get("folder"), str):
            return []
        loss = member.get("val_loss")
        name = member["folder"].rstrip("/").rsplit("/", 1)[-1]
        out.append(name + (f" ({loss:.4f})" if isinstance(loss, (int, float))
                           and not isinstance(loss, bool) else ""))
    return out


def tokenizer_words(name: str) -> str:
    """A tokenizer's name with what it is."""
    if name.startswith("bpe:"):
        return f"{name} (a BPE trained on its corpus)"
    return {"char": "char (a token a character)", "gpt2": "gpt2 (GPT-2's BPE)"}.get(name, name)


class ModelsScreen(Screen):
    CSS_PATH = "models.tcss"
    AUTO_FOCUS = "#models-table"

    BINDINGS = [
        Binding("enter", "chat", "Chat", priority=True),
        Binding("d,delete", "delete", "Delete"),
        Binding("r", "rename", "Rename"),
        Binding("t", "resume", "Resume"),
        Binding("s", "set_default", "Default"),
        Binding("ctrl+t", "app.open_training", "Train new", show=False),
        Binding("escape", "back", "Back"),
    ]

    class Listed(Message):
        def __init__(self, models: list, error: str | None = None) -> None:
            super().__init__()
            self.models, self.error = models, error

    def __init__(self) -> None:
        super().__init__()
        self.models: list = []

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        with Horizontal(id="models-body"):
            yield DataTable(id="models-table", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="model-details"):
                yield Static(id="details")
        yield StatusLine(id="models-status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = "charchat"
        self.sub_title = "models"
        table = self.query_one(DataTable)
        # Best bits per character, not the loss per token: the figure that compares models
        # with different tokenizers (the details give the loss).
        for key, label in (("name", "name"), ("params", "params"), ("tokens", "tokenizer"),
                           ("bpc", "best bpc"), ("size", "size"), ("updated", "updated"),
                           ("corpus", "corpus")):
            table.add_column(label, key=key)
        self.refresh_list()

    def on_screen_resume(self) -> None:
        self.refresh_list()

    # -- listing -------------------------------------------------------------------------------
    def refresh_list(self, select: str | None = None) -> None:
        self._select = select
        self._list()

    @work(thread=True, exclusive=True, group="list")
    def _list(self) -> None:
        try:
            self.post_message(self.Listed(store.list_models(include_bundled=True)))
        except Exception as e:
            self.post_message(self.Listed([], describe_error(e)))

    @on(Listed)
    def _listed(self, msg: Listed) -> None:
        table = self.query_one(DataTable)
        keep = self._select or self.current_name()
        self.models = sorted(msg.models, key=lambda m: (m.bundled, -m.updated))
        table.clear()
        default = preferences.default_model()
        chat = self.app.engine.name  # the model the chat has open
        for m in self.models:
            name = Text(m.name, style="bold")
            if m.name == default:
                name.append(" ★", style="yellow")
            if m.name == chat:
                name.append(" ●", style="green")
            if m.bundled:
                name.append(" (bundled)", style="italic dim")
            if m.training is not None:
                name.append(" (training)", style="italic")
            table.add_row(
                name,
                fmt_params(m.params),
                m.tokenizer,
                f"{m.best_bpc:.3f}" if m.best_bpc is not None else "–",
                fmt_size(m.size_bytes),
                fmt_date(m.updated, "%Y-%m-%d"),
                corpus_label(m.corpus_summary) if m.corpus_summary else m.corpus[:30],
                key=m.name,
            )
        if msg.error:
            self.status.set(msg.error, level="error")
        elif not self.models:
            self.status.set("No models yet: ctrl+t trains one.")
        else:
            self.status.set(f"{len(self.models)} model(s) in {store.models_dir()} · "
                            "★ default for chat · ● open in chat")
        names = [m.name for m in self.models]
        if keep in names:
            table.move_cursor(row=names.index(keep))
        self._show_details()

    @property
    def status(self) -> StatusLine:
        return self.query_one("#models-status", StatusLine)

    def current(self):
        table = self.query_one(DataTable)
        if not self.models or table.cursor_row is None or table.cursor_row >= len(self.models):
            return None
        return self.models[table.cursor_row]

    def current_name(self) -> str | None:
        m = self.current()
        return m.name if m else None

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self._show_details()
        self.refresh_bindings()  # the footer greys out what the new row cannot do

    def _show_details(self) -> None:
        m = self.current()
        details = self.query_one("#details", Static)
        if m is None:
            details.update(Text("No models yet.\n\nTrain one with ctrl+t: it appears here, "
                                "with its size, parameters, best validation loss and corpus.",
                                style="dim"))
            return
        meta = m.meta
        rows = [
            ("folder", str(m.path)),
            ("parameters", f"{m.params:,}" if m.params else "?"),
            ("tokenizer", tokenizer_words(m.tokenizer)),
            ("best val loss", (f"{m.best_val_loss:.4f}" if m.best_val_loss is not None else "–")
             + (f" at step {meta['best_step']}" if meta.get("best_step") is not None else "")),
            ("bits/char", f"{m.best_bpc:.3f} (of the validation text)"
             if m.best_bpc is not None else "–"),
            ("corpus", m.corpus or "?"),
            ("kind", str(meta.get("corpus_kind", "?"))),
            ("trained on", str(meta.get("device", "?"))),
            ("created", fmt_date(meta.get("created"))),
            ("updated", fmt_date(m.updated)),
            ("on disk", fmt_size(m.size_bytes)),
        ]
        members = mean_members(store.read_description(m.path, "build.json"))
        if members:
            rows.append(("made as", f"the mean of {len(members)} models' weights, "
                                    "with no training of its own"))
            rows.append(("members", ", ".join(members)))
        args = store.read_description(m.path, "train_args.json")  # damaged: shown as it is
        if args:
            c = args.get("config")
            c = c if isinstance(c, dict) else {}
            minutes = c.get("minutes")
            rows.append(("shape", f"{c.get('n_layer')} layers × {c.get('n_embd')} wide, "
                                  f"{c.get('n_head')} heads, context {c.get('block_size')}"))
            # A mean keeps its last member's record: say whose it is.
            rows.append(("trained with", ("its last member: " if members else "")
                         + f"batch {c.get('batch_size')}, lr {c.get('lr')}, "
                         + (f"{minutes:g} min budget" if isinstance(minutes, (int, float))
                            and minutes else f"{c.get('max_steps')} steps")))
            paths = args.get("corpus_paths")
            if isinstance(paths, list) and paths:
                shown = ", ".join(str(p) for p in paths[:3])
                rows.append(("corpus files", shown + (" …" if len(paths) > 3 else "")))
        state = m.path / store.STATE
        rows.append(("resumable", "yes" if state.exists() and not m.bundled else "no"))
        table = Table.grid(padding=(0, 1))
        table.add_column(style="dim", justify="right", no_wrap=True)
        table.add_column(overflow="fold")
        for label, value in rows:
            table.add_row(label, Text(str(value)))
        details.update(Group(Text(m.name + (" (bundled)" if m.bundled else ""), style="bold"),
                             table))

    # -- actions -------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("chat", "delete", "rename", "resume", "set_default"):
            m = self.current()
            if m is None:
                return None  # shown, greyed out
            if m.bundled and action in ("delete", "rename", "resume"):
                return None
        return True

    # What the keys greyed out on the bundled model would do, to say why they do nothing.
    NOT_FOR_BUNDLED = {"delete": "deleted", "rename": "renamed", "resume": "resumed"}

    def on_key(self, event: events.Key) -> None:
        m = self.current()
        if m is None or not m.bundled:
            return
        for b in self.BINDINGS:
            verb = self.NOT_FOR_BUNDLED.get(b.action)
            if verb and event.key in b.key.split(","):
                event.stop()
                hint = (" Train a model of your own instead (ctrl+t)." if verb == "resumed"
                        else "")
                self.notify(f"The bundled model cannot be {verb}: it ships with charchat, "
                            f"read-only.{hint}", severity="warning", timeout=4)
                return

    @on(DataTable.RowSelected)
    def _selected(self) -> None:
        self.action_chat()

    def action_chat(self) -> None:
        m = self.current()
        if m is not None:
            self.app.post_message(OpenModel(m.name))

    def _being_trained(self, m, verb: str) -> bool:
        """Say so, and True, when a run (here or in another process) is training m."""
        pid = locking.holder(m.path)
        if pid is None:
            return False
        self.notify(locking.refusal(m.name, pid, verb) + ".", severity="error",
                    title="Being trained")
        return True

    def action_delete(self) -> None:
        m = self.current()
        if m is None or m.bundled or self._being_trained(m, "deleted"):
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self._delete(m.name)

        self.app.push_screen(ConfirmModal(
            f"Delete {m.name}?",
            f"This deletes the folder {m.path} ({fmt_size(m.size_bytes)}): the weights, the "
            "training state and the metrics. Its saved conversations are kept. "
            "This cannot be undone.",
            yes="Delete", no="Keep it", danger=True), answer)

    def _delete(self, name: str) -> None:
        try:
            modelops.delete(name)  # refused if a run started training it meanwhile
        except (store.StoreError, OSError) as e:
            self.notify(describe_error(e), severity="error", title="Not deleted")
            return
        self.notify(f"Deleted {name}.")
        self.app.post_message(ModelRemoved(name))
        self.refresh_list()

    def action_rename(self) -> None:
        m = self.current()
        if m is None or m.bundled or self._being_trained(m, "renamed"):
            return

        def answer(new: str | None) -> None:
            if not new:
                return
            try:
                modelops.rename(m.name, new)
            except (store.StoreError, OSError) as e:
                self.notify(describe_error(e), severity="error", title="Not renamed")
                return
            self.notify(f"Renamed {m.name} to {new}.")
            self.app.post_message(ModelRenamed(m.name, new))
            self.refresh_list(select=new)

        self.app.push_screen(RenameModal(m.name), answer)

    def action_resume(self) -> None:
        m = self.current()
        if m is None or m.bundled or self._being_trained(m, "resumed"):
            return
        if not (m.path / store.STATE).exists():
            self.notify(f"{m.name} has no training state to resume from.", severity="error")
            return
        self.app.action_open_training(resume=m.name)

    def action_set_default(self) -> None:
        m = self.current()
        if m is None:
            return
        if preferences.default_model() == m.name:
            preferences.set_default_model(None)
            self.notify(f"{m.name} is no longer pinned: charchat opens the last model used.")
        else:
            preferences.set_default_model(m.name)
            self.notify(f"{m.name} is now the default for chat: charchat opens it on start "
                        "(and `charchat chat`, `charchat sample` use it).")
        self.refresh_list(select=m.name)

    def action_back(self) -> None:
        if self.app.screen is self:  # a second Escape queued behind the first pops nothing
            self.app.pop_screen()

    def palette_commands(self):
        m = self.current()
        if m is None:
            return
        yield (f"Chat with {m.name}", "Open the highlighted model in chat (Enter)", self.action_chat)
        if not m.bundled:
            yield (f"Delete {m.name}…", "Delete the highlighted model (d)", self.action_delete)
            yield (f"Rename {m.name}…", "Rename the highlighted model (r)", self.action_rename)
            yield (f"Resume training {m.name}", "Continue training it (t)", self.action_resume)
        yield (f"Set {m.name} as default", "The model charchat opens on start (s)",
               self.action_set_default)
