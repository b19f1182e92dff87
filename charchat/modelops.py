"""Deleting and renaming a saved model together with what refers to it by name.

The model's folder is the store's (charchat.store); the remembered and default model are the
preferences' (charchat.preferences); the app's saved conversations name their model
(charchat.conversations). The CLI and the app both call these, so that no front end can move
a folder and leave the rest pointing at the old name.
"""

from __future__ import annotations

from pathlib import Path

from . import conversations, preferences, store


def delete(name: str) -> Path:
    """Delete model `name`; returns its folder. It is no longer the remembered or default
    model. Its saved conversations are kept (they are the user's text). Raises StoreError."""
    path = store.remove_model(name)
    preferences.forget_model(name)
    return path


def rename(old: str, new: str) -> Path:
    """Rename model `old` to `new`; returns the new folder. The preferences and the saved
    conversations follow it. Raises StoreError."""
    path = store.rename_model(old, new)
    preferences.rename_model(old, new)
    conversations.rename_model(old, new)
    return path
