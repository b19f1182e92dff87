"""The app's non-Textual layer: chat engine, training jobs, event pacing."""

import threading

import pytest

from charchat import conversations, preferences, store
from charchat.trainer import TrainEvent
from charchat.tui import engine
from charchat.tui.engine import ChatEngine, TrainFeed, TrainSpec


def test_chat_engine_streams_and_saves(tiny_model, charchat_home):
    eng = ChatEngine()
    info = eng.load("tiny")
    assert info.name == "tiny" and info.device == "cpu" and info.kind == "prose"
    assert info.sampling["max_new_chars"] == 30
    assert preferences.last_model() == "tiny"
    pieces = list(eng.stream("The cat", threading.Event()))
    assert 0 < len("".join(pieces)) <= 30
    saved = conversations.latest("tiny")
    assert [m["role"] for m in saved.messages] == ["user", "assistant"]
    assert saved.messages[1]["content"] == "".join(pieces)
    # Regenerate replaces the reply; the conversation file follows.
    again = "".join(eng.stream(None, threading.Event()))
    assert conversations.latest("tiny").messages[1]["content"] == again
    eng.new_conversation()
    assert eng.session.messages == []


def test_chat_engine_stop_keeps_the_text(tiny_model):
    eng = ChatEngine()
    eng.load("tiny")
    eng.set_sampling({"max_new_chars": 1000})
    cancel = threading.Event()
    got = []
    for piece in eng.stream("The", cancel):
        got.append(piece)
        if len(got) == 5:
            cancel.set()
    assert eng.session.messages[-1].ended == "cancelled"
    assert eng.session.messages[-1].content == "".join(got)


def test_chat_engine_restores_a_conversation(tiny_model):
    conv = conversations.new("tiny")
    conv.messages = [{"role": "user", "content": "hi", "ended": ""},
                     {"role": "assistant", "content": "yo", "ended": "stop"}]
    conversations.save(conv)
    eng = ChatEngine()
    eng.load("tiny")
    attached = eng.attach(conversations.latest("tiny"))
    assert attached.id == conv.id and len(eng.session.messages) == 2
    other = conversations.new("someone-else")
    assert eng.attach(other).id != other.id  # another model's conversation is not continued


def test_set_sampling_checks_and_remembers(tiny_model):
    eng = ChatEngine()
    with pytest.raises(ValueError, match="no model"):
        eng.set_sampling({"temperature": 0.5})
    eng.load("tiny")
    with pytest.raises(ValueError, match="temperature"):
        eng.set_sampling({"temperature": 9})
    eng.set_sampling({"temperature": 0.0, "top_k": 3})
    assert eng.session.settings.temperature == 0.0 and eng.session.settings.top_k == 3
    assert preferences.sampling_for("tiny")["top_k"] == 3


def test_load_errors_are_one_line(charchat_home, tiny_model):
    eng = ChatEngine()
    with pytest.raises(store.StoreError):
        eng.load("nothing-here")
    (charchat_home / "models" / "tiny" / "model.pt").write_bytes(b"garbage")
    with pytest.raises(store.StoreError) as e:
        eng.load("tiny")
    assert "\n" not in engine.describe_error(e.value)


def test_describe_error(charchat_home):
    assert engine.describe_error(ValueError("bad\nsecond line")) == "bad"
    assert "out of memory" in engine.describe_error(MemoryError())
    msg = engine.describe_error(KeyError("x"))
    assert msg.startswith("unexpected error (KeyError") and "app.log" in msg
    assert "KeyError" in engine.log_file().read_text()


def test_suggest_name(charchat_home):
    assert engine.suggest_name(["/x/My Story.txt"]) == "My-Story"
    (charchat_home / "models" / "My-Story").mkdir(parents=True)
    assert engine.suggest_name(["/x/My Story.txt"]) == "My-Story-2"
    assert engine.suggest_name(["/x/.hidden"]) == "hidden"


def test_build_config_presets_and_overrides():
    config, folder, tok = engine.build_config(TrainSpec(["a"], "n", minutes=1.5, preset="small",
                                                        overrides={"n_layer": 5, "lr": 1e-3}))
    assert (config.n_layer, config.n_head, config.n_embd) == (5, 4, 128)  # by hand beats preset
    assert config.lr == 1e-3 and config.minutes == 1.5 and folder is None and tok is None
    with pytest.raises(ValueError, match="preset"):
        engine.build_config(TrainSpec(["a"], "n", preset="huge"))


def test_resolved_defaults_fill_every_field():
    values, notes, device = engine.resolved_defaults(TrainSpec([], "x", minutes=2), 40_000, "prose")
    assert device == "cpu" or device.startswith("cuda") or device == "mps"
    for key in ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "lr", "min_lr",
                "warmup_steps", "beta2", "dropout", "eval_tokens"):
        assert values[key] is not None, key


def test_run_training_and_resume(tiny_corpus, charchat_home):
    events = []
    spec = TrainSpec([str(tiny_corpus)], "story", max_steps=20, overrides=dict(
        n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=8, eval_interval=10,
        eval_tokens=512, device="cpu"))
    result = engine.run_training(spec, events.append, threading.Event())
    assert result.stop_reason == "max_steps" and result.best_val_loss is not None
    assert (charchat_home / "models" / "story" / "model.pt").exists()
    with pytest.raises(store.StoreError, match="already exists"):
        engine.run_training(spec, events.append, threading.Event())
    more = TrainSpec([str(tiny_corpus)], "story", max_steps=10, resume=True)
    result = engine.run_training(more, events.append, threading.Event())
    assert result.steps == 30


def test_train_feed_coalesces_steps():
    now = [0.0]
    batches = []
    feed = TrainFeed(batches.append, interval=0.1, clock=lambda: now[0])
    feed(TrainEvent("start"))
    assert batches[-1].start is not None
    for i in range(1, 101):  # 100 step events within 50 ms: one batch at most
        now[0] += 0.0005
        feed(TrainEvent("step", step=i, train_loss=3.0 - i / 100))
    assert len(batches) == 1
    now[0] += 0.2
    feed(TrainEvent("step", step=101, train_loss=1.9))
    assert len(batches) == 2
    b = batches[-1]
    assert b.step.step == 101 and len(b.train_points) == 101  # every point kept for the plot
    feed(TrainEvent("eval", step=101, val_loss=2.0))  # evaluations go out at once
    assert len(batches) == 3 and batches[-1].evals[0].val_loss == 2.0
    feed(TrainEvent("step", step=102, train_loss=float("nan")))
    feed.flush()
    assert batches[-1].train_points == [] and batches[-1].step.step == 102
    feed.flush()  # nothing pending: nothing posted
    assert len(batches) == 4


def test_train_batches_merge_into_one():
    from types import SimpleNamespace as E

    from charchat.tui.engine import TrainBatch

    first = TrainBatch(start=E(step=0), step=E(step=10), train_points=[(10, 2.0)],
                       evals=[E(step=10)], notes=["a"])
    later = TrainBatch(step=E(step=20), train_points=[(20, 1.5)], evals=[E(step=20)],
                       sample=E(step=20), notes=["b"])
    m = first.merge(later)
    assert m.start.step == 0 and m.step.step == 20 and m.sample.step == 20 and m.end is None
    assert m.train_points == [(10, 2.0), (20, 1.5)] and [e.step for e in m.evals] == [10, 20]
    assert m.notes == ["a", "b"]
