import collections
import json
import math
import os
import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from charchat import store
from charchat.adamw import AdamW
from charchat.corpus import corpus_from_text, load_corpus
from charchat.evaluate import windows_loss
from charchat.model import GPT
from charchat.config import TrainConfig, TrainEvent, TrainingError
from charchat.runs import train_files as train
from charchat.trainer import Trainer

from conftest import pattern_text, random_text, tiny_train_config

PATTERN = pattern_text(30000)


def run(corpus, folder, cancel_at=None, resume=False, **config):
    """Train on corpus into folder; returns (result, trainer, events). cancel_at=N stops the
    run from the event callback once step N is reported."""
    events = []
    cancel = threading.Event()

    def on_event(ev):
        events.append(ev)
        if cancel_at is not None and ev.kind == "step" and ev.step >= cancel_at:
            cancel.set()

    trainer = Trainer(corpus, tiny_train_config(**config), out_dir=folder, on_event=on_event,
                      cancel=cancel, resume=resume)
    return trainer.run(), trainer, events


def of_kind(events, kind):
    return [e for e in events if e.kind == kind]


def weights_equal(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One ordinary run, shared by the tests that only look at what it left behind."""
    torch.set_num_threads(1)
    corpus = corpus_from_text(PATTERN)
    folder = tmp_path_factory.mktemp("run") / "pattern"
    result, trainer, events = run(corpus, folder, max_steps=150, block_size=32, eval_interval=25,
                                  log_interval=1, warmup_steps=10)
    return SimpleNamespace(corpus=corpus, folder=folder, result=result, trainer=trainer,
                           events=events)


# ---------------------------------------------------------------------------------------------
# An ordinary run


def test_learns_well_below_the_unigram_entropy(trained):
    counts = collections.Counter(PATTERN)
    n = len(PATTERN)
    unigram_entropy = -sum(c / n * math.log(c / n) for c in counts.values())
    assert trained.result.stop_reason == "max_steps"
    assert trained.result.steps == 150
    assert trained.result.best_val_loss < 0.6 * unigram_entropy


def test_best_model_on_disk_equals_the_lowest_val_loss(trained):
    evals = of_kind(trained.events, "eval")
    best = min(e.val_loss for e in evals)
    model, tok, info = store.read_weights(trained.folder / store.WEIGHTS)
    loss, _ = windows_loss(model, trained.corpus.val_ids, trained.trainer.eval_starts)
    assert loss == pytest.approx(best, abs=1e-5)
    meta = json.loads((trained.folder / "meta.json").read_text())
    assert meta["best_val_loss"] == best == trained.result.best_val_loss
    best_step = next(e.step for e in evals if e.val_loss == best)
    assert meta["best_step"] == info["step"] == trained.result.best_step == best_step
    assert tok == trained.corpus.tokenizer


def test_files_left_behind(trained):
    names = {p.name for p in trained.folder.iterdir()}
    assert {"model.pt", "state.pt", "config.json", "tokenizer.json", "train_args.json",
            "corpus.json", "meta.json", "metrics.jsonl"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    args = json.loads((trained.folder / "train_args.json").read_text())
    assert args["config"]["n_embd"] == 32 and args["config"]["lr"] == 3e-3


def test_events(trained):
    events, result = trained.events, trained.result
    assert events[0].kind == "start" and events[-1].kind == "end"
    assert {e.kind for e in events} == {"start", "step", "eval", "end"}
    steps = of_kind(events, "step")
    assert [e.step for e in steps] == list(range(1, 151))
    for e in steps:
        assert math.isfinite(e.train_loss) and e.ppl == pytest.approx(math.exp(e.train_loss))
        assert e.lr > 0 and math.isfinite(e.grad_norm) and e.grad_norm > 0
        assert e.tokens_per_s > 0 and e.progress <= 1 and e.max_steps == 150
    evals = of_kind(events, "eval")
    assert [e.step for e in evals] == [25, 50, 75, 100, 125, 150]
    best = math.inf
    for e in evals:
        assert e.ppl == pytest.approx(math.exp(e.val_loss))
        assert e.improved == (e.val_loss < best)
        best = min(best, e.val_loss)
        assert e.best_val_loss == best
    end = events[-1]
    assert end.stop_reason == "max_steps" == result.stop_reason
    assert end.best_val_loss == result.best_val_loss and end.step == 150
    assert "best val loss" in result.message


def test_progress_is_between_0_and_1(trained):
    progress = [e.progress for e in trained.events]
    assert all(0.0 <= p <= 1.0 for p in progress)
    steps = [e.progress for e in of_kind(trained.events, "step")]
    assert all(a <= b for a, b in zip(steps, steps[1:]))
    # With --max-steps it is the share of steps done (warmup included).
    assert [e.progress for e in of_kind(trained.events, "step")][:3] == [1 / 150, 2 / 150, 3 / 150]


def test_metrics_jsonl_matches_the_events(trained):
    lines = (trained.folder / "metrics.jsonl").read_text().splitlines()
    logged = [json.loads(line) for line in lines]
    assert logged == [json.loads(e.to_json()) for e in trained.events]
    assert [d["kind"] for d in logged] == [e.kind for e in trained.events]
    evals = [d for d in logged if d["kind"] == "eval"]
    assert [d["val_loss"] for d in evals] == [e.val_loss for e in of_kind(trained.events, "eval")]


def test_metrics_keep_zero_values():
    d = json.loads(TrainEvent("start", step=0, elapsed=0.0, grad_norm=0.0).to_json())
    assert d["step"] == 0 and d["elapsed"] == 0.0 and d["grad_norm"] == 0.0


def test_learning_rate_schedule_in_step_events(trained):
    c = trained.trainer.config
    lrs = [e.lr for e in of_kind(trained.events, "step")]
    warmup, n = c.warmup_steps, c.max_steps
    for s in range(1, warmup + 1):  # linear warmup
        assert lrs[s - 1] == pytest.approx(c.lr * s / warmup)
    for s in range(warmup + 1, n + 1):  # then cosine from lr down towards min_lr
        p = (s - 1 - warmup) / (n - warmup)
        expected = c.min_lr + 0.5 * (c.lr - c.min_lr) * (1 + math.cos(math.pi * p))
        assert lrs[s - 1] == pytest.approx(expected)
    tail = lrs[warmup:]
    assert all(a >= b for a, b in zip(tail, tail[1:]))
    assert tail[0] == pytest.approx(c.lr) and tail[-1] == pytest.approx(c.min_lr, rel=0.01)


# ---------------------------------------------------------------------------------------------
# Stopping


def test_early_stopping(tmp_path):
    # Random characters: nothing generalises, so the model overfits and val loss rises.
    corpus = corpus_from_text(random_text(3000))
    result, trainer, events = run(corpus, tmp_path / "m", max_steps=3000, n_layer=2, n_embd=64,
                                  lr=1e-2, eval_interval=10, patience=2)
    assert result.stop_reason == "early_stopping"
    assert result.steps < 3000
    evals = of_kind(events, "eval")
    assert [e.improved for e in evals[-2:]] == [False, False]
    best = min(e.val_loss for e in evals)
    assert result.best_val_loss == best
    model, _, _ = store.read_weights(tmp_path / "m" / store.WEIGHTS)
    assert windows_loss(model, corpus.val_ids, trainer.eval_starts)[0] == pytest.approx(best, abs=1e-5)


def test_min_delta_counts_only_large_improvements(tmp_path):
    corpus = corpus_from_text(PATTERN)
    result, _, events = run(corpus, tmp_path / "m", max_steps=200, eval_interval=5, patience=2,
                            min_delta=10.0)
    assert result.stop_reason == "early_stopping"
    evals = of_kind(events, "eval")
    assert len(evals) == 3 and result.steps == 15
    assert result.best_step == [e.step for e in evals if e.improved][-1]


def test_cancel_stops_within_one_step_and_keeps_a_model(tmp_path):
    corpus = corpus_from_text(PATTERN)
    result, _, events = run(corpus, tmp_path / "m", cancel_at=7, max_steps=100, log_interval=1,
                            eval_interval=50)
    assert result.stop_reason == "cancelled" and result.steps == 7
    assert max(e.step for e in of_kind(events, "step")) == 7
    # No evaluation had been made: one is made now, so a model is kept.
    assert of_kind(events, "eval")[-1].step == 7
    assert store.read_weights(tmp_path / "m" / store.WEIGHTS)[2]["step"] == 7
    assert (tmp_path / "m" / store.STATE).exists()


def test_cancel_with_a_best_model_skips_the_last_evaluation(tmp_path):
    corpus = corpus_from_text(PATTERN)
    result, _, events = run(corpus, tmp_path / "m", cancel_at=7, max_steps=100, log_interval=1,
                            eval_interval=5)
    assert result.stop_reason == "cancelled" and result.steps == 7
    assert [e.step for e in of_kind(events, "eval")] == [5]
    assert result.best_step == 5


def test_time_budget(tmp_path):
    corpus = corpus_from_text(PATTERN)
    result, _, events = run(corpus, tmp_path / "m", minutes=0.03, max_steps=None,
                            eval_interval=None)
    assert result.stop_reason == "time_budget"
    assert of_kind(events, "eval") and (tmp_path / "m" / store.WEIGHTS).exists()
    # The progress shown is the share of the time budget used, from the first step on.
    for e in of_kind(events, "step"):
        assert e.progress == pytest.approx(min(1.0, e.elapsed / (0.03 * 60)))


@pytest.mark.parametrize(
    "cancel_at, extra",
    [(20, {}),  # stopped right after an evaluation
     (17, {}),  # between evaluations, with a best model: no last evaluation
     (7, {}),  # before the first evaluation: a last one is made
     (17, dict(grad_accum=2, dropout=0.1)),  # dropout draws from torch's RNG
     (17, dict(optimizer="adamw"))],  # one optimizer instead of two
)
def test_resume_equals_an_uninterrupted_run(tmp_path, cancel_at, extra):
    corpus = corpus_from_text(PATTERN)
    config = {"max_steps": 40, "eval_interval": 10, "log_interval": 1, "dropout": 0.0, **extra}
    full, full_trainer, full_events = run(corpus, tmp_path / "full", **config)

    first, _, _ = run(corpus, tmp_path / "split", cancel_at=cancel_at, **config)
    assert first.stop_reason == "cancelled" and first.steps == cancel_at
    second, split_trainer, split_events = run(corpus, tmp_path / "split", resume=True, **config)
    assert second.stop_reason == "max_steps" and second.steps == 40
    assert split_events[0].start.resumed

    assert weights_equal(split_trainer.model, full_trainer.model)
    assert [(e.step, e.val_loss) for e in of_kind(split_events, "eval")] == \
        [(e.step, e.val_loss) for e in of_kind(full_events, "eval") if e.step > cancel_at]
    assert [e.train_loss for e in of_kind(split_events, "step")] == \
        [e.train_loss for e in of_kind(full_events, "step") if e.step > cancel_at]
    assert (second.best_val_loss, second.best_step) == (full.best_val_loss, full.best_step)
    assert weights_equal(store.read_weights(tmp_path / "split" / store.WEIGHTS)[0],
                         store.read_weights(tmp_path / "full" / store.WEIGHTS)[0])


def test_a_run_resumed_after_a_kill_logs_each_step_once(tmp_path):
    """A kill leaves the log ahead of the saved state (steps logged, not yet saved) and its
    last line torn: the resumed run drops what it does again, and starts on a fresh line."""
    corpus = corpus_from_text(PATTERN)
    config = {"max_steps": 30, "eval_interval": 10, "log_interval": 1, "dropout": 0.0}
    first, _, _ = run(corpus, tmp_path / "m", cancel_at=12, **config)
    assert first.steps == 12
    log = tmp_path / "m" / "metrics.jsonl"
    with open(log, "a", encoding="utf-8") as f:  # as if killed at step 14, after its state
        for step in (13, 14):
            f.write(json.dumps({"kind": "step", "step": step, "train_loss": 9.0}) + "\n")
        f.write('{"kind": "step", "st')
    second, _, _ = run(corpus, tmp_path / "m", resume=True, **config)
    assert second.steps == 30
    lines = log.read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines]  # every line is whole
    steps = [e["step"] for e in events if e["kind"] == "step"]
    assert steps == list(range(1, 31))  # each step once, in order
    assert 9.0 not in [e.get("train_loss") for e in events]  # the unsaved ones are gone
    assert [e["step"] for e in events if e["kind"] == "eval"] == [10, 20, 30]


def test_a_run_killed_before_its_first_state_resumes_from_the_start(tmp_path):
    """The best model is written before state.pt: a kill in between left a model that
    --resume refused for want of a state. It starts again from step 0 (the same steps), and
    the saved model's score is the mark; the log keeps each step once."""
    corpus = corpus_from_text(PATTERN)
    config = {"max_steps": 20, "eval_interval": 10, "log_interval": 5, "dropout": 0.0}
    full, _, _ = run(corpus, tmp_path / "full", **config)
    run(corpus, tmp_path / "m", cancel_at=10, **config)
    (tmp_path / "m" / store.STATE).unlink()  # as if killed before it was written
    second, _, events = run(corpus, tmp_path / "m", resume=True, **config)
    assert second.steps == 20 and any("starts again from step 0" in n
                                      for n in of_kind(events, "start")[0].start.notes)
    assert (second.best_val_loss, second.best_step) == (full.best_val_loss, full.best_step)
    log = [json.loads(line) for line in (tmp_path / "m" / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if e["kind"] == "step"] == [5, 10, 15, 20]


def test_appending_to_a_log_with_a_torn_line_starts_a_fresh_line(tmp_path):
    from charchat.rundir import RunFolder

    log = tmp_path / "metrics.jsonl"
    log.write_text('{"kind": "step", "step": 1}\n{"kind": "st')
    folder = RunFolder(tmp_path, "m")
    folder.open_metrics(append=True)  # no state step: nothing else is dropped
    folder.log(TrainEvent("end", step=1))
    folder.close_metrics()
    assert [json.loads(line)["kind"] for line in log.read_text().splitlines()] == ["step", "end"]


def test_resume_needs_a_state_and_the_same_shape(tmp_path):
    corpus = corpus_from_text(PATTERN)
    with pytest.raises(TrainingError, match="no training state"):
        run(corpus, tmp_path / "m", resume=True)
    run(corpus, tmp_path / "m", max_steps=5)
    with pytest.raises(TrainingError, match="n_embd was 32, now 16"):
        run(corpus, tmp_path / "m", resume=True, max_steps=10, n_embd=16)
    with pytest.raises(TrainingError, match="optimizer was muon, now adamw"):
        run(corpus, tmp_path / "m", resume=True, max_steps=10, optimizer="adamw")


def test_muon_takes_the_block_matrices_and_adamw_the_rest(tmp_path):
    corpus = corpus_from_text(PATTERN)
    _, trainer, _ = run(corpus, tmp_path / "m", max_steps=3, n_layer=2)
    adamw, muon = trainer.optimizers
    in_muon = {id(p) for g in muon.param_groups for p in g["params"]}
    in_adamw = {id(p) for g in adamw.param_groups for p in g["params"]}
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    assert sorted(names[i] for i in in_muon) == sorted(
        n for n, p in trainer.model.named_parameters()
        if n.startswith("transformer.h.") and p.dim() == 2)
    assert len(in_muon) == 8  # 4 matrices a block: qkv, attention out, MLP in, MLP out
    assert in_muon.isdisjoint(in_adamw) and in_muon | in_adamw == set(names)
    assert "transformer.wte.weight" in {names[i] for i in in_adamw}  # the tied head too
    # Muon's rate follows the schedule at muon_lr / lr times AdamW's.
    c = trainer.config
    assert muon.param_groups[0]["lr"] == pytest.approx(
        adamw.param_groups[0]["lr"] * c.muon_lr / c.lr)
    # Its decay per step is lr(t) * muon_weight_decay, on AdamW's scale; its own default.
    assert c.muon_weight_decay == 0.2 and c.weight_decay == 0.1
    assert muon.param_groups[0]["momentum"] == c.muon_momentum == 0.9
    assert muon.param_groups[0]["lr"] * muon.param_groups[0]["weight_decay"] == pytest.approx(
        adamw.param_groups[0]["lr"] * c.muon_weight_decay)
    assert adamw.param_groups[0]["weight_decay"] == c.weight_decay
    # The fused query/key/value projections are orthogonalised as three matrices each.
    blocks = dict(zip((names[id(p)] for p in muon.param_groups[0]["params"]),
                      muon.param_groups[0]["row_blocks"]))
    assert {n for n, k in blocks.items() if k == 3} == {
        "transformer.h.0.attn.c_attn.weight", "transformer.h.1.attn.c_attn.weight"}
    assert sum(k == 1 for k in blocks.values()) == 6

    _, plain, _ = run(corpus, tmp_path / "a", max_steps=3, optimizer="adamw")
    assert len(plain.optimizers) == 1 and isinstance(plain.optimizers[0], AdamW)


def test_resume_of_a_run_saved_before_the_optimizer_setting(tmp_path):
    """Older runs saved one AdamW state and no "optimizer" in their settings: they resume
    with AdamW."""
    corpus = corpus_from_text(PATTERN)
    full, full_trainer, _ = run(corpus, tmp_path / "full", max_steps=20, optimizer="adamw")
    run(corpus, tmp_path / "old", max_steps=20, optimizer="adamw", cancel_at=10)
    state_path = tmp_path / "old" / store.STATE
    st = torch.load(state_path, weights_only=True)
    st["optimizer"] = st["optimizer"][0]
    config = json.loads(st["config"])
    del config["optimizer"]
    st["config"] = json.dumps(config)
    torch.save(st, state_path)
    old = {k: v for k, v in tiny_train_config(max_steps=20).to_dict().items() if k != "optimizer"}
    assert TrainConfig.from_dict(old).optimizer == "adamw"
    resumed = Trainer(corpus, TrainConfig.from_dict(old), out_dir=tmp_path / "old", resume=True)
    assert resumed.run().steps == 20
    assert weights_equal(resumed.model, full_trainer.model)


def test_resume_of_a_run_saved_before_epoch_sampling(tmp_path):
    """Older states kept only the data generator's state, for windows drawn at random: they
    resume with their weights and schedule, and an epoch order started from the seed."""
    corpus = corpus_from_text(PATTERN)
    run(corpus, tmp_path / "old", max_steps=20, cancel_at=10, log_interval=1)
    state_path = tmp_path / "old" / store.STATE
    st = torch.load(state_path, weights_only=True)
    del st["data_sampler"]
    st["data_rng"] = json.dumps(np.random.Generator(np.random.PCG64(0)).bit_generator.state)
    torch.save(st, state_path)
    resumed, trainer, events = run(corpus, tmp_path / "old", resume=True, max_steps=20,
                                   log_interval=1)
    assert resumed.stop_reason == "max_steps" and resumed.steps == 20
    assert min(e.step for e in of_kind(events, "step")) == 11
    assert trainer.sampler.epoch == 0


def test_resume_of_a_muon_run_saved_before_its_newer_settings(tmp_path):
    """Such runs orthogonalised the query/key/value matrix whole, decayed Muon's matrices at
    weight_decay and used momentum 0.95: they resume that way."""
    corpus = corpus_from_text(PATTERN)
    run(corpus, tmp_path / "old", max_steps=20, cancel_at=10, muon_weight_decay=0.1,
        muon_momentum=0.95)
    state_path = tmp_path / "old" / store.STATE
    st = torch.load(state_path, weights_only=True)
    del st["optimizer"][1]["param_groups"][0]["row_blocks"]
    config = json.loads(st["config"])
    del config["muon_weight_decay"], config["muon_momentum"]
    st["config"] = json.dumps(config)
    torch.save(st, state_path)
    resumed = Trainer(corpus, TrainConfig.from_dict(config), out_dir=tmp_path / "old",
                      resume=True)
    assert resumed.run().steps == 20
    assert resumed.config.muon_weight_decay == resumed.config.weight_decay == 0.1
    muon = resumed.optimizers[1].param_groups[0]
    assert resumed.config.muon_momentum == muon["momentum"] == 0.95
    assert muon["row_blocks"] == [1] * len(muon["params"]) and len(muon["params"]) >= 4
    assert muon["lr"] * muon["weight_decay"] == pytest.approx(
        resumed.optimizers[0].param_groups[0]["lr"] * 0.1)


def test_an_fp16_overflow_in_one_optimizer_skips_every_optimizer(tmp_path):
    """fp16 loss scaling (CUDA) with Muon and AdamW: an inf in a Muon matrix's gradient must
    leave every weight and AdamW's moments alone, and lower the scale. (The CPU GradScaler
    runs the same code path.)"""
    trainer = Trainer(corpus_from_text(PATTERN), tiny_train_config(), out_dir=tmp_path / "m")
    trainer._setup()
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    params = list(trainer.model.parameters())

    def backward(overflow):
        x, y = trainer._batch()
        trainer.scaler.scale(trainer.model(x, y)[1]).backward()
        if overflow:
            trainer.optimizers[1].param_groups[0]["params"][0].grad[0, 0] = float("inf")

    backward(overflow=False)
    assert math.isfinite(float(trainer._apply_gradients(params)))
    trainer._zero_grad()
    before = [p.detach().clone() for p in params]
    adamw_state = {k: v.clone() for k, v in trainer.optimizers[0].state[params[0]].items()}
    backward(overflow=True)
    assert not math.isfinite(float(trainer._apply_gradients(params)))
    assert all(torch.equal(a, b) for a, b in zip(before, params))
    assert all(torch.equal(v, trainer.optimizers[0].state[params[0]][k])
               for k, v in adamw_state.items())
    assert trainer.scaler.get_scale() == 512.0


def test_compile_that_fails_at_the_first_call_falls_back_to_eager(tmp_path, monkeypatch):
    """torch.compile is lazy: without a C++ compiler it fails at the first forward. The run
    must go on eagerly with a note, not crash, and see the same data as an eager run."""
    calls = []

    def failing_compile(model, **kwargs):
        def call(*args, **kw):
            calls.append(args[0].shape)
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore detail")
        return call

    monkeypatch.setattr(torch, "compile", failing_compile)
    corpus = corpus_from_text(PATTERN)
    result, trainer, events = run(corpus, tmp_path / "c", max_steps=20, compile=True)
    assert result.stop_reason == "max_steps" and result.steps == 20
    assert calls and calls[0][0] == trainer.config.batch_size  # probed with a full batch
    start = of_kind(events, "start")[0]
    notes = [n for n in start.start.notes if "torch.compile failed" in n]
    assert notes == ["torch.compile failed (RuntimeError: InvalidCxxCompiler: No working C++ "
                     "compiler found); training without it"]
    plain, _, _ = run(corpus, tmp_path / "e", max_steps=20, compile=False)
    assert result.best_val_loss == pytest.approx(plain.best_val_loss, abs=1e-6)


def test_existing_model_is_not_overwritten(tmp_path):
    corpus = corpus_from_text(PATTERN)
    run(corpus, tmp_path / "m", max_steps=5)
    before = (tmp_path / "m" / store.WEIGHTS).read_bytes()
    with pytest.raises(TrainingError, match="already exists"):
        run(corpus, tmp_path / "m", max_steps=5)
    assert (tmp_path / "m" / store.WEIGHTS).read_bytes() == before


def test_a_run_stopped_before_its_first_step_leaves_no_folder(tmp_path):
    cancel = threading.Event()
    cancel.set()
    result = Trainer(corpus_from_text(PATTERN), tiny_train_config(max_steps=50),
                     out_dir=tmp_path / "m", cancel=cancel).run()
    assert result.stop_reason == "cancelled" and result.best_val_loss is None
    assert "no model was saved" in result.message
    # A folder without weights would take the name, yet be nothing to chat with or resume.
    assert not (tmp_path / "m").exists()


# ---------------------------------------------------------------------------------------------
# Failures


def test_non_finite_loss_keeps_the_best_model(tmp_path, monkeypatch):
    real_forward = GPT.forward
    batches = {"n": 0}

    def forward(self, idx, targets=None, **kw):
        logits, loss = real_forward(self, idx, targets, **kw)
        if targets is not None:
            batches["n"] += 1
            if batches["n"] > 12:  # training goes wrong from step 13 on
                loss = loss * float("nan")
        return logits, loss

    monkeypatch.setattr(GPT, "forward", forward)
    saved = {}

    def on_event(ev):
        if ev.kind == "eval":
            saved[ev.step] = (tmp_path / "m" / store.WEIGHTS).read_bytes()

    corpus = corpus_from_text(PATTERN)
    result = Trainer(corpus, tiny_train_config(max_steps=100, eval_interval=5, log_interval=5),
                     out_dir=tmp_path / "m", on_event=on_event).run()
    assert result.stop_reason == "non_finite" and result.steps == 15
    assert "diverged" in result.message and "is kept" in result.message
    assert sorted(saved) == [5, 10]
    assert (tmp_path / "m" / store.WEIGHTS).read_bytes() == saved[10]
    model, _, info = store.read_weights(tmp_path / "m" / store.WEIGHTS)
    assert info["step"] == result.best_step == 10
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("error", [
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate "
                 "memory: you tried to allocate 68719476736 bytes. Error code 12"),
    MemoryError(),
])
def test_out_of_memory_is_one_line_and_leaves_no_folder(tmp_path, monkeypatch, error):
    def forward(self, idx, targets=None, **kw):
        raise error

    monkeypatch.setattr(GPT, "forward", forward)
    with pytest.raises(TrainingError, match="^out of memory: try a smaller model"):
        run(corpus_from_text(PATTERN), tmp_path / "m", max_steps=5)
    assert not (tmp_path / "m").exists()


def test_a_failed_resume_keeps_the_folder(tmp_path, monkeypatch):
    corpus = corpus_from_text(PATTERN)
    run(corpus, tmp_path / "m", max_steps=5)
    before = sorted(p.name for p in (tmp_path / "m").iterdir())

    def forward(self, idx, targets=None, **kw):
        raise MemoryError

    monkeypatch.setattr(GPT, "forward", forward)
    with pytest.raises(TrainingError, match="out of memory"):
        run(corpus, tmp_path / "m", resume=True, max_steps=10)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == before


def test_crash_while_saving_the_best_model(tmp_path, monkeypatch):
    folder = tmp_path / "m"
    real_replace = os.replace
    state = {"armed": False, "saved": None}

    def replace(src, dst):
        if state["armed"] and os.path.basename(dst) == store.WEIGHTS:
            raise OSError(5, "Input/output error")
        return real_replace(src, dst)

    def on_event(ev):
        if ev.kind == "eval" and ev.step == 10:
            state["saved"] = (folder / store.WEIGHTS).read_bytes()
            state["armed"] = True

    monkeypatch.setattr(os, "replace", replace)
    corpus = corpus_from_text(PATTERN)
    trainer = Trainer(corpus, tiny_train_config(max_steps=60, eval_interval=10), out_dir=folder,
                      on_event=on_event)
    with pytest.raises(OSError, match="Input/output error"):
        trainer.run()
    assert (folder / store.WEIGHTS).read_bytes() == state["saved"]
    assert store.read_weights(folder / store.WEIGHTS)[2]["step"] == 10
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_corpus_too_short_for_the_block_size(tmp_path):
    corpus = corpus_from_text(pattern_text(200))
    with pytest.raises(ValueError, match="block_size 32"):
        run(corpus, tmp_path / "m", block_size=32)


# ---------------------------------------------------------------------------------------------
# Smaller features


def test_sample_events_are_not_logged(tmp_path):
    corpus = corpus_from_text(PATTERN)
    _, _, events = run(corpus, tmp_path / "m", max_steps=20, eval_interval=10, sample_every=1)
    samples = of_kind(events, "sample")
    assert [e.step for e in samples] == [10, 20]
    assert all(len(e.sample) > 100 for e in samples)
    kinds = [json.loads(line)["kind"] for line in (tmp_path / "m" / "metrics.jsonl").open()]
    assert "sample" not in kinds and kinds.count("eval") == 2


def test_dialogue_corpus(tmp_path, write_file):
    line = json.dumps({"messages": [{"role": "user", "content": "hi there"},
                                    {"role": "assistant", "content": "hello, friend"}]})
    corpus = load_corpus([write_file("chat.jsonl", (line + "\n") * 300)])
    _, _, events = run(corpus, tmp_path / "m", max_steps=10, eval_interval=10, sample_every=1)
    assert of_kind(events, "sample")[0].sample.startswith("<|user|>")
    loaded = store.load_model(str(tmp_path / "m"))
    assert loaded.kind == "dialogue" and loaded.info["corpus_kind"] == "dialogue"


def test_train_helper_names_the_model_after_the_file(write_file):
    path = write_file("my notes.txt", PATTERN[:5000])
    kw = dict(max_steps=5, n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=4,
              device="cpu")
    first = train([path], **kw)
    second = train(str(path), **kw)
    assert (first.name, second.name) == ("my-notes", "my-notes-2")
    assert [m.name for m in store.list_models()] == ["my-notes", "my-notes-2"]
    assert store.load_model("my-notes").model.config.n_embd == 16


def test_resume_on_other_text_scores_the_best_model_afresh(tmp_path):
    """The best val loss so far was measured on the old text's validation split: compared
    with scores on new text, no new model could ever count as better."""
    first = corpus_from_text(PATTERN)
    run(first, tmp_path / "m", max_steps=20, eval_interval=10)
    other_text = pattern_text(30000, seed=7)  # the same words, another order: same characters
    other = corpus_from_text(other_text, tokenizer=first.tokenizer)
    best_model, _, _ = store.read_weights(tmp_path / "m" / store.WEIGHTS)
    result, trainer, events = run(other, tmp_path / "m", resume=True, max_steps=40,
                                  eval_interval=10)
    notes = of_kind(events, "start")[0].start.notes
    assert any("not the one m last trained on" in n for n in notes), notes
    mark = windows_loss(best_model, other.val_ids, trainer.eval_starts)[0]
    assert f"scores {mark:.4f}" in " ".join(notes)
    evals = of_kind(events, "eval")
    # Every improvement is judged against the mark, and the best on disk is the lowest score.
    assert result.best_val_loss == pytest.approx(min([mark] + [e.val_loss for e in evals]))
    assert any(e.improved for e in evals)
    assert store.read_meta(tmp_path / "m")["best_val_loss"] == result.best_val_loss
    # The same text again: nothing is rescored.
    _, _, events = run(other, tmp_path / "m", resume=True, max_steps=50, eval_interval=10)
    assert not any("not the one" in n for n in of_kind(events, "start")[0].start.notes)


def test_resume_on_other_text_lists_the_rescored_best(tmp_path):
    """Even if no new best is saved, the listing shows the score on the text now used."""
    first = corpus_from_text(PATTERN)
    run(first, tmp_path / "m", max_steps=20, eval_interval=10)
    other = corpus_from_text(pattern_text(30000, seed=7), tokenizer=first.tokenizer)
    _, trainer, _ = run(other, tmp_path / "m", resume=True, max_steps=20)  # no step left
    best_model, _, _ = store.read_weights(tmp_path / "m" / store.WEIGHTS)
    mark = windows_loss(best_model, other.val_ids, trainer.eval_starts)[0]
    assert store.read_meta(tmp_path / "m")["best_val_loss"] == pytest.approx(mark)


@pytest.mark.parametrize("same_length", [True, False])
def test_resume_of_a_state_saved_before_the_corpus_fingerprint(tmp_path, same_length):
    """Such a state has no fingerprint: the length in the folder's corpus.json decides."""
    first = corpus_from_text(PATTERN)
    run(first, tmp_path / "m", max_steps=20, eval_interval=10)
    state = torch.load(tmp_path / "m" / store.STATE, weights_only=True)
    del state["corpus"]
    torch.save(state, tmp_path / "m" / store.STATE)
    text = PATTERN if same_length else PATTERN[: len(PATTERN) // 2] + "\n"
    _, _, events = run(corpus_from_text(text, tokenizer=first.tokenizer), tmp_path / "m",
                       resume=True, max_steps=30, eval_interval=10)
    rescored = any("not the one" in n for n in of_kind(events, "start")[0].start.notes)
    assert rescored == (not same_length)
