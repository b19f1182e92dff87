"""Fine-tuning: a new run that starts from a saved or imported model's weights (issue 20)."""

from __future__ import annotations

import json

import pytest
import torch

from charchat import store

from conftest import TINY_FLAGS, pattern_text, run_cli

TINY = TINY_FLAGS


cli = run_cli


@pytest.fixture
def base(capsys, write_file):
    text = write_file("a.txt", pattern_text(8000, seed=1))
    assert cli(capsys, "train", text, "--name", "base", "--max-steps", "20", "--quiet",
               *TINY)[0] == 0
    return text


def test_a_run_from_a_model_starts_at_its_weights(capsys, base, write_file):
    other = write_file("b.txt", pattern_text(8000, seed=2))
    # a learning rate too small to move anything: the saved model is the one it started from
    code, out, err = cli(capsys, "train", other, "--from", "base", "--name", "ft",
                         "--max-steps", "5", "--lr", "1e-12", "--device", "cpu", "--quiet")
    assert code == 0, err
    a, b = store.load_model("base").model, store.load_model("ft").model
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(x, y, atol=1e-6, rtol=0, msg=k)
    record = json.loads((store.models_dir() / "ft" / "train_args.json").read_text())
    assert record["config"]["optimizer"] == "adamw" and record["config"]["n_embd"] == 16
    assert any("starting from the weights of base" in n for n in record["notes"])


def test_a_real_rate_moves_it_and_the_shape_is_the_models(capsys, base, write_file):
    other = write_file("b.txt", pattern_text(8000, seed=2))
    code, _, err = cli(capsys, "train", other, "--from", "base", "--name", "ft2",
                       "--max-steps", "10", "--device", "cpu", "--quiet")
    assert code == 0, err
    a, b = store.load_model("base").model, store.load_model("ft2").model
    assert not torch.equal(a.lm_head.weight, b.lm_head.weight)
    code, _, err = cli(capsys, "train", other, "--from", "base", "--name", "ft3",
                       "--n-layer", "3", "--max-steps", "5")
    assert code == 1 and "--n-layer: cannot change when starting from 'base'" in err
    code, _, err = cli(capsys, "train", other, "--from", "base", "--resume", "base")
    assert code == 2 and "cannot be used with --resume" in err
    code, _, err = cli(capsys, "train", other, "--from", "nobody", "--max-steps", "5")
    assert code == 1 and "no model named 'nobody'" in err


def test_an_imported_gpt2_fine_tunes_on_your_text(capsys, write_file, charchat_home, tmp_path):
    transformers = pytest.importorskip("transformers")
    from charchat import gpt2import

    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        n_layer=1, n_head=2, n_embd=16, n_positions=32, vocab_size=50257))
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    gpt2import.import_file(tmp_path / "hf" / "model.safetensors", name="g")
    text = write_file("t.txt", pattern_text(20000, seed=3))
    code, out, err = cli(capsys, "train", text, "--from", "g", "--name", "g-ft",
                         "--max-steps", "4", "--eval-interval", "2", "--batch-size", "4",
                         "--device", "cpu")
    assert code == 0, err
    assert "gpt2 tokens" in out and "bpc" in out
    ft = store.load_model("g-ft")
    assert ft.tokenizer.name == "gpt2" and ft.model.config.block_size == 32


def test_a_source_whose_shape_is_unreadable_is_one_line(capsys, base, write_file):
    (store.models_dir() / "base" / "config.json").write_text("{not json")
    code, _, err = cli(capsys, "train", base, "--from", "base", "--name", "x", "--max-steps", "3")
    assert code == 1 and "config.json: model shape unreadable" in err and err.count("\n") == 1
