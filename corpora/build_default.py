#!/usr/bin/env python3
"""Build the default model that ships inside the package (charchat/data/default/).

One command, from a source checkout with charchat installed:

    python corpora/build_default.py

1. generates the training conversations with make_dialogue.py (seed 1337, 100,000 conversations,
   about 25 MB each; the files are not committed): corpora/default_train_base.jsonl without the
   capital phrasings that name the country first (--no-name-order-phrasings),
   corpora/default_train.jsonl with them, and corpora/default_train_wide.jsonl with them and
   the wide phrasings (--wide-phrasings);
2. trains a 6-layer, 192-wide model with AdamW for a fixed number of steps (so two builds on the
   same kind of machine give the same model), into runs/default-build/: 8,000 steps of warmup
   and cosine on the base file, then a warm restart that resumes the run with a new total of
   11,000 steps (the learning rate rises again to about a fifth of its peak and decays to the
   floor), then a second one to 12,000 steps on the full file. On a 2-core CPU this takes about
   two and a quarter hours; Ctrl-C stops it with the best model kept (run again with --resume
   to go on);
3. phase 4 (issue 23): a new AdamW schedule started from phase 3's best weights, on
   corpora/default_train_wide.jsonl (the same generator and seed with --wide-phrasings: many more
   ways to ask for sums, differences, capitals, spellings ..., about 1 in 5 of them held out), for
   a fixed PHASE4["max_steps"] steps: warmup to a rate a fifth of phase 1's peak, cosine decay
   to a tenth of that, into runs/default-build-wide/. It was added after the phase-3 model failed
   wordings its generator never used ("please add 91 to 24": 0 of 40). On a 2-core CPU its
   7,000 steps take about an hour (0.4-0.5 s a step). The shipped model is the mean of four
   models that ran up to eleven phases 4 one after another, each on the generator of its day
   (--phase4-from and --average below): this command runs one;
4. exports the best weights, stored as float16 to halve the file (the package limit is 10 MB;
   loading casts them back to float32), with the records of how the model was made:
   train_args.json, corpus.json, metrics.jsonl and build.json.

    python corpora/build_default.py --resume            # continue an interrupted build
    python corpora/build_default.py --export-only       # export runs/default-build-wide again
    python corpora/build_default.py --phase4-from runs/phase3-shipped
        # only phase 4, from a model already built, then export it. The shipped model is the
        # mean of the last two models of a chain of such phases 4 (each from the float16
        # weights of the model before, read back as float32; the last four each from a mean),
        # each model put in its folder with
        #   mkdir -p FOLDER && git archive COMMIT charchat/data/default |
        #       tar -x --strip-components=3 -C FOLDER
        # 1. from the phase-3 model of commit 4cdc4be, with the generator of a1f8ab1 and no
        #    PHASE4 seed (so 1337): the third try, shipped at f93343a;
        # 2. from that, with the generator of 57abf91 (wordings built from parts, close
        #    differences), seed 1337: the fourth try, committed at cb8c674;
        # 3. from that, with the generator of 034317b (the training file of e5e856a's, byte for
        #    byte) and seed 1341: the fifth try, shipped at e5e856a
        #    (--phase4-from runs/phase4-fourth-try);
        # 4. from that, with the generator of 4ae63c7 and seed 1342: the sixth try, shipped at
        #    905fcbc (--phase4-from runs/phase4-fifth-try: e5e856a's weights, with the fifth
        #    try's first build.json, see corpora/README);
        # 5. from that, with the generator of 156e8bd and seed 1343: the seventh try, shipped
        #    at 28f27fa (--phase4-from runs/phase4-sixth-try);
        # 6. from that, with the generator of 92169e0 and seed 1344: the eighth try, shipped
        #    at 79a1478 (--phase4-from runs/phase4-seventh-try).
        #    Each build.json keeps the one before it.
        # 7. from that, with the generator of 79d9c43 and seed 1346 (the seventh round of
        #    wordings, make_dialogue.CUES, and MORE_LEAD_INS): the tenth try, shipped at 657909b
        #    in session 21 (--phase4-from runs/phase4-eighth-try).
        #    The ninth try (from the eighth, seed 1345, on the eighth's training file byte for
        #    byte) is not in the chain and its export was not kept: 7,000 more steps alone
        #    gained nothing on the fourth blind set (benchmarks/results/*_s20*.json).
        # 8. from the tenth, with the generator of 08990f2 (the eighth round,
        #    make_dialogue.TURNS: the calendar's relations turned round) and seed 1347: the
        #    eleventh try (--phase4-from runs/phase4-tenth-try), session 21, committed on
        #    branch `eleventh` and not shipped: it learnt the day and month before and lost
        #    the day and month after (benchmarks/README.md, session 21). That branch did not
        #    land, so its weights are kept nowhere: rebuild them with this command at 08990f2
        #    (build.json's phase4 keeps their SHA-256, 392afb4e...).
        # 9. from the eleventh, with the generator of 47bf13b (the ninth round,
        #    make_dialogue.MIRRORS: each turned relation's mirror; the lists this file's
        #    generator builds are byte for byte the same) and seed 1348:
        #    the twelfth try (--phase4-from runs/phase4-eleventh-try), trained in session 21,
        #    shipped at c9156ca in session 22.
        # 10. from the mean of the tenth and twelfth (below; 4a56cbc), on the same generator
        #    with seed 1349: the thirteenth try (--phase4-from charchat/data/default at
        #    4ff9cfd), session 23, kept at 65f103b.
        # 11. from the mean of the tenth, twelfth and thirteenth (below; 028c42e), on the same
        #    generator with seed 1350: the fourteenth try (--phase4-from charchat/data/default
        #    at a3fa275), session 24, kept at 63a89aa.
        # 12. from the mean of those four (909f4fc), with the generator of c823b0f (the
        #    eleventh round, make_dialogue.BALANCE: each calendar relation phrase trained both
        #    ways) and seed 1353: the seventeenth try (--phase4-from charchat/data/default at
        #    c823b0f), session 27, kept at f18e3e7.
        # 13. from the mean of the tenth, twelfth, thirteenth, fourteenth and seventeenth
        #    (8ae8a80), with the generator of a42d5f2 (that round revised) and seed 1354: the
        #    eighteenth try (--phase4-from charchat/data/default at a42d5f2), session 28, kept
        #    at 13c45fb.
        # 14. from the mean of the seventeenth and eighteenth (dffdfba), same generator, seed
        #    1355: the nineteenth try (--phase4-from charchat/data/default at 9433f77 with
        #    that seed), session 29, kept at 59e783e.
        #    (The fifteenth and sixteenth, sessions 25 and 26, were not kept.)
    python corpora/build_default.py --average runs/phase4-seventeenth-try \
            runs/phase4-eighteenth-try runs/phase4-nineteenth-try
        # no training: the mean of those three models' weights (folders from f18e3e7, 13c45fb
        # and 59e783e as above), exported with each member's record. That is the shipped
        # model (session 29), chosen on the fourteenth blind set, never scored before (532 of
        # 544 questions exactly; the mean of the seventeenth and eighteenth 526, the
        # nineteenth alone 520), and not behind on sets 6 to 13 (4,584 of 4,892; 4,574).
        # Shipped before it: the mean of the tenth and twelfth (4a56cbc), of the tenth,
        # twelfth and thirteenth (028c42e), of those and the fourteenth (909f4fc), of those
        # four and the seventeenth (8ae8a80), and of the seventeenth and eighteenth (dffdfba).

benchmarks/bench_default_model.py measures the result on held-out questions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import make_dialogue  # noqa: E402

CORPUS_BASE = HERE / "default_train_base.jsonl"  # phases 1 and 2
CORPUS = HERE / "default_train.jsonl"  # phase 3
CORPUS_WIDE = HERE / "default_train_wide.jsonl"  # phase 4
RUN = ROOT / "runs" / "default-build"  # phases 1 to 3
RUN_WIDE = ROOT / "runs" / "default-build-wide"  # phase 4
PHASE4_START = "phase4_start.json"  # in RUN_WIDE: which model phase 4 started from
N_CONVERSATIONS = 100_000
# The recipe. A fixed step count rather than a time budget, so the result does not depend on how
# busy the machine was. 2.7M parameters trained on ~33M characters (about 3.6 passes over the
# corpus): on a 2-core CPU that is about what a build can afford in an hour and a half. A
# 4.7M-parameter (256-wide) model trains at 4.0k characters/s there against 6.5k for this one,
# so it would see 40% fewer characters in the same time.
# AdamW throughout: the shipped model was trained and measured that way, before Muon became
# charchat's default optimizer.
TRAIN = dict(
    n_layer=6, n_head=6, n_embd=192, block_size=128, batch_size=32, optimizer="adamw",
    max_steps=8000, eval_interval=250, patience=40, seed=1337,
)
# The warm restart: the same run resumed with this new total. Measured (bench_default_model.py),
# the 3,000 extra steps took held-out 2-digit sums from 94.1% to 96.5% and 3-digit ones from
# 81.0% to 84.3%.
EXTEND_TO = 11000
# Phase 3: a second warm restart, on the corpus with the capital phrasings that name the
# country first (see make_dialogue.COUNTRY_FIRST_CAPITAL). They were added after the 11,000-step
# model answered the held-out "Peru has which city as its capital?" backwards (50% of
# countries); 1,000 more steps took that to 97% (bench_default_model.py).
FINAL_STEPS = 12000
# Phase 4 (issue 23): a fine-tune from the phase-3 model on the corpus with the wide phrasings.
# A new schedule rather than a warm restart, so that it can start from any phase-3 model
# (the shipped one has no optimizer state). The rate of the warm restarts (about a fifth of the
# peak), the same shape, batch and seed; a fixed step count. 2,500 steps on the first wide
# corpus left differences, continents, spellings, reversals and letter counts under 90% on
# held-out wordings. The third try (sixteenth session): 7,000 steps on a wide corpus that also
# asks the weak skills more often (make_dialogue.WIDE_WEIGHT), wraps questions in chat
# (chat_around) and widens the calendar. The shipped model (seventeenth session) is two more
# such phases chained on top of it, on the corpus with wordings built from parts
# (make_dialogue.PARTS) and more differences of close numbers; the second of them draws its
# batches with its own seed so as not to repeat the first's (benchmarks/README.md). The sixth
# try (eighteenth session) is one more, on the corpus with the fifth round of wordings
# (make_dialogue.FRAMED: the item first, named in a clause before a question about "it", and word
# problems), again with a seed of its own. The seventh try (nineteenth session) is one more, on
# the corpus with the sixth round (make_dialogue.SENTENCES: relations asked the other way round,
# "characters", stories of other kinds, reasons for asking), with a seed of its own. The eighth
# (the same session) is one more, on the corpus that asks the calendar's next and previous day
# and month 5.4 times as often (make_dialogue.WIDE_WEIGHT, CALENDAR_SHARE). The ninth (session
# 20) was one more on the same training file, byte for byte, with a batch seed of its own
# (1345), to measure what more steps alone still give: nothing on the fourth blind set (81.3%
# -> 81.0%). The tenth (the same session, shipped in session 21) is one more from the eighth, on
# the corpus with the seventh round (make_dialogue.CUES: the words that carry each skill;
# MORE_LEAD_INS). The eleventh (session 21) is one more from the tenth, on the corpus with the
# eighth round (make_dialogue.TURNS: the calendar's relations asked the other way round); it
# swapped which way the calendar's phrases pointed rather than learning to read them. The
# twelfth is one more from the eleventh, on the corpus with the ninth round
# (make_dialogue.MIRRORS: each turned relation's mirror in the other task). The thirteenth
# (session 23) is one more, from the mean of the tenth and twelfth (--average), on the same
# corpus with a seed of its own; the fourteenth (session 24) one more from the mean of those
# three, again with a seed of its own. The shipped model is the mean of those four. The
# sixteenth (session 26), one more from that mean grown to 8 layers (--layers 8, seed 1352),
# was not shipped: a third more parameters left the loss where the fourteenth's was and answered
# 41 fewer of 3,772 blind-set questions (benchmarks/README.md, twenty-sixth session). The
# seventeenth (session 27) is one more from the mean of four, on the corpus with the eleventh
# round (make_dialogue.BALANCE: each calendar relation phrase trained in both directions), seed
# 1353; the mean of five, the four and the seventeenth, was shipped after it. The eighteenth
# (session 28) is one more from the mean of five, on the corpus with that round revised (no
# wording shaped like the answer sentence; "ends" and "begins" each said of the item asked
# for in both tasks), seed 1354; the shipped model is the mean of the seventeenth and
# eighteenth. The nineteenth (session 29) is one more from that mean, on the same corpus, seed
# 1355; the shipped model is the mean of the seventeenth, eighteenth and nineteenth.
PHASE4 = dict(max_steps=7000, lr=6e-4, min_lr=6e-5, warmup_steps=100, eval_interval=250,
              patience=40, seed=1355)
# How the app samples from this model until the user changes it: arithmetic and facts have one
# right answer, so the likeliest character is the best one.
SAMPLING = {"temperature": 0.0, "top_k": None, "top_p": None, "max_new_chars": 300}
SIZE_LIMIT = 10_000_000


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def corpus_files() -> dict:
    """Each corpus file with make_dialogue's (name_order_phrasings, wide_phrasings)."""
    return {"base": (CORPUS_BASE, False, False), "full": (CORPUS, True, False),
            "wide": (CORPUS_WIDE, True, True)}


