"""charchat.allocator: glibc's malloc is tuned once per process, and can be left alone."""

import os
import subprocess
import sys

import pytest

SNIPPET = (
    "from charchat.allocator import keep_freed_memory as k;"
    "first = k(); print(first, k() == first)"
)


def _run(env_extra: dict) -> str:
    env = dict(os.environ, **env_extra)
    out = subprocess.run([sys.executable, "-c", SNIPPET], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _glibc() -> bool:
    try:
        return sys.platform.startswith("linux") and (
            os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):
        return False


@pytest.mark.skipif(not _glibc(), reason="the tuning applies to glibc only")
def test_applied_once_on_glibc():
    assert _run({"CHARCHAT_MALLOC": ""}) == "True True"


def test_opt_out_leaves_malloc_alone():
    assert _run({"CHARCHAT_MALLOC": "system"}) == "False True"
    assert _run({"CHARCHAT_MALLOC": " System "}) == "False True"


def test_a_users_own_glibc_tuning_is_left_alone():
    assert _run({"CHARCHAT_MALLOC": "", "MALLOC_TRIM_THRESHOLD_": "262144"}) == "False True"
    assert _run({"CHARCHAT_MALLOC": "", "MALLOC_MMAP_THRESHOLD_": "1048576"}) == "False True"


def test_training_and_generation_apply_it(monkeypatch, tmp_path):
    """The entry points of long work call it (a notebook user gets it without asking)."""
    import charchat.evaluate as evaluate
    import charchat.generation as generation
    import charchat.trainer as trainer
    from charchat.runs import train_files
    from conftest import pattern_text

    by = []
    for mod in (trainer, generation, evaluate):
        monkeypatch.setattr(mod, "keep_freed_memory",
                            lambda name=mod.__name__: by.append(name) or True)
    text = tmp_path / "t.txt"
    text.write_text(pattern_text(2000))
    train_files(text, out_dir=tmp_path / "m", max_steps=1, n_layer=1, n_head=1, n_embd=8,
                  block_size=8, batch_size=2, eval_interval=1)
    assert by[0] == "charchat.trainer"  # before its first step, not only at evaluation
    by.clear()
    import numpy as np
    import torch

    from charchat import GPT, GPTConfig
    model = GPT(GPTConfig(vocab_size=5, block_size=8, n_layer=1, n_head=1, n_embd=8))
    list(generation.generate_ids(model, torch.zeros(1, 1, dtype=torch.long), 2))
    assert by == ["charchat.generation"]
    evaluate.windows_loss(model, np.arange(20) % 5, np.array([0]))
    assert by == ["charchat.generation", "charchat.evaluate"]
