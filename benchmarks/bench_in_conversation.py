#!/usr/bin/env python3
"""The blind sets' questions asked in conversations rather than one by one.

bench_default_model.py asks every question in a conversation of its own. A user asks one after
another, and a character model reads the turns before the question (as many as its block
holds). Here the same questions (the latest fresh sets, built by bench_default_model's
fresh_questions with its seeds) are shuffled with a fixed seed and asked --turns at a time in one
conversation; the JSON gives the exact share at each position. Position 1 is a fresh
conversation, as in bench_default_model.py.

    python benchmarks/bench_in_conversation.py                 # the bundled default model
    python benchmarks/bench_in_conversation.py --model NAME --turns 6 --sets 9-14
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time

import bench_default_model as bench

md = bench.md


def set_path(n):
    return bench.ROOT / "benchmarks" / "data" / f"fresh_wordings_{n}.json"


def questions(sets, seed=0):
    """Every question the bench asks of these fresh sets, with the bench's seeds:
    [(skill, question, exact reply)]."""
    wide = md.Corpus(md.DEFAULT_SEED_DIR, wide_phrasings=True)
    out = []
    for n in sets:
        rng = bench.fresh_rng(n, seed)
        for name, wordings in json.loads(set_path(n).read_text()).items():
            items = bench.fresh_questions(wide, rng, name, wordings)[0]
            out += [(name, q, want) for q, want, _ in items]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None,
                    help="a model name or folder (default: the bundled one)")
    ap.add_argument("--turns", type=int, default=4, help="questions a conversation (default 4)")
    ap.add_argument("--sets", default="9-14", help="fresh sets, FIRST-LAST (default 9-14)")
    ap.add_argument("--shuffle-seed", type=int, default=29)
    args = ap.parse_args(argv)
    first, _, last = args.sets.partition("-")
    last = last or first
    if not (first.isdigit() and last.isdigit() and 3 <= int(first) <= int(last)):
        ap.error(f"--sets {args.sets}: give FIRST-LAST, 3 or more (e.g. 9-14)")
    sets = range(int(first), int(last) + 1)
    missing = [str(set_path(n)) for n in sets if not set_path(n).is_file()]
    if missing:
        ap.error(f"--sets {args.sets}: no such file {missing[0]}")
    if args.turns < 1:
        ap.error(f"--turns {args.turns}: must be 1 or more")
    t0 = time.perf_counter()
    qs = questions(sets)
    random.Random(args.shuffle_seed).shuffle(qs)
    loaded = bench.store.load_model(args.model or str(bench.store.bundled_dir()))
    settings = bench.app_settings(loaded, seed=0, quantize="int8")  # as bench_default_model.py
    asked = [0] * args.turns
    exact = [0] * args.turns
    for start in range(0, len(qs) - args.turns + 1, args.turns):
        session = bench.ChatSession.from_loaded(loaded, settings)
        for j, (_, q, want) in enumerate(qs[start:start + args.turns]):
            got = "".join(session.stream_reply(q)).strip()
            asked[j] += 1
            exact[j] += got == want
    later = sum(exact[1:]) / max(1, sum(asked[1:]))
    print(json.dumps({
        "model": loaded.name, "sets": f"{sets[0]}-{sets[-1]}", "turns": args.turns,
        "n": sum(asked), "block_size": loaded.model.config.block_size,
        "exact_by_position": [round(e / a, 4) for e, a in zip(exact, asked)],
        "asked_by_position": asked,
        "first": round(exact[0] / asked[0], 4), "later": round(later, 4),
        "seconds": round(time.perf_counter() - t0, 1)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
