"""The training screen: form, live progress, stop, errors, and chatting with the result."""

import shlex

from charchat import store
from charchat.tui.app import CharChatApp
from charchat.tui.screens.chat import ChatScreen
from charchat.tui.screens.train import TrainScreen
from charchat.tui.widgets.loss_plot import LossPlot
from charchat.tui.widgets.train_stats import TrainStats

from .conftest import key, send, settle, wait_for

TINY_FORM = {"n_layer": "1", "n_head": "2", "n_embd": "16", "block_size": "16",
             "batch_size": "8", "eval_interval": "10", "eval_tokens": "512", "device": "cpu"}


async def open_training(pilot, corpus) -> TrainScreen:
    app = pilot.app
    await settle(pilot)
    await pilot.press("ctrl+t")
    screen = app.screen
    assert isinstance(screen, TrainScreen)
    screen.query_one("#paths").value = str(corpus)
    screen.form.check_corpus()
    await settle(pilot)
    return screen


def fill(screen, **fields):
    for name, value in fields.items():
        screen.query_one(f"#adv-{name}").value = value


async def train_twenty(pilot, corpus) -> TrainScreen:
    """Open the training screen and train "twenty" for 20 steps, to its end."""
    screen = await open_training(pilot, corpus)
    fill(screen, max_steps="20", **TINY_FORM)
    screen.query_one("#name").value = "twenty"
    await key(pilot, "ctrl+s")
    await settle(pilot)
    assert screen.state == "done"
    return screen


async def start_endless_run(pilot, corpus) -> TrainScreen:
    """Open the training screen and start a tiny run that goes on until it is stopped."""
    screen = await open_training(pilot, corpus)
    fill(screen, max_steps="100000", patience="10000", **TINY_FORM)
    screen.query_one("#minutes").value = ""
    await key(pilot, "ctrl+s")
    return screen


async def test_form_checks_corpus_fills_defaults_and_points_at_errors(tiny_corpus,
                                                                     charchat_home, tiny_model):
    app = CharChatApp()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_training(pilot, tiny_corpus)
        summary = str(screen.query_one("#corpus-summary").content)
        assert "1 file, 6,000 characters, vocabulary" in summary and "prose" in summary
        assert screen.query_one("#name").value == "story"
        # The advanced section holds the core's choices for this corpus and budget.
        assert screen.query_one("#adv-n_layer").value == "2"
        assert screen.query_one("#adv-lr").value != ""
        assert screen.query_one("#adv-optimizer").value == "muon"
        assert screen.query_one("#adv-muon_lr").value == "0.02"
        assert screen.query_one("#adv-eval_interval").value == ""  # timed automatically
        screen.query_one("#preset").value = "small"
        await pilot.pause()
        screen.form.resolve_defaults()
        await settle(pilot)
        assert screen.query_one("#adv-n_embd").value == "128"  # the preset shows through
        # Errors name the field and put the cursor there.
        screen.query_one("#name").value = "tiny"  # taken
        await key(pilot, "ctrl+s")
        await settle(pilot)
        assert screen.state == "idle" and "already exists" in screen.status.text
        assert app.focused.id == "name"
        screen.query_one("#name").value = "fresh"
        fill(screen, lr="fast")
        await key(pilot, "ctrl+s")
        await settle(pilot)
        assert screen.state == "idle" and "lr: not a number" in screen.status.text
        assert app.focused.id == "adv-lr"
        fill(screen, lr="", optimizer="sgd")
        await key(pilot, "ctrl+s")
        await settle(pilot)
        assert screen.state == "idle" and "optimizer: must be muon or adamw" in screen.status.text
        assert app.focused.id == "adv-optimizer"
        screen.query_one("#minutes").value = "-1"
        fill(screen, optimizer="adamw")
        await key(pilot, "ctrl+s")
        await settle(pilot)  # the form is read after the inputs' change messages are handled
        assert "minutes" in screen.status.text


