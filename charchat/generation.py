"""Sampling from a GPT: token choice, cached generation, and text streaming with stop rules.

Context longer than block_size. Learned position embeddings stop at block_size, so the context
cannot simply slide one position per token: every position of a cached key would shift. The rule
used here: when the cache is full and one more token must be read, keep the newest
``keep = block_size // 2`` tokens (the new one included), empty the cache and refill it with
those tokens in one forward pass. A refill reads block_size // 2 positions once every
block_size // 2 new tokens, so past the first block generation costs about one position of
prefill per token on top of the decode step, and the model always sees at least half a block of
context. Keeping three quarters instead (an earlier rule) re-read three positions per token:
~12% slower over 500 tokens of a 6-layer, 384-wide model, for no measurable gain in loss (a
block-256 model scored 1.4600 over positions 127-255 against 1.4589 over 191-255; see
benchmarks/README.md). ``context_after`` states the rule as a pure function; the tests check
cached generation against uncached forwards over exactly those contexts.
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator

import torch

from .allocator import keep_freed_memory
from .config import SamplingSettings
from .decoding import DecodeStep, DecodeWeightsCache


def refill_keep(block_size: int) -> int:
    """How many of the newest tokens stay in context when a full cache is refilled."""
    return max(1, block_size // 2)


def context_after(ctx: list[int], token: int, block_size: int) -> list[int]:
    """The context the model reads after `token` is appended to `ctx` (the rule above)."""
    if len(ctx) < block_size:
        return ctx + [token]
    keep = refill_keep(block_size)
    return ctx[len(ctx) - keep + 1 :] + [token]


def _amp_context(device: torch.device, amp_dtype: torch.dtype | None):
    if amp_dtype is None or device.type != "cuda":
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type="cuda", dtype=amp_dtype)


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick one token id per row of logits (B, V); returns a LongTensor of shape (B,)."""
    if temperature is None or temperature <= 0:
        return torch.argmax(logits, dim=-1)
    logits = logits.float() / temperature
    if top_k is not None and 0 < top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if top_p is not None and 0.0 < top_p < 1.0:
        sorted_p, order = torch.sort(probs, dim=-1, descending=True)
        # Drop a token when the tokens likelier than it already reach top_p; the likeliest
        # token is always kept, so the set is never empty.
        drop = (torch.cumsum(sorted_p, dim=-1) - sorted_p) >= top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
    # Exponential race: argmax of p_i / E_i with E_i ~ Exp(1) picks i with probability p_i
    # exactly (it is the Gumbel-max trick in another form), in two cheap ops where
    # torch.multinomial costs ~60 us a call on a CPU.
    noise = torch.empty_like(probs).exponential_(generator=generator)
    return torch.argmax(probs / noise, dim=-1)


@torch.no_grad()
def generate_ids(
    model,
    idx: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    amp_dtype: torch.dtype | None = None,
    quantize: str | None = None,
    weights: DecodeWeightsCache | None = None,
    vocab_limit: int | None = None,
) -> Iterator[torch.Tensor]:
    """Yield max_new_tokens sampled tokens, each a LongTensor of shape (B,), using a KV cache.

    amp_dtype runs each forward pass under autocast (CUDA). The autocast context is entered per
    call, never across a yield: it is thread-local state and must not leak into the caller.
    quantize="int8" reads new tokens through int8 weights (CPU; see charchat.decoding).
    weights keeps the decode step's prepared weights between calls (see DecodeWeightsCache).
    vocab_limit: ids from here up are never sampled (the padding rows of a BPE model's
    embedding, charchat.bpe).
    """
    if idx.dim() != 2 or idx.size(1) == 0:
        raise ValueError("idx must be a non-empty LongTensor of shape (batch, time)")
    if max_new_tokens <= 0:
        return
    keep_freed_memory()
    was_training = model.training
    model.eval()
    try:
        bs = model.config.block_size
        keep = refill_keep(bs)
        B = idx.size(0)
        # `window` mirrors the cache: the token ids whose keys and values it holds.
        window = torch.empty(B, bs, dtype=torch.long, device=idx.device)
        ctx = idx[:, -bs:]
        n = ctx.size(1)
        window[:, :n] = ctx
        cache = model.new_cache(B)
        amp = _amp_context(idx.device, amp_dtype)
        step = DecodeStep(model, cache, quantize, weights)
        with amp():
            logits = model(ctx, cache=cache, last_only=True)[0][:, -1, :]
        for i in range(max_new_tokens):
            if vocab_limit is not None and vocab_limit < logits.size(-1):
                logits = logits.clone()
                logits[:, vocab_limit:] = float("-inf")
            tok = sample_next(logits, temperature, top_k, top_p, generator)
            yield tok
            if i == max_new_tokens - 1:
                break  # no forward pass for a token nobody will read
            if n < bs:
                window[:, n] = tok
                n += 1
                with amp():
                    logits = step(tok)
            else:
                # Full: keep the newest `keep` tokens (the new one included), refill in one pass.
                kept = torch.cat([window[:, bs - keep + 1 :], tok.unsqueeze(1)], dim=1)
                n = kept.size(1)
                window[:, :n] = kept
                cache.length = 0
                with amp():
                    logits = model(kept, cache=cache, last_only=True)[0][:, -1, :]
    finally:
        if was_training:
            model.train()


