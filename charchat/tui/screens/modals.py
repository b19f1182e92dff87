"""Dialogs: confirm, sampling settings, model picker, rename, corpus path picker, and saved
conversations. Each returns its result through dismiss(); Escape cancels."""

from __future__ import annotations

import math
import time
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.await_complete import AwaitComplete
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from ... import preferences, store
from ...formatting import model_label


class Dialog(ModalScreen):
    """Base: a centred box; Escape cancels (dismisses with None, or False for Confirm).

    A dialog closes once: keys that arrive together (Enter Enter, Enter Escape) are all
    handled by the dialog before it leaves the stack, and a second dismiss would pop the
    screen below it, or an empty stack. Later calls do nothing."""

    CSS_PATH = "modals.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    cancel_result = None
    _dismissed = False

    def dismiss(self, result=None) -> AwaitComplete:
        if self._dismissed or self not in self.app.screen_stack or self.app.screen is not self:
            return AwaitComplete.nothing()
        self._dismissed = True
        return super().dismiss(result)

    def action_cancel(self) -> None:
        self.dismiss(self.cancel_result)


class ConfirmModal(Dialog):
    """Yes or no. Returns True or False."""

    BINDINGS = [Binding("y", "yes", "Yes", show=False), Binding("n", "cancel", "No", show=False)]
    cancel_result = False

    def __init__(self, title: str, body: str, yes: str = "Yes", no: str = "Cancel",
                 danger: bool = False) -> None:
        super().__init__()
        self.title_text, self.body, self.yes, self.no, self.danger = title, body, yes, no, danger

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog confirm") as box:
            box.border_title = self.title_text
            yield Static(Text(self.body), classes="dialog-body")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.no, id="no", compact=True)
                yield Button(self.yes, id="yes", variant="error" if self.danger else "primary",
                             compact=True)

    def on_mount(self) -> None:
        # Destructive choices start on Cancel, so that a stray Enter does no harm.
        self.query_one("#no" if self.danger else "#yes", Button).focus()

    def action_yes(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class SettingsModal(Dialog):
    """Sampling settings for a model. Returns the checked values (dict) or None."""

    BINDINGS = [Binding("ctrl+s", "save", "Save")]

    FIELDS = [
        ("temperature", "Temperature", "0 = likeliest character; higher = bolder"),
        ("top_k", "Top-k", "empty = all characters"),
        ("top_p", "Top-p", "empty = off"),
        ("max_new_chars", "Max reply length", "characters"),
        ("seed", "Seed", "empty = random; a number repeats replies"),
    ]

    def __init__(self, model: str, values: dict, defaults: dict | None = None) -> None:
        super().__init__()
        self.model = model
        self.values = values
        # What "Defaults" restores: the model's own settings (e.g. greedy for the bundled one).
        self.defaults = defaults or preferences.SAMPLING_DEFAULTS

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog settings") as box:
            box.border_title = f"Sampling settings · {self.model}"
            with Grid(classes="form-grid"):
                for key, label, hint in self.FIELDS:
                    v = self.values.get(key)
                    yield Label(label)
                    yield Input("" if v is None else str(v), placeholder=hint, id=f"s-{key}",
                                compact=True, tooltip=hint)
            yield Static("", id="settings-error", classes="error-text")
            yield Static("Top-k keeps the k likeliest characters, top-p the likeliest up to that "
                         "probability. Remembered for this model. Enter saves, Escape cancels.",
                         classes="hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Defaults", id="defaults", compact=True)
                yield Button("Cancel", id="cancel", compact=True)
                yield Button("Save", id="save", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query_one("#s-temperature", Input).focus()

    def read(self) -> dict:
        out = {}
        for key, label, _ in self.FIELDS:
            raw = self.query_one(f"#s-{key}", Input).value.strip()
            if not raw:
                if key in ("temperature", "max_new_chars"):
                    raise ValueError(f"{label.lower()} is needed")
                out[key] = None
                continue
            whole = key not in ("temperature", "top_p")
            try:
                out[key] = int(raw) if whole else float(raw)
            except ValueError:
                kind = "a whole number" if whole else "a number"
                raise ValueError(f"{label.lower()}: {raw!r} is not {kind}") from None
            if not whole and not math.isfinite(out[key]):
                raise ValueError(f"{label.lower()}: {raw!r} is not a finite number")
        return preferences.check_sampling(out)

    def action_save(self) -> None:
        try:
            values = self.read()
        except ValueError as e:
            self.query_one("#settings-error", Static).update(Text(str(e)))
            return
        self.dismiss(values)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#save")
    def _save(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#defaults")
    def _defaults(self) -> None:
        for key, _, _ in self.FIELDS:
            v = self.defaults.get(key)
            self.query_one(f"#s-{key}", Input).value = "" if v is None else str(v)


class ModelPickerModal(Dialog):
    """The saved models and the bundled default; returns the chosen name or None."""

    def __init__(self, current: str | None = None) -> None:
        super().__init__()
        self.current = current
        self.models = store.list_models(include_bundled=True)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog picker") as box:
            box.border_title = "Switch model"
            if not self.models:
                yield Static(Text("No models yet. Train one: press Escape, then ctrl+t."),
                             classes="dialog-body")
                return
            options = []
            for m in sorted(self.models, key=lambda m: -m.updated):
                line = Text()
                line.append("● " if m.name == self.current else "  ", style="bold")
                line.append(m.name, style="bold")
                if m.bundled:
                    line.append(" (bundled)", style="italic")
                line.append(f"  {model_label(m)}", style="dim")
                kind = m.meta.get("corpus_kind")
                if isinstance(kind, str) and kind:
                    line.append(f", {kind}", style="dim")
                options.append(Option(line, id=m.name))
            yield OptionList(*options, id="model-options")
            yield Static("Enter opens the model (its last conversation); Escape cancels.",
                         classes="hint")

    def on_mount(self) -> None:
        if self.models:
            ol = self.query_one(OptionList)
            ol.focus()
            names = [o.id for o in ol.options]
            if self.current in names:
                ol.highlighted = names.index(self.current)

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


class ConversationsModal(Dialog):
    """Saved conversations, newest first; returns the chosen Conversation or None. d deletes
    the highlighted one (after asking)."""

    BINDINGS = [Binding("d", "delete", "Delete")]

    def __init__(self, items: list, more: bool = False, damaged: list | None = None) -> None:
        super().__init__()
        self.items = items
        self.more = more  # older conversations exist beyond these
        self.damaged = list(damaged or [])  # paths of files that could not be read

    def damaged_note(self) -> str:
        """One line on the files that could not be read (kept as they are), or ""."""
        if not self.damaged:
            return ""
        n = len(self.damaged)
        first = self.damaged[0]
        files = (f"{first.name}" if n == 1 else f"{first.name} and {n - 1} more")
        return (f"{n} saved conversation file{'s' if n > 1 else ''} could not be read "
                f"(damaged) and {'were' if n > 1 else 'was'} left as is in {first.parent}: "
                f"{files}.")

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog picker") as box:
            box.border_title = "Saved conversations"
            note = self.damaged_note()
            if not self.items:
                yield Static("No readable saved conversations." if note
                             else "No saved conversations yet.", classes="dialog-body")
                if note:
                    yield Static(Text(note), id="damaged-note", classes="hint")
                return
            options = []
            for i, c in enumerate(self.items):
                line = Text()
                line.append(time.strftime("%Y-%m-%d %H:%M ", time.localtime(c.updated)), style="dim")
                line.append(c.title, style="bold")
                line.append(f"  {c.model}, {len(c.messages)} messages", style="dim")
                options.append(Option(line, id=str(i)))
            yield OptionList(*options, id="conversation-options")
            hint = "Enter opens it (with its model); d deletes it; Escape cancels."
            if self.more:
                from ... import conversations

                hint = (f"The newest {len(self.items)} are listed; older ones stay in "
                        f"{conversations.conversations_dir()}. " + hint)
            if note:
                yield Static(Text(note), id="damaged-note", classes="hint")
            yield Static(hint, classes="hint")

    def on_mount(self) -> None:
        if self.items:
            self.query_one(OptionList).focus()
        if self.damaged:
            self.notify(self.damaged_note(), severity="warning", title="Damaged files",
                        timeout=10, markup=False)

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.items[int(event.option.id)])

    def action_delete(self) -> None:
        if not self.items:
            return
        options = self.query_one(OptionList)
        if options.highlighted is None:
            return
        option = options.get_option_at_index(options.highlighted)
        conv = self.items[int(option.id)]

        def answer(yes: bool | None) -> None:
            if not yes:
                return
            from ... import conversations

            try:
                conversations.delete(conv.id)
            except (OSError, ValueError) as e:
                self.notify(f"Not deleted: {e}", severity="error")
                return
            options.remove_option(option.id)
            self.notify(f"Deleted the conversation {conv.title!r}.", timeout=3)
            from ..messages import ConversationDeleted

            self.app.post_message(ConversationDeleted(conv.id))

        self.app.push_screen(ConfirmModal(
            "Delete conversation",
            f"Delete {conv.title!r} ({len(conv.messages)} messages, {conv.model})? It cannot "
            "be undone.", yes="Delete", danger=True), answer)


class RenameModal(Dialog):
    """A new name for a model; returns it (checked) or None."""

    def __init__(self, old: str) -> None:
        super().__init__()
        self.old = old

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog rename") as box:
            box.border_title = f"Rename {self.old}"
            yield Input(self.old, id="new-name", compact=True,
                        placeholder="letters, digits, '.', '_' or '-'")
            yield Static("", id="rename-error", classes="error-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button("Rename", id="ok", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def _submit(self) -> None:
        new = self.query_one(Input).value.strip()
        try:
            store.check_name(new)
            if new != self.old and (store.models_dir() / new).exists():
                raise store.StoreError(f"a model named {new!r} already exists")
        except store.StoreError as e:
            self.query_one("#rename-error", Static).update(Text(str(e)))
            return
        self.dismiss(None if new == self.old else new)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self._submit()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._submit()
        else:
            self.dismiss(None)


class _CorpusTree(DirectoryTree):
    """Hidden files are left out, as the corpus reader skips them."""

    def filter_paths(self, paths):
        return [p for p in paths if not p.name.startswith(".")]


class PathPickerModal(Dialog):
    """Pick a corpus file or folder; returns its path (str) or None."""

    BINDINGS = [Binding("a", "add", "Add highlighted")]

    def __init__(self, start: str | None = None) -> None:
        super().__init__()
        start_path = Path(start).expanduser() if start else Path.cwd()
        if start_path.is_file():
            start_path = start_path.parent
        if not start_path.is_dir():
            start_path = Path.cwd()
        self.start = start_path

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog paths") as box:
            box.border_title = "Add a corpus file or folder"
            yield Input(str(self.start), id="root", compact=True,
                        placeholder="folder to browse (Enter)")
            yield _CorpusTree(self.start, id="tree")
            yield Static("Enter on a file adds it · a adds the highlighted file or folder · "
                         "Escape cancels", classes="hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button("Add highlighted", id="add", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query_one("#tree").focus()

    @on(Input.Submitted, "#root")
    def _root(self, event: Input.Submitted) -> None:
        p = Path(event.value).expanduser()
        if p.is_file():
            self.dismiss(str(p))
        elif p.is_dir():
            tree = self.query_one("#tree", DirectoryTree)
            tree.path = p
            tree.focus()
        else:
            self.notify(f"{p}: no such file or folder", severity="error")

    @on(DirectoryTree.FileSelected)
    def _file(self, event: DirectoryTree.FileSelected) -> None:
        self.dismiss(str(event.path))

    def action_add(self) -> None:
        tree = self.query_one("#tree", DirectoryTree)
        node = tree.cursor_node
        if node is None or node.data is None:
            return
        self.dismiss(str(node.data.path))

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "add":
            self.action_add()
        else:
            self.dismiss(None)
