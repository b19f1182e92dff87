#!/usr/bin/env python3
"""Quality per time: validation loss reached in the same wall-clock time as nanoGPT.

1. nanoGPT's documented CPU recipe (and, with --tuned, the hand-tuned recipe) runs through
   benchmarks/nanogpt_ref.py; its best checkpoint is scored by the eval rule below.
2. `charchat train TEXT --minutes M` runs with no other flag, M being nanoGPT's measured wall time
   (whole process) less charchat's own start-up, so that both processes take the same wall time;
   its best model is scored by `charchat eval`, the same rule.

Rule: last 10% of the text, non-overlapping windows of the model's block_size, mean
cross-entropy over every predicted character. Every step prints one JSON line; the last line
compares. Runs are back to back on the same machine.

    python benchmarks/bench_quality.py                 # nanoGPT cpu recipe, then charchat
    python benchmarks/bench_quality.py --tuned         # also nanoGPT's hand-tuned recipe
    python benchmarks/bench_quality.py --skip-nanogpt --seconds 100   # charchat only
    python benchmarks/bench_quality.py --flags "--optimizer adamw"     # with extra train flags
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_TEXT = REPO.parent / "shared" / "bench" / "tinyshakespeare.txt"


def run_json(cmd: list[str], env=None) -> tuple[list[dict], float, int]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    lines = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                pass
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
    return lines, wall, proc.returncode


def emit(rec: dict) -> None:
    print(json.dumps(rec), flush=True)


def nanogpt(recipe: str, text: Path, nanogpt_dir: str, work: Path) -> dict:
    ref = [sys.executable, str(HERE / "nanogpt_ref.py")]
    out = work / f"nanogpt-{recipe}"
    lines, _, rc = run_json(ref + ["train", "--recipe", recipe, "--out", str(out), "--text",
                                   str(text), "--nanogpt", nanogpt_dir, "--quiet"])
    train = next((r for r in lines if r.get("bench") == "nanogpt_train"), {})
    if rc != 0 or not train.get("ckpt"):
        raise SystemExit(f"nanoGPT {recipe} run failed (rc {rc})")
    lines, _, rc = run_json(ref + ["eval", "--ckpt", train["ckpt"], "--text", str(text),
                                   "--nanogpt", nanogpt_dir])
    ev = next((r for r in lines if r.get("bench") == "nanogpt_eval"), {})
    rec = {"bench": "quality", "who": f"nanogpt-{recipe}", "wall_s": train.get("wall_s"),
           "val_loss": ev.get("val_loss"), "tokens_per_s": train.get("tokens_per_s_median")}
    emit(rec)
    return rec


def charchat(seconds: float, text: Path, work: Path, flags: list[str] = ()) -> dict:
    env = dict(os.environ, CHARCHAT_HOME=str(work / "home"))
    exe = [sys.executable, "-m", "charchat"]
    # charchat's start-up (imports, reading and caching the corpus) is measured once, with a
    # warm corpus cache, and taken off the budget so that the whole process fits in `seconds`.
    probe_t = time.perf_counter()
    subprocess.run(exe + ["train", str(text), "--name", "probe", "--max-steps", "1",
                          "--eval-interval", "1", "--quiet", *flags], env=env,
                   capture_output=True)
    startup = min(15.0, time.perf_counter() - probe_t)
    minutes = max(0.1, (seconds - startup) / 60.0)
    t = time.perf_counter()
    proc = subprocess.run(exe + ["train", str(text), "--name", "bench", "--minutes",
                                 f"{minutes:.4f}", "--quiet", *flags], env=env, capture_output=True,
                          text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"charchat train failed: {proc.stderr.strip()[-500:]}")
    lines, _, rc = run_json(exe + ["eval", "--model", "bench", str(text)], env=env)
    if rc != 0 or not lines:
        raise SystemExit("charchat eval failed")
    args = json.loads((work / "home" / "models" / "bench" / "train_args.json").read_text())
    rec = {"bench": "quality", "who": "charchat", "wall_s": round(wall, 1),
           "minutes_flag": round(minutes, 4), "startup_s": round(startup, 1),
           "val_loss": lines[0]["val_loss"], "bpc": lines[0].get("bpc"),
           "bpb": lines[0].get("bpb"), "flags": list(flags), "config": args["config"]}
    emit(rec)
    return rec


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--text", type=Path, default=DEFAULT_TEXT)
    p.add_argument("--nanogpt", default=os.environ.get("NANOGPT_DIR", "/tmp/nanogpt"))
    p.add_argument("--tuned", action="store_true", help="also run nanoGPT's hand-tuned recipe")
    p.add_argument("--skip-nanogpt", action="store_true")
    p.add_argument("--seconds", type=float, default=None,
                   help="charchat's wall-clock budget (default: nanoGPT cpu recipe's wall time)")
    p.add_argument("--flags", default="",
                   help="extra `charchat train` flags, for experiments (the goal is measured "
                   "without any), e.g. --flags '--optimizer adamw'")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="charchat-quality-") as tmp:
        work = Path(tmp)
        ref = None
        if not args.skip_nanogpt:
            ref = nanogpt("cpu", args.text, args.nanogpt, work)
            if args.tuned:
                nanogpt("tuned", args.text, args.nanogpt, work)
        seconds = args.seconds or (ref["wall_s"] if ref else 100.0)
        ours = charchat(seconds, args.text, work, shlex.split(args.flags))
        summary = {"bench": "quality_summary", "charchat_val_loss": ours["val_loss"],
                   "charchat_wall_s": ours["wall_s"]}
        if ref:
            summary.update(nanogpt_cpu_val_loss=ref["val_loss"], nanogpt_cpu_wall_s=ref["wall_s"],
                           delta=round(ours["val_loss"] - ref["val_loss"], 4))
        emit(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
