"""A run's training state (state.pt): everything `--resume` needs to go on exactly where the run
stopped: weights, optimizer and scaler state, counters, random generators, data position, and
a fingerprint of the corpus that the best score was measured on.

Written atomically and read with weights_only (charchat.store): a state file cannot run code.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import store
from .config import TrainConfig, TrainingError

STATE_FORMAT = "charchat-train-state"


@dataclass
class Counters:
    """Where a run stands, besides its weights."""

    step: int = 0
    elapsed: float = 0.0  # seconds of training, over every session of the run
    warmup_elapsed: float = 0.0  # the elapsed time when warmup ended
    best_val: float | None = None
    best_step: int | None = None
    bad_evals: int = 0  # evaluations since the last improvement larger than min_delta
    evals: int = 0
    world: int = 1  # how many processes trained it last (charchat.distributed)


def fingerprint(n_ids: int, val_ids: np.ndarray) -> str:
    """What identifies a corpus for resuming: its length and its validation split (the text
    every best score was measured on). Hashed in slices: a memmapped 200 MB corpus is not read
    into memory at once."""
    h = hashlib.sha256(f"{n_ids}:{val_ids.dtype}".encode())
    step = 1 << 22
    for i in range(0, len(val_ids), step):
        h.update(np.ascontiguousarray(val_ids[i:i + step]).tobytes())
    return h.hexdigest()[:32]


def save(path: Path, model, optimizers, scaler, counters: Counters, sampler, corpus_id: str,
         config: TrainConfig) -> None:
    sd = store._plain_state_dict(model)
    store.atomic_torch_save(path, {
        "format": STATE_FORMAT,
        "model": {k: v.detach().cpu() for k, v in sd.items()},
        "optimizer": [o.state_dict() for o in optimizers],
        "scaler": scaler.state_dict() if scaler.is_enabled() else {},
        "step": counters.step,
        "elapsed": counters.elapsed,
        "warmup_elapsed": counters.warmup_elapsed,
        "best_val": counters.best_val if counters.best_val is not None else float("nan"),
        "best_step": -1 if counters.best_step is None else counters.best_step,
        "bad_evals": counters.bad_evals,
        "evals": counters.evals,
        "world": counters.world,
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "data_sampler": sampler.state(),
        "corpus": corpus_id,
        "config": json.dumps(config.to_dict()),
    })


def read(path: Path) -> dict:
    """A state file, checked to be one; TrainingError names the file otherwise."""
    if not path.exists():
        raise TrainingError(f"{path}: no training state to resume from")
    try:
        st = store.safe_torch_load(path, "training state")
    except store.StoreError as e:
        raise TrainingError(str(e)) from None
    if not isinstance(st, dict) or st.get("format") != STATE_FORMAT:
        raise TrainingError(f"{path}: not a charchat training state")
    return st


def restore(path: Path, name: str, config: TrainConfig, model, optimizers, scaler,
            sampler) -> tuple[Counters, str | None]:
    """Load a state into a freshly built run; returns its counters and the corpus fingerprint
    it was saved with (None for states saved before there was one). A changed shape or
    optimizer is refused: the saved tensors would not fit."""
    st = read(path)
    saved = TrainConfig.from_dict(json.loads(st["config"]))
    for k in ("n_layer", "n_head", "n_embd", "block_size", "bias", "optimizer"):
        if getattr(saved, k) != getattr(config, k):
            raise TrainingError(
                f"cannot resume {name!r}: {k} was {getattr(saved, k)}, now {getattr(config, k)}"
            )
    sd = dict(st["model"])
    sd["transformer.wte.weight"] = sd["lm_head.weight"]
    model.load_state_dict(sd)
    saved_opts = st["optimizer"]
    if isinstance(saved_opts, dict):  # a state saved before there could be two optimizers
        saved_opts = [saved_opts]
    if len(saved_opts) != len(optimizers):
        raise TrainingError(f"{path}: its optimizer state does not match {config.optimizer!r}")
    for opt, sd_opt in zip(optimizers, saved_opts):
        opt.load_state_dict(sd_opt)
    if st["scaler"] and scaler.is_enabled():
        scaler.load_state_dict(st["scaler"])
    best = float(st["best_val"])
    counters = Counters(
        step=int(st["step"]), elapsed=float(st["elapsed"]),
        warmup_elapsed=float(st.get("warmup_elapsed", 0.0)),
        best_val=None if math.isnan(best) else best,
        best_step=None if int(st["best_step"]) < 0 else int(st["best_step"]),
        bad_evals=int(st["bad_evals"]), evals=int(st["evals"]),
        world=int(st.get("world", 1)),
    )
    torch.set_rng_state(st["torch_rng"])
    if st["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda_rng"])
    # (A state saved before epoch sampling keeps its weights and schedule; its data order
    # starts afresh from the seed.)
    if "data_sampler" in st:
        sampler.load_state(st["data_sampler"])
    return counters, st.get("corpus")


def progress_so_far(path: Path) -> tuple[float, int]:
    """(seconds, steps) a saved run has trained, from its state file; (0, 0) without one."""
    if not Path(path).exists():
        return 0.0, 0
    st = store.safe_torch_load(path, "training state")
    try:
        return float(st.get("elapsed", 0.0)), int(st.get("step", 0))
    except (AttributeError, TypeError, ValueError):
        return 0.0, 0
