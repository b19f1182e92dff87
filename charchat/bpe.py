"""Byte-level BPE tokenizers, encoded and decoded by tiktoken.

Two kinds, chosen with ``--tokenizer``:

- ``gpt2``: GPT-2's own vocabulary (tiktoken's r50k_base: 50,256 byte-pair ranks and
  <|endoftext|> = 50256). The ranks ship in the package (``data/gpt2.tiktoken``, MIT, from
  OpenAI's whisper package); their size and SHA-256 are checked before use, so a changed file is
  refused. charchat reads the file with its own parser: tiktoken's loader would look in (and
  write to) a process-wide cache in the temp folder, and download when it misses.
- ``bpe:N``: N byte-pair ranks (the 256 bytes plus N - 256 merges) trained on the user's corpus
  with rustbpe, with the GPT-4 split pattern. Kept in the model folder as a readable
  ``tokenizer.tiktoken`` ranks file beside ``tokenizer.json`` (pattern, special tokens, the
  ranks' SHA-256); never a pickle.

Special tokens follow the ranks, in this order: <|endoftext|>, then the four dialogue turn
tokens of charchat.tokenizer (<|user|>, <|assistant|>, <|system|>, <|end|>). Text is always
encoded as ordinary text, so typing "<|endoftext|>" gives its characters, never the control
token; turn tokens are placed by the code that builds a dialogue (``encode_turn``).

The model's embedding is padded to a multiple of 64 rows (``padded_vocab_size``; nanoGPT pads
GPT-2's 50,257 to 50,304): matrix shapes that are multiples of 64 run faster on a GPU. Padded
ids never occur in the data and are never sampled (generation masks them).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import json
import re
from pathlib import Path
from typing import Iterator

from .config import BPE_RANGE
from .tokenizer import (ASSISTANT, END, SYSTEM, USER, EncodeResult, TokenizerError,
                        TurnTokens)

ENDOFTEXT = "<|endoftext|>"
BPE_SPECIALS = (ENDOFTEXT, USER, ASSISTANT, SYSTEM, END)

GPT2_FILE = Path(__file__).parent / "data" / "gpt2.tiktoken"
GPT2_SIZE = 835_554
GPT2_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
GPT2_RANKS = 50_256

# The split patterns (regular expressions that cut text into pieces before merging): GPT-2's as
# tiktoken writes it for r50k_base, and GPT-4's (cl100k_base), which keeps runs of digits to at
# most three and does not glue a space to punctuation.
GPT2_PATTERN = (r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s""")
GPT4_PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+|"""
                r""" ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""")

BPE_MIN, BPE_MAX = BPE_RANGE  # bpe:N: ranks, the 256 bytes included
PAD_MULTIPLE = 64
RANKS_FILE = "tokenizer.tiktoken"
_SPEC_RE = re.compile(r"bpe:(\d+)")


def pad_vocab(n: int, multiple: int = PAD_MULTIPLE) -> int:
    return -(-n // multiple) * multiple


# ---------------------------------------------------------------------------------------------
# Ranks files: "<base64 of the token's bytes> <rank>" per line


def parse_ranks(data: bytes, where: str) -> dict[bytes, int]:
    """Ranks from a .tiktoken file's bytes. Ranks must be 0..n-1, each once, each token's bytes
    once, and every single byte must be a token (byte-level BPE can then encode any text).
    TokenizerError names `where` and the first bad line."""
    ranks: dict[bytes, int] = {}
    for lineno, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise TokenizerError(f"{where}: line {lineno} is not '<base64> <rank>'")
        try:
            token = base64.b64decode(parts[0], validate=True)
            rank = int(parts[1])
        except (binascii.Error, ValueError):
            raise TokenizerError(f"{where}: line {lineno} is not '<base64> <rank>'") from None
        if rank != len(ranks):
            raise TokenizerError(f"{where}: line {lineno} has rank {rank}, expected {len(ranks)}")
        if not token or token in ranks:
            raise TokenizerError(f"{where}: line {lineno} repeats a token or is empty")
        ranks[token] = rank
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise TokenizerError(f"{where}: byte 0x{missing[0]:02x} has no token "
                             f"({len(missing)} of the 256 bytes are missing)")
    return ranks


def format_ranks(ranks: dict[bytes, int]) -> bytes:
    order = sorted(ranks.items(), key=lambda kv: kv[1])
    return b"".join(base64.b64encode(t) + b" %d\n" % r for t, r in order)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_gpt2_ranks(path: Path = GPT2_FILE) -> tuple[dict[bytes, int], bytes]:
    """GPT-2's ranks from the packaged file, after checking its size and SHA-256."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise TokenizerError(f"{path}: cannot read GPT-2's vocabulary ({e.strerror or e})") from None
    if len(data) != GPT2_SIZE or sha256(data) != GPT2_SHA256:
        raise TokenizerError(
            f"{path}: not GPT-2's vocabulary ({len(data):,} bytes, SHA-256 {sha256(data)[:12]}…; "
            f"expected {GPT2_SIZE:,} bytes, {GPT2_SHA256[:12]}…); reinstall charchat")
    return parse_ranks(data, str(path)), data


