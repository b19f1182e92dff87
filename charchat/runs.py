"""What the command line and the app both do: plan a training run (new or resumed), check and
suggest names, choose the model to open, score a text file with a model.

Each front end turns what the user typed into a RunRequest, calls plan(), then train(); the
rules (what --minutes means when resuming, which name is free, where the corpus is) live here
once. Importing this module imports no torch: the app calls it from its first screen.

Resuming: --minutes M (or the form's minutes) means M more minutes, and --max-steps N means N
more steps, counted from where the run stopped; without either the saved schedule goes on.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import locking, preferences, store
from .config import SETTING, SHAPE_KEYS, ConfigError, TrainConfig, TrainEvent, TrainResult
from .recipe import PRESETS

PRESET_CHOICES = ("auto", *PRESETS)


class Cancelled(Exception):
    """Stopped before training began."""


class NameTaken(ConfigError):
    """A model of that name exists (the front ends say how to resume it or pick another)."""

    def __init__(self, name: str) -> None:
        super().__init__("name", f"a model named {name!r} already exists")
        self.name = name


@dataclass
class RunRequest:
    """What a front end asks for."""

    paths: list[str] = field(default_factory=list)  # as typed; resuming: [] = its own corpus
    name: str | None = None  # None: from the first file's name
    minutes: float | None = None  # resuming: minutes more
    max_steps: int | None = None  # resuming: steps more
    overrides: dict = field(default_factory=dict)  # TrainConfig fields set by hand
    preset: str = "auto"  # a size from charchat.recipe.PRESETS, under the overrides
    resume: str | None = None  # the name (or folder) of the model to go on training
    start_from: str | None = None  # a new run starting from this model's weights (fine-tune)
    sample_every: int = 0  # evaluations between text samples (the app shows them)
    gpus: int = 1  # processes to train in (charchat train --gpus N; train_in_processes)


@dataclass
class RunPlan:
    """A run ready to start: plan() has checked everything it can without reading the text."""

    name: str
    paths: list[str]  # to read, as typed (messages name them so)
    config: TrainConfig
    folder: Path | None = None  # resuming: the model's folder (else models/NAME)
    tokenizer: object | None = None  # resuming or fine-tuning: the model's vocabulary
    resume: bool = False
    init_from: Path | None = None  # fine-tuning: the weights file the run starts from

    @property
    def recorded_paths(self) -> list[str]:
        """The paths as train_args.json keeps them: absolute, so that a resume from another
        folder finds them."""
        return [os.path.abspath(os.path.expanduser(p)) for p in self.paths]


# ---------------------------------------------------------------------------------------------
# Names


def suggest_name(paths: list[str]) -> str:
    """A free model name from the first corpus path."""
    stem = Path(paths[0]).expanduser().resolve().stem if paths else ""
    return store.unique_name(stem or "model")


def check_new_name(name: str) -> str:
    """name, if a new run may take it; ConfigError on "name" otherwise."""
    try:
        store.check_name(name)
    except store.StoreError as e:
        raise ConfigError("name", str(e), code=2) from None
    folder = store.models_dir() / name
    locking.check_free(name, folder, lambda msg: ConfigError("name", msg))
    if (folder / store.WEIGHTS).exists():
        raise NameTaken(name)
    return name


def model_to_open(requested: str | None = None) -> str | None:
    """The model to open: the one asked for, the pinned default, the last used, the bundled
    default, the newest saved one, or None when there is none at all."""
    if requested:
        return requested
    models = store.list_models(include_bundled=True)
    names = {m.name for m in models}
    for name in (preferences.default_model(), preferences.last_model()):
        if name and (name in names or "/" in name):
            return name
    if store.BUNDLED_NAME in names:
        return store.BUNDLED_NAME
    if models:
        return max(models, key=lambda m: m.updated).name
    return None


# ---------------------------------------------------------------------------------------------
# Planning a run


def plan(req: RunRequest) -> RunPlan:
    """Check a request and make it a plan. Raises ConfigError (naming the setting), StoreError."""
    for key, value in req.overrides.items():
        if key not in SETTING:
            raise ConfigError(key, "not a training setting")
    if req.resume and req.start_from:
        raise ConfigError("from", "cannot be used with --resume: --from starts a new model",
                          code=2)
    return _plan_resume(req) if req.resume else _plan_new(req)


def _plan_new(req: RunRequest) -> RunPlan:
    if not req.paths:
        raise ConfigError("paths", "no corpus given: name one or more text files or folders",
                          code=2)
    # --name "" is an invalid name, not "pick one for me"
    name = check_new_name(req.name) if req.name is not None else suggest_name(req.paths)
    if req.start_from:
        return _plan_fine_tune(req, name)
    return RunPlan(name, list(req.paths), _new_config(req))


# Fine-tuning starts from trained weights: AdamW at a small rate (nanoGPT fine-tunes GPT-2 on
# Shakespeare at 3e-5; not tuned here), and a context of at most FINE_TUNE_BLOCK unless set
# (GPT-2's 1,024 is slow on a CPU; the position table is cut to fit).
FINE_TUNE_LR = 6e-5
FINE_TUNE_BLOCK = 256


def _plan_fine_tune(req: RunRequest, name: str) -> RunPlan:
    src_name, folder = store.resolve(req.start_from)
    weights = folder / store.WEIGHTS
    if not weights.exists():
        raise store.StoreError(f"{folder}: no model to start from ({store.WEIGHTS} is missing)")
    shape = store.read_shape(folder)
    tokenizer = store.read_tokenizer(folder)
    fixed = {"n_layer": shape.get("n_layer"), "n_head": shape.get("n_head"),
             "n_embd": shape.get("n_embd"), "bias": shape.get("bias"),
             "tokenizer": tokenizer.name}
    for key, value in fixed.items():
        if key in req.overrides and req.overrides[key] != value:
            raise ConfigError(key, f"cannot change when starting from {src_name!r}: it has "
                                   f"{value}, not {req.overrides[key]}")
    if req.preset != "auto":
        raise ConfigError("preset", f"cannot be used with --from: {src_name!r} has its size")
    overrides = {**fixed, **req.overrides}
    block = overrides.setdefault("block_size", min(shape.get("block_size", 0), FINE_TUNE_BLOCK))
    if block > shape.get("block_size", 0):
        raise ConfigError("block_size", f"must be at most {shape.get('block_size')}, the "
                                        f"context {src_name!r} was trained with, got {block}")
    overrides.setdefault("optimizer", "adamw")
    overrides.setdefault("lr", FINE_TUNE_LR)
    overrides.setdefault("min_lr", overrides["lr"] / 10)
    config = _new_config(RunRequest(paths=req.paths, minutes=req.minutes,
                                    max_steps=req.max_steps, overrides=overrides,
                                    sample_every=req.sample_every))
    return RunPlan(name, list(req.paths), config, tokenizer=tokenizer, init_from=weights)


def _new_config(req: RunRequest) -> TrainConfig:
    overrides = dict(req.overrides)
    if req.preset != "auto":
        if req.preset not in PRESETS:
            raise ConfigError("preset", f"unknown size {req.preset!r}: use "
                                        f"{', '.join(PRESET_CHOICES)}", code=2)
        for k, v in zip(("n_layer", "n_head", "n_embd"), PRESETS[req.preset]):
            overrides.setdefault(k, v)
    config = TrainConfig(minutes=req.minutes, max_steps=req.max_steps,
                         sample_every=req.sample_every, **overrides)
    config.check()
    return config


def _plan_resume(req: RunRequest) -> RunPlan:
    name, folder = store.resolve(req.resume)
    if req.name is not None and req.name != name:
        raise ConfigError("name", f"cannot be used with --resume: {name!r} goes on under its "
                                  "own name (charchat models rename changes it)", code=2)
    locking.check_free(name, folder, store.StoreError)
    record = store.read_training_record(folder)
    tokenizer = store.read_tokenizer(folder)
    base = dict(record.get("config", {}))
    for key in SHAPE_KEYS:
        if key in req.overrides and key in base and req.overrides[key] != base[key]:
            raise ConfigError(key, f"cannot change when resuming {name!r}: it was {base[key]}, "
                                   f"now {req.overrides[key]}")
    if req.preset != "auto":
        raise ConfigError("preset", f"cannot change when resuming {name!r}")
    if req.minutes or req.max_steps:
        # More minutes or steps, counted from where the run stopped: a new total for the
        # schedule, which goes on from its current point.
        from .checkpoint import progress_so_far

        done_s, done_steps = progress_so_far(folder / store.STATE)
        base["minutes"] = done_s / 60.0 + req.minutes if req.minutes else None
        base["max_steps"] = done_steps + req.max_steps if req.max_steps else None
    base.update(req.overrides)
    base["sample_every"] = req.sample_every
    try:
        config = TrainConfig.from_dict(base)
    except ValueError as e:
        raise store.StoreError(f"{folder / 'train_args.json'}: cannot resume ({e})") from None
    config.check()
    paths = list(req.paths) or record.get("corpus_paths", [])
    if not paths:
        raise ConfigError("paths", f"cannot resume {name!r}: its corpus paths are not "
                                   "recorded; name them")
    return RunPlan(name, paths, config, folder, tokenizer, resume=True)


def resolved_defaults(req: RunRequest, n_chars: int, kind: str) -> tuple[dict, list[str], str]:
    """What the core would pick for a new run of this request on a corpus of n_chars (every
    setting filled in), its notes, and the device's label; with start_from, the fine-tune
    plan's settings (the model's shape and tokenizer, AdamW at a small rate). Imports torch."""
    from .device import pick_device
    from .recipe import resolve_config

    config = (_plan_fine_tune(req, req.name or "").config if req.start_from
              else _new_config(req))
    dev = pick_device(config.device)
    c, notes = resolve_config(config, n_tokens=n_chars, device=dev.device.type, kind=kind)
    return c.to_dict(), notes, dev.label


def fine_tune_speed(start_from: str, block_size: int, device: str = "cpu",
                    steps: int = 2) -> float:
    """Training tokens per second of a model shaped like `start_from` at this context, measured
    now: forward and backward passes of one row, after a warm-up one (the optimizer's step is
    left out: a rough figure for what the budget buys). Imports torch."""
    import time

    import torch

    from .config import GPTConfig
    from .device import pick_device
    from .model import GPT

    folder = store.resolve(start_from)[1]
    try:
        cfg = GPTConfig.from_dict({**store.read_shape(folder), "block_size": block_size,
                                   "dropout": 0.0})
    except (ValueError, TypeError) as e:
        raise store.StoreError(f"{folder / 'config.json'}: not a model shape ({e})") from None
    dev = pick_device(device).device
    model = GPT(cfg).to(dev)
    x = torch.randint(0, cfg.vocab_size, (1, block_size + 1), device=dev)

    def step() -> None:
        _, loss = model(x[:, :-1], x[:, 1:])
        loss.backward()

    step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return steps * block_size / (time.perf_counter() - t)


def saved_settings(name: str) -> tuple[dict, list[str], str]:
    """A saved model's settings as resolved_defaults gives them: resuming keeps them. Its
    minutes and steps are left out: resuming, those mean how much more (none: the saved
    schedule goes on)."""
    record = store.read_training_record(store.resolve(name)[1])
    device = record.get("device")
    config = {k: v for k, v in record.get("config", {}).items()
              if k not in ("minutes", "max_steps")}
    return config, [], device if isinstance(device, str) else ""


def saved_paths(name: str) -> list[str]:
    """The corpus paths a saved model was trained on."""
    return list(store.read_training_record(store.resolve(name)[1]).get("corpus_paths", []))


# ---------------------------------------------------------------------------------------------
# Running it


def load_corpus(p: RunPlan, progress: Callable[[str, int, int], None] | None = None):
    """Read the plan's corpus (with the model's vocabulary when resuming, else the tokenizer
    its settings name). CorpusError. progress(stage, done, total) as in corpus.load_corpus."""
    from .corpus import load_corpus as load

    return load(p.paths, tokenizer=p.tokenizer, spec=p.config.tokenizer, progress=progress)


def train(p: RunPlan, on_event: Callable[[TrainEvent], None] | None = None,
          cancel: threading.Event | None = None, corpus=None, dist=None) -> TrainResult:
    """Run a plan: read the corpus unless given, then train (as one rank of `dist`, a
    charchat.distributed.Dist, when torchrun started several processes). Raises the core's
    errors, and Cancelled when cancel was set before training began."""
    from .trainer import Trainer

    cancel = cancel or threading.Event()
    if corpus is None:
        if on_event is not None:
            on_event(TrainEvent("note", message="reading the corpus…"))
        corpus = load_corpus(p)
    if cancel.is_set() and not (dist is not None and dist.on):
        raise Cancelled()  # (across processes the trainer's first step decides, together)
    return Trainer(corpus, p.config, name=p.name, out_dir=p.folder, on_event=on_event,
                   cancel=cancel, resume=p.resume, corpus_paths=p.recorded_paths,
                   init_from=p.init_from, dist=dist).run()


def cuda_devices() -> int:
    """How many CUDA GPUs this machine has (imports torch)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def train_in_processes(req: RunRequest, on_event: Callable[[TrainEvent], None] | None = None,
                       cancel: threading.Event | None = None) -> TrainResult:
    """Train req in req.gpus processes (`charchat train --gpus N`, a child process, in its own
    session), following the run through the events rank 0 prints as JSON lines. Setting
    cancel stops it as Ctrl-C would (every rank at one step, the best model kept). Raises
    TrainingError with the run's own one-line error, and Cancelled when it was stopped before
    training began."""
    import contextlib
    import json
    import signal
    import subprocess
    import sys
    from dataclasses import asdict

    from .config import TrainingError

    cancel = cancel or threading.Event()
    cmd = [sys.executable, "-m", "charchat", "train", "--request", json.dumps(asdict(req)),
           "--gpus", str(req.gpus), "--events"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            errors="replace", start_new_session=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    finished = threading.Event()

    def stop_when_asked() -> None:
        while not finished.is_set():
            if cancel.wait(0.2) and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGINT)  # the launcher passes it to every rank
                return

    threading.Thread(target=stop_when_asked, daemon=True).start()
    errors: list[str] = []
    reader = threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True)
    reader.start()
    start = end = last = None
    try:
        for line in proc.stdout:
            try:
                ev = TrainEvent.from_json(line)
            except (ValueError, TypeError):
                continue  # (a line that is not an event: nothing to follow)
            last = ev
            start = ev if ev.kind == "start" else start
            end = ev if ev.kind == "end" else end
            if on_event is not None:
                on_event(ev)
            if end is not None:
                break  # (the run has ended; a process that lingers holds no news)
        code = proc.wait()
    finally:
        finished.set()
        if proc.poll() is None:  # (the caller failed, or a process lingers): stop it all
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)
            try:
                code = proc.wait(timeout=360)  # (the launcher's own wait for a clean stop)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
    reader.join(timeout=5)
    if end is not None and start is not None:
        return TrainResult(start.start.name, Path(start.start.folder), end.stop_reason,
                           end.message, end.step, end.best_val_loss, end.best_step, end.elapsed,
                           TrainConfig.from_dict(start.start.config))
    said = [e.strip().removeprefix("charchat: error: ") for e in errors
            if e.startswith("charchat: error:")]
    if said:  # rank 0's line (no "rank N: " in front) says it for the run
        raise TrainingError(next((e for e in said if not e.startswith("rank ")), said[0]))
    if code == 130 and start is None:
        raise Cancelled()
    where = f" at step {last.step}" if last is not None else ""
    raise TrainingError(f"training in {req.gpus} processes ended{where} without finishing "
                        f"(status {code}; {(errors or ['no message'])[-1].strip()[:160]})")


