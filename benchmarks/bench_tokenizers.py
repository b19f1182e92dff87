#!/usr/bin/env python3
"""Which tokenizer for a time budget: char against bpe:N and gpt2, by bits per character.

For each tokenizer, `charchat train TEXT --minutes M --tokenizer T` with no other flag (the
recipe picks the shape for the budget, as for a user), then `charchat eval` on the same text:
its validation loss per token, and bits per character and per UTF-8 byte of the validation
text, the scale on which the tokenizers compare (loss per token does not: a BPE token holds
several characters). Runs are back to back (bench_quality.charchat: the budget is the whole
process's wall time). One JSON line per run, then a summary line.

    python benchmarks/bench_tokenizers.py --seconds 100
    python benchmarks/bench_tokenizers.py --seconds 600 --tokenizers char,bpe:1024,gpt2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import DEFAULT_TEXT, charchat  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--text", type=Path, default=DEFAULT_TEXT)
    p.add_argument("--seconds", type=float, default=100.0)
    p.add_argument("--tokenizers", default="char,bpe:512,bpe:1024,bpe:4096,gpt2")
    args = p.parse_args()
    rows = []
    for spec in args.tokenizers.split(","):
        with tempfile.TemporaryDirectory(prefix="charchat-tok-") as tmp:
            rec = charchat(args.seconds, args.text, Path(tmp), ["--tokenizer", spec])
        c = rec["config"]
        rows.append({"tokenizer": spec, "bpc": rec["bpc"], "bpb": rec["bpb"],
                     "val_loss_per_token": rec["val_loss"], "wall_s": rec["wall_s"],
                     "shape": f"{c['n_layer']}x{c['n_embd']}, block {c['block_size']}, "
                              f"batch {c['batch_size']}"})
    print(json.dumps({"bench": "tokenizers", "seconds": args.seconds,
                      "best": min(rows, key=lambda r: r["bpc"])["tokenizer"], "runs": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
