#!/usr/bin/env python3
"""Memory of each training process against the corpus's size, training across processes.

For each size, a character corpus of that many MB is generated (random words, so that the
vocabulary is small and fixed), read once into charchat's id cache, then trained on by
`charchat train --gpus N --device cpu` for a few steps. While it trains, every process's
/proc status is sampled: the JSON gives each rank's peak private memory (RssAnon: what the
process holds itself) and its peak file-backed resident pages (RssFile: mapped files, torch's
libraries among them; the trainer reads the id cache with pread, charchat.idcache.IdReader, so
the cache is not among them). If a rank's memory is bounded whatever the corpus's size, both
stay flat as the corpus grows tenfold.

    python benchmarks/bench_ddp_memory.py                       # 30 and 300 MB, 2 processes
    python benchmarks/bench_ddp_memory.py --sizes 30,300,1000 --procs 2
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPE = ["--n-layer", "2", "--n-head", "2", "--n-embd", "64", "--block-size", "64",
         "--batch-size", "8", "--device", "cpu", "--eval-interval", "50"]


def make_text(path: Path, mb: int) -> None:
    rng = random.Random(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "ran", "to", "its", "red", "hat"]
    line = lambda: " ".join(rng.choice(words) for _ in range(12)) + "\n"  # noqa: E731
    block = "".join(line() for _ in range(20_000)).encode()
    with open(path, "wb") as f:
        for _ in range(mb * 1_000_000 // len(block) + 1):
            f.write(block)


def status(pid: int) -> dict[str, int]:
    out = {}
    try:
        for row in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = row.partition(":")
            if key in ("RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) // 1024  # MB
    except OSError:
        pass
    return out


def workers(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def measure(text: Path, home: Path, name: str, procs: int, steps: int) -> dict:
    env = dict(os.environ, CHARCHAT_HOME=str(home))
    # The id cache first, so that the training processes find it (encoding is not measured).
    subprocess.run([sys.executable, "-c", "import sys; from charchat.corpus import load_corpus;"
                    f" load_corpus([{str(text)!r}])"], env=env, check=True)
    proc = subprocess.Popen([sys.executable, "-m", "charchat", "train", str(text), "--name",
                             name, "--max-steps", str(steps), "--quiet", "--gpus", str(procs),
                             *SHAPE], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    peaks: dict[int, dict[str, int]] = {}
    while proc.poll() is None:
        for pid in workers(proc.pid):
            for key, mb in status(pid).items():
                peaks.setdefault(pid, {})[key] = max(peaks.get(pid, {}).get(key, 0), mb)
        time.sleep(0.2)
    if proc.returncode != 0:
        raise SystemExit(f"charchat train failed: {proc.stderr.read()[-800:]}")
    ranks = sorted(peaks.values(), key=lambda d: -d.get("RssAnon", 0))
    return {"corpus_mb": round(text.stat().st_size / 1e6), "steps": steps,
            "per_rank_peak_mb": ranks}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="30,300", help="corpus sizes in MB, comma-separated")
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--steps", type=int, default=150)
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for mb in (int(x) for x in args.sizes.split(",")):
            text = Path(tmp) / f"text{mb}.txt"
            make_text(text, mb)
            results.append(measure(text, Path(tmp) / "home", f"m{mb}", args.procs, args.steps))
            print(json.dumps(results[-1]), file=sys.stderr)
            text.unlink()
    anon = [max(d.get("RssAnon", 0) for d in r["per_rank_peak_mb"]) for r in results]
    print(json.dumps({"procs": args.procs, "runs": results,
                      "largest_rank_anon_mb_by_size": dict(zip(args.sizes.split(","), anon))},
                     indent=1))


if __name__ == "__main__":
    main()
