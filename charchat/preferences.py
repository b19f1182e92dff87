"""Small things remembered between runs: the model last used, sampling settings per model, the
app's theme.

They live in ``<home>/state.json`` (one JSON object, written atomically). Remembering is a
convenience: a missing, unreadable or damaged file reads as "nothing remembered", and a failed
write is ignored, so no command ever fails over it. A damaged file (not a JSON object) is never
written over: the first write moves it aside as state.json.damaged and reports that with one
line (see `reporter`; the app shows it as a notification, and checks the file at start-up).
Importing this module does not import torch.

    {"last_model": "prose", "default_model": "prose",
     "sampling": {"prose": {"temperature": 0.7, "top_k": null, "top_p": 0.95, "max_new_chars": 400}},
     "theme": "textual-dark"}
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from . import store
from .config import SEED_RANGE

STATE_FILE = "state.json"

# Sampling settings kept per model (the SamplingSettings fields a user sets in the app).
SAMPLING_KEYS = ("temperature", "top_k", "top_p", "max_new_chars", "seed")
SAMPLING_DEFAULTS = {"temperature": 0.8, "top_k": None, "top_p": 0.95, "max_new_chars": 400,
                     "seed": None}

_lock = threading.Lock()  # the app writes from its UI thread and from workers


def state_file() -> Path:
    return store.home() / STATE_FILE


def print_note(text: str) -> None:
    print(f"charchat: {text}", file=sys.stderr)


# Where a one-line note about a damaged state file goes (the app sets its own, a notification).
reporter: Callable[[str], None] = print_note


class _Damaged(Exception):
    """state.json exists but holds no JSON object."""


class _Unreadable(Exception):
    """state.json exists but cannot be read (permissions, say): leave it alone."""


def _load() -> dict:
    """The state, {} if there is no file; _Damaged or _Unreadable otherwise."""
    try:
        text = state_file().read_bytes().decode("utf-8")
    except FileNotFoundError:
        return {}
    except OSError:
        raise _Unreadable from None
    except ValueError:  # not UTF-8
        raise _Damaged from None
    try:
        state = json.loads(text)
    except ValueError:
        raise _Damaged from None
    if not isinstance(state, dict):
        raise _Damaged
    return state


def read_state() -> dict:
    try:
        return _load()
    except (_Damaged, _Unreadable):
        return {}


def _move_aside() -> str:
    """Move the damaged state file aside; the one-line note that says so."""
    path = state_file()
    try:
        moved = store.move_aside(path)
    except OSError as e:
        return f"{path} could not be read and could not be moved aside ({e}); it is left as is"
    return (f"{path} could not be read (damaged): moved aside as {moved.name}; "
            "starting with default settings")


def check_state() -> str | None:
    """If state.json is damaged, move it aside now (before anything writes over it) and return
    a one-line note saying so; None if it is fine or missing."""
    with _lock:
        try:
            _load()
        except _Damaged:
            return _move_aside()
        except _Unreadable:
            return f"{state_file()} could not be read; settings will not be remembered"
        return None


@contextmanager
def _file_lock():
    """Hold an exclusive lock on <home>/.state.json.lock: two apps (or an app and a command) on
    one data folder read, change and write the state one after the other, so neither writes
    back a state read before the other's change (which would lose it). Where no lock can be
    taken (no fcntl, a read-only folder), goes on without one."""
    try:
        import fcntl
    except ImportError:  # Windows: the write is still atomic, only a change may be lost
        yield
        return
    fd = None
    try:
        path = state_file().with_name("." + STATE_FILE + ".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:
        if fd is not None:
            os.close(fd)
        fd = None
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


def _update(change: Callable[[dict], None]) -> None:
    note = None
    with _lock, _file_lock():
        try:
            try:
                state = _load()
            except _Damaged:
                note = _move_aside()  # never written over: kept for the user to look at
                if state_file().exists():
                    return  # could not be moved aside: leave it, remember nothing
                state = {}
            change(state)
            store.atomic_write_json(state_file(), state)
        except _Unreadable:
            note = f"could not save your settings: {state_file()} cannot be read"
        except OSError as e:
            # Remembering is a convenience: never fail over it, but say that it was not kept.
            why = ("no space left on the disk" if store.is_no_space(e)
                   else (e.strerror or e.__class__.__name__).lower())
            note = f"could not save your settings in {state_file()}: {why}"
    if note:
        reporter(note)


# ---------------------------------------------------------------------------------------------
# The model last used, and the one pinned as default: `charchat`, `charchat chat` and
# `charchat sample` open the pinned one, else the last used, when none is named.


def last_model() -> str | None:
    name = read_state().get("last_model")
    return name if isinstance(name, str) and name else None


def remember_model(name: str, folder: str | Path | None = None) -> None:
    """Remember a model by name. Given its folder, only if the name finds that folder again: a
    model opened by path (outside the models folder) would be a missing or wrong one later."""
    if folder is not None:
        try:
            if store.resolve(name)[1].resolve() != Path(folder).resolve():
                return
        except (store.StoreError, OSError):
            return
    _update(lambda s: s.__setitem__("last_model", name))


def default_model() -> str | None:
    """The model pinned as the default for chat (models screen), if any."""
    name = read_state().get("default_model")
    return name if isinstance(name, str) and name else None


def set_default_model(name: str | None) -> None:
    """Pin a model as the default for chat (None unpins)."""
    def change(state: dict) -> None:
        if name:
            state["default_model"] = name
        else:
            state.pop("default_model", None)

    _update(change)


# ---------------------------------------------------------------------------------------------
# Sampling settings per model


def check_sampling(values: dict) -> dict:
    """A clean copy of the sampling settings in values (only SAMPLING_KEYS), or ValueError with
    a one-line message. The bounds are those of charchat.config.SamplingSettings, checked
    here without importing torch."""
    out = {}
    for key in SAMPLING_KEYS:
        if key not in values:
            continue
        v = values[key]
        if key == "temperature":
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (
                math.isfinite(v) and 0 <= v <= 5
            ):
                raise ValueError(f"temperature must be between 0 and 5, got {v!r}")
            v = float(v)
        elif key == "top_k":
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise ValueError(f"top-k must be a whole number >= 0 (0 = off), got {v!r}")
            v = v or None
        elif key == "top_p":
            if v is not None and (
                isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1
            ):
                raise ValueError(f"top-p must be in (0, 1] (empty = off), got {v!r}")
            v = None if v is None else float(v)
        elif key == "max_new_chars":
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 100_000:
                raise ValueError(f"max reply length must be a whole number from 1 to 100000, got {v!r}")
        elif key == "seed":
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)
                                  or v not in SEED_RANGE):  # a torch generator's range
                raise ValueError(f"seed must be a whole number from -2**63 to 2**64 - 1, or "
                                 f"empty; got {v!r}")
        out[key] = v
    return out


def model_sampling(name: str) -> dict:
    """The settings a saved model's folder recommends (meta.json "sampling"), e.g. greedy
    replies for the bundled default, whose questions have one right answer. {} if none.
    Callers that loaded a model pass loaded.meta["sampling"] instead (as `recommended`), which
    also covers models opened from a folder path."""
    try:
        _, folder = store.resolve(name)
    except store.StoreError:
        return {}
    entry = store.read_meta(folder).get("sampling")
    return entry if isinstance(entry, dict) else {}


def _layered(*layers) -> dict:
    out = dict(SAMPLING_DEFAULTS)
    for layer in layers:
        if not isinstance(layer, dict):
            continue
        for key in SAMPLING_KEYS:
            if key in layer:
                try:
                    out.update(check_sampling({key: layer[key]}))
                except ValueError:
                    pass  # a damaged entry is ignored, not fatal
    return out


def base_sampling(name: str, recommended: dict | None = None) -> dict:
    """A model's settings before the user changes any: the defaults under its recommendation."""
    return _layered(model_sampling(name) if recommended is None else recommended)