def make_corpus(which=("base", "full", "wide"), keep_current: bool = False) -> dict[str, str]:
    """Write the corpus files named in `which`; keep_current: leave a file that already holds
    what the generator writes (it is generated once either way, to compare). Returns the
    SHA-256 of what the generator writes, by kind."""
    generated = {}
    for kind in which:
        path, name_order, wide = corpus_files()[kind]
        t0 = time.perf_counter()
        lines, stats, _, _ = make_dialogue.generate(make_dialogue.DEFAULT_SEED, N_CONVERSATIONS,
                                                    name_order_phrasings=name_order,
                                                    wide_phrasings=wide)
        generated[kind] = sha256_lines(lines)
        if keep_current and path.exists() and sha256_file(path) == generated[kind]:
            log(f"kept {portable(str(path), ROOT)}: what the generator writes now")
            continue
        make_dialogue.write_lines(str(path), lines)
        log(f"wrote {portable(str(path), ROOT)}: {len(lines)} conversations, "
            f"{sum(stats.values())} question/answer pairs ({time.perf_counter() - t0:.1f}s)")
    return generated


def wide_corpus_current(resume: bool) -> None:
    """Make sure phase 4's corpus is what make_dialogue.py writes now: a file left by an earlier
    generator is written again (a stale one was once about to be trained on). A resumed run
    stops if that is not the corpus it began on (its phase4_start.json keeps the SHA-256)."""
    make_corpus(("wide",), keep_current=True)
    start = RUN_WIDE / PHASE4_START
    began = json.loads(start.read_text()).get("corpus_sha256") if resume and start.exists() else None
    if began is not None and began != sha256_file(CORPUS_WIDE):
        raise SystemExit(f"{portable(str(CORPUS_WIDE), ROOT)}: make_dialogue.py now writes another "
                         f"corpus than the one {portable(str(RUN_WIDE), ROOT)} began on: go back "
                         "to the generator it began with, or start the phase again")