def train_files(corpus, name: str | None = None,
                on_event: Callable[[TrainEvent], None] | None = None,
                cancel: threading.Event | None = None, out_dir: str | Path | None = None,
                **overrides) -> TrainResult:
    """Train a model on a Corpus or on paths of text files, in one call (for notebooks:
    charchat.train). overrides are TrainConfig fields, e.g. minutes=2, n_layer=4."""
    from .corpus import Corpus, load_corpus as load
    from .trainer import Trainer

    paths = None
    if not isinstance(corpus, Corpus):
        paths = [str(p) for p in ([corpus] if isinstance(corpus, (str, Path)) else corpus)]
        corpus = load(paths, spec=overrides.get("tokenizer", "char"))
    if name is None and out_dir is None:
        name = suggest_name([corpus.summary.files[0]])
    return Trainer(corpus, TrainConfig(**overrides), name=name, out_dir=out_dir,
                   on_event=on_event, cancel=cancel,
                   corpus_paths=paths and [os.path.abspath(p) for p in paths]).run()


# ---------------------------------------------------------------------------------------------
# Scoring a text file


def evaluate_file(loaded, path: str, device, amp_dtype=None) -> dict:
    """Validation loss of a loaded model on the last 10% of a text file: {"val_loss", "bpc",
    "bpb", "ppl", "tokens", "chars"}. Raises CorpusError, or ConfigError("file") when the text
    does not fit the model."""
    import numpy as np

    from .corpus import load_corpus as load

    tok = loaded.tokenizer
    bs = loaded.model.config.block_size
    if tok.kind == "bpe":  # every text has BPE ids: read with the model's own
        corpus = load([path], tokenizer=tok)
        val = corpus.val_ids
        if len(val) < bs + 1:
            raise ConfigError("file", f"{path}: its last 10% has {len(val)} tokens; "
                                      f"model {loaded.name!r} needs at least {bs + 1}")
        return _scored(loaded, corpus, val, device, amp_dtype)
    # Read with the file's own vocabulary: a character the model lacks matters only in the
    # last 10%, the part scored. (The count of ids, so the split, is the same.)
    corpus = load([path])
    own = corpus.tokenizer
    to_model = np.array([tok.special_ids.get(c, tok.stoi.get(c, -1)) for c in own.itos],
                        dtype=np.int32)  # 4 bytes an id: a 200 MB file's last tenth is 80 MB
    val = to_model[corpus.val_ids]
    if (val < 0).any():
        lacking = [own.itos[i] for i in np.unique(np.asarray(corpus.val_ids)[val < 0])]
        shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in lacking[:5])
        raise ConfigError("file", f"{path}: its last 10% has {len(lacking)} character(s) "
                                  f"model {loaded.name!r} never saw: {shown}")
    if len(val) < bs + 1:
        raise ConfigError("file", f"{path}: its last 10% has {len(val)} characters; "
                                  f"model {loaded.name!r} needs at least {bs + 1}")
    return _scored(loaded, corpus, val, device, amp_dtype)


def _scored(loaded, corpus, val, device, amp_dtype) -> dict:
    """val_loss's figures, with bits per character and per byte of the text: {"val_loss",
    "bpc", "bpb", "ppl", "tokens", "chars"} ("chars": characters of the text scored)."""
    import math

    from .evaluate import val_loss

    r = val_loss(loaded.model, val, device, amp_dtype)
    tokens = r.pop("chars")
    return {"val_loss": r["val_loss"],
            "bpc": r["val_loss"] / math.log(2) / corpus.chars_per_token,
            "bpb": r["val_loss"] / math.log(2) / corpus.bytes_per_token,
            "ppl": r["ppl"], "tokens": tokens,
            "chars": round(tokens * corpus.chars_per_token)}


__all__ = ["RunRequest", "RunPlan", "plan", "train", "train_files", "suggest_name",
           "check_new_name", "model_to_open", "evaluate_file"]
