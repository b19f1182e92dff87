"""Where models live, and how they are written and read without ever losing one.

Layout under the data folder (platformdirs' user data dir, or $CHARCHAT_HOME):

    models/NAME/model.pt        best weights, with config, vocabulary and scores (self-contained)
    models/NAME/config.json     the model's GPTConfig (a readable copy)
    models/NAME/tokenizer.json  the vocabulary (a readable copy)
    models/NAME/train_args.json how it was trained: the resolved hyperparameters and corpus paths
    models/NAME/corpus.json     corpus summary: files, characters, vocabulary, kind
    models/NAME/meta.json       best val loss, step, parameters, dates (for quick listing)
    models/NAME/metrics.jsonl   one JSON line per logged step and evaluation
    models/NAME/state.pt        the latest training state, for --resume
    models/NAME/.lock           locked by the run training it (see charchat.locking)
    cache/                      encoded corpora

Every file is written atomically: to a temporary file in the same folder, flushed and fsynced,
then renamed over the old one (and the folder fsynced). A crash or kill at any moment leaves
either the old file or the new one, never a half-written file (the temporary file it may leave
in a model folder is removed when a run next takes that folder: charchat.rundir).

A full disk is DiskFull, one line naming the folder: checked before writing where the size is
known (every atomic write, a torch save from its tensors, the corpus cache, a download), and
otherwise caught as ENOSPC from the write itself; no temporary file is left either way.

Model files are read with ``torch.load(weights_only=True)``, which rebuilds only tensors and
plain containers and refuses any other object: a hostile file cannot run code on load.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import unicodedata
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from . import locking
from .config import CorpusSummary
from .formatting import fmt_size
from . import tokenizers
from .tokenizer import TokenizerError
from .tokenizers import Tokenizer

if TYPE_CHECKING:  # torch is imported on first use, so that listing models stays instant
    import torch

    from .model import GPT

WEIGHTS = "model.pt"
STATE = "state.pt"
META = "meta.json"
FORMAT = "charchat-model"
FORMAT_VERSION = 1
# Always used with fullmatch: "^...$" with match() would let a trailing newline through.
NAME_MAX_CHARS = 64
# Bytes (UTF-8) a name may take in a folder name: file systems allow 255, and a deleted model
# goes through ".deleting-<name>-<milliseconds>" first.
NAME_MAX_BYTES = 200
# Device names Windows keeps for itself, whatever the extension (superscript digits included).
_WINDOWS_RESERVED = re.compile(r"(CON|PRN|AUX|NUL|COM[0-9\u00b9\u00b2\u00b3]|LPT[0-9\u00b9\u00b2\u00b3])",
                               re.IGNORECASE)


def _name_char(c: str) -> bool:
    """Letters and digits of any script (str.isalnum), '.', '_' and '-', and the combining
    marks that some scripts write their words with (and a decomposed é is made of)."""
    return c.isalnum() or c in "._-" or unicodedata.category(c) in ("Mn", "Mc")


def _name_problem(name) -> str | None:
    """Why name cannot be a model's name (its folder's name), or None."""
    rule = (f"use 1-{NAME_MAX_CHARS} letters, digits, '.', '_' or '-', starting with a letter "
            "or digit")
    if not isinstance(name, str) or not name:
        return rule
    nfc = unicodedata.normalize("NFC", name)
    if len(nfc) > NAME_MAX_CHARS or not nfc[0].isalnum() or not all(map(_name_char, nfc)):
        return rule
    if len(name.encode("utf-8", "surrogatepass")) > NAME_MAX_BYTES:
        return f"too long for a folder name (at most {NAME_MAX_BYTES} bytes in UTF-8)"
    if name.endswith("."):
        return "a folder name cannot end with '.' on Windows"
    if _WINDOWS_RESERVED.fullmatch(name.split(".")[0]):
        return "Windows keeps that name for a device"
    return None


def valid_name(name) -> bool:
    """Whether name can be a model's name (its folder's name)."""
    return _name_problem(name) is None
BUNDLED_NAME = "default"


class StoreError(Exception):
    """A model that cannot be found, read or written. The message is one line."""


class DiskFull(StoreError, OSError):
    """No room on the disk for a file. The message is one line naming the folder; it is also an
    OSError (errno ENOSPC, filename the folder), so that code catching OSError still catches it."""

    def __init__(self, message: str, folder) -> None:
        OSError.__init__(self, errno.ENOSPC, message, str(folder))

    def __str__(self) -> str:
        return self.strerror


# A full disk, or a full quota (reported the same way to whoever writes).
_NO_SPACE = {errno.ENOSPC} | ({errno.EDQUOT} if hasattr(errno, "EDQUOT") else set())


def is_no_space(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in _NO_SPACE


def no_space(folder, what: str) -> DiskFull:
    """The error for a write to folder that the disk had no room for."""
    return DiskFull(f"no space left on the disk of {folder} (writing {what})", folder)


def check_free_space(folder, needed: int, what: str) -> None:
    """Refuse, before anything is written, a file of `needed` bytes that the disk of folder
    has no room for: DiskFull says how much is needed and where."""
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent  # the folder may not be made yet
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return  # cannot tell: the write itself will say
    if needed > free:
        raise DiskFull(f"no space left on the disk of {folder}: {what} needs "
                       f"{fmt_size(needed)}, {fmt_size(free)} free", folder)


def write_all(fd: int, data) -> None:
    """os.write until every byte is written (a write may take fewer)."""
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view):]


def allocate(fd: int, size: int) -> None:
    """Give an open, empty file `size` bytes of real disk blocks, so that a full disk is an
    OSError now rather than a bus error when a memory map of the file is written later."""
    if size <= 0:
        return
    if hasattr(os, "posix_fallocate"):
        try:
            os.posix_fallocate(fd, 0, size)
            return
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", -1)):
                raise  # ENOSPC above all; a file system without it falls back to zeros
    os.lseek(fd, 0, os.SEEK_SET)
    chunk = bytes(1 << 20)
    left = size
    while left:
        write_all(fd, chunk[:min(left, len(chunk))])
        left -= min(left, len(chunk))
    os.lseek(fd, 0, os.SEEK_SET)


def home() -> Path:
    env = os.environ.get("CHARCHAT_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("charchat", appauthor=False))


def models_dir() -> Path:
    return home() / "models"


def cache_dir() -> Path:
    return home() / "cache"


def bundled_dir() -> Path:
    """The default model shipped inside the package (absent only if removed from the install)."""
    return Path(__file__).parent / "data" / "default"


def check_name(name: str) -> str:
    problem = _name_problem(name)
    if problem:
        raise StoreError(f"invalid model name {name!r}: {problem}")
    return name


def model_dir(name: str) -> Path:
    return models_dir() / check_name(name)


# ---------------------------------------------------------------------------------------------
# Atomic writes


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write path atomically. A full disk raises DiskFull naming the folder (checked before
    anything is written, when it can be told), and leaves neither a temporary file nor a
    changed path."""
    _atomic_write(Path(path), len(data), lambda fd: write_all(fd, data))


