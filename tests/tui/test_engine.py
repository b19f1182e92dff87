"""The app's non-Textual layer: chat engine, training jobs, event pacing."""

import threading

import pytest

from charchat import conversations, preferences, store
from charchat.config import TrainEvent
from charchat.runs import RunRequest
from charchat.tui import engine
from charchat.tui.engine import ChatEngine, TrainFeed


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
    from charchat.config import ConfigError

    assert engine.describe_error(ValueError("bad\nsecond line")) == "bad"
    assert engine.describe_error(ConfigError("n_embd", "too wide")) == "n-embd: too wide"
    assert engine.describe_error(ConfigError("paths", "x.txt: gone")) == "x.txt: gone"
    assert "out of memory" in engine.describe_error(MemoryError())
    msg = engine.describe_error(KeyError("x"))
    assert msg.startswith("unexpected error (KeyError") and "app.log" in msg
    assert "KeyError" in engine.log_file().read_text()


def test_a_training_job_runs_reports_and_resumes(tiny_corpus, charchat_home):
    """The app's job: plans and trains in its thread, keeps what it reported (a screen opened
    later draws it), says how it ended, and never raises."""
    shape = dict(n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=8,
                 eval_interval=10, eval_tokens=512, device="cpu")
    posted = []
    job = engine.TrainingJob(RunRequest([str(tiny_corpus)], "story", max_steps=20,
                                        overrides=shape))
    assert job.running and job.name == "story"
    job.run(posted.append)
    assert job.state == "done" and job.started and job.error is None
    assert job.result.stop_reason == "max_steps" and job.kept == "story"
    assert posted[0].notes == ["reading the corpus…"]
    assert job.history.start.start.name == "story" and job.history.end.step == 20
    assert [e.step for e in job.history.evals] == [10, 20]
    # The same name again: refused before anything is read, in the form's words.
    again = engine.TrainingJob(RunRequest([str(tiny_corpus)], "story", max_steps=20))
    again.run(posted.append)
    assert again.result is None and "already exists: pick another name" in again.error
    assert again.error_field == "name" and again.kept is None
    # Resumed: 10 steps more, and the curves so far come first.
    more = engine.TrainingJob(RunRequest(max_steps=10, resume="story"))
    more.run(posted.append)
    assert more.result.steps == 30 and more.name == "story"
    assert [e.step for e in more.history.evals][:2] == [10, 20]  # its history
    assert more.history.evals[0].ppl is None and more.history.evals[-1].step == 30


def test_a_job_stopped_before_it_began(tiny_corpus, charchat_home):
    job = engine.TrainingJob(RunRequest([str(tiny_corpus)], "story", max_steps=20))
    job.stop()
    assert job.state == "stopping"
    job.run(lambda batch: None)
    assert job.cancelled and job.error == "stopped before training began" and job.kept is None
    assert not (charchat_home / "models" / "story").exists()


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


def test_chat_on_a_full_disk_says_where_and_keeps_chatting(tiny_model, monkeypatch):
    """Issue 18: a conversation that cannot be saved is one line in the app naming the folder,
    and leaves no temporary file."""
    import errno
    import os

    eng = ChatEngine()
    eng.load("tiny")

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    errors = []
    pieces = list(eng.stream("The cat", threading.Event(), errors.append))
    assert pieces
    folder = conversations.conversations_dir()
    assert errors and all(e.startswith("could not save the conversation: no space left on the "
                                       f"disk of {folder} (writing ") for e in errors)
    assert not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]
