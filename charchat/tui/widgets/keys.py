"""The F1 panel: the keys of the current screen first, then the app's, and last those of the
focused widget (the message line's 35 editing keys, which Textual's own panel lists first)."""

from __future__ import annotations

from rich import box
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import HelpPanel, KeyPanel, Markdown
from textual.widgets._key_panel import BindingsTable


def ordered_bindings(screen) -> list[tuple[object, list]]:
    """The active bindings of screen, grouped by where they come from: the screen (or
    dialog) first, then the app, then the focused widget and its containers."""
    groups: dict[object, list] = {}
    for active in screen.active_bindings.values():
        if not active.binding.system:
            groups.setdefault(active.node, []).append(active)
    rank = {screen: 0, screen.app: 1}
    order = sorted(groups, key=lambda ns: rank.get(ns, 2))  # stable: the rest keep their order
    return [(ns, groups[ns]) for ns in order]


class KeysTable(BindingsTable):
    def render_bindings_table(self) -> Table:
        key_style = self.get_component_rich_style("bindings-table--key")
        description_style = self.get_component_rich_style("bindings-table--description")
        header_style = self.get_component_rich_style("bindings-table--header")
        table = Table(padding=(0, 0), show_header=False, box=box.SIMPLE)
        table.add_column("", justify="right")
        for namespace, bindings in ordered_bindings(self.screen):
            if namespace is not self.screen and namespace is not self.app:
                title = namespace.BINDING_GROUP_TITLE or type(namespace).__name__
                table.add_row("", Text(title, style=header_style, end=""))
            by_action: dict[str, list] = {}
            for active in bindings:
                by_action.setdefault(active.binding.action, []).append(active.binding)
            for same in by_action.values():
                keys = " ".join(dict.fromkeys(self.app.get_key_display(b) for b in same))
                text = Text.from_markup(same[0].description, end="", style=description_style)
                if same[0].tooltip:
                    text.append((" " if same[0].description else "") + same[0].tooltip, "dim")
                table.add_row(Text(keys, style=key_style), text)
            table.add_section()
        return table


class KeysPanel(KeyPanel):
    def compose(self) -> ComposeResult:
        yield KeysTable(shrink=True, expand=False)


class KeysHelpPanel(HelpPanel):
    """Textual's help panel (F1), with the keys in that order."""

    def compose(self) -> ComposeResult:
        yield Markdown(id="widget-help")
        yield KeysPanel(id="keys-help")
