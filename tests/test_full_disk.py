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
    with pytest.raises(store.DiskFull, match="x.bin needs 100 bytes, 10 bytes free"):
        store.atomic_write_bytes(tmp_path / "x.bin", bytes(100))
    assert list(tmp_path.iterdir()) == []


