"""A one-line status with a spinner while something runs in the background."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class StatusLine(Static):
    """set(text, busy=..., level=...): level is info, warning or error (styled by class)."""

    def __init__(self, text: str = "", id: str | None = None) -> None:
        super().__init__(id=id)
        self.text = text
        self.busy = False
        self.level = "info"
        self._frame = 0
        self._timer = None

    def on_mount(self) -> None:
        self._timer = self.set_interval(0.1, self._tick, pause=True)
        self._paint()

    def set(self, text: str, busy: bool = False, level: str = "info") -> None:
        self.text, self.busy, self.level = text, busy, level
        if self._timer is not None:
            (self._timer.resume if busy else self._timer.pause)()
        for lv in ("info", "warning", "error", "success"):
            self.set_class(lv == level, f"-{lv}")
        self._paint()

    def _tick(self) -> None:
        if self.app.screen is not self.screen:
            # Under a dialog (is_current is still true there): each frame would redraw the
            # whole screen behind it, which costs more than it shows.
            return
        self._frame = (self._frame + 1) % len(FRAMES)
        self._paint()

    def _paint(self) -> None:
        prefix = f"{FRAMES[self._frame]} " if self.busy else ""
        self.update(Text(prefix + self.text, no_wrap=True, overflow="ellipsis"))
