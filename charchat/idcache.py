"""The id cache: a corpus's token ids in an .npy file, and the encoding that fills it.

- ``IdFile`` writes ids front to back with plain writes, never through a writable map (whose
  dirty pages count as the process's own memory: mapping the whole output held ~2x the text),
  with a fixed-size header written last, when the count is known.
- ``safe_cut`` finds where text can be cut without changing its BPE ids, so a large text is
  encoded in ~1 MiB pieces; ``encode_tasks`` encodes the pieces in order, in worker processes
  for a large corpus.
- ``text_size`` measures the validation split's characters and bytes: the scale of bits per
  character and per byte.
- ``IdReader`` reads a split of the cached ids with pread, for training: a process then holds
  only the windows it reads (through the map, a page fault brought ~0.9 MB around each window
  into the process's resident memory on Linux, so a long run's RSS grew toward the file's size).
"""

from __future__ import annotations

import codecs
import mmap
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np

from . import store
from .tokenizer import CharTokenizer
from .tokenizers import Tokenizer

if TYPE_CHECKING:
    from .bpe import BPETokenizer


def id_dtype(vocab_size: int):
    """uint16 where every id fits, uint32 above."""
    return np.uint16 if vocab_size <= 65536 else np.uint32


class IdFile:
    """An .npy file of ids, written front to back with plain writes.

    Written chunk by chunk and never mapped while it is written, so memory stays bounded by the
    chunk whatever the corpus size (dirty pages of a writable map count as the process's own
    memory: mapping the whole output held ~2x the text in memory). The header has a fixed size
    and is written last, when the number of ids is known. With a size known beforehand (the
    character path), the disk's room is checked and the blocks are allocated first."""

    HEADER = 128

    def __init__(self, path: Path, dtype, expected: int | None = None) -> None:
        self.path, self.dtype, self.n = path, np.dtype(dtype), 0
        self.folder = path.parent
        if expected is not None:
            size = self.HEADER + expected * self.dtype.itemsize
            store.check_free_space(self.folder, size, f"the corpus cache ({expected:,} ids)")
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC |
                              getattr(os, "O_BINARY", 0), 0o666)
        except OSError as e:
            raise self._error(e) from None
        try:
            if expected is not None:
                store.allocate(self.fd, self.HEADER + expected * self.dtype.itemsize)
            os.lseek(self.fd, 0, os.SEEK_SET)
            store.write_all(self.fd, self._header(0))
        except OSError as e:
            self.abort()
            raise self._error(e) from None

    def _error(self, e: OSError) -> OSError:
        return store.no_space(self.folder, "the corpus cache") if store.is_no_space(e) else e

    def _header(self, n: int) -> bytes:
        d = f"{{'descr': '{np.lib.format.dtype_to_descr(self.dtype)}', 'fortran_order': False, "\
            f"'shape': ({n},), }}"
        body = d.ljust(self.HEADER - 10 - 1) + "\n"
        return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body.encode("latin1")

    def write(self, ids) -> None:
        a = np.ascontiguousarray(ids, dtype=self.dtype)
        try:
            store.write_all(self.fd, a)
        except OSError as e:
            raise self._error(e) from None
        self.n += len(a)

    def finish(self) -> None:
        try:
            os.ftruncate(self.fd, self.HEADER + self.n * self.dtype.itemsize)
            os.lseek(self.fd, 0, os.SEEK_SET)
            store.write_all(self.fd, self._header(self.n))
            os.fsync(self.fd)
        except OSError as e:
            raise self._error(e) from None
        finally:
            os.close(self.fd)
            self.fd = -1

    def abort(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.path.unlink(missing_ok=True)


def read_ids(path: Path, start: int, stop: int, chunk: int = 1 << 22) -> Iterator[np.ndarray]:
    """ids[start:stop] of an .npy file, a chunk at a time, read (not mapped)."""
    a = np.load(path, mmap_mode="r")
    offset, dtype = a.offset, a.dtype
    del a
    with open(path, "rb") as f:
        for s in range(start, stop, chunk):
            n = min(chunk, stop - s)
            f.seek(offset + s * dtype.itemsize)
            yield np.fromfile(f, dtype=dtype, count=n)


def text_size(tokenizer: Tokenizer, path: Path, start: int, stop: int) -> tuple[int, int]:
    """(characters, UTF-8 bytes) of the ids in [start, stop) of the file; a special token counts
    one of each. The scale of bits per character and per byte."""
    chars = nbytes = 0
    if isinstance(tokenizer, CharTokenizer):
        lengths = np.asarray(tokenizer.utf8_lengths(), dtype=np.int64)
        for ids in read_ids(path, start, stop):
            chars += len(ids)
            nbytes += int(lengths[ids].sum())
        return chars, nbytes
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    first_special = tokenizer.n_ranks
    for ids in read_ids(path, start, stop):
        special = ids >= first_special
        n_special = int(special.sum())
        data = tokenizer.enc.decode_bytes(ids[~special].tolist())
        chars += n_special + len(decoder.decode(data))
        nbytes += n_special + len(data)
    chars += len(decoder.decode(b"", final=True))
    return chars, nbytes


_CUT = re.compile(r"\S\n(?=\w)|\w (?=\w)")


def safe_cut(text: str, near: int) -> int:
    """A position at or after `near` where text can be cut without changing its BPE: after a
    newline between a non-space and a letter, or before a space between two letters. Both
    split patterns (GPT-2's, GPT-4's) end a piece there, so encoding the two parts gives the
    ids of the whole. len(text) if there is none."""
    for m in _CUT.finditer(text, max(0, near - 1)):
        if m.group().endswith("\n"):
            i = m.end()  # after the newline, before the letter
            if text[i].isalpha():
                return i
        else:
            i = m.start() + 1  # before the space
            if text[i - 1].isalpha() and text[i + 1].isalpha():
                return i
    return len(text)


# Above this much text, BPE encoding runs in worker processes (one per core): tiktoken keeps
# the GIL for part of its work, so threads scaled to ~1.3x on 2 cores where processes reached
# ~1.9x. Below it, starting the workers (~0.5 s: each imports tiktoken and reads the ranks)
# costs more than it saves, and the calling thread encodes.
PROCESS_BYTES = 24 << 20

_WORKER_TOKENIZER = None


def _start_worker(record: str) -> None:
    global _WORKER_TOKENIZER
    from .tokenizers import from_json

    _WORKER_TOKENIZER = from_json(record)


def _encode_task(task, tokenizer=None) -> np.ndarray:
    """One piece of work: ("text", str) or ("turns", [conversation, ...]) to ids."""
    tok = tokenizer or _WORKER_TOKENIZER
    kind, item = task
    if kind == "text":
        ids = tok.enc.encode_to_numpy(item, disallowed_special=())
    else:
        out: list[int] = []
        for turns in item:
            for role, content in turns:
                out += tok.encode_turn(role, content).ids
        ids = np.asarray(out, dtype=np.int64)
    return ids.astype(id_dtype(tok.vocab_size), copy=False)


def encode_tasks(tasks: Iterable[tuple], tokenizer: "BPETokenizer", out: IdFile,
                 processes: bool) -> None:
    """Encode ("text", str) and ("turns", [conversation, ...]) tasks into out, in order. With
    processes (and more than one core), one worker process per core; memory stays bounded by a
    few tasks per worker whatever the corpus size."""
    workers = os.cpu_count() or 1
    if not processes or workers == 1:
        for task in tasks:
            out.write(_encode_task(task, tokenizer))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the caller may have threads (the app's workers, torch's), and a fork
    # copies their locks in whatever state they are.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_start_worker,
                             initargs=(tokenizer.to_json(inline_ranks=True),)) as pool:
        pending: list = []  # futures in corpus order
        for task in tasks:
            pending.append(pool.submit(_encode_task, task))
            while len(pending) > 2 * workers:
                out.write(pending.pop(0).result())
        for fut in pending:
            out.write(fut.result())


