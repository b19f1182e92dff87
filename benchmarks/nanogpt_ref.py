#!/usr/bin/env python3
"""Reference measurements of karpathy/nanoGPT, to compare charchat against.

charchat's performance goals are stated relative to nanoGPT run back to back on
the same machine.  This script measures nanoGPT *as published*: it never
contains or copies nanoGPT code, it runs the files of a separate nanoGPT
checkout (``--nanogpt DIR``; default ``$NANOGPT_DIR``, else ``/tmp/nanogpt``;
get one with ``git clone https://github.com/karpathy/nanoGPT``).

Every measurement is printed to stdout as one JSON line (nanoGPT's own output
and progress messages go to stderr), with the torch version and
``torch.get_num_threads()`` (left at torch's default) in each line.

Subcommands
-----------
prepare --out DIR
    Write nanoGPT's ``shakespeare_char`` dataset from the benchmark text:
    ``train.bin`` / ``val.bin`` (uint16 ids into the sorted character
    vocabulary; first ``int(n*0.9)`` characters train, the rest val) and
    ``meta.pkl`` (``vocab_size``, ``itos``, ``stoi``).  Same format as
    nanoGPT's ``data/shakespeare_char/prepare.py``, written independently.

train --recipe {cpu,tuned,throughput,gpu} [--compile/--no-compile] [--out DIR] [--max-iters N]
    Run nanoGPT's own ``train.py`` in a subprocess.  Its working directory is
    a temporary dir holding ``data/shakespeare_char`` (prepared as above; the
    script reads ``os.path.join('data', dataset)``) and a symlink to the
    checkout's ``configurator.py`` (``train.py`` exec()s that by relative
    path).  Recipes are ``config/train_shakespeare_char.py`` plus overrides:

    * cpu        -- nanoGPT README's CPU recipe: 4L/4H/128, block 64, batch 12,
                    2000 iters, eval_iters 20, dropout 0, device cpu.
    * tuned      -- the cpu recipe with 3L/4H/192, batch 16, lr 3e-3,
                    min_lr 1e-4, warmup 50.
    * throughput -- the cpu recipe shape, 300 iters, only two evals (start and
                    end); meant for tokens/s, with and without --compile.
    * gpu        -- the unmodified config (6L/6H/384, block 256, batch 64,
                    dropout 0.2, 5000 iters) on cuda; compile defaults to
                    nanoGPT's default (on).

    All recipes force ``log_interval=1`` (so every iteration's time is printed)
    and ``wandb_log=False``.  The checkpoint policy is nanoGPT's default for
    this config (``always_save_checkpoint=False``): ``ckpt.pt`` is written at
    an eval whose val loss improved, i.e. it is the best-at-eval checkpoint;
    the eval interval is adjusted so that the last iteration is an eval point.

    Measured: ``wall_s`` (subprocess start to exit, so it includes Python and
    torch start-up, data loading, compilation, evals and checkpoint writes),
    ``tokens_per_s_median`` (median over iterations of
    batch_size*block_size*gradient_accumulation_steps / printed iteration
    time, skipping the first ``--warmup`` iterations and every iteration that
    ran an eval), and the printed train/val losses at each eval.  nanoGPT's
    printed per-iteration time is wall time between consecutive loop ends:
    forward, backward, clip, optimizer step, fetching the next batch, and on
    eval iterations the whole estimate_loss() and checkpoint save.  With
    ``--compile`` the subprocess gets a fresh TORCHINDUCTOR_CACHE_DIR, so
    ``wall_s`` includes a cold compile (``--warm-compile-cache`` reuses
    torch's shared cache instead).  ``--dry-run`` prints the command only.

eval --ckpt PATH [--text FILE]
    Full-validation loss of a nanoGPT checkpoint: the val text is the last
    10% of the text's characters (split at ``int(n*0.9)``), encoded with the
    vocabulary of the ``meta.pkl`` next to the checkpoint (``train`` puts one
    there).  Windows ``x = val[i:i+bs]``, ``y = val[i+1:i+bs+1]`` for
    ``i = 0, bs, 2bs, ...`` while ``i+bs+1 <= len(val)`` (every full,
    non-overlapping window of the model's block_size ``bs``); the loss is the
    sum of per-character cross-entropy (nats) over all predicted characters
    divided by their number.  Also ``bpc = loss/ln 2`` and ``ppl = exp(loss)``.
    The model is nanoGPT's ``GPT`` class loaded from the checkout's model.py.

generate --shape {cpu,gpu} [--tokens N]
    Time nanoGPT's ``GPT.generate()`` (no KV cache: every step re-runs the
    model over the last <= block_size tokens) on CPU for a randomly
    initialised model of the given shape (cpu: 4L/4H/128, block 64; gpu:
    6L/6H/384, block 256; vocab 65, dropout 0, bias False, eval mode, no_grad),
    from a 1-token prompt, after a short discarded warm-up; reports chars/s
    (median over ``--repeats``).

Only the standard library, numpy and torch are used.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib.util
import json
import math
import os
import pickle
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TEXT = REPO.parent / "shared" / "bench" / "tinyshakespeare.txt"
DEFAULT_NANOGPT = os.environ.get("NANOGPT_DIR", "/tmp/nanogpt")
DATASET = "shakespeare_char"
CONFIG_FILE = "config/train_shakespeare_char.py"
# Values of config/train_shakespeare_char.py that the recipes rely on.
CONFIG_EVAL_INTERVAL = 250

# nanoGPT README's "I only have a macbook" CPU recipe.
_CPU = {
    "device": "cpu",
    "compile": False,
    "eval_iters": 20,
    "log_interval": 1,
    "block_size": 64,
    "batch_size": 12,
    "n_layer": 4,
    "n_head": 4,
    "n_embd": 128,
    "max_iters": 2000,
    "lr_decay_iters": 2000,
    "dropout": 0.0,
}

RECIPES: dict[str, dict] = {
    "cpu": dict(_CPU),
    "tuned": {
        **_CPU,
        "n_layer": 3,
        "n_head": 4,
        "n_embd": 192,
        "block_size": 64,
        "batch_size": 16,
        "learning_rate": 3e-3,
        "min_lr": 1e-4,
        "warmup_iters": 50,
    },
    "throughput": {**_CPU, "max_iters": 300, "lr_decay_iters": 300, "eval_interval": 300},
    # The config file as published (compile left at train.py's default, True).
    "gpu": {"device": "cuda", "log_interval": 1},
}

GEN_SHAPES = {
    "cpu": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, default_tokens=500),
    "gpu": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, default_tokens=300),
}

ITER_RE = re.compile(r"^iter (\d+): loss (\S+), time ([0-9.]+)ms")
EVAL_RE = re.compile(r"^step (\d+): train loss (\S+), val loss (\S+)")


# --------------------------------------------------------------------------- helpers


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def emit(record: dict) -> None:
    """Print one measurement as a JSON line on stdout."""
    print(json.dumps(record), flush=True)


def env_info(nanogpt: Path | None = None) -> dict:
    info = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    if nanogpt is not None:
        info["nanogpt"] = str(nanogpt)
        info["nanogpt_commit"] = git_commit(nanogpt)
    return info


def git_commit(path: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"],
            capture_output=True, text=True, check=True,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def nanogpt_dir(arg: str) -> Path:
    path = Path(arg).expanduser().resolve()
    needed = ["train.py", "model.py", "configurator.py", CONFIG_FILE]
    missing = [n for n in needed if not (path / n).is_file()]
    if missing:
        sys.exit(
            f"error: {path} is not a nanoGPT checkout (missing {', '.join(missing)}).\n"
            "Get one with: git clone https://github.com/karpathy/nanoGPT /tmp/nanogpt\n"
            "and pass --nanogpt DIR or set NANOGPT_DIR."
        )
    return path


def read_text(path: Path) -> str:
    # Text mode with universal newlines, like nanoGPT's prepare.py.
    with open(path, "r", encoding="utf-8") as f:
        return f.read()


def load_nanogpt_model(nanogpt: Path):
    """Import the checkout's model.py (under a private module name) and return (GPT, GPTConfig)."""
    spec = importlib.util.spec_from_file_location("nanogpt_model", nanogpt / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.GPT, module.GPTConfig


def build_model(GPT, GPTConfig, **model_args):
    # GPT.__init__ prints the parameter count; keep stdout for JSON only.
    with contextlib.redirect_stdout(sys.stderr):
        return GPT(GPTConfig(**model_args))


def load_checkpoint(path: Path) -> tuple[dict, bool]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True), True
    except Exception as exc:  # noqa: BLE001 - any failure means the safe loader refused it
        log(f"WARNING: torch.load(weights_only=True) failed ({exc!r}); "
            "retrying with weights_only=False (only do this for checkpoints you trust)")
        return torch.load(path, map_location="cpu", weights_only=False), False