def phases() -> list[tuple[Path, int]]:
    """(corpus file, step total) of each phase; phases after the first resume the run."""
    return [(CORPUS_BASE, TRAIN["max_steps"]), (CORPUS_BASE, EXTEND_TO), (CORPUS, FINAL_STEPS)]


def train(resume: bool, device: str) -> str:
    """The three phases (or what is left of them); returns how the last one stopped."""
    from charchat.corpus import load_corpus
    from charchat.tokenizer import CharTokenizer

    totals = [total for _, total in phases()]
    first = 0
    if resume:
        # The phase the run was in: the one whose total it saved, or the next one if it
        # reached that total.
        saved = json.loads((RUN / "train_args.json").read_text()).get("config", {})
        first = totals.index(saved["max_steps"]) if saved.get("max_steps") in totals else 0
        outcome = run_outcome(RUN)
        if outcome["stop_reason"] == "max_steps" and outcome["steps"] == totals[first]:
            first = min(first + 1, len(totals) - 1)
    stop = "max_steps"
    for i, (corpus_file, total) in list(enumerate(phases()))[first:]:
        if i == 0 and not resume:
            config, tokenizer = config_from(TRAIN, device), None
        else:
            # A warm restart: the saved, resolved settings (warmup, learning rates ...) with a
            # new total, the corpus read with the run's vocabulary.
            saved = json.loads((RUN / "train_args.json").read_text())["config"]
            config = config_from({**saved, "max_steps": total}, device)
            tokenizer = CharTokenizer.from_json((RUN / "tokenizer.json").read_text())
        corpus = load_corpus([str(corpus_file)], tokenizer=tokenizer)
        log(corpus.summary.describe())
        stop = run_phase(corpus, config, resume or i > 0, corpus_file)
        if stop != "max_steps":
            return stop
    return stop


