"""Textual's Footer, without its leak: it is recomposed whenever the screen's bindings change
(each reply starts and ends: Escape comes and goes), and every FooterKey it composes watches the
footer's `compact` setting. Textual (8.2) never drops those watchers, so every key ever shown
stayed in memory with its styles (tens of MB over a few hundred replies). The watchers of keys
no longer on screen are dropped after each recompose."""

from __future__ import annotations

from textual.widgets import Footer as _Footer


class Footer(_Footer):
    async def recompose(self) -> None:
        await super().recompose()
        watchers = getattr(self, "__watchers", None)
        if isinstance(watchers, dict):
            for entries in watchers.values():
                entries[:] = [(node, callback) for node, callback in entries
                              if node is self or node.is_attached]
