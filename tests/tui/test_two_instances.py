"""Issue 18: two app instances on one data folder. Both conversations are saved, and the
preferences file stays whole and keeps both instances' changes (last writer wins per key)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from charchat import conversations, preferences, store
from charchat.tui.app import CharChatApp

from .conftest import send, settle


async def test_two_apps_on_one_data_folder(tiny_model, charchat_home):
    a, b = CharChatApp(), CharChatApp()
    async with a.run_test(size=(80, 24)) as pa, b.run_test(size=(80, 24)) as pb:
        await settle(pa)
        await settle(pb)
        assert a.screen.state == b.screen.state == "ready"
        for i in range(3):
            await send(pa, f"From A {i}")
            await send(pb, f"From B {i}")
            await settle(pa)
            await settle(pb)
        a.screen.apply_sampling({"temperature": 0.3})
        b.screen.apply_sampling({"temperature": 0.6})
        a.theme = "textual-light"
        b.theme = "nord"
        await settle(pa)
        await settle(pb)
        ids = {a.screen.engine.conversation.id, b.screen.engine.conversation.id}
    assert len(ids) == 2
    saved = {c.id: [m["content"] for m in c.messages if m["role"] == "user"]
             for c in conversations.list_conversations("tiny")}
    assert set(saved) == ids
    assert sorted(saved.values()) == [[f"From A {i}" for i in range(3)],
                                      [f"From B {i}" for i in range(3)]]
    state = json.loads(preferences.state_file().read_text(encoding="utf-8"))
    assert state["theme"] in ("textual-light", "nord")
    assert state["sampling"]["tiny"]["temperature"] in (0.3, 0.6)
    assert state["sampling"]["tiny"]["max_new_chars"] == 30  # the earlier change is kept
    assert state["last_model"] == "tiny"


WRITER = """
import sys
from charchat import preferences
who, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    if who == "a":
        preferences.save_sampling("m", {"temperature": i / n}, recommended={})
    else:
        preferences.remember_theme(f"theme-{i}")
"""


def test_two_processes_keep_each_others_changes(charchat_home):
    """Two processes change different preferences at once: the file is valid JSON whenever it
    is read, and neither process writes back a state read before the other's change."""
    n = 150
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, who, str(n)], env=env)
             for who in ("a", "b")]
    reads = 0
    while any(p.poll() is None for p in procs):
        try:
            text = preferences.state_file().read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        json.loads(text)  # never torn
        reads += 1
    assert [p.returncode for p in procs] == [0, 0]
    state = json.loads(preferences.state_file().read_text(encoding="utf-8"))
    assert state["theme"] == f"theme-{n - 1}"
    assert state["sampling"]["m"]["temperature"] == (n - 1) / n
    assert not [p for p in store.home().iterdir() if p.name.endswith(".tmp")]
