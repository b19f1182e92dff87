#!/usr/bin/env python3
"""Training across processes on the CPU (gloo): N processes against 1 on the same cores.

Both train the same model on the same global batch (N processes take batch/N windows each, so
their gradients are the 1-process gradients), alternating runs so that machine noise hits both
alike: the 1-process run with every core (torch's threads), the N-process one with
`charchat train --gpus N --device cpu` (each process cores/N threads), and for reference one
process on one thread. tokens/s is the median of
the step events in metrics.jsonl (optimiser steps, batch fetching included; evaluation not),
time per step its inverse at the global batch, and the JSON gives every run and the ratio of
medians (N processes / 1).

    python benchmarks/bench_ddp.py                       # 2 processes, 4 x 128, block 128
    python benchmarks/bench_ddp.py --procs 2 --steps 200 --repeats 3

On one machine's CPU this measures what the gradient all-reduce and the split cost, not a
speed-up: the cores are the same. Several GPUs or machines are where processes add compute.
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
SHAPE = ["--n-layer", "4", "--n-head", "4", "--n-embd", "128", "--block-size", "128",
         "--dropout", "0", "--optimizer", "adamw", "--device", "cpu"]


def run(text: Path, home: Path, name: str, steps: int, batch: int, procs: int,
        threads: int | None = None) -> dict:
    env = dict(os.environ, CHARCHAT_HOME=str(home))
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, "-m", "charchat", "train", str(text), "--name", name, "--max-steps",
           str(steps), "--eval-interval", str(steps), "--quiet", *SHAPE,
           "--batch-size", str(batch // procs)]
    if procs > 1:
        cmd += ["--gpus", str(procs)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"charchat train failed: {proc.stderr[-800:]}")
    events = [json.loads(line) for line in
              (home / "models" / name / "metrics.jsonl").read_text().splitlines()]
    tps = [e["tokens_per_s"] for e in events if e["kind"] == "step"][1:]  # (skip warm-up)
    end = next(e for e in events if e["kind"] == "end")
    tokens_per_s = statistics.median(tps)
    return {"procs": procs, "threads_each": threads or max(1, (os.cpu_count() or 1) // procs),
            "batch_per_process": batch // procs,
            "tokens_per_s": round(tokens_per_s, 1),
            "ms_per_step": round(1000 * batch * 128 / tokens_per_s, 2),
            "val_loss": round(end["best_val_loss"], 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--text", type=Path, default=DEFAULT_TEXT)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16, help="global batch (windows a step)")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.batch % args.procs:
        raise SystemExit("--batch must divide among --procs")
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for procs, threads in ((1, None), (args.procs, None), (1, 1)):
                r = run(args.text, Path(tmp), f"r{i}p{procs}t{threads}", args.steps,
                        args.batch, procs, threads)
                runs.append(r)
                print(json.dumps(r), file=sys.stderr)

    def median(procs: int, threads: int) -> float:
        return statistics.median(r["tokens_per_s"] for r in runs
                                 if (r["procs"], r["threads_each"]) == (procs, threads))

    cores = os.cpu_count() or 1
    med = {1: median(1, cores), args.procs: median(args.procs, max(1, cores // args.procs))}
    print(json.dumps({
        "shape": "4 layers x 128, block 128, AdamW, fp32", "global_batch": args.batch,
        "steps": args.steps, "cores": os.cpu_count(), "runs": runs,
        "tokens_per_s_median": {str(k): round(v, 1) for k, v in med.items()},
        "ratio_procs_over_one": round(med[args.procs] / med[1], 3),
        # One process on one thread: how much of the difference is torch's threads within a
        # process (small matrices split over cores) rather than the processes.
        "one_process_one_thread_median": round(median(1, 1), 1),
    }, indent=1))


if __name__ == "__main__":
    main()
