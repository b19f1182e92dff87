"""Every write path survives a full disk (issue 18): a one-line error naming the folder, no
temporary file left, the previous best model intact.

The disk is made full by fault injection (os.write, os.fsync and os.posix_fallocate raising
ENOSPC, or shutil.disk_usage reporting little free space), which runs everywhere; one test uses
a real small tmpfs, and only as root.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import threading
from collections import namedtuple
from pathlib import Path

import pytest

from charchat import catalog, store
from charchat.cli import main
from charchat.corpus import corpus_from_text, load_corpus
from charchat.rundir import RunFolder
from charchat.config import TrainEvent
from charchat.trainer import Trainer

from conftest import pattern_text, tiny_train_config

Usage = namedtuple("Usage", "total used free")


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def little_room(free: int = 999):
    return lambda path: Usage(10**9, 10**9 - free, free)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".tmp" in p.name or p.name.endswith(".part"))


# ---------------------------------------------------------------------------------------------
# The corpus cache (a full disk used to kill the process with SIGBUS through its memmap)


def corpus_file(tmp_path: Path) -> Path:
    text = tmp_path / "text.txt"
    text.write_text(pattern_text(20000))
    return text


def test_cache_needs_room_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", little_room())
    cache = tmp_path / "cache"
    with pytest.raises(store.DiskFull,
                       match=r"no space left .*cache.*needs 40\.1 kB, 999 B free"):
        load_corpus([corpus_file(tmp_path)], cache_dir=cache)
    assert list(cache.iterdir()) == []


def test_cache_is_allocated_before_it_is_mapped(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "posix_fallocate", enospc, raising=False)
    monkeypatch.setattr(os, "write", enospc)  # where there is no posix_fallocate
    cache = tmp_path / "cache"
    with pytest.raises(store.DiskFull) as e:
        load_corpus([corpus_file(tmp_path)], cache_dir=cache)
    assert str(e.value) == f"no space left on the disk of {cache} (writing the corpus cache)"
    assert isinstance(e.value, OSError) and e.value.errno == errno.ENOSPC
    assert list(cache.iterdir()) == []


def test_cli_train_on_a_full_disk_is_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shutil, "disk_usage", little_room())
    code = main(["train", str(corpus_file(tmp_path)), "--name", "full", "--max-steps", "1",
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("charchat: error: no space left on the disk of ")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert leftovers(store.home()) == []


_SMALL_DISK = """
import sys
from charchat import corpus
try:
    corpus.load_corpus([sys.argv[1]], cache_dir=sys.argv[2])
except OSError as e:
    print(type(e).__name__, e)