# ---------------------------------------------------------------------------------------------
# The tokenizer


class StreamDecoder:
    """Token ids in, text out, one token at a time: a character whose UTF-8 bytes span several
    tokens is held back until it is whole, so a stream never shows half of one as U+FFFD."""

    def __init__(self, tokenizer: "BPETokenizer", show_specials: bool) -> None:
        self._tok = tokenizer
        self._show = show_specials
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, token: int) -> str:
        name = self._tok.special_names.get(token)
        if name is not None:
            # A special token ends any partial character before it.
            return self._utf8.decode(b"", final=True) + (name if self._show else "")
        return self._utf8.decode(self._tok.token_bytes(token))

    def flush(self) -> str:
        return self._utf8.decode(b"", final=True)


class BPETokenizer(TurnTokens):
    """A byte-level BPE vocabulary with charchat's special tokens after its ranks."""

    kind = "bpe"

    def __init__(self, name: str, ranks: dict[bytes, int], pattern: str,
                 ranks_data: bytes | None = None) -> None:
        import tiktoken

        self.name = name
        self.pattern = pattern
        self.ranks_data = ranks_data if ranks_data is not None else format_ranks(ranks)
        self.ranks_sha256 = sha256(self.ranks_data)
        n = len(ranks)
        self.n_ranks = n
        self.special_ids = {s: n + i for i, s in enumerate(BPE_SPECIALS)}
        self.special_names = {i: s for s, i in self.special_ids.items()}
        self.specials = BPE_SPECIALS
        self.enc = tiktoken.Encoding(
            name=f"charchat-{name}", pat_str=pattern, mergeable_ranks=ranks,
            special_tokens=dict(self.special_ids), explicit_n_vocab=n + len(BPE_SPECIALS))
        self._bytes_cache: dict[int, bytes] = {}

    @property
    def eot_id(self) -> int:
        return self.special_ids[ENDOFTEXT]

    @property
    def vocab_size(self) -> int:
        return self.n_ranks + len(BPE_SPECIALS)

    @property
    def padded_vocab_size(self) -> int:
        return pad_vocab(self.vocab_size)

    def __len__(self) -> int:
        return self.vocab_size

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, BPETokenizer) and self.ranks_sha256 == other.ranks_sha256
                and self.pattern == other.pattern)

    def __hash__(self) -> int:
        return hash(self.ranks_sha256)

    def describe(self) -> str:
        return f"{self.name} ({self.vocab_size:,} tokens)"

    # encoding
    def encode(self, text: str) -> list[int]:
        """Ids of text, as ordinary text: "<|endoftext|>" typed in it is characters."""
        return self.enc.encode_ordinary(text)

    def encode_lenient(self, text: str) -> EncodeResult:
        return EncodeResult(self.encode(text), set())  # every byte has a token: nothing unknown

    def start_ids(self) -> list[int]:
        """What free sampling starts from when given no prompt: a newline."""
        return self.encode("\n")

    # decoding
    def token_bytes(self, token: int) -> bytes:
        b = self._bytes_cache.get(token)
        if b is None:
            if token in self.special_names:
                b = self.special_names[token].encode()
            elif 0 <= token < self.n_ranks:
                b = self.enc.decode_single_token_bytes(token)
            else:
                raise TokenizerError(f"token id {token} is outside the vocabulary "
                                     f"({self.vocab_size} tokens)")
            self._bytes_cache[token] = b
        return b

    def decode(self, ids) -> str:
        """Text of ids, special tokens shown by name."""
        return b"".join(self.token_bytes(int(i)) for i in ids).decode("utf-8", "replace")

    def decode_text(self, ids) -> str:
        """Like decode, but special tokens are left out (they are structure, not text)."""
        n = self.n_ranks
        return self.enc.decode_bytes([int(i) for i in ids if 0 <= int(i) < n]).decode(
            "utf-8", "replace")

    def stream_decoder(self, show_specials: bool = False) -> StreamDecoder:
        return StreamDecoder(self, show_specials)

    # storing
    def to_dict(self, inline_ranks: bool = False) -> dict:
        d = {"format": "charchat-bpe", "version": 1, "name": self.name, "pattern": self.pattern,
             "specials": dict(self.special_ids), "ranks_file": RANKS_FILE if self.name != "gpt2"
             else "charchat/data/gpt2.tiktoken", "ranks_sha256": self.ranks_sha256}
        if inline_ranks and self.name != "gpt2":
            d["ranks"] = self.ranks_data.decode("ascii")
        return d

    def to_json(self, inline_ranks: bool = False) -> str:
        return json.dumps(self.to_dict(inline_ranks))

    @classmethod
    def from_dict(cls, d: dict, ranks_data: bytes | None = None,
                  where: str = "tokenizer") -> "BPETokenizer":
        """From to_dict's output. The ranks come from the dict ("ranks"), from ranks_data (a
        model folder's tokenizer.tiktoken) or, for gpt2, from the package; their SHA-256 must
        match the one recorded."""
        if not isinstance(d, dict) or d.get("format") != "charchat-bpe":
            raise TokenizerError(f"{where}: not a charchat BPE tokenizer")
        if d.get("version") != 1:
            raise TokenizerError(f"{where}: unsupported tokenizer version {d.get('version')!r}")
        name, pattern = d.get("name"), d.get("pattern")
        if not isinstance(name, str) or not isinstance(pattern, str):
            raise TokenizerError(f"{where}: tokenizer has no name or pattern")
        if name == "gpt2":
            tok = gpt2()
            if pattern != tok.pattern or d.get("ranks_sha256") != GPT2_SHA256:
                raise TokenizerError(f"{where}: says gpt2 but its pattern or ranks differ")
        else:
            if ranks_data is None:
                ranks = d.get("ranks")
                if not isinstance(ranks, str):
                    raise TokenizerError(f"{where}: the ranks of {name} are missing")
                ranks_data = ranks.encode("ascii", "replace")
            got = sha256(ranks_data)
            if got != d.get("ranks_sha256"):
                raise TokenizerError(f"{where}: the ranks' SHA-256 is {got[:12]}…, the record "
                                     f"says {str(d.get('ranks_sha256'))[:12]}… (changed file)")
            tok = cls(name, parse_ranks(ranks_data, where), pattern, ranks_data)
        if d.get("specials") != tok.special_ids:
            raise TokenizerError(f"{where}: unexpected special tokens")
        return tok