def _atomic_write(path: Path, size: int, fill: Callable[[int], None]) -> None:
    """atomic_write_bytes's rule for a file of about `size` bytes that fill(fd) writes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    check_free_space(path.parent, size, path.name)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        if is_no_space(e):
            raise no_space(path.parent, path.name) from None
        raise
    try:
        try:
            fill(fd)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if is_no_space(e):
            raise no_space(path.parent, path.name) from None
        raise
    _fsync_dir(path.parent)


class _FdWriter:
    """A file object over an open descriptor for torch.save, which writes through it piece by
    piece: the file is never built in memory first (a 6 GB model would need 6 GB more)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, data) -> int:
        write_all(self.fd, data)
        return memoryview(data).nbytes

    def flush(self) -> None:
        pass


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj) -> None:
    text = json.dumps(obj, indent=2, ensure_ascii=False) + "\n"
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        # A file name that is not valid UTF-8 reaches here with surrogate escapes, which
        # UTF-8 cannot hold; JSON's \\u escapes can, and read back to the same name.
        data = (json.dumps(obj, indent=2) + "\n").encode("ascii")
    atomic_write_bytes(path, data)


def move_aside(path: Path) -> Path:
    """Rename a damaged file to NAME.damaged (NAME.damaged-2, ... if that is taken), so that
    nothing writes over it; returns the new path. Raises OSError if it cannot be moved."""
    path = Path(path)
    target = path.with_name(path.name + ".damaged")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged-{n}")
    os.replace(path, target)
    return target