"""


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="mounting needs root")
def test_cache_on_a_real_small_disk(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        text = tmp_path / "big.txt"
        text.write_text(pattern_text(1_000_000))  # 2 MB of ids in the cache
        r = subprocess.run([sys.executable, "-c", _SMALL_DISK, str(text), str(mnt / "cache")],
                           capture_output=True, text=True, timeout=60,
                           env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
        assert r.returncode == 0, f"killed by signal {-r.returncode}: {r.stderr[-300:]}"
        assert r.stdout.startswith(f"DiskFull no space left on the disk of {mnt / 'cache'}")
        assert list((mnt / "cache").iterdir()) == []
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


# ---------------------------------------------------------------------------------------------
# Atomic writes


@pytest.mark.parametrize("fails", ["write", "fsync"])
def test_atomic_write_on_a_full_disk_keeps_the_old_file(tmp_path, monkeypatch, fails):
    path = tmp_path / "d" / "x.json"
    store.atomic_write_json(path, {"old": True})
    monkeypatch.setattr(os, fails, enospc)
    with pytest.raises(store.DiskFull) as e:
        store.atomic_write_json(path, {"new": True})
    assert str(e.value) == f"no space left on the disk of {path.parent} (writing x.json)"
    assert isinstance(e.value, OSError) and e.value.filename == str(path.parent)
    assert path.read_text() == '{\n  "old": true\n}\n'
    assert leftovers(tmp_path) == []


def test_atomic_write_checks_the_room_first(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", little_room(10))
    with pytest.raises(store.DiskFull, match="x.bin needs 100 B, 10 B free"):
        store.atomic_write_bytes(tmp_path / "x.bin", bytes(100))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# A training run: checkpoints and the metrics log


def train_until_full(tmp_path, monkeypatch, fill, at_step=10):
    """A run that saves its best model at step 10, then meets a full disk (fill() arms it
    when step at_step is reported: 10 is its evaluation, and state.pt is written next; the
    log is written at each step)."""
    folder = tmp_path / "m"
    state = {}

    def on_event(ev):
        if ev.kind == "eval" and ev.step == 10:
            state["saved"] = (folder / store.WEIGHTS).read_bytes()
        if ev.step == at_step and ev.kind == ("eval" if at_step == 10 else "step"):
            fill()

    trainer = Trainer(corpus_from_text(pattern_text(30000)),
                      tiny_train_config(max_steps=60, eval_interval=10, log_interval=1),
                      out_dir=folder, on_event=on_event, cancel=threading.Event())
    with pytest.raises(store.DiskFull) as e:
        trainer.run()
    assert (folder / store.WEIGHTS).read_bytes() == state["saved"]
    assert store.read_weights(folder / store.WEIGHTS)[2]["step"] == 10
    assert leftovers(folder) == []
    return str(e.value), folder


def test_a_checkpoint_is_refused_before_it_is_written(tmp_path, monkeypatch):
    msg, folder = train_until_full(
        tmp_path, monkeypatch, lambda: monkeypatch.setattr(shutil, "disk_usage", little_room()))
    assert msg.startswith(f"no space left on the disk of {folder}: state.pt needs ")


def test_a_full_disk_in_the_metrics_log_stops_the_run(tmp_path, monkeypatch):
    msg, folder = train_until_full(tmp_path, monkeypatch,
                                   lambda: monkeypatch.setattr(os, "write", enospc), at_step=11)
    assert msg == f"no space left on the disk of {folder} (writing metrics.jsonl)"


def test_metrics_log_closes_after_a_full_disk(tmp_path, monkeypatch):
    run = RunFolder(tmp_path, "m")
    run.open_metrics(append=False)
    monkeypatch.setattr(os, "write", enospc)
    with pytest.raises(store.DiskFull, match="writing metrics.jsonl"):
        run.log(TrainEvent("step", step=1))
    run.close_metrics()  # nothing buffered is left to fail again


# ---------------------------------------------------------------------------------------------
# corpus get


@pytest.fixture
def download(monkeypatch, tmp_path):
    body = b"x" * 5000
    (tmp_path / "www.txt").write_bytes(body)
    import hashlib

    d = catalog.Download("sample", (tmp_path / "www.txt").as_uri(),
                         hashlib.sha256(body).hexdigest(), len(body), "sample.txt", "a test")
    monkeypatch.setattr(catalog, "DOWNLOADS", {"sample": d})
    return d


def test_download_on_a_full_disk_leaves_no_part(download, monkeypatch, capsys):
    monkeypatch.setattr(os, "write", enospc)
    assert main(["corpus", "get", "sample"]) == 1
    err = capsys.readouterr().err
    folder = catalog.corpora_dir()
    assert err == (f"charchat: error: no space left on the disk of {folder} "
                   "(writing corpus 'sample')\n")
    assert list(folder.iterdir()) == []


def test_download_checks_the_room_first(download, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", little_room())
    with pytest.raises(catalog.CatalogError, match="corpus 'sample' needs 5.0 kB, 999 B free"):
        catalog.fetch("sample")
    assert list(catalog.corpora_dir().iterdir()) == []


# ---------------------------------------------------------------------------------------------
# The run folder: its lock, and the log after a full disk


def test_a_new_run_folder_on_a_full_disk_is_not_left_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "write", enospc)  # the lock file records the run's pid
    run = RunFolder(tmp_path / "new", "new")
    with pytest.raises(store.DiskFull) as e:
        run.acquire(resume=False)
    assert str(e.value) == f"no space left on the disk of {tmp_path / 'new'} (writing .lock)"
    assert not (tmp_path / "new").exists()


def test_a_resumed_log_starts_after_a_half_written_line(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"kind": "step", "step": 1}\n{"kind": "st')
    run = RunFolder(tmp_path, "m")
    run.open_metrics(append=True)
    run.log(TrainEvent("step", step=2))
    run.close_metrics()
    assert [e["step"] for e in store.read_metrics(tmp_path)] == [1, 2]
