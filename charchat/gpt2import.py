"""OpenAI's GPT-2 weights as a charchat model (issue 20, first part: from a local file).

Reads a ``model.safetensors`` (the hub's layout, ``h.0.attn.c_attn.weight``, or the layout
``save_pretrained`` writes, with a ``transformer.`` prefix) or a ``pytorch_model.bin`` (read
with ``weights_only=True``: loading never runs code from it), and writes a charchat model
folder that chats, samples and evaluates like any other, with GPT-2's tokenizer.

What changes on the way:
- GPT-2 stores its four matrices per block as Conv1D weights, (in, out); charchat's Linear
  layers hold (out, in), so those are transposed.
- The ``attn.bias`` / ``attn.masked_bias`` buffers (the causal mask, not weights) are dropped.
- The output head is the token embedding (tied), as in GPT-2.
- The embedding grows from 50,257 rows to 50,304 (a multiple of 64, charchat.bpe): the four
  turn tokens and the padding get the mean of GPT-2's rows, a neutral start for fine-tuning;
  padding is never sampled.
- The number of heads is read from a ``config.json`` beside the file, else from GPT-2's known
  shapes (layers, width): 12/768 -> 12 heads, 24/1024 -> 16, 36/1280 -> 20, 48/1600 -> 25.

Memory: tensors are read one at a time with plain reads (not a memory map), and the model file
is written by torch.save straight to disk, so the import holds about one copy of the weights.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from . import download, store
from .bpe import gpt2
from .formatting import fmt_size
from .tokenizers import folder_files

if TYPE_CHECKING:
    import torch

KNOWN_HEADS = {(12, 768): 12, (24, 1024): 16, (36, 1280): 20, (48, 1600): 25}
KNOWN_NAMES = {(12, 768): "gpt2", (24, 1024): "gpt2-medium", (36, 1280): "gpt2-large",
               (48, 1600): "gpt2-xl"}
_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
_BUFFERS = (".attn.bias", ".attn.masked_bias")  # not ...c_attn.bias, a weight


class ImportFailed(Exception):
    """A file that cannot be imported. The message is one line naming it."""


@dataclass(frozen=True)
class Pinned:
    """GPT-2 weights on the Hugging Face hub, pinned to a revision, size and SHA-256."""

    repo: str
    revision: str
    size: int
    sha256: str
    n_head: int

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo}/resolve/{self.revision}/model.safetensors"


# Only sizes whose hashes could be checked are pinned; the others import with --from.
PINNED = {
    "gpt2": Pinned("openai-community/gpt2", "607a30d783dfa663caf39e06633721c8d4cfcd7e",
                   548_105_171,
                   "248dfc3911869ec493c76e65bf2fcf7f615828b0254c12b473182f0f81d3a707", 12),
}


# The larger sizes: their hashes could not be looked up here, so they are not pinned. The file
# is downloaded from the hub's main revision and its SHA-256 shown; it is imported only once the
# user accepts that hash (asked on a terminal, or given with --sha256).
UNPINNED = {"gpt2-medium": ("openai-community/gpt2-medium", 16),
            "gpt2-large": ("openai-community/gpt2-large", 20),
            "gpt2-xl": ("openai-community/gpt2-xl", 25)}


def import_unpinned(which: str, name: str | None = None, url: str | None = None,
                    progress: Callable[[str, int, int], None] | None = None,
                    sha256: str | None = None,
                    confirm: Callable[[str], bool] | None = None) -> Path:
    """Download one of UNPINNED and import it once its SHA-256 is accepted: equal to `sha256`,
    or confirm(hash) says yes. Otherwise the file waits in the downloads folder (a second run
    need not download it again) and ImportFailed gives its hash and the command to keep it."""
    repo, n_head = UNPINNED[which]
    name = store.check_name(name) if name else which
    if (store.models_dir() / name / store.WEIGHTS).exists():
        raise ImportFailed(f"a model named {name!r} already exists; choose another --name")
    url = url or f"https://huggingface.co/{repo}/resolve/main/model.safetensors"
    dest = store.home() / "downloads" / f"{which}-main" / "model.safetensors"
    step = (lambda d, t: progress("downloading", d, t)) if progress else None
    if not dest.is_file():
        try:
            download.fetch(url, dest, download.remote_size(url), None, f"{which}'s weights",
                           step, resume=True)
        except download.DownloadError as e:
            raise ImportFailed(str(e)) from None
    got = download.sha256_of(dest)
    if sha256 is not None:
        if got != sha256.strip().lower():
            dest.unlink()
            raise ImportFailed(f"{url}: SHA-256 mismatch (expected {sha256.strip()[:16]}..., "
                               f"got {got[:16]}...); refusing the file")
    elif confirm is None or not confirm(got):
        raise ImportFailed(f"{which} has no pinned hash in charchat; the file's SHA-256 is "
                           f"{got} (it waits in {dest.parent}); once you have checked it: "
                           f"charchat import {which} --sha256 {got}")
    return _import_download(dest, name, n_head, progress)


def import_pinned(which: str, name: str | None = None, url: str | None = None,
                  progress: Callable[[str, int, int], None] | None = None) -> Path:
    """Download a pinned GPT-2 (resuming a cut download, keeping nothing that does not match
    the pin), import it as `name` (default: its own name), then delete the download (the model
    file holds the weights). progress(stage, done, total)."""
    p = PINNED.get(which)
    if p is None:
        raise ImportFailed(f"unknown model {which!r}: use {', '.join([*PINNED, *UNPINNED])}, or "
                           f"--from FILE for a model.safetensors you have")
    name = store.check_name(name) if name else which
    if (store.models_dir() / name / store.WEIGHTS).exists():
        raise ImportFailed(f"a model named {name!r} already exists; choose another --name")
    dest = store.home() / "downloads" / f"{which}-{p.revision[:12]}" / "model.safetensors"
    if not (dest.is_file() and dest.stat().st_size == p.size):
        step = (lambda d, t: progress("downloading", d, t)) if progress else None
        try:
            download.fetch(url or p.url, dest, p.size, p.sha256, f"{which}'s weights", step,
                           resume=True)
        except download.DownloadError as e:
            raise ImportFailed(str(e)) from None
    elif not download.verified(dest, p.size, p.sha256):
        dest.unlink()
        raise ImportFailed(f"{dest}: changed since it was downloaded (SHA-256); removed, run "
                           "the same command again")
    return _import_download(dest, name, p.n_head, progress)


def _import_download(dest: Path, name: str, n_head: int,
                     progress: Callable[[str, int, int], None] | None) -> Path:
    """Import a downloaded file, then delete it: the model file holds the weights."""
    step = (lambda d, t: progress("importing", d, t)) if progress else None
    folder = import_file(dest, name, step, n_head=n_head)
    dest.unlink()
    try:
        dest.parent.rmdir()
    except OSError:
        pass
    return folder


def _tensors(path: Path):
    """The file's tensor names, a reader of one tensor at a time, and a reader of one tensor's
    shape (for safetensors, from the header alone)."""
    import torch

    if path.suffix == ".safetensors":
        table, base = _safetensors_table(path)
        return list(table), lambda k: _read_tensor(path, base, table[k]), \
            lambda k: tuple(table[k]["shape"])
    if path.suffix in (".bin", ".pt", ".pth"):
        try:
            sd = store.safe_torch_load(path, "weights file")
        except store.StoreError as e:
            raise ImportFailed(str(e)) from None
        if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
            raise ImportFailed(f"{path}: not a state dict of tensors")
        return list(sd), sd.__getitem__, lambda k: tuple(sd[k].shape)
    raise ImportFailed(f"{path}: expected model.safetensors or pytorch_model.bin")


# safetensors: an 8-byte little-endian header length, a JSON header {name: {"dtype", "shape",
# "data_offsets": [begin, end]}, "__metadata__": {...}}, then the tensors' bytes. Read here
# with plain reads into each tensor rather than through the safetensors package, which maps
# the file: every page of a map that is touched counts as the process's resident memory, so
# a gpt2-xl import (6.1 GB) peaked at 2.07x the file (bench_import.py); read this way, and
# with the Conv1D weights saved as transposed views, 1.15x.
_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}


def _safetensors_table(path: Path) -> tuple[dict, int]:
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if not 2 <= n <= 100 << 20:
                raise ValueError("header length out of range")
            header = json.loads(f.read(n))
        size = path.stat().st_size
    except (OSError, ValueError) as e:
        raise ImportFailed(f"{path}: not a readable safetensors file ({e})") from None
    if not isinstance(header, dict):
        raise ImportFailed(f"{path}: not a readable safetensors file (header is not an object)")
    header.pop("__metadata__", None)
    for name, t in header.items():
        ok = (isinstance(t, dict) and t.get("dtype") in _DTYPES
              and isinstance(t.get("shape"), list) and isinstance(t.get("data_offsets"), list)
              and len(t["data_offsets"]) == 2)
        if not ok:
            raise ImportFailed(f"{path}: tensor {name} is not float32/16 or its entry is damaged")
        begin, end = t["data_offsets"]
        itemsize = 2 if t["dtype"] in ("F16", "BF16") else 8 if t["dtype"] == "F64" else 4
        if end - begin != math.prod(tuple(t["shape"])) * itemsize or 8 + n + end > size:
            raise ImportFailed(f"{path}: tensor {name} does not fit the file (cut short?)")
    return header, 8 + n


def _read_tensor(path: Path, base: int, entry: dict) -> "torch.Tensor":
    import torch

    t = torch.empty(entry["shape"], dtype=getattr(torch, _DTYPES[entry["dtype"]]))
    begin, end = entry["data_offsets"]
    with open(path, "rb") as f:
        f.seek(base + begin)
        view = memoryview(t.view(-1).view(torch.uint8).numpy())
        if f.readinto(view) != end - begin:
            raise ImportFailed(f"{path}: cut short")
    return t


def _plain_name(key: str) -> str:
    return key.removeprefix("transformer.")


def read_shape(path: Path, n_head: int | None = None) -> dict:
    """n_layer, n_head, n_embd, block_size and vocab of a GPT-2 checkpoint, without reading its
    weights (safetensors: from the header)."""
    names, _, shape_of = _tensors(path)
    plain = {_plain_name(k): k for k in names}
    for needed in ("wte.weight", "wpe.weight", "ln_f.weight", "h.0.attn.c_attn.weight"):
        if needed not in plain:
            raise ImportFailed(f"{path}: not a GPT-2 checkpoint (no {needed})")
    layers = {int(k.split(".")[1]) for k in plain if k.startswith("h.")}
    n_layer = max(layers) + 1
    if layers != set(range(n_layer)):
        raise ImportFailed(f"{path}: blocks {sorted(set(range(n_layer)) - layers)} are missing")
    vocab, n_embd = _matrix(path, plain["wte.weight"], shape_of)
    block_size, _ = _matrix(path, plain["wpe.weight"], shape_of)
    n_head = (n_head or _heads_from_config(path.parent / "config.json")
              or KNOWN_HEADS.get((n_layer, n_embd)))
    if n_head is None:
        raise ImportFailed(f"{path}: {n_layer} layers x {n_embd} is not a GPT-2 shape charchat "
                           f"knows; put the model's config.json (with n_head) beside it")
    if vocab != gpt2().eot_id + 1:
        raise ImportFailed(f"{path}: its vocabulary has {vocab:,} tokens; GPT-2's has "
                           f"{gpt2().eot_id + 1:,}")
    return {"n_layer": n_layer, "n_head": n_head, "n_embd": n_embd, "block_size": block_size,
            "vocab": vocab, "bias": "h.0.attn.c_attn.bias" in plain}


def _matrix(path: Path, key: str, shape_of) -> tuple[int, int]:
    shape = shape_of(key)
    if len(shape) != 2:
        raise ImportFailed(f"{path}: {key} has shape {shape}, expected 2 dimensions")
    return int(shape[0]), int(shape[1])


def _heads_from_config(path: Path) -> int | None:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    n = d.get("n_head") if isinstance(d, dict) else None
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


def _state_dict(path: Path) -> Iterator[tuple[str, "torch.Tensor"]]:
    """charchat's (name, tensor) pairs, one tensor read at a time."""
    import torch

    names, get, _ = _tensors(path)
    for key in names:
        name = _plain_name(key)
        if name.endswith(_BUFFERS) or name == "lm_head.weight":
            continue  # the mask buffers; the head is the embedding
        t = get(key).to(torch.float32)
        if name.endswith(_CONV1D):
            # A transposed view, saved as it is (its storage and strides): a contiguous copy
            # would double the tensor for a moment, and freed blocks of 32 MB and less stay
            # with the process (glibc), which raised an xl import's peak by ~1 GB. Loading
            # copies it into the model's own (out, in) weights.
            t = t.t()
        if name == "wte.weight":
            rows = gpt2().padded_vocab_size
            grown = torch.empty(rows, t.shape[1], dtype=torch.float32)
            grown[: t.shape[0]] = t
            grown[t.shape[0]:] = t.mean(dim=0)  # turn tokens and padding: a neutral start
            yield "lm_head.weight", grown
            continue
        yield f"transformer.{name}", t