# --------------------------------------------------------------------------- prepare


def prepare_data(text_path: Path, out: Path) -> dict:
    """Write train.bin, val.bin and meta.pkl in nanoGPT's shakespeare_char format."""
    data = read_text(text_path)
    chars = sorted(set(data))
    if len(chars) > np.iinfo(np.uint16).max + 1:
        raise ValueError(f"vocabulary of {len(chars)} characters does not fit uint16")
    stoi = {ch: i for i, ch in enumerate(chars)}
    itos = {i: ch for i, ch in enumerate(chars)}
    ids = np.array([stoi[c] for c in data], dtype=np.uint16)
    split = int(len(data) * 0.9)
    out.mkdir(parents=True, exist_ok=True)
    ids[:split].tofile(out / "train.bin")
    ids[split:].tofile(out / "val.bin")
    with open(out / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": len(chars), "itos": itos, "stoi": stoi}, f)
    return {"vocab_size": len(chars), "train_tokens": split, "val_tokens": len(data) - split}


def cmd_prepare(args) -> int:
    out = Path(args.out).resolve()
    stats = prepare_data(Path(args.text), out)
    emit({"bench": "nanogpt_prepare", "out": str(out), "text": str(args.text), **stats, **env_info()})
    return 0


# --------------------------------------------------------------------------- train


def format_override(key: str, value) -> str:
    # nanoGPT's configurator literal_eval()s each value and asserts its type
    # matches the default, so floats must look like floats.
    if isinstance(value, float):
        return f"--{key}={value!r}"
    return f"--{key}={value}"


def parse_override(text: str) -> tuple[str, object]:
    key, sep, val = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.lstrip("-"), ast.literal_eval(val)
    except (SyntaxError, ValueError):
        return key.lstrip("-"), val


def train_settings(args) -> dict:
    settings = dict(RECIPES[args.recipe])
    if args.compile is not None:
        settings["compile"] = args.compile
    if args.max_iters is not None:
        settings["max_iters"] = args.max_iters
        settings["lr_decay_iters"] = args.max_iters
    for key, value in args.set or []:
        settings[key] = value
    if args.eval_interval is not None:
        settings["eval_interval"] = args.eval_interval
    max_iters = settings.get("max_iters", 5000)
    interval = settings.get("eval_interval", CONFIG_EVAL_INTERVAL)
    if max_iters < interval:
        interval = max(max_iters, 1)  # short runs: evaluate (and checkpoint) only at the end
    if max_iters % interval:
        log(f"WARNING: max_iters={max_iters} is not a multiple of eval_interval={interval}; "
            "the checkpoint will not include the last iterations")
    settings["eval_interval"] = interval
    settings["wandb_log"] = False
    return settings


def cmd_train(args) -> int:
    nanogpt = nanogpt_dir(args.nanogpt)
    settings = train_settings(args)
    compiled = bool(settings.get("compile", True))  # train.py's default is compile=True
    name = args.recipe + ("-compile" if compiled else "")
    out = Path(args.out).resolve() if args.out else Path(tempfile.gettempdir()) / "nanogpt_ref" / name
    settings["out_dir"] = str(out)
    if "=" in str(out):
        sys.exit("error: nanoGPT's configurator cannot take an --out path containing '='")
    cmd = [args.python, str(nanogpt / "train.py"), str(nanogpt / CONFIG_FILE)]
    cmd += [format_override(k, v) for k, v in settings.items()]
    if args.dry_run:
        emit({"bench": "nanogpt_train", "recipe": args.recipe, "compile": compiled,
              "dry_run": True, "cwd": "<temp work dir with data/shakespeare_char>",
              "cmd": cmd, **env_info(nanogpt)})
        return 0
    out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="nanogpt_ref_work_") as work:
        work = Path(work)
        prepare_data(Path(args.text), work / "data" / DATASET)
        shutil.copy(work / "data" / DATASET / "meta.pkl", out / "meta.pkl")  # for `eval`
        (work / "configurator.py").symlink_to(nanogpt / "configurator.py")
        log("running: " + " ".join(cmd))
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if compiled and not args.warm_compile_cache:
            # A private inductor/triton cache makes every --compile run pay the full compile.
            env["TORCHINDUCTOR_CACHE_DIR"] = str(work / "torchinductor_cache")
        ckpt = out / "ckpt.pt"
        iters: list[tuple[int, float, float]] = []  # (iter, loss, ms)
        evals: list[dict] = []
        start_wall = time.time()
        t0 = time.perf_counter()
        with open(out / "train.log", "w") as logf:
            proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, bufsize=1)
            for line in proc.stdout:
                logf.write(line)
                if not args.quiet:
                    sys.stderr.write(line)
                if m := ITER_RE.match(line):
                    iters.append((int(m[1]), float(m[2]), float(m[3])))
                elif m := EVAL_RE.match(line):
                    # When each eval was printed: wall time since the process started (start-up
                    # and compile included), and the sum of the iteration times before it.
                    evals.append({"iter": int(m[1]), "train_loss": float(m[2]), "val_loss": float(m[3]),
                                  "elapsed_s": round(time.perf_counter() - t0, 2),
                                  "iter_s": round(sum(ms for _, _, ms in iters) / 1000, 2)})
            rc = proc.wait()
        wall = time.perf_counter() - t0
    if rc != 0:
        tail = (out / "train.log").read_text().splitlines()[-15:]
        log(f"ERROR: nanoGPT train.py exited with {rc}; last lines of {out / 'train.log'}:")
        log("\n".join(tail))

    batch = settings.get("batch_size", 64)
    block = settings.get("block_size", 256)
    accum = settings.get("gradient_accumulation_steps", 1)
    tokens_per_iter = batch * block * accum
    eval_iters = {e["iter"] for e in evals}
    timed = [ms for k, (it, _, ms) in enumerate(iters)
             if k >= args.warmup and it not in eval_iters and ms > 0]
    tps = [tokens_per_iter / (ms / 1000) for ms in timed]

    record = {
        "bench": "nanogpt_train",
        "recipe": args.recipe,
        "compile": compiled,
        "device": settings.get("device", "cuda"),
        "returncode": rc,
        "compile_cache": ("warm" if args.warm_compile_cache else "cold") if compiled else None,
        "wall_s": round(wall, 3),
        "tokens_per_iter": tokens_per_iter,
        "tokens_per_s_median": round(statistics.median(tps), 1) if tps else None,
        "iter_ms_median": round(statistics.median(timed), 3) if timed else None,
        "iters": len(iters),
        "timed_iters": len(timed),
        "max_iters": settings.get("max_iters"),
        "eval_interval": settings["eval_interval"],
        "eval_iters": settings.get("eval_iters", 200),
        "evals": evals,
        "final_train_loss": iters[-1][1] if iters else None,
        "final_val_loss": evals[-1]["val_loss"] if evals else None,
        "ckpt": None,
        "log": str(out / "train.log"),
        **env_info(nanogpt),
    }
    if ckpt.is_file() and ckpt.stat().st_mtime >= start_wall:
        record["ckpt"] = str(ckpt)
        meta, _ = load_checkpoint(ckpt)
        record["ckpt_iter"] = int(meta["iter_num"])
        record["ckpt_best_val_loss"] = round(float(meta["best_val_loss"]), 4)
    elif rc == 0:
        log("WARNING: nanoGPT wrote no checkpoint in this run (no eval after iter 0 improved val loss)")
    emit(record)
    return rc