_GPT2: BPETokenizer | None = None


def gpt2() -> BPETokenizer:
    """GPT-2's tokenizer (built once per process: reading and checking the ranks takes ~0.1 s)."""
    global _GPT2
    if _GPT2 is None:
        ranks, data = read_gpt2_ranks()
        if len(ranks) != GPT2_RANKS:
            raise TokenizerError(f"{GPT2_FILE}: {len(ranks)} ranks, expected {GPT2_RANKS}")
        _GPT2 = BPETokenizer("gpt2", ranks, GPT2_PATTERN, data)
    return _GPT2


def bpe_size(spec: str) -> int | None:
    """N of "bpe:N", or None for another spec."""
    m = _SPEC_RE.fullmatch(spec)
    return int(m.group(1)) if m else None


def train_bpe(texts: Iterator[str], n_ranks: int, pattern: str = GPT4_PATTERN) -> BPETokenizer:
    """A byte-level BPE of n_ranks ranks (256 bytes + merges) trained with rustbpe on texts, in
    the order given (the same texts in the same order give the same ranks)."""
    import rustbpe

    if not BPE_MIN <= n_ranks <= BPE_MAX:
        raise TokenizerError(f"bpe:{n_ranks}: the vocabulary must be from {BPE_MIN} to {BPE_MAX}")
    t = rustbpe.Tokenizer()
    t.train_from_iterator(texts, n_ranks, pattern=pattern)
    ranks = {bytes(b): int(r) for b, r in t.get_mergeable_ranks()}
    return BPETokenizer(f"bpe:{n_ranks}", ranks, pattern)
