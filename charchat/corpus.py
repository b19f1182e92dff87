"""Reading training text: finding files, checking them, and encoding them to a cached id array.

Files and folders may be mixed; folders are read recursively in name order. Hidden files and
folders (names starting with '.') and binary files found inside folders are skipped with a note;
a binary file named explicitly is an error. Empty files inside folders are skipped with a note;
one named explicitly is an error.

- ``*.jsonl`` files are dialogue: one conversation a line, ``{"messages": [{"role": "user",
  "content": "..."}, ...]}`` with roles user, assistant or system. Each turn is encoded as
  role token, content characters, end-of-turn token.
- Any other text file is prose. Windows line endings are read as plain newlines, and a file
  that does not end with a newline gets one, so files do not run into each other.

Memory stays bounded whatever the corpus size: both passes stream the files in chunks, and the
encoded ids go to a numpy file on disk, read back through a memmap. The cache is keyed by the
files' paths, sizes and modification times and by the vocabulary, so a second run on the same
text starts at once. The last 10% of the ids is the validation split.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

import numpy as np

from . import store
from .config import CorpusError, CorpusSummary  # noqa: F401  (re-exported)
from .tokenizer import ROLE_TOKENS, CharTokenizer
from . import idcache
from .bpe import bpe_size
from .idcache import IdFile, encode_tasks, id_dtype, safe_cut, text_size
from .tokenizers import Tokenizer

if TYPE_CHECKING:
    from .bpe import BPETokenizer

CHUNK_BYTES = 1 << 22  # 4 MiB per read: big enough to be fast, small enough to bound memory
CACHE_FORMAT = 3  # 3: written without a map, with the validation split's text size
VAL_FRACTION = 0.1


@dataclass
class Corpus:
    ids: np.ndarray  # all ids, memmapped
    tokenizer: Tokenizer
    summary: CorpusSummary
    cache_path: Path | None = None
    val_chars: int = 0  # characters of the validation split's text (a special token is one)
    val_bytes: int = 0  # and its UTF-8 bytes

    @property
    def chars_per_token(self) -> float:
        """Of the validation split: loss per token / this = loss per character."""
        n = len(self.ids) - self.split
        return self.val_chars / n if n and self.val_chars else 1.0

    @property
    def bytes_per_token(self) -> float:
        n = len(self.ids) - self.split
        return self.val_bytes / n if n and self.val_bytes else 1.0

    @property
    def split(self) -> int:
        # int(n * 0.9), as nanoGPT's shakespeare_char splits, so validation sets match exactly.
        return int(len(self.ids) * (1 - VAL_FRACTION))

    @property
    def train_ids(self) -> np.ndarray:
        return self.ids[: self.split]

    @property
    def val_ids(self) -> np.ndarray:
        return self.ids[self.split :]

    def check_window(self, block_size: int) -> None:
        """Both splits must hold at least one window of block_size + 1 ids."""
        problem = too_short(len(self.ids), block_size,
                            "character" if self.tokenizer.kind == "char" else "token")
        if problem:
            files = self.summary.files
            where = files[0] + (f" and {len(files) - 1} more" if len(files) > 1 else "")
            raise CorpusError(f"{where}: {problem}")


def too_short(n_ids: int, block_size: int, unit: str = "character") -> str | None:
    """Why a corpus of n_ids ids cannot train with this context (both splits must hold a window
    of block_size + 1), or None. Also used to warn before a run starts. unit: what an id is
    (character, or token for BPE)."""
    need = block_size + 1
    n_train = int(n_ids * (1 - VAL_FRACTION))
    n_val = n_ids - n_train
    if n_train >= need and n_val >= need:
        return None
    # The fewest ids whose validation split holds a window. That split grows with the corpus,
    # so the answer is found by doubling, then bisecting: O(log n), as a count up one at a time
    # never ends for a huge block size.
    def enough(total: int) -> bool:
        return total - int(total * (1 - VAL_FRACTION)) >= need

    low, high = need - 1, need  # enough(high) is what is looked for; low is short
    while not enough(high):
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    total_needed = high
    return (f"corpus too short: {n_ids:,} {unit}s give a {n_val:,}-{unit} validation "
            f"split, but one window needs {need} (block_size {block_size} + 1); add text "
            f"(at least {total_needed:,} {unit}s) or use a smaller block size")


# ---------------------------------------------------------------------------------------------
# Finding files


def _kind_of(path: Path) -> str:
    return "dialogue" if path.suffix.lower() == ".jsonl" else "prose"


def _sniff_binary(path: Path) -> int | None:
    """Offset of the first NUL byte in the first 8 KiB, or None (text files have none)."""
    with open(path, "rb") as f:
        head = f.read(8192)
    i = head.find(b"\x00")
    return None if i < 0 else i


def _open_error(path: Path, e: OSError) -> CorpusError:
    reason = e.strerror or e.__class__.__name__
    if isinstance(e, PermissionError):
        reason = "permission denied"
    return CorpusError(f"{path}: cannot read file ({reason})")


def discover(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[str]]:
    """The text files to read, in order, and notes on what was skipped."""
    files: list[Path] = []
    notes: list[str] = []
    paths = list(paths)
    if not paths:
        raise CorpusError("no corpus given: name one or more text files or folders")
    from .store import home

    own = home().resolve()
    for raw in paths:
        p = Path(raw).expanduser()
        if not p.exists():
            raise CorpusError(f"{p}: no such file or folder")
        if p.is_dir():
            found = []
            try:
                for root, dirs, names in os.walk(p, onerror=_raise):
                    # Pruning dirs in place stops os.walk from descending into hidden folders,
                    # and into charchat's own (models, caches), should a folder hold it.
                    for d in sorted(d for d in dirs if d.startswith(".")):
                        notes.append(f"skipped hidden folder {Path(root) / d}")
                    ours = {d for d in dirs if (Path(root) / d).resolve() == own}
                    for d in sorted(ours):
                        notes.append(f"skipped charchat's data folder {Path(root) / d}")
                    dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in ours)
                    for name in sorted(names):
                        f = Path(root) / name
                        if name.startswith("."):
                            notes.append(f"skipped hidden file {f}")
                            continue
                        if not f.is_file():
                            continue
                        try:
                            nul = _sniff_binary(f)
                            size = f.stat().st_size
                        except OSError as e:
                            raise _open_error(f, e) from None
                        if nul is not None:
                            notes.append(f"skipped binary file {f}")
                            continue
                        if size == 0:
                            notes.append(f"skipped empty file {f}")
                            continue
                        found.append(f)
            except OSError as e:
                raise _open_error(Path(getattr(e, "filename", None) or p), e) from None
            if not found:
                raise CorpusError(f"{p}: folder has no text files")
            files.extend(found)
        elif p.is_file():
            try:
                nul = _sniff_binary(p)
            except OSError as e:
                raise _open_error(p, e) from None
            if nul is not None:
                raise CorpusError(f"{p}: binary file (NUL byte at offset {nul}), not text")
            files.append(p)
        else:
            raise CorpusError(f"{p}: not a regular file or folder")
    # The same file named twice (directly and through a folder) is read once.
    seen: set[Path] = set()
    unique = []
    for f in files:
        r = f.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(f)
    return unique, notes


def _raise(e: OSError) -> None:
    raise e


# ---------------------------------------------------------------------------------------------
# Streaming readers: each yields ("text", str) for prose or ("turns", [(role, content), ...])


def _read_prose(path: Path) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0
    carry_cr = False
    last = ""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise _open_error(path, e) from None
    with f:
        try:
            # A byte-order mark (common from Windows editors) is not text. Skipped by hand
            # rather than by "utf-8-sig", whose error positions would leave it out.
            if f.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8:
                offset = len(codecs.BOM_UTF8)
            else:
                f.seek(0)
        except OSError as e:
            raise _open_error(path, e) from None
        while True:
            try:
                chunk = f.read(CHUNK_BYTES)
            except OSError as e:
                raise _open_error(path, e) from None
            final = not chunk
            pending = len(decoder.getstate()[0])
            try:
                text = decoder.decode(chunk, final=final)
            except UnicodeDecodeError as e:
                bad = offset - pending + e.start
                raise CorpusError(
                    f"{path}: invalid UTF-8 at byte offset {bad} "
                    f"(byte 0x{e.object[e.start]:02x}); save the file as UTF-8"
                ) from None
            offset += len(chunk)
            if carry_cr:
                text = "\r" + text
                carry_cr = False
            if text.endswith("\r") and not final:
                text, carry_cr = text[:-1], True
            if "\r" in text:
                text = text.replace("\r\n", "\n").replace("\r", "\n")
            if text:
                last = text[-1]
                yield text
            if final:
                break
    if last and last != "\n":
        yield "\n"


def _read_dialogue(path: Path) -> Iterator[list[tuple[str, str]]]:
    try:
        f = open(path, "rb")
    except OSError as e:
        raise _open_error(path, e) from None
    offset = 0
    with f:
        for lineno, raw in enumerate(f, start=1):
            start = offset
            offset += len(raw)
            if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                raw, start = raw[len(codecs.BOM_UTF8):], len(codecs.BOM_UTF8)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise CorpusError(
                    f"{path}: invalid UTF-8 at byte offset {start + e.start} (line {lineno}); "
                    "save the file as UTF-8"
                ) from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise CorpusError(f"{path}: line {lineno} is not valid JSON ({e.msg})") from None
            yield _turns(obj, path, lineno)


def _turns(obj, path: Path, lineno: int) -> list[tuple[str, str]]:
    where = f"{path}: line {lineno}"
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list):
        raise CorpusError(f'{where}: expected an object {{"messages": [...]}}')
    turns = []
    for j, m in enumerate(obj["messages"]):
        if not isinstance(m, dict):
            raise CorpusError(f"{where}: message {j} is not an object")
        role, content = m.get("role"), m.get("content")
        if role not in ROLE_TOKENS:
            raise CorpusError(
                f"{where}: message {j} has role {role!r}; expected user, assistant or system"
            )
        if not isinstance(content, str):
            raise CorpusError(f"{where}: message {j} has no text content")
        try:
            content.encode("utf-8")
        except UnicodeEncodeError as e:  # JSON can spell one half of a surrogate pair: "\ud800"
            raise CorpusError(
                f"{where}: message {j} has an unpaired surrogate "
                f"(\\u{ord(e.object[e.start]):04x}), which is not a character"
            ) from None
        turns.append((role, content.replace("\r\n", "\n")))
    if not turns:
        raise CorpusError(f"{where}: conversation has no messages")
    return turns


def _read(path: Path):
    if _kind_of(path) == "dialogue":
        for turns in _read_dialogue(path):
            yield "turns", turns
    else:
        for text in _read_prose(path):
            yield "text", text


# ---------------------------------------------------------------------------------------------
# Pass 1: check every file and collect the vocabulary


def inspect(
    paths: Iterable[str | os.PathLike],
    progress: Callable[[int, int], None] | None = None,
    collect_chars: bool = True,
) -> tuple[CorpusSummary, list[Path], str]:
    """Check the corpus and count it without encoding anything.

    Returns the summary, the files and the sorted characters of the vocabulary. Raises
    CorpusError for the first problem found.
    """
    paths = list(paths)
    explicit = {Path(p).expanduser().resolve() for p in paths if Path(p).expanduser().is_file()}
    files, notes = discover(paths)
    total = sum(f.stat().st_size for f in files)
    done = 0
    chars: set[str] = set()
    skipped: set[Path] = set()
    summary = CorpusSummary(bytes=total, notes=notes)
    for f in files:
        n_file = 0
        visible = False
        for what, item in _read(f):
            if what == "text":
                if collect_chars:
                    chars.update(item)
                n_file += len(item)
                if not visible and item.strip():
                    visible = True
            else:
                summary.conversations += 1
                for _, content in item:
                    if collect_chars:
                        chars.update(content)
                    n_file += len(content) + 2
                visible = True
        if not visible:
            if f.resolve() in explicit:
                raise CorpusError(f"{f}: file is empty or whitespace only")
            notes.append(f"skipped whitespace-only file {f}")
            skipped.add(f)
            continue
        summary.chars += n_file
        done += f.stat().st_size
        if progress:
            progress(done, total)
    files = [f for f in files if f not in skipped]
    if not files:
        raise CorpusError(f"{', '.join(str(p) for p in paths)}: no text to train on (only whitespace)")
    kinds = {_kind_of(f) for f in files}
    summary.files = [str(f) for f in files]
    summary.bytes = sum(f.stat().st_size for f in files)
    summary.kind = kinds.pop() if len(kinds) == 1 else "mixed"
    summary.vocab_size = len(chars)
    return summary, files, "".join(sorted(chars))


# ---------------------------------------------------------------------------------------------
# Pass 2: encode to a cached id file


def _first_file_with(files: list[Path], wanted: set[str]) -> Path:
    """The first file holding any of `wanted` (to name it in an error)."""
    for f in files:
        for what, item in _read(f):
            texts = [item] if what == "text" else [c for _, c in item]
            if any(ch in wanted for t in texts for ch in t):
                return f
    return files[0]


def _cache_key(files: list[Path], tokenizer: Tokenizer) -> str:
    h = hashlib.sha256()
    h.update(f"charchat-corpus-{CACHE_FORMAT}\n".encode())
    _hash_files(h, files)
    h.update(tokenizer.to_json().encode())
    return h.hexdigest()[:32]


def _hash_files(h, files: list[Path]) -> None:
    for f in files:
        st = f.stat()
        # fsencode: a file name need not be valid UTF-8.
        h.update(os.fsencode(f.resolve()) + f"\0{st.st_size}\0{st.st_mtime_ns}\n".encode())


def _lookup_table(tokenizer: CharTokenizer, dtype) -> np.ndarray:
    max_cp = max((ord(c) for c in tokenizer.chars), default=0)
    lut = np.zeros(max_cp + 1, dtype=dtype)
    for c, i in tokenizer.stoi.items():
        lut[ord(c)] = i
    return lut


def _codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


# ---------------------------------------------------------------------------------------------
# BPE: training a vocabulary, and encoding on every core


def _texts(files: list[Path]) -> Iterator[str]:
    """The corpus's text in order (dialogue: each turn's content), for training a BPE."""
    for f in files:
        for what, item in _read(f):
            if what == "text":
                yield item
            else:
                for _, content in item:
                    yield content


def _bpe_for(spec: str, files: list[Path], cache_dir: Path,
             progress: Callable[[str, int, int], None] | None, total: int) -> "BPETokenizer":
    """GPT-2's, or a BPE trained on the files (kept in the cache, keyed like the ids)."""
    from . import bpe

    if spec == "gpt2":
        return bpe.gpt2()
    n = bpe.bpe_size(spec)
    if n is None:
        raise CorpusError(f"unknown tokenizer {spec!r}: use char, gpt2 or bpe:N")
    h = hashlib.sha256(f"charchat-bpe-1\n{spec}\n{bpe.GPT4_PATTERN}\n".encode())
    _hash_files(h, files)
    path = cache_dir / f"bpe-{h.hexdigest()[:32]}.json"
    if path.exists():
        try:
            return bpe.BPETokenizer.from_dict(json.loads(path.read_text()), where=str(path))
        except (OSError, ValueError):
            pass  # damaged: trained again
    done = 0

    def fed() -> Iterator[str]:
        nonlocal done
        for text in _texts(files):
            done += len(text)
            if progress:
                progress(f"training {spec}", min(done, total), total)
            yield text

    tok = bpe.train_bpe(fed(), n)
    store.atomic_write_text(path, json.dumps(tok.to_dict(inline_ranks=True)))
    return tok