# --------------------------------------------------------------------------- eval


@torch.no_grad()
def cmd_eval(args) -> int:
    nanogpt = nanogpt_dir(args.nanogpt)
    GPT, GPTConfig = load_nanogpt_model(nanogpt)
    ckpt_path = Path(args.ckpt)
    ckpt, weights_only = load_checkpoint(ckpt_path)
    model_args = dict(ckpt["model_args"])
    model = build_model(GPT, GPTConfig, **model_args)
    prefix = "_orig_mod."  # added by torch.compile
    state = {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in ckpt["model"].items()}
    model.load_state_dict(state)
    model.to(args.device).eval()

    meta_path = Path(args.meta) if args.meta else ckpt_path.with_name("meta.pkl")
    with open(meta_path, "rb") as f:
        stoi = pickle.load(f)["stoi"]
    text = read_text(Path(args.text))
    val = text[int(len(text) * 0.9):]
    unknown = sorted(set(val) - set(stoi))
    if unknown:
        sys.exit(f"error: val text has characters outside the checkpoint vocabulary: {unknown!r}")
    ids = torch.tensor([stoi[c] for c in val], dtype=torch.long)

    bs = model_args["block_size"]
    n_windows = (len(ids) - 1) // bs  # every i = k*bs with i + bs + 1 <= len(val)
    if n_windows == 0:
        sys.exit(f"error: val text ({len(ids)} chars) is shorter than one window of {bs + 1}")
    x_all = ids[: n_windows * bs].view(n_windows, bs)
    y_all = ids[1 : n_windows * bs + 1].view(n_windows, bs)

    t0 = time.perf_counter()
    total = 0.0
    for s in range(0, n_windows, args.batch_size):
        x = x_all[s : s + args.batch_size].to(args.device)
        y = y_all[s : s + args.batch_size].to(args.device)
        logits, _ = model(x, y)  # with targets, nanoGPT returns logits for every position
        total += torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1), reduction="sum"
        ).item()
    elapsed = time.perf_counter() - t0
    chars = n_windows * bs
    loss = total / chars
    emit({
        "bench": "nanogpt_eval",
        "ckpt": str(ckpt_path),
        "val_loss": round(loss, 5),
        "bpc": round(loss / math.log(2), 5),
        "ppl": round(math.exp(loss), 4),
        "chars": chars,
        "windows": n_windows,
        "block_size": bs,
        "ckpt_iter": int(ckpt.get("iter_num", -1)),
        "weights_only": weights_only,
        "eval_s": round(elapsed, 3),
        **env_info(nanogpt),
    })
    return 0


