import os
import subprocess
import sys
import threading

import pytest

from charchat import locking, store
from charchat.corpus import corpus_from_text
from charchat.trainer import Trainer, TrainingError

from conftest import pattern_text, tiny_train_config

pytestmark = pytest.mark.skipif(locking.fcntl is None, reason="POSIX file locks")

HOLD = """
import sys
from charchat import locking
lock = locking.acquire(sys.argv[1])
print("held", flush=True)
sys.stdin.readline()
if sys.argv[2] == "crash":
    import os
    os._exit(3)
lock.release()
"""


class Holder:
    """Another process that holds folder's lock until told to let go (or to crash)."""

    def __init__(self, folder, how="release"):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(folder), how], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "held"

    def let_go(self):
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        return self.proc.wait(timeout=30)


def test_a_second_lock_fails_at_once_and_names_the_holder(tmp_path):
    folder = tmp_path / "m"
    first = locking.acquire(folder)
    assert (folder / locking.LOCK_FILE).read_text().strip() == str(os.getpid())
    with pytest.raises(locking.FolderBusy) as err:
        locking.acquire(folder)
    assert err.value.pid == os.getpid()
    assert locking.holder(folder) == os.getpid()
    first.release()
    assert locking.holder(folder) is None
    with locking.acquire(folder) as again:
        assert again.held
    assert not again.held


def test_another_process_holds_the_lock_until_it_ends_even_by_crashing(tmp_path):
    folder = tmp_path / "m"
    for how in ("release", "crash"):
        other = Holder(folder, how)
        try:
            with pytest.raises(locking.FolderBusy) as err:
                locking.acquire(folder)
            assert err.value.pid == other.proc.pid
            assert locking.holder(folder) == other.proc.pid
        finally:
            rc = other.let_go()
        assert rc == (3 if how == "crash" else 0)
        assert locking.holder(folder) is None  # the kernel dropped it: no stale lock
        locking.acquire(folder).release()


def test_holder_creates_nothing(tmp_path):
    assert locking.holder(tmp_path / "absent") is None
    assert not (tmp_path / "absent").exists()
    with pytest.raises(FileNotFoundError):
        locking.acquire(tmp_path / "absent", create=False)
    assert not (tmp_path / "absent").exists()


def test_a_lock_file_deleted_by_the_last_holder_is_not_locked(tmp_path, monkeypatch):
    """The holder a run outlasts may have deleted the lock file (a run that saved nothing
    removes its folder): a lock on that deleted file would let two runs in."""
    folder = tmp_path / "m"
    real = locking._try_lock
    calls = {"n": 0}

    def try_lock(fd):
        calls["n"] += 1
        if calls["n"] == 1:  # the other run ends and removes its folder while we wait
            (folder / locking.LOCK_FILE).unlink()
            folder.rmdir()
        return real(fd)

    monkeypatch.setattr(locking, "_try_lock", try_lock)
    lock = locking.acquire(folder)
    assert calls["n"] == 2
    st, mine = os.stat(folder / locking.LOCK_FILE), os.fstat(lock._fd)
    assert (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)
    monkeypatch.setattr(locking, "_try_lock", real)
    with pytest.raises(locking.FolderBusy):
        locking.acquire(folder)
    lock.release()


def test_file_systems_without_locks_train_as_before(tmp_path, monkeypatch):
    def flock(fd, op):
        raise OSError(37, "No locks available")  # ENOLCK, as on some network mounts

    monkeypatch.setattr(locking.fcntl, "flock", flock)
    with locking.acquire(tmp_path / "m") as lock:
        assert lock.held
        assert locking.holder(tmp_path / "m") is None  # a probe does not fail either


def test_probes_do_not_make_a_folder_look_busy(tmp_path, monkeypatch):
    """holder() takes the lock for an instant (listing models, say): other probes must not
    see that as a run, and a run starting then waits the instant out."""
    folder = tmp_path / "m"
    locking.acquire(folder).release()
    probe = os.open(folder / locking.LOCK_FILE, os.O_RDONLY)
    locking.fcntl.flock(probe, locking.fcntl.LOCK_SH)  # a probe, caught midway
    real = locking._try_lock
    refused = []

    def try_lock(fd, shared=False):
        got = real(fd, shared)
        if not got and not refused:  # the run met the probe: the probe ends now
            refused.append(fd)
            locking.fcntl.flock(probe, locking.fcntl.LOCK_UN)
        return got

    try:
        assert locking.holder(folder) is None
        # No timer racing the patience: the probe ends as soon as the run has met it, and the
        # patience is long enough that no stall on a busy machine can run it out.
        monkeypatch.setattr(locking, "_try_lock", try_lock)
        monkeypatch.setattr(locking, "_PATIENCE", 60.0)
        with locking.acquire(folder) as lock:  # taken once the probe is done
            assert lock.held
        assert len(refused) == 1  # it did meet the probe, and waited it out
        monkeypatch.setattr(locking, "_try_lock", real)
        monkeypatch.setattr(locking, "_PATIENCE", 0.25)
        locking.fcntl.flock(probe, locking.fcntl.LOCK_SH)  # one that never ends is a run's
        with pytest.raises(locking.FolderBusy):
            locking.acquire(folder)
    finally:
        os.close(probe)


