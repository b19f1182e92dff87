"""A conversation with a model: it keeps the turns, builds each prompt, and streams replies.

Two kinds of model, two prompt rules:

- Dialogue models (trained on chat JSONL) see the conversation as turns:
  ``<|user|>text<|end|><|assistant|>text<|end|> ... <|user|>new text<|end|><|assistant|>``
  and a reply ends at the end-of-turn token.
- Prose models (trained on plain text) see the conversation as one running document, and a reply
  continues the user's text: ``user text + reply + "\\n\\n" + next user text + ...``. A reply ends
  at a blank line (two newlines), at a stop sequence, or at the length limit.
- Framed models (OpenAI's GPT-2 imported: a base model, never trained on chat) see the
  conversation written out as a plain-text script, FRAME_HEADER then one line a turn,
  ``User: text`` and ``Assistant: text``, ending with ``Assistant:``; a reply ends where the
  model starts the next turn's line (a newline and ``User:`` or ``Assistant:``) or at a blank
  line.

The prompt is the newest part of the conversation that fits in the model's context, with room
left for the reply (a quarter of the context): whole old turns are dropped first, and only if the
newest message alone is too long is it cut, keeping its end.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from .decoding import DecodeWeightsCache
from .config import SamplingSettings
from .generation import stream_text
from .tokenizer import SPECIAL_TOKENS
from .tokenizers import Tokenizer

PROSE_TURN_SEP = "\n\n"
FRAME_HEADER = "A conversation between a user and a helpful assistant.\n\n"
FRAME_ROLES = {"user": "User:", "assistant": "Assistant:"}
FRAME_STOPS = ("\nUser:", "\nAssistant:", "\n\n")


@dataclass
class Message:
    role: str  # user or assistant
    content: str
    ended: str = ""  # assistant turns: end_token, stop, length or cancelled
    # Assistant turns written by another model than the conversation's own (one reopened
    # after its model was deleted): that model's name. Empty: the conversation's model.
    model: str = ""


class ChatSession:
    def __init__(
        self,
        model,
        tokenizer: Tokenizer,
        kind: str = "dialogue",
        settings: SamplingSettings | None = None,
        amp_dtype: torch.dtype | None = None,
        on_notice: Callable[[str], None] | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.kind = ("dialogue" if kind in ("dialogue", "mixed") else
                     "framed" if kind == "framed" else "prose")
        self.settings = settings or SamplingSettings()
        self.amp_dtype = amp_dtype
        self.on_notice = on_notice
        self.messages: list[Message] = []
        self.unknown_seen: set[str] = set()
        self.notices: list[str] = []
        self.told_too_long = False
        # Prepared once, reused for every reply: a session reads its model, never trains it.
        # Whoever changes the model's weights in place must call weights_changed().
        self._weights = DecodeWeightsCache()

    def weights_changed(self) -> None:
        """Tell the session its model's weights were changed in place (see DecodeWeightsCache)."""
        self._weights.clear()

    @classmethod
    def from_loaded(cls, loaded, settings=None, on_notice=None) -> "ChatSession":
        from .device import pick_device

        dev = loaded.model.lm_head.weight.device
        amp = pick_device(str(dev)).amp_dtype if dev.type == "cuda" else None
        return cls(loaded.model, loaded.tokenizer, loaded.chat_kind, settings, amp, on_notice)

    # -----------------------------------------------------------------------------------------
    def reset(self) -> None:
        self.messages.clear()

    def _encode(self, text: str) -> list[int]:
        res = self.tokenizer.encode_lenient(text)
        new = res.unknown - self.unknown_seen
        if new:
            self.unknown_seen |= new
            shown = unknown_list(text, new)
            note = (f"The model never saw {shown}: such characters are replaced by a close "
                    "character it knows (plain quote, unaccented letter, other case) or left out.")
            self._notice(note)
        return res.ids

    def _notice(self, note: str) -> None:
        self.notices.append(note)
        if self.on_notice:
            self.on_notice(note)

    def _budget(self) -> int:
        """How many ids of conversation go into a prompt: a quarter of the context is left
        for the reply."""
        bs = self.model.config.block_size
        tail = 1 if self.kind == "dialogue" else 0  # the assistant marker the reply follows
        return max(bs - max(1, bs // 4), min(bs, tail + 1))

    def build_prompt(self) -> list[int]:
        """Ids of the newest turns that fit, ending where the model should start replying."""
        tok = self.tokenizer
        if self.kind == "dialogue":
            tail = [tok.assistant_id]
            chunks: list[list[int]] = []
            for m in self.messages:
                role_id = tok.user_id if m.role == "user" else tok.assistant_id
                chunks.append([role_id, *self._encode_quiet(m.content), tok.end_id])
        elif self.kind == "framed":
            head = self._encode_quiet(FRAME_HEADER)
            tail = self._encode_quiet(FRAME_ROLES["assistant"])
            chunks = [self._encode_quiet(f"{FRAME_ROLES[m.role]} {m.content.strip()}\n")
                      for m in self.messages]
            return head + _fit(chunks, tail, self._budget() - len(head), keep_role_token=False)
        else:
            tail = []
            chunks = []
            for i, m in enumerate(self.messages):
                text = m.content
                if m.role == "assistant" and i + 1 < len(self.messages):
                    text += PROSE_TURN_SEP
                chunks.append(self._encode_quiet(text))
        ids = _fit(chunks, tail, self._budget(), keep_role_token=self.kind == "dialogue")
        return ids or start_ids(tok)

    def _encode_quiet(self, text: str) -> list[int]:
        return self.tokenizer.encode_lenient(text).ids

    def stream_reply(self, text: str, cancel: threading.Event | None = None) -> Iterator[str]:
        """Add the user's message and stream the reply; the reply is recorded when the stream
        ends, also when it is stopped early (cancel set, or the consumer stops reading)."""
        own = len(self._encode(text))  # tells the user once about unknown characters
        markers = 3 if self.kind == "dialogue" else 0  # its turn's two, and the reply's
        budget = self._budget()
        if own + markers > budget and not self.told_too_long:
            self.told_too_long = True
            self._notice(
                f"This message has {own:,} characters, more than the model reads at once: it "
                f"replies to the last {budget - markers:,} (its context is "
                f"{self.model.config.block_size:,} characters).")
        self.messages.append(Message("user", text))
        return self._reply(cancel)

    def regenerate(self, cancel: threading.Event | None = None) -> Iterator[str]:
        """Drop the last reply and stream a new one for the same message."""
        if self.messages and self.messages[-1].role == "assistant":
            self.messages.pop()
        if not self.messages or self.messages[-1].role != "user":
            raise ValueError("nothing to regenerate: send a message first")
        return self._reply(cancel)

    def _reply(self, cancel: threading.Event | None) -> Iterator[str]:
        tok = self.tokenizer
        settings = self.settings
        if self.kind == "dialogue":
            # (and a BPE's <|endoftext|>: never in charchat's dialogue, it ends a document)
            stop_ids = {tok.end_id, tok.user_id, tok.assistant_id, tok.system_id,
                        *([tok.eot_id] if hasattr(tok, "eot_id") else [])}
        else:
            stop_ids = set(tok.special_ids.values())
            stops = FRAME_STOPS if self.kind == "framed" else (PROSE_TURN_SEP,)
            missing = [x for x in stops if x not in settings.stop]
            if missing:
                settings = SamplingSettings.from_dict(
                    {**settings.to_dict(), "stop": [*settings.stop, *missing]}
                )
        outcome: dict = {}
        pieces: list[str] = []
        stream = stream_text(self.model, tok, self.build_prompt(), settings, stop_ids,
                             self.amp_dtype, outcome=outcome, weights=self._weights)
        ended = "cancelled"
        try:
            for piece in stream:
                if cancel is not None and cancel.is_set():
                    break
                if self.kind == "framed" and not pieces:
                    piece = piece.lstrip()  # the space after "Assistant:" is the frame's
                    if not piece:
                        continue
                pieces.append(piece)
                yield piece
            else:
                ended = outcome.get("reason", "length")
                if ended == "stop_id":
                    ended = "end_token" if outcome.get("token") == tok.end_id else "stop"
        finally:
            stream.close()
            self.messages.append(Message("assistant", "".join(pieces), ended))

    def reply(self, text: str) -> str:
        """The whole reply at once."""
        return "".join(self.stream_reply(text))

    # -----------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "messages": [{"role": m.role, "content": m.content, "ended": m.ended,
                          **({"model": m.model} if m.model else {})}
                         for m in self.messages],
        }

    def load_messages(self, items: list[dict]) -> None:
        msgs = []
        for m in items:
            if isinstance(m, dict) and m.get("role") in ("user", "assistant") and isinstance(
                m.get("content"), str
            ):
                model = m.get("model")
                msgs.append(Message(m["role"], m["content"], str(m.get("ended", "")),
                                    model if isinstance(model, str) else ""))
        self.messages = msgs