async def test_a_path_typed_then_enter_is_checked(tiny_corpus, charchat_home, tiny_model):
    """Typing a path and pressing Enter at once checks it (a zero-delay Textual timer used to
    fail silently here, leaving the form without a corpus summary)."""
    app = CharChatApp()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+t")
        screen = app.screen
        assert app.focused.id == "paths"
        await pilot.press(*str(tiny_corpus), "enter")
        await wait_for(pilot, lambda: "6,000 characters" in str(
            screen.query_one("#corpus-summary").content), what="the corpus summary")
        await wait_for(pilot, lambda: screen.query_one("#adv-optimizer").value == "muon",
                       what="the resolved defaults")


async def test_a_path_with_spaces_typed_without_quotes_gets_a_hint(tmp_path, charchat_home):
    spaced = tmp_path / "my notes.txt"
    spaced.write_text("text to learn from, long enough for a window or two\n" * 40)
    app = CharChatApp()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_training(pilot, spaced)  # typed as is, no quotes
        summary = str(screen.query_one("#corpus-summary").content)
        assert "one path with spaces in its name: put it in quotes" in summary, summary
        assert "no such file" not in summary
        screen.query_one("#paths").value = shlex.quote(str(spaced))
        screen.form.check_corpus()
        await settle(pilot)
        assert "1 file" in str(screen.query_one("#corpus-summary").content)


async def test_bad_corpus_is_a_message(tmp_path, charchat_home):
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"abc\x00def")
    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_training(pilot, tmp_path / "missing.txt")
        assert "no such file or folder" in str(screen.query_one("#corpus-summary").content)
        screen.query_one("#paths").value = str(binary)
        screen.form.check_corpus()
        await settle(pilot)
        assert "binary file" in str(screen.query_one("#corpus-summary").content)
        fill(screen, **TINY_FORM)
        await key(pilot, "ctrl+s")  # refused: the check already found the problem
        await settle(pilot)
        assert screen.state == "idle" and "binary file" in screen.status.text
        # A file that turns bad after its check: the core's error is shown, no traceback.
        good = tmp_path / "good.txt"
        good.write_text("some text to learn from, long enough for a window or two\n" * 40)
        screen.query_one("#paths").value = str(good)
        screen.form.check_corpus()
        await settle(pilot)
        good.write_bytes(b"abc\x00def" * 200)
        await key(pilot, "ctrl+s")
        await wait_for(pilot, lambda: screen.state == "done")
        await settle(pilot)
        assert "binary file" in str(screen.query_one("#outcome-text").content)
        assert app.return_code is None and app.focused.id == "paths"


async def test_train_stop_and_chat(tiny_corpus, charchat_home):
    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await start_endless_run(pilot, tiny_corpus)
        assert screen.state == "running"
        plot = screen.query_one(LossPlot)
        stats = screen.query_one(TrainStats)
        await wait_for(pilot, lambda: len(plot.val) >= 2 and plot.redraws >= 1,
                       what="two evaluations on the plot")
        assert plot.train and stats.values["step"] >= 20 and "val" in stats.values
        assert stats.values["best"] is not None
        assert screen.query_one("#progress").progress > 0 or stats.values["step"] > 0
        # Quitting asks first; keeping on training keeps the screen.
        await key(pilot, "ctrl+q")
        assert type(app.screen).__name__ == "ConfirmModal"
        # Behind the dialog nothing is redrawn (it slowed training): progress is held, the
        # spinner stands still, and both catch up when the dialog closes.
        step, frame = stats.values["step"], screen.status._frame
        await wait_for(pilot, lambda: screen._held is not None
                       and len(screen._held.train_points) > 1, what="progress held, merged")
        assert stats.values["step"] == step and screen.status._frame == frame
        await key(pilot, "escape")
        assert app.screen is screen and screen.running
        await wait_for(pilot, lambda: stats.values["step"] > step and screen._held is None,
                       what="the held progress shown")
        await key(pilot, "ctrl+x")
        await settle(pilot)
        assert screen.state == "done"
        outcome = str(screen.query_one("#outcome-text").content)
        assert "stopped by you" in outcome and "saved in" in outcome
        assert (charchat_home / "models" / "story" / "model.pt").exists()
        assert store.load_model("story").model.config.n_embd == 16
        await pilot.press("ctrl+l")  # chat with this model
        await settle(pilot)
        assert isinstance(app.screen, ChatScreen)
        assert app.screen.sub_title == "story · cpu"
        await send(pilot, "The")
        await settle(pilot)
        assert app.engine.session.messages[-1].role == "assistant"