def test_the_lock_file_holds_exactly_the_holders_pid(tmp_path):
    """A longer pid left by an earlier run must not leave digits behind: the file would name
    another process, or no number at all, and the refusal could not say who holds it."""
    folder = tmp_path / "m"
    folder.mkdir()
    old = "9" * (len(str(os.getpid())) + 3)
    (folder / locking.LOCK_FILE).write_text(f"{old}\n")
    with locking.acquire(folder):
        assert (folder / locking.LOCK_FILE).read_text() == f"{os.getpid()}\n"
        assert locking.holder(folder) == os.getpid()
        with pytest.raises(locking.FolderBusy, match=f"by process {os.getpid()}$") as err:
            locking.acquire(folder)
        assert err.value.pid == os.getpid()


def test_a_second_run_under_the_same_name_is_refused_and_leaves_the_first_alone(tmp_path):
    folder = tmp_path / "m"
    corpus = corpus_from_text(pattern_text(20000))
    other = Holder(folder)
    try:
        # What the first run had written before its first model.
        (folder / "config.json").write_text("{}")
        with pytest.raises(TrainingError,
                           match=rf"^model 'm' is being trained by process {other.proc.pid}; "):
            Trainer(corpus, tiny_train_config(max_steps=5), out_dir=folder).run()
        assert (folder / "config.json").read_text() == "{}"
        assert sorted(p.name for p in folder.iterdir()) == [locking.LOCK_FILE, "config.json"]
    finally:
        other.let_go()
    (folder / "config.json").unlink()
    result = Trainer(corpus, tiny_train_config(max_steps=5), out_dir=folder).run()
    assert (folder / store.WEIGHTS).exists() and result.steps == 5
    assert locking.holder(folder) is None  # released at the end of the run


def test_the_lock_is_held_while_training(tmp_path):
    folder = tmp_path / "m"
    seen = []

    def on_event(ev):
        seen.append(locking.holder(folder))

    Trainer(corpus_from_text(pattern_text(20000)), tiny_train_config(max_steps=3),
            out_dir=folder, on_event=on_event).run()
    assert seen and set(seen) == {os.getpid()}
    assert locking.holder(folder) is None


def test_a_run_that_saves_nothing_removes_its_lock_file_too(tmp_path):
    cancel = threading.Event()
    cancel.set()
    Trainer(corpus_from_text(pattern_text(20000)), tiny_train_config(max_steps=5),
            out_dir=tmp_path / "m", cancel=cancel).run()
    assert not (tmp_path / "m").exists()


def test_a_folder_left_by_a_run_that_ended_meanwhile_is_still_removed(tmp_path):
    """Another new run had made the folder and saved nothing; it ends (and removes the
    folder) while this run starts, which makes the folder again: it is this run's now."""
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")  # the other run's, which has ended
    cancel = threading.Event()
    cancel.set()
    Trainer(corpus_from_text(pattern_text(20000)), tiny_train_config(max_steps=5),
            out_dir=folder, cancel=cancel).run()
    assert not folder.exists()


@pytest.fixture
def a_model(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARCHAT_HOME", str(tmp_path / "home"))
    Trainer(corpus_from_text(pattern_text(20000)), tiny_train_config(max_steps=3),
            name="m").run()
    return store.model_dir("m")


@pytest.mark.parametrize("verb", ["deleted", "renamed"])
def test_a_model_being_trained_is_not_deleted_or_renamed(a_model, verb):
    before = sorted(p.name for p in a_model.iterdir())
    other = Holder(a_model)
    try:
        with pytest.raises(store.StoreError,
                           match=rf"^model 'm' is being trained by process {other.proc.pid}; "
                                 rf"stop that run before it can be {verb}$"):
            store.remove_model("m") if verb == "deleted" else store.rename_model("m", "n")
    finally:
        other.let_go()
    assert sorted(p.name for p in a_model.iterdir()) == before
    assert not store.model_dir("n").exists()
    if verb == "deleted":
        store.remove_model("m")
        assert not a_model.exists()
    else:
        store.rename_model("m", "n")
        assert (store.model_dir("n") / store.WEIGHTS).exists() and not a_model.exists()
