"""The `charchat` command: a thin layer over the core. With no arguments it opens the app.

Errors print one line, `charchat: error: ...`, and exit with status 1 (2 for bad usage,
130 when training is stopped with Ctrl-C, after the best model has been kept).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
from pathlib import Path

from .config import (COUNT, DEVICE_HELP, SETTING, SETTINGS, ConfigError, TrainingError,
                     flag_of)
from .formatting import corpus_label, fmt_date, fmt_params, fmt_size, fmt_time


class CLIError(Exception):
    code = 1


class UsageError(CLIError):
    """A command or flag used wrongly (exit status 2, as argparse's own errors)."""

    code = 2


def _arg(parse):
    """An argparse type from a parser that raises ValueError with the reason."""
    def convert(text: str):
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    convert.__name__ = getattr(parse, "__name__", "value")  # argparse names it in errors
    return convert


_positive_int = _arg(COUNT.parse)
_device_name = _arg(SETTING["device"].parse)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="charchat",
        description="Train a character-level GPT-2 on your own text and chat with it. "
        "With no command, opens the app.",
    )
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="train a model on text files and folders")
    t.add_argument("paths", nargs="*", metavar="PATH", help="text files, .jsonl chat files, folders")
    t.add_argument("--name", help="model name (default: from the first file's name)")
    lim = t.add_mutually_exclusive_group()
    for name in ("minutes", "max_steps"):
        s = SETTING[name]
        lim.add_argument(s.flag, dest=name, type=_arg(s.parse), help=s.help)
    t.add_argument("--from", dest="start_from", metavar="MODEL",
                   help="start from a saved or imported model's weights (fine-tune: a new model, "
                        "its shape and tokenizer; AdamW at 6e-5, context at most 256 unless set)")
    t.add_argument("--resume", metavar="NAME", help="continue training a saved model (with "
                   "--minutes or --max-steps: that much more; else its schedule goes on)")
    for s in SETTINGS:
        if s.cli:
            # --compile alone means --compile true
            extra = {"nargs": "?", "const": True} if s.name == "compile" else {}
            t.add_argument(s.flag, dest=s.name, type=_arg(s.parse), help=s.help, **extra)
    t.add_argument("--gpus", type=_positive_int, metavar="N",
                   help="train on N GPUs of this machine: starts N processes with torchrun's "
                        "engine (DistributedDataParallel over NCCL; batch size is per process). "
                        "With --device cpu: N processes sharing the CPU (gloo). Several "
                        "machines: run torchrun on each (see the README)")
    t.add_argument("--events", action="store_true", help=argparse.SUPPRESS)  # JSON lines out
    t.add_argument("--request", help=argparse.SUPPRESS)  # a RunRequest as JSON (the app's)
    t.add_argument("--quiet", action="store_true", help="print only the final line")

    s = sub.add_parser("sample", help="generate text from a model (streams to stdout)")
    s.add_argument("--model", default=None, help="model name or folder (default: last used)")
    s.add_argument("--prompt", default="", help="text to continue")
    s.add_argument("--chars", type=_positive_int, default=500,
                   help="characters to generate (a turn marker of a dialogue model counts as one)")
    _add_sampling(s)

    e = sub.add_parser("eval", help="validation loss of a model on the last 10%% of a file, "
                                    "or its HellaSwag accuracy")
    e.add_argument("--model", required=True, help="model name or folder")
    e.add_argument("file", nargs="?", help="text file (its last 10%% is evaluated)")
    e.add_argument("--hellaswag", metavar="FILE", help="HellaSwag's JSONL (e.g. the 10,042-line "
                   "validation file): acc and acc_norm, completion style as llm.c scores it")
    e.add_argument("--limit", type=_positive_int, default=None,
                   help="with --hellaswag: only the first N examples")
    e.add_argument("--device", default="auto", type=_device_name, help=DEVICE_HELP)

    m = sub.add_parser("models", help="list saved models; 'models rm NAME' deletes one")
    m.add_argument("action", nargs="?", choices=["list", "rm", "rename"], default="list")
    m.add_argument("args", nargs="*")
    m.add_argument("--json", action="store_true", help="one JSON object per line")

    k = sub.add_parser("corpus", help="'corpus list' shows corpora; 'corpus get NAME' downloads one")
    k.add_argument("action", choices=["list", "get"])
    k.add_argument("name", nargs="?", help="for get: a name 'corpus list' shows as download")
    k.add_argument("--url", help="download from this mirror instead (the SHA-256 is still checked)")

    i = sub.add_parser("import", help="import OpenAI's GPT-2 weights: 'import gpt2' downloads "
                                      "them (pinned, resumable), --from FILE reads a local file")
    i.add_argument("which", nargs="?", help="gpt2: download the pinned 124M weights (548 MB); "
                   "gpt2-medium, gpt2-large, gpt2-xl: not pinned, their hash is shown to accept")
    i.add_argument("--sha256", help="for an unpinned size: the SHA-256 you accept for its file")
    i.add_argument("--from", dest="source", metavar="FILE",
                   help="a GPT-2 model.safetensors (the hub's layout or save_pretrained's) or "
                        "pytorch_model.bin; n_head from a config.json beside it, else from "
                        "GPT-2's known sizes")
    i.add_argument("--url", help="download from this mirror instead (size and SHA-256 are still "
                                 "checked)")
    i.add_argument("--name", default=None,
                   help="the model's name (default: gpt2, gpt2-medium, ... by its size)")

    c = sub.add_parser("chat", help="chat in the terminal")
    c.add_argument("--plain", action="store_true",
                   help="line by line on stdin/stdout; when stdout is not a terminal, each reply "
                        "is one line: line breaks written as escapes (\\n, \\r, ...) and "
                        "backslashes as \\\\")
    c.add_argument("--model", default=None, help="model name or folder")
    c.add_argument("--max-chars", type=_positive_int, default=None, help="longest reply")
    _add_sampling(c)
    return p


