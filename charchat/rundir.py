"""The folder a training run writes: one object owns its file names, its lock, its metrics log
and its clean-up (the layout is described in charchat.store).

Only the run holding the folder's lock writes here. Every file but metrics.jsonl is written
atomically (charchat.store); the log is appended one line per event, written through at once.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from . import locking, store, tokenizers
from .bpe import RANKS_FILE
from .config import CorpusSummary, TrainEvent, TrainingError

CONFIG = "config.json"
TOKENIZER = "tokenizer.json"
TRAIN_ARGS = "train_args.json"
CORPUS = "corpus.json"
METRICS = "metrics.jsonl"
# What a run writes besides the weights: all of it goes if the run saves no model.
RUN_FILES = (CONFIG, TOKENIZER, RANKS_FILE, TRAIN_ARGS, CORPUS, METRICS, store.STATE)


class RunFolder:
    """models/NAME while a run trains it."""

    def __init__(self, folder: Path, name: str) -> None:
        self.path = Path(folder)
        self.name = name
        self._lock: locking.FolderLock | None = None
        self._fresh = False
        self._metrics = None

    @property
    def weights(self) -> Path:
        return self.path / store.WEIGHTS

    @property
    def state(self) -> Path:
        return self.path / store.STATE

    def has_model(self) -> bool:
        return self.weights.exists()

    # -- holding it ----------------------------------------------------------------------------
    def acquire(self, resume: bool) -> None:
        """Lock the folder for this run (TrainingError if another run holds it). A new run's
        folder (or one a resume created) is removed again by release() if it saves no model;
        decided under the lock, since another run may have made the folder and removed it."""
        existed = self.path.exists()
        try:
            self._lock = locking.acquire(self.path)
        except locking.FolderBusy as e:
            raise TrainingError(locking.busy_message(self.name, e.pid)) from None
        except OSError as e:
            if not store.is_no_space(e):
                raise
            if not existed:  # the folder this run made goes again
                (self.path / locking.LOCK_FILE).unlink(missing_ok=True)
                try:
                    self.path.rmdir()
                except OSError:
                    pass
            raise store.no_space(self.path, locking.LOCK_FILE) from None
        self._fresh = not existed or (not resume and not self.has_model())
        self._clear_killed_writes()

    def _clear_killed_writes(self) -> None:
        """Remove the temporary files of atomic writes that a killed run left behind (a state
        file's is as large as the model and its optimizer). Only the lock's holder writes
        here, so under the lock every one of them is a dead run's."""
        for f in (*RUN_FILES, store.WEIGHTS, store.META):
            for tmp in self.path.glob(f".{f}.*.tmp"):
                try:
                    tmp.unlink()
                except OSError:
                    pass

    def release(self) -> None:
        try:
            self.close_metrics()
            if self._fresh:
                self._discard_if_no_model()
        finally:
            if self._lock is not None:
                self._lock.release()

    def _discard_if_no_model(self) -> None:
        """A new run that ends (or fails) before saving a model leaves no folder behind: a
        folder without weights is not a model to list, chat with or resume, yet its name
        would be taken."""
        if self.has_model():
            return
        for f in RUN_FILES:
            (self.path / f).unlink(missing_ok=True)
        # The lock file goes too: on POSIX while this run still holds it (see
        # charchat.locking); Windows cannot delete a file that is open, so it lets go first.
        if os.name == "nt" and self._lock is not None:
            self._lock.release()
        try:
            (self.path / locking.LOCK_FILE).unlink(missing_ok=True)
            self.path.rmdir()  # only if nothing else is in it
        except OSError:
            pass

    # -- what it was trained with --------------------------------------------------------------
    def write_setup(self, model_config: dict, tokenizer, config: dict, corpus_paths: list[str],
                    device: str, notes: list[str], corpus: CorpusSummary) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        store.atomic_write_json(self.path / CONFIG, model_config)
        for file, data in tokenizers.folder_files(tokenizer).items():
            store.atomic_write_bytes(self.path / file, data)
        store.atomic_write_json(self.path / TRAIN_ARGS, {
            "config": config, "corpus_paths": [str(p) for p in corpus_paths],
            "device": device, "notes": notes})
        store.atomic_write_json(self.path / CORPUS, corpus.to_dict())

    def recorded_length(self) -> int | None:
        """The corpus length in ids in corpus.json (rewritten only by write_setup)."""
        try:
            d = json.loads((self.path / CORPUS).read_text())
        except (OSError, ValueError):
            return None
        return CorpusSummary.from_dict(d).ids or None

    # -- the log -------------------------------------------------------------------------------
    def open_metrics(self, append: bool, through_step: int | None = None) -> None:
        """A resumed run continues the log; a new one starts it afresh.

        A resumed run goes on from its saved state, which may be older than the end of the log
        (a run killed after logging steps it had not saved yet): given the state's step as
        `through_step`, events after it are dropped first, as the run does those steps again
        and logs them anew, so no step is in the log twice. A torn last line (a kill
        mid-write, or a full disk) is dropped too, and appending always starts on a fresh line."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0)
        path = self.path / METRICS
        if append and path.exists():
            self._trim_metrics(path, through_step)
        cut = append and _ends_mid_line(path)  # (the trim could not rewrite it)
        self._metrics = os.open(path, flags | (0 if append else os.O_TRUNC), 0o666)
        if cut:
            self._write_line("")

    @staticmethod
    def _trim_metrics(path: Path, through_step: int | None) -> None:
        try:
            data = path.read_bytes()
        except OSError:
            return
        lines = data.split(b"\n")
        torn = lines.pop()  # b"" if the file ends with a newline
        keep = []
        for line in lines:
            try:
                step = json.loads(line).get("step")
            except (ValueError, AttributeError):
                step = None  # a damaged line is left as it is (readers skip it)
            if (through_step is not None and isinstance(step, int)
                    and not isinstance(step, bool) and step > through_step):
                continue
            keep.append(line)
        if torn or len(keep) != len(lines):
            store.atomic_write_bytes(path, b"".join(line + b"\n" for line in keep))

    def log(self, event: TrainEvent) -> None:
        """Append one line, written through at once (no buffer holds it back). A full disk
        stops the run with DiskFull naming the folder; the best model is untouched (a partly
        written line is skipped when the log is read)."""
        if self._metrics is not None:
            self._write_line(event.to_json())

    def _write_line(self, text: str) -> None:
        try:
            store.write_all(self._metrics, (text + "\n").encode("utf-8"))
        except OSError as e:
            if store.is_no_space(e):
                raise store.no_space(self.path, METRICS) from None
            raise

    def close_metrics(self) -> None:
        if self._metrics is not None:
            fd, self._metrics = self._metrics, None
            os.close(fd)

    # -- the best model ------------------------------------------------------------------------
    def save_best(self, model, tokenizer, *, step: int, val: float, corpus: CorpusSummary,
                  device: str, bpc: float | None = None) -> None:
        store.save_model(self.path, model, tokenizer,
                         {"step": step, "val_loss": val, "corpus_kind": corpus.kind})
        now = time.time()
        self.describe(params=model.num_params(), best_val_loss=val, best_step=step,
                      best_bpc=bpc, tokenizer=tokenizer.name,
                      corpus=corpus, created=store.read_meta(self.path).get("created", now),
                      updated=now, device=device)

    def describe(self, corpus: CorpusSummary | None = None, **fields) -> None:
        """Update meta.json (what listings show); the corpus is kept as data and as words."""
        if corpus is not None:
            fields.update(corpus=corpus.describe(), corpus_kind=corpus.kind,
                          corpus_summary=corpus.to_dict())
        store.write_meta(self.path, name=self.name, **fields)


def _ends_mid_line(path: Path) -> bool:
    """Whether the file's last byte is not a newline (False for a missing or empty file)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return False
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"
    except OSError:
        return False