# --------------------------------------------------------------------------- generate


@torch.no_grad()
def cmd_generate(args) -> int:
    nanogpt = nanogpt_dir(args.nanogpt)
    GPT, GPTConfig = load_nanogpt_model(nanogpt)
    shape = GEN_SHAPES[args.shape]
    tokens = args.tokens or shape["default_tokens"]
    torch.manual_seed(args.seed)
    model = build_model(GPT, GPTConfig, n_layer=shape["n_layer"], n_head=shape["n_head"],
                        n_embd=shape["n_embd"], block_size=shape["block_size"],
                        vocab_size=65, dropout=0.0, bias=False)
    model.eval()
    prompt = torch.zeros((1, 1), dtype=torch.long)
    model.generate(prompt, max_new_tokens=args.warmup_tokens)  # discarded warm-up
    rates = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        out = model.generate(prompt, max_new_tokens=tokens)
        dt = time.perf_counter() - t0
        assert out.shape == (1, tokens + 1)
        rates.append(tokens / dt)
    emit({
        "bench": "nanogpt_generate",
        "shape": args.shape,
        "n_layer": shape["n_layer"],
        "n_head": shape["n_head"],
        "n_embd": shape["n_embd"],
        "block_size": shape["block_size"],
        "tokens": tokens,
        "chars_per_s": round(statistics.median(rates), 1),
        "chars_per_s_all": [round(r, 1) for r in rates],
        **env_info(nanogpt),
    })
    return 0


