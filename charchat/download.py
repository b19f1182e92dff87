"""Downloading a file pinned by size and SHA-256: corpora (charchat.catalog) and GPT-2's weights.

The file is streamed to a ``.part`` file beside the destination, hashed as it comes, and renamed
into place only when its size and SHA-256 match the pin: a changed or tampered file, or a
proxy's error page, is never kept.

Two ways with a download that does not finish:
- small files (a corpus): each download has a part file of its own, removed on any failure, so
  two downloads at once never share one;
- large files (``resume=True``, GPT-2's 548 MB): the part file has a fixed name and is kept
  when the connection drops; the next run asks the server for the rest (an HTTP Range request)
  and hashes what it already has first. A server that ignores the range sends the whole file
  again, which is written over the part. A part whose hash turns out wrong is removed.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from . import store

CHUNK = 1 << 16


class DownloadError(Exception):
    """A download that failed or was refused. The message is one line."""


def sha256_of(path: Path, progress: Callable[[int, int], None] | None = None) -> str:
    h = hashlib.sha256()
    done = 0
    size = path.stat().st_size
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, size)
    return h.hexdigest()


def verified(path: Path, size: int, sha256: str) -> bool:
    """Whether path holds the pinned file, byte for byte (the size first: it costs no read)."""
    return path.is_file() and path.stat().st_size == size and sha256_of(path) == sha256


def remote_size(url: str, timeout: float = 30.0) -> int:
    """The size the server gives for url (a HEAD request, redirects followed)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"),
                                    timeout=timeout) as r:
            n = r.headers.get("Content-Length")
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise DownloadError(f"{url}: cannot reach it ({getattr(e, 'reason', None) or e})") \
            from None
    if not n or not n.isdigit():
        raise DownloadError(f"{url}: the server does not say the file's size")
    return int(n)


def fetch(url: str, dest: Path, size: int, sha256: str | None, what: str,
          progress: Callable[[int, int], None] | None = None, timeout: float = 30.0,
          resume: bool = False) -> Path:
    """Download url to dest, keeping it only if it has `size` bytes and the SHA-256 `sha256`
    (None: no pin; the caller checks the file's hash, charchat.gpt2import asks the user).
    `what` names the file in messages ("corpus 'tinyshakespeare'"). progress(done, size)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if resume:
        part = dest.parent / f".{dest.name}.part"
    else:
        # Not mkstemp, which makes the file private: a download is an ordinary file, so its
        # mode follows the umask (applied by the kernel).
        part = dest.parent / f".{dest.name}.{secrets.token_hex(6)}.part"
    have = part.stat().st_size if resume and part.exists() else 0
    if have > size:
        part.unlink()
        have = 0
    try:
        store.check_free_space(dest.parent, size - have, what)
    except store.DiskFull as e:
        raise DownloadError(str(e)) from None
    h = hashlib.sha256()
    if have:
        with open(part, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    keep_part = False
    try:
        done, h = _stream(url, part, have, size, h, what, progress, timeout)
        got = h.hexdigest()
        if done < size:
            keep_part = resume
            again = " (run the same command again to go on from there)" if resume else ""
            raise DownloadError(f"{url}: incomplete download ({done:,} of {size:,} bytes; the "
                                f"connection may have dropped): try again{again}")
        if sha256 is not None and got != sha256:
            raise DownloadError(f"{url}: SHA-256 mismatch (expected {sha256[:16]}..., got "
                                f"{got[:16]}...); refusing the file")
        os.replace(part, dest)
    except _Kept as e:  # a connection dropped midway: with resume, what came is kept
        keep_part = resume
        raise DownloadError(str(e) if resume else str(e).split("; run")[0]) from None
    finally:
        if not keep_part and part.exists():
            part.unlink()
    if not resume:
        _clear_killed_parts(dest)
    return dest


def _clear_killed_parts(dest: Path) -> None:
    """Part files of dest left by killed downloads: untouched for an hour (one still running
    writes on)."""
    import time

    for old in dest.parent.glob(f".{dest.name}.*.part"):
        try:
            if time.time() - old.stat().st_mtime > 3600:
                old.unlink()
        except OSError:
            pass


class _Kept(Exception):
    pass


def _stream(url: str, part: Path, have: int, size: int, h, what: str,
            progress: Callable[[int, int], None] | None, timeout: float):
    """Append the rest of url to part (from `have`), hashing it; returns the bytes in part and
    the hash (a new one when the server sent the whole file again)."""
    request = urllib.request.Request(url)
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the range is past the end: start again
            part.unlink()
            raise DownloadError(f"{url}: the server refused to resume; run it again to start "
                                "over") from None
        raise DownloadError(f"{url}: download failed (HTTP {e.code} {e.reason})") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        kept = " (what came so far is kept)" if have else ""
        raise DownloadError(f"{url}: download failed ({getattr(e, 'reason', None) or e})"
                            f"{kept}") from None
    with response:
        if have and response.status != 206:
            # The server sent the whole file: start the part and the hash over.
            have = 0
            h = hashlib.sha256()
        flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_BINARY", 0)
        fd = os.open(part, flags | (os.O_APPEND if have else os.O_TRUNC), 0o666)
        done = have
        try:
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (OSError, ValueError) as e:
                    if done > have:
                        raise _Kept(f"{url}: download failed after {done:,} of {size:,} bytes "
                                    f"({e}); run the same command again to go on") from None
                    raise DownloadError(f"{url}: download failed ({e})") from None
                if not chunk:
                    break
                try:
                    store.write_all(fd, chunk)
                except OSError as e:
                    if store.is_no_space(e):
                        raise DownloadError(str(store.no_space(part.parent, what))) from None
                    raise DownloadError(f"{part.parent}: cannot write {what} "
                                        f"({e.strerror or e})") from None
                h.update(chunk)
                done += len(chunk)
                if done > 2 * size:  # an endless stream; a little over fails its hash below
                    raise DownloadError(f"{url}: download is far larger than expected")
                if progress:
                    progress(done, size)
            os.fsync(fd)
        finally:
            os.close(fd)
    return done, h