def phase4_config(start: Path, device: str):
    """Phase 1's settings as the run resolved them (or the recipe, for a model without
    records), with phase 4's schedule."""
    record = start / "train_args.json"
    saved = json.loads(record.read_text()).get("config", {}) if record.is_file() else {}
    base = {k: v for k, v in saved.items() if k in TRAIN or k in ("dropout", "bias", "weight_decay",
                                                                 "beta1", "beta2", "grad_clip",
                                                                 "eval_tokens", "log_interval")}
    return config_from({**TRAIN, **base, **PHASE4}, device)


def grown_blocks(n_old: int, n_new: int) -> list[tuple[int, bool]]:
    """Where a model of n_old blocks grown to n_new takes each block from: (old block, is new).
    The new blocks are spread evenly between the old ones, each after the block it copies."""
    extra = n_new - n_old
    after = [max(0, round((k + 1) * n_old / (extra + 1)) - 1) for k in range(extra)]
    order = []
    for i in range(n_old):
        order.append((i, False))
        order += [(i, True)] * after.count(i)
    return order


def grow(model, n_layer: int):
    """The model with n_layer blocks that computes what `model` computes: each added block is a
    copy of the one before it with its attention and MLP output projections zeroed, so it adds
    nothing to the residual stream until training moves those projections (and, through them,
    the rest of the block; the copy gives its inputs a trained start)."""
    import torch

    from charchat.config import GPTConfig
    from charchat.model import GPT

    old = model.config.n_layer
    if n_layer <= old:
        raise SystemExit(f"--layers {n_layer}: the model already has {old} layers; it can only "
                         "grow")
    sd = model.state_dict()
    new_sd = {k: v for k, v in sd.items() if not k.startswith("transformer.h.")}
    for j, (i, added) in enumerate(grown_blocks(old, n_layer)):
        prefix = f"transformer.h.{i}."
        for k, v in sd.items():
            if k.startswith(prefix):
                rest = k[len(prefix):]
                zero = added and rest.split(".")[1:2] == ["c_proj"]
                new_sd[f"transformer.h.{j}.{rest}"] = torch.zeros_like(v) if zero else v.clone()
    grown = GPT(GPTConfig(**{**model.config.to_dict(), "n_layer": n_layer}))
    grown.load_state_dict(new_sd)
    return grown.eval()  # as store.read_weights gives models


def grow_start(start: Path, n_layer: int) -> Path:
    """Write the model in folder `start`, grown to n_layer blocks (grow), with its records,
    into a folder beside RUN_WIDE for phase 4 to start from; returns that folder."""
    from charchat import store, tokenizers

    model, tokenizer, info = store.read_weights(start / store.WEIGHTS)
    grown = grow(model, n_layer)
    folder = RUN_WIDE.with_name(RUN_WIDE.name + "-grown")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    store.save_model(folder, grown, tokenizer, {**info, "stored_dtype": "float32",
                                                "grown_from_layers": model.config.n_layer})
    for file, data in tokenizers.folder_files(tokenizer).items():  # a trained BPE's ranks too
        store.atomic_write_bytes(folder / file, data)
    store.atomic_write_json(folder / "config.json", grown.config.to_dict())
    if (start / "build.json").is_file():
        shutil.copy(start / "build.json", folder / "build.json")
    record = start / "train_args.json"
    args = json.loads(record.read_text()) if record.is_file() else {"config": {}}
    args["config"] = {**args.get("config", {}), "n_layer": n_layer}
    store.atomic_write_json(folder / "train_args.json", args)
    log(f"grew the model of {portable(str(start), ROOT)} from {model.config.n_layer} to "
        f"{n_layer} layers ({sum(p.numel() for p in grown.parameters()):,} parameters)")
    return folder


def train_phase4(start: Path, device: str, resume: bool = False,
                 label: str | None = None, layers: int | None = None) -> str:
    """Phase 4: from the model in folder `start` (phase 3's run, or a model exported from it)
    into RUN_WIDE; resume=True goes on with an interrupted phase 4. layers: start from that
    model grown to this many blocks (grow)."""
    from charchat import store
    from charchat.corpus import load_corpus

    if resume:
        saved = json.loads((RUN_WIDE / "train_args.json").read_text())["config"]
        config = config_from({**saved, **PHASE4}, device)
    else:
        folder = grow_start(start, layers) if layers else start
        config = phase4_config(folder, device)
        RUN_WIDE.mkdir(parents=True, exist_ok=True)
        weights = start / store.WEIGHTS
        # Kept with the run: the folder it started from may be replaced by the export.
        build = start / "build.json"
        store.atomic_write_json(RUN_WIDE / PHASE4_START, {
            "folder": label or portable(str(start), ROOT), "weights_sha256": sha256_file(weights),
            "corpus_sha256": sha256_file(CORPUS_WIDE),
            "stored_dtype": store.read_weights(weights)[2].get("stored_dtype", "float32"),
            "is_phase_3_run": start.resolve() == RUN.resolve(),
            "its_build": json.loads(build.read_text()) if build.is_file() else None,
            **({"grown_to_layers": layers} if layers else {})})
        start = folder
    tokenizer = store.read_tokenizer(start if not resume else RUN_WIDE)
    corpus = load_corpus([str(CORPUS_WIDE)], tokenizer=tokenizer)
    log(corpus.summary.describe())
    return run_phase(corpus, config, resume, CORPUS_WIDE, out=RUN_WIDE,
                     init_from=None if resume else start / store.WEIGHTS)


def config_from(values: dict, device: str):
    from charchat.config import TrainConfig

    return TrainConfig.from_dict({**values, "device": device})


