"""The training screen on a machine with several CUDA GPUs: it offers to train across them, in
torchrun's processes that it follows through their events, and Stop works. (Here the count is
faked, and the processes train on the CPU over gloo: what differs on GPUs is the device.)"""

from charchat import runs
from charchat.tui.app import CharChatApp
from charchat.tui.widgets.loss_plot import LossPlot
from charchat.tui.widgets.train_stats import TrainStats

from .conftest import key, settle, wait_for
from .test_train_screen import TINY_FORM, fill, open_training


async def test_one_gpu_or_none_shows_no_choice(tiny_corpus, charchat_home, monkeypatch):
    monkeypatch.setattr(runs, "cuda_devices", lambda: 1)
    app = CharChatApp()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_training(pilot, tiny_corpus)
        assert not screen.query_one("#gpus").display
        assert screen.form.read_request().gpus == 1


async def test_two_gpus_are_offered_and_a_run_across_them_is_followed_and_stopped(
        tiny_corpus, charchat_home, monkeypatch):
    monkeypatch.setattr(runs, "cuda_devices", lambda: 2)
    app = CharChatApp()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_training(pilot, tiny_corpus)
        gpus = screen.query_one("#gpus")
        assert gpus.display and gpus.value == 2  # all of them, unless chosen otherwise
        fill(screen, max_steps="100000", patience="10000", **TINY_FORM)
        screen.query_one("#minutes").value = ""
        screen.query_one("#name").value = "across"
        await key(pilot, "ctrl+s")
        plot, stats = screen.query_one(LossPlot), screen.query_one(TrainStats)
        await wait_for(pilot, lambda: len(plot.val) >= 2, timeout=90,
                       what="two evaluations from the processes")
        assert stats.values["step"] >= 20 and gpus.disabled
        await key(pilot, "ctrl+x")
        await wait_for(pilot, lambda: screen.state == "done", timeout=60, what="the stop")
        await settle(pilot)
        outcome = str(screen.query_one("#outcome-text").content)
        assert "stopped by you" in outcome and "saved in" in outcome
        meta = (charchat_home / "models" / "across" / "meta.json").read_text()
        assert '"cpu x 2"' in meta