# --------------------------------------------------------------------------- CLI


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--nanogpt", default=DEFAULT_NANOGPT,
                        help="nanoGPT checkout (default: $NANOGPT_DIR or /tmp/nanogpt; now %(default)s)")
    common.add_argument("--text", default=str(DEFAULT_TEXT),
                        help="benchmark text (default: %(default)s)")
    sub = p.add_subparsers(dest="cmd", required=True)

    sp = sub.add_parser("prepare", parents=[common], help="write shakespeare_char data files")
    sp.add_argument("--out", required=True, help="directory for train.bin, val.bin, meta.pkl")
    sp.set_defaults(func=cmd_prepare)

    sp = sub.add_parser("train", parents=[common], help="run nanoGPT's train.py with a recipe")
    sp.add_argument("--recipe", choices=sorted(RECIPES), required=True)
    sp.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                    help="torch.compile the model (default: off, except on for the gpu recipe)")
    sp.add_argument("--out", help="nanoGPT out_dir for ckpt.pt, meta.pkl and train.log "
                                  "(default: $TMPDIR/nanogpt_ref/RECIPE[-compile])")
    sp.add_argument("--max-iters", type=int, help="override max_iters (and lr_decay_iters)")
    sp.add_argument("--eval-interval", type=int,
                    help="override eval_interval (default: recipe's, capped at max_iters)")
    sp.add_argument("--set", type=parse_override, action="append", metavar="KEY=VALUE",
                    help="extra nanoGPT config override, e.g. --set eval_iters=200 (repeatable)")
    sp.add_argument("--warmup", type=int, default=10,
                    help="iterations excluded from tokens/s at the start (default: %(default)s)")
    sp.add_argument("--python", default=sys.executable,
                    help="interpreter that runs train.py (default: this one)")
    sp.add_argument("--quiet", action="store_true", help="do not echo nanoGPT's output to stderr")
    sp.add_argument("--warm-compile-cache", action="store_true",
                    help="with --compile, use torch's shared inductor cache instead of a fresh one")
    sp.add_argument("--dry-run", action="store_true", help="print the train.py command, run nothing")
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("eval", parents=[common], help="full-validation loss of a checkpoint")
    sp.add_argument("--ckpt", required=True, help="nanoGPT ckpt.pt")
    sp.add_argument("--meta", help="meta.pkl with the vocabulary (default: next to --ckpt)")
    sp.add_argument("--batch-size", type=int, default=64, help="windows per forward pass")
    sp.add_argument("--device", default="cpu")
    sp.set_defaults(func=cmd_eval)

    sp = sub.add_parser("generate", parents=[common], help="time GPT.generate() on CPU")
    sp.add_argument("--shape", choices=sorted(GEN_SHAPES), required=True)
    sp.add_argument("--tokens", type=int, help="tokens to generate (default: 500 cpu, 300 gpu)")
    sp.add_argument("--warmup-tokens", type=int, default=10, help="discarded warm-up generation")
    sp.add_argument("--repeats", type=int, default=3, help="timed runs; median is reported")
    sp.add_argument("--seed", type=int, default=1337)
    sp.set_defaults(func=cmd_generate)

    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