def run_phase(corpus, config, resume: bool, corpus_file: Path, out: Path | None = None,
              init_from: Path | None = None) -> str:
    from charchat.config import TrainingError
    from charchat.trainer import Trainer

    out = out or RUN
    last = [0.0]

    def on_event(ev):
        if ev.kind == "start":
            log(f"training {ev.message} into {portable(str(out), out)}, "
                f"{'resuming' if resume else 'starting'} a schedule of {config.max_steps} steps")
        elif ev.kind == "eval":
            log(f"step {ev.step}/{ev.max_steps}  val {ev.val_loss:.4f}  best {ev.best_val_loss:.4f}"
                f"{'  saved' if ev.improved else ''}  elapsed {ev.elapsed / 60:.1f} min")
        elif ev.kind == "step" and ev.elapsed - last[0] > 60:
            last[0] = ev.elapsed
            eta = f"{ev.eta / 60:.0f} min" if ev.eta is not None else "?"
            log(f"step {ev.step}/{ev.max_steps}  loss {ev.train_loss:.4f}  "
                f"{ev.tokens_per_s / 1000:.1f}k tok/s  ETA {eta}")

    trainer = Trainer(corpus, config, out_dir=out, on_event=on_event, resume=resume,
                      corpus_paths=[str(corpus_file)], init_from=init_from)

    def on_sigint(signum, frame):
        # First Ctrl-C: stop after this step, keeping the best model; a second one aborts.
        trainer.cancel.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        log("stopping after this step; the best model is kept (Ctrl-C again to abort)")

    old = signal.signal(signal.SIGINT, on_sigint)
    try:
        result = trainer.run()
    except TrainingError as e:
        raise SystemExit(f"build_default: {e}") from None
    finally:
        signal.signal(signal.SIGINT, old)
    log(result.message)
    return result.stop_reason