def _fit(chunks: list[list[int]], tail: list[int], budget: int, keep_role_token: bool) -> list[int]:
    """The newest chunks whose total (with tail) fits in budget; cut the newest if it alone
    does not fit, keeping its end (and its role token, for dialogue)."""
    room = budget - len(tail)
    if room <= 0:
        return list(tail)
    kept: list[list[int]] = []
    used = 0
    for chunk in reversed(chunks):
        if used + len(chunk) <= room:
            kept.append(chunk)
            used += len(chunk)
        else:
            if not kept:
                if keep_role_token and chunk:
                    kept.append([chunk[0], *chunk[len(chunk) - room + 1 :]] if room > 1 else chunk[-room:])
                else:
                    kept.append(chunk[len(chunk) - room :])
            break
    out = [i for chunk in reversed(kept) for i in chunk]
    return out + tail


def start_ids(tok: Tokenizer) -> list[int]:
    """What to generate from when a prompt has nothing readable (empty, or only characters the
    model never saw): a newline, as a fresh paragraph, or else the end of a turn."""
    return tok.start_ids()


def unknown_list(text: str, unknown: set[str], limit: int = 8) -> str:
    """The characters of text that are in unknown, in the order they were typed and each once:
    "'é' 'ß' and 3 more" (so none is left out without a word)."""
    ordered = [c for c in dict.fromkeys(text) if c in unknown]
    shown = " ".join(repr(c) for c in ordered[:limit])
    return shown + (f" and {len(ordered) - limit} more" if len(ordered) > limit else "")


