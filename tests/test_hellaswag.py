"""HellaSwag scoring (charchat.hellaswag): the batched scorer against a plain, one-ending-at-a-
time computation of llm.c's protocol, on a small model and examples made here."""

from __future__ import annotations

import json
import random

import pytest
import torch
from torch.nn import functional as F

from charchat import hellaswag
from charchat.tokenizer import CharTokenizer

from conftest import tiny_gpt

ALPHABET = "abcdefgh ."


def examples(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)

    def text(k):
        return "".join(rng.choice(ALPHABET) for _ in range(k))

    return [{"ind": i, "ctx": text(rng.randint(5, 40)),
             "endings": [text(rng.randint(1, 12)) for _ in range(4)],
             "label": rng.randrange(4), "split": "val"} for i in range(n)]


def reference(model, tok, ex) -> tuple[int, int]:
    """The ending with the lowest summed, and lowest mean, loss: each ending on its own."""
    bs = model.config.block_size
    summed, mean = [], []
    for ending in ex["endings"]:
        ctx, end = tok.encode(ex["ctx"]), tok.encode(" " + ending)
        ids = (ctx + end)[-(bs + 1):]
        n = min(len(end), len(ids) - 1)
        with torch.no_grad():
            logits, _ = model(torch.tensor([ids[:-1]]))
        losses = F.cross_entropy(logits[0], torch.tensor(ids[1:]), reduction="none")[-n:]
        summed.append(float(losses.sum()))
        mean.append(float(losses.mean()))
    return min(range(4), key=summed.__getitem__), min(range(4), key=mean.__getitem__)


@pytest.mark.parametrize("block_size", [64, 16])  # 16: long contexts lose their start
def test_scores_match_the_protocol_ending_by_ending(tmp_path, block_size):
    tok = CharTokenizer(ALPHABET)
    model = tiny_gpt(vocab_size=tok.vocab_size, block_size=block_size, seed=3)
    exs = examples(30)
    path = tmp_path / "hellaswag_val.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in exs))
    seen = []
    r = hellaswag.evaluate(model, tok, path, progress=lambda d, t: seen.append((d, t)))
    preds = [reference(model, tok, e) for e in exs]
    acc = sum(p[0] == e["label"] for p, e in zip(preds, exs)) / len(exs)
    acc_norm = sum(p[1] == e["label"] for p, e in zip(preds, exs)) / len(exs)
    assert r == {"examples": 30, "acc": pytest.approx(acc), "acc_norm": pytest.approx(acc_norm)}
    for e, (best, best_norm) in zip(exs, preds):  # each example, not only the totals
        summed, mean = hellaswag.score_example(model, tok, e["ctx"], e["endings"], "cpu")
        assert min(range(4), key=summed.__getitem__) == best
        assert min(range(4), key=mean.__getitem__) == best_norm
    assert seen[-1] == (30, 30)
    assert hellaswag.evaluate(model, tok, path, limit=7)["examples"] == 7


def test_a_line_that_is_not_an_example_is_named(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text(json.dumps(examples(1)[0]) + "\n" + '{"ctx": "a", "endings": ["b"]}\n')
    tok = CharTokenizer(ALPHABET)
    with pytest.raises(hellaswag.HellaSwagError, match="line 2 is not a HellaSwag example"):
        hellaswag.evaluate(tiny_gpt(vocab_size=tok.vocab_size), tok, path)


def test_the_command_line(tmp_path, capsys, charchat_home):
    from charchat import store
    from charchat.cli import main

    tok = CharTokenizer(ALPHABET)
    model = tiny_gpt(vocab_size=tok.vocab_size, block_size=64)
    store.save_model(charchat_home / "models" / "h", model, tok, {"corpus_kind": "prose"})
    path = tmp_path / "h.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in examples(5)))
    assert main(["eval", "--model", "h", "--hellaswag", str(path)]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["examples"] == 5 and 0 <= r["acc"] <= 1 and 0 <= r["acc_norm"] <= 1
    assert main(["eval", "--model", "h"]) == 2