async def test_training_goes_on_while_you_chat(tiny_corpus, charchat_home, tiny_model):
    """The app owns the run: Escape leaves its screen and the run goes on; ctrl+t opens a
    screen on the same run, drawn from everything it reported meanwhile."""
    from charchat.tui.screens.models import ModelsScreen

    app = CharChatApp()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await start_endless_run(pilot, tiny_corpus)
        job = screen.job
        assert app.job is job
        stats = screen.query_one(TrainStats)
        await wait_for(pilot, lambda: stats.values.get("step", 0) >= 10, what="some steps")
        # Escape goes back to chat without a question, and the run goes on out of sight.
        await key(pilot, "escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen), what="the chat")
        assert len(app.screen_stack) == 1 and app.job is job and job.running
        assert app.job_out_of_sight()
        await wait_for(pilot, lambda: any("ctrl+t comes back" in n.message
                                          for n in app._notifications), what="the note")
        chat = app.screen
        await wait_for(pilot, lambda: chat.state == "ready", what="the chat model")
        assert "training story in the background (ctrl+t)" in chat.status.text
        step = stats.values["step"]
        await wait_for(pilot, lambda: job.history.step and job.history.step.step > step,
                       what="steps out of sight")
        await send(pilot, "The")  # chatting meanwhile
        await wait_for(pilot, lambda: app.engine.session.messages[-1].role == "assistant"
                       and chat.current is None, what="a reply")
        assert "training story in the background" in chat.status.text
        # The models screen lists the model as being trained.
        await wait_for(pilot, lambda: (charchat_home / "models" / "story" / "model.pt").exists(),
                       what="a first saved model")
        await key(pilot, "ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, ModelsScreen), what="models")
        table = app.screen.query_one("#models-table")
        await wait_for(pilot, lambda: any(
            str(table.get_row_at(i)[0]).startswith("story") for i in range(table.row_count)),
            what="the list")
        assert [str(table.get_row_at(i)[0]) for i in range(table.row_count)
                if str(table.get_row_at(i)[0]).startswith("story")] == ["story (training)"]
        # ctrl+t brings the same run back, caught up: its whole curve, its latest step.
        await key(pilot, "ctrl+t")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen) and app.screen.running,
                       what="the run again")
        again = app.screen
        assert again is not screen and again.job is job and again.running
        assert again.form.locked and again.query_one("#stop").display
        # The form shows what the run was started with.
        assert again.query_one("#paths").value == str(tiny_corpus)
        assert again.query_one("#name").value == "story"
        assert again.query_one("#adv-n_embd").value == "16"
        stats = again.query_one(TrainStats)
        await wait_for(pilot, lambda: stats.values.get("step", 0) > step, what="its steps")
        assert len(again.query_one(LossPlot).train) >= len(job.history.train_points) - 50
        # Away again, then stopped by the quit question: the run ends and the app quits.
        await key(pilot, "escape")
        await wait_for(pilot, lambda: app.screen is not again, what="away again")
        assert job.running
        await key(pilot, "ctrl+q")
        assert type(app.screen).__name__ == "ConfirmModal"
        await key(pilot, "ctrl+q")  # asked once, however often
        assert sum(type(s).__name__ == "ConfirmModal" for s in app.screen_stack) == 1
        await key(pilot, "y")
        # (Not settle(): a worker that the exit cancels makes it raise WorkerCancelled.)
        await wait_for(pilot, lambda: app.return_code is not None, what="the app's exit")
    assert app.return_code == 0 and not job.running
    assert (charchat_home / "models" / "story" / "model.pt").exists()
    assert (charchat_home / "models" / "story" / "state.pt").exists()


