"""Corpora you can train on without bringing your own: the ones bundled in the source tree, and
well-known public-domain texts downloaded on request from a pinned address.

A download is checked against a pinned SHA-256 before it is kept: it is streamed to a temporary
file beside the destination, hashed, and renamed into place only if the hash matches. A mismatch
(a changed or tampered file, a proxy's error page) leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import store


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
                               path if _verified(d, path) else None))
    return out


def _verified(d: Download, path: Path) -> bool:
    """Whether path holds download d, byte for byte (the size first: it costs no read)."""
    return path.is_file() and path.stat().st_size == d.size and _sha256(path) == d.sha256


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
    if _verified(d, dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    src = url or d.url
    # Not mkstemp, which makes the file private: a corpus is an ordinary file, so its mode
    # follows the umask (applied by the kernel: reading the umask would mean setting it).
    tmp = str(dest.parent / f".{d.filename}.{secrets.token_hex(6)}.part")
    # The size is known: a disk without room for it is told before anything is written.
    try:
        store.check_free_space(dest.parent, d.size, f"corpus {name!r}")
    except store.DiskFull as e:
        raise CatalogError(str(e)) from None
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    h = hashlib.sha256()
    done = 0
    try:
        try:
            with urllib.request.urlopen(src, timeout=timeout) as r:
                while chunk := r.read(1 << 16):
                    try:
                        store.write_all(fd, chunk)
                    except OSError as e:
                        raise _write_error(e, dest.parent, name) from None
                    h.update(chunk)
                    done += len(chunk)
                    if done > d.size * 2:
                        raise CatalogError(f"{src}: download is far larger than expected")
                    if progress:
                        progress(done, d.size)
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            raise CatalogError(f"{src}: download failed ({reason})") from None
        try:
            os.fsync(fd)
        except OSError as e:
            raise _write_error(e, dest.parent, name) from None
        os.close(fd)
        fd = -1  # closed before the rename (Windows cannot rename an open file)
        got = h.hexdigest()
        if done < d.size:
            raise CatalogError(f"{src}: incomplete download ({done:,} of {d.size:,} bytes; the "
                               "connection may have dropped): try again")
        if got != d.sha256:
            raise CatalogError(
                f"{src}: SHA-256 mismatch (expected {d.sha256[:16]}..., got {got[:16]}...); "
                "refusing the file"
            )
        os.replace(tmp, dest)
        for part in dest.parent.glob(f".{d.filename}.*.part"):
            # Left by a killed download: untouched for an hour (one still running writes on).
            try:
                if time.time() - part.stat().st_mtime > 3600:
                    part.unlink()
            except OSError:
                pass
    finally:
        # A failed download is not kept to resume (a mirror need not serve byte ranges): its
        # .part goes, a full disk's included.
        if fd >= 0:
            os.close(fd)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def _write_error(e: OSError, folder: Path, name: str) -> CatalogError:
    """A download that could not be written, in one line naming the folder."""
    if store.is_no_space(e):
        return CatalogError(str(store.no_space(folder, f"corpus {name!r}")))
    return CatalogError(f"{folder}: cannot write corpus {name!r} ({e.strerror or e})")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