def stream_text(
    model,
    tokenizer,
    prompt_ids: list[int],
    settings: SamplingSettings,
    stop_ids: Iterable[int] = (),
    amp_dtype: torch.dtype | None = None,
    outcome: dict | None = None,
    weights: DecodeWeightsCache | None = None,
    show_turns: bool = False,
) -> Iterator[str]:
    """Yield the generated text piece by piece (usually a token at a time).

    Tokens go through the tokenizer's stream decoder: a character whose bytes span several BPE
    tokens comes out whole, once its last token is read, never as U+FFFD halves.

    Turn markers (<|user|> and the like) are structure, not text, and are left out, unless
    show_turns: free sampling from a dialogue model runs turn after turn, which read as one
    run-on text without them.

    outcome, if given, receives "reason": stop_id (with "token"), stop or length.

    Generation ends at a token in stop_ids (not shown), at any of settings.stop (the text is cut
    before it), or after settings.max_new_chars characters. Text that might be the start of a
    stop sequence is held back until it is clear that it is not. (A BPE model samples at most
    max_new_chars tokens, and its text is cut at max_new_chars characters.)
    """
    if outcome is None:
        outcome = {}
    pieces = _stream(model, tokenizer, prompt_ids, settings, stop_ids, amp_dtype, outcome,
                     weights, show_turns)
    if tokenizer.kind != "bpe":
        yield from pieces
        return
    left = settings.max_new_chars
    try:
        for piece in pieces:
            if len(piece) >= left:
                if left:
                    yield piece[:left]
                outcome["reason"] = "length"
                return
            left -= len(piece)
            yield piece
    finally:
        pieces.close()


def _stream(model, tokenizer, prompt_ids, settings, stop_ids, amp_dtype, outcome, weights,
            show_turns) -> Iterator[str]:
    device = model.lm_head.weight.device
    gen = None
    if settings.seed is not None:
        gen = torch.Generator(device=device)
        gen.manual_seed(int(settings.seed))
    idx = torch.tensor([prompt_ids], dtype=torch.long, device=device)
    stop_ids = set(stop_ids)
    stops = [s for s in settings.stop if s]
    pending = ""  # text held back because it could begin a stop sequence
    outcome["reason"] = "length"
    top_k = settings.top_k or None
    tokens = generate_ids(
        model, idx, settings.max_new_chars, settings.temperature, top_k, settings.top_p, gen,
        amp_dtype=amp_dtype, quantize=settings.quantize, weights=weights,
        vocab_limit=tokenizer.vocab_size,
    )
    decoder = tokenizer.stream_decoder(show_turns)
    try:
        for tok in tokens:
            t = int(tok[0])
            if t in stop_ids:
                outcome.update(reason="stop_id", token=t)
                break
            piece = decoder.feed(t)
            if not piece:
                continue
            pending += piece
            if stops:
                hit = min((pending.find(s) for s in stops if s in pending), default=-1)
                if hit >= 0:
                    if hit:
                        yield pending[:hit]
                    pending = ""
                    outcome["reason"] = "stop"
                    return
                hold = _longest_stop_prefix(pending, stops)
                out, pending = pending[: len(pending) - hold], pending[len(pending) - hold :]
            else:
                out, pending = pending, ""
            if out:
                yield out
        pending += decoder.flush()
        if stops and pending:
            hit = min((pending.find(s) for s in stops if s in pending), default=-1)
            if hit >= 0:
                pending = pending[:hit]
                outcome["reason"] = "stop"
        if pending:
            yield pending
    finally:
        tokens.close()


def _longest_stop_prefix(text: str, stops: list[str]) -> int:
    """Length of the longest suffix of text that is a proper prefix of a stop sequence."""
    best = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:n]):
                best = n
                break
    return best