class IdReader:
    """ids[start:stop] of a memmapped .npy id file, read with pread: what training indexes.

    Takes what the trainer and evaluation take of an id array: len(), .dtype, a slice, and
    windows as a 2-D index of back-to-back positions (starts[:, None] + arange(width)). Any
    other index reads through the map."""

    def __init__(self, ids: np.memmap, start: int = 0, stop: int | None = None) -> None:
        self.ids = ids
        self.start = start
        self.stop = len(ids) if stop is None else stop
        self.dtype = ids.dtype
        self._item = ids.dtype.itemsize
        self._base = int(ids.offset) + start * self._item
        self._fd: int | None = os.open(ids.filename, os.O_RDONLY | getattr(os, "O_BINARY", 0))

    @staticmethod
    def usable(ids) -> bool:
        """Whether ids is a whole 1-D .npy map (not a slice of one) that pread can read."""
        # (a slice's base is the memmap it came from; only the whole array's is the map,
        # and only there is element 0 at the file's `offset`)
        return (isinstance(ids, np.memmap) and isinstance(ids.base, mmap.mmap)
                and bool(getattr(ids, "filename", None)) and ids.ndim == 1
                and hasattr(os, "pread"))

    def __len__(self) -> int:
        return self.stop - self.start

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.close()

    def _read(self, first: int, n: int) -> np.ndarray:
        data = os.pread(self._fd, n * self._item, self._base + first * self._item)
        if len(data) != n * self._item:
            raise OSError(f"{self.ids.filename}: shorter than its header says")
        return np.frombuffer(data, dtype=self.dtype)

    def __getitem__(self, key):
        if isinstance(key, slice) and key.step in (None, 1):
            first, last, _ = key.indices(len(self))
            return self._read(first, max(0, last - first)).copy()
        index = np.asarray(key)
        if (index.ndim == 2 and index.shape[1] > 0 and len(index)
                and (np.diff(index, axis=1) == 1).all() and index.min() >= 0
                and index.max() < len(self)):
            width = index.shape[1]
            out = np.empty(index.shape, dtype=self.dtype)
            for row, first in enumerate(index[:, 0].tolist()):
                out[row] = self._read(first, width)
            return out
        return np.asarray(self.ids[self.start:self.stop][key])

