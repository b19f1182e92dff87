"""Take the README's screenshots of the app (SVG, into docs/screenshots/).

Needs a model named "prose" in the data folder, e.g. after the README's set-up command:

    charchat train corpora/prose.txt --name prose --minutes 2
    python docs/make_screenshots.py

It works on a copy of the data folder ($CHARCHAT_HOME or the user data dir), so nothing of
yours is changed; the training screenshot comes from a short real run on corpora/prose.txt.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
SIZE = (120, 34)


async def settle(pilot) -> None:
    app = pilot.app
    for _ in range(50):
        await app.workers.wait_for_complete()
        await pilot.pause()
        if not any(w.is_running for w in app.workers):
            return


async def wait_for(pilot, condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        await pilot.pause(0.1)


async def shoot() -> None:
    from charchat import preferences
    from charchat.tui.app import CharChatApp
    from charchat.tui.widgets.loss_plot import LossPlot

    preferences.remember_model("prose")
    preferences.save_sampling("prose", {"temperature": 0.7, "max_new_chars": 240, "seed": 3})
    app = CharChatApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for text in ("The old lighthouse keeper", "In the morning the village"):
            app.screen.query_one("#prompt").value = text
            await pilot.press("enter")
            await settle(pilot)
        app.save_screenshot(str(OUT / "chat.svg"))

        await pilot.press("ctrl+t")
        await settle(pilot)
        screen = app.screen
        screen.query_one("#paths").value = "corpora/prose.txt"
        screen.form.check_corpus()
        await settle(pilot)
        screen.query_one("#name").value = "prose-2"
        screen.query_one("#minutes").value = "0.5"
        await pilot.pause(0.6)
        await settle(pilot)
        await pilot.press("ctrl+s")
        plot = screen.query_one(LossPlot)
        await wait_for(pilot, lambda: (len(plot.val) >= 4 and screen.query_one("#sample").display)
                       or screen.state == "done")
        print("evaluations", len(plot.val), "state", screen.state, file=sys.stderr)
        await pilot.pause(0.6)  # the plot redraws twice a second
        app.save_screenshot(str(OUT / "train.svg"))
        await wait_for(pilot, lambda: screen.state == "done")

        app.pop_screen()
        await pilot.press("ctrl+o")
        await settle(pilot)
        app.save_screenshot(str(OUT / "models.svg"))


def main() -> None:
    from charchat import store

    src = store.home()
    if not (src / "models" / "prose" / store.WEIGHTS).exists():
        raise SystemExit(f"no model named prose in {src}: train one first (see the docstring)")
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        shutil.copytree(src / "models" / "prose", home / "models" / "prose")
        os.environ["CHARCHAT_HOME"] = str(home)
        os.chdir(ROOT)
        asyncio.run(shoot())
    print(f"wrote {', '.join(sorted(p.name for p in OUT.glob('*.svg')))} to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
