"""Either tokenizer, from what was stored: a model file's record or a model folder's files.

A character tokenizer is one JSON record (charchat.tokenizer). A BPE tokenizer (charchat.bpe)
is a JSON record plus its ranks: GPT-2's ship in the package; a trained one's are the folder's
``tokenizer.tiktoken`` (or, inside a model file, a copy in the record, so that the file loads on
its own). Nothing here unpickles anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Union

from .bpe import RANKS_FILE, BPETokenizer
from .tokenizer import CharTokenizer, TokenizerError

Tokenizer = Union[CharTokenizer, BPETokenizer]


def from_json(text: str, where: str = "tokenizer", ranks_data: bytes | None = None) -> Tokenizer:
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise TokenizerError(f"{where}: tokenizer is not valid JSON ({e})") from None
    if isinstance(d, dict) and d.get("format") == "charchat-bpe":
        return BPETokenizer.from_dict(d, ranks_data, where)
    return CharTokenizer.from_dict(d)


def read_folder(folder: Path) -> Tokenizer:
    """A model folder's tokenizer.json, with its tokenizer.tiktoken for a trained BPE."""
    folder = Path(folder)
    path = folder / "tokenizer.json"
    text = path.read_text()
    ranks = folder / RANKS_FILE
    data = ranks.read_bytes() if ranks.exists() else None
    return from_json(text, str(path), data)


def folder_files(tokenizer: Tokenizer) -> dict[str, bytes]:
    """The files a model folder keeps its tokenizer in: name -> bytes."""
    files = {"tokenizer.json": (tokenizer.to_json() + "\n").encode()}
    if isinstance(tokenizer, BPETokenizer) and tokenizer.name != "gpt2":
        files[RANKS_FILE] = tokenizer.ranks_data
    return files
