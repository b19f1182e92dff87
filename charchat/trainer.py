"""The training loop: Muon and AdamW (or AdamW alone), warmup then cosine, clipping,
evaluation, early stopping, resume.

Progress goes out through a plain callback that receives TrainEvent objects, and the same
figures go to metrics.jsonl next to the model; nothing here knows about any user interface.
A threading.Event set from another thread stops the loop within one optimiser step.

Across processes (torchrun), the same loop runs on every rank: charchat.distributed says who
does what (rank 0 alone writes the folder; every decision to stop is taken together).

The best model on disk always equals the lowest validation loss logged: it is written, atomically,
at every evaluation that improves on the best so far, and at no other time. Early stopping counts
only improvements larger than min_delta, but any improvement is saved.

What the run writes lives in charchat.rundir, its resumable state in charchat.checkpoint, and
the schedule's arithmetic in charchat.schedule.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import checkpoint, distributed, schedule, store
from .allocator import keep_freed_memory
from .batches import WindowSampler
from .config import (OUT_OF_MEMORY, RunStart, TrainConfig, TrainEvent, TrainingError,
                     TrainResult, stop_message)
from .corpus import Corpus
from .device import DeviceInfo, compiled_or_eager, pick_device
from .evaluate import window_starts, windows_loss
from .idcache import IdReader
from .model import GPT
from .optimizers import make_optimizers
from .recipe import resolve_config
from .rundir import RunFolder

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
        init_from: Path | None = None,
        dist: distributed.Dist | None = None,
    ) -> None:
        self.corpus = corpus
        self.dist = dist or distributed.Dist()
        self.init_from = init_from  # a new run that starts from these weights (fine-tuning)
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
        self.run_dir = RunFolder(self.folder, self.name)

    # -----------------------------------------------------------------------------------------
    def _emit(self, event: TrainEvent, log: bool = True) -> None:
        if not self.dist.main:
            return  # rank 0 reports for the run
        if log:
            self.run_dir.log(event)
        if self.on_event is not None:
            self.on_event(event)

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        # Every rank draws the global batch and trains on its own slice of it.
        b, d = self.config.batch_size, self.dist
        ix = self.sampler.next(b * d.world)[d.rank * b:(d.rank + 1) * b]
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
        """Validation loss of the model in training (or of `model`, the saved best). Across
        processes each rank scores every world-th window and the sums are added: the loss of
        one process scoring them all."""
        model = self.model if model is None else model
        if not self.dist.on:
            return windows_loss(model, self.val_ids, self.eval_starts, self.dev.device,
                                self.dev.amp_dtype)[0]
        starts = self.eval_starts[self.dist.rank::self.dist.world]
        loss, count = (windows_loss(model, self.val_ids, starts, self.dev.device,
                                    self.dev.amp_dtype) if len(starts) else (0.0, 0))
        total, count = self.dist.sum([loss * count, float(count)])
        return total / count if count else float("nan")

    def _elapsed(self) -> float:
        return self.n.elapsed + (time.perf_counter() - self._t0)

    def _done(self, elapsed: float) -> float:
        return schedule.done_fraction(self.n.step, elapsed, self.config.max_steps,
                                      self.config.minutes)

    # -----------------------------------------------------------------------------------------
    def _setup(self) -> None:
        keep_freed_memory()
        try:
            self.dev: DeviceInfo = self.dist.device or pick_device(self.user_config.device)
        except ValueError as e:
            raise TrainingError(str(e)) from None
        self.config, self.notes = resolve_config(
            self.user_config, n_tokens=len(self.corpus.ids), device=self.dev.device.type,
            kind=self.corpus.summary.kind)
        c = self.config
        self.corpus.check_window(c.block_size)
        self.train_ids, self.val_ids = self.corpus.train_ids, self.corpus.val_ids
        if IdReader.usable(self.corpus.ids):  # the id cache: windows read, not mapped
            split = self.corpus.split
            self.train_ids = IdReader(self.corpus.ids, 0, split)
            self.val_ids = IdReader(self.corpus.ids, split)
        self._offsets = np.arange(c.block_size + 1, dtype=np.int64)
        self.eval_starts = window_starts(len(self.val_ids), c.block_size,
                                         max(1, c.eval_tokens // c.block_size))
        torch.manual_seed(c.seed)
        self.sampler = WindowSampler(len(self.train_ids), c.block_size, c.seed)
        self.model = GPT(c.model_config(self.corpus.tokenizer.padded_vocab_size)).to(
            self.dev.device)
        if self.init_from is not None and not self.resume:
            self._load_start_weights()
        self.optimizers = make_optimizers(self.model, c, self.dev.device.type)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dev.needs_scaler)
        self.n = checkpoint.Counters()
        self._t0 = time.perf_counter()
        self._corpus_id = checkpoint.fingerprint(len(self.corpus.ids), self.val_ids)
        self._to_score = None  # the saved best to score once every rank is set up
        if self.resume and self.run_dir.has_model() and not self.run_dir.state.exists():
            # Killed between its first best model and its first state (the model is written
            # first): nothing to go on from, yet the name is taken. The run starts again from
            # step 0 (the same seed, the same steps), with the saved model's score as the mark.
            self._to_score = "saved"
            self.notes.append(f"{self.name} stopped before its training state was saved: "
                              f"training starts again from step 0")
        elif self.resume:
            self.n, saved_id = checkpoint.restore(
                self.run_dir.state, self.name, c, self.model, self.optimizers, self.scaler,
                self.sampler)
            if saved_id is not None:
                other_text = saved_id != self._corpus_id
            else:  # a state saved before the fingerprint: the length the folder recorded
                other_text = self.run_dir.recorded_length() not in (None, len(self.corpus.ids))
            if other_text:
                self._to_score = "rescore"
            if n_was := self.n.world if self.n.world != self.dist.world else 0:
                b = c.batch_size
                self.notes.append(
                    f"{self.name} last trained on {n_was} process(es), now on "
                    f"{self.dist.world}: the data order goes on from where it stopped, "
                    f"{b * self.dist.world} windows a step ({b} a process) instead of "
                    f"{b * n_was}")
        elif self.run_dir.has_model():
            raise TrainingError(f"a model named {self.name!r} already exists at {self.folder}; "
                                "resume it or choose another name")
        self.n.world = self.dist.world
        self.train_model = self.model
        if c.compile:  # probed on fixed windows: the run's data order must not move
            starts = np.linspace(0, len(self.train_ids) - c.block_size - 1,
                                 c.batch_size).astype(np.int64)
            t = torch.from_numpy(self.train_ids[starts[:, None] + self._offsets].astype(np.int64))
            t = t.to(self.dev.device)
            self.train_model, note = compiled_or_eager(self.model, t[:, :-1], t[:, 1:], self.dev)
            self.notes += [note] if note else []

    def _setup_together(self) -> None:
        """What setup does with the other ranks, once every rank has set up on its own: rank
        0 writes the run's records (no rank reads the folder any more), the saved best model
        is scored (as rank 0 decided), and the model is wrapped for DistributedDataParallel."""
        with self.dist.together():
            if self.dist.main:
                self.run_dir.write_setup(self.model.config.to_dict(), self.corpus.tokenizer,
                                         self.config.to_dict(), self.corpus_paths,
                                         self._where(), self.notes, self.corpus.summary)
        if self.dist.on:  # rank 0's reading of the folder decides for every rank
            codes = {None: 0.0, "saved": 1.0, "rescore": 2.0}
            mine = codes[self._to_score] if self.dist.main else 0.0
            code = self.dist.sum([mine])[0]
            self._to_score = {v: k for k, v in codes.items()}[code]
        if self._to_score == "saved":
            self._score_saved_best()
        elif self._to_score == "rescore":
            self._rescore_best()
        if self.dist.on:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.dev.device.index] if self.dev.device.type == "cuda" else None
            try:
                self.train_model = DDP(self.train_model, device_ids=ids,
                                       gradient_as_bucket_view=True)
            except RuntimeError as e:
                if _is_comm_error(e):
                    raise self.dist.lost(e) from None
                raise

    def _load_start_weights(self) -> None:
        """Fine-tuning: the weights of the model it starts from, its position table cut to this
        run's context. The shapes were matched when the run was planned (charchat.runs)."""
        try:
            src, tok, _ = store.read_weights(self.init_from)
        except store.StoreError as e:
            raise TrainingError(str(e)) from None
        if tok != self.corpus.tokenizer:
            raise TrainingError(f"{self.init_from}: its vocabulary is not the corpus's")
        sd = src.state_dict()
        sd["transformer.wpe.weight"] = sd["transformer.wpe.weight"][: self.config.block_size]
        try:
            self.model.load_state_dict(sd)
        except RuntimeError as e:
            raise TrainingError(f"{self.init_from}: does not fit this run "
                                f"({str(e).splitlines()[0][:160]})") from None
        self.notes.append(f"starting from the weights of {self.init_from.parent.name}")

    def _rescore_best(self) -> None:
        """Resumed on other text: the best score so far was measured on another validation
        split, so no new score could be compared with it (a better model would never be
        saved). The saved best model is scored on the new split instead: that is the mark a
        new best must beat, and early stopping counts afresh. (The data position still
        applies: the sampler replays its epoch over the new training split.)"""
        old = self.n.best_val
        self.n.bad_evals = 0
        if not self.run_dir.has_model():
            self.n.best_val = None
            return
        self._score_saved_best()
        # The listing's score is this one from now on (the weights have not changed).
        with self.dist.together():
            if self.dist.main:
                self.run_dir.describe(best_val_loss=self.n.best_val,
                                      best_bpc=self._bits(self.n.best_val),
                                      corpus=self.corpus.summary)
        was = f" (val {old:.4f} on its old text)" if old is not None else ""
        self.notes.append(
            f"the corpus is not the one {self.name} last trained on: its best model{was} "
            f"scores {self.n.best_val:.4f} on this text's validation split; a new best must "
            f"beat that")

    def _score_saved_best(self) -> None:
        """Make the saved best model's loss on this corpus's validation split the mark."""
        with self.dist.together():
            try:
                best, _, _ = store.read_weights(self.run_dir.weights)
            except store.StoreError as e:
                raise TrainingError(str(e)) from None
        self.n.best_val = self._evaluate(best.to(self.dev.device))

    def _apply_gradients(self, params: list[torch.Tensor]) -> torch.Tensor:
        """Unscale (fp16 runs), clip to grad_clip, step every optimizer; returns the global
        gradient norm before clipping.

        With fp16's loss scaling, an overflow anywhere must skip the whole step. The scaler
        skips only the optimizer whose gradients overflowed; clipping by the infinite global
        norm would meanwhile zero every other gradient, and AdamW would still step on those
        zeros (momentum and weight decay moving the weights). So a non-finite norm skips every
        optimizer, and the scaler still lowers its scale.
        """
        scaled = self.scaler.is_enabled()
        if scaled:
            for opt in self.optimizers:
                self.scaler.unscale_(opt)
        grad_norm = torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        if not scaled or bool(torch.isfinite(grad_norm)):
            for opt in self.optimizers:
                self.scaler.step(opt)  # (a plain opt.step() when the scaler is disabled)
        self.scaler.update()
        return grad_norm

    def _zero_grad(self) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)

    def _save_state(self) -> None:
        self.n.elapsed, self._t0 = self._elapsed(), time.perf_counter()
        checkpoint.save(self.run_dir.state, self.model, self.optimizers, self.scaler, self.n,
                        self.sampler, self._corpus_id, self.config)

    def _bits(self, loss: float, per: str = "char") -> float:
        """Loss per token in bits per character (or per UTF-8 byte) of the validation text:
        the one scale on which character and BPE models compare."""
        ratio = self.corpus.chars_per_token if per == "char" else self.corpus.bytes_per_token
        return loss / math.log(2) / ratio

    def _sample_text(self) -> str:
        tok, prose = self.corpus.tokenizer, self.corpus.summary.kind == "prose"
        prompt = [int(i) for i in self.val_ids[:16]] if prose else [tok.user_id]
        gen = torch.Generator(device=self.dev.device)
        gen.manual_seed(self.n.step)
        idx = torch.tensor([prompt], dtype=torch.long, device=self.dev.device)
        ids = self.model.generate(idx, 160, temperature=0.8, top_p=0.95, generator=gen,
                                  vocab_limit=tok.vocab_size)[0].tolist()
        self.model.train()
        # Dialogue samples show the turn markers (they are the structure being learned);
        # prose has none to show, even if an untrained model emits them.
        return tok.decode_text(ids) if prose else tok.decode(ids)

    # -----------------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        with self.dist.together():
            if self.dist.main:
                self.run_dir.acquire(self.resume)
        try:
            return self._run()
        except (torch.OutOfMemoryError, MemoryError):
            raise TrainingError(OUT_OF_MEMORY) from None
        except distributed.PeerLost as e:
            raise self._lost_error(str(e)) from None
        except RuntimeError as e:
            # The CPU allocator reports a failed allocation as a plain RuntimeError.
            if "can't allocate memory" in str(e) or "not enough memory" in str(e):
                raise TrainingError(OUT_OF_MEMORY) from None
            if self.dist.on and _is_comm_error(e):  # DDP's all-reduce inside backward()
                raise self._lost_error(str(self.dist.lost(e))) from None
            raise
        finally:
            if self.dist.main:
                self.run_dir.release()
            # The DDP wrapper holds the process group: let it go now, so that leaving the group
            # frees it (left for the end of the interpreter, gloo's threads abort the exit).
            self.train_model = getattr(self, "model", None)
            for ids in (getattr(self, "train_ids", None), getattr(self, "val_ids", None)):
                if isinstance(ids, IdReader):
                    ids.close()

    def _lost_error(self, why: str) -> Exception:
        if not self.dist.says_lost():
            return distributed.QuietExit(1)  # rank 0 names the rank gone
        return TrainingError(self._lost_message(why))

    def _lost_message(self, why: str) -> str:
        n = getattr(self, "n", None)
        at = f" at step {n.step}" if n is not None else ""
        kept = ""
        if self.dist.main and self.run_dir.has_model():
            kept = (f"; the best model so far is in {self.folder} (go on: charchat train "
                    f"--resume {self.name})")
        return f"training stopped{at}: {why}{kept}"

    def _run(self) -> TrainResult:
        with self.dist.together():
            self._setup()
        self._setup_together()
        c, n = self.config, self.n
        if self.dist.main:
            self.run_dir.open_metrics(append=self.resume, through_step=n.step)
        self._t0 = time.perf_counter()
        params = self.model.num_params()
        self._emit(TrainEvent("start", step=n.step, max_steps=c.max_steps,
                              message=f"{params / 1e6:.2f}M parameters on {self._where()}",
                              start=RunStart(c.to_dict(), params, self._where(), self.notes,
                                             self.corpus.summary.to_dict(), str(self.folder),
                                             self.resume, self.dist.world)))
        stop = self._loop()
        # A last evaluation, unless the latest step was just evaluated, the run diverged, or
        # the user stopped it and a best model already exists (stopping must be prompt).
        if (stop != "non_finite" and self._last_eval != n.step and n.step > 0
                and not (stop == "cancelled" and n.best_val is not None)):
            lr = schedule.lr_at(n.step, 1.0, c.warmup_steps, c.lr, c.min_lr)
            if self._eval_and_save(lr, final=True) == "non_finite":
                stop = "non_finite"
        if stop != "non_finite":
            with self.dist.together():
                if self.dist.main:
                    self._save_state()
        msg = stop_message(stop, n.step, n.best_val, n.best_step, self.folder)
        result = TrainResult(self.name, self.folder, stop, msg, n.step, n.best_val,
                             n.best_step, self._elapsed(), c)
        self._emit(TrainEvent("end", step=n.step, max_steps=c.max_steps,
                              best_val_loss=n.best_val, elapsed=result.elapsed, stop_reason=stop,
                              message=msg, progress=1.0, best_step=n.best_step))
        return result

    def _loop(self) -> str:
        """Train until a stop rule fires; returns its reason (a key of STOP_MESSAGES)."""
        c, n = self.config, self.n
        self.model.train()
        params = [p for p in self.model.parameters() if p.requires_grad]
        loss_sum = torch.zeros((), device=self.dev.device)
        loss_n = steps_since_log = 0
        train_time = 0.0  # time in optimiser steps since the last log, for tokens/s
        last_log_t = time.perf_counter()
        tokens_per_step = c.batch_size * c.block_size * c.grad_accum * self.dist.world
        self._last_eval = n.step if self.resume else -1
        eval_cost = 0.0
        # Without a set eval interval, evaluate about every eval_period seconds: the interval in
        # steps is fixed once eight steps (after two of warm-up) have been timed.
        timing = c.eval_interval is None
        if timing:
            c.eval_interval = 1 << 40
            if c.max_steps and not self.user_config.minutes:
                c.eval_interval, timing = schedule.step_eval_interval(c.max_steps), False
        probe = (n.step + 2, None)  # (step, clock then)
        mark_warmup = False
        self._zero_grad()
        while True:
            # One clock and one stop for every rank: the slowest rank's (one process: its own).
            stop, (elapsed, eval_cost) = self.dist.agree(self.cancel.is_set(), self._elapsed(),
                                                         eval_cost)
            if mark_warmup:
                n.warmup_elapsed, mark_warmup = elapsed, False
            if timing:
                if n.step == probe[0]:
                    probe = (n.step, elapsed)
                elif probe[1] is not None and n.step == probe[0] + 8:
                    c.eval_interval = schedule.timed_eval_interval(
                        (elapsed - probe[1]) / 8, schedule.eval_period(c.minutes))
                    timing = False
            if stop:
                return "cancelled"
            if c.max_steps and n.step >= c.max_steps:
                return "max_steps" if self.user_config.max_steps or c.minutes else "step_cap"
            if c.minutes and elapsed + eval_cost >= c.minutes * 60.0:
                return "time_budget"
            progress = schedule.cosine_progress(n.step, elapsed, c.warmup_steps, c.max_steps,
                                                c.minutes, n.warmup_elapsed)
            lr = schedule.lr_at(n.step, progress, c.warmup_steps, c.lr, c.min_lr)
            for opt in self.optimizers:
                for g in opt.param_groups:
                    g["lr"] = lr * g.get("lr_scale", 1.0)
            t_step = time.perf_counter()
            if self.dist.rank > 0 and c.dropout:
                # A rank's own dropout stream, from (seed, rank, step): the same on a resume
                # (rank 0's is the run's, saved with its state).
                torch.manual_seed(distributed.rank_seed(c.seed, self.dist.rank, n.step))
            for i in range(c.grad_accum):
                # Across processes, gradients are averaged once a step: at the last micro-step.
                last = i == c.grad_accum - 1
                with (self.train_model.no_sync() if self.dist.on and not last
                      else contextlib.nullcontext()):
                    x, y = self._batch()
                    with self._amp():
                        _, loss = self.train_model(x, y)
                    loss_sum += loss.detach()
                    self.scaler.scale(loss / c.grad_accum).backward()
            grad_norm = self._apply_gradients(params)
            self._zero_grad()
            n.step += 1
            mark_warmup = n.step == c.warmup_steps
            loss_n += c.grad_accum
            steps_since_log += 1
            train_time += time.perf_counter() - t_step

            eval_due = n.step % c.eval_interval == 0
            if n.step % c.log_interval == 0 or eval_due:
                train_loss = float(self.dist.mean_(loss_sum)) / loss_n
                loss_sum.zero_()
                loss_n = 0
                if not math.isfinite(train_loss):
                    return "non_finite"
                now = time.perf_counter()
                elapsed = self._elapsed()
                self._emit(TrainEvent(
                    "step", step=n.step, max_steps=c.max_steps, train_loss=train_loss,
                    best_val_loss=n.best_val, ppl=math.exp(min(train_loss, 50.0)), lr=lr,
                    grad_norm=float(grad_norm), elapsed=elapsed, progress=self._done(elapsed),
                    tokens_per_s=tokens_per_step * steps_since_log / max(train_time, 1e-9),
                    eta=schedule.eta(n.step, elapsed, c.max_steps, c.minutes,
                                     (now - last_log_t) / steps_since_log, c.eval_interval,
                                     eval_cost)))
                last_log_t, train_time, steps_since_log = now, 0.0, 0
            if eval_due:
                t_eval = time.perf_counter()
                outcome = self._eval_and_save(lr)
                eval_cost = time.perf_counter() - t_eval
                if outcome:
                    return outcome

    def _eval_and_save(self, lr: float, final: bool = False) -> str:
        """Evaluate, save if best, update early stopping; returns a stop reason or ''."""
        n = self.n
        val = self._evaluate()  # the same figure on every rank
        n.evals += 1
        if not math.isfinite(val):
            return "non_finite"
        self._last_eval = n.step
        improved = n.best_val is None or val < n.best_val
        if improved:
            big = n.best_val is None or n.best_val - val > self.config.min_delta
            n.bad_evals = 0 if big else n.bad_evals + 1
            n.best_val, n.best_step = val, n.step
        else:
            n.bad_evals += 1
        with self.dist.together():  # a failed save ends every rank here
            if self.dist.main:
                self._record_eval(val, improved, lr, final)
        if self.config.sample_every and n.evals % self.config.sample_every == 0:
            if self.dist.main:
                self._emit(TrainEvent("sample", step=n.step, sample=self._sample_text(),
                                      elapsed=self._elapsed()), log=False)
        if not final and n.bad_evals >= self.config.patience:
            return "early_stopping"
        return ""

    def _record_eval(self, val: float, improved: bool, lr: float, final: bool) -> None:
        """Rank 0's part of an evaluation: save the best model, log, save the state."""
        n = self.n
        if improved:
            self.run_dir.save_best(self.model, self.corpus.tokenizer, step=n.step, val=val,
                                   corpus=self.corpus.summary, device=self._where(),
                                   bpc=self._bits(val))
        elapsed = self._elapsed()
        self._emit(TrainEvent(
            "eval", step=n.step, max_steps=self.config.max_steps, val_loss=val,
            best_val_loss=n.best_val, ppl=math.exp(min(val, 50.0)), lr=lr, elapsed=elapsed,
            bpc=self._bits(val), bpb=self._bits(val, per="byte"),
            improved=improved, progress=self._done(elapsed),
            details={"final": final, "bad_evals": n.bad_evals}))
        if not final:
            self._save_state()

    def _where(self) -> str:
        """The device, as listings show it: "cuda (autocast bf16) x 8" across processes."""
        return self.dev.label + (f" x {self.dist.world}" if self.dist.on else "")


def _is_comm_error(e: BaseException) -> bool:
    """Whether an error came from the process group (a rank gone) rather than the model."""
    dist_error = getattr(torch.distributed, "DistError", ())
    text = str(e).lower()
    return isinstance(e, dist_error) or any(
        w in text for w in ("gloo", "nccl", "connection closed", "connection reset",
                            "broken pipe", "timed out"))