PIECE_CHARS = 1 << 20  # text per encoding task
CONVERSATIONS_PER_TASK = 512


def _tasks(files: list[Path], progress: Callable[[str, int, int], None] | None, total: int):
    """The corpus as encoding tasks, in order: prose cut at safe places into ~1 MiB pieces,
    dialogue in batches of conversations."""
    done = 0
    for f in files:
        if _kind_of(f) == "dialogue":
            batch = []
            for turns in _read_dialogue(f):
                batch.append(turns)
                if len(batch) == CONVERSATIONS_PER_TASK:
                    yield "turns", batch
                    batch = []
            if batch:
                yield "turns", batch
        else:
            buf = ""
            size, read = f.stat().st_size, 0
            for text in _read_prose(f):
                buf += text
                read += len(text)  # characters: bytes for ASCII, a little under otherwise
                while len(buf) >= 2 * PIECE_CHARS:
                    cut = safe_cut(buf, PIECE_CHARS)
                    if cut >= len(buf):
                        break  # no safe place yet: read on
                    yield "text", buf[:cut]
                    buf = buf[cut:]
                if progress:  # within a large file too, so a caller may stop early
                    progress("encoding", done + min(read, size), total)
            if buf:
                yield "text", buf
        done += f.stat().st_size
        if progress:
            progress("encoding", done, total)