_MARKERS = re.compile("(" + "|".join(re.escape(t) for t in SPECIAL_TOKENS) + ")")


def prompt_ids(tok: Tokenizer, text: str, turns: bool = False) -> tuple[list[int], set[str]]:
    """Ids to continue `text` from (never empty), and the characters the model never saw.
    With turns (a dialogue model), turn markers written out (<|user|>, <|assistant|>,
    <|system|>, <|end|>, as `charchat sample` prints them) are the turn tokens themselves; a
    prose model never trained on those tokens, so for it they are plain characters."""
    ids: list[int] = []
    unknown: set[str] = set()
    for piece in _MARKERS.split(text) if turns else [text]:
        if piece in tok.special_ids:
            ids.append(tok.special_ids[piece])
        elif piece:
            res = tok.encode_lenient(piece)
            ids += res.ids
            unknown |= res.unknown
    return ids or start_ids(tok), unknown


def sample(loaded, prompt: str = "", chars: int = 200, **settings) -> str:
    """Continue prompt with a loaded model (charchat.load_model) and return the text."""
    s = SamplingSettings(max_new_chars=chars, **settings)
    tok = loaded.tokenizer
    ids, _ = prompt_ids(tok, prompt, turns=loaded.kind != "prose")
    dev = loaded.model.lm_head.weight.device
    from .device import pick_device

    amp = pick_device(str(dev)).amp_dtype if dev.type == "cuda" else None
    return "".join(stream_text(loaded.model, tok, ids, s, (), amp))
