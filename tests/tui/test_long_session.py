"""Issue 18: long sessions and two app instances on one data folder."""

from __future__ import annotations

import json
import os
import statistics
import time

from charchat import conversations, preferences
from charchat.tui.app import CharChatApp
from charchat.tui.widgets.messages import MAX_SHOWN, MessageBubble

from .conftest import send, settle, wait_for

N = int(os.environ.get("CHARCHAT_LONG_N", "500"))


def rss_mb() -> float:
    """Resident memory now (not the peak), from /proc/self/statm."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


async def test_five_hundred_messages(tiny_model, charchat_home):
    preferences.save_sampling("tiny", {"max_new_chars": 8, "seed": 1})
    app = CharChatApp()
    times: list[float] = []
    rss_at_50 = None
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert screen.state == "ready"
        for i in range(N):
            t0 = time.perf_counter()
            await send(pilot, f"Message {i}")
            want = 2 * (i + 1)
            await wait_for(pilot, lambda: len(screen.engine.session.messages) == want
                           and not screen.generating,
                           timeout=30, what=f"reply {i}")
            times.append(time.perf_counter() - t0)
            if i == N // 10 - 1:
                rss_at_50 = rss_mb()
            if (i + 1) % 100 == 0:  # saved as each reply ends, and valid JSON
                path = conversations.conversations_dir() / f"{app.screen.engine.conversation.id}.json"
                saved = json.loads(path.read_text(encoding="utf-8"))
                assert len(saved["messages"]) == 2 * (i + 1)
        await settle(pilot)
        growth = rss_mb() - rss_at_50
        # The newest messages are on screen; the earlier ones are said to be saved.
        shown = screen.query(MessageBubble)
        assert len(shown) == min(2 * N, MAX_SHOWN)
        assert shown[-2].text == f"Message {N - 1}" and not shown[-1].streaming
        if 2 * N > MAX_SHOWN:
            note = str(screen.query_one(".conversation-earlier").content)
            assert f"{2 * N - MAX_SHOWN} earlier messages" in note
    early = statistics.median(times[N // 10:N // 5])
    late = statistics.median(times[N - N // 10:])
    print(f"\nRSS growth 50->500: {growth:.1f} MB; median reply {early*1000:.1f} ms early, "
          f"{late*1000:.1f} ms late")
    saved = conversations.latest("tiny")
    assert len(saved.messages) == 2 * N
    assert [m["content"] for m in saved.messages[::2]] == [f"Message {i}" for i in range(N)]
    # Opened again, the long conversation shows its newest messages, and says how many more.
    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        shown = app.screen.query(MessageBubble)
        assert len(shown) == min(2 * N, MAX_SHOWN)
        assert shown[-2].text == f"Message {N - 1}"
        if 2 * N > MAX_SHOWN:
            note = str(app.screen.query_one(".conversation-earlier").content)
            assert f"{2 * N - MAX_SHOWN} earlier messages" in note
    assert growth < 50, f"resident memory grew by {growth:.1f} MB"
    assert late < 2 * early + 0.01, f"replies slowed from {early:.3f}s to {late:.3f}s"
