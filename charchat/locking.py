"""One writer per model folder: a lock that a training run holds from start to end.

Why: two runs with the same name (two terminals, or the app and the CLI) used to write into
the same folder. Each truncated the other's metrics.jsonl, and one run's tokenizer.json could
sit beside the other run's weights, which makes a model that cannot be read. Deleting or
renaming a model while it trains pulled the folder from under the run.

The lock is an advisory lock (``flock`` on POSIX, ``msvcrt.locking`` on Windows) on the file
``.lock`` inside the folder. The operating system drops it when the process ends, however it
ends, so a crash or a kill never leaves a stale lock behind. The file holds the pid of the
process that took it, for the message the next one gets. A lock is never waited for beyond a
quarter second (what a probe holds it for): a second run fails at once with a one-line error.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

LOCK_FILE = ".lock"

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
try:
    import msvcrt
except ImportError:  # everything else
    msvcrt = None

_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}
# How long acquire() waits out a lock held for an instant (by holder(), or models rm) before it
# takes the lock for a run's: runs hold it for minutes.
_PATIENCE = 0.25
# Windows locks are mandatory: the locked byte lies past the pid, so that others can read it.
_WIN_OFFSET = 1 << 20


class FolderBusy(Exception):
    """The folder is locked by another run (or another lock in this process)."""

    def __init__(self, folder: Path, pid: int | None) -> None:
        self.folder = Path(folder)
        self.pid = pid
        super().__init__(f"{self.folder}: {being_trained(self.folder.name, pid)}")


def being_trained(name: str, pid: int | None) -> str:
    """The start of every message about a model that a run holds (pid 0 or None: unknown)."""
    return f"model {name!r} is being trained by {f'process {pid}' if pid else 'another run'}"


def busy_message(name: str, pid: int | None) -> str:
    """Why a run cannot start under a name that another run is training."""
    return f"{being_trained(name, pid)}; wait for it to end, or train under another name"


def refusal(name: str, pid: int | None, verb: str) -> str:
    """Why a model that a run is training cannot be deleted, renamed or resumed (verb)."""
    return f"{being_trained(name, pid)}; stop that run before it can be {verb}"


def check_free(name: str, folder: str | Path, error: type[Exception]) -> None:
    """Raise error(busy_message) when a run holds folder: a refusal said before a run reads
    its corpus (seconds, for a big one). The run's own lock is what enforces it."""
    pid = holder(folder)
    if pid is not None:
        raise error(busy_message(name, pid))


def _try_lock(fd: int, shared: bool = False) -> bool:
    if fcntl is not None:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        except OSError as e:
            if e.errno in _UNSUPPORTED:
                return True  # a file system without locks (some network mounts): as before
            raise
    if msvcrt is not None:
        os.lseek(fd, _WIN_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    return True  # no locking on this platform: behave as before


def _unlock(fd: int) -> None:
    """Let go of a lock taken by _try_lock (closing the file would too)."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        elif msvcrt is not None:
            os.lseek(fd, _WIN_OFFSET, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    except OSError:
        pass  # e.g. a file system without locks, where nothing was locked


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class FolderLock:
    """A held lock on a model folder. Release it with release() or by leaving a with block."""

    def __init__(self, folder: Path, fd: int) -> None:
        self.folder = folder
        self.path = folder / LOCK_FILE
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        _unlock(fd)
        os.close(fd)

    def __enter__(self) -> "FolderLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


def acquire(folder: str | Path, create: bool = True) -> FolderLock:
    """Lock folder for writing, creating it (and the lock file) as needed.

    Raises FolderBusy when another run holds it, FileNotFoundError when create is False and
    the folder does not exist, and OSError when the folder cannot be written."""
    folder = Path(folder)
    path = folder / LOCK_FILE
    deadline = time.monotonic() + _PATIENCE
    for _ in range(5):
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        elif not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            continue  # the folder went away between the two calls: try again
        try:
            # A probe (holder()) holds the lock for an instant: a lock still taken after a
            # short wait is a run's.
            while not _try_lock(fd):
                if time.monotonic() > deadline:
                    raise FolderBusy(folder, _read_pid(path))
                time.sleep(0.01)
            # The holder we just outlasted may have deleted the file (a run that saved no
            # model removes its folder); a lock on a deleted file protects nothing, so lock
            # the file that is there now.
            try:
                st, mine = os.stat(path), os.fstat(fd)
                current = (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)
            except FileNotFoundError:
                current = False
            if current:
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, f"{os.getpid()}\n".encode("ascii"))
                return FolderLock(folder, fd)
            _unlock(fd)
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    raise FolderBusy(folder, None)


def holder(folder: str | Path) -> int | None:
    """The pid of the process that holds folder's lock (0 when it is held but the pid is
    unknown), or None when no one holds it. Creates nothing."""
    path = Path(folder) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY if fcntl is not None else os.O_RDWR)
    except OSError:
        return None  # no lock file: nothing has locked this folder
    try:
        # Shared, so that probes (listing models, say) never make each other look busy.
        if _try_lock(fd, shared=True):
            _unlock(fd)
            return None
        return _read_pid(path) or 0
    finally:
        os.close(fd)