async def test_a_run_that_ends_out_of_sight_says_so_and_can_be_shown(tiny_corpus,
                                                                     charchat_home):
    app = CharChatApp()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_training(pilot, tiny_corpus)
        fill(screen, max_steps="800", patience="10000", **TINY_FORM)  # a few seconds
        await key(pilot, "ctrl+s")
        job = screen.job
        stats = screen.query_one(TrainStats)
        await wait_for(pilot, lambda: stats.values.get("step", 0) >= 10, what="some steps")
        assert job.running  # else Escape would forget it
        await key(pilot, "escape")
        await wait_for(pilot, lambda: job.state == "done", timeout=120, what="the run's end")
        await settle(pilot)
        assert isinstance(app.screen, ChatScreen)
        await wait_for(pilot, lambda: any("ctrl+t shows the run" in n.message
                                          and "reached --max-steps" in n.message
                                          for n in app._notifications), what="the note")
        assert "in the background" not in app.screen.status.text
        await pilot.press("ctrl+t")
        await settle(pilot)
        assert isinstance(app.screen, TrainScreen) and app.screen.job is job
        assert "reached --max-steps" in str(app.screen.query_one("#outcome-text").content)
        assert app.screen.query_one(TrainStats).values["step"] == 800
        assert app.screen.query_one("#chat-with").display
        # Left, by Escape or by chatting with the model, the ended run is forgotten: ctrl+t
        # opens a new form.
        for leave in ("escape", "ctrl+l"):
            await key(pilot, leave)
            await settle(pilot)
            assert isinstance(app.screen, ChatScreen) and app.job is None
            await pilot.press("ctrl+t")
            await settle(pilot)
            assert isinstance(app.screen, TrainScreen) and app.screen.job is None
            assert app.screen.state == "idle"
            if leave == "escape":  # once more, for ctrl+l: a run out of sight, then seen
                screen = await open_training(pilot, tiny_corpus)
                fill(screen, max_steps="800", patience="10000", **TINY_FORM)
                screen.query_one("#name").value = "story-2"
                await key(pilot, "ctrl+s")
                job = screen.job
                stats = screen.query_one(TrainStats)
                await wait_for(pilot, lambda: stats.values.get("step", 0) >= 10, what="steps")
                await key(pilot, "escape")
                await wait_for(pilot, lambda: job.state == "done", timeout=120,
                               what="the run's end")
                await pilot.press("ctrl+t")
                await settle(pilot)
                assert app.screen.job is job


async def test_train_to_max_steps_chat_then_resume(tiny_corpus, charchat_home):
    app = CharChatApp()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await train_twenty(pilot, tiny_corpus)
        assert "reached --max-steps" in str(screen.query_one("#outcome-text").content)
        assert screen.query_one(TrainStats).values["step"] == 20
        assert screen.query_one("#chat-with").display
        await pilot.click("#chat-with")
        await settle(pilot)
        assert app.screen.model_name == "twenty" and app.screen.state == "ready"
        # Resume it from the models screen: the form holds its corpus and fixed shape, and
        # the plot starts with the curves so far.
        await pilot.press("ctrl+o")
        await settle(pilot)
        await pilot.press("t")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TrainScreen) and screen.resume_name == "twenty"
        assert screen.query_one("#name").disabled and screen.query_one("#adv-n_embd").disabled
        assert screen.query_one("#paths").value == str(tiny_corpus)
        screen.query_one("#minutes").value = ""
        fill(screen, max_steps="10")
        await key(pilot, "ctrl+s")
        await settle(pilot)
        assert screen.state == "done", screen.query_one("#outcome-text").content
        assert screen.query_one(TrainStats).values["step"] == 30
        assert len(screen.query_one(LossPlot).val) >= 3  # the earlier curve was loaded too