def atomic_torch_save(path: Path, obj) -> None:
    import torch

    # The tensors' bytes (with room for the pickled rest) are known before anything is
    # serialised: a full disk is told before anything is written.
    _atomic_write(Path(path), _tensor_bytes(obj) + (64 << 10),
                  lambda fd: torch.save(obj, _FdWriter(fd)))


def _tensor_bytes(obj) -> int:
    """The bytes of the tensors in obj (nested dicts, lists and tuples)."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.element_size() * obj.nelement()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def safe_torch_load(path: Path, what: str = "model file"):
    """torch.load that never unpickles arbitrary objects, with one-line errors."""
    import torch

    path = Path(path)
    if not path.exists():
        raise StoreError(f"{path}: {what} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError:
        raise StoreError(f"{path}: cannot read {what} (permission denied)") from None
    except Exception as e:  # truncated zip, foreign pickle, forbidden global, ...
        text = str(e)
        if "GLOBAL" in text or "Unsupported global" in text:
            reason = "it holds objects other than tensors (refused: loading them could run code)"
        else:
            # Whatever the unpickler tripped on (random bytes give "pop from empty list",
            # "invalid load key", ...), the file is broken rather than hostile; keep the detail.
            detail = text.strip().splitlines()[0] if text.strip() else e.__class__.__name__
            reason = "damaged, or not a charchat model file"
            if "weights_only" not in text and "Unpickler" not in text and any(
                ch.isalpha() for ch in detail
            ):  # a bare KeyError such as "173" says nothing to a reader
                reason += f" ({detail[:120]})"
        raise StoreError(f"{path}: not a readable {what}: {reason[:200]}") from None


# ---------------------------------------------------------------------------------------------
# Saving and loading models


def save_model(folder: Path, model: "GPT", tokenizer: Tokenizer, info: dict | None = None,
               dtype: "torch.dtype | None" = None) -> None:
    """Write the weights file atomically. info: small JSON-able facts (step, val_loss, ...).

    dtype: store floating-point weights in this type (e.g. torch.float16, to halve the file of
    a model that ships in the package); loading always casts them back to the model's float32.
    """
    sd = {}
    for k, v in _plain_state_dict(model).items():
        v = v.detach().to("cpu", copy=True)
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        sd[k] = v.contiguous()
    save_weights(folder, model.config, tokenizer, sd, info)


def save_weights(folder: Path, config, tokenizer: Tokenizer, state_dict: dict,
                 info: dict | None = None) -> None:
    """Write a weights file from a state dict as save_model's (the tied embedding left out:
    "lm_head.weight" holds it), atomically."""
    payload = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "config": config.to_dict(),
        # A trained BPE's ranks travel inside (the file loads on its own); GPT-2's are named.
        "tokenizer": tokenizer.to_json(inline_ranks=True),
        "info": json.dumps(info or {}),
        "state_dict": state_dict,
    }
    atomic_torch_save(Path(folder) / WEIGHTS, payload)


def _plain_state_dict(model) -> dict:
    """State dict without torch.compile's '_orig_mod.' prefix and without the tied duplicate."""
    model = getattr(model, "_orig_mod", model)
    sd = model.state_dict()
    sd.pop("transformer.wte.weight", None)  # the same tensor as lm_head.weight
    return sd


@dataclass
class LoadedModel:
    model: "GPT"
    tokenizer: Tokenizer
    name: str
    path: Path
    info: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """prose or dialogue: what the model was trained on."""
        return self.info.get("corpus_kind") or self.meta.get("corpus_kind") or "prose"

    @property
    def chat_kind(self) -> str:
        """How the chat session builds prompts: the kind, or "framed" for a base model whose
        folder asks for the plain-text dialogue frame (charchat.chat; an imported GPT-2)."""
        return "framed" if self.meta.get("chat_frame") == "plain" else self.kind