def _add_sampling(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temperature", type=float, default=None, help="0 = greedy (default 0.8, or the model's own for chat)")
    p.add_argument("--top-k", type=int, default=None, help="keep the k likeliest characters")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling threshold")
    p.add_argument("--seed", type=int, default=None, help="fixed seed for repeatable output")
    q = p.add_mutually_exclusive_group()
    q.add_argument("--float", dest="weights", action="store_const", const="float",
                   help="read tokens through the exact float weights (slower on a CPU)")
    q.add_argument("--int8", dest="weights", action="store_const", const="int8",
                   help="read tokens through int8 copies of the weights (the default on a CPU)")
    p.add_argument("--device", default="auto", type=_device_name, help=DEVICE_HELP)


def _version() -> str:
    from . import __version__

    return f"charchat {__version__}"


# ---------------------------------------------------------------------------------------------


def cmd_train(args) -> int:
    from . import distributed

    request = _request(args)
    if not request.paths and not request.resume:
        raise UsageError("no corpus given: charchat train FILE_OR_FOLDER... (see --help)")
    if args.gpus and args.gpus > 1 and distributed.env_world() <= 1:
        return _launch(args, request)
    try:
        dist = (distributed.start(request.overrides.get("device"))
                if distributed.env_world() > 1 else None)
    except ValueError as e:
        raise CLIError(str(e)) from None
    return _train(args, request, dist)  # (main() leaves the process group after errors)


def _request(args):
    """The run the command line asks for (or --request's, as the app wrote it)."""
    from .runs import RunRequest

    if args.request:
        try:
            d = json.loads(args.request)
            return RunRequest(**{k: v for k, v in d.items()
                                 if k in RunRequest.__dataclass_fields__})
        except (ValueError, TypeError) as e:
            raise UsageError(f"--request: not a run request ({e})") from None
    return RunRequest(
        paths=args.paths, name=args.name, minutes=args.minutes, max_steps=args.max_steps,
        overrides={s.name: getattr(args, s.name) for s in SETTINGS
                   if s.cli and getattr(args, s.name) is not None},
        resume=args.resume, start_from=args.start_from)


def _launch(args, request) -> int:
    """--gpus N: the same run in N processes (charchat.launch), each given the request."""
    from dataclasses import asdict, replace

    from . import launch, runs

    device = request.overrides.get("device")
    if device is None and request.resume:  # a resumed run keeps its device unless told
        device = runs.saved_settings(request.resume)[0].get("device")
    try:
        device = launch.check(args.gpus, device)
    except launch.LaunchError as e:
        raise (CLIError if e.code == 1 else UsageError)(str(e)) from None
    if not request.resume and request.name is None:
        # One name for every process, chosen once (each would pick the same free one, unless
        # another run took it in between).
        request = replace(request, name=runs.suggest_name(request.paths))
    argv = ["--request", json.dumps(asdict(request))]
    argv += [flag for flag, on in (("--events", args.events), ("--quiet", args.quiet)) if on]
    try:
        return launch.run(args.gpus, argv, device)
    except launch.LaunchError as e:
        raise CLIError(str(e)) from None


def _train(args, request, dist) -> int:
    from rich.console import Console

    from . import runs
    from .corpus import CorpusError
    from .distributed import Dist

    cancel = threading.Event()
    d = dist or Dist()

    class _Console(Console):
        closed = False

        def on_broken_pipe(self) -> None:
            # The reader went away (charchat train ... | head): stop printing and stop the run
            # as Ctrl-C would, so the training state is saved too (rich would exit at once).
            self.quiet = self.closed = True
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except (OSError, ValueError):
                pass  # stdout is not a file here (a test's capture): quiet is enough
            cancel.set()

    console = _Console(stderr=False, highlight=False)
    with d.together():
        plan = runs.plan(request)
    paths = plan.paths
    # Across processes rank 0 speaks for the run; --events: JSON lines for a program to follow.
    quiet = args.quiet or not d.main or args.events
    if not quiet:
        console.print(f"[bold]Reading corpus[/] {' '.join(str(p) for p in paths)}")
    corpus = None
    # Rank 0 reads (and caches) the corpus first; the other ranks then find it in the cache.
    for readers in ((True,), (False,)) if d.on else ((True, False),):
        with d.together():
            if d.main in readers:
                try:
                    with _reading_progress(console, quiet) as progress:
                        corpus = runs.load_corpus(plan, progress)
                except CorpusError as e:
                    raise CLIError(str(e)) from None
    if not quiet:
        for note in corpus.summary.notes[:20]:
            console.print(f"  [dim]note: {note}[/]")
        if len(corpus.summary.notes) > 20:
            console.print(f"  [dim]... and {len(corpus.summary.notes) - 20} more notes[/]")
        console.print(f"  {corpus.summary.describe()}")

    view = _EventLines() if args.events and d.main else _TrainView(console, quiet)
    view.silent = not d.main  # (rank 0 says what the run does, Ctrl-C's note included)
    presses = {"n": 0}

    def on_sigint(signum, frame):
        presses["n"] += 1
        if presses["n"] > 1:
            raise KeyboardInterrupt
        cancel.set()
        # Said from a thread: the handler may run while the main thread is inside the progress
        # display's drawing (its lock is re-entrant there, and the line came out twice).
        threading.Thread(target=view.say, args=(
            "[yellow]Stopping after this step; the best model is kept (Ctrl-C again to "
            "abort).[/]",)).start()

    def on_sigterm(signum, frame):
        # Stop as Ctrl-C does (torchrun's engine passes a stop on as SIGTERM or SIGINT).
        cancel.set()

    old = signal.signal(signal.SIGINT, on_sigint)
    old_term = signal.signal(signal.SIGTERM, on_sigterm)
    # torchrun's engine passes a hang-up on too: a process of several stops as for SIGTERM.
    old_hup = signal.signal(signal.SIGHUP, on_sigterm) if d.on else None
    try:
        with view:
            result = runs.train(plan, view.on_event, cancel, corpus=corpus, dist=dist)
    except runs.Cancelled:
        raise KeyboardInterrupt from None
    except ConfigError:
        raise  # main() words it with the flag
    except (TrainingError, CorpusError, ValueError) as e:
        raise CLIError(str(e)) from None
    finally:
        signal.signal(signal.SIGINT, old)
        signal.signal(signal.SIGTERM, old_term)
        if old_hup is not None:
            signal.signal(signal.SIGHUP, old_hup)
    if not d.main:
        return 130 if result.stop_reason == "cancelled" else int(result.stop_reason == "non_finite")
    if result.best_val_loss is not None:
        _remember_model(result.name, result.path)
    if console.closed:
        kept = f"; the best model is in {result.path}" if result.best_val_loss is not None else ""
        print(f"charchat: output closed: training stopped at step {result.steps}{kept}",
              file=sys.stderr)
        return 1
    if quiet:
        print(result.message)  # one line, never wrapped
    else:
        console.print(f"[bold]Done:[/] {result.message}")
    if result.best_val_loss is not None and not quiet:
        console.print(f"Chat with it:  charchat chat --plain --model {result.name}   (or: charchat)")
    if result.stop_reason == "non_finite":
        return 1
    return 130 if result.stop_reason == "cancelled" else 0


class _EventLines:
    """--events: each TrainEvent as one JSON line on stdout (how the app follows a run that
    trains in other processes)."""

    silent = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def say(self, text: str) -> None:
        pass

    def on_event(self, ev) -> None:
        sys.stdout.write(ev.to_json() + "\n")
        sys.stdout.flush()


class _reading_progress:
    """A bar while the corpus is checked, encoded (or a BPE vocabulary trained), on a terminal:
    a large text takes minutes. Yields the callback for corpus.load_corpus, or None."""

    def __init__(self, console, quiet: bool) -> None:
        self.live = console.is_terminal and not quiet
        self.console = console

    def __enter__(self):
        if not self.live:
            return None
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, \
            TimeRemainingColumn

        self.bar = Progress(TextColumn("  {task.description}"), BarColumn(), DownloadColumn(),
                            TimeRemainingColumn(), console=self.console, transient=True)
        self.bar.__enter__()
        self.tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in self.tasks:
                self.tasks[stage] = self.bar.add_task(stage, total=total)
            self.bar.update(self.tasks[stage], completed=done, total=total)

        return progress

    def __exit__(self, *exc):
        if self.live:
            self.bar.__exit__(*exc)


class _TrainView:
    """Live progress for `charchat train`: a bar on a terminal, plain lines otherwise."""

    def __init__(self, console, quiet: bool) -> None:
        from rich.progress import BarColumn, Progress, TextColumn

        self.console = console
        self.quiet = quiet
        self.live = console.is_terminal and not quiet
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[stats]}"),
            console=console,
            transient=False,
        )
        self.task = None
        self.silent = False  # not even the notes (a training process other than rank 0)
        self.stats = {"step": 0, "loss": None, "val": None, "best": None, "tps": None, "eta": None}

    def __enter__(self):
        if self.live:
            self.progress.__enter__()
            self.task = self.progress.add_task("training", total=1.0, stats="starting")
        return self

    def __exit__(self, *exc):
        if self.live:
            self.progress.__exit__(*exc)

    def say(self, text: str) -> None:
        if self.silent:
            return
        (self.progress.console if self.live else self.console).print(text)

    def _stats(self) -> str:
        s = self.stats
        parts = [f"step {s['step']}"]
        if s["loss"] is not None:
            parts.append(f"loss {s['loss']:.3f}")
        if s["val"] is not None:
            parts.append(f"val {s['val']:.3f} (ppl {math.exp(s['val']):.2f})")
        if s["best"] is not None:
            parts.append(f"best {s['best']:.3f}")
        if s["tps"]:
            parts.append(f"{s['tps'] / 1000:.1f}k tok/s")
        parts.append(f"ETA {fmt_time(s['eta'])}")
        return " | ".join(parts)

    def on_event(self, ev) -> None:
        if self.quiet:
            return
        s = self.stats
        s["step"] = ev.step
        if ev.kind == "start":
            d = ev.start
            c = d.config
            each = f" a process x {d.processes}" if d.processes > 1 else ""
            self.say(
                f"Training [bold]{d.name}[/]: {ev.message}; "
                f"{c['n_layer']} layers, {c['n_head']} heads, {c['n_embd']} wide, "
                f"context {c['block_size']}, batch {c['batch_size']}{each}, lr {c['lr']:g}"
                + (" (resumed)" if d.resumed else "")
            )
            for note in d.notes:
                self.say(f"  [dim]{note}[/]")
        elif ev.kind == "step":
            s["loss"], s["tps"], s["eta"] = ev.train_loss, ev.tokens_per_s, ev.eta
            if s["best"] is None and ev.best_val_loss is not None:
                s["best"] = ev.best_val_loss
        elif ev.kind == "eval":
            s["val"], s["best"] = ev.val_loss, ev.best_val_loss
            mark = " [green]saved[/]" if ev.improved else ""
            bpc = f"  bpc {ev.bpc:.4f}" if ev.bpc is not None else ""
            self.say(
                f"  step {ev.step:>6}  val {ev.val_loss:.4f}  ppl {ev.ppl:7.3f}{bpc}  "
                f"lr {ev.lr:.2e}  {fmt_time(ev.elapsed)}{mark}"
            )
        if self.live and self.task is not None:
            self.progress.update(self.task, completed=ev.progress, stats=self._stats())


