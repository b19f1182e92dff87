#!/usr/bin/env python3
"""A long chat in the real app, typed through tmux as a person would (issue 18).

Starts `charchat` in a tmux session on a fresh data folder (the bundled default model), types
N messages one after another, waits for each reply to end (saved in the conversation file,
which is replaced whole as each reply ends), and records the time from Enter to the end of the reply and the app's resident memory
(/proc/PID/status VmRSS). Checks at the end that the conversation file holds every message.
Prints one JSON object: RSS at message N/10 and at the end, and median reply times early and
late.

    python benchmarks/long_session_tmux.py [--n 500]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SESSION = "charchat-long"
QUESTIONS = ["what is 12 plus 7?", "hello!", "what is the capital of France?",
             "spell cat", "what day comes after Monday?"]


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True).stdout


def screen() -> str:
    return tmux("capture-pane", "-p", "-t", SESSION)


def app_pid() -> int:
    pane = int(tmux("display-message", "-p", "-t", SESSION, "#{pane_pid}").strip())
    # the pane runs `sh -c charchat`, or charchat itself
    out = subprocess.run(["pgrep", "-P", str(pane)], capture_output=True, text=True).stdout
    return int(out.split()[0]) if out.split() else pane


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_ready(timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if "ready ·" in screen():
            return
        time.sleep(0.02)
    raise SystemExit("no 'ready' on the status line:\n" + screen())


def saved_count(home: Path) -> int:
    files = list((home / "conversations").glob("*.json"))
    if len(files) != 1:
        return 0
    try:
        return len(json.loads(files[0].read_text())["messages"])
    except (OSError, ValueError, KeyError):
        return -1  # never torn: the file is replaced whole (this would fail the run)


def wait_saved(home: Path, n: int, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = saved_count(home)
        if got < 0:
            raise SystemExit("the conversation file was read torn")
        if got >= n:
            return
        time.sleep(0.005)
    raise SystemExit(f"message {n} not saved within {timeout} s:\n" + screen())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500)
    args = ap.parse_args()
    exe = shutil.which("charchat") or str(Path(sys.executable).parent / "charchat")
    home = Path(tempfile.mkdtemp(prefix="charchat-long-"))
    tmux("kill-session", "-t", SESSION)
    tmux("new-session", "-d", "-s", SESSION, "-x", "120", "-y", "40",
         f"env CHARCHAT_HOME={home} {exe}")
    try:
        wait_ready()
        pid = app_pid()
        times, rss = [], {}
        for i in range(args.n):
            text = f"{QUESTIONS[i % len(QUESTIONS)]}"
            tmux("send-keys", "-t", SESSION, "-l", text)
            t0 = time.perf_counter()
            tmux("send-keys", "-t", SESSION, "Enter")
            # each reply is saved as it ends: wait for the file to hold it
            wait_saved(home, 2 * (i + 1))
            times.append(time.perf_counter() - t0)
            if i + 1 in (args.n // 10, args.n):
                rss[i + 1] = rss_mb(pid)
        files = list((home / "conversations").glob("*.json"))
        saved = json.loads(files[0].read_text()) if len(files) == 1 else {"messages": []}
        n = args.n
        print(json.dumps({
            "messages": n, "conversation_files": len(files),
            "saved_messages": len(saved["messages"]),
            "rss_mb_at": rss, "rss_growth_mb": rss[n] - rss[n // 10],
            "median_reply_s_early": statistics.median(times[n // 10: n // 5]),
            "median_reply_s_late": statistics.median(times[n - n // 10:]),
            "last_screen_lines": screen().strip().splitlines()[-6:],
        }, indent=1, ensure_ascii=False))
    finally:
        tmux("send-keys", "-t", SESSION, "C-q")
        time.sleep(1)
        tmux("kill-session", "-t", SESSION)
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
