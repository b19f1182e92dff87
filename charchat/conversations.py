"""Saved conversations, one JSON file each in ``<home>/conversations/``.

A conversation is saved after each message and each reply (finished or stopped), written
atomically, so a crash never loses more than the reply being written and never leaves a
half-written file. The app restores the newest conversation of the model it opens.

    {"id": "20250101-120000-3f2a", "model": "prose", "kind": "prose",
     "created": 1735732800.0, "updated": 1735732860.0,
     "messages": [{"role": "user", "content": "Once", "ended": ""},
                  {"role": "assistant", "content": " upon a time", "ended": "stop"}]}

A reply written by another model than the conversation's (it goes on with another model once
its own is deleted) names it: {"role": "assistant", ..., "model": "prose-old"}.

Importing this module does not import torch.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import store

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$")
ROLES = ("user", "assistant")


def conversations_dir() -> Path:
    return store.home() / "conversations"


@dataclass
class Conversation:
    id: str
    model: str
    messages: list[dict] = field(default_factory=list)  # {"role", "content", "ended"[, "model"]}
    kind: str = ""
    created: float = 0.0
    updated: float = 0.0

    @property
    def title(self) -> str:
        """The first user message, on one line, shortened."""
        for m in self.messages:
            if m["role"] == "user" and m["content"].strip():
                text = " ".join(m["content"].split())
                return text if len(text) <= 60 else text[:59] + "…"
        return "(empty)"

    def to_dict(self) -> dict:
        return {"id": self.id, "model": self.model, "kind": self.kind, "created": self.created,
                "updated": self.updated, "messages": self.messages}


def new(model: str, kind: str = "") -> Conversation:
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return Conversation(f"{stamp}-{secrets.token_hex(3)}", model, [], kind, now, now)


def clean_messages(items) -> list[dict]:
    """Only well-formed messages: role user or assistant, text content (and, for a reply, the
    model that wrote it when it is not the conversation's)."""
    out = []
    for m in items if isinstance(items, list) else []:
        if isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str):
            out.append({"role": m["role"], "content": m["content"], "ended": str(m.get("ended") or "")})
            model = m.get("model")
            if m["role"] == "assistant" and isinstance(model, str) and model:
                out[-1]["model"] = model
    return out


def hand_over(conv: Conversation, model: str) -> None:
    """The conversation goes on with another model: its replies so far keep the name of the
    model that wrote them."""
    if model == conv.model:
        return
    for m in conv.messages:
        if m.get("role") == "assistant" and not m.get("model"):
            m["model"] = conv.model
    conv.model = model


def path_for(conv_id: str) -> Path:
    if not ID_RE.match(conv_id or ""):
        raise ValueError(f"invalid conversation id {conv_id!r}")
    return conversations_dir() / f"{conv_id}.json"


def save(conv: Conversation, moved_aside: list[Path] | None = None) -> Path:
    """Write the conversation atomically (an empty one is not written). A damaged file in its
    place (one that cannot be read as a conversation) is not written over: it is moved aside
    as NAME.json.damaged first, and its new path added to `moved_aside` if given."""
    path = path_for(conv.id)
    conv.messages = clean_messages(conv.messages)
    if not conv.messages:
        return path
    conv.updated = time.time()
    if _damaged(path):
        moved = store.move_aside(path)
        if moved_aside is not None:
            moved_aside.append(moved)
    store.atomic_write_json(path, conv.to_dict())
    return path


class _DamagedFile(Exception):
    pass


def _damaged(path: Path) -> bool:
    """Whether the file exists and cannot be read as a conversation."""
    try:
        _parse(path)
    except FileNotFoundError:
        return False
    except (_DamagedFile, OSError):
        return True
    return False


def _read(path: Path) -> Conversation | None:
    try:
        return _parse(path)
    except (_DamagedFile, OSError):
        return None


def _parse(path: Path) -> Conversation:
    """The conversation in the file; OSError if it cannot be read, _DamagedFile if it is not a
    conversation."""
    try:
        d = json.loads(path.read_bytes().decode("utf-8"))
    except ValueError:
        raise _DamagedFile(path) from None
    if not isinstance(d, dict) or not isinstance(d.get("model"), str):
        raise _DamagedFile(path)
    conv_id = path.stem
    try:
        created = float(d.get("created") or 0.0)
        updated = float(d.get("updated") or 0.0)
    except (TypeError, ValueError):
        created = updated = 0.0
    return Conversation(conv_id, d["model"], clean_messages(d.get("messages")),
                        str(d.get("kind") or ""), created, updated)


def load(conv_id: str) -> Conversation | None:
    """The saved conversation, or None if it is missing or unreadable."""
    try:
        return _read(path_for(conv_id))
    except ValueError:
        return None


def _files_newest_first() -> list[Path]:
    root = conversations_dir()
    try:
        entries = [(p.stat().st_mtime, p.name, p) for p in root.iterdir()
                   if p.suffix == ".json" and not p.name.startswith(".")]
    except OSError:
        return []
    entries.sort(reverse=True)
    return [p for _, _, p in entries]


def list_conversations(model: str | None = None, limit: int | None = None,
                       damaged: list[Path] | None = None) -> list[Conversation]:
    """Saved conversations, newest first (those of one model, if given). Unreadable files are
    left out, and left in place; given a list as `damaged`, their paths are added to it."""
    out = []
    for p in _files_newest_first():
        try:
            conv = _parse(p)
        except FileNotFoundError:
            continue  # deleted meanwhile
        except (_DamagedFile, OSError):
            if damaged is not None:
                damaged.append(p)
            continue
        if not conv.messages or (model is not None and conv.model != model):
            continue
        out.append(conv)
        if limit is not None and len(out) >= limit:
            break
    return out


def latest(model: str | None = None, damaged: list[Path] | None = None) -> Conversation | None:
    """The newest saved conversation (of that model, if given), or None. Unreadable files newer
    than it are passed over; given a list as `damaged`, their paths are added to it."""
    found = list_conversations(model, limit=1, damaged=damaged)
    return found[0] if found else None


def delete(conv_id: str) -> None:
    """Delete a saved conversation (gone already is fine). Raises OSError if it cannot be."""
    try:
        os.unlink(path_for(conv_id))
    except FileNotFoundError:
        pass


def rename_model(old: str, new_name: str) -> int:
    """Point the conversations of a renamed model at its new name; returns how many."""
    n = 0
    for p in _files_newest_first():
        conv = _read(p)
        by_old = [m for m in conv.messages if m.get("model") == old] if conv else []
        if conv is not None and (conv.model == old or by_old):
            conv.model = new_name if conv.model == old else conv.model
            for m in by_old:
                m["model"] = new_name
            try:
                store.atomic_write_json(p, conv.to_dict())
                if conv.updated > 0:  # keep the order (newest first goes by file time)
                    os.utime(p, (conv.updated, conv.updated))
                n += 1
            except OSError:
                pass
    return n
