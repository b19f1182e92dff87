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

    gone = False  # being removed (the oldest, beyond ConversationView's MAX_SHOWN)

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


# The newest bubbles kept on screen. Textual lays out every child of the view whenever a bubble
# grows, so each streamed piece cost time (and each bubble memory) in proportion to the whole
# history: older bubbles leave the view (the conversation file keeps them all).
MAX_SHOWN = 100


class ConversationView(VerticalScroll, can_focus=False):
    """Follows new text while it is scrolled to the bottom, and stays put once the user scrolls
    up (until they scroll back down). Shows the newest MAX_SHOWN messages, and a line saying how
    many earlier ones are saved but not shown."""

    hidden = 0  # earlier messages of this conversation not shown

    def on_mount(self) -> None:
        self.anchor()

    def remove_children(self, *args, **kwargs):
        self.hidden = 0
        self.query(".conversation-earlier").remove()
        return super().remove_children(*args, **kwargs)

    def _trim(self) -> None:
        """Unmount the oldest bubbles beyond MAX_SHOWN (never one still streaming)."""
        bubbles = self.bubbles()
        extra = [b for b in bubbles[: max(0, len(bubbles) - MAX_SHOWN)] if not b.streaming]
        if extra:
            self.hidden += len(extra)
            for b in extra:
                b.gone = True  # removed once the view processes it: not to be counted again
                b.remove()
        self._earlier_note()

    def _earlier_note(self) -> None:
        if not self.hidden:
            return
        text = Text(f"{self.hidden} earlier message{'s' if self.hidden != 1 else ''} of this "
                    "conversation saved, not shown here", style="dim italic")
        notes = self.query(".conversation-earlier")
        if notes:
            notes.first(Static).update(text)
        else:
            self.mount(Static(text, classes="conversation-earlier"), before=0)

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
        self._trim()
        return bubble

    def follow(self) -> None:
        """Jump to the newest message and follow it again (after the user sends one)."""
        self.anchor()

    def bubbles(self) -> list[MessageBubble]:
        return [b for b in self.query(MessageBubble) if not b.gone]

    def last_reply(self) -> MessageBubble | None:
        for b in reversed(self.bubbles()):
            if b.role == "assistant":
                return b
        return None

    def show(self, messages: list[dict], author: str) -> None:
        """Show saved messages before the bubbles already here (messages typed while they
        were being read stay last). Replies are signed by author, or by the model that wrote
        them when they say so."""
        existing = self.bubbles()
        room = max(0, MAX_SHOWN - len(existing))
        shown = messages[len(messages) - room:] if room else []
        self.hidden += len(messages) - len(shown)
        bubbles = [MessageBubble(m["role"], m["content"], m.get("ended", ""),
                                 m.get("model") or author)
                   for m in shown]
        if bubbles:
            self.query(".conversation-hint").remove()
            self.mount_all(bubbles, before=existing[0] if existing else None)
        self._earlier_note()
        self.call_after_refresh(self.anchor)