def _saved(name: str) -> dict:
    saved = read_state().get("sampling", {})
    entry = saved.get(name) if isinstance(saved, dict) else None
    return entry if isinstance(entry, dict) else {}


def sampling_for(name: str, recommended: dict | None = None) -> dict:
    """A model's sampling settings: the defaults, under the model's own recommendation
    (`recommended`, else read from its folder), under what the user saved for it."""
    return _layered(model_sampling(name) if recommended is None else recommended, _saved(name))


def save_sampling(name: str, values: dict, recommended: dict | None = None) -> dict:
    """Check and remember a model's sampling settings; returns the settings now in force.

    Only what differs from the model's own settings is stored, so a rebuilt model's new
    recommendation still applies to everything the user never changed."""
    clean = {**sampling_for(name, recommended), **check_sampling(values)}
    base = base_sampling(name, recommended)
    changed = {k: v for k, v in clean.items() if v != base.get(k)}

    def change(state: dict) -> None:
        sampling = state.get("sampling")
        if not isinstance(sampling, dict):
            sampling = state["sampling"] = {}
        sampling[name] = changed

    _update(change)
    return clean


# ---------------------------------------------------------------------------------------------
# When models are renamed or deleted


def rename_model(old: str, new: str) -> None:
    def change(state: dict) -> None:
        for key in ("last_model", "default_model"):
            if state.get(key) == old:
                state[key] = new
        sampling = state.get("sampling")
        if isinstance(sampling, dict) and old in sampling:
            sampling[new] = sampling.pop(old)

    _update(change)


def forget_model(name: str) -> None:
    def change(state: dict) -> None:
        for key in ("last_model", "default_model"):
            if state.get(key) == name:
                state.pop(key)
        sampling = state.get("sampling")
        if isinstance(sampling, dict):
            sampling.pop(name, None)

    _update(change)


# ---------------------------------------------------------------------------------------------
# The app's theme


def theme() -> str | None:
    t = read_state().get("theme")
    return t if isinstance(t, str) and t else None


def remember_theme(name: str) -> None:
    _update(lambda s: s.__setitem__("theme", name))