def _settings_from(args, chars: int | None = None, base: dict | None = None):
    from .config import SamplingSettings

    d = dict(base or {})
    if args.temperature is not None:
        d["temperature"] = args.temperature
    if args.top_k is not None:
        d["top_k"] = args.top_k
    if args.top_p is not None:
        d["top_p"] = args.top_p
    if args.seed is not None:
        d["seed"] = args.seed
    if chars is not None:
        d["max_new_chars"] = chars
    weights = getattr(args, "weights", None)
    if weights is not None:
        d["quantize"] = None if weights == "float" else "int8"
    try:
        return SamplingSettings(**d)
    except ValueError as e:  # the flags' values: the base was checked when it was saved
        raise UsageError(str(e)) from None


def _load(name: str | None, device: str):
    from . import runs, store
    from .device import pick_device

    name = runs.model_to_open(name)
    if name is None:
        raise CLIError(
            "no model found: the bundled default model is missing from this install "
            f"({store.bundled_dir()}); reinstall charchat, or train one with "
            "'charchat train FILE --minutes 5' and use --model NAME")
    try:
        dev = pick_device(device)
    except ValueError as e:
        raise CLIError(str(e)) from None
    return store.load_model(name, dev.device), dev


def cmd_sample(args) -> int:
    from .chat import prompt_ids, unknown_list
    from .generation import stream_text

    settings = _settings_from(args, args.chars)
    loaded, dev = _load(args.model, args.device)
    tok = loaded.tokenizer
    prompt = _clean_text(args.prompt)
    ids, unknown = prompt_ids(tok, prompt, turns=loaded.kind != "prose")
    if unknown:
        print(f"charchat: note: the model never saw {unknown_list(prompt, unknown)}; "
              "replaced or left out", file=sys.stderr)
    out = sys.stdout
    out.write(prompt)
    out.flush()
    try:
        for piece in stream_text(loaded.model, tok, ids, settings, (), dev.amp_dtype,
                                 show_turns=loaded.kind != "prose"):
            out.write(piece)
            out.flush()
    except KeyboardInterrupt:
        pass
    out.write("\n")
    out.flush()
    _remember_model(loaded.name, loaded.path)
    return 0


