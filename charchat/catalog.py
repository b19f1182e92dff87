"""Corpora you can train on without bringing your own: the ones bundled in the source tree, and
well-known public-domain texts downloaded on request from a pinned address.

A download is checked against a pinned SHA-256 before it is kept: it is streamed to a temporary
file beside the destination, hashed, and renamed into place only if the hash matches. A mismatch
(a changed or tampered file, a proxy's error page) leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import download, store
from .download import verified


class CatalogError(Exception):
    """A corpus that cannot be listed or fetched. The message is one line."""


@dataclass(frozen=True)
class Download:
    name: str
    url: str
    sha256: str
    size: int
    filename: str
    description: str


DOWNLOADS: dict[str, Download] = {
    d.name: d
    for d in [
        Download(
            name="tinyshakespeare",
            # The text nanoGPT's shakespeare_char and char-rnn train on.
            url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            size=1_115_394,
            filename="tinyshakespeare.txt",
            description="40,000 lines of Shakespeare's plays (public domain), 1.1 MB",
        ),
    ]
}


def corpora_dir() -> Path:
    """Where downloaded corpora are kept."""
    return store.home() / "corpora"


def bundled_dir() -> Path | None:
    """The source tree's corpora/ folder, if charchat runs from a checkout."""
    d = Path(__file__).resolve().parent.parent / "corpora"
    return d if d.is_dir() else None


@dataclass
class CorpusEntry:
    name: str
    kind: str  # bundled or download
    description: str
    path: Path | None  # where it is on disk, if it is there


def list_corpora(downloads: bool = True) -> list[CorpusEntry]:
    out: list[CorpusEntry] = []
    b = bundled_dir()
    if b is not None:
        prose = b / "prose.txt"
        if prose.exists():
            out.append(CorpusEntry("prose", "bundled", "original essays and stories (prose)", prose))
        dialogue = b / "dialogue.jsonl"
        out.append(CorpusEntry(
            "dialogue", "bundled",
            "generated chat corpus (run: python corpora/make_dialogue.py)" if not dialogue.exists()
            else "generated chat corpus (dialogue)",
            dialogue if dialogue.exists() else None,
        ))
    for d in DOWNLOADS.values() if downloads else ():
        path = corpora_dir() / d.filename
        # Listed as there only once verified: a cut-short or altered copy is not the corpus.
        out.append(CorpusEntry(d.name, "download", d.description,
                               path if verified(path, d.size, d.sha256) else None))
    return out


def fetch(
    name: str,
    url: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download corpus `name` (from its pinned URL, or `url`, a mirror) and check its SHA-256.

    Returns the path of the verified file. An existing verified copy is returned as it is.
    """
    d = DOWNLOADS.get(name)
    if d is None:
        # Only the bundled entries: list_corpora would also hash every downloaded corpus.
        bundled = {e.name: e.path for e in list_corpora(downloads=False)}
        if bundled.get(name) is not None:
            raise CatalogError(f"{name!r} comes with charchat, nothing to download: "
                               f"{bundled[name]}")
        known = ", ".join(sorted(DOWNLOADS))
        raise CatalogError(f"unknown corpus {name!r} (downloadable: {known})")
    dest = corpora_dir() / d.filename
    if verified(dest, d.size, d.sha256):
        return dest
    try:
        return download.fetch(url or d.url, dest, d.size, d.sha256, f"corpus {name!r}",
                              progress, timeout)
    except download.DownloadError as e:
        raise CatalogError(str(e)) from None
