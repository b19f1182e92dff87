"""Shared fixtures and helpers for the charchat test suite.

Everything here is small on purpose: models of one or two layers and 16-32 wide, corpora of a
few thousand characters generated in the test, so the whole suite runs in seconds on a laptop.
"""

from __future__ import annotations

import random
from pathlib import Path

import shutil

import pytest
import torch
from hypothesis import settings

from charchat.model import GPT, GPTConfig
from charchat.tokenizer import CharTokenizer


# Tiny models gain nothing from intra-op threads, and on a busy machine OpenMP's spinning
# threads make each small op orders of magnitude slower: run single-threaded.
torch.set_num_threads(1)

# Property tests are derandomized (the same examples every run) and keep no example database.
settings.register_profile("charchat", derandomize=True, database=None, deadline=None)
settings.load_profile("charchat")


@pytest.fixture(autouse=True)
def charchat_home(tmp_path, monkeypatch, request) -> Path:
    """Every test gets its own data folder: nothing touches the real user data dir.

    The default model shipped in the package is hidden too (tests see a fresh install that has
    none), except in tests marked real_bundle, which check that model itself.
    """
    home = tmp_path / "charchat-home"
    monkeypatch.setenv("CHARCHAT_HOME", str(home))
    if request.node.get_closest_marker("real_bundle") is None:
        from charchat import store

        monkeypatch.setattr(store, "bundled_dir", lambda: tmp_path / "no-bundled-model")
    return home


# ---------------------------------------------------------------------------------------------
# Text


WORDS = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "to", "big", "red", "hat"]


def pattern_text(n_chars: int, seed: int = 0) -> str:
    """Learnable text: short sentences of a dozen words, picked at random, one per line."""
    rng = random.Random(seed)
    lines, size = [], 0
    while size < n_chars:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 7))).capitalize() + "."
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)[:n_chars].rstrip() + "\n"


def random_text(n_chars: int, alphabet: str = "abcdefghij", seed: int = 0) -> str:
    """Text with nothing to learn: every character uniform and independent."""
    rng = random.Random(seed)
    return "".join(rng.choice(alphabet) for _ in range(n_chars))


@pytest.fixture
def write_file(tmp_path):
    """write_file("a.txt", "text") -> Path; str content is written as UTF-8, bytes as they are."""

    def write(name: str, content: str | bytes) -> Path:
        path = tmp_path / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_bytes(content.encode("utf-8"))
        return path

    return write


@pytest.fixture
def corpus_file(write_file) -> Path:
    """A prose file of about 6,000 characters of learnable text."""
    return write_file("tiny.txt", pattern_text(6000))


# ---------------------------------------------------------------------------------------------
# Models


def tiny_config(**overrides) -> GPTConfig:
    d = dict(vocab_size=12, block_size=16, n_layer=1, n_head=2, n_embd=16, dropout=0.0)
    d.update(overrides)
    return GPTConfig(**d)


def tiny_gpt(seed: int = 0, dtype: torch.dtype = torch.float32, **overrides) -> GPT:
    """A freshly initialised small GPT in eval mode."""
    torch.manual_seed(seed)
    model = GPT(tiny_config(**overrides)).to(dtype)
    return model.eval()


def tiny_train_config(**overrides):
    """A TrainConfig for a run of a second or two on the CPU."""
    from charchat.trainer import TrainConfig

    d = dict(n_layer=1, n_head=2, n_embd=32, block_size=16, batch_size=16, dropout=0.0,
             lr=3e-3, max_steps=30, eval_interval=10, eval_tokens=1024, log_interval=5,
             warmup_steps=5, device="cpu", seed=1)
    d.update(overrides)
    return TrainConfig(**d)


def scripted_gpt(tokenizer: CharTokenizer, script: str | list[str | int] | None = None,
                 bigram: dict[str, str | int] | None = None, block_size: int = 64) -> GPT:
    """A real GPT with weights set by hand, so that what it writes is known in advance.

    script: the model predicts script[p] at position p whatever the tokens are, so after a
      one-token prompt it writes the script (the last id repeats once it runs out).
    bigram: the model predicts bigram[c] after the token c, whatever the position (a token
      without an entry is followed by itself).
    Tokens are str (one character, or a special token's name) or ids. The margins are large, so
    even sampling at temperature 1 follows the plan.
    """

    def tid(t) -> int:
        if isinstance(t, int):
            return t
        return tokenizer.special_ids[t] if t in tokenizer.special_ids else tokenizer.stoi[t]

    V = tokenizer.vocab_size
    model = GPT(GPTConfig(vocab_size=V, block_size=block_size, n_layer=1, n_head=1, n_embd=V))
    tr = model.transformer
    block = tr.h[0]
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for ln in (block.ln_1, block.ln_2):
            ln.weight.fill_(1.0)
        eye = torch.eye(V)
        if script is not None:
            ids = [tid(t) for t in script]
            ids += [ids[-1]] * (block_size - len(ids))
            tr.wte.weight.copy_(0.1 * eye)  # (tied with the head) small next to the positions
            tr.wpe.weight.copy_(eye[ids[:block_size]])
        else:
            tr.wte.weight.copy_(eye)
            nxt = {tid(a): tid(b) for a, b in (bigram or {}).items()}
            # The MLP maps token a to its successor: hidden unit a reads a, writes nxt[a].
            block.mlp.c_fc.weight[:V].copy_(eye)
            for a in range(V):
                block.mlp.c_proj.weight[nxt.get(a, a), a] = 20.0
        tr.ln_f.weight.fill_(100.0 / float(tr.wte.weight.abs().max()))
    return model.eval()


# Tiny models and corpora shared by the core's and the app's tests.

TINY_SHAPE = dict(n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=8, dropout=0.0,
                  lr=3e-3, eval_interval=10, eval_tokens=512, log_interval=5, warmup_steps=5,
                  device="cpu", seed=1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A model folder trained for 30 steps on generated prose (about a second), once."""
    from charchat.corpus import corpus_from_text
    from charchat.trainer import TrainConfig, Trainer

    folder = tmp_path_factory.mktemp("tiny-model") / "tiny"
    corpus = corpus_from_text(pattern_text(6000))
    Trainer(corpus, TrainConfig(max_steps=30, **TINY_SHAPE), name="tiny", out_dir=folder).run()
    return folder


@pytest.fixture
def tiny_model(tiny_model_dir, charchat_home) -> str:
    """The tiny model saved as "tiny" in this test's data folder; replies kept short."""
    from charchat import preferences

    shutil.copytree(tiny_model_dir, charchat_home / "models" / "tiny")
    preferences.save_sampling("tiny", {"max_new_chars": 30, "seed": 1})
    return "tiny"


@pytest.fixture
def tiny_corpus(tmp_path) -> Path:
    path = tmp_path / "corpus" / "story.txt"
    path.parent.mkdir(parents=True)
    path.write_text(pattern_text(6000))
    return path


# ---------------------------------------------------------------------------------------------
# The command line


TINY_FLAGS = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "16",
              "--batch-size", "8", "--device", "cpu", "--seed", "1", "--eval-interval", "5"]


def run_cli(capsys, *args):
    """Run `charchat ARGS`; returns (exit status, stdout, stderr)."""
    from charchat.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err
