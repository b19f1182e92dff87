import io
import json
import math
import shutil
import signal
import subprocess
import sys

import pytest
import torch

from charchat import conversations, preferences, store
from charchat.chat import ChatSession, sample
from charchat.cli import main
from charchat.corpus import load_corpus
from charchat.evaluate import val_loss
from charchat.config import SamplingSettings

from conftest import pattern_text, run_cli

TINY = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "16",
        "--batch-size", "8", "--device", "cpu", "--seed", "1", "--eval-interval", "10"]


cli = run_cli  # (exit status, stdout, stderr)


def one_line_error(err: str) -> str:
    assert err.startswith("charchat: error: ") and err.endswith("\n")
    assert err.count("\n") == 1, err
    return err


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory):
    """A data folder holding one model, 'tiny', trained through the CLI once per module."""
    torch.set_num_threads(1)
    home = tmp_path_factory.mktemp("home")
    text = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    text.write_text(pattern_text(6000))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHARCHAT_HOME", str(home))
        assert main(["train", str(text), "--name", "tiny", "--max-steps", "30", "--quiet", *TINY]) == 0
    return home, text


@pytest.fixture
def model(trained_home, charchat_home):
    """This test's data folder, with a copy of the trained model; returns the corpus path."""
    home, text = trained_home
    shutil.copytree(home / "models", charchat_home / "models")
    return text


def test_train(capsys, write_file, charchat_home):
    path = write_file("story.txt", pattern_text(6000))
    handler = signal.getsignal(signal.SIGINT)
    code, out, err = cli(capsys, "train", path, "--max-steps", "20", *TINY)
    assert code == 0, err
    assert signal.getsignal(signal.SIGINT) is handler
    assert "Done:" in out and "reached --max-steps" in out and "charchat chat" in out
    assert "story" in out
    folder = charchat_home / "models" / "story"
    assert (folder / "model.pt").exists()
    assert json.loads((folder / "meta.json").read_text())["best_step"] == 20
    assert json.loads((charchat_home / "state.json").read_text())["last_model"] == "story"
    assert store.load_model("story").model.config.n_embd == 16


def test_resume(capsys, model, charchat_home):
    """--max-steps with --resume: that many steps more (the model has 30)."""
    code, out, err = cli(capsys, "train", "--resume", "tiny", "--max-steps", "10", "--quiet")
    assert code == 0, err
    assert "reached --max-steps" in out
    state = torch.load(charchat_home / "models" / "tiny" / "state.pt", weights_only=True)
    assert state["step"] == 40
    assert json.loads((charchat_home / "models" / "tiny" / "meta.json").read_text())["best_step"] == 40


def test_resume_refuses_a_new_shape(capsys, model, charchat_home):
    before = (charchat_home / "models" / "tiny" / "model.pt").read_bytes()
    code, _, err = cli(capsys, "train", "--resume", "tiny", "--n-embd", "64", "--max-steps", "40")
    assert code == 1
    assert one_line_error(err) == ("charchat: error: --n-embd: cannot change when resuming "
                                   "'tiny': it was 16, now 64\n")
    assert (charchat_home / "models" / "tiny" / "model.pt").read_bytes() == before