def _clean_text(text: str) -> str:
    """Text from the command line or a pipe as the corpus reader would have made it: bytes
    that are not UTF-8 (surrogate escapes) become U+FFFD, and line ends become \\n."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def cmd_eval(args) -> int:
    from . import runs
    from .corpus import CorpusError

    if bool(args.file) == bool(args.hellaswag):
        raise UsageError("usage: charchat eval --model NAME FILE | --hellaswag FILE "
                         "(one or the other)")
    if args.limit and not args.hellaswag:
        raise UsageError("--limit goes with --hellaswag")
    loaded, dev = _load(args.model, args.device)
    if args.hellaswag:
        from . import hellaswag

        def progress(done: int, total: int) -> None:
            if sys.stderr.isatty():
                print(f"\r  HellaSwag: {done:,}/{total:,}", end="", file=sys.stderr, flush=True)

        try:
            r = hellaswag.evaluate(loaded.model, loaded.tokenizer, Path(args.hellaswag),
                                   dev.device, dev.amp_dtype, progress, args.limit)
        except hellaswag.HellaSwagError as e:
            raise CLIError(str(e)) from None
        if sys.stderr.isatty():
            print(file=sys.stderr)
        print(json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()}))
        return 0
    try:
        r = runs.evaluate_file(loaded, args.file, dev.device, dev.amp_dtype)
    except CorpusError as e:
        raise CLIError(str(e)) from None
    print(json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()}))
    return 0


def cmd_models(args) -> int:
    from . import modelops, store

    if args.action == "rm":
        if len(args.args) != 1:
            raise UsageError("usage: charchat models rm NAME")
        path = modelops.delete(args.args[0])
        print(f"deleted {args.args[0]} ({path})")
        return 0
    if args.action == "rename":
        if len(args.args) != 2:
            raise UsageError("usage: charchat models rename OLD NEW")
        modelops.rename(*args.args)
        print(f"renamed {args.args[0]} to {args.args[1]}")
        return 0
    models = store.list_models(include_bundled=True)
    if args.json:
        for m in models:
            print(json.dumps({"name": m.name, "path": str(m.path), "params": m.params,
                              "best_val_loss": m.best_val_loss, "best_bpc": m.best_bpc,
                              "tokenizer": m.tokenizer, "corpus": m.corpus,
                              "updated": m.updated, "size_bytes": m.size_bytes,
                              "bundled": m.bundled, "training": m.training is not None}))
        return 0
    if not models:
        print(f"no models in {store.models_dir()}, and the bundled default is missing from this "
              "install; train one: charchat train FILE --minutes 5")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    # "bpc": the best validation loss in bits per character of the text, the scale on which
    # models of different tokenizers compare ("best val" is per token).
    for col in ("name", "params", "best val", "bpc", "corpus", "updated", "size"):
        table.add_column(col, no_wrap=col != "corpus")  # on a narrow screen the corpus wraps
    for m in models:
        table.add_row(
            m.name + (" (bundled)" if m.bundled else "")
            + (" (training)" if m.training is not None else ""),
            fmt_params(m.params),
            f"{m.best_val_loss:.4f}" if m.best_val_loss is not None else "?",
            f"{m.best_bpc:.4f}" if m.best_bpc is not None else "?",
            (corpus_label(m.corpus_summary) if m.corpus_summary else m.corpus)
            + (f", {m.tokenizer}" if m.tokenizer != "char" else ""),
            fmt_date(m.updated),
            fmt_size(m.size_bytes),
        )
    Console().print(table)
    return 0


def cmd_import(args) -> int:
    from . import gpt2import

    if bool(args.which) == bool(args.source):
        raise UsageError("usage: charchat import gpt2 | charchat import --from FILE "
                         "(one or the other)")
    if args.url and not args.which:
        raise UsageError("--url goes with a download: charchat import gpt2 --url URL")

    def progress(stage: str, done: int, total: int) -> None:
        if sys.stderr.isatty():
            amount = (f"{fmt_size(done)} of {fmt_size(total)}" if stage == "downloading"
                      else f"{done}/{total} tensors")
            print(f"\r  {stage}: {amount}   ", end="", file=sys.stderr, flush=True)

    try:
        if args.which in gpt2import.UNPINNED:
            def confirm(sha: str) -> bool:
                if not sys.stdin.isatty():
                    return False
                print(f"\n{args.which} has no pinned hash in charchat. Its model.safetensors "
                      f"has SHA-256\n  {sha}\nCompare it with the one the hub shows.",
                      file=sys.stderr)
                return input("Import it? [y/N] ").strip().lower() in ("y", "yes")

            folder = gpt2import.import_unpinned(args.which, args.name, args.url, progress,
                                                args.sha256, confirm)
        elif args.which:
            if args.sha256:
                raise UsageError(f"--sha256 is for the unpinned sizes; {args.which} is pinned")
            folder = gpt2import.import_pinned(args.which, args.name, args.url, progress)
        else:
            folder = gpt2import.import_file(args.source, args.name,
                                            lambda d, t: progress("importing", d, t))
    except gpt2import.ImportFailed as e:
        raise CLIError(str(e)) from None
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(f"imported as {folder.name} ({folder}); chat with it: charchat chat --plain "
          f"--model {folder.name}")
    return 0


def cmd_corpus(args) -> int:
    from . import catalog

    if args.action == "list":
        if args.name or args.url:
            raise UsageError("usage: charchat corpus list (no name: it lists them all)")
        for e in catalog.list_corpora():
            where = str(e.path) if e.path else ("not downloaded: charchat corpus get " + e.name
                                                 if e.kind == "download" else "not generated")
            print(f"{e.name:<16} {e.kind:<9} {e.description}\n{'':<27}{where}")
        return 0
    if not args.name:
        raise UsageError("usage: charchat corpus get NAME (see 'charchat corpus list')")

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\r  {done / 1e6:.1f} of {total / 1e6:.1f} MB", end="", file=sys.stderr, flush=True)

    try:
        path = catalog.fetch(args.name, url=args.url, progress=progress)
    except catalog.CatalogError as e:
        raise CLIError(str(e)) from None
    finally:
        if sys.stderr.isatty():
            print(file=sys.stderr)
    print(f"{path}\ntrain on it: charchat train {path} --minutes 5")
    return 0


# Every character str.splitlines() breaks at, and the backslash that starts an escape.
_LINE_ESCAPES = str.maketrans({
    "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\v": "\\v", "\f": "\\f",
    "\x1c": "\\x1c", "\x1d": "\\x1d", "\x1e": "\\x1e", "\x85": "\\x85",
    "\u2028": "\\u2028", "\u2029": "\\u2029",
})


def _one_line(text: str) -> str:
    """A reply as part of one output line: line breaks written as Python-style escapes
    (newline as the two characters \\n) and backslashes doubled."""
    return text.translate(_LINE_ESCAPES)


def cmd_chat(args) -> int:
    if not args.plain:
        # The app keeps its sampling settings per model (ctrl+s there): flags would be ignored.
        given = [flag for flag, value in (
            ("--temperature", args.temperature), ("--top-k", args.top_k), ("--top-p", args.top_p),
            ("--seed", args.seed), ("--max-chars", args.max_chars),
            (f"--{args.weights}", args.weights),
            ("--device", None if args.device == "auto" else args.device),
        ) if value is not None]
        if given:
            print(f"charchat: error: without --plain, chat opens the app, which ignores "
                  f"{', '.join(given)}; add --plain, or use ctrl+s in the app for temperature, "
                  "top-k, top-p and length", file=sys.stderr)
            return 2  # bad usage
        return run_app(args.model)
    from .chat import ChatSession

    from . import preferences

    _settings_from(args, args.max_chars)  # bad flags fail before the model loads
    loaded, dev = _load(args.model, args.device)
    # The settings the app uses for this model (yours, else the model's own), under the flags.
    settings = _settings_from(
        args, args.max_chars, preferences.sampling_for(loaded.name, loaded.meta.get("sampling") or {})
    )
    session = ChatSession.from_loaded(
        loaded, settings, on_notice=lambda msg: print(f"note: {msg}", file=sys.stderr)
    )
    try:  # a stray non-UTF-8 byte in the input must not end the chat with a traceback
        sys.stdin.reconfigure(errors="surrogateescape")  # _clean_text turns them into U+FFFD
    except (AttributeError, ValueError):
        pass  # not a text stream that can be reconfigured (a test's stand-in)
    interactive = sys.stdin.isatty()
    # For a script, one line in gives one line out: a prose model's reply may hold newlines
    # (it ends at a blank line), which would make a reply's end impossible to tell apart.
    one_line = not sys.stdout.isatty()
    if interactive:
        print(f"charchat: chatting with {loaded.name} on {dev.label}. Empty line or Ctrl-D quits.",
              file=sys.stderr)
    _remember_model(loaded.name, loaded.path)
    while True:
        if interactive:
            print("> ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line:
            break
        text = _clean_text(line).rstrip("\n")
        if not text.strip():
            if interactive:
                break
            continue
        try:
            for piece in session.stream_reply(text):
                sys.stdout.write(_one_line(piece) if one_line else piece)
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass
        sys.stdout.write("\n")
        sys.stdout.flush()
    return 0


def run_app(model: str | None = None) -> int:
    try:
        from .tui.app import run
    except ImportError as e:
        if "charchat.tui" not in str(e) and "tui" not in str(e):
            raise
        print("charchat: the app is not installed in this build; use 'charchat chat --plain' "
              "or see 'charchat --help'", file=sys.stderr)
        return 1
    return run(model)


def _remember_model(name: str, folder: Path) -> None:
    from .preferences import remember_model

    remember_model(name, folder)  # a convenience: never fails a command


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .distributed import PeerLost, QuietExit, current
    from .store import StoreError

    handlers = {"train": cmd_train, "sample": cmd_sample, "eval": cmd_eval,
                "models": cmd_models, "chat": cmd_chat, "corpus": cmd_corpus,
                "import": cmd_import}
    clean = False
    try:
        if args.command is None:
            return run_app()
        code = handlers[args.command](args)
        clean = True
        return code
    except QuietExit as e:
        return e.code  # another process of the run said why
    except PeerLost as e:  # a training process gone before training began
        d = current()
        if d is None or d.says_lost():
            print(f"charchat: error: {_rank()}training stopped: {e}", file=sys.stderr)
        return 1
    except ConfigError as e:
        print(f"charchat: error: {_rank()}{_config_message(e, args)}", file=sys.stderr)
        return e.code
    except (CLIError, StoreError) as e:
        print(f"charchat: error: {_rank()}{e}", file=sys.stderr)
        return getattr(e, "code", 1)
    except KeyboardInterrupt:
        print("charchat: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as e:  # e.g. a data folder that cannot be written: the path and why
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        reason = e.strerror.lower() if e.strerror else str(e)  # "Not a directory" -> lower
        print(f"charchat: error: {_rank()}{where}{reason}", file=sys.stderr)
        return 1
    finally:
        # A training process of several leaves the group last: the ranks wait there for each
        # other, so a rank that fails quietly does not end before the one saying why has.
        d = current()
        if d is not None:
            sys.stderr.flush()
            d.finish(clean)


def _rank() -> str:
    """'rank N: ' in a training process other than rank 0 (rank 0 speaks for the run)."""
    from .distributed import current

    d = current()
    return f"rank {d.rank}: " if d is not None and d.rank > 0 else ""


def _config_message(e: ConfigError, args) -> str:
    """A ConfigError as the command line words it: a flag's own errors start with the flag."""
    from .runs import NameTaken

    if isinstance(e, NameTaken):
        return (f"{e.reason}; use --resume {e.name} to continue it, another --name, or "
                "'charchat models rm' first")
    if e.field in SETTING or (e.field == "name" and e.code == 2):
        return f"{flag_of(e.field)}: {e.reason}"
    return e.reason  # a name that is taken, a path: the reason names it


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
