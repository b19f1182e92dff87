"""What a run and a reply are set up with, and what comes back: settings, events, results, errors.

A leaf of the package (standard library only): the command line, the app, the use cases
(charchat.runs) and the core all import it, and importing it costs nothing (no torch).

Every training setting is declared once, on its TrainConfig field, with its help, its range and
the parser for typed text (`Setting`). `charchat train`'s flags and the training form's fields
are built by looping over `SETTINGS`; a value out of range raises `ConfigError(field, reason)`,
which the command line prints as `--flag: reason` and the form shows at the field.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

# ---------------------------------------------------------------------------------------------
# Errors


class ConfigError(ValueError):
    """A setting that cannot be used. `field` is the TrainConfig field (or "name", "paths"),
    `reason` the one-line why without the setting's name. `code` is the command line's exit
    status: 2 for a value that is malformed (bad usage), 1 for one that is well formed but
    cannot be used here (a name that is taken, say)."""

    def __init__(self, field: str, reason: str, code: int = 1) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason, self.code = field, reason, code

    @property
    def flag(self) -> str:
        return flag_of(self.field)


class TrainingError(Exception):
    """Training could not start or go on. The message is one line."""


class CorpusError(ValueError):
    """A problem with the training text. The message is one line naming the file and reason."""


def flag_of(name: str) -> str:
    return "--" + name.replace("_", "-")


def label_of(name: str) -> str:
    """A setting's name as the form labels it (and as messages name another setting)."""
    return name.replace("_", "-")


# ---------------------------------------------------------------------------------------------
# One setting: help, range, parser


DEVICE_HELP = "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps"
DEVICE_RE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
OPTIMIZERS = ("muon", "adamw")
TOKENIZER_RE = re.compile(r"char|gpt2|bpe:\d+")
BPE_RANGE = (260, 262_144)  # bpe:N: the 256 bytes plus N - 256 merges (charchat.bpe)
TOKENIZER_HELP = (
    "char (the default: one token a character, the vocabulary your text's), bpe:N (N tokens "
    "learned from your text; a context then holds more text, ~3.6x with bpe:4096: on 1 MB of "
    "Shakespeare on a 2-core CPU, bpe:4096 reached 0.10-0.16 fewer bits per character than "
    "char in 100 s and in 10 minutes) or gpt2 (GPT-2's 50,257 tokens: the one for GPT-2's own "
    "weights; from scratch on a CPU its 50k-row embedding costs more than it gives)")


def tokenizer_problem(value: str) -> str | None:
    """Why a well-formed --tokenizer value cannot be used (bpe:N out of range), or None."""
    if value.startswith("bpe:"):
        n = int(value[4:])
        lo, hi = BPE_RANGE
        if not lo <= n <= hi:
            return f"bpe:N needs N from {lo} to {hi:,} (the 256 bytes included), got {n}"
    return None