async def test_resume_from_an_open_form_and_a_resumed_run_seen_again(tiny_corpus,
                                                                    charchat_home):
    """Resuming from a form that had a size chosen drops that size (the shape is the model's);
    the steps field starts empty (resuming, it means steps more); a resumed run that ended out
    of sight and is opened again keeps its name, size and shape fixed."""
    app = CharChatApp()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await train_twenty(pilot, tiny_corpus)
        screen.query_one("#preset").value = "small"
        await settle(pilot)
        app.action_open_training(resume="twenty")  # the models screen's t
        await settle(pilot)
        assert app.screen is screen and screen.resume_name == "twenty"
        assert screen.query_one("#preset").value == "auto" and screen.query_one("#preset").disabled
        assert screen.query_one("#adv-max_steps").value == ""
        assert screen.query_one("#adv-n_embd").value == "16"
        screen.query_one("#minutes").value = ""
        fill(screen, max_steps="20")  # 20 more
        await key(pilot, "ctrl+s")
        job = screen.job
        await key(pilot, "escape")
        await wait_for(pilot, lambda: job.state == "done", timeout=60, what="the run's end")
        assert job.result.steps == 40, job.error
        await pilot.press("ctrl+t")
        await settle(pilot)
        again = app.screen
        assert again.job is job and again.resume_name == "twenty"
        for field in ("#name", "#preset", "#adv-n_embd", "#adv-block_size"):
            assert again.query_one(field).disabled, field
        request = again.form.read_request()
        assert request.resume == "twenty" and request.name is None


async def test_quit_while_training_asks_and_keeps_the_model(tiny_corpus, charchat_home):
    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_training(pilot, tiny_corpus)
        fill(screen, max_steps="100000", **TINY_FORM)
        await key(pilot, "ctrl+s")
        await wait_for(pilot, lambda: len(screen.query_one(LossPlot).val) >= 1,
                       what="a first evaluation")
        await key(pilot, "ctrl+q")
        assert type(app.screen).__name__ == "ConfirmModal"
        await key(pilot, "y")
        await settle(pilot)
    assert app.return_code == 0
    assert (charchat_home / "models" / "story" / "model.pt").exists()
    assert (charchat_home / "models" / "story" / "state.pt").exists()


async def test_quit_asks_once_however_often_ctrl_q_is_pressed(tiny_corpus, charchat_home):
    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await start_endless_run(pilot, tiny_corpus)
        assert screen.running

        def dialogs():
            return [s for s in app.screen_stack if type(s).__name__ == "ConfirmModal"]

        try:
            await key(pilot, "ctrl+q", "ctrl+q", "ctrl+q")
            assert len(dialogs()) == 1 and app.screen is dialogs()[0]
            await key(pilot, "escape")  # one Escape closes the question: training goes on
            assert app.screen is screen and screen.running and not dialogs()
            await key(pilot, "ctrl+q", "ctrl+q")
            assert len(dialogs()) == 1
            await key(pilot, "y")
            await settle(pilot)
        finally:
            screen.job.cancel.set()  # a failed check must not leave the run going
    assert app.return_code == 0


async def test_core_errors_are_messages(tiny_corpus, charchat_home, monkeypatch):
    from pathlib import Path

    from charchat.config import TrainConfig, TrainingError, TrainResult

    def out_of_memory(plan, on_event, cancel):
        raise TrainingError("out of memory: use a smaller --batch-size, --block-size or --n-embd")

    def diverged(plan, on_event, cancel):
        return TrainResult(plan.name, Path("/x"), "non_finite",
                           "training diverged at step 7 (loss is not a finite number); no model "
                           "was saved; try a lower --lr", 7, None, None, 1.0, TrainConfig())

    def crash(plan, on_event, cancel):
        raise RuntimeError("something odd\nwith a second line")

    app = CharChatApp()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_training(pilot, tiny_corpus)
        for fake, expected in ((out_of_memory, "out of memory"), (diverged, "diverged at step 7"),
                               (crash, "unexpected error (RuntimeError: something odd)")):
            monkeypatch.setattr("charchat.runs.train", fake)
            await key(pilot, "ctrl+s")
            await settle(pilot)
            outcome = str(screen.query_one("#outcome-text").content)
            assert screen.state == "done" and expected in outcome, outcome
            assert "Traceback" not in outcome and not screen.query_one("#chat-with").display
            assert screen.status.level == "error"
        assert app.return_code is None


