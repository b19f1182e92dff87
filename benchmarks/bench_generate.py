#!/usr/bin/env python3
"""Generation speed: charchat's KV-cache generation against nanoGPT's generate(), one process.

Both models get the same random weights (nanoGPT's state dict loads into charchat's GPT: the
parameter names are GPT-2's in both), the same 1-token prompt and the same number of new tokens,
sampled at temperature 1 (nanoGPT's default). Runs alternate between the two so that machine
noise hits both alike; the JSON gives the median chars/s of each and their ratio. A greedy run
of both checks that they compute the same thing before anything is timed.

    python benchmarks/bench_generate.py --shape cpu   # 4 layers, 4 heads, 128 wide, block 64
    python benchmarks/bench_generate.py --shape gpu   # 6 layers, 6 heads, 384 wide, block 256

nanoGPT is read from a checkout (--nanogpt DIR, default $NANOGPT_DIR or /tmp/nanogpt); see
benchmarks/README.md. Its code is run, never copied.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nanogpt_ref  # noqa: E402

from charchat import GPT, GPTConfig  # noqa: E402
from charchat.decoding import DecodeStep, DecodeWeightsCache  # noqa: E402
from charchat.config import SamplingSettings  # noqa: E402
from charchat.generation import stream_text  # noqa: E402

SHAPES = {
    "cpu": dict(n_layer=4, n_head=4, n_embd=128, block_size=64),
    "gpu": dict(n_layer=6, n_head=6, n_embd=384, block_size=256),
}


class _Vocab:
    """The minimum stream_text needs from a tokenizer, for the chat-path timing."""

    def decode_text(self, ids):
        return "".join(chr(65 + int(i) % 26) for i in ids)


@torch.no_grad()
def int8_loss(name: str, text_path: str, n_chars: int) -> dict:
    """Cross-entropy of the float and int8 decode paths over the start of the validation split,
    each character read through DecodeStep (a fresh cache every block_size characters)."""

    from charchat.corpus import load_corpus
    from charchat.store import load_model

    m = load_model(name)
    ids = load_corpus([text_path], tokenizer=m.tokenizer).val_ids[: n_chars + 1]
    ids = torch.as_tensor(ids.astype("int64"))
    out = {}
    for mode in (None, "int8"):
        total, count = 0.0, 0
        bs = m.model.config.block_size
        for start in range(0, len(ids) - 1, bs):
            window = ids[start : start + bs + 1]
            cache = m.model.new_cache(1)
            step = DecodeStep(m.model, cache, mode)
            logits = m.model(window[None, :1], cache=cache)[0][0, -1]
            for i in range(1, len(window)):
                total -= float(torch.log_softmax(logits.float(), -1)[window[i]])
                count += 1
                if i < len(window) - 1:
                    logits = step(window[i : i + 1])[0]
        out[mode or "float"] = total / count
    return {"bench": "int8_loss", "model": name, "chars": count, "float_loss": round(out["float"], 4),
            "int8_loss": round(out["int8"], 4), "delta": round(out["int8"] - out["float"], 4),
            "delta_pct": round(100 * (out["int8"] - out["float"]) / out["float"], 2)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=sorted(SHAPES), default="cpu")
    p.add_argument("--tokens", type=int, default=500)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--nanogpt", default=nanogpt_ref.DEFAULT_NANOGPT)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--trained", metavar="NAME",
                   help="a saved charchat model: also report the loss of the int8 path against "
                        "the float path, reading --text's validation split token by token")
    p.add_argument("--text", default=str(nanogpt_ref.DEFAULT_TEXT))
    p.add_argument("--loss-chars", type=int, default=2048)
    args = p.parse_args()
    if args.trained:
        print(json.dumps(int8_loss(args.trained, args.text, args.loss_chars)))

    nano_dir = nanogpt_ref.nanogpt_dir(args.nanogpt)
    NanoGPT, NanoConfig = nanogpt_ref.load_nanogpt_model(nano_dir)
    shape = SHAPES[args.shape]
    torch.manual_seed(args.seed)
    nano = nanogpt_ref.build_model(NanoGPT, NanoConfig, vocab_size=65, dropout=0.0, bias=False, **shape)
    nano.eval()
    ours = GPT(GPTConfig(vocab_size=65, dropout=0.0, bias=False, **shape))
    missing = ours.load_state_dict(nano.state_dict(), strict=False)
    if missing.missing_keys or [k for k in missing.unexpected_keys if not k.endswith(".attn.bias")]:
        raise SystemExit(f"state dicts differ: {missing}")
    ours.eval()

    prompt = torch.zeros((1, 1), dtype=torch.long)
    # Same computation? Greedy continuations must agree (up to float ties, rare).
    n_check = min(100, args.tokens)
    a = ours.generate(prompt, n_check, temperature=0)[0]
    with torch.no_grad():
        b = nano.generate(prompt, n_check, temperature=1e-6)[0]  # nanoGPT has no greedy mode
    agree = int((a == b).sum()) - 1

    def time_nano():
        t = time.perf_counter()
        with torch.no_grad():
            nano.generate(prompt, args.tokens)
        return args.tokens / (time.perf_counter() - t)

    def time_ours():
        t = time.perf_counter()
        ours.generate(prompt, args.tokens)
        return args.tokens / (time.perf_counter() - t)

    # The chat path as a ChatSession runs it: decode weights prepared once and kept between
    # replies (the first, untimed warm-up call prepares them). model.generate prepares afresh.
    kept = DecodeWeightsCache()
    int8_settings = SamplingSettings(temperature=1.0, top_p=None, max_new_chars=args.tokens,
                                     quantize="int8")

    def time_int8():
        t = time.perf_counter()
        n = sum(len(s) for s in stream_text(ours, _Vocab(), [0], int8_settings, weights=kept))
        return n / (time.perf_counter() - t)

    settings = SamplingSettings(temperature=0.8, top_p=0.95, max_new_chars=args.tokens)

    def time_chat_path():
        t = time.perf_counter()
        n = sum(len(s) for s in stream_text(ours, _Vocab(), [0], settings, weights=kept))
        return n / (time.perf_counter() - t)

    time_ours(), time_nano(), time_int8(), time_chat_path()  # warm-up
    nano_r, ours_r, chat_r, int8_r = [], [], [], []
    for _ in range(args.repeats):
        nano_r.append(time_nano())
        ours_r.append(time_ours())
        chat_r.append(time_chat_path())
        int8_r.append(time_int8())
    nano_cps, ours_cps = statistics.median(nano_r), statistics.median(ours_r)
    print(json.dumps({
        "bench": "generate", "shape": args.shape, **shape, "tokens": args.tokens,
        "greedy_agree": f"{agree}/{n_check}",
        "nanogpt_chars_per_s": round(nano_cps, 1),
        "charchat_chars_per_s": round(ours_cps, 1),
        "charchat_chat_path_chars_per_s": round(statistics.median(chat_r), 1),
        "ratio": round(ours_cps / nano_cps, 2),
        "charchat_int8_chars_per_s": round(statistics.median(int8_r), 1),
        "int8_ratio": round(statistics.median(int8_r) / nano_cps, 2),
        "runs": {"nanogpt": [round(x, 1) for x in nano_r], "charchat": [round(x, 1) for x in ours_r]},
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
