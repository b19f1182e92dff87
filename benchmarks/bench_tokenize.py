"""Tokenizing a large text: speed and peak memory of charchat's corpus reader (issue 19).

Makes a text of --mb megabytes (tinyshakespeare repeated, each copy numbered so that no two
lines of the file are alike across copies), then, back to back:

- reference: tiktoken's own single-thread ``encode_ordinary`` with GPT-2's vocabulary over the
  same text, fed in 4 MiB pieces (the whole text as one call would hold ~30 bytes of Python int
  per token: over 10 GB here). Only the encode calls are timed, not reading the file.
- charchat: ``load_corpus(spec="gpt2")`` from the file to the finished id cache (checking,
  reading, encoding on every core, writing, the validation split's text size), in a child
  process; its peak resident memory (ru_maxrss) plus that of its encoding workers (the largest
  one's peak times their number: an upper bound of all of them at once).
- the character path the same way (``spec="char"``), held to the same memory bound.

And rustbpe training a bpe:8192 vocabulary on the first 10 MB (charchat's train_bpe).

Goals: gpt2 >= 1.6x the reference's speed with peak RSS <= 1 GB; char <= 1 GB; bpe:8192 on
10 MB in under 10 s. Prints one JSON object.

    python benchmarks/bench_tokenize.py [--mb 1200] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = ROOT.parent / "shared" / "bench" / "tinyshakespeare.txt"
sys.path.insert(0, str(ROOT))


def make_text(path: Path, mb: int) -> int:
    base = SHAKESPEARE.read_text()
    want = mb * 1_000_000
    written = 0
    with open(path, "w") as f:
        copy = 0
        while written < want:
            chunk = f"Copy {copy}.\n" + base
            f.write(chunk)
            written += len(chunk.encode())
            copy += 1
    return written


def reference_seconds(path: Path) -> tuple[float, int]:
    """tiktoken's single-thread encode_ordinary over the file in 4 MiB pieces, cut where GPT-2's
    pattern ends a piece anyway (so the ids are those of the whole text; tests/test_bpe.py
    checks the rule). Only the encode calls are timed."""
    from charchat.bpe import gpt2
    from charchat.idcache import safe_cut

    enc = gpt2().enc
    total = 0.0
    n = 0
    carry = ""
    with open(path, encoding="utf-8") as f:
        while True:
            block = f.read(1 << 22)
            text = carry + block
            if block:
                cut = safe_cut(text, max(0, len(text) - 4096))
                text, carry = text[:cut], text[cut:]
            else:
                carry = ""
            if text:
                t0 = time.perf_counter()
                n += len(enc.encode_ordinary(text))
                total += time.perf_counter() - t0
            if not block:
                break
    return total, n


CHILD = """
import json, os, resource, sys, time
sys.path.insert(0, {root!r})
from charchat.corpus import load_corpus
t0 = time.perf_counter()
c = load_corpus([{path!r}], spec={spec!r}, cache_dir={cache!r})
s = time.perf_counter() - t0
me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest one
n = os.cpu_count() if workers else 0
# An upper bound of the peak of all processes together: each at its own peak at once.
print(json.dumps({{"seconds": s, "tokens": len(c.ids), "main_rss_mb": me,
                   "worker_rss_mb": workers, "workers": n,
                   "peak_rss_mb": me + n * workers}}))
"""


def charchat_run(path: Path, spec: str, cache: Path) -> dict:
    for f in cache.glob("*"):
        f.unlink()  # a cold cache: every run encodes
    code = CHILD.format(root=str(ROOT), path=str(path), spec=spec, cache=str(cache))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout)


def rustbpe_seconds(path: Path, mb: int = 10, n: int = 8192) -> tuple[float, int]:
    from charchat.bpe import train_bpe

    with open(path, encoding="utf-8") as f:
        text = f.read(mb * 1_000_000)
    pieces = [text[i:i + (1 << 16)] for i in range(0, len(text), 1 << 16)]
    t0 = time.perf_counter()
    tok = train_bpe(iter(pieces), n)
    return time.perf_counter() - t0, tok.n_ranks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=1200)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--dir", default=None, help="where to write the text (default: a temp dir)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        d = Path(d)
        text = d / "big.txt"
        size = make_text(text, args.mb)
        cache = d / "cache"
        cache.mkdir()
        rows = []
        for _ in range(args.repeats):
            ref_s, ref_n = reference_seconds(text)
            ours = charchat_run(text, "gpt2", cache)
            assert ours["tokens"] == ref_n, (ours["tokens"], ref_n)
            char = charchat_run(text, "char", cache)
            rows.append({"reference_s": ref_s, "gpt2": ours, "char": char,
                         "speed_ratio": ref_s / ours["seconds"]})
        bpe_s, bpe_n = rustbpe_seconds(text)
    print(json.dumps({
        "text_mb": size / 1e6, "cores": os.cpu_count(), "gpt2_tokens": rows[0]["gpt2"]["tokens"],
        "runs": rows,
        "speed_ratio_best": max(r["speed_ratio"] for r in rows),
        "gpt2_peak_rss_mb": max(r["gpt2"]["peak_rss_mb"] for r in rows),
        "char_peak_rss_mb": max(r["char"]["peak_rss_mb"] for r in rows),
        "rustbpe_8192_on_10mb_s": bpe_s, "rustbpe_ranks": bpe_n,
        "goals": {"speed_ratio": 1.6, "peak_rss_mb": 1024, "rustbpe_s": 10},
    }, indent=1))


if __name__ == "__main__":
    main()