def where_built() -> dict:
    """The commit, software and machine an export was made with, and when."""
    import torch

    return {"git": git_state(), "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def git_state() -> dict:
    def git(*args):
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else None

    try:
        return {"commit": git("rev-parse", "HEAD"),
                "uncommitted_changes": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_generated(name_order_phrasings: bool = True, wide_phrasings: bool = False) -> str:
    """The SHA-256 that corpora/default_train.jsonl (default_train_base.jsonl without the
    name-order phrasings, default_train_wide.jsonl with the wide ones) has when made by this
    script."""
    lines, _, _, _ = make_dialogue.generate(make_dialogue.DEFAULT_SEED, N_CONVERSATIONS,
                                            name_order_phrasings=name_order_phrasings,
                                            wide_phrasings=wide_phrasings)
    return sha256_lines(lines)


def sha256_lines(lines) -> str:
    """The SHA-256 of the file make_dialogue.write_lines makes of `lines`."""
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode("utf-8") + b"\n")
    return h.hexdigest()


def base_corpus_record() -> dict:
    sha = sha256_file(CORPUS_BASE) if CORPUS_BASE.is_file() else None
    return {"file": portable(str(CORPUS_BASE), ROOT), "phases": f"steps 1 to {EXTEND_TO:,}",
            "options": "--no-name-order-phrasings", "sha256": sha,
            "matches_generator": sha is not None and sha == sha256_generated(False)}


def phase4_record(run: Path) -> dict | None:
    """How phase 4 started (None for a run that is not a phase 4), with phase 3's corpus."""
    path = run / PHASE4_START
    if not path.is_file():
        return None
    start = json.loads(path.read_text())
    sha = sha256_file(CORPUS) if CORPUS.is_file() else None
    its = start.get("its_build") or {}
    return {
        "started_from": start.get("folder"),
        "started_from_weights_sha256": start.get("weights_sha256"),
        "started_from_stored_dtype": start.get("stored_dtype"),
        # --layers: the start model was grown to this many blocks (grow) before phase 4.
        "grown_to_layers": start.get("grown_to_layers"),
        # Whether this script also trained phases 1 to 3 (from runs/default-build), and, when
        # it started from an exported model, that model's own record of how it was made.
        # A start model that is itself a phase 4 (a chain of them) was not: the command that
        # rebuilds this one starts from that model.
        "phases_1_to_3_trained_by_this_script": bool(start.get("is_phase_3_run"))
        or (its.get("trained_by_this_script") is True and not its.get("phase4")),
        # A start that is a mean of models (--average) keeps its command and its members.
        "phases_1_to_3_build": {k: its.get(k) for k in (
            "run", "trained_by_this_script", "recipe_matches", "steps", "best_val_loss",
            "corpus", "git", "exported", "phase4") + (("command", "average") if "average" in its
                                                      else ())} if its else None,
        "phase_3_corpus": {"file": portable(str(CORPUS), ROOT),
                           "phases": f"steps {EXTEND_TO + 1:,} to {FINAL_STEPS:,}",
                           "sha256": sha,
                           "matches_generator": sha is not None and sha == sha256_generated()},
    }


def portable(p: str, run: Path) -> str:
    """A path as the records keep it: relative to the checkout, else only its last part (no
    home folders or temporary paths in the package). Relative paths are read from the run."""
    q = Path(p)
    q = (q if q.is_absolute() else run / q).resolve()
    try:
        return str(q.relative_to(ROOT))
    except ValueError:
        return f"<outside the checkout>/{q.name}"


def run_outcome(run: Path) -> dict:
    """How the run ended, from the last 'end' event in its metrics log."""
    from charchat import store

    end = {}
    for ev in store.read_metrics(run):
        if ev.get("kind") == "end":
            end = ev
    return {"stop_reason": end.get("stop_reason") or "unfinished", "steps": end.get("step")}


COMPLETE = ("max_steps", "early_stopping", "step_cap", "time_budget")


VAL_WINDOWS = 64  # validation windows the export measures float16 storage on


def first_val_windows(corpus_file: Path, tokenizer, block_size: int):
    """The first VAL_WINDOWS windows of a corpus file's validation split, as the trainer
    splits it."""
    from charchat.corpus import load_corpus

    corpus = load_corpus([str(corpus_file)], tokenizer=tokenizer)
    return corpus.val_ids[: VAL_WINDOWS * block_size + 1]


def windows_loss(model, val) -> float:
    import torch

    from charchat.evaluate import val_loss

    return val_loss(model, val, torch.device("cpu"), None)["val_loss"]


def ship(tmp: Path, dest: Path, build: dict, meta: dict) -> int:
    """Finish the export folder tmp (its build.json, and meta.json from `meta` with the
    package's name and sampling), check its size against the package limit and put it in
    dest's place; returns its size. tmp is removed if anything fails."""
    from charchat import store

    try:
        store.atomic_write_json(tmp / "build.json", build)
        store.atomic_write_json(tmp / "meta.json", {
            **meta, "name": store.BUNDLED_NAME, "sampling": SAMPLING,
            "corpus": "conversations made by corpora/make_dialogue.py"})
        for f in tmp.iterdir():
            f.chmod(0o644)  # atomic writes make private files; these ship to everyone
        size = sum(f.stat().st_size for f in tmp.iterdir())
        if size > SIZE_LIMIT:
            raise SystemExit(f"the exported model is {size / 1e6:.1f} MB, over the "
                             f"{SIZE_LIMIT / 1e6:.0f} MB limit; nothing was replaced")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    install(tmp, dest)
    return size


def install(tmp: Path, dest: Path) -> None:
    """Put a finished export folder in dest's place; the previous model stays if this fails."""
    old = dest.with_name(dest.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        os.replace(dest, old)
    try:
        os.replace(tmp, dest)
    except BaseException:
        if old.exists():
            os.replace(old, dest)  # put the previous model back
        raise
    shutil.rmtree(old, ignore_errors=True)


def export(dest: Path, run: Path, allow_partial: bool = False) -> dict:
    import torch

    from charchat import store
    from charchat.config import TrainConfig

    outcome = run_outcome(run)
    if outcome["stop_reason"] not in COMPLETE and not allow_partial:
        raise SystemExit(f"{run}: the run ended with {outcome['stop_reason']!r}, not a finished "
                         "schedule; nothing was exported (--allow-partial exports it anyway)")
    model, tokenizer, info = store.read_weights(run / store.WEIGHTS)
    meta = store.read_meta(run)
    args = json.loads((run / "train_args.json").read_text())
    config = args.get("config", {})
    # Settings as the trainer reads them (a run saved before a setting existed gets the value
    # it was trained with), for comparing with the recipe.
    full_config = TrainConfig.from_dict(config).to_dict()
    corpus_paths = args.get("corpus_paths", [])
    trained_on = next((Path(p) for p in corpus_paths if Path(p).is_file()), None)
    phase4 = phase4_record(run)
    recipe = {**TRAIN, **PHASE4} if phase4 else {**TRAIN, "max_steps": FINAL_STEPS}
    if phase4 and phase4.get("grown_to_layers"):
        recipe["n_layer"] = phase4["grown_to_layers"]

    tmp = dest.with_name(dest.name + ".new")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        store.save_model(tmp, model, tokenizer, {**info, "stored_dtype": "float16"},
                         dtype=torch.float16)
        for name in ("config.json", "tokenizer.json"):
            shutil.copy(run / name, tmp / name)
        args["corpus_paths"] = [portable(p, run) for p in corpus_paths]
        store.atomic_write_json(tmp / "train_args.json", args)
        summary = json.loads((run / "corpus.json").read_text())
        summary["files"] = [portable(p, run) for p in summary.get("files", [])]
        store.atomic_write_json(tmp / "corpus.json", summary)
        with open(tmp / "metrics.jsonl", "w", encoding="utf-8") as out:
            for ev in store.read_metrics(run):
                if isinstance(ev.get("start"), dict) and "folder" in ev["start"]:
                    ev["start"]["folder"] = portable(ev["start"]["folder"], run)
                if isinstance(ev.get("message"), str):  # e.g. "saved in /home/...": strip it
                    for where in {str(run), str(run.resolve())}:
                        ev["message"] = ev["message"].replace(where, portable(where, run))
                out.write(json.dumps(ev) + "\n")

        # What float16 storage costs, on the first validation windows of the training file.
        fp16 = None
        if trained_on is not None:
            val = first_val_windows(trained_on, tokenizer, model.config.block_size)
            half, _, _ = store.read_weights(tmp / store.WEIGHTS)
            fp16 = {"float32": round(windows_loss(model, val), 5),
                    "float16": round(windows_loss(half, val), 5), "windows": VAL_WINDOWS}

        corpus_sha = sha256_file(trained_on) if trained_on is not None else None
        command = "python corpora/build_default.py"
        if phase4 and not phase4["phases_1_to_3_trained_by_this_script"]:
            command += f" --phase4-from {phase4['started_from']}"
        if phase4 and phase4.get("grown_to_layers"):
            command += f" --layers {phase4['grown_to_layers']}"
        build = {
            "command": command,
            "run": portable(str(run), run),
            # False when the run was trained elsewhere (e.g. `charchat train` with the same
            # settings) and only exported here; recipe_matches says whether the recipe agrees.
            # For a phase 4, this is about phase 4 (see phase4 for the phases before it).
            "trained_by_this_script": run.resolve() in (RUN.resolve(), RUN_WIDE.resolve()),
            "recipe_matches": all(full_config.get(k) == v for k, v in recipe.items()),
            "config": config,
            "corpus": {
                "generator": "corpora/make_dialogue.py", "seed": make_dialogue.DEFAULT_SEED,
                "conversations": N_CONVERSATIONS,
                "file": portable(str(trained_on), run) if trained_on else None,
                "sha256": corpus_sha,
                "options": "--wide-phrasings" if phase4 else None,
                "matches_generator": corpus_sha is not None and corpus_sha == sha256_generated(
                    wide_phrasings=bool(phase4)),
            },
            "phase4": phase4,
            # The last phase's file is the one train_args.json names; the earlier phases read
            # the base file, checked here if it is on disk.
            "first_phases_corpus": base_corpus_record(),
            "device": args.get("device"),
            "stop_reason": outcome["stop_reason"],
            "steps": outcome["steps"],
            "best_step": meta.get("best_step"),
            "best_val_loss": meta.get("best_val_loss"),
            "float16_val_loss": fp16,
            **where_built(),
        }
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size = ship(tmp, dest, build, {k: meta[k] for k in (
        "params", "best_val_loss", "best_step", "corpus_kind", "created", "updated", "device")
        if k in meta})
    delta = f"{fp16['float16'] - fp16['float32']:+.5f}" if fp16 else "not measured"
    log(f"exported to {portable(str(dest), dest)}: {size / 1e6:.2f} MB, stopped by "
        f"{outcome['stop_reason']} at step {outcome['steps']}, best val "
        f"{meta.get('best_val_loss'):.4f} at step {meta.get('best_step')}; float16 changes the "
        f"loss by {delta}")
    return build


# What an averaged model takes from its last member: the records of how that one was trained
# (the app shows its curves); build.json lists every member with its own record.
MEMBER_RECORDS = ("config.json", "tokenizer.json", "train_args.json", "corpus.json",
                  "metrics.jsonl")


def average(dest: Path, members: list[Path], labels: list[str]) -> dict:
    """Export the mean of the weights of the models in `members` (model folders of one shape
    and vocabulary, as this script exports them; labels: how build.json names them).

    Measured (session 23): the mean of the tenth and twelfth tries answers five of the seven
    blind sets, and sets 4 to 7 pooled, better than either does alone, and the mean of the
    tenth, twelfth and thirteenth answers the eighth (first scored to confirm it) better than
    the mean of two (benchmarks/README.md). Models of one chain of phases 4 appear to have their
    weights in one basin; the mean of the twelfth and a phase 4 trained separately from phase 3 was
    worse than the twelfth. The mean's validation loss, and each member's,
    are measured on the first windows of today's wide corpus (made again if it is stale)."""
    import torch

    from charchat import store

    if len(members) < 2:
        raise SystemExit("--average needs two model folders or more")
    loaded, builds, hashes = [], [], []
    for i, (folder, label) in enumerate(zip(members, labels, strict=True)):
        if folder.resolve() in [f.resolve() for f in members[:i]]:
            raise SystemExit(f"{label}: named twice; each member is counted once")
        if folder.resolve() == dest.resolve():
            raise SystemExit(f"{label}: the folder the mean replaces; copy it elsewhere first "
                             "(e.g. runs/) and name the copy")
        if not (folder / store.WEIGHTS).is_file():
            raise SystemExit(f"{label}: no model to average (no {store.WEIGHTS} in it)")
        # Its records are copied into the package: only this script's exports have them
        # without the build machine's paths, and a mean without its members' records could
        # not be rebuilt.
        builds.append(store.read_description(folder, "build.json"))
        if not builds[-1]:
            raise SystemExit(f"{label}: no readable build.json; only models exported by this "
                             "script can be averaged")
        hashes.append(sha256_file(folder / store.WEIGHTS))
        if hashes[-1] in hashes[:-1]:
            raise SystemExit(f"{label}: the same weights as "
                             f"{labels[hashes.index(hashes[-1])]}; each member is counted once")
        try:
            loaded.append(store.read_weights(folder / store.WEIGHTS))
        except store.StoreError as e:
            raise SystemExit(str(e)) from None
    model, tokenizer, _ = loaded[0]
    for (other, vocabulary, _), label in zip(loaded[1:], labels[1:]):
        if other.config.to_dict() != model.config.to_dict():
            raise SystemExit(f"{label}: its network has another shape than {labels[0]}'s; "
                             "only models of one shape can be averaged")
        if vocabulary.to_json() != tokenizer.to_json():
            raise SystemExit(f"{label}: its vocabulary differs from {labels[0]}'s; only "
                             "models of one vocabulary can be averaged")
    generated = make_corpus(("wide",), keep_current=True)["wide"]
    val = first_val_windows(CORPUS_WIDE, tokenizer, model.config.block_size)
    member_losses = [windows_loss(m, val) for m, _, _ in loaded]
    states = [m.state_dict() for m, _, _ in loaded]
    mean = {k: (torch.stack([sd[k].float() for sd in states]).mean(0) if v.is_floating_point()
                else v) for k, v in states[0].items()}
    model.load_state_dict(mean)  # the first member's model, now holding the mean
    loss = windows_loss(model, val)

    last = members[-1]
    tmp = dest.with_name(dest.name + ".new")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        kind = {k: loaded[-1][2][k] for k in ("corpus_kind",) if k in loaded[-1][2]}
        store.save_model(tmp, model, tokenizer,
                         {**kind, "stored_dtype": "float16", "averaged_from": labels},
                         dtype=torch.float16)
        for name in MEMBER_RECORDS:
            if (last / name).is_file():
                shutil.copy(last / name, tmp / name)
        half, _, _ = store.read_weights(tmp / store.WEIGHTS)
        corpus_sha = sha256_file(CORPUS_WIDE)
        build = {
            "command": "python corpora/build_default.py --average " + " ".join(labels),
            "average": {
                "of": "the members' weights read as float32, each counted once",
                "members": [{"folder": label, "weights_sha256": sha, "val_loss": round(l, 5),
                             "build": b}
                            for label, sha, l, b in zip(labels, hashes, member_losses, builds,
                                                        strict=True)],
                "records_from": labels[-1],
            },
            # Not trained on here: the file the validation losses above and below are
            # measured on. Each member's build says what it was trained on.
            "corpus": {
                "generator": "corpora/make_dialogue.py", "seed": make_dialogue.DEFAULT_SEED,
                "conversations": N_CONVERSATIONS, "file": portable(str(CORPUS_WIDE), ROOT),
                "sha256": corpus_sha, "options": "--wide-phrasings",
                "matches_generator": corpus_sha == generated,
            },
            "best_val_loss": round(loss, 5),
            "float16_val_loss": {"float32": round(loss, 5),
                                 "float16": round(windows_loss(half, val), 5),
                                 "windows": VAL_WINDOWS},
            **where_built(),
        }
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    meta = store.read_meta(last)
    size = ship(tmp, dest, build, {
        **{k: meta[k] for k in ("params", "corpus_kind", "created", "device") if k in meta},
        "best_val_loss": round(loss, 5), "updated": time.time()})
    log(f"exported to {portable(str(dest), dest)}: {size / 1e6:.2f} MB, the mean of "
        f"{len(members)} models; validation loss {loss:.4f} (members: "
        + ", ".join(f"{l:.4f}" for l in member_losses) + ")")
    return build


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resume", action="store_true", help="continue an interrupted build")
    ap.add_argument("--export-only", action="store_true",
                    help="export a trained run again without training")
    ap.add_argument("--run", type=Path, default=None,
                    help="with --export-only: the trained model folder to export "
                         "(default runs/default-build-wide)")
    ap.add_argument("--phase4-from", type=Path, default=None, metavar="FOLDER",
                    help="train only phase 4, from the model in FOLDER (e.g. charchat/data/default "
                         "or runs/default-build), then export it")
    ap.add_argument("--layers", type=int, default=None, metavar="N",
                    help="with --phase4-from: grow the start model to N layers first (each new "
                         "layer starts as a copy of the one before it that adds nothing)")
    ap.add_argument("--average", nargs="+", type=Path, default=None, metavar="FOLDER",
                    help="export the mean of the weights of these models (two or more, of one "
                         "shape and vocabulary) instead of training")
    ap.add_argument("--allow-partial", action="store_true",
                    help="export a run that was stopped before its schedule ended")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, ... (default auto)")
    args = ap.parse_args(argv)
    if args.run is not None and not args.export_only:
        ap.error("--run is only used with --export-only")
    if args.phase4_from is not None and args.export_only:
        ap.error("--phase4-from trains: it is not used with --export-only")
    if args.layers is not None and (args.phase4_from is None or args.resume):
        ap.error("--layers is only used with --phase4-from, when a phase 4 starts (a resumed "
                 "run keeps the layers it started with)")
    if args.average is not None and (args.phase4_from or args.export_only or args.resume
                                     or args.allow_partial):
        ap.error("--average trains nothing: it is used alone")

    from charchat import store

    dest = store.bundled_dir()
    if args.average is not None:
        average(dest, [f.resolve() for f in args.average],
                [portable(str(f.resolve()), ROOT) for f in args.average])
        return 0
    run = args.run or RUN_WIDE
    if args.phase4_from is not None:
        start = args.phase4_from.resolve()
        if not (start / store.WEIGHTS).exists():
            raise SystemExit(f"{args.phase4_from}: no model to start phase 4 from")
        if start == dest.resolve():
            # Exporting replaces that folder: train from a copy of it.
            copy = RUN_WIDE.with_name(RUN_WIDE.name + "-start")
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(start, copy)
            start = copy
        if (RUN_WIDE / PHASE4_START).exists() and not args.resume:
            raise SystemExit(f"{RUN_WIDE.relative_to(ROOT)} already holds a phase 4: use "
                             "--resume to continue it, --export-only to export it, or delete it")
        resume = args.resume and (RUN_WIDE / store.STATE).exists()
        wide_corpus_current(resume)
        if train_phase4(start, args.device, resume, portable(str(args.phase4_from), ROOT),
                        layers=args.layers) not in COMPLETE:
            log("not exported: run again with --resume to continue, or with --export-only "
                "--allow-partial to ship the best model so far")
            return 1
    elif not args.export_only:
        if not args.resume and (RUN / store.WEIGHTS).exists():
            raise SystemExit(f"{RUN.relative_to(ROOT)} already holds a build: use --resume to "
                             "continue it, --export-only to export it, or delete it")
        if args.resume and not (RUN / store.STATE).exists():
            raise SystemExit(f"{RUN.relative_to(ROOT)}: no interrupted build to resume")
        if not all(p.exists() for p, _, _ in corpus_files().values()) or not args.resume:
            make_corpus()
        # Phases 1 to 3 are done once RUN_WIDE exists: resuming goes on with phase 4.
        in_phase4 = args.resume and (RUN_WIDE / PHASE4_START).exists()
        stop = "max_steps" if in_phase4 else train(args.resume, args.device)
        if stop in COMPLETE:
            stop = train_phase4(RUN, args.device,
                                resume=in_phase4 and (RUN_WIDE / store.STATE).exists())
        if stop not in COMPLETE:
            log("not exported: run again with --resume to continue, or with --export-only "
                "--allow-partial to ship the best model so far")
            return 1
    if not (run / store.WEIGHTS).exists():
        raise SystemExit(f"{run}: no trained model to export")
    export(dest, run, args.allow_partial)
    return 0


if __name__ == "__main__":
    sys.exit(main())