def test_a_data_folder_that_cannot_be_written(capsys, write_file, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("CHARCHAT_HOME", str(blocker))
    path = write_file("story.txt", pattern_text(6000))
    code, _, err = cli(capsys, "train", path, "--max-steps", "5", *TINY)
    assert code == 1
    assert one_line_error(err) == f"charchat: error: {blocker}/cache: not a directory\n"


def test_an_empty_name_is_refused(capsys, write_file, charchat_home):
    path = write_file("story.txt", pattern_text(6000))
    code, _, err = cli(capsys, "train", path, "--name", "", "--max-steps", "5", *TINY)
    assert code == 2 and "invalid model name ''" in one_line_error(err)
    assert not (charchat_home / "models").exists() or not any((charchat_home / "models").iterdir())


def test_resume_under_another_name_is_refused(capsys, model, charchat_home):
    code, _, err = cli(capsys, "train", "--resume", "tiny", "--name", "other", "--max-steps", "40")
    assert code == 2 and "--name: cannot be used with --resume" in one_line_error(err)
    assert not (charchat_home / "models" / "other").exists()


@pytest.mark.parametrize("record", ["[]", '{"config": {"n_layer": "two"}}', '{"config": 3}',
                                    '{"config": {}, "corpus_paths": "notes.txt"}'])
def test_resume_with_a_damaged_training_record(capsys, model, charchat_home, record):
    (charchat_home / "models" / "tiny" / "train_args.json").write_text(record)
    code, _, err = cli(capsys, "train", "--resume", "tiny", "--max-steps", "40")
    assert code == 1
    assert "train_args.json: cannot resume" in one_line_error(err)


def test_quiet_train_prints_one_line(capsys, write_file, charchat_home):
    path = write_file("story.txt", pattern_text(6000))
    code, out, err = cli(capsys, "train", path, "--max-steps", "10", "--quiet", *TINY)
    assert code == 0, err
    assert out.count("\n") == 1
    assert out.rstrip("\n").endswith(str(charchat_home / "models" / "story"))


def test_resume_by_folder_path(capsys, model, charchat_home, tmp_path):
    folder = tmp_path / "elsewhere" / "tiny"
    shutil.move(charchat_home / "models" / "tiny", folder)
    code, out, err = cli(capsys, "train", "--resume", folder, "--max-steps", "10", "--quiet")
    assert code == 0, err
    assert torch.load(folder / "state.pt", weights_only=True)["step"] == 40


def test_models_list_and_json(capsys, model):
    code, out, _ = cli(capsys, "models")
    assert code == 0 and "tiny" in out and "best val" in out
    code, out, _ = cli(capsys, "models", "--json")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["name"] for r in rows] == ["tiny"]
    meta = store.read_meta(store.model_dir("tiny"))
    assert rows[0]["best_val_loss"] == meta["best_val_loss"]
    assert rows[0]["params"] == meta["params"] > 0 and rows[0]["bundled"] is False
    assert rows[0]["training"] is False and "(training)" not in cli(capsys, "models")[1]


