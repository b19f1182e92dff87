"""Helpers for the app's tests that wait on the app's workers (never on sleeps). The tiny
models and corpora they use are tests/conftest.py's."""

from __future__ import annotations

import time

import pytest
from textual.worker import WorkerCancelled


async def settle(pilot, rounds: int = 50) -> None:
    """Wait until no worker runs and the messages they posted are handled. A worker cancelled
    on the way (the screen that started it was left, as Escape leaves the training form while
    it still checks the corpus) has ended too; a worker that failed still raises."""
    app = pilot.app
    for _ in range(rounds):
        for worker in list(app.workers):  # one at a time: a cancelled one must not hide a
            try:                          # failed one, as a single gather() could
                await worker.wait()
            except WorkerCancelled:
                pass
        await pilot.pause()
        if not any(w.is_running or w.state.name == "PENDING" for w in app.workers):
            await pilot.pause()
            if not any(w.is_running for w in app.workers):
                return
    raise AssertionError("workers did not settle")


async def wait_for(pilot, condition, timeout: float = 20.0, what: str = "condition") -> None:
    """Wait until condition() is true, letting the app run (for things a worker does midway,
    such as the first streamed characters)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.01)


async def key(pilot, *keys: str) -> None:
    """Press keys without Pilot's wait for an idle process (which, while a training thread
    keeps the process busy, costs a second a key)."""
    for k in keys:
        pilot.app.simulate_key(k)
        await pilot.pause(0.01)


async def send(pilot, text: str) -> None:
    """Type a message in the chat input and press Enter."""
    pilot.app.screen.query_one("#prompt").value = text
    await key(pilot, "enter")


@pytest.fixture
def held_load(monkeypatch):
    """Model loads wait until the test sets the returned event: the app stays "loading"."""
    import threading

    from charchat.tui.engine import ChatEngine

    gate = threading.Event()
    load = ChatEngine.load

    def held(self, *args, **kwargs):
        gate.wait(30)
        return load(self, *args, **kwargs)

    monkeypatch.setattr(ChatEngine, "load", held)
    yield gate
    gate.set()
