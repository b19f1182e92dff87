"""HellaSwag, completion style, on any model (issue 20).

The file is HellaSwag's own JSONL (the validation file has 10,042 lines): each line holds a
context ``ctx``, four ``endings`` and the ``label`` of the right one. The protocol is llm.c's
(dev/data/hellaswag.py): each ending is appended to the context with a space before it, the
model's cross-entropy is summed over the ending's tokens only, and

- acc counts the examples whose lowest *summed* loss is the labelled ending,
- acc_norm those whose lowest *mean* loss per token is (long endings are not penalised).

The four endings of an example go through the model as one batch. A context too long for the
model's block_size loses its start. llm.c reports, with this protocol, acc 0.2859 / acc_norm
0.2955 for OpenAI's gpt2 (124M) and 0.3842 / 0.4893 for gpt2-xl.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch.nn import functional as F

from .generation import _amp_context


class HellaSwagError(ValueError):
    """A file that is not HellaSwag's JSONL. The message is one line naming the line."""


def read_examples(path: Path) -> Iterator[tuple[str, list[str], int]]:
    """(context, endings, label) per line; HellaSwagError names the first bad line."""
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise HellaSwagError(f"{path}: cannot read ({e.strerror or e})") from None
    with f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                ctx, endings, label = d["ctx"], d["endings"], d["label"]
                ok = (isinstance(ctx, str) and isinstance(endings, list) and len(endings) >= 2
                      and all(isinstance(e, str) for e in endings)
                      and isinstance(label, int) and 0 <= label < len(endings))
            except (ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                raise HellaSwagError(f"{path}: line {n} is not a HellaSwag example "
                                     '({"ctx": ..., "endings": [...], "label": N})')
            yield ctx, endings, label


def count_examples(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


@torch.no_grad()
def score_example(model, tokenizer, ctx: str, endings: list[str], device,
                  amp_dtype=None) -> tuple[list[float], list[float]]:
    """Summed and mean cross-entropy of each ending after the context."""
    bs = model.config.block_size
    ctx_ids = tokenizer.encode_lenient(ctx).ids
    rows, masks = [], []
    for ending in endings:
        end_ids = tokenizer.encode_lenient(" " + ending).ids
        ids = (ctx_ids + end_ids)[-(bs + 1):]  # the context's start goes first
        n_end = min(len(end_ids), len(ids) - 1)
        rows.append(ids)
        masks.append([0] * (len(ids) - n_end) + [1] * n_end)
    width = max(len(r) for r in rows)
    x = torch.zeros(len(rows), width, dtype=torch.long)
    m = torch.zeros(len(rows), width)
    for i, (r, k) in enumerate(zip(rows, masks)):
        x[i, : len(r)] = torch.tensor(r)
        m[i, : len(k)] = torch.tensor(k, dtype=torch.float32)
    x, m = x.to(device), m.to(device)
    with _amp_context(torch.device(device), amp_dtype)():
        logits, _ = model(x[:, :-1])
    losses = F.cross_entropy(logits.float().transpose(1, 2), x[:, 1:], reduction="none")
    mask = m[:, 1:]
    summed = (losses * mask).sum(dim=1)
    mean = summed / mask.sum(dim=1).clamp(min=1)
    return summed.tolist(), mean.tolist()


def evaluate(model, tokenizer, path: Path, device="cpu", amp_dtype=None,
             progress: Callable[[int, int], None] | None = None,
             limit: int | None = None) -> dict:
    """{"examples", "acc", "acc_norm"} over the file (its first `limit` examples if given)."""
    path = Path(path)
    total = count_examples(path) if progress else 0
    if limit:
        total = min(total, limit)
    was_training = model.training
    model.eval()
    n = right = right_norm = 0
    try:
        for ctx, endings, label in read_examples(path):
            summed, mean = score_example(model, tokenizer, ctx, endings, device, amp_dtype)
            right += int(min(range(len(endings)), key=summed.__getitem__) == label)
            right_norm += int(min(range(len(endings)), key=mean.__getitem__) == label)
            n += 1
            if progress:
                progress(n, total)
            if limit and n >= limit:
                break
    finally:
        if was_training:
            model.train()
    if n == 0:
        raise HellaSwagError(f"{path}: no examples")
    return {"examples": n, "acc": right / n, "acc_norm": right_norm / n}