def test_models_when_there_are_none(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(store, "bundled_dir", lambda: tmp_path / "no-bundle")
    code, out, _ = cli(capsys, "models")
    assert code == 0 and "no models in" in out and "bundled default is missing" in out
    assert cli(capsys, "models", "--json")[1] == ""


def test_models_rm_and_rename(capsys, model):
    preferences.remember_model("tiny")
    chat = conversations.new("tiny", "prose")
    chat.messages = [{"role": "user", "content": "hi"}]
    conversations.save(chat)
    code, out, _ = cli(capsys, "models", "rename", "tiny", "other")
    assert code == 0 and "renamed tiny to other" in out
    assert preferences.last_model() == "other"  # a bare `charchat sample` still finds it
    assert conversations.latest("other").messages == chat.messages  # and the app its chats
    code, out, _ = cli(capsys, "models", "rm", "other")
    assert code == 0 and "deleted other" in out
    assert preferences.last_model() is None
    assert cli(capsys, "models", "--json")[1] == ""
    code, _, err = cli(capsys, "models", "rm", "other")
    assert code == 1 and "no model named 'other'" in one_line_error(err)
    code, _, err = cli(capsys, "models", "rm")
    assert code == 2 and "usage" in one_line_error(err)


def test_sample(capsys, model):
    code, out, err = cli(capsys, "sample", "--model", "tiny", "--chars", "20", "--seed", "1")
    assert code == 0, err
    again = cli(capsys, "sample", "--model", "tiny", "--chars", "20", "--seed", "1")[1]
    assert out == again
    expected = sample(store.load_model("tiny"), "", chars=20, seed=1)
    assert out == expected + "\n"
    # The model used last is the default.
    assert cli(capsys, "sample", "--chars", "20", "--seed", "1")[1] == out


def test_sample_with_a_prompt(capsys, model):
    code, out, err = cli(capsys, "sample", "--model", "tiny", "--prompt", "The cat",
                         "--chars", "10", "--temperature", "0")
    assert code == 0 and err == ""
    loaded = store.load_model("tiny")
    assert out == "The cat" + sample(loaded, "The cat", chars=10, temperature=0) + "\n"
    code, out, err = cli(capsys, "sample", "--model", "tiny", "--prompt", "caf\u00e9\u4e2d",
                         "--chars", "5")
    assert code == 0 and "never saw" in err and "\u4e2d" in err


def test_eval(capsys, model):
    code, out, err = cli(capsys, "eval", "--model", "tiny", model)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 1
    r = json.loads(lines[0])
    assert set(r) == {"val_loss", "bpc", "bpb", "ppl", "tokens", "chars"}
    loaded = store.load_model("tiny")
    expected = val_loss(loaded.model, load_corpus([model], tokenizer=loaded.tokenizer).val_ids)
    assert r["val_loss"] == pytest.approx(expected["val_loss"], abs=1e-6)
    assert r["tokens"] == expected["chars"] and r["tokens"] % 16 == 0
    # A character model: a token is a character, and this text's characters are one byte each.
    assert r["chars"] == r["tokens"]
    assert r["bpc"] == pytest.approx(r["val_loss"] / math.log(2), abs=1e-5)
    assert r["bpb"] == pytest.approx(r["bpc"], abs=1e-5)
    assert r["ppl"] == pytest.approx(math.exp(r["val_loss"]), rel=1e-5)


def test_eval_errors(capsys, model, write_file):
    code, _, err = cli(capsys, "eval", "--model", "tiny", write_file("short.txt", "The cat.\n"))
    assert code == 1 and "needs at least 17" in one_line_error(err)
    bad = write_file("other.txt", "Zebras \u00e9\n" * 50)
    code, _, err = cli(capsys, "eval", "--model", "tiny", bad)
    assert code == 1 and "'tiny' never saw: 'Z' (U+005A), '\u00e9' (U+00E9)" in one_line_error(err)


def test_eval_scores_the_last_tenth_only(capsys, model, write_file):
    """A character the model lacks in the first 90% does not matter: it is not scored."""
    text = pattern_text(6000, seed=3)
    cut = int(len(text) * 0.9)
    path = write_file("held_out.txt", "\u00e9" + text[1:cut] + text[cut:])  # same length
    code, out, err = cli(capsys, "eval", "--model", "tiny", path)
    assert code == 0, err
    loaded = store.load_model("tiny")
    clean = write_file("clean.txt", text)
    expected = val_loss(loaded.model, load_corpus([clean], tokenizer=loaded.tokenizer).val_ids)
    assert json.loads(out)["val_loss"] == pytest.approx(expected["val_loss"], abs=1e-6)


@pytest.mark.parametrize("data, asked", [
    (b"The dog\n\n   \nA big\n", ["The dog", "A big"]),  # blank lines are skipped
    # CRLF line ends, and a byte that is not UTF-8: U+FFFD (a character the model never saw)
    (b"The dog\r\nA \xff big\r\n", ["The dog", "A \ufffd big"]),
])
def test_chat_plain(capsys, model, monkeypatch, data, asked):
    stdin = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="strict")
    monkeypatch.setattr(sys, "stdin", stdin)
    code, out, err = cli(capsys, "chat", "--plain", "--model", "tiny", "--temperature", "0",
                         "--max-chars", "30")
    assert code == 0, err
    session = ChatSession.from_loaded(store.load_model("tiny"),
                                      SamplingSettings(temperature=0, max_new_chars=30))
    expected = [session.reply(text) for text in asked]
    escaped = [r.replace("\\", "\\\\").replace("\n", "\\n") for r in expected]
    assert out == "".join(r + "\n" for r in escaped)
    assert all(expected) and "'\\r'" not in err
    assert ("'\ufffd'" in err) == (b"\xff" in data)  # noted once as never seen


@pytest.mark.parametrize("flags", [["--float"], ["--temperature", "0.5", "--top-k", "3"],
                                   ["--device", "cpu"]])
def test_chat_app_refuses_flags_it_would_ignore(capsys, monkeypatch, flags):
    """Without --plain the app opens with its own per-model settings; the sampling flags
    would silently do nothing, so they are an error that says where the settings are."""
    opened = []
    monkeypatch.setattr("charchat.cli.run_app", lambda model=None: opened.append(model) or 0)
    code, _, err = cli(capsys, "chat", "--model", "tiny", *flags)
    assert code == 2 and not opened
    assert flags[0] in one_line_error(err) and "--plain" in err and "ctrl+s" in err
    code, _, _ = cli(capsys, "chat", "--model", "tiny")
    assert code == 0 and opened == ["tiny"]


def test_sample_prompt_with_crlf_and_a_stray_byte(capsys, model):
    import os

    prompt = os.fsdecode(b"The \xff dog\r\n")  # as argv holds it
    code, out, err = cli(capsys, "sample", "--model", "tiny", "--prompt", prompt,
                         "--chars", "5", "--temperature", "0")
    assert code == 0 and out.startswith("The \ufffd dog\n")
    assert "'\\r'" not in err


