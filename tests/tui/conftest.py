"""Fixtures for the app's tests: tiny models trained once per session and copied into each
test's data folder, and helpers that wait on the app's workers (never on sleeps)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from conftest import pattern_text

TINY_SHAPE = dict(n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=8, dropout=0.0,
                  lr=3e-3, eval_interval=10, eval_tokens=512, log_interval=5, warmup_steps=5,
                  device="cpu", seed=1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A model folder trained for 30 steps on generated prose (about a second), once."""
    from charchat.corpus import corpus_from_text
    from charchat.trainer import TrainConfig, Trainer

    folder = tmp_path_factory.mktemp("tiny-model") / "tiny"
    corpus = corpus_from_text(pattern_text(6000))
    Trainer(corpus, TrainConfig(max_steps=30, **TINY_SHAPE), name="tiny", out_dir=folder).run()
    return folder


@pytest.fixture
def tiny_model(tiny_model_dir, charchat_home) -> str:
    """The tiny model saved as "tiny" in this test's data folder; replies kept short."""
    from charchat import preferences

    shutil.copytree(tiny_model_dir, charchat_home / "models" / "tiny")
    preferences.save_sampling("tiny", {"max_new_chars": 30, "seed": 1})
    return "tiny"


@pytest.fixture
def tiny_corpus(tmp_path) -> Path:
    path = tmp_path / "corpus" / "story.txt"
    path.parent.mkdir(parents=True)
    path.write_text(pattern_text(6000))
    return path


async def settle(pilot, rounds: int = 50) -> None:
    """Wait until no worker runs and the messages they posted are handled."""
    app = pilot.app
    for _ in range(rounds):
        await app.workers.wait_for_complete()
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