async def test_a_corpus_that_failed_its_check_does_not_start(tmp_path, charchat_home):
    app = CharChatApp()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_training(pilot, tmp_path / "nope")
        assert "no such file or folder" in str(screen.query_one("#corpus-summary").content)
        await key(pilot, "ctrl+s")
        await settle(pilot)
        assert screen.state == "idle" and "corpus:" in screen.status.text
        assert "no such file or folder" in screen.status.text
        assert app.focused.id == "paths"


async def test_a_corpus_too_short_for_the_context_is_flagged_before_starting(tmp_path,
                                                                            charchat_home):
    short = tmp_path / "short.txt"
    short.write_text("tiny bit of text\n" * 7)  # 119 characters: a 12-character validation split
    app = CharChatApp()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_training(pilot, short)
        summary = str(screen.query_one("#corpus-summary").content)
        assert "✗" in summary and "corpus too short" in summary
        # Worded for both front ends: no flag.
        assert "smaller block size" in summary and "--block-size" not in summary
        await key(pilot, "ctrl+s")
        await settle(pilot)
        assert screen.state == "idle" and "corpus too short" in screen.status.text
        # A context that fits clears it, without reading the corpus again. (open_training
        # checks at once; the change typing the path makes comes in after it and is not
        # checked twice: a second check would clear the first one's result meanwhile.)
        await pilot.pause(0.8)  # past the typing's debounce
        await settle(pilot)
        assert screen.form.req == 1
        fill(screen, block_size="8")
        await wait_for(pilot, lambda: str(screen.query_one("#corpus-summary").content)
                       .startswith("✓") and "Ready" in screen.status.text,
                       what="the warning cleared")
        assert screen.form.req == 1 and screen.status.level != "error"


async def test_a_run_that_fails_to_start_points_at_the_field(tiny_corpus, charchat_home):
    app = CharChatApp()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_training(pilot, tiny_corpus)
        fill(screen, n_head="5")  # the width stays automatic
        await key(pilot, "ctrl+s")
        await wait_for(pilot, lambda: screen.state == "done")
        await settle(pilot)
        outcome = str(screen.query_one("#outcome-text").content)
        assert "n-head: must divide n-embd" in outcome and "got 5" in outcome
        assert "--" not in outcome
        assert "did not start" in str(screen.query_one("#run-title").content)
        assert app.focused.id == "adv-n_head" and not screen.query_one("#advanced").collapsed
        await pilot.press("backspace", "2")  # typing goes into the field at fault
        assert screen.query_one("#adv-n_head").value == "2"
        assert not (charchat_home / "models" / "story").exists()


async def test_a_name_another_run_is_training_is_refused(tiny_corpus, charchat_home,
                                                         monkeypatch):
    import os

    from charchat import locking
    from charchat.tui.widgets import train_form

    folder = charchat_home / "models" / "story"
    other = locking.acquire(folder)  # another run, which has saved its first model
    (folder / store.WEIGHTS).write_bytes(b"the other run's weights")
    busy = f"model 'story' is being trained by process {os.getpid()}"
    try:
        app = CharChatApp()
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_training(pilot, tiny_corpus)
            screen.query_one("#name").value = "story"
            await key(pilot, "ctrl+s")
            await settle(pilot)
            assert screen.state == "idle" and busy in screen.status.text
            assert app.focused.id == "name"
            # The other run took the name after the form's check: the run's own check
            # (before it reads the corpus) refuses it.
            monkeypatch.setattr(train_form, "check_new_name", lambda name: name)
            await key(pilot, "ctrl+s")
            await wait_for(pilot, lambda: screen.state == "done")
            await settle(pilot)
            outcome = str(screen.query_one("#outcome-text").content)
            assert busy in outcome
            # Those weights are the other run's: this run kept nothing and offers no chat.
            assert "kept" not in outcome and not screen.query_one("#chat-with").display
        assert (folder / store.WEIGHTS).read_bytes() == b"the other run's weights"
        assert locking.holder(folder) == os.getpid()
    finally:
        other.release()