@pytest.mark.parametrize("tty", [False, True])
def test_chat_plain_gives_a_script_one_line_per_reply(capsys, model, monkeypatch, tty):
    """A prose model's reply ends at a blank line, so it may hold newlines: piped, each reply
    is still one line (newlines escaped); at a terminal it is shown as it is."""
    replies = iter(["verse one\nverse two", "a \\ back\\nslash\r\n\x0c\u2028", "plain"])
    monkeypatch.setattr(ChatSession, "stream_reply", lambda self, text: iter([next(replies)]))
    monkeypatch.setattr(sys, "stdin", io.StringIO("one\ntwo\nthree\n"))
    monkeypatch.setattr(sys.stdout, "isatty", lambda: tty)
    code, out, err = cli(capsys, "chat", "--plain", "--model", "tiny")
    assert code == 0, err
    if tty:
        assert out == "verse one\nverse two\na \\ back\\nslash\r\n\x0c\u2028\nplain\n"
    else:
        assert out == ("verse one\\nverse two\n" "a \\\\ back\\\\nslash\\r\\n\\f\\u2028\n"
                       "plain\n")
        assert len(out.splitlines()) == 3


def test_chat_plain_notes_unknown_characters(capsys, model, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("The \u00e7at\nthe \u00e7\n"))
    code, out, err = cli(capsys, "chat", "--plain", "--model", "tiny", "--max-chars", "5")
    assert code == 0
    assert err.count("note:") == 1 and "'\u00e7'" in err
    assert len(out.splitlines()) == 2


# ---------------------------------------------------------------------------------------------
# Errors


def test_missing_corpus_file(capsys, tmp_path):
    missing = tmp_path / "missing.txt"
    code, _, err = cli(capsys, "train", missing, "--max-steps", "5", *TINY)
    assert code == 1
    assert str(missing) in one_line_error(err) and "no such file" in err


def test_existing_name(capsys, model):
    code, _, err = cli(capsys, "train", model, "--name", "tiny", "--max-steps", "5", *TINY)
    assert code == 1 and "already exists" in one_line_error(err)


# Bad usage (a missing argument, a flag's value out of range) exits 2, as argparse does.
@pytest.mark.parametrize(
    "args, message, code",
    [
        (["train"], "no corpus given", 2),
        (["train", "x.txt", "--name", "bad name"], "invalid model name", 2),
        (["train", "--resume", "tiny", "--name", "other"], "--name: cannot be used", 2),
        (["sample", "--model", "nobody"], "no model named 'nobody'", 1),
        (["sample", "--model", "tiny", "--temperature", "9"], "temperature", 2),
        (["chat", "--plain", "--model", "nobody"], "no model named", 1),
        (["train", "--resume", "nobody"], "no model named", 1),
        (["corpus", "get"], "usage: charchat corpus get NAME", 2),
        (["corpus", "list", "extra"], "usage: charchat corpus list", 2),
    ],
)
def test_errors_are_one_line(capsys, model, args, message, code):
    got, out, err = cli(capsys, *args)
    assert got == code and message in one_line_error(err)


def test_a_negative_weight_decay_is_refused_before_anything_is_written(capsys, model,
                                                                       charchat_home):
    with pytest.raises(SystemExit) as info:  # bad usage: argparse refuses it as it reads it
        main(["train", str(model), "--name", "wd", "--max-steps", "5",
              "--muon-weight-decay", "-0.5", "--quiet", *TINY])
    assert info.value.code == 2
    assert "argument --muon-weight-decay: must not be negative, got -0.5" in capsys.readouterr().err
    assert not (charchat_home / "models" / "wd").exists()


