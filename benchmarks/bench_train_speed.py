#!/usr/bin/env python3
"""Training throughput at nanoGPT's CPU recipe shape: charchat against nanoGPT's train.py.

Shape: 4 layers, 4 heads, 128 wide, block 64, batch 12, no bias, no dropout, fp32 on the CPU.
Both run as their own command-line programs, alternating (nanoGPT, charchat, nanoGPT, ...), so
that machine noise hits both alike. tokens/s is the median over the timed steps of each run
(nanoGPT: from its printed per-iteration times, skipping warm-up and eval iterations, see
nanogpt_ref.py; charchat: from the step events in metrics.jsonl, which time the optimiser steps
including fetching the batch, not evaluation). The JSON gives each run and the ratio of medians.

    python benchmarks/bench_train_speed.py                    # nanoGPT eager
    python benchmarks/bench_train_speed.py --nanogpt-compile  # nanoGPT with torch.compile
    python benchmarks/bench_train_speed.py --optimizer muon   # charchat's default optimizer

charchat runs with AdamW by default here, as nanoGPT does, so that both do the same work per
step; with Muon (charchat's default) each step also orthogonalises every block matrix, which
costs tokens/s and buys a lower loss for the same time (bench_quality.py measures that).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_TEXT = HERE.parent.parent / "shared" / "bench" / "tinyshakespeare.txt"
SHAPE = ["--n-layer", "4", "--n-head", "4", "--n-embd", "128", "--block-size", "64",
         "--batch-size", "12", "--dropout", "0", "--lr", "1e-3", "--min-lr", "1e-4",
         "--warmup-steps", "100", "--beta2", "0.99", "--bias", "false"]


def charchat_run(text: Path, steps: int, home: Path, i: int, compile_: bool,
                 optimizer: str) -> float:
    env = dict(os.environ, CHARCHAT_HOME=str(home))
    name = f"speed{i}"
    cmd = [sys.executable, "-m", "charchat", "train", str(text), "--name", name, "--max-steps",
           str(steps), "--eval-interval", str(steps), "--quiet", *SHAPE, "--optimizer", optimizer]
    if compile_:
        cmd += ["--compile", "true"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"charchat train failed: {proc.stderr[-800:]}")
    tps = []
    for line in (home / "models" / name / "metrics.jsonl").read_text().splitlines():
        ev = json.loads(line)
        if ev["kind"] == "step" and ev["step"] > 20:  # skip warm-up steps
            tps.append(ev["tokens_per_s"])
    return statistics.median(tps)


def nanogpt_run(text: Path, steps: int, nanogpt: str, compile_: bool, out: Path) -> float:
    cmd = [sys.executable, str(HERE / "nanogpt_ref.py"), "train", "--recipe", "throughput",
           "--max-iters", str(steps), "--text", str(text), "--nanogpt", nanogpt, "--quiet",
           "--out", str(out), "--compile" if compile_ else "--no-compile"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    rec = next((json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")), None)
    if proc.returncode != 0 or not rec:
        raise SystemExit(f"nanoGPT run failed: {proc.stderr[-800:]}")
    return rec["tokens_per_s_median"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--text", type=Path, default=DEFAULT_TEXT)
    p.add_argument("--nanogpt", default=os.environ.get("NANOGPT_DIR", "/tmp/nanogpt"))
    p.add_argument("--nanogpt-compile", action="store_true")
    p.add_argument("--charchat-compile", action="store_true")
    p.add_argument("--optimizer", choices=["adamw", "muon"], default="adamw",
                   help="charchat's optimizer (default adamw: the same work as nanoGPT's)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    nano, ours = [], []
    with tempfile.TemporaryDirectory(prefix="charchat-speed-") as tmp:
        tmp = Path(tmp)
        for i in range(args.rounds):
            nano.append(nanogpt_run(args.text, args.steps, args.nanogpt, args.nanogpt_compile,
                                    tmp / f"nano{i}"))
            ours.append(charchat_run(args.text, args.steps, tmp / "home", i, args.charchat_compile,
                                     args.optimizer))
    n, o = statistics.median(nano), statistics.median(ours)
    print(json.dumps({
        "bench": "train_speed", "shape": "4L/4H/128, block 64, batch 12, fp32 cpu",
        "nanogpt_compile": args.nanogpt_compile, "charchat_compile": args.charchat_compile,
        "charchat_optimizer": args.optimizer,
        "nanogpt_tokens_per_s": round(n), "charchat_tokens_per_s": round(o),
        "ratio": round(o / n, 3),
        "runs": {"nanogpt": [round(x) for x in nano], "charchat": [round(x) for x in ours]},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