@dataclass(frozen=True)
class Setting:
    """The rules of one TrainConfig field. kind: int, float, bool, str. A float range is
    [low, high] with either end open; ints are whole numbers in [low, high]."""

    name: str
    help: str
    kind: type
    low: float | None = None
    low_open: bool = False
    high: float | None = None
    high_open: bool = False
    choices: tuple[str, ...] = ()
    pattern: re.Pattern | None = None  # what a str value must match in full
    check: object = None  # a further rule for a str value: value -> reason or None
    usage: str = ""  # the values, shorter than help, for the message on an unknown one
    cli: bool = True  # a flag of `charchat train`
    form: bool = True  # a field of the training form's advanced section
    shape: bool = False  # fixed once a model has been trained: resuming cannot change it

    @property
    def flag(self) -> str:
        return flag_of(self.name)

    @property
    def label(self) -> str:
        return label_of(self.name)

    def parse(self, text: str):
        """Typed text to a value; ValueError with the reason (not naming the setting)."""
        t = text.strip()
        if self.kind is bool:
            if t.lower() in ("1", "true", "yes", "on"):
                return True
            if t.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"expected true or false, got {text!r}")
        if self.kind is str:
            value = t.lower()
        elif self.kind is int:
            try:
                value = int(t)
            except ValueError:
                raise ValueError(f"not a whole number: {text!r}") from None
        else:
            try:
                value = float(t)
            except ValueError:
                raise ValueError(f"not a number: {text!r}") from None
        problem = self.problem(value)
        if problem:
            raise ValueError(problem)
        return value

    def problem(self, value) -> str | None:
        """Why value is out of range, or None."""
        if self.kind is str:
            if self.choices and value not in self.choices:
                return f"must be {' or '.join(self.choices)}, got {value!r}"
            if self.pattern is not None and not self.pattern.fullmatch(str(value)):
                return f"unknown {self.label} {value!r}: use {self.usage or self.help}"
            return self.check(value) if self.check is not None else None
        if self.kind is bool:
            return None if isinstance(value, bool) else f"expected true or false, got {value!r}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number, got {value!r}"
        if self.kind is int and not isinstance(value, int):
            return f"must be a whole number, got {value!r}"
        if not math.isfinite(value):
            return f"must be a finite number, got {value}"
        lo, hi = self.low, self.high
        below = lo is not None and (value <= lo if self.low_open else value < lo)
        above = hi is not None and (value >= hi if self.high_open else value > hi)
        if not (below or above):
            return None
        if self.kind is int and hi is not None:
            return f"must be a whole number from {_num(lo)} to {_num(hi)}, got {value}"
        if self.kind is int:
            return f"must be at least {_num(lo)}, got {value}"
        if hi is not None:
            return (f"must be in {'(' if self.low_open else '['}{_num(lo)}, {_num(hi)}"
                    f"{')' if self.high_open else ']'}, got {value}")
        if lo == 0:
            return f"must be positive, got {value}" if self.low_open else \
                f"must not be negative, got {value}"
        return f"must be at least {_num(lo)}, got {value}"


def _num(x: float | None) -> str:
    if x == 2**63 - 1:
        return "2**63 - 1"
    return f"{x:g}" if isinstance(x, float) else str(x)


def _s(help: str, kind: type, **rules) -> dict:
    return {"setting": (help, kind, rules)}


_COUNT = dict(low=1)  # a whole number >= 1
_POSITIVE = dict(low=0.0, low_open=True)
_NONNEG = dict(low=0.0)
_UNIT = dict(low=0.0, high=1.0, high_open=True)

# ---------------------------------------------------------------------------------------------
# Training settings