def test_no_model_at_all(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(store, "bundled_dir", lambda: tmp_path / "no-bundle")
    code, _, err = cli(capsys, "sample")
    assert code == 1 and "bundled default model is missing" in one_line_error(err)


@pytest.mark.parametrize("args", [["train", "x", "--max-steps", "0"], ["train", "x", "--lr", "-1"],
                                  ["train", "x", "--minutes", "1", "--max-steps", "2"],
                                  ["train", "x", "--optimizer", "sgd"], ["frobnicate"],
                                  ["train", "x", "--min-lr", "nan"],
                                  ["sample", "--device", "bogus"],
                                  ["train", "x", "--device", "gpu"],
                                  ["train", "x", "--weight-decay", "inf"]])
def test_bad_usage_exits_2(capsys, args):
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    if "nan" in args or "inf" in args:  # the flag is named
        assert f"argument {args[2]}: must be a finite number" in capsys.readouterr().err


def test_optimizer_flag_is_recorded_and_kept_on_resume(capsys, model, charchat_home):
    """The module's model trained with the default (Muon); a new one asks for AdamW."""
    args = json.loads((charchat_home / "models" / "tiny" / "train_args.json").read_text())
    assert args["config"]["optimizer"] == "muon" and args["config"]["muon_lr"] > 0
    code, _, err = cli(capsys, "train", model, "--name", "plain", "--max-steps", "10",
                       "--optimizer", "AdamW", "--quiet", *TINY)
    assert code == 0, err
    code, _, err = cli(capsys, "train", "--resume", "plain", "--max-steps", "15", "--quiet")
    assert code == 0, err
    args = json.loads((charchat_home / "models" / "plain" / "train_args.json").read_text())
    assert args["config"]["optimizer"] == "adamw"
    code, _, err = cli(capsys, "train", "--resume", "plain", "--max-steps", "20",
                       "--optimizer", "muon")
    assert code == 1 and ("--optimizer: cannot change when resuming 'plain': it was adamw, "
                          "now muon") in one_line_error(err)


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("charchat 0.")


def test_core_imports_no_textual():
    code = "import charchat, sys; charchat.GPT; charchat.Trainer; charchat.ChatSession; " \
           "import charchat.cli; assert 'textual' not in sys.modules, 'textual imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_weights_flags_choose_float_or_int8():
    from charchat.cli import _settings_from, build_parser

    p = build_parser()
    assert _settings_from(p.parse_args(["sample", "--model", "m"])).quantize == "int8"
    assert _settings_from(p.parse_args(["sample", "--model", "m", "--float"])).quantize is None
    assert _settings_from(p.parse_args(["chat", "--plain", "--int8"])).quantize == "int8"
    with pytest.raises(SystemExit):
        p.parse_args(["sample", "--model", "m", "--float", "--int8"])


def test_train_into_a_pipe_that_closes_stops_cleanly(write_file, charchat_home):
    """charchat train ... | head: the run stops as after Ctrl-C (state saved, resumable)
    and says so on stderr; rich's own handling exited at once, leaving no state."""
    import os

    path = write_file("story.txt", pattern_text(6000))
    proc = subprocess.Popen(
        [sys.executable, "-m", "charchat", "train", str(path), "--max-steps", "100000",
         "--eval-interval", "5", *TINY],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    for line in iter(proc.stdout.readline, b""):  # until the first evaluation is shown
        if b" val " in line:
            break
    proc.stdout.close()  # the reader goes away
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert err.decode().startswith("charchat: output closed: training stopped at step ")
    folder = charchat_home / "models" / "story"
    assert (folder / "model.pt").exists() and (folder / "state.pt").exists()


def test_a_model_another_run_is_training_is_left_alone(capsys, model, charchat_home,
                                                        monkeypatch):
    import os

    from charchat import locking

    def no_corpus_reading(*a, **k):
        raise AssertionError("the refusal comes before the corpus is read")

    monkeypatch.setattr("charchat.corpus.load_corpus", no_corpus_reading)
    busy = f"charchat: error: model 'tiny' is being trained by process {os.getpid()}"
    folder = charchat_home / "models" / "tiny"
    def files():
        return {p.name: p.read_bytes() for p in folder.iterdir() if p.name != locking.LOCK_FILE}

    before = files()
    with locking.acquire(folder):
        for args, then in ((["train", model, "--name", "tiny"], "wait for it to end, or train "
                            "under another name"),
                           (["train", "--resume", "tiny"], "wait for it to end"),
                           (["models", "rm", "tiny"], "stop that run before it can be deleted"),
                           (["models", "rename", "tiny", "t2"], "stop that run before it can be "
                            "renamed")):
            code, out, err = cli(capsys, *args, *(TINY if args[0] == "train" else []))
            assert code == 1 and one_line_error(err).startswith(f"{busy}; {then}"), err
        # Its first model is on disk: it can be read while the run goes on, and is listed so.
        code, out, err = cli(capsys, "sample", "--model", "tiny", "--chars", "5")
        assert code == 0 and out
        code, out, _ = cli(capsys, "models")
        assert code == 0 and "tiny (training)" in out
        code, out, _ = cli(capsys, "models", "--json")
        assert json.loads(out)["training"] is True
        # A new run under a name that has no model yet.
        with locking.acquire(charchat_home / "models" / "fresh"):
            code, out, err = cli(capsys, "sample", "--model", "fresh")
            assert code == 1 and one_line_error(err) == (
                f"charchat: error: model 'fresh' is being trained by process {os.getpid()} and "
                "has not saved a model yet\n")
    assert files() == before
