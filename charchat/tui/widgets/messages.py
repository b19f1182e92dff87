"""The conversation: a scrolling column of message bubbles, user and model turns distinct."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

# How a reply ended (ChatSession's Message.ended), as shown under the bubble.
ENDED = {"end_token": "", "stop": "", "length": "length limit", "cancelled": "stopped"}


class MessageBubble(Static, can_focus=True):
    """One turn. Focus it (Tab, or click) and press c to copy it."""

    BINDINGS = [Binding("c", "copy", "Copy")]

    def __init__(self, role: str, content: str = "", ended: str = "", author: str = "",
                 streaming: bool = False) -> None:
        super().__init__(classes=f"bubble -{role}")
        self.role = role
        self.text = content
        self.ended = ended
        self.streaming = streaming
        self.waiting_note = "…"
        self.border_title = "you" if role == "user" else (author or "model")
        self._paint()

    def _paint(self) -> None:
        if not self.text and self.streaming:
            self.update(Text(self.waiting_note, style="dim italic"))
        else:
            self.update(Text(self.text or " "))
        label = ENDED.get(self.ended, "")
        if self.role == "assistant" and self.ended == "" and not self.streaming and not self.text:
            label = "empty"
        self.border_subtitle = label
        self.set_class(self.streaming, "-streaming")

    def append(self, text: str) -> None:
        self.text += text
        self._paint()

    def restart(self, note: str = "…") -> None:
        """Empty the bubble for a new reply (regenerate)."""
        self.text, self.ended, self.streaming, self.waiting_note = "", "", True, note
        self._paint()

    def wait(self, note: str) -> None:
        self.waiting_note = note
        self._paint()

    def finish(self, ended: str) -> None:
        self.ended = ended
        self.streaming = False
        self._paint()

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.text)
        self.notify(f"Copied {len(self.text)} characters to the clipboard.", timeout=3)


class ConversationView(VerticalScroll, can_focus=False):
    """Follows new text while it is scrolled to the bottom, and stays put once the user scrolls
    up (until they scroll back down)."""

    def on_mount(self) -> None:
        self.anchor()

    def set_hint(self, text: str | None) -> None:
        """A line shown while the conversation is empty (None removes it)."""
        self.query(".conversation-hint").remove()
        if text and not self.bubbles():
            self.mount(Static(Text(text), classes="conversation-hint"))

    def add(self, role: str, content: str = "", ended: str = "", author: str = "",
            streaming: bool = False) -> MessageBubble:
        self.query(".conversation-hint").remove()
        bubble = MessageBubble(role, content, ended, author, streaming)
        self.mount(bubble)
        return bubble

    def follow(self) -> None:
        """Jump to the newest message and follow it again (after the user sends one)."""
        self.anchor()

    def bubbles(self) -> list[MessageBubble]:
        return list(self.query(MessageBubble))

    def last_reply(self) -> MessageBubble | None:
        for b in reversed(self.bubbles()):
            if b.role == "assistant":
                return b
        return None

    def show(self, messages: list[dict], author: str) -> None:
        """Show saved messages before the bubbles already here (messages typed while they
        were being read stay last). Replies are signed by author, or by the model that wrote
        them when they say so."""
        bubbles = [MessageBubble(m["role"], m["content"], m.get("ended", ""),
                                 m.get("model") or author)
                   for m in messages]
        if bubbles:
            self.query(".conversation-hint").remove()
            existing = self.bubbles()
            self.mount_all(bubbles, before=existing[0] if existing else None)
        self.call_after_refresh(self.anchor)