@dataclass
class TrainConfig:
    """Every hyperparameter. None means: choose from the corpus, the device and the budget
    (see charchat.recipe). The fields' order is the order of `charchat train --help` and of
    the training form."""

    # model shape
    n_layer: int | None = field(default=None, metadata=_s("transformer blocks", int, shape=True, **_COUNT))
    n_head: int | None = field(default=None, metadata=_s("attention heads", int, shape=True, **_COUNT))
    n_embd: int | None = field(default=None, metadata=_s("embedding width", int, shape=True, **_COUNT))
    block_size: int | None = field(default=None, metadata=_s(
        "context length in tokens (characters with --tokenizer char)", int, shape=True, **_COUNT))
    tokenizer: str = field(default="char", metadata=_s(
        TOKENIZER_HELP, str, shape=True, pattern=TOKENIZER_RE, check=tokenizer_problem,
        usage="char, gpt2 or bpe:N"))
    # optimisation
    batch_size: int | None = field(default=None, metadata=_s("sequences per step", int, **_COUNT))
    grad_accum: int = field(default=1, metadata=_s("micro-batches per step", int, **_COUNT))
    # "muon": Muon for the weight matrices inside the blocks, AdamW for embeddings and norm
    # gains (measured better for the same time: see charchat.muon); "adamw": AdamW for all.
    optimizer: str = field(default="muon", metadata=_s(
        "muon: Muon for the block matrices, AdamW for the rest; adamw: AdamW for all", str,
        choices=OPTIMIZERS, shape=True))
    lr: float | None = field(default=None, metadata=_s("peak learning rate (AdamW's)", float, **_POSITIVE))
    muon_lr: float | None = field(default=None, metadata=_s(
        "peak learning rate of Muon (block matrices)", float, **_POSITIVE))
    min_lr: float | None = field(default=None, metadata=_s(
        "AdamW's rate at the end of the cosine (Muon's in proportion)", float, **_NONNEG))
    warmup_steps: int | None = field(default=None, metadata=_s("linear warmup steps", int, **_COUNT))
    weight_decay: float = field(default=0.1, metadata=_s(
        "AdamW's decoupled weight decay (embeddings; every matrix with --optimizer adamw)",
        float, **_NONNEG))
    muon_momentum: float | None = field(default=None, metadata=_s(
        "Muon's momentum (Nesterov)", float, **_UNIT))
    muon_weight_decay: float | None = field(default=None, metadata=_s(
        "decoupled weight decay of the block matrices under Muon", float, **_NONNEG))
    beta2: float | None = field(default=None, metadata=_s("AdamW beta2", float, **_UNIT))
    grad_clip: float = field(default=1.0, metadata=_s(
        "clip the global gradient norm to this", float, **_POSITIVE))
    dropout: float | None = field(default=None, metadata=_s("dropout probability", float, **_UNIT))
    # evaluation and stopping
    eval_interval: int | None = field(default=None, metadata=_s(
        "steps between evaluations", int, **_COUNT))
    eval_tokens: int | None = field(default=None, metadata=_s(
        "validation characters per evaluation", int, **_COUNT))
    patience: int = field(default=6, metadata=_s(
        "evaluations without improvement before stopping", int, **_COUNT))
    min_delta: float = field(default=0.0, metadata=_s(
        "smallest val-loss drop that counts as improvement", float, **_NONNEG))
    seed: int = field(default=1337, metadata=_s("random seed", int, low=0, high=2**63 - 1))
    # how long (the command line puts these two in a group of their own: one or the other)
    max_steps: int | None = field(default=None, metadata=_s(
        "number of optimiser steps (resuming: steps more)", int, cli=False, **_COUNT))
    minutes: float | None = field(default=None, metadata=_s(
        "time budget; the schedule fits it (resuming: minutes more)", float, cli=False,
        form=False, **_POSITIVE))
    device: str = field(default="auto", metadata=_s(DEVICE_HELP, str, pattern=DEVICE_RE))
    compile: bool = field(default=False, metadata=_s("use torch.compile (true/false)", bool,
                                                      form=False))
    # GPT-2 has biases; without them steps are a little cheaper (nanoGPT's default)
    bias: bool = field(default=False, metadata=_s(
        "biases in Linear and LayerNorm layers (true/false)", bool, form=False, shape=True))
    # not set from the front ends (the Python API may)
    beta1: float = field(default=0.9, metadata=_s("AdamW beta1", float, cli=False, form=False,
                                                   **_UNIT))
    log_interval: int = field(default=10, metadata=_s("steps between logged losses", int,
                                                       cli=False, form=False, **_COUNT))
    sample_every: int = 0  # evaluations between text samples sent as events (0 = none)

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
        # and before BPE, every model was character-level.
        d.setdefault("tokenizer", "char")
        for f in fields(cls):  # a damaged or hand-edited record fails here, by name
            if f.name in d and not _has_type(d[f.name], str(f.type)):
                raise ValueError(f"setting {f.name!r} should be {f.type}, got {d[f.name]!r}")
        return cls(**d)

    def check(self) -> None:
        """Every value set is in its range; ConfigError names the first that is not."""
        for s in SETTINGS:
            value = getattr(self, s.name)
            if value is not None:
                problem = s.problem(value)
                if problem:
                    raise ConfigError(s.name, problem)

    def model_config(self, vocab_size: int) -> "GPTConfig":
        return GPTConfig(
            vocab_size=vocab_size, block_size=self.block_size, n_layer=self.n_layer,
            n_head=self.n_head, n_embd=self.n_embd, dropout=self.dropout, bias=self.bias,
        )


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


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.name, f.metadata["setting"][0], f.metadata["setting"][1], **f.metadata["setting"][2])
    for f in fields(TrainConfig) if "setting" in f.metadata
)
SETTING = {s.name: s for s in SETTINGS}
COUNT = Setting("count", "a whole number from 1", int, low=1)  # for other flags of that kind
SHAPE_KEYS = tuple(s.name for s in SETTINGS if s.shape)