def import_file(path: str | Path, name: str | None = None,
                progress: Callable[[int, int], None] | None = None,
                n_head: int | None = None) -> Path:
    """Import a GPT-2 checkpoint as the model `name` (default: gpt2, gpt2-medium, ... by its
    shape, made unique). Returns the model's folder. ImportFailed or StoreError otherwise."""
    import torch

    from .config import GPTConfig

    path = Path(path).expanduser()
    if not path.is_file():
        raise ImportFailed(f"{path}: no such file")
    shape = read_shape(path, n_head)
    base = KNOWN_NAMES.get((shape["n_layer"], shape["n_embd"]), "gpt2-import")
    name = store.check_name(name) if name else store.unique_name(base)
    folder = store.models_dir() / name
    if (folder / store.WEIGHTS).exists():
        raise ImportFailed(f"a model named {name!r} already exists; choose another --name")
    config = GPTConfig(vocab_size=gpt2().padded_vocab_size, block_size=shape["block_size"],
                       n_layer=shape["n_layer"], n_head=shape["n_head"], n_embd=shape["n_embd"],
                       dropout=0.0, bias=shape["bias"])
    expected = store.expected_shapes(config)
    _check_room(path, folder, sum(math.prod(s) for k, s in expected.items()
                                  if k != "transformer.wte.weight") * 4)
    sd: dict[str, torch.Tensor] = {}
    total = len(expected) - 1  # the embedding is one entry, as the head
    for k, t in _state_dict(path):
        if k not in expected:
            raise ImportFailed(f"{path}: unexpected tensor {k}")
        if tuple(t.shape) != expected[k]:
            raise ImportFailed(f"{path}: {k} is {tuple(t.shape)}, a GPT-2 of this shape "
                               f"needs {expected[k]}")
        if not torch.isfinite(t).all():
            raise ImportFailed(f"{path}: {k} holds values that are not finite")
        sd[k] = t
        if progress:
            progress(len(sd), total)
    lacking = sorted(set(expected) - set(sd) - {"transformer.wte.weight"})
    if lacking:
        raise ImportFailed(f"{path}: missing {', '.join(lacking[:3])}")
    tok = gpt2()
    params = sum(t.numel() for k, t in sd.items() if k != "transformer.wpe.weight")
    made = not folder.exists()
    try:
        store.save_weights(folder, config, tok, sd, {"imported_from": str(path)})
        store.atomic_write_json(folder / "config.json", config.to_dict())
        for file, data in folder_files(tok).items():
            store.atomic_write_bytes(folder / file, data)
        now = time.time()
        store.write_meta(folder, name=name, params=params, created=now, updated=now,
                         corpus=f"{base} weights (imported)",
                         corpus_kind="prose", tokenizer="gpt2", imported_from=str(path),
                         # a base model: chat writes the conversation out as a script
                         # (charchat.chat), and samples with these until the user sets others
                         chat_frame="plain",
                         sampling={"temperature": 0.7, "top_k": 40, "top_p": 0.95,
                                   "max_new_chars": 300})
    except BaseException:
        if made:
            shutil.rmtree(folder, ignore_errors=True)  # no half-made model left listed
        raise
    return folder


def _check_room(path: Path, folder: Path, needed: int) -> None:
    """Refuse, before anything is read, an import that the memory or the disk cannot hold:
    the weights (float32) are held once in memory and written once to disk."""
    try:
        store.check_free_space(folder.parent, needed + (1 << 20), f"importing {path.name}")
    except store.DiskFull as e:
        raise ImportFailed(str(e)) from None
    free = _available_memory()
    if free is not None and needed > free:
        raise ImportFailed(f"{path}: importing needs {fmt_size(needed)} of memory, "
                           f"{fmt_size(free)} is available")


def _available_memory() -> int | None:
    """Bytes of memory available (Linux's MemAvailable), or None where it cannot be told."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