def read_weights(path: Path) -> tuple[GPT, Tokenizer, dict]:
    """Build a GPT from a weights file, checking everything a damaged or foreign file could break."""
    import torch

    from .model import GPT, GPTConfig

    path = Path(path)
    obj = safe_torch_load(path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise StoreError(f"{path}: not a charchat model file")
    if obj.get("version") != FORMAT_VERSION:
        raise StoreError(f"{path}: unsupported model file version {obj.get('version')!r}")
    try:
        config = GPTConfig.from_dict(obj["config"])
        tokenizer = tokenizers.from_json(obj["tokenizer"], "the vocabulary")
        info = json.loads(obj.get("info") or "{}")
        sd = obj["state_dict"]
    except (KeyError, TypeError, ValueError, TokenizerError) as e:
        raise StoreError(f"{path}: damaged model file ({e})") from None
    if config.vocab_size != tokenizer.padded_vocab_size:
        raise StoreError(
            f"{path}: damaged model file (vocabulary has {tokenizer.vocab_size} tokens, "
            f"model expects {config.vocab_size})"
        )
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise StoreError(f"{path}: damaged model file (weights are not tensors)")
    sd = dict(sd)
    if "lm_head.weight" in sd:
        sd["transformer.wte.weight"] = sd["lm_head.weight"]
    # Compare shapes first: a damaged config could ask for a huge model, and nothing should be
    # allocated before the file is known to be consistent.
    expected = expected_shapes(config)
    if set(expected) != set(sd):
        extra = sorted(set(sd) - set(expected))[:2]
        lacking = sorted(set(expected) - set(sd))[:2]
        raise StoreError(f"{path}: weights do not fit the model's config "
                         f"(missing {lacking}, unexpected {extra})")
    for k, shape in expected.items():
        if tuple(sd[k].shape) != shape:
            raise StoreError(f"{path}: weights do not fit the model's config "
                             f"({k} is {tuple(sd[k].shape)}, config needs {shape})")
    try:
        model = GPT(config)
        model.load_state_dict(sd, strict=True)
    except (RuntimeError, MemoryError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise StoreError(f"{path}: cannot build the model ({first[:160]})") from None
    for k, v in sd.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise StoreError(f"{path}: damaged model file (non-finite values in {k})")
    model.eval()
    return model, tokenizer, info


def expected_shapes(config) -> dict[str, tuple[int, ...]]:
    """The state-dict shapes of GPT(config), worked out from the config alone (building the
    model, even on the meta device, runs weight init and costs a second on first use)."""
    C, V, T = config.n_embd, config.vocab_size, config.block_size
    shapes: dict[str, tuple[int, ...]] = {
        "transformer.wte.weight": (V, C), "transformer.wpe.weight": (T, C),
        "transformer.ln_f.weight": (C,), "lm_head.weight": (V, C),
    }
    layer = {"ln_1.weight": (C,), "ln_2.weight": (C,), "attn.c_attn.weight": (3 * C, C),
             "attn.c_proj.weight": (C, C), "mlp.c_fc.weight": (4 * C, C),
             "mlp.c_proj.weight": (C, 4 * C)}
    if config.bias:
        shapes["transformer.ln_f.bias"] = (C,)
        layer.update({"ln_1.bias": (C,), "ln_2.bias": (C,), "attn.c_attn.bias": (3 * C,),
                      "attn.c_proj.bias": (C,), "mlp.c_fc.bias": (4 * C,),
                      "mlp.c_proj.bias": (C,)})
    for i in range(config.n_layer):
        for k, v in layer.items():
            shapes[f"transformer.h.{i}.{k}"] = v
    return shapes


def unique_name(base: str) -> str:
    """A free model name made from base (a corpus file name, say)."""
    base = unicodedata.normalize("NFC", base)
    base = "".join(c if _name_char(c) else "/" for c in base)  # "/": never kept
    base = re.sub("/+", "-", base).strip("-._")[:48].rstrip(".") or "model"
    while len(base.encode("utf-8", "surrogatepass")) > NAME_MAX_BYTES - 16:
        base = base[:-1].rstrip(".")
    if not base[0].isalnum():
        base = "m" + base
    if _name_problem(base):  # a Windows device name
        base += "-model"
    name, i = base, 2
    while (models_dir() / name).exists():
        name, i = f"{base}-{i}", i + 1
    return name


def resolve(name_or_path: str) -> tuple[str, Path]:
    """A model's name and folder, from a saved model's name, a folder, or 'default'."""
    p = Path(name_or_path).expanduser()
    if os.sep in name_or_path or name_or_path.startswith("."):
        if p.is_dir() and (p / WEIGHTS).exists():
            return p.name, p
        if p.is_file():
            return p.parent.name, p.parent
        raise StoreError(f"{p}: no charchat model there")
    check_name(name_or_path)
    d = models_dir() / name_or_path
    if (d / WEIGHTS).exists():
        return name_or_path, d
    if name_or_path == BUNDLED_NAME and (bundled_dir() / WEIGHTS).exists():
        return BUNDLED_NAME, bundled_dir()
    raise StoreError(_no_such_model(name_or_path))


def _no_such_model(name: str, verb: str | None = None) -> str:
    """The error for a name with no saved model; verb says what was asked of it."""
    if verb and name == BUNDLED_NAME and (bundled_dir() / WEIGHTS).exists():
        return f"{name!r} is the model that comes with charchat: it cannot be {verb}"
    pid = locking.holder(models_dir() / name)
    if pid is not None:  # a new run, before its first evaluation
        return f"{locking.being_trained(name, pid)} and has not saved a model yet"
    # The bundled model counts: `charchat models` lists it, and so should this message.
    known = ", ".join(m.name for m in list_models(include_bundled=True)) or "none saved yet"
    return f"no model named {name!r} (models: {known})"


def load_model(name_or_path: str, device: "str | torch.device" = "cpu") -> LoadedModel:
    name, folder = resolve(name_or_path)
    given = Path(name_or_path).expanduser()
    # A weights file named directly is read as given (whatever its name), not folder/model.pt.
    path = given if (os.sep in name_or_path and given.is_file()) else folder / WEIGHTS
    model, tokenizer, info = read_weights(path)
    model.to(device)
    return LoadedModel(model, tokenizer, name, folder, info, read_meta(folder))


def read_training_record(folder: Path) -> dict:
    """What a saved model was trained with, {"config": {...}, "corpus_paths": [...], ...},
    checked for the shape --resume needs; StoreError names the file otherwise."""
    record = Path(folder) / "train_args.json"
    try:
        d = json.loads(record.read_text())
    except (OSError, ValueError) as e:
        raise StoreError(f"{record}: cannot resume, training record unreadable ({e})") from None
    paths = d.get("corpus_paths", []) if isinstance(d, dict) else None
    if not isinstance(d, dict) or not isinstance(d.get("config", {}), dict) or not (
        isinstance(paths, list) and all(isinstance(p, str) for p in paths)
    ):
        raise StoreError(f"{record}: cannot resume, training record damaged")
    return d


def read_tokenizer(folder: Path) -> Tokenizer:
    """A model folder's vocabulary (tokenizer.json, and tokenizer.tiktoken for a trained BPE),
    for resuming; StoreError names the file."""
    path = Path(folder) / "tokenizer.json"
    try:
        return tokenizers.read_folder(folder)
    except (OSError, ValueError) as e:
        raise StoreError(f"{path}: cannot resume, vocabulary unreadable ({e})") from None


def read_shape(folder: Path) -> dict:
    """A model folder's config.json (its network's shape, GPTConfig's fields) as a dict;
    StoreError names the file."""
    path = Path(folder) / "config.json"
    try:
        shape = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise StoreError(f"{path}: model shape unreadable ({e})") from None
    if not isinstance(shape, dict):
        raise StoreError(f"{path}: model shape unreadable (not an object)")
    return shape


def read_meta(folder: Path) -> dict:
    """A model's meta.json (a description, never needed to load it); {} if missing or damaged."""
    return read_description(folder, META)


def read_description(folder: Path, file: str) -> dict:
    """A JSON file of a model's folder read only to describe it (meta.json, train_args.json
    for a listing): {} if missing or not a JSON object; its values may have any type."""
    try:
        d = json.loads((Path(folder) / file).read_text())
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def _typed(meta: dict, key: str, kinds: tuple, default=None):
    """meta[key] if it has one of the types a listing expects, else default: one hand-edited or
    damaged file must not break the list of every model."""
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, kinds):
        return default
    if isinstance(value, float) and not math.isfinite(value):
        return default
    return value


# ---------------------------------------------------------------------------------------------
# Listing and managing


@dataclass
class SavedModel:
    """A saved model as listings show it (read from its folder without loading it)."""

    name: str
    path: Path
    params: int | None
    best_val_loss: float | None
    corpus: str  # in words (meta.json's "corpus")
    updated: float
    size_bytes: int
    bundled: bool = False
    meta: dict = field(default_factory=dict)
    training: int | None = None  # pid of the run training it now (0: unknown), else None
    corpus_summary: CorpusSummary | None = None  # the corpus as data, when recorded
    tokenizer: str = "char"  # char, gpt2 or bpe:N
    best_bpc: float | None = None  # best_val_loss in bits per character of the text


def _info_for(folder: Path, bundled: bool = False) -> SavedModel:
    meta = read_meta(folder)
    weights = folder / WEIGHTS
    try:
        size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
        updated = weights.stat().st_mtime
    except OSError:
        size, updated = 0, 0.0
    best = _typed(meta, "best_val_loss", (int, float))
    tokenizer = _typed(meta, "tokenizer", (str,), "char")
    return SavedModel(
        name=BUNDLED_NAME if bundled else folder.name,
        path=folder,
        params=_typed(meta, "params", (int,)),
        best_val_loss=best,
        corpus=_typed(meta, "corpus", (str,), ""),
        updated=updated,
        size_bytes=size,
        bundled=bundled,
        meta=meta,
        training=None if bundled else locking.holder(folder),
        corpus_summary=read_corpus_summary(folder, meta),
        tokenizer=tokenizer,
        best_bpc=_best_bpc(meta, best, tokenizer),
    )


def _best_bpc(meta: dict, best: float | None, tokenizer: str) -> float | None:
    bpc = _typed(meta, "best_bpc", (int, float))
    if bpc is None and best is not None and tokenizer == "char":
        bpc = best / math.log(2)  # a character model from before bpc was recorded
    return bpc


def read_corpus_summary(folder: Path, meta: dict | None = None) -> CorpusSummary | None:
    """What a model was trained on, as data: meta.json's copy (kept with the best model's
    score), else corpus.json (written when its run started); None if neither is readable."""
    d = (meta if meta is not None else read_meta(folder)).get("corpus_summary")
    if not isinstance(d, dict):
        try:
            d = json.loads((Path(folder) / "corpus.json").read_text())
        except (OSError, ValueError):
            return None
    return CorpusSummary.from_dict(d) if isinstance(d, dict) else None


def list_models(include_bundled: bool = False) -> list[SavedModel]:
    out = []
    root = models_dir()
    if root.is_dir():
        for d in sorted(root.iterdir()):
            if d.is_dir() and (d / WEIGHTS).exists() and valid_name(d.name):
                out.append(_info_for(d))
    if include_bundled and (bundled_dir() / WEIGHTS).exists():
        if not any(m.name == BUNDLED_NAME for m in out):
            out.append(_info_for(bundled_dir(), bundled=True))
    return out


def _locked_for(d: Path, name: str, verb: str) -> "locking.FolderLock":
    """The model folder's lock (see charchat.locking), held while it is deleted or renamed, so
    that neither happens under a training run that is writing to it."""
    try:
        return locking.acquire(d, create=False)
    except locking.FolderBusy as e:
        raise StoreError(locking.refusal(name, e.pid, verb)) from None
    except FileNotFoundError:
        raise StoreError(_no_such_model(name, verb)) from None


def _unheld_on_windows(lock: "locking.FolderLock") -> "locking.FolderLock":
    """Windows cannot rename a folder while a file in it is open: there the lock only checks
    that no run holds it, and is let go before the rename."""
    if os.name == "nt":
        lock.release()
    return lock


def remove_model(name: str) -> Path:
    d = model_dir(name)
    if not (d / WEIGHTS).exists() and not d.is_dir():
        raise StoreError(_no_such_model(name, "deleted"))
    with _unheld_on_windows(_locked_for(d, name, "deleted")):
        # Rename first, so that a half-deleted folder never looks like a model.
        trash = d.with_name(f".deleting-{name}-{int(time.time() * 1000)}")
        os.replace(d, trash)
    shutil.rmtree(trash, ignore_errors=True)
    return d


def rename_model(old: str, new: str) -> Path:
    src, dst = model_dir(old), model_dir(new)
    if not (src / WEIGHTS).exists():
        raise StoreError(_no_such_model(old, "renamed"))
    if dst.exists():
        raise StoreError(f"a model named {new!r} already exists")
    with _unheld_on_windows(_locked_for(src, old, "renamed")):
        os.replace(src, dst)
    return dst


def read_metrics(folder: Path):
    """The events of a model's metrics.jsonl, one dict at a time (damaged lines skipped).
    Raises OSError when the file cannot be read."""
    # errors="replace": a line torn inside a character (a kill mid-write) is a damaged line,
    # skipped like any other, not an error that ends the reading.
    with open(Path(folder) / "metrics.jsonl", encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                yield event


def write_meta(folder: Path, **fields) -> dict:
    meta = read_meta(folder)
    meta.update(fields)
    atomic_write_json(Path(folder) / META, meta)
    return meta