@dataclass
class GPTConfig:
    """The network's shape (charchat.model.GPT)."""

    vocab_size: int = 65
    block_size: int = 256  # longest context the model can see (learned positions stop here)
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    dropout: float = 0.0
    bias: bool = True  # GPT-2 has biases in Linear and LayerNorm; False is slightly faster

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(
                f"GPTConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})"
            )
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GPTConfig":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


# ---------------------------------------------------------------------------------------------
# Sampling settings

# torch generators take seeds from -2**63 to 2**64 - 1; others fail at the first reply.
SEED_RANGE = range(-2**63, 2**64)


@dataclass
class SamplingSettings:
    """How replies are sampled. Saved per model by the chat front ends."""

    temperature: float = 0.8  # 0 = always the likeliest character (greedy)
    top_k: int | None = None  # keep only the k likeliest characters (None or 0 = all)
    top_p: float | None = 0.95  # keep the fewest characters whose probabilities reach p
    max_new_chars: int = 400  # hard limit on a reply's length
    stop: tuple[str, ...] = ()  # text that ends a reply (not included in it)
    seed: int | None = None  # fixed seed = repeatable replies
    # "int8" (the default): on a CPU, new tokens are read through int8 copies of the block
    # matrices, 1.4-2.3x faster for models with 10 MB or more of them (a 6-layer, 192-wide model
    # and up), and as fast for smaller ones; a trained model's loss was the same to 4 decimals
    # (benchmarks/README.md). None: exact float weights. Off the CPU, always float.
    quantize: str | None = "int8"

    def __post_init__(self) -> None:
        self.stop = tuple(self.stop)
        self.validate()

    def validate(self) -> None:
        if not isinstance(self.temperature, (int, float)) or not 0 <= self.temperature <= 5:
            raise ValueError(f"temperature must be between 0 and 5, got {self.temperature!r}")
        if self.top_k is not None and (not isinstance(self.top_k, int) or self.top_k < 0):
            raise ValueError(f"top_k must be a whole number >= 0, got {self.top_k!r}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if self.quantize not in (None, "int8"):
            raise ValueError(f"quantize must be None or 'int8', got {self.quantize!r}")
        if not isinstance(self.max_new_chars, int) or self.max_new_chars < 1:
            raise ValueError(f"max_new_chars must be a whole number >= 1, got {self.max_new_chars!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)
                                      or self.seed not in SEED_RANGE):
            raise ValueError(f"seed must be a whole number from -2**63 to 2**64 - 1, "
                             f"got {self.seed!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SamplingSettings":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


# ---------------------------------------------------------------------------------------------
# What a run reports


@dataclass
class CorpusSummary:
    files: list[str] = field(default_factory=list)
    bytes: int = 0
    chars: int = 0  # characters of the text, each turn token counting one
    vocab_size: int = 0  # characters, or a BPE's ranks (special tokens not counted)
    kind: str = "prose"  # prose, dialogue or mixed
    conversations: int = 0
    notes: list[str] = field(default_factory=list)  # skipped files and other remarks
    tokens: int = 0  # ids after encoding (0: not encoded yet; the same as chars for char)
    tokenizer: str = "char"  # char, gpt2 or bpe:N

    @property
    def ids(self) -> int:
        """Ids after encoding; before it (or for an old record), the characters: exact for the
        character tokenizer, an upper bound for BPE."""
        return self.tokens or self.chars

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CorpusSummary":
        """From a saved dict; wrong types (a hand-edited file) are replaced by the defaults."""
        out = cls()
        for f in fields(cls):
            v = d.get(f.name) if isinstance(d, dict) else None
            default = getattr(out, f.name)
            if isinstance(default, list):
                ok = isinstance(v, list) and all(isinstance(x, str) for x in v)
            elif isinstance(default, int):
                ok = isinstance(v, int) and not isinstance(v, bool)
            else:
                ok = isinstance(v, type(default))
            if ok:
                setattr(out, f.name, v)
        return out

    def describe(self) -> str:
        n = len(self.files)
        text = f"{n} file{'s' if n != 1 else ''}, {self.chars:,} characters, "
        if self.tokenizer == "char":
            text += f"vocabulary {self.vocab_size}, {self.kind}"
        elif self.tokens:
            text += (f"{self.tokens:,} {self.tokenizer} tokens "
                     f"({self.chars / self.tokens:.2f} characters a token), {self.kind}")
        else:
            text += f"{self.tokenizer}, {self.kind}"
        if self.conversations:
            text += f" ({self.conversations:,} conversations)"
        return text


@dataclass
class RunStart:
    """What a run is, as it starts: the resolved settings and where it writes."""

    config: dict  # TrainConfig.to_dict() with every default filled in
    params: int
    device: str
    notes: list[str]
    corpus: dict  # CorpusSummary.to_dict()
    folder: str
    resumed: bool = False
    processes: int = 1  # training across processes: how many (batch_size is each one's)

    @property
    def name(self) -> str:
        return Path(self.folder).name


@dataclass
class TrainEvent:
    """One report from the loop. kind: note (before the loop: reading the corpus, say), start,
    step, eval, sample, end."""

    kind: str
    step: int = 0
    max_steps: int | None = None
    train_loss: float | None = None
    val_loss: float | None = None
    best_val_loss: float | None = None
    ppl: float | None = None  # exp(val_loss) on eval events, exp(train_loss) on step events
    bpc: float | None = None  # eval events: val_loss in bits per character of the text
    bpb: float | None = None  # and per UTF-8 byte (char and BPE models compare on these)
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
    best_step: int | None = None  # on end events
    start: RunStart | None = None  # on start events
    details: dict = field(default_factory=dict)  # eval events: final, bad_evals

    def to_json(self) -> str:
        # Leave out empty fields, but keep zeros (0 == False, so test identity, not equality).
        d = {k: v for k, v in asdict(self).items()
             if k == "kind" or not (v is None or v is False or v == "" or v == {})}
        return json.dumps(d)

    @classmethod
    def from_json(cls, line: str) -> "TrainEvent":
        """An event as to_json wrote it (ValueError if the line is not one)."""
        d = json.loads(line)
        if not isinstance(d, dict) or not isinstance(d.get("kind"), str):
            raise ValueError("not a training event")
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if isinstance(d.get("start"), dict):
            d["start"] = RunStart(**{k: v for k, v in d["start"].items()
                                     if k in RunStart.__dataclass_fields__})
        return cls(**d)


STOP_MESSAGES = {
    "early_stopping": "validation loss stopped improving (early stopping)",
    "time_budget": "time budget used up",
    "max_steps": "reached --max-steps",
    "step_cap": "reached the step cap",
    "cancelled": "stopped by you",
    "non_finite": "training diverged",
}


OUT_OF_MEMORY = "out of memory: try a smaller model, batch size or context length"


def stop_message(stop: str, step: int, best_val: float | None, best_step: int | None,
                 folder: Path) -> str:
    """The one line that ends a run: why it stopped and what was kept where."""
    if stop == "non_finite":
        kept = (f"the best model (val {best_val:.4f} at step {best_step}) is kept"
                if best_val is not None else "no model was saved")
        return (f"training diverged at step {step} (loss is not a finite number); {kept}; "
                "try a lower --lr")
    if best_val is not None:
        return (f"{STOP_MESSAGES[stop]}; best val loss {best_val:.4f} at step {best_step}, "
                f"saved in {folder}")
    return f"{STOP_MESSAGES[stop]}; no model was saved (stopped before the first step)"


@dataclass
class TrainResult:
    name: str
    path: Path
    stop_reason: str  # one of STOP_MESSAGES
    message: str
    steps: int
    best_val_loss: float | None
    best_step: int | None
    elapsed: float
    config: TrainConfig
