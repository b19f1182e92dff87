"""Issue 18, the kill storm: twenty SIGKILLs at random moments of a run and its resumes, some of
them inside a save (the subprocess's saves are slowed down to land there). Whatever the moment:
the best model loads, the next run starts (no stale lock refuses it), and metrics.jsonl ends
up with every step once, on whole lines.

The moments are random but seeded; the checks hold for any moment, so the test checks the
same things on every run however the kills fall."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from charchat import locking, store

from conftest import pattern_text

TINY = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "16",
        "--batch-size", "8", "--device", "cpu", "--seed", "1", "--eval-interval", "5",
        "--quiet"]
KILLS = 20
STEPS = 25  # steps each process has left to train
SLOW = 0.15  # seconds every rename waits (the moment "inside a save" that a kill can hit)

# Runs charchat with every atomic rename slowed down; before waiting, it appends the name of
# the file about to be replaced to $STORM_MARK, for the test to time its kill by.
WRAPPER = """
import os, runpy, sys, time
mark, slow, real = os.environ["STORM_MARK"], float(os.environ["STORM_SLOW"]), os.replace
def slow_replace(src, dst, *a, **k):
    with open(mark, "a") as f:
        f.write(os.path.basename(dst) + "\\n")
    time.sleep(slow)
    return real(src, dst, *a, **k)
os.replace = slow_replace
sys.argv = ["charchat", *sys.argv[1:]]
runpy.run_module("charchat", run_name="__main__", alter_sys=True)
"""


def _marks(path) -> list[str]:
    try:
        return path.read_text().split()
    except OSError:
        return []


def _wait(proc, until, timeout: float = 60.0) -> bool:
    """Poll until `until()` holds (True) or the process ends (False)."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if until():
            return True
        assert time.monotonic() < deadline, "the run never got there"
        time.sleep(0.005)
    return False


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="no SIGKILL on this platform")
def test_twenty_kills_leave_a_loadable_model_a_resumable_run_and_a_clean_log(tmp_path,
                                                                             charchat_home):
    rng = random.Random(18)
    corpus = tmp_path / "storm.txt"
    corpus.write_text(pattern_text(6000))
    wrapper = tmp_path / "storm_wrapper.py"
    wrapper.write_text(WRAPPER)
    folder = charchat_home / "models" / "storm"
    env = {**os.environ, "CHARCHAT_HOME": str(charchat_home), "STORM_SLOW": str(SLOW),
           "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
               [os.path.dirname(os.path.dirname(os.path.abspath(store.__file__))),
                os.environ.get("PYTHONPATH", "")])}

    def start(i: int):
        mark = tmp_path / f"marks-{i}"
        resume = (folder / store.WEIGHTS).exists()
        args = (["--resume", "storm"] if resume else [str(corpus), "--name", "storm"])
        proc = subprocess.Popen(
            [sys.executable, str(wrapper), "train", *args, "--max-steps", str(STEPS), *TINY],
            env={**env, "STORM_MARK": str(mark)}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        return proc, mark

    def holds_lock(proc) -> bool:
        try:
            return (folder / locking.LOCK_FILE).read_text().strip() == str(proc.pid)
        except OSError:
            return False

    inside = {"model.pt": 0, "state.pt": 0}
    had_model = False
    for i in range(KILLS):
        proc, mark = start(i)
        try:
            # The first kill comes after the first saved model, before the first state:
            # inside that state's save.
            target = "state.pt" if i == 0 else rng.choice(["model.pt", "state.pt", None, None])
            if target is None:  # any moment once the run has its lock
                running = _wait(proc, lambda: holds_lock(proc)
                                and (i > 0 or (folder / store.WEIGHTS).exists()))
                if running:
                    time.sleep(rng.uniform(0.0, 1.0))
            else:  # inside the n-th save of that file (while its rename waits)
                nth = 1 if i == 0 else rng.randint(1, 3)
                running = _wait(proc, lambda: _marks(mark).count(target) >= nth)
                if running:
                    time.sleep(rng.uniform(0.0, SLOW / 2))
                    inside[target] += proc.poll() is None
            proc.send_signal(signal.SIGKILL)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        # Killed, or done first (then it ended as a run should).
        assert proc.returncode in (-signal.SIGKILL, 0), err.decode()[-500:]
        assert b"being trained" not in err, err.decode()
        assert locking.holder(folder) is None  # the kill left no lock held
        if (folder / store.WEIGHTS).exists():
            loaded = store.load_model(str(folder) + os.sep)
            assert loaded.info["step"] > 0
            had_model = True
        else:
            assert not had_model, "a saved model went away"

    assert sum(inside.values()) > 0  # some kills did land inside a save

    # The run after the storm goes on to its end, unrefused.
    proc, _ = start(KILLS)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-800:]
    store.load_model(str(folder) + os.sep)
    # What killed saves left half-written went when a run next took the folder.
    assert not list(folder.glob(".*.tmp"))

    lines = (folder / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines]  # every line whole
    steps = [e["step"] for e in events if e["kind"] == "step"]
    assert steps == sorted(set(steps)), "a step was logged twice"
    assert steps == list(range(5, steps[-1] + 1, 5))  # logged at each evaluation, none lost
    evals = [e["step"] for e in events if e["kind"] == "eval"]
    assert evals == sorted(set(evals))
