"""The training loop: Muon and AdamW (or AdamW alone), warmup then cosine, clipping,
evaluation, early stopping, resume.

Progress goes out through a plain callback that receives TrainEvent objects, and the same
figures go to metrics.jsonl next to the model; nothing here knows about any user interface.
A threading.Event set from another thread stops the loop within one optimiser step.

The best model on disk always equals the lowest validation loss logged: it is written, atomically,
at every evaluation that improves on the best so far, and at no other time. Early stopping counts
only improvements larger than min_delta, but any improvement is saved.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import locking, store
from .adamw import AdamW
from .allocator import keep_freed_memory
from .batches import WindowSampler
from .corpus import Corpus, CorpusError
from .device import DeviceInfo, pick_device
from .evaluate import window_starts, windows_loss
from .model import GPT, GPTConfig
from .muon import Muon
from .optimizer import Optimizer
from .recipe import resolve_config
from .store import unique_name  # noqa: F401  (re-exported: used by the CLI)

STATE_FORMAT = "charchat-train-state"


class TrainingError(Exception):
    """Training could not start or go on. The message is one line."""


def _has_type(value, annotation: str) -> bool:
    """Whether a value read from JSON fits a TrainConfig annotation such as "int | None"."""
    kinds = {k.strip() for k in annotation.split("|")}
    if value is None:
        return "None" in kinds
    if isinstance(value, bool):
        return "bool" in kinds
    if isinstance(value, int):
        return bool(kinds & {"int", "float"})
    if isinstance(value, float):
        return "float" in kinds
    return isinstance(value, str) and "str" in kinds


@dataclass
class TrainConfig:
    """Every hyperparameter. None means: choose from the corpus, the device and the budget
    (see charchat.recipe)."""

    # model shape
    n_layer: int | None = None
    n_head: int | None = None
    n_embd: int | None = None
    block_size: int | None = None
    dropout: float | None = None
    bias: bool = False  # GPT-2 has biases; without them steps are a little cheaper (nanoGPT's default)
    # optimisation
    batch_size: int | None = None
    grad_accum: int = 1
    # "muon": Muon for the weight matrices inside the blocks, AdamW for embeddings and norm
    # gains (measured better for the same time: see charchat.muon); "adamw": AdamW for all.
    optimizer: str = "muon"
    lr: float | None = None  # AdamW's peak rate
    muon_lr: float | None = None  # Muon's peak rate; follows the same warmup and decay as lr
    muon_momentum: float | None = None
    min_lr: float | None = None
    warmup_steps: int | None = None
    weight_decay: float = 0.1  # AdamW's: embeddings (and, with --optimizer adamw, every matrix)
    muon_weight_decay: float | None = None  # the block matrices' under Muon
    beta1: float = 0.9
    beta2: float | None = None
    grad_clip: float = 1.0
    # how long
    minutes: float | None = None
    max_steps: int | None = None
    # evaluation and stopping
    eval_interval: int | None = None
    eval_tokens: int | None = None
    patience: int = 6  # evaluations without an improvement larger than min_delta
    min_delta: float = 0.0
    log_interval: int = 10
    sample_every: int = 0  # evaluations between text samples sent as events (0 = none)
    seed: int = 1337
    device: str = "auto"
    compile: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        # Runs saved before the optimizer was a setting all trained with AdamW.
        d.setdefault("optimizer", "adamw")
        # Runs saved before Muon had its own decay decayed its matrices at weight_decay.
        if "weight_decay" in d:
            d.setdefault("muon_weight_decay", d["weight_decay"])
        # and before its momentum was a setting, used Muon's usual 0.95.
        d.setdefault("muon_momentum", 0.95)
        for f in fields(cls):  # a damaged or hand-edited record fails here, by name
            if f.name in d and not _has_type(d[f.name], str(f.type)):
                raise ValueError(f"setting {f.name!r} should be {f.type}, got {d[f.name]!r}")
        return cls(**d)

    def model_config(self, vocab_size: int) -> GPTConfig:
        return GPTConfig(
            vocab_size=vocab_size, block_size=self.block_size, n_layer=self.n_layer,
            n_head=self.n_head, n_embd=self.n_embd, dropout=self.dropout, bias=self.bias,
        )


@dataclass
class TrainEvent:
    """One report from the loop. kind: start, step, eval, sample, end."""

    kind: str
    step: int = 0
    max_steps: int | None = None
    train_loss: float | None = None
    val_loss: float | None = None
    best_val_loss: float | None = None
    ppl: float | None = None  # exp(val_loss) on eval events, exp(train_loss) on step events
    lr: float | None = None
    grad_norm: float | None = None  # global norm before clipping
    tokens_per_s: float | None = None
    elapsed: float = 0.0
    eta: float | None = None  # seconds left, best guess
    progress: float = 0.0  # 0..1 of the run: steps done of --max-steps, or time of --minutes
    improved: bool = False
    message: str = ""
    sample: str = ""
    stop_reason: str = ""
    details: dict = field(default_factory=dict)

    def to_json(self) -> str:
        # Leave out empty fields, but keep zeros (0 == False, so test identity, not equality).
        d = {k: v for k, v in asdict(self).items()
             if k == "kind" or not (v is None or v is False or v == "" or v == {})}
        return json.dumps(d)


@dataclass
class TrainResult:
    name: str
    path: Path
    stop_reason: str  # early_stopping, time_budget, max_steps, step_cap, cancelled, non_finite
    message: str
    steps: int
    best_val_loss: float | None
    best_step: int | None
    elapsed: float
    config: TrainConfig


STOP_MESSAGES = {
    "early_stopping": "validation loss stopped improving (early stopping)",
    "time_budget": "time budget used up",
    "max_steps": "reached --max-steps",
    "step_cap": "reached the step cap",
    "cancelled": "stopped by you",
    "non_finite": "training diverged",
}


OUT_OF_MEMORY = "out of memory: try a smaller model, batch size or context length"


class Trainer:
    def __init__(
        self,
        corpus: Corpus,
        config: TrainConfig | None = None,
        name: str | None = None,
        out_dir: str | Path | None = None,
        on_event: Callable[[TrainEvent], None] | None = None,
        cancel: threading.Event | None = None,
        resume: bool = False,
        corpus_paths: list[str] | None = None,
    ) -> None:
        self.corpus = corpus
        self.user_config = config or TrainConfig()
        self.on_event = on_event
        self.cancel = cancel or threading.Event()
        self.resume = resume
        self.corpus_paths = corpus_paths or list(corpus.summary.files)
        if out_dir is not None:
            self.folder = Path(out_dir)
            self.name = name or self.folder.name
        else:
            if not name:
                raise TrainingError("a model name is needed (or an out_dir)")
            self.name = store.check_name(name)
            self.folder = store.model_dir(name)

    # -----------------------------------------------------------------------------------------
    def _emit(self, event: TrainEvent, log: bool = True) -> None:
        if log and self._metrics is not None:
            self._metrics.write(event.to_json() + "\n")
            self._metrics.flush()
        if self.on_event is not None:
            self.on_event(event)

    def _lr_at(self, step: int, progress: float) -> float:
        c = self.config
        if step < c.warmup_steps:
            return c.lr * (step + 1) / c.warmup_steps
        # Cosine over what is left of the schedule after warmup, measured in steps or time.
        p = min(1.0, max(0.0, progress))
        return c.min_lr + 0.5 * (c.lr - c.min_lr) * (1.0 + math.cos(math.pi * p))

    def _progress(self, step: int, elapsed: float) -> float:
        c = self.config
        parts = []
        if c.max_steps:
            w = min(c.warmup_steps, c.max_steps - 1)
            parts.append((step - w) / max(1, c.max_steps - w))
        if c.minutes:
            budget = c.minutes * 60.0
            parts.append((elapsed - self._warmup_elapsed) / max(1e-9, budget - self._warmup_elapsed))
        return min(1.0, max(0.0, max(parts))) if parts else 0.0

    def _done(self, elapsed: float) -> float:
        """How much of the run is done, for progress bars: the larger of the step and time
        fractions. (The schedule's progress, _progress, starts after warmup, so a bar drawn
        from it lagged the clock: 40% done with a third of the time left.)"""
        c = self.config
        parts = [0.0]
        if c.max_steps:
            parts.append(self.step / c.max_steps)
        if c.minutes:
            parts.append(elapsed / (c.minutes * 60.0))
        return min(1.0, max(parts))

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        ix = self.sampler.next(c.batch_size)
        rows = self.train_ids[ix[:, None] + self._offsets]
        t = torch.from_numpy(rows.astype(np.int64))
        if self.dev.device.type == "cuda":
            t = t.pin_memory().to(self.dev.device, non_blocking=True)
        elif self.dev.device.type != "cpu":
            t = t.to(self.dev.device)
        return t[:, :-1], t[:, 1:]

    def _amp(self):
        if self.dev.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.dev.device.type, dtype=self.dev.amp_dtype)

    def _evaluate(self, model: GPT | None = None) -> float:
        """Validation loss of the model in training (or of `model`, the saved best)."""
        loss, _ = windows_loss(self.model if model is None else model, self.val_ids,
                               self.eval_starts, self.dev.device, self.dev.amp_dtype)
        return loss

    # -----------------------------------------------------------------------------------------
    def _setup(self) -> None:
        keep_freed_memory()
        summary = self.corpus.summary
        try:
            self.dev: DeviceInfo = pick_device(self.user_config.device)
        except ValueError as e:
            raise TrainingError(str(e)) from None
        self.config, self.notes = resolve_config(
            self.user_config, n_tokens=len(self.corpus.ids), device=self.dev.device.type,
            kind=summary.kind,
        )
        c = self.config
        self.corpus.check_window(c.block_size)
        self.train_ids = self.corpus.train_ids
        self.val_ids = self.corpus.val_ids
        self._n_train = len(self.train_ids)
        self._offsets = np.arange(c.block_size + 1, dtype=np.int64)
        max_windows = max(1, c.eval_tokens // c.block_size)
        self.eval_starts = window_starts(len(self.val_ids), c.block_size, max_windows)

        torch.manual_seed(c.seed)
        self.sampler = WindowSampler(self._n_train, c.block_size, c.seed)
        self.model = GPT(c.model_config(self.corpus.tokenizer.vocab_size)).to(self.dev.device)
        self.optimizers = self._make_optimizers()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dev.needs_scaler)
        self.step = 0
        self.elapsed_before = 0.0
        self.best_val: float | None = None
        self.best_step: int | None = None
        self.bad_evals = 0
        self.evals = 0
        self._warmup_elapsed = 0.0

        self._corpus_id = self._fingerprint()
        if self.resume:
            self._load_state()
        elif (self.folder / store.WEIGHTS).exists():
            raise TrainingError(
                f"a model named {self.name!r} already exists at {self.folder}; "
                "resume it or choose another name"
            )
        self.train_model = self.model
        if c.compile:
            self.train_model = self._compiled_or_eager()
        self.folder.mkdir(parents=True, exist_ok=True)
        store.atomic_write_json(self.folder / "config.json", self.model.config.to_dict())
        store.atomic_write_text(self.folder / "tokenizer.json", self.corpus.tokenizer.to_json() + "\n")
        store.atomic_write_json(
            self.folder / "train_args.json",
            {"config": c.to_dict(), "corpus_paths": [str(p) for p in self.corpus_paths],
             "device": self.dev.label, "notes": self.notes},
        )
        store.atomic_write_json(self.folder / "corpus.json", summary.to_dict())

    def _compiled_or_eager(self) -> torch.nn.Module:
        """torch.compile(model), tried on one batch: compiling happens at the first call, and
        fails there on machines without a C++ compiler. Compiling is an optimisation, so a
        failure means a note and eager training, never a crashed run."""
        c = self.config
        try:
            compiled = torch.compile(self.model)
            # Fixed windows and a forked RNG: the probe must not move the data order or the
            # dropout stream of the run itself. A full batch, so that the run's first step
            # has the same shapes and does not compile again.
            starts = np.linspace(0, self._n_train - c.block_size - 1, c.batch_size).astype(np.int64)
            rows = self.train_ids[starts[:, None] + self._offsets]
            cuda = [self.dev.device.index or 0] if self.dev.device.type == "cuda" else []
            with torch.random.fork_rng(devices=cuda):
                t = torch.from_numpy(rows.astype(np.int64)).to(self.dev.device)
                with self._amp():
                    _, loss = compiled(t[:, :-1], t[:, 1:])
                loss.backward()
            return compiled
        except Exception as e:
            first = (str(e).strip().splitlines() or [""])[0][:160]
            self.notes.append(
                f"torch.compile failed ({e.__class__.__name__}: {first}); training without it"
            )
            return self.model
        finally:
            self.model.zero_grad(set_to_none=True)

    def _make_optimizers(self) -> list[Optimizer]:
        c = self.config
        named = list(self.model.named_parameters())  # the tied head appears once, as wte
        if c.optimizer == "muon":
            # The matrices inside the blocks (attention and MLP weights) go to Muon. The
            # embeddings (also the output head) are lookup tables rather than linear maps of
            # the residual stream, so they stay with AdamW, as do norm gains and biases.
            in_blocks = [(n, p) for n, p in named
                         if p.dim() == 2 and n.startswith("transformer.h.")]
            matrices = [p for _, p in in_blocks]
            # The attention's fused projection stacks three maps (queries, keys, values):
            # Muon orthogonalises each on its own (see charchat.muon).
            row_blocks = [3 if n.endswith(".attn.c_attn.weight") else 1 for n, _ in in_blocks]
            taken = {n for n, _ in in_blocks}
            others = [(n, p) for n, p in named if n not in taken]
        else:
            matrices, others = [], named
        decay = [p for _, p in others if p.dim() >= 2]
        no_decay = [p for _, p in others if p.dim() < 2]
        groups = [
            {"params": decay, "weight_decay": c.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        fused = self.dev.device.type in ("cuda", "cpu")
        opts: list[Optimizer] = [AdamW(groups, lr=c.lr, betas=(c.beta1, c.beta2), fused=fused)]
        if matrices:
            scale = c.muon_lr / c.lr
            # Decay per step is lr(t) * muon_weight_decay, lr(t) being AdamW's rate, so the
            # two decay settings are on the same scale.
            muon = Muon([{"params": matrices, "row_blocks": row_blocks}], lr=c.muon_lr,
                        momentum=c.muon_momentum, weight_decay=c.muon_weight_decay / scale)
            muon.param_groups[0]["lr_scale"] = scale  # the schedule sets lr(t) * lr_scale
            opts.append(muon)
        return opts

    def _state_payload(self) -> dict:
        sd = store._plain_state_dict(self.model)
        return {
            "format": STATE_FORMAT,
            "model": {k: v.detach().cpu() for k, v in sd.items()},
            "optimizer": [o.state_dict() for o in self.optimizers],
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "step": self.step,
            "elapsed": self._elapsed(),
            "warmup_elapsed": self._warmup_elapsed,
            "best_val": self.best_val if self.best_val is not None else float("nan"),
            "best_step": -1 if self.best_step is None else self.best_step,
            "bad_evals": self.bad_evals,
            "evals": self.evals,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "data_sampler": self.sampler.state(),
            "corpus": self._corpus_id,
            "config": json.dumps(self.config.to_dict()),
        }

    def _save_state(self) -> None:
        store.atomic_torch_save(self.folder / store.STATE, self._state_payload())

    def _load_state(self) -> None:
        path = self.folder / store.STATE
        if not path.exists():
            raise TrainingError(f"{path}: no training state to resume from")
        try:
            st = store.safe_torch_load(path, "training state")
        except store.StoreError as e:
            raise TrainingError(str(e)) from None
        if not isinstance(st, dict) or st.get("format") != STATE_FORMAT:
            raise TrainingError(f"{path}: not a charchat training state")
        saved = TrainConfig.from_dict(json.loads(st["config"]))
        for k in ("n_layer", "n_head", "n_embd", "block_size", "bias", "optimizer"):
            if getattr(saved, k) != getattr(self.config, k):
                raise TrainingError(
                    f"cannot resume {self.name!r}: {k} was {getattr(saved, k)}, "
                    f"now {getattr(self.config, k)}"
                )
        sd = dict(st["model"])
        sd["transformer.wte.weight"] = sd["lm_head.weight"]
        self.model.load_state_dict(sd)
        saved_opts = st["optimizer"]
        if isinstance(saved_opts, dict):  # a state saved before there could be two optimizers
            saved_opts = [saved_opts]
        if len(saved_opts) != len(self.optimizers):
            raise TrainingError(
                f"{path}: its optimizer state does not match {self.config.optimizer!r}")
        for opt, sd_opt in zip(self.optimizers, saved_opts):
            opt.load_state_dict(sd_opt)
        if st["scaler"] and self.scaler.is_enabled():
            self.scaler.load_state_dict(st["scaler"])
        self.step = int(st["step"])
        self.elapsed_before = float(st["elapsed"])
        self._warmup_elapsed = float(st.get("warmup_elapsed", 0.0))
        best = float(st["best_val"])
        self.best_val = None if math.isnan(best) else best
        self.best_step = None if int(st["best_step"]) < 0 else int(st["best_step"])
        self.bad_evals = int(st["bad_evals"])
        self.evals = int(st["evals"])
        torch.set_rng_state(st["torch_rng"])
        if st["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(st["cuda_rng"])
        if "data_sampler" in st:
            self.sampler.load_state(st["data_sampler"])
        if "corpus" in st:
            other_text = st["corpus"] != self._corpus_id
        else:  # a state saved before the fingerprint: the length the folder recorded
            other_text = self._recorded_length() not in (None, len(self.corpus.ids))
        if other_text:
            self._rebase_best()
        # (A state saved before epoch sampling keeps its weights and schedule; its data order
        # starts afresh from the seed.)

    def _fingerprint(self) -> str:
        """What identifies the corpus for resuming: its length and its validation split (the
        text every best score was measured on). Hashed in slices: a memmapped 200 MB corpus
        is not read into memory at once."""
        h = hashlib.sha256(f"{len(self.corpus.ids)}:{self.val_ids.dtype}".encode())
        step = 1 << 22
        for i in range(0, len(self.val_ids), step):
            h.update(np.ascontiguousarray(self.val_ids[i:i + step]).tobytes())
        return h.hexdigest()[:32]

    def _recorded_length(self) -> int | None:
        """The corpus length in the folder's corpus.json (rewritten only after this check)."""
        try:
            chars = json.loads((self.folder / "corpus.json").read_text()).get("chars")
        except (OSError, ValueError, AttributeError):
            return None
        return chars if isinstance(chars, int) and not isinstance(chars, bool) else None

    def _rebase_best(self) -> None:
        """Resumed on other text: the best score so far was measured on another validation
        split, so no new score could be compared with it (a better model would never be
        saved). The saved best model is scored on the new split instead: that is the mark a
        new best must beat, and early stopping counts afresh. (The data position still
        applies: the sampler replays its epoch over the new training split.)"""
        old = self.best_val
        path = self.folder / store.WEIGHTS
        if not path.exists():
            self.best_val, self.bad_evals = None, 0
            return
        try:
            best, _, _ = store.read_weights(path)
        except store.StoreError as e:
            raise TrainingError(str(e)) from None
        best.to(self.dev.device)
        self.best_val = self._evaluate(best)
        self.bad_evals = 0
        # The listing's score is this one from now on (the weights have not changed).
        store.write_meta(self.folder, best_val_loss=self.best_val,
                         corpus=self.corpus.summary.describe(),
                         corpus_kind=self.corpus.summary.kind)
        was = f" (val {old:.4f} on its old text)" if old is not None else ""
        self.notes.append(
            f"the corpus is not the one {self.name} last trained on: its best model{was} "
            f"scores {self.best_val:.4f} on this text's validation split; a new best must "
            f"beat that")

    def _apply_gradients(self, params: list[torch.Tensor]) -> torch.Tensor:
        """Unscale (fp16 runs), clip to grad_clip, step every optimizer; returns the global
        gradient norm before clipping.

        With fp16's loss scaling, an overflow anywhere must skip the whole step. The scaler
        skips only the optimizer whose gradients overflowed; clipping by the infinite global
        norm would meanwhile zero every other gradient, and AdamW would still step on those
        zeros (momentum and weight decay moving the weights). So a non-finite norm skips every
        optimizer, and the scaler still lowers its scale.
        """
        c = self.config
        scaled = self.scaler.is_enabled()
        if scaled:
            for opt in self.optimizers:
                self.scaler.unscale_(opt)
        grad_norm = torch.nn.utils.clip_grad_norm_(params, c.grad_clip)
        if not scaled or bool(torch.isfinite(grad_norm)):
            for opt in self.optimizers:
                self.scaler.step(opt)  # (a plain opt.step() when the scaler is disabled)
        self.scaler.update()
        return grad_norm

    def _zero_grad(self) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)

    def _elapsed(self) -> float:
        return self.elapsed_before + (time.perf_counter() - self._t0)

    def _save_best(self, val: float) -> None:
        store.save_model(
            self.folder, self.model, self.corpus.tokenizer,
            {"step": self.step, "val_loss": val, "corpus_kind": self.corpus.summary.kind},
        )
        now = time.time()
        meta = store.read_meta(self.folder)
        store.write_meta(
            self.folder,
            name=self.name,
            params=self.model.num_params(),
            best_val_loss=val,
            best_step=self.step,
            corpus=self.corpus.summary.describe(),
            corpus_kind=self.corpus.summary.kind,
            created=meta.get("created", now),
            updated=now,
            device=self.dev.label,
        )

    def _sample_text(self) -> str:
        tok = self.corpus.tokenizer
        if self.corpus.summary.kind == "prose":
            prompt = [int(i) for i in self.val_ids[:16]]
        else:
            prompt = [tok.user_id]
        idx = torch.tensor([prompt], dtype=torch.long, device=self.dev.device)
        gen = torch.Generator(device=self.dev.device)
        gen.manual_seed(self.step)
        out = self.model.generate(idx, 160, temperature=0.8, top_p=0.95, generator=gen)
        self.model.train()
        ids = out[0].tolist()
        # Dialogue samples show the turn markers (they are the structure being learned);
        # prose has none to show, even if an untrained model emits them.
        return tok.decode(ids) if self.corpus.summary.kind != "prose" else tok.decode_text(ids)

    # -----------------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        self._metrics = None
        existed = self.folder.exists()
        try:
            lock = locking.acquire(self.folder)
        except locking.FolderBusy as e:
            raise TrainingError(locking.busy_message(self.name, e.pid)) from None
        # A new run's folder (or one a resume created) is removed again if it saves no model.
        # Decided under the lock: another run may have made the folder and removed it since.
        fresh = not existed or (not self.resume and not (self.folder / store.WEIGHTS).exists())
        try:
            return self._run()
        except (torch.OutOfMemoryError, MemoryError):
            raise TrainingError(OUT_OF_MEMORY) from None
        except RuntimeError as e:
            # The CPU allocator reports a failed allocation as a plain RuntimeError.
            if "can't allocate memory" in str(e) or "not enough memory" in str(e):
                raise TrainingError(OUT_OF_MEMORY) from None
            raise
        finally:
            try:
                if self._metrics is not None:
                    self._metrics.close()
                    self._metrics = None
                if fresh:
                    self._discard_if_no_model(lock)
            finally:
                lock.release()

    def _discard_if_no_model(self, lock: locking.FolderLock) -> None:
        """A new run that ends (or fails) before saving a model leaves no folder behind: a
        folder without weights is not a model to list, chat with or resume, yet its name
        would be taken."""
        if (self.folder / store.WEIGHTS).exists():
            return
        for f in ("config.json", "tokenizer.json", "train_args.json", "corpus.json",
                  "metrics.jsonl", store.STATE):
            (self.folder / f).unlink(missing_ok=True)
        # The lock file goes too: on POSIX while this run still holds it (see
        # charchat.locking); Windows cannot delete a file that is open, so it lets go first.
        if os.name == "nt":
            lock.release()
        try:
            (self.folder / locking.LOCK_FILE).unlink(missing_ok=True)
            self.folder.rmdir()  # only if nothing else is in it
        except OSError:
            pass

    def _run(self) -> TrainResult:
        self._setup()
        c = self.config
        # A resumed run continues the log; a new one starts it afresh.
        mode = "a" if self.resume else "w"
        self._metrics = open(self.folder / "metrics.jsonl", mode, encoding="utf-8")
        self._t0 = time.perf_counter()
        params = self.model.num_params()
        tokens_per_step = c.batch_size * c.block_size * c.grad_accum
        self._emit(TrainEvent(
            "start", step=self.step, max_steps=c.max_steps,
            message=f"{params / 1e6:.2f}M parameters on {self.dev.label}",
            details={"config": c.to_dict(), "params": params, "device": self.dev.label,
                     "notes": self.notes, "corpus": self.corpus.summary.describe(),
                     "folder": str(self.folder), "resumed": self.resume},
        ))
        self.model.train()
        params_list = [p for p in self.model.parameters() if p.requires_grad]
        loss_sum = torch.zeros((), device=self.dev.device)
        loss_n = 0
        last_log_t = time.perf_counter()
        train_time = 0.0  # time in optimiser steps since the last log, for tokens/s
        steps_since_log = 0
        last_eval_step = self.step if self.resume else -1
        eval_cost = 0.0
        stop = ""
        grad_norm = 0.0
        # Without a set eval interval, evaluate about every eval_period seconds: the interval in
        # steps is fixed once the first steps have been timed. Eight evaluations in a time
        # budget (at most 30 s apart): each costs about as much as four training steps of a
        # small CPU model, and twelve took ~4% of a two-minute run.
        auto_eval = c.eval_interval is None
        if auto_eval:
            c.eval_interval = 1 << 40
            eval_period = min(c.minutes * 60.0 / 8.0, 30.0) if c.minutes else 30.0
            if c.max_steps and not self.user_config.minutes:
                c.eval_interval, auto_eval = max(1, min(1000, c.max_steps // 12)), False
        probe_from = (self.step + 2, None)
        self._zero_grad()
        while True:
            elapsed = self._elapsed()
            if self.cancel.is_set():
                stop = "cancelled"
                break
            if c.max_steps and self.step >= c.max_steps:
                stop = "max_steps" if self.user_config.max_steps or self.config.minutes else "step_cap"
                break
            if c.minutes and elapsed + eval_cost >= c.minutes * 60.0:
                stop = "time_budget"
                break
            progress = self._progress(self.step, elapsed)
            lr = self._lr_at(self.step, progress)
            for opt in self.optimizers:
                for g in opt.param_groups:
                    g["lr"] = lr * g.get("lr_scale", 1.0)
            t_step = time.perf_counter()
            for _ in range(c.grad_accum):
                x, y = self._batch()
                with self._amp():
                    _, loss = self.train_model(x, y)
                loss_sum += loss.detach()
                self.scaler.scale(loss / c.grad_accum).backward()
            grad_norm = self._apply_gradients(params_list)
            self._zero_grad()
            self.step += 1
            if self.step == c.warmup_steps:
                self._warmup_elapsed = self._elapsed()
            loss_n += c.grad_accum
            steps_since_log += 1
            train_time += time.perf_counter() - t_step
            if auto_eval:
                if self.step == probe_from[0]:
                    probe_from = (self.step, time.perf_counter())
                elif probe_from[1] is not None and self.step == probe_from[0] + 8:
                    per_step = (time.perf_counter() - probe_from[1]) / 8
                    c.eval_interval = max(10, min(2000, round(eval_period / max(per_step, 1e-6))))
                    c.eval_interval = max(1, c.eval_interval // 10 * 10)
                    auto_eval = False

            eval_due = self.step % c.eval_interval == 0
            if self.step % c.log_interval == 0 or eval_due:
                train_loss = float(loss_sum) / loss_n
                loss_sum.zero_()
                loss_n = 0
                if not math.isfinite(train_loss):
                    stop = "non_finite"
                    break
                now = time.perf_counter()
                tps = tokens_per_step * steps_since_log / max(train_time, 1e-9)
                elapsed = self._elapsed()
                self._emit(TrainEvent(
                    "step", step=self.step, max_steps=c.max_steps, train_loss=train_loss,
                    best_val_loss=self.best_val, ppl=math.exp(min(train_loss, 50.0)), lr=lr,
                    grad_norm=float(grad_norm), tokens_per_s=tps, elapsed=elapsed,
                    eta=self._eta(elapsed, now - last_log_t, steps_since_log, eval_cost),
                    progress=self._done(elapsed),
                ))
                last_log_t = now
                train_time = 0.0
                steps_since_log = 0
            if eval_due:
                t_eval = time.perf_counter()
                outcome = self._eval_and_save(lr)
                last_eval_step = self.step
                eval_cost = time.perf_counter() - t_eval
                if outcome:
                    stop = outcome
                    break

        # A last evaluation, unless the latest step was just evaluated, the run diverged, or
        # the user stopped it and a best model already exists (stopping must be prompt).
        if (
            stop != "non_finite"
            and last_eval_step != self.step
            and self.step > 0
            and not (stop == "cancelled" and self.best_val is not None)
        ):
            if not self._eval_and_save(self._lr_at(self.step, 1.0), final=True) == "non_finite":
                last_eval_step = self.step
            else:
                stop = "non_finite"
        if stop != "non_finite":
            self._save_state()
        msg = STOP_MESSAGES[stop]
        if stop == "non_finite":
            kept = (f"the best model (val {self.best_val:.4f} at step {self.best_step}) is kept"
                    if self.best_val is not None else "no model was saved")
            msg = (f"training diverged at step {self.step} (loss is not a finite number); "
                   f"{kept}; try a lower --lr")
        elif self.best_val is not None:
            msg += f"; best val loss {self.best_val:.4f} at step {self.best_step}, saved in {self.folder}"
        else:
            msg += "; no model was saved (stopped before the first step)"
        result = TrainResult(
            self.name, self.folder, stop, msg, self.step, self.best_val, self.best_step,
            self._elapsed(), c,
        )
        self._emit(TrainEvent(
            "end", step=self.step, max_steps=c.max_steps, best_val_loss=self.best_val,
            elapsed=result.elapsed, stop_reason=stop, message=msg, progress=1.0,
            details={"folder": str(self.folder), "best_step": self.best_step},
        ))
        return result

    def _eta(self, elapsed: float, interval: float, steps: int, eval_cost: float) -> float | None:
        c = self.config
        if c.minutes:
            return max(0.0, c.minutes * 60.0 - elapsed)
        if c.max_steps and steps:
            per_step = interval / steps
            left = c.max_steps - self.step
            evals_left = left // c.eval_interval + 1
            return max(0.0, left * per_step + evals_left * eval_cost)
        return None

    def _eval_and_save(self, lr: float, final: bool = False) -> str:
        """Evaluate, save if best, update early stopping; returns a stop reason or ''."""
        val = self._evaluate()
        self.evals += 1
        if not math.isfinite(val):
            return "non_finite"
        improved = self.best_val is None or val < self.best_val
        if improved:
            if self.best_val is None or self.best_val - val > self.config.min_delta:
                self.bad_evals = 0
            else:
                self.bad_evals += 1
            self.best_val, self.best_step = val, self.step
            self._save_best(val)
        else:
            self.bad_evals += 1
        elapsed = self._elapsed()
        self._emit(TrainEvent(
            "eval", step=self.step, max_steps=self.config.max_steps, val_loss=val,
            best_val_loss=self.best_val, ppl=math.exp(min(val, 50.0)), lr=lr, elapsed=elapsed,
            improved=improved, progress=self._done(elapsed),
            details={"final": final, "bad_evals": self.bad_evals},
        ))
        if not final:
            self._save_state()
        if self.config.sample_every and self.evals % self.config.sample_every == 0:
            self._emit(TrainEvent("sample", step=self.step, sample=self._sample_text(),
                                  elapsed=self._elapsed()), log=False)
        if not final and self.bad_evals >= self.config.patience:
            return "early_stopping"
        return ""


def train(
    corpus,
    name: str | None = None,
    on_event: Callable[[TrainEvent], None] | None = None,
    cancel: threading.Event | None = None,
    out_dir: str | Path | None = None,
    **overrides,
) -> TrainResult:
    """Train a model on a Corpus or on paths of text files, in one call (for notebooks).

    overrides are TrainConfig fields, e.g. minutes=2, n_layer=4.
    """
    from .corpus import load_corpus

    paths = None
    if not isinstance(corpus, Corpus):
        paths = [str(p) for p in ([corpus] if isinstance(corpus, (str, Path)) else corpus)]
        corpus = load_corpus(paths)
    config = TrainConfig(**overrides)
    if name is None and out_dir is None:
        name = unique_name(Path(corpus.summary.files[0]).stem or "model")
    return Trainer(corpus, config, name=name, out_dir=out_dir, on_event=on_event,
                   cancel=cancel, corpus_paths=paths).run()


__all__ = ["TrainConfig", "TrainEvent", "TrainResult", "Trainer", "TrainingError", "train",
           "CorpusError"]
