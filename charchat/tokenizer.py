"""Character-level tokenizer with reserved chat-turn tokens.

Ids 0..3 are special tokens that mark dialogue turns; every other id is one character of the
training corpus, in code-point order. The special tokens have no characters of their own, so no
text a user types can forge a turn boundary.

Characters the model never saw (the rule used at chat and sample time, see ``encode_lenient``):
  1. a compatibility form is tried (NFKC: full-width letters, ligatures, non-breaking spaces);
  2. then typographic stand-ins (curly quotes -> straight, dashes -> '-', ellipsis -> '...');
  3. then the letter without accents (e -> e for an accented e), then the other case (A <-> a);
  4. otherwise the character is dropped.
The caller gets the set of characters that were changed or dropped, so it can tell the user once.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass

USER = "<|user|>"
ASSISTANT = "<|assistant|>"
SYSTEM = "<|system|>"
END = "<|end|>"
SPECIAL_TOKENS = (USER, ASSISTANT, SYSTEM, END)
ROLE_TOKENS = {"user": USER, "assistant": ASSISTANT, "system": SYSTEM}

_TYPOGRAPHIC = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-",
    "\u2026": "...", "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\t": " ", "\r": "",
}


class TokenizerError(ValueError):
    pass


@dataclass
class EncodeResult:
    ids: list[int]
    unknown: set[str]  # characters replaced or dropped by the unknown-character rule


class CharStreamDecoder:
    """Token ids in, text out, one at a time (the same interface as charchat.bpe's)."""

    def __init__(self, tokenizer: "CharTokenizer", show_specials: bool) -> None:
        self._itos = tokenizer.itos
        self._first = 0 if show_specials else len(tokenizer.specials)

    def feed(self, token: int) -> str:
        return self._itos[token] if token >= self._first else ""

    def flush(self) -> str:
        return ""


class TurnTokens:
    """What both kinds of tokenizer share: the ids of the turn tokens (from `special_ids`) and
    how a dialogue turn is encoded with them."""

    special_ids: dict[str, int]

    @property
    def user_id(self) -> int:
        return self.special_ids[USER]

    @property
    def assistant_id(self) -> int:
        return self.special_ids[ASSISTANT]

    @property
    def system_id(self) -> int:
        return self.special_ids[SYSTEM]

    @property
    def end_id(self) -> int:
        return self.special_ids[END]

    def encode_turn(self, role: str, content: str, lenient: bool = False) -> EncodeResult:
        """A dialogue turn: role token, the content's tokens, end-of-turn token."""
        if role not in ROLE_TOKENS:
            raise TokenizerError(f"unknown role {role!r} (expected user, assistant or system)")
        if lenient:
            body = self.encode_lenient(content)
        else:
            body = EncodeResult(self.encode(content), set())
        ids = [self.special_ids[ROLE_TOKENS[role]], *body.ids, self.end_id]
        return EncodeResult(ids, body.unknown)


class CharTokenizer(TurnTokens):
    kind = "char"
    name = "char"

    def __init__(self, chars: str | list[str]) -> None:
        chars = sorted(set(chars))
        for c in chars:
            if len(c) != 1:
                raise TokenizerError(f"tokenizer characters must be single characters, got {c!r}")
        self.chars: list[str] = chars
        self.specials: tuple[str, ...] = SPECIAL_TOKENS
        n = len(self.specials)
        self.stoi: dict[str, int] = {c: i + n for i, c in enumerate(chars)}
        self.itos: list[str] = list(self.specials) + chars
        self.special_ids: dict[str, int] = {s: i for i, s in enumerate(self.specials)}
        self._fallback_cache: dict[str, str] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    @property
    def padded_vocab_size(self) -> int:
        return self.vocab_size  # a few dozen rows: padding would only change saved models

    def __len__(self) -> int:
        return self.vocab_size

    def describe(self) -> str:
        return f"char ({len(self.chars)} characters)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharTokenizer) and self.chars == other.chars

    def encode(self, text: str) -> list[int]:
        """Ids of text; every character must be in the vocabulary (KeyError names the first
        one that is not). Use encode_lenient for text typed by a person."""
        try:
            return [self.stoi[c] for c in text]
        except KeyError as e:
            raise TokenizerError(f"character {e.args[0]!r} is not in the vocabulary") from None

    def encode_lenient(self, text: str) -> EncodeResult:
        """Ids of text, applying the unknown-character rule of the module docstring."""
        ids: list[int] = []
        unknown: set[str] = set()
        stoi = self.stoi
        for c in text:
            i = stoi.get(c)
            if i is not None:
                ids.append(i)
                continue
            unknown.add(c)
            for r in self._fallback(c):
                ids.append(stoi[r])
        return EncodeResult(ids, unknown)

    def _fallback(self, c: str) -> str:
        if c in self._fallback_cache:
            return self._fallback_cache[c]
        candidates = [unicodedata.normalize("NFKC", c), _TYPOGRAPHIC.get(c, "")]
        stripped = "".join(
            ch for ch in unicodedata.normalize("NFKD", c) if not unicodedata.combining(ch)
        )
        candidates += [stripped, c.swapcase(), stripped.swapcase()]
        out = ""
        for cand in candidates:
            if cand and cand != c and all(ch in self.stoi for ch in cand):
                out = cand
                break
        self._fallback_cache[c] = out
        return out

    def decode(self, ids) -> str:
        itos = self.itos
        return "".join(itos[int(i)] for i in ids)

    def decode_text(self, ids) -> str:
        """Like decode, but special tokens are left out (they are structure, not text)."""
        n = len(self.specials)
        itos = self.itos
        return "".join(itos[int(i)] for i in ids if int(i) >= n)

    def stream_decoder(self, show_specials: bool = False) -> CharStreamDecoder:
        return CharStreamDecoder(self, show_specials)

    def start_ids(self) -> list[int]:
        """What free sampling starts from when given no prompt: a newline, or an end of turn
        for a vocabulary without one."""
        return [self.stoi["\n"]] if "\n" in self.stoi else [self.end_id]

    def utf8_lengths(self) -> list[int]:
        """UTF-8 bytes of each id's text, a special token counting one (bits per byte)."""
        if not hasattr(self, "_lengths"):
            self._lengths = [1] * len(self.specials) + [len(c.encode("utf-8", "surrogatepass"))
                                                        for c in self.chars]
        return self._lengths

    def to_dict(self, inline_ranks: bool = False) -> dict:
        return {"format": "charchat-tokenizer", "version": 1, "specials": list(self.specials),
                "chars": "".join(self.chars)}

    @classmethod
    def from_dict(cls, d: dict) -> "CharTokenizer":
        if not isinstance(d, dict) or d.get("format") != "charchat-tokenizer":
            raise TokenizerError("not a charchat tokenizer file")
        if d.get("version") != 1:
            raise TokenizerError(f"unsupported tokenizer version {d.get('version')!r}")
        if list(d.get("specials", [])) != list(SPECIAL_TOKENS):
            raise TokenizerError("tokenizer file has unexpected special tokens")
        chars = d.get("chars")
        if not isinstance(chars, str):
            raise TokenizerError("tokenizer file has no character list")
        return cls(chars)

    def to_json(self, inline_ranks: bool = False) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "CharTokenizer":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise TokenizerError(f"tokenizer file is not valid JSON: {e}") from None