def _encode_bpe(files: list[Path], tokenizer: "BPETokenizer", out: IdFile,
                progress: Callable[[str, int, int], None] | None, total: int) -> None:
    """Every file's ids into out, in order; each file is encoded on its own (no token spans two
    files)."""
    encode_tasks(_tasks(files, progress, total), tokenizer, out,
                 processes=total >= idcache.PROCESS_BYTES)


# ---------------------------------------------------------------------------------------------
# Both kinds


def load_corpus(
    paths: Iterable[str | os.PathLike],
    tokenizer: Tokenizer | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    spec: str = "char",
) -> Corpus:
    """Check, encode and cache the corpus; returns ids through a read-only memmap.

    tokenizer: the model's (resuming, or training further); for a character vocabulary every
    character must already be in it. Without one, spec says which to use: char (the corpus's
    characters), gpt2, or bpe:N (trained on the corpus). progress(stage, done, total) is called
    as files are read.
    """
    p1 = (lambda d, t: progress("checking", d, t)) if progress else None
    is_char = isinstance(tokenizer, CharTokenizer) or (tokenizer is None and spec == "char")
    summary, files, chars = inspect(paths, p1, collect_chars=is_char)
    if cache_dir is None:
        from .store import cache_dir as default_cache_dir

        cache_dir = default_cache_dir()
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    if tokenizer is None:
        tokenizer = (CharTokenizer(chars) if is_char
                     else _bpe_for(spec, files, cache_dir, progress, summary.chars))
    elif is_char:
        missing = [c for c in chars if c not in tokenizer.stoi]
        if missing:
            shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in missing[:5])
            raise CorpusError(
                f"{_first_file_with(files, set(missing))}: has {len(missing)} character(s) "
                f"the model's vocabulary lacks: {shown}"
            )
    summary.tokenizer = tokenizer.name
    if not is_char:
        summary.vocab_size = tokenizer.n_ranks
        asked = bpe_size(tokenizer.name)
        if asked and tokenizer.n_ranks < asked:
            summary.notes.append(f"{tokenizer.name}: a vocabulary of {tokenizer.n_ranks:,} "
                                 f"(the text had no more pairs to merge)")
    dtype = id_dtype(tokenizer.vocab_size)
    key = _cache_key(files, tokenizer)
    ids_path = cache_dir / f"{key}.npy"
    meta_path = cache_dir / f"{key}.json"
    if ids_path.exists() and meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
            ids = np.load(ids_path, mmap_mode="r")
            if len(ids) == meta["n"] and ids.dtype == dtype:
                summary.tokens = meta["n"]
                return Corpus(ids, tokenizer, summary, ids_path, *meta["val_size"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged cache entry is rebuilt below
    # The process and the thread: the app may check a corpus while a run reads the same one.
    tmp = ids_path.with_suffix(f".tmp{os.getpid()}-{threading.get_ident()}")
    out = IdFile(tmp, dtype, expected=summary.chars if is_char else None)
    try:
        if is_char:
            _encode_chars(files, tokenizer, out, progress, summary.bytes)
        else:
            _encode_bpe(files, tokenizer, out, progress, summary.bytes)
        if is_char and out.n != summary.chars:
            raise CorpusError(f"corpus changed while it was read ({out.n:,} characters, "
                              f"expected {summary.chars:,}); try again")
        out.finish()
        n = out.n
        split = int(n * (1 - VAL_FRACTION))
        val_size = text_size(tokenizer, tmp, split, n)
        os.replace(tmp, ids_path)
        store.atomic_write_text(meta_path, json.dumps(
            {"n": n, "val_size": list(val_size), "summary": summary.to_dict()}))
    finally:
        out.abort()  # removes the temporary file if it is still there
    summary.tokens = n
    return Corpus(np.load(ids_path, mmap_mode="r"), tokenizer, summary, ids_path, *val_size)


def _encode_chars(files: list[Path], tokenizer: CharTokenizer, out: IdFile,
                  progress: Callable[[str, int, int], None] | None, total: int) -> None:
    lut = _lookup_table(tokenizer, out.dtype)
    done = 0
    for f in files:
        for what, item in _read(f):
            if what == "text":
                out.write(lut[_codepoints(item)])
            else:
                for role, content in item:
                    out.write([tokenizer.special_ids[ROLE_TOKENS[role]]])
                    out.write(lut[_codepoints(content)])
                    out.write([tokenizer.end_id])
        done += f.stat().st_size
        if progress:
            progress("encoding", done, total)


def corpus_from_text(text: str, tokenizer: Tokenizer | None = None) -> Corpus:
    """An in-memory prose corpus, for notebooks and tests."""
    if not text.strip():
        raise CorpusError("text is empty or whitespace only")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise CorpusError(f"text has an unpaired surrogate (\\u{ord(e.object[e.start]):04x}) at "
                          f"index {e.start}, which is not a character") from None
    tokenizer = tokenizer or CharTokenizer(text)
    ids = np.asarray(tokenizer.encode(text), dtype=id_dtype(tokenizer.vocab_size))
    summary = CorpusSummary(files=["<text>"], bytes=len(text.encode()), chars=len(text),
                            vocab_size=len(getattr(tokenizer, "chars", ())) or tokenizer.vocab_size,
                            kind="prose", tokens=len(ids), tokenizer=tokenizer.name)
    split = int(len(ids) * (1 - VAL_FRACTION))
    val = tokenizer.decode(ids[split:].tolist())
    return Corpus(ids, tokenizer, summary, None, len(val), len(val.encode()))
